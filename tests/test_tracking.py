"""跟踪督办 (issue 13 §4): a referral tracked through rectification rounds, reminders and its outcome.

The cycle runs on a real ladder referral, through the services and the real beat task
(``casework.rectification_reminders``), with the outbox e-mails sent by the Celery task in-process.
"""

from datetime import date
import re

from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django_celery_beat.models import PeriodicTask
import pytest
import time_machine

from accounts import roles
from casework import tasks, tracking
from casework.defaults import RECTIFICATION_TASK_NAME
from casework.escalation import ReferralOutcomeRefused
from casework.models import (
    DisciplineReferral,
    RectificationReminder,
    RectificationRound,
    UnitCalendarDay,
)
from config.celery import app as celery_app
from tests.factories import make_user
from tests.tracking_helpers import bj, calendar_seed, ladder_referral


@pytest.fixture
def referral(bureau, django_capture_on_commit_callbacks):
    calendar_seed()
    return ladder_referral(bureau, capture=django_capture_on_commit_callbacks)


def run_task(now, capture):
    """Run the beat task at ``now`` the way the worker does (Celery ``apply``), e-mails sent after commit."""
    with time_machine.travel(now, tick=False), capture(execute=True):
        return tasks.rectification_reminders.apply().get()


def test_the_reminder_task_is_registered_and_scheduled_by_beat(db):
    assert "casework.rectification_reminders" in celery_app.tasks
    entry = PeriodicTask.objects.get(name=RECTIFICATION_TASK_NAME)
    assert entry.task == "casework.rectification_reminders" and entry.enabled
    assert entry.interval.every == 30


