"""The escalation ladder as data (DESIGN.md §4): rungs, timing under a frozen clock, referrals."""

from datetime import datetime
from io import StringIO
from zoneinfo import ZoneInfo

from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.urls import reverse
import pytest
import time_machine

from casework import escalation
from casework.models import (
    CaseEvent,
    Clock,
    DisciplineReferral,
    EscalationRung,
    EscalationStep,
    Notification,
    State,
    SupervisionNotice,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


def bj(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


@pytest.fixture
def seeded(db):
    call_command("calendar_seed", "--from-year", "2025", "--to-year", "2026", stdout=StringIO(),
                 stderr=StringIO())


MONDAY_10 = bj(2026, 3, 2, 10, 0)


def handling_case(bureau, at=MONDAY_10, **fields):
    """A consultation dispatched and signed for at ``at``: reply due 3 working days later."""
    with time_machine.travel(at, tick=False):
        return bureau.case_in(State.HANDLING, submitted_at=at, **fields)


def sweep_at(moment):
    """Run the sweep the way beat does: no argument, the (frozen) current time."""
    with time_machine.travel(moment, tick=False):
        return escalation.escalation_sweep()


def levels(case):
    return list(
        EscalationStep.objects.filter(case=case).order_by("happened_at").values_list("level", flat=True)
    )


def test_the_default_ladder_is_seeded_as_data_from_the_design(db):
    # The 网评办's own 交办 rungs are tested in tests/test_office_speed.py.
    rungs = {r.level: r for r in EscalationRung.objects.exclude(level__startswith="office_")}
    assert [(r.level, r.threshold_days) for r in sorted(rungs.values(), key=lambda r: r.threshold_days)] == [
        ("remind", -1), ("urge", 0), ("escalate", 3), ("refer", 5)
    ]
    assert rungs["urge"].opens_notice and rungs["urge"].notify_unit_head
    assert rungs["escalate"].requires == rungs["urge"] and rungs["escalate"].notify_leaders
    assert rungs["refer"].opens_referral and rungs["refer"].unit_open_notices_limit == 2
    assert rungs["refer"].requires == rungs["escalate"] and rungs["refer"].notify_supervisors


def test_each_level_fires_once_at_its_moment_with_a_frozen_clock(bureau, seeded):
    case = handling_case(bureau)  # reply due Thu 2026-03-05 10:00
    timeline = [
        (bj(2026, 3, 4, 9, 59), []),
        (bj(2026, 3, 4, 10, 0), ["remind"]),
        (bj(2026, 3, 5, 9, 59), ["remind"]),
        (bj(2026, 3, 5, 9, 59, 59), ["remind"]),
        (bj(2026, 3, 5, 10, 0), ["remind", "urge"]),  # the deadline is reached
        (bj(2026, 3, 7, 12, 0), ["remind", "urge"]),  # Saturday: no working time passes
        (bj(2026, 3, 10, 9, 59), ["remind", "urge"]),
        (bj(2026, 3, 10, 10, 0), ["remind", "urge", "escalate"]),  # +3 working days
        (bj(2026, 3, 12, 9, 59), ["remind", "urge", "escalate"]),
        (bj(2026, 3, 12, 10, 0), ["remind", "urge", "escalate", "refer"]),  # +5
        (bj(2026, 4, 30, 10, 0), ["remind", "urge", "escalate", "refer"]),
    ]
    for moment, expected in timeline:
        sweep_at(moment)
        sweep_at(moment)  # a second beat at the same moment changes nothing
        assert levels(case) == expected, moment
    steps = {s.level: s for s in EscalationStep.objects.filter(case=case)}
    assert steps["remind"].happened_at == bj(2026, 3, 4, 10, 0)
    assert steps["refer"].happened_at == bj(2026, 3, 12, 10, 0)
    assert SupervisionNotice.objects.filter(case=case).count() == 1
    assert DisciplineReferral.objects.filter(case=case).count() == 1
    assert Notification.objects.filter(case=case, key__startswith="digest:").count() == 4
    assert CaseEvent.objects.filter(case=case, action__startswith="escalation_").count() == 4


def test_an_edited_rung_changes_when_and_whom_the_ladder_notifies(bureau, seeded):
    EscalationRung.objects.filter(level="remind").update(is_active=False)
    EscalationRung.objects.filter(level="escalate").update(threshold_days=1, notify_supervisors=True)
    case = handling_case(bureau)
    assert sweep_at(bj(2026, 3, 4, 10, 0)) == {}
    assert sweep_at(bj(2026, 3, 5, 10, 1)) == {"urge": 1}
    assert sweep_at(bj(2026, 3, 6, 10, 1)) == {"escalate": 1}
    mail = Notification.objects.get(case=case, digest_lines__step=EscalationStep.objects.get(level='escalate'))
    assert bureau.supervisor.email in mail.recipients and bureau.leader.email in mail.recipients


def test_a_rung_on_the_handling_clock_can_be_added_as_data(bureau, seeded):
    EscalationRung.objects.create(level="handling_late", name="反馈超期提醒", clocks=[Clock.HANDLING],
                                  threshold_days=0, notify_handlers=True)
    case = handling_case(bureau)  # handling to feedback: 1 working day → Tue 03-03 10:00
    assert sweep_at(bj(2026, 3, 3, 10, 1)) == {"handling_late": 1}
    step = EscalationStep.objects.get(case=case, level="handling_late")
    assert step.clock == Clock.HANDLING and step.due_at == bj(2026, 3, 3, 10, 0)


def test_a_unit_with_two_unanswered_notices_is_referred_for_each_of_them(bureau, seeded):
    first = handling_case(bureau)
    second = handling_case(bureau)
    other_unit = handling_case(bureau, unit=bureau.unit_b)
    assert sweep_at(bj(2026, 3, 5, 10, 1)) == {"urge": 3}
    # Two working days later the notices of unit A are still unanswered; unit B answered its own.
    SupervisionNotice.objects.filter(case=other_unit).update(answer="已办理", answered_at=bj(2026, 3, 6, 9, 0))
    assert sweep_at(bj(2026, 3, 9, 10, 0)) == {}  # open for 1 working day only
    assert sweep_at(bj(2026, 3, 9, 10, 2)) == {"refer": 2}
    referrals = DisciplineReferral.objects.order_by("case_id")
    assert [r.case_id for r in referrals] == [first.pk, second.pk]
    assert all(r.trigger == "unit_notices" and "督办单" in r.reason for r in referrals)
    assert not DisciplineReferral.objects.filter(case=other_unit).exists()
    # The ladder's own refer step on those clocks is the same step: it never happens twice.
    assert sweep_at(bj(2026, 3, 20, 10, 0)) == {"escalate": 3}
    assert DisciplineReferral.objects.count() == 2 + 0
    sweep_at(bj(2026, 3, 20, 10, 0))
    assert DisciplineReferral.objects.count() == 3  # unit B's case climbs the ladder normally


def test_the_escalation_email_is_html_and_text_with_the_link_and_escaped_citizen_text(
    bureau, seeded, settings
):
    case = handling_case(bureau, subject="<script>alert(1)</script> 噪音扰民", body="<b>夜间施工</b>")
    sweep_at(bj(2026, 3, 5, 10, 1))
    mail = Notification.objects.get(case=case, key__startswith="digest:")
    link = settings.SITE_URL + reverse("admin:casework_case_change", args=[case.pk])
    assert link in mail.body and f'href="{link}"' in mail.html_body
    assert "<script>" not in mail.html_body and "&lt;script&gt;" in mail.html_body
    assert "&lt;b&gt;夜间施工" in mail.html_body
    assert "<script>alert(1)</script>" in mail.body  # the text part is plain text
    for part in (mail.body, mail.html_body):
        assert bureau.unit_a.name in part and "2026-03-05 10:00" in part and "办理经过" in part


def test_the_referral_email_lets_a_supervisor_act_from_it_alone(bureau, seeded):
    case = handling_case(bureau)
    for moment in [bj(2026, 3, 5, 10, 1), bj(2026, 3, 10, 10, 1), bj(2026, 3, 12, 10, 1)]:
        sweep_at(moment)
    referral = DisciplineReferral.objects.get(case=case)
    mail = Notification.objects.get(digest_lines__step_id=referral.step_id)
    assert mail.recipients == [bureau.supervisor.email]
    outcome_url = reverse("admin:casework_disciplinereferral_change", args=[referral.pk])
    assert outcome_url in mail.body and outcome_url in mail.html_body
    assert "已超期 5 个工作日" in mail.body
    assert "签收" in mail.body and "催办" in mail.body  # what was done so far


def test_a_supervisor_records_the_outcome_once_and_the_referral_stays_as_taken(bureau, seeded, client):
    case = handling_case(bureau)
    for moment in [bj(2026, 3, 5, 10, 1), bj(2026, 3, 10, 10, 1), bj(2026, 3, 12, 10, 1)]:
        sweep_at(moment)
    referral = DisciplineReferral.objects.get(case=case)
    snapshot = dict(referral.snapshot)
    assert list(escalation.referrals_open()) == [referral]
    with pytest.raises(PermissionDenied):
        escalation.referral_record_outcome(referral=referral, acting_user=bureau.handler_a,
                                           kind="talk", note="约谈")
    client.force_login(bureau.supervisor)
    listing = client.get(reverse("admin:casework_disciplinereferral_changelist") + "?open=yes")
    assert listing.status_code == 200 and case.reference in listing.content.decode()
    url = reverse("admin:casework_disciplinereferral_outcome", args=[referral.pk])
    response = client.post(url, {"kind": "talk", "note": "已约谈雨湖分局分管负责人"})
    assert response.status_code == 302
    referral.refresh_from_db()
    assert referral.outcome_kind == "talk" and referral.outcome_by == bureau.supervisor
    assert referral.snapshot == snapshot
    with pytest.raises(escalation.ReferralOutcomeRefused):
        escalation.referral_record_outcome(referral=referral, acting_user=bureau.supervisor,
                                           kind="no_accountability", note="改判")
    assert list(escalation.referrals_open()) == []
    assert case.events.filter(action="referral_outcome").count() == 1


def test_handlers_cannot_open_the_referral_outcome_form(bureau, seeded, client):
    case = handling_case(bureau)
    for moment in [bj(2026, 3, 5, 10, 1), bj(2026, 3, 10, 10, 1), bj(2026, 3, 12, 10, 1)]:
        sweep_at(moment)
    referral = DisciplineReferral.objects.get(case=case)
    client.force_login(bureau.handler_a)
    response = client.post(reverse("admin:casework_disciplinereferral_outcome", args=[referral.pk]),
                           {"kind": "talk", "note": "x"})
    assert response.status_code in (403, 404)
    referral.refresh_from_db()
    assert referral.outcome_recorded_at is None
