"""Working days on the bureau's calendar (DESIGN.md §4, field case C08) and ``calendar_seed``."""

from datetime import date, datetime
from io import StringIO
import logging
from zoneinfo import ZoneInfo

from django.core.management import call_command
import pytest

from casework.calendar import (
    add_working_days,
    calendar_years_missing,
    is_working_day,
    subtract_working_days,
    working_days_between,
)
from casework.models import WorkCalendarDay

SHANGHAI = ZoneInfo("Asia/Shanghai")

pytestmark = pytest.mark.django_db


def bj(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


@pytest.fixture
def new_year_2019(db):
    """The C08 fixture exactly: the official 2019 New Year schedule, entered as calendar rows."""
    WorkCalendarDay.objects.create(date=date(2018, 12, 29), is_workday=True, note="调休上班(元旦)")
    WorkCalendarDay.objects.create(date=date(2018, 12, 31), is_workday=False, note="元旦")
    WorkCalendarDay.objects.create(date=date(2019, 1, 1), is_workday=False, note="元旦")
    WorkCalendarDay.objects.create(date=date(2021, 5, 8), is_workday=True, note="调休上班(劳动节)")


@pytest.fixture
def seeded(db):
    """The calendar seeded from chinese_calendar for 2018–2026."""
    call_command("calendar_seed", "--from-year", "2018", "--to-year", "2026", stdout=StringIO(),
                 stderr=StringIO())


def test_new_year_2019_days_are_working_or_rest_as_published(new_year_2019):
    assert is_working_day(date(2018, 12, 29))  # Saturday, make-up working day
    assert not is_working_day(date(2018, 12, 30))  # Sunday
    assert not is_working_day(date(2018, 12, 31))  # Monday, holiday
    assert not is_working_day(date(2019, 1, 1))  # Tuesday, New Year's Day
    assert is_working_day(date(2019, 1, 2))  # Wednesday
    assert is_working_day(date(2021, 5, 8))  # Saturday, make-up working day


def test_friday_afternoon_plus_one_working_day_is_the_make_up_saturday(new_year_2019):
    assert add_working_days(bj(2018, 12, 28, 16, 0), 1) == bj(2018, 12, 29, 16, 0)


def test_make_up_saturday_morning_plus_one_working_day_skips_the_new_year_break(new_year_2019):
    assert add_working_days(bj(2018, 12, 29, 9, 0), 1) == bj(2019, 1, 2, 9, 0)


def test_the_seeded_calendar_gives_the_same_c08_deadlines(seeded):
    assert add_working_days(bj(2018, 12, 28, 16, 0), 1) == bj(2018, 12, 29, 16, 0)
    assert add_working_days(bj(2018, 12, 29, 9, 0), 1) == bj(2019, 1, 2, 9, 0)
    assert is_working_day(date(2021, 5, 8))


def test_a_deadline_across_an_ordinary_weekend_lands_on_monday_at_the_same_time(seeded):
    assert add_working_days(bj(2026, 3, 6, 16, 0), 1) == bj(2026, 3, 9, 16, 0)
    assert add_working_days(bj(2026, 3, 6, 16, 0), 3) == bj(2026, 3, 11, 16, 0)


def test_a_clock_started_on_a_rest_day_gives_whole_working_days_from_the_next_morning(seeded):
    # Saturday 2026-03-07: the clock starts Monday 00:00, one whole working day (Monday) → Tue 00:00.
    assert add_working_days(bj(2026, 3, 7, 10, 0), 1) == bj(2026, 3, 10, 0, 0)
    # Zero working days from a rest day is the start of the next working day.
    assert add_working_days(bj(2026, 3, 7, 10, 0), 0) == bj(2026, 3, 9, 0, 0)


def test_a_utc_start_is_read_in_beijing_time(seeded):
    # 2026-03-06 20:00 UTC is Saturday 04:00 in Beijing: a rest day.
    start = datetime(2026, 3, 6, 20, 0, tzinfo=ZoneInfo("UTC"))
    assert add_working_days(start, 1) == bj(2026, 3, 10, 0, 0)


def test_a_deadline_over_the_spring_festival_skips_the_week_and_counts_make_up_days(seeded):
    # Friday 2019-02-01 10:00: Sat 02-02 and Sun 02-03 are make-up working days, 02-04..08 off.
    assert add_working_days(bj(2019, 2, 1, 10, 0), 1) == bj(2019, 2, 2, 10, 0)
    assert add_working_days(bj(2019, 2, 1, 10, 0), 3) == bj(2019, 2, 11, 10, 0)


@pytest.mark.parametrize(
    "end",
    [
        bj(2018, 12, 29, 16, 0),
        bj(2019, 1, 2, 9, 0),
        bj(2019, 2, 11, 10, 0),
        bj(2026, 3, 9, 16, 0),
        bj(2026, 10, 9, 8, 30),
    ],
)
def test_subtracting_working_days_is_the_inverse_of_adding_them(seeded, end):
    for days in range(0, 8):
        start = subtract_working_days(end, days)
        assert is_working_day(start.date())
        assert add_working_days(start, days) == end
        assert working_days_between(start, end) == days


def test_subtracting_from_a_rest_day_counts_from_the_end_of_the_previous_working_day(seeded):
    # Sunday 2026-03-08: the previous working day is Friday 03-06.
    cutoff = subtract_working_days(bj(2026, 3, 8, 10, 0), 0)
    assert cutoff.date() == date(2026, 3, 6)
    assert bj(2026, 3, 6, 23, 59) < cutoff < bj(2026, 3, 7, 0, 0)
    assert subtract_working_days(bj(2026, 3, 8, 10, 0), 1).date() == date(2026, 3, 5)


def test_subtracting_across_the_new_year_break_lands_on_the_make_up_saturday(new_year_2019):
    assert subtract_working_days(bj(2019, 1, 2, 9, 0), 1) == bj(2018, 12, 29, 9, 0)
    assert subtract_working_days(bj(2019, 1, 2, 9, 0), 2) == bj(2018, 12, 28, 9, 0)


def test_working_days_between_counts_the_days_after_the_start_up_to_the_end(new_year_2019):
    assert working_days_between(bj(2018, 12, 28, 16, 0), bj(2019, 1, 2, 9, 0)) == 2
    assert working_days_between(bj(2019, 1, 2, 9, 0), bj(2018, 12, 28, 16, 0)) == 0


def test_naive_datetimes_and_negative_days_are_refused(db):
    with pytest.raises(ValueError):
        add_working_days(datetime(2026, 3, 2, 9, 0), 1)
    with pytest.raises(ValueError):
        subtract_working_days(datetime(2026, 3, 2, 9, 0), 1)
    with pytest.raises(ValueError):
        add_working_days(bj(2026, 3, 2, 9, 0), -1)


def test_a_deadline_in_a_year_without_calendar_data_logs_a_warning(seeded, caplog):
    with caplog.at_level(logging.WARNING, logger="casework"):
        add_working_days(bj(2026, 12, 30, 10, 0), 3)
    assert any("2027" in r.getMessage() and "calendar_seed" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="casework"):
        add_working_days(bj(2026, 3, 2, 10, 0), 3)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_calendar_seed_writes_the_2019_holidays_and_make_up_days():
    out, err = StringIO(), StringIO()
    call_command("calendar_seed", "--from-year", "2019", "--to-year", "2019", stdout=out, stderr=err)
    rows = {d.date: d for d in WorkCalendarDay.objects.filter(date__year=2019)}
    assert rows[date(2019, 2, 2)].is_workday is True  # Saturday worked before the Spring Festival
    assert rows[date(2019, 2, 2)].note == "调休上班(春节)"
    assert rows[date(2019, 2, 3)].is_workday is True
    for day in range(4, 9):
        assert rows[date(2019, 2, day)].is_workday is False
        assert rows[date(2019, 2, day)].note == "春节"
    assert rows[date(2019, 1, 1)].note == "元旦"
    assert rows[date(2019, 10, 1)].note == "国庆节"
    # Only exceptions are stored: an ordinary weekend and weekdays are not rows.
    assert date(2019, 2, 9) not in rows
    assert date(2019, 3, 4) not in rows
    assert len(rows) == 23
    assert err.getvalue() == ""
    assert calendar_years_missing(first_year=2019, last_year=2020) == [2020]


def test_calendar_seed_run_twice_writes_no_duplicates_and_restores_edited_rows():
    call_command("calendar_seed", "--from-year", "2019", "--to-year", "2019", stdout=StringIO())
    WorkCalendarDay.objects.filter(date=date(2019, 2, 4)).update(is_workday=True, note="wrong")
    out = StringIO()
    call_command("calendar_seed", "--from-year", "2019", "--to-year", "2019", stdout=out)
    assert WorkCalendarDay.objects.filter(date__year=2019).count() == 23
    assert WorkCalendarDay.objects.get(date=date(2019, 2, 4)).is_workday is False
    assert "新增 0 条" in out.getvalue()


def test_calendar_seed_stops_at_the_last_known_year_and_names_the_years_not_covered():
    import chinese_calendar

    last = max(d.year for d in chinese_calendar.holidays)
    out, err = StringIO(), StringIO()
    call_command("calendar_seed", "--from-year", str(last), "--to-year", str(last + 2), stdout=out,
                 stderr=err)
    assert WorkCalendarDay.objects.filter(date__year=last).exists()
    assert not WorkCalendarDay.objects.filter(date__gt=date(last, 12, 31)).exists()
    assert f"{last + 1}、{last + 2}" in err.getvalue()
    assert "警告" in err.getvalue()


def test_calendar_seed_by_default_fills_2018_to_the_last_known_year():
    import chinese_calendar

    last = max(d.year for d in chinese_calendar.holidays)
    call_command("calendar_seed", stdout=StringIO(), stderr=StringIO())
    assert WorkCalendarDay.objects.filter(date=date(2018, 12, 29), is_workday=True).exists()
    assert calendar_years_missing(first_year=2018, last_year=last) == []
    assert not WorkCalendarDay.objects.filter(date__lt=date(2018, 1, 1)).exists()
    assert WorkCalendarDay.objects.count() > 200