def test_the_whole_cycle_with_reminders_a_second_round_and_the_outcome(
    bureau, referral, eager_celery, mailoutbox, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    mailoutbox.clear()
    case = referral.case

    # Round 1, set Monday 03-16 10:00 for 3 working days: due Thursday 03-19 10:00 on A's calendar.
    with time_machine.travel(bj(2026, 3, 16, 10, 0), tick=False), capture(execute=True):
        first = tracking.rectification_set(referral=referral, acting_user=bureau.supervisor,
                                           requirement="请报送超期原因及整改措施。", working_days=3)
    assert (first.number, first.due_at) == (1, bj(2026, 3, 19, 10, 0))
    assert len(mailoutbox) == 1
    assert sorted(mailoutbox[0].to) == sorted([bureau.handler_a.email, bureau.head_a.email])
    assert reverse("admin:casework_rectificationround_answer", args=[first.pk]) in mailoutbox[0].body
    assert "2026-03-19 10:00" in mailoutbox[0].body

    # More than one working day left: the task sends nothing.
    assert run_task(bj(2026, 3, 17, 9, 0), capture) == {"due_soon": 0, "overdue": 0}
    # One working day left: one 即将到期提醒 to the unit, once.
    assert run_task(bj(2026, 3, 18, 10, 0), capture) == {"due_soon": 1, "overdue": 0}
    assert run_task(bj(2026, 3, 18, 16, 0), capture) == {"due_soon": 0, "overdue": 0}
    soon = mailoutbox[1]
    assert sorted(soon.to) == sorted([bureau.handler_a.email, bureau.head_a.email])
    assert "提醒" in soon.subject and case.reference in soon.subject
    # Past the deadline: one 逾期提醒, the supervisors copied, once.
    assert run_task(bj(2026, 3, 19, 10, 1), capture) == {"due_soon": 0, "overdue": 1}
    assert run_task(bj(2026, 3, 20, 9, 0), capture) == {"due_soon": 0, "overdue": 0}
    late = mailoutbox[2]
    assert bureau.supervisor.email in late.to and bureau.handler_a.email in late.to
    assert "逾期" in late.subject
    assert len(mailoutbox) == 3
    assert list(first.reminders.values_list("kind", flat=True).order_by("sent_at")) == [
        RectificationReminder.Kind.DUE_SOON, RectificationReminder.Kind.OVERDUE]

    # The unit answers (late); the supervisors are told; no reminder after that.
    with time_machine.travel(bj(2026, 3, 20, 11, 0), tick=False), capture(execute=True):
        tracking.rectification_answer(rnd=first, acting_user=bureau.handler_a, answer="已查明原因并整改。")
    assert bureau.supervisor.email in mailoutbox[3].to
    assert "已报送" in mailoutbox[3].subject

    # Round 2 (the report was not enough), answered in time: no reminder at all.
    with time_machine.travel(bj(2026, 3, 23, 9, 0), tick=False), capture(execute=True):
        second = tracking.rectification_set(referral=referral, acting_user=bureau.supervisor,
                                            requirement="请补充对责任人的处理情况。", working_days=2)
    assert (second.number, second.due_at) == (2, bj(2026, 3, 25, 9, 0))
    with time_machine.travel(bj(2026, 3, 23, 15, 0), tick=False), capture(execute=True):
        tracking.rectification_answer(rnd=second, acting_user=bureau.handler_a, answer="已对责任民警批评教育。")
    assert run_task(bj(2026, 3, 26, 9, 0), capture) == {"due_soon": 0, "overdue": 0}
    assert RectificationReminder.objects.filter(round=second).count() == 0

    # The matter closes with the outcome; nothing more may be set or answered.
    with time_machine.travel(bj(2026, 3, 27, 10, 0), tick=False):
        closed = tracking.referral_close(referral=referral, acting_user=bureau.supervisor,
                                         kind=DisciplineReferral.Outcome.TALK, note="对单位负责人约谈。")
    assert closed.outcome_kind == "talk" and closed.outcome_recorded_at == bj(2026, 3, 27, 10, 0)
    with pytest.raises(tracking.TrackingRefused):
        tracking.rectification_set(referral=closed, acting_user=bureau.supervisor, requirement="再报", working_days=2)
    with pytest.raises(ReferralOutcomeRefused):
        tracking.referral_close(referral=closed, acting_user=bureau.supervisor, kind="criticism", note="改")

    # Every step is an audit event of the case, and the referral's timeline tells it in order.
    actions = list(case.events.order_by("seq").values_list("action", flat=True))
    assert actions[-7:] == ["rectification_set", "rectification_reminder", "rectification_reminder",
                            "rectification_answered", "rectification_set", "rectification_answered",
                            "referral_outcome"]
    timeline = tracking.referral_timeline(referral=closed)
    kinds = [e.kind for e in timeline]
    assert kinds[0] == "snapshot" and kinds[-1] == "outcome"
    assert kinds[kinds.index("referral"):] == ["referral", "round", "reminder", "reminder", "answer", "round",
                                               "answer", "outcome"]
    assert [e.at for e in timeline] == sorted(e.at for e in timeline)
    words = " ".join(e.what for e in timeline)
    assert "约谈" in words and "escalation_" not in words and "register" not in words


def test_the_deadline_counts_on_the_referred_units_own_calendar(bureau, referral):
    # Unit A (not the bureau) is off on Tuesday 03-17: 3 working days from Monday end on Friday.
    UnitCalendarDay.objects.create(unit=bureau.unit_a, date=date(2026, 3, 17), is_workday=False, note="单位调休")
    with time_machine.travel(bj(2026, 3, 16, 10, 0), tick=False):
        rnd = tracking.rectification_set(referral=referral, acting_user=bureau.supervisor,
                                         requirement="请报送整改报告。", working_days=3)
    assert rnd.due_at == bj(2026, 3, 20, 10, 0)


def test_bad_input_is_refused_with_a_reason_and_writes_nothing(bureau, referral):
    before = referral.case.events.count()
    for requirement, days in (("", 3), ("   ", 3), ("请报送", 0), ("请报送", 61), ("请报送", "三")):
        with pytest.raises(tracking.TrackingRefused) as refused:
            tracking.rectification_set(referral=referral, acting_user=bureau.supervisor,
                                       requirement=requirement, working_days=days)
        assert str(refused.value)
    rnd = tracking.rectification_set(referral=referral, acting_user=bureau.supervisor, requirement="请报送",
                                     working_days=3)
    with pytest.raises(tracking.TrackingRefused, match="尚未报送"):
        tracking.rectification_set(referral=referral, acting_user=bureau.supervisor, requirement="再一轮",
                                   working_days=3)
    with pytest.raises(tracking.TrackingRefused):
        tracking.rectification_answer(rnd=rnd, acting_user=bureau.handler_a, answer="  ")
    tracking.rectification_answer(rnd=rnd, acting_user=bureau.handler_a, answer="已整改")
    with pytest.raises(tracking.TrackingRefused, match="已报送"):
        tracking.rectification_answer(rnd=rnd, acting_user=bureau.handler_a, answer="再报一次")
    assert RectificationRound.objects.count() == 1
    assert referral.case.events.count() == before + 2


def _users(bureau):
    narrow_supervisor = make_user("supervisor_b", role=roles.SUPERVISOR, unit=bureau.unit_b)
    return {
        "supervisor": bureau.supervisor, "supervisor_of_b_only": narrow_supervisor,
        "dispatcher": bureau.dispatcher, "reviewer": bureau.reviewer, "leader": bureau.leader,
        "handler_a": bureau.handler_a, "head_a_without_role": bureau.head_a, "handler_b": bureau.handler_b,
    }


SETTERS = {"supervisor"}
ANSWERERS = {"handler_a"}


@pytest.mark.parametrize("who", ["supervisor", "supervisor_of_b_only", "dispatcher", "reviewer", "leader",
                                 "handler_a", "head_a_without_role", "handler_b"])
def test_who_may_set_answer_and_close(bureau, referral, who):
    user = _users(bureau)[who]
    if who in SETTERS:
        rnd = tracking.rectification_set(referral=referral, acting_user=user, requirement="请报送", working_days=3)
    else:
        with pytest.raises(PermissionDenied):
            tracking.rectification_set(referral=referral, acting_user=user, requirement="请报送", working_days=3)
        rnd = tracking.rectification_set(referral=referral, acting_user=bureau.supervisor, requirement="请报送",
                                         working_days=3)
    assert tracking.user_may_track(user=user, referral=referral) == (who in SETTERS)
    assert tracking.user_may_answer_round(user=user, rnd=rnd) == (who in ANSWERERS)
    if who in ANSWERERS:
        tracking.rectification_answer(rnd=rnd, acting_user=user, answer="已整改")
    else:
        with pytest.raises(PermissionDenied):
            tracking.rectification_answer(rnd=rnd, acting_user=user, answer="已整改")
    if who in SETTERS:
        tracking.referral_close(referral=referral, acting_user=user, kind="criticism", note="通报")
    else:
        with pytest.raises(PermissionDenied):
            tracking.referral_close(referral=referral, acting_user=user, kind="criticism", note="通报")
        assert DisciplineReferral.objects.get(pk=referral.pk).outcome_recorded_at is None


def test_closing_ends_the_round_still_owed(bureau, referral):
    rnd = tracking.rectification_set(referral=referral, acting_user=bureau.supervisor, requirement="请报送",
                                     working_days=3)
    tracking.referral_close(referral=referral, acting_user=bureau.supervisor, kind="criticism", note="逾期不报")
    rnd.refresh_from_db()
    assert rnd.closed_at is not None and not rnd.is_open
    with pytest.raises(tracking.TrackingRefused):
        tracking.rectification_answer(rnd=rnd, acting_user=bureau.handler_a, answer="补报")
    assert tracking.rectification_reminders_send(now=bj(2026, 12, 1, 10, 0)) == {"due_soon": 0, "overdue": 0}


# ---------------------------------------------------------------- pages: offered only to who may act


def test_the_referral_page_offers_each_action_only_to_who_may_take_it(client, bureau, referral):
    page = reverse("admin:casework_disciplinereferral_change", args=[referral.pk])
    rectify = reverse("admin:casework_disciplinereferral_rectify", args=[referral.pk])
    outcome = reverse("admin:casework_disciplinereferral_outcome", args=[referral.pk])
    client.force_login(bureau.supervisor)
    html = client.get(page).content.decode()
    assert rectify in html and outcome in html
    for user in (bureau.dispatcher, bureau.leader):
        client.force_login(user)
        html = client.get(page).content.decode()
        assert client.get(page).status_code == 200
        assert rectify not in html and outcome not in html
        # Typed at the address anyway: the page says why and keeps the text; nothing is written.
        refused = client.post(rectify, {"requirement": "我写的整改要求", "working_days": 3})
        assert refused.status_code == 403
        body = refused.content.decode()
        assert "只有纪检督察" in body and "我写的整改要求" in body and 'id="content-main"' in body
        refused = client.post(outcome, {"kind": "talk", "note": "我写的处理意见"})
        assert refused.status_code == 403 and "我写的处理意见" in refused.content.decode()
    assert not RectificationRound.objects.exists()
    assert DisciplineReferral.objects.get(pk=referral.pk).outcome_recorded_at is None


def test_rounds_set_and_answered_through_the_pages_and_a_refused_answer_keeps_its_text(client, bureau, referral):
    client.force_login(bureau.supervisor)
    rectify = reverse("admin:casework_disciplinereferral_rectify", args=[referral.pk])
    form = client.get(rectify).context["form"]
    data = {**{k: v for k, v in form.initial.items() if k.startswith("_") or k == "version"},
            "requirement": "请报送整改报告", "working_days": "4"}
    data.update({name: form[name].value() for name in form.fields if name not in data and form[name].value() is not None})
    data["requirement"], data["working_days"] = "请报送整改报告", "4"
    response = client.post(rectify, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    rnd = RectificationRound.objects.get(referral=referral)
    assert rnd.working_days == 4

    answer = reverse("admin:casework_rectificationround_answer", args=[rnd.pk])
    client.force_login(bureau.handler_b)  # another district: the round is not even there
    assert client.get(answer).status_code == 404
    client.force_login(bureau.dispatcher)  # sees the case, does not answer for the district
    assert answer not in client.get(reverse("admin:casework_rectificationround_change", args=[rnd.pk])).content.decode()
    refused = client.post(answer, {"answer": "网评办代写的报告"})
    assert refused.status_code == 403
    assert "网评办代写的报告" in refused.content.decode() and "只有被移交单位" in refused.content.decode()
    client.force_login(bureau.handler_a)
    assert answer in client.get(reverse("admin:casework_rectificationround_change", args=[rnd.pk])).content.decode()
    form = client.get(answer).context["form"]
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data["answer"] = "已完成整改"
    assert client.post(answer, data).status_code == 302
    rnd.refresh_from_db()
    assert (rnd.answer, rnd.answered_by) == ("已完成整改", bureau.handler_a)


def test_the_outcome_has_no_preset_and_a_missing_choice_keeps_the_note(client, bureau, referral):
    client.force_login(bureau.supervisor)
    url = reverse("admin:casework_disciplinereferral_outcome", args=[referral.pk])
    page = client.get(url)
    form = page.context["form"]
    assert form["kind"].value() in (None, "")
    html = page.content.decode()
    select = re.search(r'<select name="kind"[^>]*>(.*?)</select>', html, re.S).group(1)
    assert "selected" not in select.split("</option>", 1)[1]  # only the blank 请选择 may be selected
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data.update({"kind": "", "note": "经查属实,予以约谈"})
    refused = client.post(url, data)
    assert refused.status_code == 200
    assert "经查属实,予以约谈" in refused.content.decode()
    assert DisciplineReferral.objects.get(pk=referral.pk).outcome_recorded_at is None
    data["kind"] = "talk"
    assert client.post(url, data).status_code == 302
    assert DisciplineReferral.objects.get(pk=referral.pk).outcome_kind == "talk"


def test_the_notice_answer_is_offered_only_to_the_supervised_unit(client, bureau, referral):
    notice = referral.case.supervision_notices.get()
    detail = reverse("admin:casework_supervisionnotice_change", args=[notice.pk])
    answer = reverse("admin:casework_supervisionnotice_answer", args=[notice.pk])
    case_page = reverse("admin:casework_case_change", args=[referral.case.pk])
    for user in (bureau.dispatcher, bureau.reviewer, bureau.leader, bureau.supervisor):
        client.force_login(user)
        assert answer not in client.get(detail).content.decode()
        assert answer not in client.get(case_page).content.decode()
        refused = client.post(answer, {"answer": "代单位答复的内容"})
        assert refused.status_code == 403
        assert "代单位答复的内容" in refused.content.decode() and "只有被督办单位" in refused.content.decode()
    client.force_login(bureau.handler_a)
    assert answer in client.get(detail).content.decode()
    assert answer in client.get(case_page).content.decode()
    notice.refresh_from_db()
    assert notice.answered_at is None
