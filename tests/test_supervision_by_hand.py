"""Issue 13: 督办单 by hand, 办理不力 referrals, quality rungs, and their place in the assessment."""

from datetime import date, datetime
from io import BytesIO
from zoneinfo import ZoneInfo

from django.core import mail
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.urls import reverse
from openpyxl import load_workbook
import pytest

from accounts import roles
from assessment import selectors as assessment_selectors
from assessment.models import AssessmentWeights
from assessment.selectors import Period
from casework import escalation, joint, quality, services, supervision
from casework.case_versions import case_version
from casework.models import (
    Case,
    CaseEvent,
    DisciplineReferral,
    EscalationRung,
    Notification,
    PoorHandlingReason,
    QualityRung,
    QualityStep,
    ReferralCase,
    State,
    SupervisionNotice,
    UnitCalendarDay,
)
from casework.selectors import notices_for_unit_staff
from tests.factories import make_user, run_together

SH = ZoneInfo("Asia/Shanghai")
MAY = {"dispatcher", "office_reviewer", "leader", "superuser"}


def users_of(bureau, django_user_model):
    return {
        "none": bureau.head_a, "handler": bureau.handler_a, "dispatcher": bureau.dispatcher,
        "office_reviewer": bureau.reviewer, "leader": bureau.leader, "supervisor": bureau.supervisor,
        "superuser": django_user_model.objects.create_superuser("root", "root@bureau.invalid", "pw"),
    }


def reason(name="敷衍塞责"):
    return PoorHandlingReason.objects.get(name=name)


# ---------------------------------------------------------------- who may act


def test_the_reason_list_is_seeded_and_editable_data(db):
    names = set(PoorHandlingReason.objects.values_list("name", flat=True))
    assert {"敷衍塞责", "答复不实", "推诿扯皮", "多次发回重办", "群众不满意"} <= names
    assert QualityRung.objects.filter(is_active=True).count() >= 3


@pytest.mark.parametrize("role", ["none", "handler", "dispatcher", "office_reviewer", "leader", "supervisor",
                                  "superuser"])
def test_who_may_open_a_notice_and_refer_by_hand_in_scope(bureau, django_user_model, role):
    user = users_of(bureau, django_user_model)[role]
    case = bureau.case_in(State.HANDLING)
    assert supervision.may_open_notice(user=user, case=case) is (role in MAY)
    assert supervision.may_refer(user=user, case=case) is (role in MAY)
    if role in MAY:
        notices = supervision.supervision_notice_open(case=case, acting_user=user, content="请三日内整改", answer_days=2)
        assert notices[0].origin == "manual" and notices[0].opened_by == user
        referral = supervision.referral_poor_handling(case=case, acting_user=user, reason=reason(), statement="答复敷衍")
        assert (referral.kind, referral.origin, referral.referred_by) == ("poor_handling", "manual", user)
    else:
        with pytest.raises(PermissionDenied):
            supervision.supervision_notice_open(case=case, acting_user=user, content="请整改", answer_days=2)
        with pytest.raises(PermissionDenied):
            supervision.referral_poor_handling(case=case, acting_user=user, reason=reason(), statement="x")
        assert not SupervisionNotice.objects.filter(case=case).exists()
        assert not DisciplineReferral.objects.filter(case=case).exists()


@pytest.mark.parametrize("role", [roles.DISPATCHER, roles.OFFICE_REVIEWER, roles.LEADER])
def test_out_of_scope_the_same_roles_may_not(bureau, role):
    outsider = make_user(f"{role}_b", role=role, unit=bureau.unit_b)  # scope: 岳塘分局 only
    case = bureau.case_in(State.HANDLING)  # 雨湖分局's
    assert not supervision.may_open_notice(user=outsider, case=case)
    assert not supervision.may_refer(user=outsider, case=case)
    with pytest.raises(PermissionDenied):
        supervision.supervision_notice_open(case=case, acting_user=outsider, content="请整改", answer_days=2)
    with pytest.raises(PermissionDenied):
        supervision.referral_poor_handling(case=case, acting_user=outsider, reason=reason(), statement="x")
    own = bureau.case_in(State.HANDLING, unit=bureau.unit_b)
    assert supervision.may_open_notice(user=outsider, case=own)
    assert supervision.may_refer(user=outsider, case=own)


