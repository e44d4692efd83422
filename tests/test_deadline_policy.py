"""Stored deadlines on the work calendar (DESIGN.md §4): policies, clocks, field cases C08–C10."""

from datetime import date, datetime, timedelta
from io import StringIO
import logging
from zoneinfo import ZoneInfo

from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.test import RequestFactory
import pytest
import time_machine

from casework import clocks, escalation, joint, services
from casework.admin_config import calendar_warning_message
from casework.calendar import WorkCalendar, work_calendar
from casework.models import (
    CalendarYear,
    CaseClock,
    Clock,
    DeadlinePolicy,
    EscalationLevel,
    EscalationStep,
    State,
    TimeUnit,
    UnitCalendarDay,
    WorkCalendarDay,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC = ZoneInfo("UTC")


def bj(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


@pytest.fixture
def seeded(db):
    call_command("calendar_seed", "--from-year", "2018", "--to-year", "2026", stdout=StringIO(),
                 stderr=StringIO())


def dispatch_at(bureau, at, state=State.DISPATCHED, **fields):
    """A case walked to ``state`` with time frozen at ``at`` (so the dispatch happens at ``at``)."""
    with time_machine.travel(at, tick=False):
        return bureau.case_in(state, submitted_at=at, **fields)


def clock_of(case, clock, round_=None):
    return CaseClock.objects.get(case=case, clock=clock, round=round_ or case.handling_round)


# ---------------------------------------------------------------- field case C08


def test_c08_friday_dispatch_must_be_signed_for_on_the_make_up_saturday(bureau, seeded):
    case = dispatch_at(bureau, bj(2018, 12, 28, 16, 0))
    assert case.sign_for_due_at == bj(2018, 12, 29, 16, 0)
    assert clock_of(case, Clock.SIGN_FOR).due_at == bj(2018, 12, 29, 16, 0)
    # Reply (consultation, 3 working days): Sat 12-29, Wed 01-02, Thu 01-03.
    assert clock_of(case, Clock.REPLY).due_at == bj(2019, 1, 3, 16, 0) == case.reply_due_at


def test_c08_make_up_saturday_dispatch_is_due_after_the_new_year_break(bureau, seeded):
    case = dispatch_at(bureau, bj(2018, 12, 29, 9, 0))
    assert case.sign_for_due_at == bj(2019, 1, 2, 9, 0)
    assert clock_of(case, Clock.SIGN_FOR).due_at == bj(2019, 1, 2, 9, 0)


def test_c08_the_overdue_scan_on_the_make_up_saturday_urges_the_friday_case_once(bureau, seeded):
    case = dispatch_at(bureau, bj(2018, 12, 28, 16, 0))
    assert escalation.escalation_sweep(now=bj(2018, 12, 29, 15, 59)) == {}
    assert escalation.escalation_sweep(now=bj(2018, 12, 29, 16, 1)) == {"urge": 1}
    assert escalation.escalation_sweep(now=bj(2018, 12, 29, 16, 1)) == {}
    assert list(EscalationStep.objects.filter(case=case).values_list("clock", "level")) == [
        (Clock.SIGN_FOR, EscalationLevel.URGE)
    ]


def test_c08_a_deadline_in_a_year_without_a_confirmed_calendar_is_flagged_logged_and_shown(
    bureau, seeded, caplog
):
    # A complaint (15 working days) dispatched mid-December 2026 runs into 2027.
    with caplog.at_level(logging.WARNING, logger="casework"):
        case = dispatch_at(bureau, bj(2026, 12, 21, 10, 0), message_type="complain")
    reply = clock_of(case, Clock.REPLY)
    assert reply.calendar_unconfirmed == "2027"
    assert clock_of(case, Clock.SIGN_FOR).calendar_unconfirmed == ""
    # Still computed (Monday–Friday assumed in 2027, nothing invented): 12-22..12-31 is 8 days,
    # then Jan 1 (Friday) counts as a working day because 2027 is unknown.
    assert reply.due_at == bj(2027, 1, 11, 10, 0)
    assert any("2027" in r.getMessage() and "calendar_seed" in r.getMessage() for r in caplog.records)
    assert clocks.unconfirmed_calendar_warnings(case=case) == ["2027"]

    from django.contrib.messages.storage.fallback import FallbackStorage

    request = RequestFactory().get("/")
    request.session, request._messages = {}, None
    request._messages = FallbackStorage(request)
    calendar_warning_message(request, case=case)
    assert any("2027" in str(m) and "尚未确认" in str(m) for m in request._messages)


def test_confirming_a_year_recomputes_the_flagged_deadlines_on_the_entered_schedule(bureau, seeded):
    case = dispatch_at(bureau, bj(2026, 12, 21, 10, 0), message_type="complain")
    # The superuser enters the official 2027 New Year holiday and confirms the year.
    WorkCalendarDay.objects.create(date=date(2027, 1, 1), is_workday=False, note="元旦")
    admin = bureau.dispatcher.__class__.objects.create_superuser("root", "root@bureau.invalid", "pw")
    with pytest.raises(PermissionDenied):
        clocks.calendar_year_confirm(year=2027, acting_user=bureau.dispatcher)
    assert clocks.calendar_year_confirm(year=2027, acting_user=admin, source="国办发明电") == 1
    reply = clock_of(case, Clock.REPLY)
    assert reply.due_at == bj(2027, 1, 12, 10, 0)
    assert reply.calendar_unconfirmed == ""
    case.refresh_from_db()
    assert case.reply_due_at == bj(2027, 1, 12, 10, 0)
    assert CalendarYear.objects.get(year=2027).confirmed_by == admin


def test_a_seeded_year_is_confirmed_with_its_source(db):
    call_command("calendar_seed", "--from-year", "2019", "--to-year", "2019", stdout=StringIO())
    year = CalendarYear.objects.get(year=2019)
    assert year.confirmed and "chinese_calendar" in year.source


# ---------------------------------------------------------------- field case C09


def test_c09_a_dispatch_after_midnight_beijing_counts_from_the_beijing_monday(bureau, seeded):
    # 2026-03-02 00:10 in Beijing is Sunday 16:10 UTC: the clock must start on the Monday.
    case = dispatch_at(bureau, bj(2026, 3, 2, 0, 10))
    assert case.sign_for_due_at == bj(2026, 3, 3, 0, 10)
    # 2026-03-01 23:50 Beijing is a Sunday: the clock starts Monday 00:00.
    case_y = dispatch_at(bureau, bj(2026, 3, 1, 23, 50))
    assert case_y.sign_for_due_at == bj(2026, 3, 3, 0, 0)


@pytest.mark.parametrize("clock_time", [(6, 30), (8, 30)])
def test_c09_the_overdue_check_before_8_am_beijing_sees_a_deadline_that_passed_after_midnight(
    bureau, seeded, clock_time
):
    # Dispatched Fri 03-06 00:10 → sign for by Mon 03-09 00:10 Beijing (= Sun 16:10 UTC).
    case = dispatch_at(bureau, bj(2026, 3, 6, 0, 10))
    assert case.sign_for_due_at == bj(2026, 3, 9, 0, 10)
    with time_machine.travel(bj(2026, 3, 9, *clock_time), tick=False):
        assert escalation.escalation_sweep() == {"urge": 1}
    assert EscalationStep.objects.get(case=case).happened_at == bj(2026, 3, 9, *clock_time)


# ---------------------------------------------------------------- field case C10


def test_c10_the_daily_overdue_scan_runs_at_9_beijing_time(db):
    from django_celery_beat.models import PeriodicTask

    from casework.defaults import DAILY_SCAN_TASK_NAME

    task = PeriodicTask.objects.get(name=DAILY_SCAN_TASK_NAME)  # created by migrate (defaults)
    assert task.task == "casework.escalation_sweep"
    assert str(task.crontab.timezone) == "Asia/Shanghai"
    schedule = task.schedule
    with time_machine.travel(bj(2026, 3, 2, 8, 59), tick=False):
        due, next_in = schedule.is_due(bj(2026, 3, 1, 9, 0))
        assert not due
        assert 55 <= next_in <= 65  # about one minute: 09:00 Beijing = 01:00 UTC
        remaining = schedule.remaining_estimate(bj(2026, 3, 1, 9, 0))
        assert timedelta(seconds=55) <= remaining <= timedelta(seconds=65)
    with time_machine.travel(datetime(2026, 3, 2, 1, 0, 30, tzinfo=UTC), tick=False):
        due, _next = schedule.is_due(bj(2026, 3, 1, 9, 0))
        assert due


def test_c10_a_one_off_reminder_is_due_at_its_beijing_time_and_not_before(db):
    from casework.defaults import one_off_schedule_create

    task = one_off_schedule_create(
        name="提醒 2026-03-02 10:00", task="casework.escalation_sweep", at=bj(2026, 3, 2, 10, 0)
    )
    task.refresh_from_db()
    assert task.one_off and task.clocked.clocked_time == bj(2026, 3, 2, 10, 0)
    with time_machine.travel(bj(2026, 3, 2, 9, 59, 59), tick=False):
        assert task.schedule.is_due(None)[0] is False
    with time_machine.travel(bj(2026, 3, 2, 10, 0, 1), tick=False):
        assert task.schedule.is_due(None)[0] is True


# ---------------------------------------------------------------- the calendar in hard places


def test_a_deadline_across_the_spring_festival_counts_both_make_up_saturdays(bureau, seeded):
    # 2026: Sat 02-14 worked, 02-15..02-23 off, Sat 02-28 worked.
    case = dispatch_at(bureau, bj(2026, 2, 13, 10, 0))  # Friday, consultation: 3 working days
    assert case.sign_for_due_at == bj(2026, 2, 14, 10, 0)
    assert case.reply_due_at == bj(2026, 2, 25, 10, 0)
    late_feb = dispatch_at(bureau, bj(2026, 2, 27, 16, 0))
    assert late_feb.sign_for_due_at == bj(2026, 2, 28, 16, 0)


def test_a_clock_started_on_a_make_up_saturday_runs_over_the_festival(bureau, seeded):
    case = dispatch_at(bureau, bj(2026, 2, 14, 9, 0))
    assert case.sign_for_due_at == bj(2026, 2, 24, 9, 0)


def test_a_deadline_across_new_year_2026_lands_on_the_make_up_sunday(bureau, seeded):
    # 2026-01-01..03 off, Sunday 01-04 worked.
    case = dispatch_at(bureau, bj(2025, 12, 31, 15, 0))
    assert case.sign_for_due_at == bj(2026, 1, 4, 15, 0)
    assert case.reply_due_at == bj(2026, 1, 6, 15, 0)


def test_a_clock_started_on_a_holiday_gives_whole_days_from_the_first_working_morning(
    bureau, seeded
):
    case = dispatch_at(bureau, bj(2026, 10, 1, 10, 0))  # National Day; work resumes Thu 10-08
    assert case.sign_for_due_at == bj(2026, 10, 9, 0, 0)
    # Reply, 3 working days counted after the 10-08 00:00 start: Fri 10-09, Sat 10-10 (make-up),
    # Mon 10-12.
    assert case.reply_due_at == bj(2026, 10, 12, 0, 0)


def test_working_hours_count_only_office_hours_of_working_days(seeded):
    cal = work_calendar()
    assert cal.add_working_hours(bj(2026, 3, 6, 16, 0), 4) == bj(2026, 3, 9, 11, 0)
    assert cal.add_working_hours(bj(2026, 3, 9, 16, 30), 1) == bj(2026, 3, 9, 17, 30)
    assert cal.add_working_hours(bj(2026, 3, 7, 12, 0), 2) == bj(2026, 3, 9, 10, 30)
    assert cal.add_working_hours(bj(2026, 3, 9, 7, 0), 1) == bj(2026, 3, 9, 9, 30)
    # Over the Spring Festival: Fri 17:00 + 2 h → 30 min Friday, 90 min on the make-up Saturday.
    assert cal.add_working_hours(bj(2026, 2, 13, 17, 0), 2) == bj(2026, 2, 14, 10, 0)
    assert cal.add_working_hours(bj(2026, 2, 14, 17, 0), 1) == bj(2026, 2, 24, 9, 0)


def test_a_platform_policy_in_working_hours_wins_over_the_all_platforms_policy(bureau, seeded):
    DeadlinePolicy.objects.create(
        message_type="consult", platform=bureau.platform, clock=Clock.SIGN_FOR, amount=4,
        unit=TimeUnit.WORKING_HOURS, source="平台要求 4 个工作小时内签收",
    )
    case = dispatch_at(bureau, bj(2026, 3, 6, 16, 0))
    assert case.sign_for_due_at == bj(2026, 3, 9, 11, 0)
    sign_for = clock_of(case, Clock.SIGN_FOR)
    assert (sign_for.amount, sign_for.time_unit) == (4, TimeUnit.WORKING_HOURS)
    # The reply keeps the all-platforms length (consultation: 3 working days).
    assert case.reply_due_at == bj(2026, 3, 11, 16, 0)


def test_an_edited_policy_changes_new_deadlines_only(bureau, seeded):
    before = dispatch_at(bureau, bj(2026, 3, 2, 10, 0))
    DeadlinePolicy.objects.filter(message_type="consult", platform=None, clock=Clock.REPLY).update(
        amount=5
    )
    after = dispatch_at(bureau, bj(2026, 3, 2, 10, 0))
    before.refresh_from_db()
    assert before.reply_due_at == bj(2026, 3, 5, 10, 0)
    assert after.reply_due_at == bj(2026, 3, 9, 10, 0)


def test_default_policies_follow_the_design_with_their_source(db):
    rows = {
        (p.message_type, p.clock): (p.amount, p.unit)
        for p in DeadlinePolicy.objects.filter(platform=None)
    }
    assert rows[("consult", Clock.SIGN_FOR)] == (1, TimeUnit.WORKING_DAYS)
    assert rows[("consult", Clock.REPLY)] == (3, TimeUnit.WORKING_DAYS)
    assert 10 <= rows[("complain", Clock.REPLY)][0] <= 15
    assert len(rows) == 6 * 7  # six types × seven clocks (交办 included, issue 13 §5)
    assert rows[("consult", Clock.DISPATCH)] == (1, TimeUnit.WORKING_DAYS)
    assert all("DESIGN.md" in p.source for p in DeadlinePolicy.objects.all())


def test_a_unit_that_works_a_holiday_gets_its_own_deadline(bureau, seeded):
    UnitCalendarDay.objects.create(unit=bureau.unit_b, date=date(2026, 10, 2), is_workday=True,
                                   note="窗口单位国庆值班")
    a = dispatch_at(bureau, bj(2026, 10, 1, 10, 0), unit=bureau.unit_a)
    b = dispatch_at(bureau, bj(2026, 10, 1, 10, 0), unit=bureau.unit_b)
    assert a.sign_for_due_at == bj(2026, 10, 9, 0, 0)
    # Unit B works 10-02: its clock starts 10-02 00:00 and one working day later is 10-08 00:00.
    assert b.sign_for_due_at == bj(2026, 10, 8, 0, 0)


# ---------------------------------------------------------------- clocks follow the loop


def test_an_approved_extension_moves_the_stored_clock_and_the_sweep_follows_it(bureau, seeded):
    case = dispatch_at(bureau, bj(2026, 3, 2, 10, 0), state=State.HANDLING)
    assert case.reply_due_at == bj(2026, 3, 5, 10, 0)
    with time_machine.travel(bj(2026, 3, 3, 9, 0), tick=False):
        ext = joint.extension_request(case=case, acting_user=bureau.handler_a, reason="需调取监控",
                                      working_days=2)
        joint.extension_decide(extension=ext, acting_user=bureau.dispatcher, approve=True)
    reply = clock_of(case, Clock.REPLY)
    assert reply.due_at == bj(2026, 3, 9, 10, 0)  # Thu + 2 working days = Monday
    assert reply.extended_days == 2
    case.refresh_from_db()
    assert case.reply_due_at == bj(2026, 3, 9, 10, 0)
    assert escalation.escalation_sweep(now=bj(2026, 3, 5, 10, 1)) == {}
    assert escalation.escalation_sweep(now=bj(2026, 3, 9, 10, 1)) == {"urge": 1}


def test_the_transitions_start_and_stop_each_clock_of_the_loop(bureau, seeded):
    case = dispatch_at(bureau, bj(2026, 3, 2, 10, 0), state=State.REPLIED)
    rows = {c.clock: c for c in CaseClock.objects.filter(case=case)}
    assert set(rows) == {Clock.DISPATCH, Clock.SIGN_FOR, Clock.HANDLING, Clock.OFFICE_REVIEW,
                         Clock.LEADER_REVIEW, Clock.REPLY, Clock.FOLLOW_UP}
    assert all(rows[c].stopped_at is not None for c in rows if c != Clock.FOLLOW_UP)
    assert rows[Clock.FOLLOW_UP].stopped_at is None
    assert rows[Clock.FOLLOW_UP].due_at == bj(2026, 3, 9, 10, 0)  # 5 working days


def test_a_return_stops_the_clocks_and_the_redispatch_starts_a_new_round(bureau, seeded):
    case = dispatch_at(bureau, bj(2026, 3, 2, 10, 0))
    with time_machine.travel(bj(2026, 3, 2, 11, 0), tick=False):
        case = services.case_return_to_office(case=case, acting_user=bureau.handler_a, reason="非本单位")
    # Every clock of the unit stops; the 网评办's 交办 clock starts again in the new round.
    assert list(CaseClock.objects.filter(case=case, stopped_at__isnull=True).values_list("clock", "round")) == [
        (Clock.DISPATCH, 2)
    ]
    with time_machine.travel(bj(2026, 3, 3, 9, 0), tick=False):
        case = services.case_dispatch(case=case, acting_user=bureau.dispatcher, unit=bureau.unit_b)
    assert case.handling_round == 2
    assert clock_of(case, Clock.SIGN_FOR, 2).due_at == bj(2026, 3, 4, 9, 0) == case.sign_for_due_at
    # The first round's overdue sign-for clock is stopped: no step for it, one for round 2.
    escalation.escalation_sweep(now=bj(2026, 3, 4, 9, 1))
    assert list(EscalationStep.objects.filter(case=case).values_list("clock", "round", "level")) == [
        (Clock.SIGN_FOR, 2, "urge")
    ]


def test_the_in_memory_calendar_makes_the_make_up_day_win_over_the_weekday():
    cal = WorkCalendar(exceptions={date(2018, 12, 29): True, date(2018, 12, 31): False})
    assert cal.is_working_day(date(2018, 12, 29))
    assert not cal.is_working_day(date(2018, 12, 31))
    assert cal.unconfirmed_between(date(2018, 12, 1), date(2019, 1, 5)) == (2018, 2019)
