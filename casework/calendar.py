"""Working-day and working-hour arithmetic on the bureau's calendar (DESIGN.md §4, field case C08).

The calendar is data. ``WorkCalendarDay`` holds the exceptions to the Monday–Friday week (weekday
holidays and 调休 make-up weekend working days), seeded from the ``chinese_calendar`` library
(``manage.py calendar_seed``) and editable by superusers; ``UnitCalendarDay`` holds a unit's own
exceptions (a window that works a holiday), which win over the bureau's for that unit. A date is a
working day when an exception says so, else when it is Monday to Friday. The make-up day is checked
before the weekday, so a 调休 Saturday is a working day (the rickar/cal bug of C08).

``CalendarYear`` marks a year whose official schedule was imported or entered and confirmed. A
computation that reaches into a year that is not confirmed still returns a deadline (Monday–Friday
plus whatever rows exist), but it reports the year in :attr:`Deadline.unconfirmed_years`, logs a
warning on the ``casework`` logger, and the clock that stores it is flagged until a superuser
confirms the year — never a silent guess.

All datetimes are aware and read in Asia/Shanghai. Working hours are the office hours of a working
day, ``settings.CASEWORK_OFFICE_HOURS`` (default 08:30–17:30).
"""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
import logging
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models.functions import ExtractYear

from casework.models import CalendarYear, TimeUnit, UnitCalendarDay, WorkCalendarDay

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEFAULT_OFFICE_HOURS = (time(8, 30), time(17, 30))

logger = logging.getLogger("casework")


def office_hours() -> tuple[time, time]:
    """Return the (opening, closing) time of a working day, from ``CASEWORK_OFFICE_HOURS``."""
    return getattr(settings, "CASEWORK_OFFICE_HOURS", DEFAULT_OFFICE_HOURS)


@dataclass(frozen=True)
class Deadline:
    """A computed deadline and the years it reached into whose calendar is not confirmed."""

    due_at: datetime
    unconfirmed_years: tuple[int, ...] = ()


