"""Working-day arithmetic on the bureau's calendar.

A date is a working day when the calendar table says so; dates the table does not list follow the
Monday–Friday week. The table holds the exceptions only: weekday holidays and 调休 make-up weekend
working days, seeded from the ``chinese_calendar`` library (``manage.py calendar_seed``) and
editable by superusers. All datetimes are aware and interpreted in Asia/Shanghai.

A year with no row at all in the table has not been seeded (every Chinese year has weekday
holidays), so its days cannot be trusted: each computation that touches such a year logs a warning
on the ``casework`` logger naming the years (DESIGN.md §4, field case C08) and then falls back to
Monday–Friday so that deadlines still exist.
"""

from datetime import date, datetime, time, timedelta
import logging
from zoneinfo import ZoneInfo

from django.db.models.functions import ExtractYear

from casework.models import WorkCalendarDay

SHANGHAI = ZoneInfo("Asia/Shanghai")

logger = logging.getLogger("casework")


def _exceptions(start: date, end: date) -> dict[date, bool]:
    return dict(
        WorkCalendarDay.objects.filter(date__gte=start, date__lte=end).values_list(
            "date", "is_workday"
        )
    )


def calendar_years_missing(*, first_year: int, last_year: int) -> list[int]:
    """Return the years from ``first_year`` to ``last_year`` (inclusive) with no calendar rows.

    Such a year was never seeded nor entered by hand, so its holidays and 调休 days are unknown.
    One query.
    """
    present = set(
        WorkCalendarDay.objects.filter(date__year__gte=first_year, date__year__lte=last_year)
        .annotate(year=ExtractYear("date"))
        .values_list("year", flat=True)
        .distinct()
    )
    return [y for y in range(first_year, last_year + 1) if y not in present]


def _warn_if_uncovered(first: date, last: date) -> None:
    if last < first:
        first, last = last, first
    missing = calendar_years_missing(first_year=first.year, last_year=last.year)
    if missing:
        logger.warning(
            "work calendar has no data for %s; assuming Monday-Friday there. "
            "Run `manage.py calendar_seed` or enter the official schedule in the admin.",
            ", ".join(str(y) for y in missing),
        )


def is_working_day(day: date, exceptions: dict[date, bool] | None = None) -> bool:
    """Tell whether ``day`` is a working day: the calendar's entry if any, else Monday–Friday.

    Args:
        day: a calendar date (Beijing).
        exceptions: the calendar rows around ``day`` when the caller already loaded them; when
            None the table is queried for this one day.
    """
    if exceptions is None:
        exceptions = _exceptions(day, day)
    if day in exceptions:
        return exceptions[day]
    return day.weekday() < 5


def add_working_days(start: datetime, days: int) -> datetime:
    """Return the deadline ``days`` working days after ``start``.

    Args:
        start: an aware datetime (converted to Asia/Shanghai).
        days: number of working days, >= 0.

    Returns:
        an aware Asia/Shanghai datetime. Started on a working day, the deadline is the same time of
        day on the ``days``-th following working day (Fri 16:00 + 1 → next working day 16:00; on
        2018-12-28 that is the 调休 Saturday 2018-12-29 16:00). Started on a rest day, the clock
        starts at 00:00 of the next working day, so the unit gets ``days`` whole working days.

    Raises:
        ValueError: when ``start`` is naive or ``days`` is negative.
    """
    if start.tzinfo is None:
        raise ValueError("start must be an aware datetime")
    if days < 0:
        raise ValueError("days must be >= 0")
    local = start.astimezone(SHANGHAI)
    horizon = local.date() + timedelta(days=days * 3 + 40)
    exceptions = _exceptions(local.date(), horizon)
    day = local.date()
    clock_time = local.time()
    if not is_working_day(day, exceptions):
        while not is_working_day(day, exceptions):
            day += timedelta(days=1)
        clock_time = time(0, 0)
    remaining = days
    while remaining > 0:
        day += timedelta(days=1)
        if day > horizon:
            horizon = day + timedelta(days=60)
            exceptions.update(_exceptions(day, horizon))
        if is_working_day(day, exceptions):
            remaining -= 1
    _warn_if_uncovered(local.date(), day)
    return datetime.combine(day, clock_time, tzinfo=SHANGHAI)


def working_days_between(start: datetime, end: datetime) -> int:
    """Return how many working days lie after ``start``'s date up to and including ``end``'s date.

    Both are aware datetimes, compared as Beijing dates; 0 when ``end`` is not after ``start``.
    """
    a = start.astimezone(SHANGHAI).date()
    b = end.astimezone(SHANGHAI).date()
    if b <= a:
        return 0
    exceptions = _exceptions(a, b)
    count = 0
    day = a
    while day < b:
        day += timedelta(days=1)
        if is_working_day(day, exceptions):
            count += 1
    return count


def subtract_working_days(end: datetime, days: int) -> datetime:
    """Return the instant ``days`` working days before ``end`` (the inverse of :func:`add_working_days`).

    Used by the escalation sweep: "the deadline lies at least k working days in the past" is
    ``due_at <= subtract_working_days(now, k)``, one set-based comparison for all cases. When
    ``end`` falls on a rest day the working time stopped at the end of the previous working day,
    so counting starts from 23:59:59.999999 of that day. For ``end`` on a working day,
    ``add_working_days(subtract_working_days(end, k), k) == end``.

    Args:
        end: an aware datetime (converted to Asia/Shanghai).
        days: number of working days, >= 0.

    Raises:
        ValueError: when ``end`` is naive or ``days`` is negative.
    """
    if end.tzinfo is None:
        raise ValueError("end must be an aware datetime")
    if days < 0:
        raise ValueError("days must be >= 0")
    local = end.astimezone(SHANGHAI)
    horizon = local.date() - timedelta(days=days * 3 + 40)
    exceptions = _exceptions(horizon, local.date())
    day = local.date()
    clock_time = local.time()
    if not is_working_day(day, exceptions):
        while not is_working_day(day, exceptions):
            day -= timedelta(days=1)
            if day < horizon:
                horizon = day - timedelta(days=60)
                exceptions.update(_exceptions(horizon, day))
        clock_time = time.max
    remaining = days
    while remaining > 0:
        day -= timedelta(days=1)
        if day < horizon:
            horizon = day - timedelta(days=60)
            exceptions.update(_exceptions(horizon, day))
        if is_working_day(day, exceptions):
            remaining -= 1
    _warn_if_uncovered(day, local.date())
    return datetime.combine(day, clock_time, tzinfo=SHANGHAI)
