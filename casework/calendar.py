"""Working-day arithmetic on the bureau's calendar (first version).

A date is a working day when the calendar table says so; dates the table does not list follow the
Monday–Friday week. The table holds the exceptions: weekday holidays and 调休 make-up weekend
working days, seeded from the ``chinese_calendar`` library (``manage.py calendar_seed``) and
editable by superusers. All datetimes are aware and interpreted in Asia/Shanghai.
"""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from casework.models import WorkCalendarDay

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _exceptions(start: date, end: date) -> dict[date, bool]:
    return dict(
        WorkCalendarDay.objects.filter(date__gte=start, date__lte=end).values_list(
            "date", "is_workday"
        )
    )


def is_working_day(day: date, exceptions: dict[date, bool] | None = None) -> bool:
    """Tell whether ``day`` is a working day: the calendar's entry if any, else Monday–Friday."""
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
        day on the ``days``-th following working day (Fri 16:00 + 1 → next working day 16:00).
        Started on a rest day, the clock starts at 00:00 of the next working day, so the unit gets
        ``days`` whole working days.

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
    clock_time = local.timetz()
    if not is_working_day(day, exceptions):
        while not is_working_day(day, exceptions):
            day += timedelta(days=1)
        clock_time = time(0, 0)
        local = datetime.combine(day, clock_time, tzinfo=SHANGHAI)
    remaining = days
    while remaining > 0:
        day += timedelta(days=1)
        if day > horizon:
            horizon = day + timedelta(days=60)
            exceptions.update(_exceptions(day, horizon))
        if is_working_day(day, exceptions):
            remaining -= 1
    return datetime.combine(day, local.time(), tzinfo=SHANGHAI)


def working_days_between(start: datetime, end: datetime) -> int:
    """Return how many working days lie after ``start``'s date up to and including ``end``'s date."""
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
    so counting starts from 23:59:59 of that day.
    """
    if end.tzinfo is None:
        raise ValueError("end must be an aware datetime")
    local = end.astimezone(SHANGHAI)
    horizon = local.date() - timedelta(days=days * 3 + 40)
    exceptions = _exceptions(horizon, local.date())
    day = local.date()
    clock = local.timetz()
    if not is_working_day(day, exceptions):
        while not is_working_day(day, exceptions):
            day -= timedelta(days=1)
        clock = time(23, 59, 59, tzinfo=SHANGHAI)
    remaining = days
    while remaining > 0:
        day -= timedelta(days=1)
        if day < horizon:
            horizon = day - timedelta(days=60)
            exceptions.update(_exceptions(horizon, day))
        if is_working_day(day, exceptions):
            remaining -= 1
    return datetime.combine(day, clock.replace(tzinfo=None), tzinfo=SHANGHAI)