@dataclass
class WorkCalendar:
    """The calendar loaded in memory: the exceptions, a unit's own exceptions, the confirmed years.

    Build it with :func:`work_calendar` (three queries at most) and reuse it for many computations
    (the sweep, the replay). Methods never query the database.
    """

    exceptions: dict[date, bool] = field(default_factory=dict)
    confirmed_years: frozenset[int] = frozenset()

    def is_working_day(self, day: date) -> bool:
        """Tell whether ``day`` is a working day: an exception if any, else Monday–Friday."""
        found = self.exceptions.get(day)
        if found is not None:
            return found
        return day.weekday() < 5

    def unconfirmed_between(self, first: date, last: date) -> tuple[int, ...]:
        """Return the years from ``first`` to ``last`` (either order) that are not confirmed."""
        if last < first:
            first, last = last, first
        return tuple(y for y in range(first.year, last.year + 1) if y not in self.confirmed_years)

    def _next_working_day(self, day: date) -> date:
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """Return the deadline ``days`` working days after ``start`` (aware, Asia/Shanghai).

        Started on a working day, the deadline is the same time of day on the ``days``-th
        following working day (Fri 2018-12-28 16:00 + 1 → the 调休 Saturday 2018-12-29 16:00).
        Started on a rest day, the clock starts at 00:00 of the next working day, so the unit gets
        ``days`` whole working days (Sat 10:00 + 1 → Tue 00:00).

        Raises:
            ValueError: when ``start`` is naive or ``days`` is negative.
        """
        _check(start, days)
        local = start.astimezone(SHANGHAI)
        day, clock_time = local.date(), local.time()
        if not self.is_working_day(day):
            day, clock_time = self._next_working_day(day), time(0, 0)
        remaining = days
        while remaining > 0:
            day += timedelta(days=1)
            if self.is_working_day(day):
                remaining -= 1
        return datetime.combine(day, clock_time, tzinfo=SHANGHAI)

    def add_working_hours(self, start: datetime, hours: int) -> datetime:
        """Return the deadline ``hours`` office hours after ``start`` (aware, Asia/Shanghai).

        Only the office hours of working days count. Started outside them, the clock starts at the
        next opening; a deadline that fills a day exactly falls at that day's closing time
        (Mon 16:30 + 1 h → Mon 17:30; Mon 17:00 + 2 h → Tue 10:00 with 08:30–17:30 hours).

        Raises:
            ValueError: when ``start`` is naive or ``hours`` is negative.
        """
        _check(start, hours)
        opening, closing = office_hours()
        local = start.astimezone(SHANGHAI)
        day = local.date()
        if not self.is_working_day(day) or local.time() >= closing:
            if self.is_working_day(day):
                day += timedelta(days=1)
            current = datetime.combine(self._next_working_day(day), opening, tzinfo=SHANGHAI)
        elif local.time() < opening:
            current = datetime.combine(day, opening, tzinfo=SHANGHAI)
        else:
            current = local
        remaining = timedelta(hours=hours)
        while True:
            available = datetime.combine(current.date(), closing, tzinfo=SHANGHAI) - current
            if remaining <= available:
                return current + remaining
            remaining -= available
            following = self._next_working_day(current.date() + timedelta(days=1))
            current = datetime.combine(following, opening, tzinfo=SHANGHAI)

    def subtract_working_days(self, end: datetime, days: int) -> datetime:
        """Return the instant ``days`` working days before ``end`` (inverse of add_working_days).

        The sweep's cut-off: "the deadline lies at least k working days in the past" is
        ``due_at <= subtract_working_days(now, k)``. When ``end`` falls on a rest day the working
        time stopped at the end of the previous working day, so counting starts from
        23:59:59.999999 of that day.

        Raises:
            ValueError: when ``end`` is naive or ``days`` is negative.
        """
        _check(end, days)
        local = end.astimezone(SHANGHAI)
        day, clock_time = local.date(), local.time()
        if not self.is_working_day(day):
            while not self.is_working_day(day):
                day -= timedelta(days=1)
            clock_time = time.max
        remaining = days
        while remaining > 0:
            day -= timedelta(days=1)
            if self.is_working_day(day):
                remaining -= 1
        return datetime.combine(day, clock_time, tzinfo=SHANGHAI)

    def working_days_between(self, start: datetime, end: datetime) -> int:
        """Return the working days after ``start``'s date up to and including ``end``'s date.

        Both are compared as Beijing dates; 0 when ``end`` is not after ``start``.
        """
        a = start.astimezone(SHANGHAI).date()
        b = end.astimezone(SHANGHAI).date()
        count = 0
        while a < b:
            a += timedelta(days=1)
            count += self.is_working_day(a)
        return count

    def deadline(self, *, start: datetime, amount: int, unit: str, extra_days: int = 0) -> Deadline:
        """Compute a clock's deadline: ``amount`` working days or hours after ``start``.

        Args:
            start: aware datetime the clock started.
            amount: the policy's length; unit: a ``TimeUnit`` value (working days or hours).
            extra_days: working days added by approved extensions.

        Returns:
            the deadline and the unconfirmed years between ``start`` and it.
        """
        if unit == TimeUnit.WORKING_HOURS:
            due = self.add_working_hours(start, amount)
        else:
            due = self.add_working_days(start, amount)
        if extra_days:
            due = self.add_working_days(due, extra_days)
        return Deadline(due, self.unconfirmed_between(start.astimezone(SHANGHAI).date(), due.date()))


def _check(moment: datetime, amount: int) -> None:
    if moment.tzinfo is None:
        raise ValueError("datetimes must be aware")
    if amount < 0:
        raise ValueError("the number of working days or hours must be >= 0")