@pytest.mark.parametrize("role", ["none", "handler", "dispatcher", "office_reviewer", "leader", "supervisor"])
def test_the_case_page_offers_the_forms_only_to_those_who_may(client, bureau, django_user_model, role):
    user = users_of(bureau, django_user_model)[role]
    case = bureau.case_in(State.HANDLING)
    client.force_login(user)
    page = client.get(reverse("admin:casework_case_change", args=[case.pk]))
    html = page.content.decode() if page.status_code == 200 else ""
    assert ('id="cw-form-open_notice"' in html) is (role in MAY)
    assert ('id="cw-form-refer_poor_handling"' in html) is (role in MAY)
    if role in MAY:
        return
    # A forged post is refused with the reason; nothing is written.
    response = client.post(reverse("admin:casework_case_act", args=[case.pk, "open_notice"]),
                           {"content": "伪造", "answer_days": "2", "case_version": case_version(case=case)},
                           follow=True)
    assert not SupervisionNotice.objects.filter(case=case).exists()
    if response.status_code == 200 and role != "none":
        assert "权限" in response.content.decode()


def test_a_refusal_says_why_and_keeps_the_typed_statement(client, bureau):
    case = bureau.case_in(State.HANDLING)
    client.force_login(bureau.leader)
    url = reverse("admin:casework_case_act", args=[case.pk, "refer_poor_handling"])
    page = client.post(url, {"poor_reason": "", "statement": "三次答复均未回应诉求", "case_version": case_version(case=case)},
                       follow=True)
    html = page.content.decode()
    assert "办理不力事由" in html and "三次答复均未回应诉求" in html
    assert not DisciplineReferral.objects.filter(case=case).exists()


def test_no_notice_on_a_case_that_is_not_active(bureau):
    case = bureau.case_in(State.REPLIED)
    assert not supervision.may_open_notice(user=bureau.dispatcher, case=case)
    with pytest.raises(supervision.SupervisionRefused):
        supervision.supervision_notice_open(case=case, acting_user=bureau.dispatcher, content="x", answer_days=2)


# ---------------------------------------------------------------- deadlines, e-mail, events


