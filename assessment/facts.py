"""The assessment's reading of the audit log: events attributed to units, rounds and clocks.

Every metric of :mod:`assessment.selectors` is computed from the append-only ``CaseEvent`` log
(DESIGN.md §7), never from the case's current columns, so a figure for a past period does not
change when a case moves on. This module turns the log into three small temporary tables, once
per report, with set-based SQL (two window functions and two GROUP BYs; no per-case Python):

``ev``
    one row per relevant event (dispatch, accept, return, feedback, send-backs, publication,
    follow-up, reopening) with

    * ``asg`` — the number of the dispatch it follows (1 for the first dispatch of the case, …);
    * ``unit_id`` — the unit of that dispatch (from the dispatch event's payload), i.e. the unit
      answerable for the event. A case only changes lead unit through return + new dispatch, so
      "the latest dispatch before the event" is the answerable unit;
    * ``rnd`` — the handling round (1 + reopenings and returns before it), the same numbering as
      ``Case.handling_round``, ``Extension.round`` and ``FollowUp.round``.

``asg``
    one row per dispatch (the sign-for clock): unit, clock start (the dispatch time recorded in
    the payload, which may be earlier than the event for a dispatch carried over), sign-for due
    time (moved by an approved ``sign_for`` extension of that round), first acceptance, return.

``clk``
    one row per reply clock (started by a dispatch or a reopening: case, round): unit, start,
    reply due time (from the starting event's payload, moved to the latest approved ``reply``
    extension of that round), first feedback, publication, and whether the round ended in a return.

Times are kept as ``timestamptz`` on PostgreSQL and as Julian day numbers (UTC) on SQLite.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
import uuid

from django.db import connection
from django.db.models import QuerySet

from casework.calendar import SHANGHAI, unit_calendars, work_calendar

RELEVANT_ACTIONS = (
    "dispatch",
    "accept",
    "return_to_office",
    "submit_feedback",
    "office_send_back",
    "leader_send_back",
    "publish_reply",
    "record_follow_up",
    "reopen",
)


class _Dialect:
    """The few expressions that differ between PostgreSQL and SQLite."""

    def __init__(self, vendor: str) -> None:
        self.pg = vendor == "postgresql"

    def col_ts(self, col: str) -> str:
        return col if self.pg else f"julianday({col})"

    def payload_ts(self, key: str) -> str:
        if self.pg:
            return f"(e.payload->>'{key}')::timestamptz"
        return f"julianday(json_extract(e.payload, '$.{key}'))"

    def payload_int(self, key: str, alias: str = "e") -> str:
        if self.pg:
            return f"({alias}.payload->>'{key}')::bigint"
        return f"CAST(json_extract({alias}.payload, '$.{key}') AS INTEGER)"

    def payload_text(self, key: str) -> str:
        if self.pg:
            return f"(e.payload->>'{key}')"
        return f"json_extract(e.payload, '$.{key}')"

    def greatest(self, a: str, b: str) -> str:
        return f"GREATEST({a}, {b})" if self.pg else f"MAX({a}, {b})"

    def local_date(self, expr: str) -> str:
        """SQL for the Beijing calendar date of a time expression (as ISO text on SQLite)."""
        if self.pg:
            return f"(({expr}) AT TIME ZONE 'Asia/Shanghai')::date"
        return f"date(({expr}) + 8.0/24)"

    def local_month(self, expr: str) -> str:
        if self.pg:
            return f"to_char(({expr}) AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM')"
        # %% because every statement runs with parameters (a lone % would be a placeholder).
        return f"strftime('%%Y-%%m', ({expr}) + 8.0/24)"

    def param_ts(self, value: datetime):
        """A datetime parameter in the representation the facts tables use."""
        if value.tzinfo is None:
            raise ValueError("aware datetimes only")
        if self.pg:
            return value
        return (value.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() / 86400 + 2440587.5

    def to_datetime(self, value) -> datetime | None:
        if value is None:
            return None
        if self.pg:
            return value
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=float(value) - 2440587.5)


@dataclass(frozen=True)
class Period:
    """A half-open period [start, end) of aware datetimes (Asia/Shanghai by convention)."""

    start: datetime
    end: datetime

    @classmethod
    def year(cls, year: int) -> Period:
        """Return the calendar year ``year`` in Beijing time."""
        return cls(datetime(year, 1, 1, tzinfo=SHANGHAI), datetime(year + 1, 1, 1, tzinfo=SHANGHAI))

    @classmethod
    def days(cls, first: date, last: date) -> Period:
        """Return the Beijing days ``first`` to ``last`` inclusive."""
        return cls(datetime.combine(first, datetime.min.time(), tzinfo=SHANGHAI),
                   datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=SHANGHAI))


class AssessmentFacts:
    """Temporary fact tables for one report; use as a context manager (the tables are dropped on exit).

    Args:
        period: the period reported on. Events of the candidate cases outside it are read too
            (a case dispatched in December and answered in January needs both).
        unit_ids: restrict to events attributed to these units (ids; expand descendants first), or
            None for every unit. Candidates are the cases ever dispatched to one of them (whatever
            unit leads them now, and whenever the dispatch was recorded), so a reader's scope is
            "events attributed to units in the reader's scope" (``assessment_scope_unit_ids``),
            never "cases currently led by units in scope".
        cases: further restrict to a queryset of ``Case`` (None for all). The report pages do not
            use it for scoping (a unit's returned cases are no longer visible to it).
        as_of: aware datetime the report is made at (default now); a clock still running at
            ``as_of`` is neither on time nor late yet.
    """

    def __init__(self, *, period: Period, unit_ids: list[int] | None = None,
                 cases: QuerySet | None = None, as_of: datetime | None = None) -> None:
        self.period = period
        self.unit_ids = list(unit_ids) if unit_ids is not None else None
        self.cases = cases
        self.as_of = as_of or datetime.now(tz=UTC)
        self.d = _Dialect(connection.vendor)
        tag = uuid.uuid4().hex[:10]
        self.ev, self.asg, self.clk, self.cal, self.cand = (
            f"asm_{n}_{tag}" for n in ("ev", "asg", "clk", "cal", "cand")
        )
        # Every event up to the report time is read: a later event can still change a figure of
        # the period (a return months after the dispatch), and the dashboard and the report of
        # the same period must read the same events.
        self.horizon = self.as_of + timedelta(seconds=1)
        self._cal_built = False
        self.cal_units: list[int] = []  # units counted on their own calendar in {cal}

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> AssessmentFacts:
        self.build()
        return self

    def __exit__(self, *exc) -> None:
        self.drop()

    def _exec(self, sql: str, params=()) -> None:
        with connection.cursor() as cur:
            cur.execute(sql, params)

    def query(self, sql: str, params=()) -> list[tuple]:
        """Run ``sql`` (which may name the tables as {ev}, {asg}, {clk}, {cal}) and return all rows."""
        with connection.cursor() as cur:
            cur.execute(sql.format(ev=self.ev, asg=self.asg, clk=self.clk, cal=self.cal), params)
            return cur.fetchall()

    def _candidates(self) -> tuple[str, list] | None:
        """SQL selecting the candidate case ids, or None when every case is a candidate."""
        d = self.d
        if self.unit_ids is None and self.cases is None:
            return None
        params: list = []
        if self.unit_ids is not None:
            if not self.unit_ids:
                return "SELECT c.id FROM casework_case c WHERE 1 = 0", []
            marks = ", ".join(["%s"] * len(self.unit_ids))
            # A UNION (not an OR) so that both halves use their index: cases led by the units now,
            # and cases ever dispatched to one of them (their dispatch events, through the
            # (action, at) index). No filter on when the case or the event was recorded: a dispatch
            # recorded late with an earlier effective time belongs to the period of that time.
            sql = (
                f"SELECT c.id FROM casework_case c WHERE c.lead_unit_id IN ({marks}) "
                f"UNION SELECT r.case_id FROM casework_caseevent r WHERE r.action = 'dispatch' "
                f"AND {d.payload_int('unit_id', 'r')} IN ({marks})"
            )
            params += self.unit_ids + self.unit_ids
        else:
            sql = "SELECT c.id FROM casework_case c"
        if self.cases is not None:
            sub, sub_params = self.cases.values("id").query.sql_with_params()
            sql = f"SELECT k.id FROM ({sql}) k WHERE k.id IN ({sub})"
            params += list(sub_params)
        return sql, params

    def build(self) -> None:
        """Create the ``ev``, ``asg`` and ``clk`` tables (see the module docstring)."""
        d = self.d
        if d.pg:
            # Sorting the events for the window functions in memory, not on disk (whole-year runs).
            self._exec("SET work_mem = '512MB'")
        candidates = self._candidates()
        join, params = "", []
        if candidates is not None:
            # Materialise the candidates first: a small id table lets PostgreSQL read only their
            # events through the (case, seq) index instead of scanning the whole log.
            sql, params = candidates
            self._exec(f"CREATE TEMPORARY TABLE {self.cand} AS {sql}", params)
            if d.pg:
                self._exec(f"ANALYZE {self.cand}")
            join, params = f"JOIN {self.cand} k ON k.id = e.case_id", []
        actions = ", ".join(f"'{a}'" for a in RELEVANT_ACTIONS)
        self._exec(
            f"""
            CREATE TEMPORARY TABLE {self.ev} AS
            SELECT x.*, MAX(x.d_unit) OVER (PARTITION BY x.case_id, x.asg) AS unit_id
            FROM (
              SELECT e.case_id, e.seq, e.action,
                CASE WHEN e.action = 'publish_reply'
                     THEN COALESCE({d.payload_ts('published_at')}, {d.col_ts('e.at')})
                     ELSE {d.col_ts('e.at')} END AS at,
                CASE WHEN e.action = 'dispatch' THEN {d.payload_int('unit_id')} END AS d_unit,
                CASE WHEN e.action = 'dispatch'
                     THEN COALESCE({d.payload_ts('dispatched_at')}, {d.col_ts('e.at')})
                     WHEN e.action = 'reopen' THEN {d.col_ts('e.at')} END AS start_at,
                CASE WHEN e.action = 'dispatch' THEN {d.payload_ts('sign_for_due_at')} END AS sign_due,
                CASE WHEN e.action IN ('dispatch', 'reopen') THEN {d.payload_ts('reply_due_at')} END AS reply_due,
                CASE WHEN e.action = 'record_follow_up' THEN {d.payload_text('result')} END AS result,
                SUM(CASE WHEN e.action = 'dispatch' THEN 1 ELSE 0 END) OVER w AS asg,
                1 + SUM(CASE WHEN e.action IN ('return_to_office', 'reopen') THEN 1 ELSE 0 END) OVER w
                  - CASE WHEN e.action = 'return_to_office' THEN 1 ELSE 0 END AS rnd
              FROM casework_caseevent e {join}
              WHERE e.action IN ({actions}) AND {d.col_ts('e.at')} < %s
              WINDOW w AS (PARTITION BY e.case_id ORDER BY e.seq ROWS UNBOUNDED PRECEDING)
            ) x
            WHERE x.asg > 0
            """,
            [*params, d.param_ts(self.horizon)],
        )
        ext = (
            "SELECT x.case_id, x.round, MAX({nd}) AS new_due FROM casework_extension x "
            "WHERE x.decision = 'approved' AND x.clock = '{clock}' AND x.new_due_at IS NOT NULL "
            "GROUP BY x.case_id, x.round"
        )
        self._exec(
            f"""
            CREATE TEMPORARY TABLE {self.asg} AS
            SELECT a.case_id, a.asg, a.rnd, a.unit_id, a.dispatched_at, a.accepted_at, a.returned_at,
                   CASE WHEN x.new_due IS NULL THEN a.sign_due ELSE {d.greatest('a.sign_due', 'x.new_due')} END
                     AS sign_due
            FROM (
              SELECT case_id, asg, MAX(unit_id) AS unit_id,
                     MIN(CASE WHEN action = 'dispatch' THEN rnd END) AS rnd,
                     MAX(CASE WHEN action = 'dispatch' THEN start_at END) AS dispatched_at,
                     MAX(sign_due) AS sign_due,
                     MIN(CASE WHEN action = 'accept' THEN at END) AS accepted_at,
                     MIN(CASE WHEN action = 'return_to_office' THEN at END) AS returned_at
              FROM {self.ev} GROUP BY case_id, asg
            ) a
            LEFT JOIN ({ext.format(nd=d.col_ts('x.new_due_at'), clock='sign_for')}) x
              ON x.case_id = a.case_id AND x.round = a.rnd
            """
        )
        self._exec(
            f"""
            CREATE TEMPORARY TABLE {self.clk} AS
            SELECT k.case_id, k.rnd, k.unit_id, k.start_at, k.feedback_at, k.published_at, k.returned,
                   CASE WHEN x.new_due IS NULL THEN k.due_at ELSE {d.greatest('k.due_at', 'x.new_due')} END
                     AS due_at
            FROM (
              SELECT case_id, rnd, MAX(unit_id) AS unit_id,
                     MAX(start_at) AS start_at,
                     MAX(reply_due) AS due_at,
                     MIN(CASE WHEN action = 'submit_feedback' THEN at END) AS feedback_at,
                     MIN(CASE WHEN action = 'publish_reply' THEN at END) AS published_at,
                     MAX(CASE WHEN action = 'return_to_office' THEN 1 ELSE 0 END) AS returned
              FROM {self.ev} GROUP BY case_id, rnd
            ) k
            LEFT JOIN ({ext.format(nd=d.col_ts('x.new_due_at'), clock='reply')}) x
              ON x.case_id = k.case_id AND x.round = k.rnd
            WHERE k.start_at IS NOT NULL
            """
        )
        if d.pg:
            # One statement for the three tables (the dashboard's data runs these on every request).
            self._exec(f"ANALYZE {self.ev}, {self.asg}, {self.clk}")

    def calendar_table(self) -> str:
        """Create (once) and return the table ``cal(u, d, n)``: ``n`` = working days up to and including ``d``.

        ``u`` is 0 for the bureau calendar and a unit id for each unit with its own exceptions
        (``UnitCalendarDay``; listed in :attr:`cal_units`), whose time is counted on its own
        calendar. Covers every Beijing date between the earliest clock start and the latest
        publication, so ``n(end) - n(start)`` equals :func:`casework.calendar.working_days_between`
        on that calendar (working days after the start date up to and including the end date).
        Join a clock to it on :meth:`cal_unit` of its unit.
        """
        if self._cal_built:
            return self.cal
        lo, hi = self.query(
            f"SELECT MIN({self.d.local_date('start_at')}), MAX({self.d.local_date('published_at')}) "
            "FROM {clk} WHERE published_at IS NOT NULL"
        )[0]
        self._exec(f"CREATE TEMPORARY TABLE {self.cal} (u integer, d {'date' if self.d.pg else 'text'}, n integer, "
                   "PRIMARY KEY (u, d))")
        if lo is not None:
            lo, hi = (v if isinstance(v, date) else date.fromisoformat(v) for v in (lo, hi))
            base = work_calendar()
            calendars = {0: base, **unit_calendars(base=base)}
            self.cal_units = sorted(u for u in calendars if u)
            rows = []
            for u, cal in calendars.items():
                n, day = 0, lo
                while day <= hi:
                    n += 1 if cal.is_working_day(day) else 0
                    rows.append((u, day if self.d.pg else day.isoformat(), n))
                    day += timedelta(days=1)
            with connection.cursor() as cur:
                cur.executemany(f"INSERT INTO {self.cal} (u, d, n) VALUES (%s, %s, %s)", rows)
        self._cal_built = True
        return self.cal

    def cal_unit(self, col: str) -> str:
        """SQL for the ``cal.u`` a unit column counts on (call after :meth:`calendar_table`)."""
        if not self.cal_units:
            return "0"
        return f"(CASE WHEN {col} IN ({', '.join(str(int(u)) for u in self.cal_units)}) THEN {col} ELSE 0 END)"

    def drop(self) -> None:
        """Drop the temporary tables."""
        tables = (self.ev, self.asg, self.clk, self.cal, self.cand)
        if self.d.pg:  # one statement (SQLite drops one table at a time)
            self._exec(f"DROP TABLE IF EXISTS {', '.join(tables)}")
        else:
            for table in tables:
                self._exec(f"DROP TABLE IF EXISTS {table}")
        if self.d.pg:
            self._exec("RESET work_mem")