def work_calendar(*, unit=None) -> WorkCalendar:
    """Load the bureau's calendar (with ``unit``'s own exceptions when given) into memory.

    Args:
        unit: an ``accounts.Unit`` or None for the bureau calendar.

    Two queries (three with a unit): every exception row (a few hundred, about 25 a year) and the
    confirmed years.
    """
    exceptions = dict(WorkCalendarDay.objects.values_list("date", "is_workday"))
    if unit is not None:
        exceptions.update(
            UnitCalendarDay.objects.filter(unit=unit).values_list("date", "is_workday")
        )
    years = frozenset(CalendarYear.objects.filter(confirmed=True).values_list("year", flat=True))
    return WorkCalendar(exceptions=exceptions, confirmed_years=years)


def unit_calendars(*, base: WorkCalendar) -> dict[int, WorkCalendar]:
    """Return ``{unit_id: calendar}`` for every unit with its own exceptions, built on ``base``.

    A unit's own rows (``UnitCalendarDay``) win over the bureau's for that unit; units without rows
    count on ``base`` and are not in the dict. One query. Used where many units' time is counted at
    once (the escalation sweep, the assessment's working days), so that a unit's own day off moves
    its escalation as it moved its deadline.
    """
    rows: dict[int, dict[date, bool]] = {}
    for unit_id, day, is_workday in UnitCalendarDay.objects.values_list("unit_id", "date", "is_workday"):
        rows.setdefault(unit_id, {})[day] = is_workday
    return {
        unit_id: WorkCalendar(exceptions={**base.exceptions, **own}, confirmed_years=base.confirmed_years)
        for unit_id, own in rows.items()
    }


def warn_unconfirmed(years, *, what: str = "a deadline") -> None:
    """Log a warning that ``what`` was computed on years whose calendar is not confirmed."""
    if years:
        logger.warning(
            "work calendar not confirmed for %s; %s there assumes Monday-Friday plus the rows "
            "entered so far. Run `manage.py calendar_seed` or enter the official schedule in the "
            "admin and confirm the year.",
            ", ".join(str(y) for y in years),
            what,
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


# Module-level helpers: load the calendar, compute, warn about unconfirmed years.


def is_working_day(day: date, cal: "WorkCalendar | dict[date, bool] | None" = None) -> bool:
    """Tell whether ``day`` (a Beijing date) is a working day.

    Args:
        day: a date.
        cal: a loaded :class:`WorkCalendar`, or a dict ``{date: is_workday}`` of exception rows
            the caller loaded already, or None to load the stored calendar (two queries).
    """
    if isinstance(cal, dict):
        return WorkCalendar(exceptions=cal).is_working_day(day)
    return (cal or work_calendar()).is_working_day(day)


def add_working_days(start: datetime, days: int, *, cal: WorkCalendar | None = None) -> datetime:
    """Return the deadline ``days`` working days after ``start``; see ``WorkCalendar``.

    Logs a warning when the span reaches into a year whose calendar is not confirmed.

    Raises:
        ValueError: when ``start`` is naive or ``days`` is negative.
    """
    cal = cal or work_calendar()
    due = cal.add_working_days(start, days)
    warn_unconfirmed(cal.unconfirmed_between(start.astimezone(SHANGHAI).date(), due.date()))
    return due


def add_working_hours(start: datetime, hours: int, *, cal: WorkCalendar | None = None) -> datetime:
    """Return the deadline ``hours`` office hours after ``start``; see ``WorkCalendar``."""
    cal = cal or work_calendar()
    due = cal.add_working_hours(start, hours)
    warn_unconfirmed(cal.unconfirmed_between(start.astimezone(SHANGHAI).date(), due.date()))
    return due


def subtract_working_days(end: datetime, days: int, *, cal: WorkCalendar | None = None) -> datetime:
    """Return the instant ``days`` working days before ``end``; see ``WorkCalendar``."""
    cal = cal or work_calendar()
    start = cal.subtract_working_days(end, days)
    warn_unconfirmed(cal.unconfirmed_between(start.date(), end.astimezone(SHANGHAI).date()))
    return start


def working_days_between(start: datetime, end: datetime, *, cal: WorkCalendar | None = None) -> int:
    """Return the working days after ``start``'s date up to and including ``end``'s date."""
    return (cal or work_calendar()).working_days_between(start, end)