def test_the_answer_deadline_counts_on_the_addressed_units_own_calendar(bureau, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    case = bureau.case_in(State.HANDLING)
    joint.co_unit_assign(case=case, acting_user=bureau.dispatcher, unit=bureau.unit_b, task="协查", working_days=3)
    UnitCalendarDay.objects.create(unit=bureau.unit_a, date=date(2026, 3, 10), is_workday=False, note="单位调休")
    opened = datetime(2026, 3, 9, 10, 0, tzinfo=SH)  # Monday
    lead, co = supervision.supervision_notice_open(case=case, acting_user=bureau.leader, content="请核实后答复",
                                                   answer_days=2, co_unit_ids=[bureau.unit_b.pk], now=opened)
    assert lead.unit == bureau.unit_a and lead.answer_due_at == datetime(2026, 3, 12, 10, 0, tzinfo=SH)
    assert co.unit == bureau.unit_b and co.to_co_unit and co.answer_due_at == datetime(2026, 3, 11, 10, 0, tzinfo=SH)
    event = CaseEvent.objects.get(case=case, action="supervision_opened")
    assert event.actor == bureau.leader and event.payload["notice_ids"] == [lead.pk, co.pk]
    mails = {n.key: n for n in Notification.objects.filter(key__startswith="notice:")}
    assert set(mails) == {f"notice:{lead.pk}", f"notice:{co.pk}"}
    assert bureau.handler_a.email in mails[f"notice:{lead.pk}"].recipients
    assert bureau.handler_b.email in mails[f"notice:{co.pk}"].recipients
    assert "2026-03-12 10:00" in mails[f"notice:{lead.pk}"].subject
    # The co-unit answers on the same answer page; the lead unit's notice awaits its own answer.
    co.refresh_from_db()
    escalation.supervision_notice_answer(notice=co, acting_user=bureau.handler_b, answer="已协查完毕")
    assert list(notices_for_unit_staff(user=bureau.handler_a)) == [lead]


def test_the_notice_list_shows_each_deadline_red_when_passed(client, bureau):
    case = bureau.case_in(State.HANDLING)
    past = supervision.supervision_notice_open(case=case, acting_user=bureau.dispatcher, content="早已到期",
                                               answer_days=1, now=datetime(2026, 3, 2, 9, 0, tzinfo=SH))[0]
    client.force_login(bureau.dispatcher)
    html = client.get(reverse("admin:casework_supervisionnotice_changelist")).content.decode()
    assert "cw-late" in html and "2026年3月3日 09:00" in html
    assert "人工开具" in html
    past.answered_at = past.opened_at
    past.answer = "已答复"
    past.save()
    html = client.get(reverse("admin:casework_supervisionnotice_changelist")).content.decode()
    assert "cw-late" not in html


def test_a_passed_answer_deadline_feeds_the_unit_notices_rung(bureau):
    refer = EscalationRung.objects.get(level="refer")
    assert refer.unit_open_notices_limit == 2
    first, second = bureau.case_in(State.HANDLING), bureau.case_in(State.HANDLING)
    opened = datetime(2026, 3, 2, 10, 0, tzinfo=SH)  # Monday; due Tuesday 10:00 on unit A's calendar
    for case in (first, second):
        supervision.supervision_notice_open(case=case, acting_user=bureau.dispatcher, content="请答复",
                                            answer_days=1, now=opened)
    from casework import calendar
    cal = calendar.work_calendar()
    before = datetime(2026, 3, 3, 9, 59, tzinfo=SH)
    after = datetime(2026, 3, 3, 10, 1, tzinfo=SH)
    assert escalation.unit_notice_referrals_due(now=before, rung=refer, cal=cal) == []
    due = escalation.unit_notice_referrals_due(now=after, rung=refer, cal=cal)
    assert {c.case_id for c in first.clocks.model.objects.filter(pk__in=due)} == {first.pk, second.pk}
    assert len(due) == 2  # one clock per case
    escalation.escalation_sweep(now=after)  # the set-based sweep takes the rung on them
    assert DisciplineReferral.objects.filter(trigger="unit_notices").count() == 2
    # An answered notice no longer counts.
    third = bureau.case_in(State.HANDLING)
    n = supervision.supervision_notice_open(case=third, acting_user=bureau.dispatcher, content="请答复",
                                            answer_days=1, now=opened)[0]
    escalation.supervision_notice_answer(notice=n, acting_user=bureau.handler_a, answer="已办")
    assert escalation.unit_notice_referrals_due(now=after, rung=refer, cal=cal) == []


# ---------------------------------------------------------------- 办理不力 referrals


def test_a_unit_referral_freezes_the_snapshot_of_every_case_and_reaches_the_supervisors(bureau):
    main, other = bureau.case_in(State.HANDLING), bureau.case_in(State.REPLIED)
    elsewhere = bureau.case_in(State.HANDLING, unit=bureau.unit_b)
    with pytest.raises(supervision.SupervisionRefused):
        supervision.referral_poor_handling(case=main, acting_user=bureau.leader, reason=reason(),
                                           statement="x", other_case_ids=[elsewhere.pk])
    referral = supervision.referral_poor_handling(
        case=main, acting_user=bureau.leader, reason=reason("推诿扯皮"), statement="多次推诿,群众反复投诉",
        other_case_ids=[other.pk])
    assert referral.unit == bureau.unit_a and referral.poor_reason.name == "推诿扯皮"
    assert set(ReferralCase.objects.filter(referral=referral).values_list("case_id", flat=True)) == {main.pk, other.pk}
    snap = referral.snapshot
    assert snap["reference"] == main.reference and [e["action"] for e in snap["timeline"]][:2] == ["register", "dispatch"]
    assert snap["cases_concerned"][0]["reference"] == other.reference
    assert snap["poor_handling"]["statement"] == "多次推诿,群众反复投诉"
    for case in (main, other):
        assert CaseEvent.objects.filter(case=case, action="referral_poor_handling",
                                        payload__referral_id=referral.pk).exists()
    note = Notification.objects.get(key=f"referral:{referral.pk}")
    assert note.recipients == [bureau.supervisor.email] and "推诿扯皮" in note.subject
    assert "多次推诿" in note.body


def test_a_referral_is_read_only_in_the_admin(client, bureau):
    case = bureau.case_in(State.HANDLING)
    referral = supervision.referral_poor_handling(case=case, acting_user=bureau.leader, reason=reason(), statement="敷衍")
    client.force_login(bureau.supervisor)
    page = client.get(reverse("admin:casework_disciplinereferral_change", args=[referral.pk]))
    html = page.content.decode()
    assert page.status_code == 200 and "敷衍塞责" in html and "办理不力" in html
    assert 'name="statement"' not in html and 'name="_save"' not in html
    listing = client.get(reverse("admin:casework_disciplinereferral_changelist")).content.decode()
    assert "办理不力" in listing and "人工开具" in listing


# ---------------------------------------------------------------- quality rungs


def _send_back_three_times(bureau, case):
    for i in range(3):
        services.draft_save(case=case, acting_user=bureau.handler_a, handling_report="已核实",
                            reply_text=f"您好,第{i + 1}稿。")
        services.case_submit_feedback(case=case, acting_user=bureau.handler_a)
        case = services.case_office_send_back(case=case, acting_user=bureau.reviewer, reason=f"第{i + 1}次发回")
    return case


def _reopen_after_unsatisfied(bureau, case, times):
    for _ in range(times):
        services.case_record_follow_up(case=case, acting_user=bureau.dispatcher, result="unsatisfied")
        case = services.case_reopen(case=case, acting_user=bureau.dispatcher, reason="群众不满意")
        services.draft_save(case=case, acting_user=bureau.handler_a, handling_report="已重新核实",
                            reply_text="您好,重办答复。")
        services.case_submit_feedback(case=case, acting_user=bureau.handler_a)
        case = services.case_office_approve(case=case, acting_user=bureau.reviewer)
        case = services.case_leader_approve(case=case, acting_user=bureau.leader)
        case = services.case_publish_reply(case=case, acting_user=bureau.dispatcher, where="问政西地省")
    return case


def test_a_send_back_rung_opens_a_quality_notice_once_per_round(bureau):
    rung = QualityRung.objects.get(kind="send_backs")
    case = _send_back_three_times(bureau, bureau.case_in(State.HANDLING))
    first = quality.quality_sweep()
    assert first == {"quality_send_backs": 1}
    step = QualityStep.objects.get(rung=rung, case=case)
    assert (step.round, step.count, step.status) == (1, 3, "notice")
    assert step.notice.origin == "quality" and step.notice.answer_due_at is not None
    assert Notification.objects.filter(key=f"notice:{step.notice.pk}").exists()
    assert quality.quality_sweep() == {}


def test_the_reply_untrue_rung_proposes_a_referral_confirmed_by_the_office(bureau, client):
    case = bureau.case_in(State.REPLIED)
    services.case_record_follow_up(case=case, acting_user=bureau.dispatcher, result="unsatisfied",
                                   reply_untrue=True, note="群众称民警未上门")
    assert quality.quality_sweep() == {"quality_reply_untrue": 1}
    step = QualityStep.objects.get(case=case, rung__kind="reply_untrue")
    assert step.status == "proposed" and step.referral is None
    assert bureau.dispatcher.email in Notification.objects.get(key=f"quality:{step.pk}").recipients
    # The office confirms on the case page.
    client.force_login(bureau.reviewer)
    page = client.get(reverse("admin:casework_case_change", args=[case.pk])).content.decode()
    assert 'id="cw-form-decide_proposal"' in page
    done = client.post(reverse("admin:casework_case_act", args=[case.pk, "decide_proposal"]),
                       {"step": str(step.pk), "decision": "confirm", "note": "核实答复不实,移交",
                        "case_version": case_version(case=Case.objects.get(pk=case.pk))}, follow=True)
    assert "已确认移交纪检督察" in done.content.decode(), [str(m) for m in done.context["messages"]]
    step.refresh_from_db()
    assert step.status == "confirmed" and step.decided_by == bureau.reviewer
    referral = step.referral
    assert (referral.kind, referral.origin, referral.poor_reason.name) == ("poor_handling", "quality", "答复不实")
    assert referral.statement == "核实答复不实,移交"
    with pytest.raises(supervision.SupervisionRefused):
        supervision.quality_proposal_decide(step=step, acting_user=bureau.dispatcher, confirm=False, note="x")


def test_a_proposed_referral_refused_needs_a_reason_and_makes_no_referral(bureau):
    case = _reopen_after_unsatisfied(bureau, bureau.case_in(State.REPLIED), 2)
    services.case_record_follow_up(case=case, acting_user=bureau.dispatcher, result="unsatisfied")
    case = services.case_reopen(case=case, acting_user=bureau.dispatcher, reason="仍不满意")
    assert case.handling_round == 4
    quality.quality_sweep()
    step = QualityStep.objects.get(case=case, rung__kind="reopened_unsatisfied")
    assert (step.round, step.count) == (4, 3)
    with pytest.raises(supervision.SupervisionRefused):
        supervision.quality_proposal_decide(step=step, acting_user=bureau.dispatcher, confirm=False, note=" ")
    with pytest.raises(PermissionDenied):
        supervision.quality_proposal_decide(step=step, acting_user=bureau.handler_a, confirm=False, note="不移交")
    supervision.quality_proposal_decide(step=step, acting_user=bureau.dispatcher, confirm=False,
                                        note="群众诉求超出政策范围,单位已尽责")
    step.refresh_from_db()
    assert step.status == "refused" and step.referral is None and step.decision_note.startswith("群众诉求")
    assert not DisciplineReferral.objects.filter(case=case).exists()
    assert CaseEvent.objects.filter(case=case, action="quality_proposal_decided", payload__confirmed=False).exists()


def test_the_celery_escalation_task_runs_the_quality_rungs(bureau, settings):
    from casework.tasks import escalation_sweep

    case = _send_back_three_times(bureau, bureau.case_in(State.HANDLING))
    result = escalation_sweep.apply().get()
    assert result.get("quality_send_backs") == 1
    assert QualityStep.objects.filter(case=case).count() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_each_quality_rung_fires_once_per_case_and_round_under_two_concurrent_sweeps(bureau):
    send_backs = _send_back_three_times(bureau, bureau.case_in(State.HANDLING))
    reopened = _reopen_after_unsatisfied(bureau, bureau.case_in(State.REPLIED), 2)
    untrue = bureau.case_in(State.REPLIED)
    services.case_record_follow_up(case=untrue, acting_user=bureau.dispatcher, result="satisfied", reply_untrue=True)
    now = datetime.now(tz=SH)
    results = run_together(lambda: quality.quality_sweep(now=now), lambda: quality.quality_sweep(now=now))
    assert all(kind == "ok" for kind, _ in results), results
    totals = {}
    for _, taken in results:
        for k, v in taken.items():
            totals[k] = totals.get(k, 0) + v
    assert totals == {"quality_send_backs": 1, "quality_reopened_unsatisfied": 1, "quality_reply_untrue": 1}
    rows = list(QualityStep.objects.values_list("rung__kind", "case_id", "round"))
    assert sorted(rows) == sorted([("send_backs", send_backs.pk, 1), ("reopened_unsatisfied", reopened.pk, 3),
                                   ("reply_untrue", untrue.pk, 1)])
    assert SupervisionNotice.objects.filter(origin="quality").count() == 1
    assert CaseEvent.objects.filter(action="quality_rung").count() == 3
    assert Notification.objects.filter(key__startswith="quality:").count() == 2


# ---------------------------------------------------------------- assessment


def test_manual_notices_and_poor_handling_referrals_deduct_their_own_points(bureau, client):
    case = bureau.case_in(State.HANDLING)
    other = bureau.case_in(State.HANDLING)
    supervision.supervision_notice_open(case=case, acting_user=bureau.dispatcher, content="请整改", answer_days=2)
    supervision.referral_poor_handling(case=case, acting_user=bureau.leader, reason=reason(), statement="敷衍",
                                       other_case_ids=[other.pk])
    weights = AssessmentWeights.objects.create(per_supervision_notice=0, per_referral=0, per_extension=0,
                                               per_manual_notice=4, per_poor_handling_referral=10)
    year = timezone_year()
    period = Period.year(year)
    figures = assessment_selectors.assessment_figures(period=period)
    assert figures["manual_notices"] == {bureau.unit_a.pk: 1}
    assert figures["poor_handling_referrals"] == {bureau.unit_a.pk: 1}
    assert figures["supervision_notices"][bureau.unit_a.pk] >= 1
    rows = assessment_selectors.assessment_annual(period=period, weights=weights)
    row = next(r for r in rows if r.unit == bureau.unit_a)
    base = assessment_selectors.assessment_score(
        values={**row.values, "manual_notices": 0, "poor_handling_referrals": 0, "supervision_notices": 0,
                "referrals": 0}, weights=weights)
    assert row.score == pytest.approx(max(base - 14, 0))
    # Drill-down: the referral reaches both cases concerned; the notice its case.
    client.force_login(bureau.dispatcher)
    url = reverse("assessment:report_cases")
    page = client.get(url, {"year": year, "metric": "poor_handling_referrals", "part": "den",
                            "unit": bureau.unit_a.pk}).content.decode()
    assert case.reference in page and other.reference in page
    page = client.get(url, {"year": year, "metric": "manual_notices", "part": "den",
                            "unit": bureau.unit_a.pk}).content.decode()
    assert case.reference in page and other.reference not in page
    report = client.get(reverse("assessment:report"), {"year": year}).content.decode()
    assert "其中人工督办单" in report and "其中办理不力移交" in report
    # xlsx: the two columns, with the unit's figures.
    xlsx = client.get(reverse("assessment:report_export"), {"year": year})
    sheet = load_workbook(BytesIO(xlsx.content)).worksheets[0]
    headers = [c.value for c in sheet[4]]
    unit_row = next(r for r in sheet.iter_rows(min_row=5, values_only=True) if r[1] == bureau.unit_a.name)
    assert unit_row[headers.index("其中人工督办单")] == 1
    assert unit_row[headers.index("其中办理不力移交")] == 1
    drill = client.get(reverse("assessment:report_export"), {"year": year, "metric": "poor_handling_referrals",
                                                             "part": "den", "unit": bureau.unit_a.pk})
    refs = [r[0] for r in load_workbook(BytesIO(drill.content))["案件明细"].iter_rows(min_row=2, values_only=True)]
    assert {case.reference, other.reference} <= set(refs)


def timezone_year():
    from django.utils import timezone

    return timezone.localdate().year


def test_the_weights_admin_edits_the_new_deductions(client, django_user_model):
    root = django_user_model.objects.create_superuser("root2", "r2@bureau.invalid", "pw")
    client.force_login(root)
    page = client.get(reverse("admin:assessment_assessmentweights_add")).content.decode()
    assert 'name="per_manual_notice"' in page and 'name="per_poor_handling_referral"' in page


def test_mail_is_sent_once_after_commit(bureau, eager_celery, django_capture_on_commit_callbacks):
    case = bureau.case_in(State.HANDLING)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        supervision.supervision_notice_open(case=case, acting_user=bureau.dispatcher, content="请整改", answer_days=2)
    assert len([m for m in mail.outbox if "督办单" in m.subject]) == 1


def test_the_quality_sweep_with_nothing_due_runs_a_fixed_number_of_queries(bureau, django_assert_max_num_queries):
    for state in (State.HANDLING, State.REPLIED, State.OFFICE_REVIEW):
        bureau.case_in(state)
    with django_assert_max_num_queries(1 + QualityRung.objects.filter(is_active=True).count()):
        assert quality.quality_sweep() == {}


def test_the_case_page_offers_the_answer_link_only_to_the_supervised_unit(client, bureau):
    case = bureau.case_in(State.HANDLING)
    notice = supervision.supervision_notice_open(case=case, acting_user=bureau.leader, content="请答复", answer_days=2)[0]
    link = reverse("admin:casework_supervisionnotice_answer", args=[notice.pk])
    for user, shown in ((bureau.handler_a, True), (bureau.leader, False), (bureau.dispatcher, False)):
        client.force_login(user)
        assert (link in client.get(reverse("admin:casework_case_change", args=[case.pk])).content.decode()) is shown
