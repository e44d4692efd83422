"""The escalation ladder v1 (DESIGN.md §4): deadlines, 督办单, referrals, e-mails, exactly once."""

from datetime import datetime
from io import StringIO
import threading
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
import pytest
import time_machine

from casework import escalation, services
from casework.models import (
    Clock,
    DigestLine,
    DisciplineReferral,
    EscalationLevel,
    EscalationStep,
    Notification,
    State,
    SupervisionNotice,
)
from casework.selectors import case_audit_verify
from casework.tasks import notification_send

SHANGHAI = ZoneInfo("Asia/Shanghai")

# A consultation dispatched Monday 2026-03-02 10:00 (no holiday that month): sign for by Tue 03-03
# 10:00 (1 working day), reply by Thu 03-05 10:00 (3 working days).
DISPATCHED_AT = datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI)
SIGN_FOR_DUE = datetime(2026, 3, 3, 10, 0, tzinfo=SHANGHAI)
REPLY_DUE = datetime(2026, 3, 5, 10, 0, tzinfo=SHANGHAI)


def bj(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


@pytest.fixture
def calendar_2026(db):
    call_command("calendar_seed", "--from-year", "2018", "--to-year", "2026", stdout=StringIO(),
                 stderr=StringIO())


@pytest.fixture
def eager(settings):
    """Run Celery tasks in-process (the outbox e-mail is sent by ``notification_send``)."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CELERY_TASK_EAGER_PROPAGATES = True


def case_at(bureau, state, at=DISPATCHED_AT, **fields):
    """Walk a case to ``state`` with the clock frozen at ``at`` (dispatch time = ``at``)."""
    with time_machine.travel(at, tick=False):
        return bureau.case_in(state, submitted_at=at, **fields)


def sweep(now, django_capture_on_commit_callbacks):
    """Run one sweep at ``now`` and run its after-commit callbacks (the e-mail tasks)."""
    with django_capture_on_commit_callbacks(execute=True):
        return escalation.escalation_sweep(now=now)


def steps(case, clock=None):
    qs = EscalationStep.objects.filter(case=case)
    if clock:
        qs = qs.filter(clock=clock)
    return sorted(qs.values_list("clock", "level"))


def case_link(case) -> str:
    return settings.SITE_URL + reverse("admin:casework_case_change", args=[case.pk])


def test_dispatch_sets_sign_for_and_reply_deadlines_in_working_days(bureau, calendar_2026):
    case = case_at(bureau, State.DISPATCHED)
    assert case.sign_for_due_at == SIGN_FOR_DUE
    assert case.reply_due_at == REPLY_DUE
    friday = case_at(bureau, State.DISPATCHED, at=bj(2026, 3, 6, 16, 0))
    assert friday.sign_for_due_at == bj(2026, 3, 9, 16, 0)
    assert friday.reply_due_at == bj(2026, 3, 11, 16, 0)


def test_the_ladder_climbs_once_per_level_with_the_right_mails_and_links(
    bureau, calendar_2026, eager, mailoutbox, django_capture_on_commit_callbacks
):
    case = case_at(bureau, State.HANDLING)  # signed for at once: only the reply clock runs
    assert case.reply_due_at == REPLY_DUE

    # More than one working day before the reply deadline: nothing.
    assert sweep(bj(2026, 3, 4, 9, 59), django_capture_on_commit_callbacks) == {}
    assert steps(case) == [] and mailoutbox == []

    # One working day left: a reminder to unit A's handlers only.
    assert sweep(bj(2026, 3, 4, 10, 0), django_capture_on_commit_callbacks) == {"remind": 1}
    assert steps(case) == [(Clock.REPLY, EscalationLevel.REMIND)]
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [bureau.handler_a.email]
    assert "到期提醒" in mailoutbox[0].subject
    assert case_link(case) in mailoutbox[0].body

    # Still before the deadline: nothing new.
    assert sweep(bj(2026, 3, 5, 9, 59), django_capture_on_commit_callbacks) == {}

    # Overdue: one 督办单 and one 催办 mail to the head, the handlers and the 网评办.
    assert sweep(bj(2026, 3, 5, 10, 1), django_capture_on_commit_callbacks) == {"urge": 1}
    notice = SupervisionNotice.objects.get(case=case)
    assert notice.unit == bureau.unit_a
    assert notice.step.level == EscalationLevel.URGE
    assert notice.opened_at == bj(2026, 3, 5, 10, 1)
    assert len(mailoutbox) == 2
    urge = mailoutbox[1]
    assert sorted(urge.to) == sorted([
        bureau.head_a.email, bureau.handler_a.email, bureau.dispatcher.email, bureau.reviewer.email,
    ])
    assert "督办单" in urge.subject and case.reference in urge.subject
    assert case_link(case) in urge.body
    assert "2026-03-05 10:00" in urge.body

    # The same sweep again, and a later one before +3 working days: nothing.
    assert sweep(bj(2026, 3, 5, 10, 1), django_capture_on_commit_callbacks) == {}
    assert sweep(bj(2026, 3, 9, 23, 0), django_capture_on_commit_callbacks) == {}
    assert SupervisionNotice.objects.filter(case=case).count() == 1
    assert len(mailoutbox) == 2

    # +3 working days (Thu → Tue): escalation to the 分管局领导 (and the 网评办).
    assert sweep(bj(2026, 3, 10, 10, 0), django_capture_on_commit_callbacks) == {"escalate": 1}
    assert len(mailoutbox) == 3
    assert sorted(mailoutbox[2].to) == sorted(
        [bureau.leader.email, bureau.dispatcher.email, bureau.reviewer.email]
    )
    assert case_link(case) in mailoutbox[2].body
    assert bureau.supervisor.email not in mailoutbox[2].to

    # +5 working days (Thu → Thu): referral to 纪检督察 with a snapshot, mailed to the supervisor.
    assert sweep(bj(2026, 3, 11, 23, 0), django_capture_on_commit_callbacks) == {}
    assert sweep(bj(2026, 3, 12, 10, 0), django_capture_on_commit_callbacks) == {"refer": 1}
    referral = DisciplineReferral.objects.get(case=case)
    assert referral.unit == bureau.unit_a
    snapshot = referral.snapshot
    assert snapshot["reference"] == case.reference
    assert snapshot["clock"] == Clock.REPLY
    assert snapshot["due_at"] == "2026-03-05T10:00:00+08:00"
    assert snapshot["working_days_overdue"] == 5
    actions = [e["action"] for e in snapshot["timeline"]]
    assert actions[:3] == ["register", "dispatch", "accept"]
    assert actions[-3:] == ["escalation_remind", "escalation_urge", "escalation_escalate"]
    assert [s["level"] for s in snapshot["escalation_steps"]] == ["remind", "urge", "escalate", "refer"]
    assert snapshot["notices"][0]["content"] == notice.content
    assert len(snapshot["notifications"]) >= 3
    assert len(mailoutbox) == 4
    assert mailoutbox[3].to == [bureau.supervisor.email]
    assert "移交纪检督察" in mailoutbox[3].subject
    assert case_link(case) in mailoutbox[3].body
    assert "办理经过" in mailoutbox[3].body

    # The whole ladder once: a second run at the same time, or later, adds no rows and no mails.
    counts = (EscalationStep.objects.count(), Notification.objects.count(), case.events.count())
    assert sweep(bj(2026, 3, 12, 10, 0), django_capture_on_commit_callbacks) == {}
    assert sweep(bj(2026, 4, 30, 10, 0), django_capture_on_commit_callbacks) == {}
    assert (EscalationStep.objects.count(), Notification.objects.count(), case.events.count()) == counts
    assert len(mailoutbox) == 4
    assert sorted(steps(case)) == sorted([
        (Clock.REPLY, EscalationLevel.REMIND),
        (Clock.REPLY, EscalationLevel.URGE),
        (Clock.REPLY, EscalationLevel.ESCALATE),
        (Clock.REPLY, EscalationLevel.REFER),
    ])
    assert all(n.sent_at is not None for n in Notification.objects.filter(case=case, key__startswith="digest:"))


def test_a_case_first_seen_long_overdue_climbs_one_step_per_sweep_without_a_due_soon_reminder(
    bureau, calendar_2026, eager, mailoutbox, django_capture_on_commit_callbacks
):
    case = case_at(bureau, State.HANDLING)
    late = bj(2026, 3, 20, 10, 0)
    assert sweep(late, django_capture_on_commit_callbacks) == {"urge": 1}
    assert sweep(late, django_capture_on_commit_callbacks) == {"escalate": 1}
    assert sweep(late, django_capture_on_commit_callbacks) == {"refer": 1}
    assert sweep(late, django_capture_on_commit_callbacks) == {}
    assert EscalationLevel.REMIND not in [level for _clock, level in steps(case)]
    assert len(mailoutbox) == 3


def test_the_sign_for_clock_escalates_an_unsigned_case_and_stops_when_it_is_signed_for(
    bureau, calendar_2026, eager, mailoutbox, django_capture_on_commit_callbacks
):
    case = case_at(bureau, State.DISPATCHED)
    assert sweep(bj(2026, 3, 3, 9, 59), django_capture_on_commit_callbacks) == {}
    assert sweep(bj(2026, 3, 3, 10, 1), django_capture_on_commit_callbacks) == {"urge": 1}
    assert steps(case, Clock.SIGN_FOR) == [(Clock.SIGN_FOR, EscalationLevel.URGE)]
    assert "签收" in mailoutbox[-1].subject

    with time_machine.travel(bj(2026, 3, 3, 11, 0), tick=False):
        services.case_accept(case=case, acting_user=bureau.handler_a)
    # Past +3 and +5 working days of the sign-for deadline: the stopped clock takes no step.
    sweep(bj(2026, 3, 10, 10, 30), django_capture_on_commit_callbacks)
    sweep(bj(2026, 3, 11, 10, 30), django_capture_on_commit_callbacks)
    assert steps(case, Clock.SIGN_FOR) == [(Clock.SIGN_FOR, EscalationLevel.URGE)]


def test_a_case_signed_for_in_time_never_gets_a_sign_for_step(
    bureau, calendar_2026, eager, django_capture_on_commit_callbacks
):
    case = case_at(bureau, State.HANDLING)
    for now in [bj(2026, 3, 3, 10, 1), bj(2026, 3, 10, 10, 1), bj(2026, 3, 12, 10, 1)]:
        sweep(now, django_capture_on_commit_callbacks)
    assert steps(case, Clock.SIGN_FOR) == []


def test_a_replied_case_stops_the_reply_clock(
    bureau, calendar_2026, eager, mailoutbox, django_capture_on_commit_callbacks
):
    replied = case_at(bureau, State.REPLIED)
    handling = case_at(bureau, State.HANDLING)
    sweep(bj(2026, 3, 5, 10, 1), django_capture_on_commit_callbacks)
    sweep(bj(2026, 3, 30, 10, 1), django_capture_on_commit_callbacks)
    assert steps(replied) == []
    assert (Clock.REPLY, EscalationLevel.URGE) in steps(handling)
    assert all(handling.reference in m.subject for m in mailoutbox)


def test_a_case_of_unit_b_mails_unit_b_and_never_unit_a(
    bureau, calendar_2026, eager, mailoutbox, django_capture_on_commit_callbacks
):
    case_at(bureau, State.HANDLING, unit=bureau.unit_b)
    sweep(bj(2026, 3, 5, 10, 1), django_capture_on_commit_callbacks)
    urge = mailoutbox[-1]
    assert bureau.handler_b.email in urge.to
    assert bureau.handler_a.email not in urge.to
    assert bureau.head_a.email not in urge.to


def test_overdue_scan_on_the_make_up_saturday_escalates_the_friday_case(
    bureau, calendar_2026, eager, mailoutbox, django_capture_on_commit_callbacks
):
    """Field case C08: dispatched Fri 2018-12-28 16:00 → sign for by the 调休 Saturday 16:00."""
    case = case_at(bureau, State.DISPATCHED, at=bj(2018, 12, 28, 16, 0))
    assert case.sign_for_due_at == bj(2018, 12, 29, 16, 0)
    assert sweep(bj(2018, 12, 29, 15, 59), django_capture_on_commit_callbacks) == {}
    assert sweep(bj(2018, 12, 29, 16, 1), django_capture_on_commit_callbacks) == {"urge": 1}
    assert steps(case) == [(Clock.SIGN_FOR, EscalationLevel.URGE)]


def test_a_sweep_with_nothing_due_runs_the_same_few_queries_for_1_or_30_open_cases(
    bureau, calendar_2026, django_assert_max_num_queries
):
    now = bj(2026, 3, 2, 10, 5)
    case_at(bureau, State.DISPATCHED)
    with CaptureQueriesContext(connection) as one_case:
        assert escalation.escalation_sweep(now=now) == {}
    for _ in range(29):
        case_at(bureau, State.DISPATCHED)
    case_at(bureau, State.HANDLING)
    with django_assert_max_num_queries(16):
        assert escalation.escalation_sweep(now=now) == {}
    with CaptureQueriesContext(connection) as thirty_cases:
        assert escalation.escalation_sweep(now=now) == {}
    assert len(thirty_cases) == len(one_case)


def test_a_redelivered_notification_task_sends_nothing_new(
    bureau, calendar_2026, eager, mailoutbox, django_capture_on_commit_callbacks
):
    case = case_at(bureau, State.HANDLING)
    escalation.escalation_sweep(now=bj(2026, 3, 5, 10, 1))  # callbacks not run: nothing sent yet
    notification = Notification.objects.get(case=case, key__startswith="digest:")
    assert notification.sent_at is None
    assert notification_send.delay(notification.pk).get() is True
    assert notification_send.delay(notification.pk).get() is False
    assert len(mailoutbox) == 1
    notification.refresh_from_db()
    assert notification.sent_at is not None and notification.attempts == 1


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks")
@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_the_same_moment_take_each_step_once(calendar_2026, eager):
    from tests.factories import Bureau

    bureau = Bureau()
    cases = [case_at(bureau, State.DISPATCHED) for _ in range(3)]
    cases.append(case_at(bureau, State.HANDLING, unit=bureau.unit_b))
    mail.outbox = []
    now = bj(2026, 3, 5, 10, 1)  # both clocks of the dispatched cases are overdue
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        from django.db import connections

        try:
            barrier.wait(timeout=10)
            results.append(escalation.escalation_sweep(now=now))
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    # Three dispatched cases: sign-for and reply overdue → 6 urges; the unit B case: 1 urge.
    assert sum(r.get("urge", 0) for r in results) == 7
    rows = list(EscalationStep.objects.values_list("case_id", "clock", "round", "level"))
    assert len(rows) == len(set(rows)) == 7
    assert SupervisionNotice.objects.count() == 7
    # One digest per recipient per rung per sweep (issue 11): every step is listed once for each
    # of its recipients, whichever sweep wrote the digest, and every digest went out.
    notifications = Notification.objects.filter(key__startswith="digest:")
    assert all(n.sent_at is not None for n in notifications)
    told: dict[str, list[int]] = {}
    for line in DigestLine.objects.select_related("notification"):
        for address in line.notification.recipients:
            told.setdefault(address, []).append(line.step_id)
    unit_a_steps = sorted(EscalationStep.objects.filter(case__lead_unit=bureau.unit_a).values_list("pk", flat=True))
    all_steps = sorted(EscalationStep.objects.values_list("pk", flat=True))
    assert sorted(told[bureau.head_a.email]) == sorted(told[bureau.handler_a.email]) == unit_a_steps
    assert sorted(told[bureau.dispatcher.email]) == all_steps
    assert len(told[bureau.handler_b.email]) == 1
    assert len(mail.outbox) == notifications.count() <= 6
    for case in cases:
        events = list(case.events.filter(action="escalation_urge").values_list("seq", flat=True))
        assert len(events) == EscalationStep.objects.filter(case=case).count()
    assert all(case_audit_verify(case=case) for case in cases)
