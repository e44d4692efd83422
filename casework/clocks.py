"""A case's clocks: started and stopped by the transitions, deadlines computed once and stored.

Every clock of a case (签收, 承办反馈, 网评办审核, 分管局领导审签, 答复, 回访) is a ``CaseClock`` row per
handling round, holding its start, its length from the deadline policy, its deadline and when it
stopped. The deadline is computed once when the clock starts (and again only when an approved
extension moves it, or when a superuser confirms a calendar year it reached into), so lists sort
and filter on it and the escalation sweep selects due clocks with one indexed query.

Which transition starts and stops which clock (:data:`TRANSITION_CLOCKS`):

=================  ===========================  ===========================
transition         starts                       stops
=================  ===========================  ===========================
(registration)     dispatch (交办, the 网评办's)  —
dispatch           sign_for, reply              dispatch
accept             handling                     sign_for
return_to_office   dispatch (new round)         every running clock
submit_feedback    office_review                handling
office_approve     leader_review                office_review
office_send_back   handling (afresh)            office_review
leader_approve     —                            leader_review
leader_send_back   handling (afresh)            leader_review
publish_reply      follow_up                    reply
revise_after_...   office_review (afresh)       —
record_follow_up   —                            follow_up
reopen             handling, reply (new round)  follow_up
archive            —                            every running clock
reject_invalid     —                            every running clock
merge              —                            every running clock
=================  ===========================  ===========================

The 交办 clock (快速批办, issue 13 §5) is the 网评办's own: it starts when a message is registered
(by hand, by import — the batch path included, :func:`dispatch_clocks_start_bulk` — or by platform
push) and when a unit returns a case, and stops when the office decides (交办, 不予受理 or 并入主案件).
It has no unit (``CaseClock.unit`` empty), counts on the bureau's calendar and climbs its own rungs
(``EscalationRung.clocks`` containing ``dispatch``).

Clocks of the lead unit's work (sign_for, handling, reply) count on that unit's calendar (its own
exceptions included); review and follow-up clocks count on the bureau's calendar.
``Case.sign_for_due_at`` and ``Case.reply_due_at`` are kept as denormalised copies of the current
round's clocks for the admin lists.
"""

from datetime import datetime
import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from casework import calendar
from casework.defaults import DEFAULT_POLICY_LENGTHS
from casework.models import CalendarYear, Case, CaseClock, Clock, DeadlinePolicy

logger = logging.getLogger("casework")

TRANSITION_CLOCKS: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {
    "register": ((Clock.DISPATCH,), ()),
    "dispatch": ((Clock.SIGN_FOR, Clock.REPLY), (Clock.DISPATCH,)),
    "accept": ((Clock.HANDLING,), (Clock.SIGN_FOR,)),
    "return_to_office": ((Clock.DISPATCH,), None),
    "submit_feedback": ((Clock.OFFICE_REVIEW,), (Clock.HANDLING,)),
    "office_approve": ((Clock.LEADER_REVIEW,), (Clock.OFFICE_REVIEW,)),
    "office_send_back": ((Clock.HANDLING,), (Clock.OFFICE_REVIEW,)),
    "leader_approve": ((), (Clock.LEADER_REVIEW,)),
    "leader_send_back": ((Clock.HANDLING,), (Clock.LEADER_REVIEW,)),
    "publish_reply": ((Clock.FOLLOW_UP,), (Clock.REPLY,)),
    "revise_after_sign_off": ((Clock.OFFICE_REVIEW,), ()),
    "record_follow_up": ((), (Clock.FOLLOW_UP,)),
    "reopen": ((Clock.HANDLING, Clock.REPLY), (Clock.FOLLOW_UP,)),
    "archive": ((), None),
    "reject_invalid": ((), None),
    "merge": ((), None),
}
UNIT_CLOCKS = {Clock.SIGN_FOR, Clock.HANDLING, Clock.REPLY}
# The 网评办's own clocks: they run while no unit leads the case; the ladder tells the office.
OFFICE_CLOCKS = {Clock.DISPATCH}
CASE_FIELD = {Clock.SIGN_FOR: "sign_for_due_at", Clock.REPLY: "reply_due_at", Clock.DISPATCH: "dispatch_due_at"}


def deadline_policies(*, message_type: str, platform_id: int | None) -> dict[str, tuple[int, str]]:
    """Return each clock's length for a message type on a platform: {clock: (amount, unit)}.

    The platform's own row wins over the all-platforms row, which wins over the built-in default
    (:data:`casework.defaults.DEFAULT_POLICY_LENGTHS`). One query.
    """
    return deadline_policies_many(message_types=[message_type], platform_id=platform_id)[message_type]


def deadline_policies_many(*, message_types, platform_id: int | None) -> dict[str, dict[str, tuple[int, str]]]:
    """Return :func:`deadline_policies` of each of ``message_types``: ``{type: {clock: (amount, unit)}}``.

    Same rules, one query for all the types (a batch import has several in every batch).
    """
    types = sorted(set(message_types))
    lengths = {
        message_type: {
            clock: (amount, unit)
            for clock, (amount, unit) in DEFAULT_POLICY_LENGTHS.get(
                message_type, DEFAULT_POLICY_LENGTHS["other"]
            ).items()
        }
        for message_type in types
    }
    rows = DeadlinePolicy.objects.filter(message_type__in=types).filter(
        Q(platform__isnull=True) | Q(platform_id=platform_id)
    )
    # All-platforms rows first, so the platform's own rows overwrite them.
    for row in sorted(rows, key=lambda r: r.platform_id is not None):
        lengths[row.message_type][row.clock] = (row.amount, row.unit)
    return lengths


def clock_start(
    *,
    case: Case,
    clock: str,
    at: datetime,
    policies: dict[str, tuple[int, str]] | None = None,
    cal: calendar.WorkCalendar | None = None,
) -> CaseClock:
    """Start (or restart) ``clock`` of ``case``'s current round at ``at`` and store its deadline.

    Args:
        case: the case, locked by the calling service.
        clock: a ``Clock`` value.
        at: aware datetime the clock starts.
        policies: the result of :func:`deadline_policies` when the caller has it.
        cal: the calendar to count on (the unit's for unit clocks) when the caller has it.

    A restart in the same round (a send-back restarts the handling clock) recomputes the deadline
    from ``at``; the ladder steps already taken on that round's clock stay taken. A deadline that
    reaches into an unconfirmed calendar year is flagged on the row and logged.
    """
    if policies is None:
        policies = deadline_policies(message_type=case.message_type, platform_id=case.platform_id)
    unit = case.lead_unit if clock in UNIT_CLOCKS else None
    if cal is None:
        cal = calendar.work_calendar(unit=unit)
    amount, time_unit = policies[clock]
    deadline = cal.deadline(start=at, amount=amount, unit=time_unit)
    calendar.warn_unconfirmed(
        deadline.unconfirmed_years, what=f"the {clock} deadline of case {case.reference}"
    )
    row, _created = CaseClock.objects.update_or_create(
        case=case,
        clock=clock,
        round=case.handling_round,
        defaults={
            "unit": unit,
            "started_at": at,
            "amount": amount,
            "time_unit": time_unit,
            "extended_days": 0,
            "due_at": deadline.due_at,
            "stopped_at": None,
            "calendar_unconfirmed": ",".join(str(y) for y in deadline.unconfirmed_years),
        },
    )
    return row


def clocks_on_transition(*, case: Case, name: str, at: datetime | None = None) -> list[CaseClock]:
    """Stop and start ``case``'s clocks for transition ``name`` (see :data:`TRANSITION_CLOCKS`).

    Called by the transition service inside its transaction, after the transition saved the case.
    Keeps ``Case.sign_for_due_at`` / ``reply_due_at`` equal to the started clocks' deadlines.

    Args:
        case: the locked case after the transition (its ``handling_round`` is the new round).
        name: the transition's name; unknown names do nothing.
        at: aware datetime the transition took effect; defaults to now.

    Returns:
        the clocks started.
    """
    if name not in TRANSITION_CLOCKS:
        return []
    at = at or timezone.now()
    starts, stops = TRANSITION_CLOCKS[name]
    running = CaseClock.objects.filter(case=case, stopped_at__isnull=True)
    if stops is None:
        running.update(stopped_at=at)
    elif stops:
        running.filter(clock__in=stops).update(stopped_at=at)
    if not starts:
        return []
    policies = deadline_policies(message_type=case.message_type, platform_id=case.platform_id)
    calendars = {}
    started = []
    for clock in starts:
        unit = case.lead_unit if clock in UNIT_CLOCKS else None
        key = unit.pk if unit else None
        if key not in calendars:
            calendars[key] = calendar.work_calendar(unit=unit)
        started.append(
            clock_start(case=case, clock=clock, at=at, policies=policies, cal=calendars[key])
        )
    _sync_case_fields(case, started)
    return started


def _sync_case_fields(case: Case, clocks: list[CaseClock]) -> None:
    changed = []
    for row in clocks:
        field = CASE_FIELD.get(row.clock)
        if field and getattr(case, field) != row.due_at:
            setattr(case, field, row.due_at)
            changed.append(field)
    if changed:
        Case.objects.filter(pk=case.pk).update(**{f: getattr(case, f) for f in changed})


def dispatch_deadlines(*, message_types, platform_id: int | None, at: datetime) -> dict[str, tuple[int, str, object]]:
    """Return the 交办 clock of each message type started at ``at``: ``{type: (amount, unit, deadline)}``.

    The policy of the type on this platform (``deadline_policies``), counted on the bureau
    calendar (``deadline`` is a :class:`casework.calendar.Deadline`: ``due_at``,
    ``unconfirmed_years``). One policy query for all the types and one deadline computation per type
    present, so a batch import of thousands of cases costs a handful of statements. Logs a warning when the
    deadline reaches into a year whose calendar is unconfirmed.

    Args:
        message_types: iterable of ``MessageType`` values (repeats allowed).
        platform_id: the platform of the cases.
        at: aware start time.
    """
    cal = calendar.work_calendar()
    by_type: dict[str, tuple[int, str, object]] = {}
    policies = deadline_policies_many(message_types=message_types, platform_id=platform_id)
    for message_type in sorted(policies):
        amount, time_unit = policies[message_type][Clock.DISPATCH]
        deadline = cal.deadline(start=at, amount=amount, unit=time_unit)
        calendar.warn_unconfirmed(deadline.unconfirmed_years, what=f"the dispatch deadline of {message_type} cases")
        by_type[message_type] = (amount, time_unit, deadline)
    return by_type


def dispatch_clocks_start_bulk(*, cases: list[tuple[int, str]], platform_id: int | None, at: datetime) -> int:
    """Start the 交办 clock of many newly registered cases at once (the batch import's path).

    The batch twin of ``clocks_on_transition(name="register")``: one ``CaseClock`` per case in
    round 1, its deadline from the message type's policy on this platform, counted on the bureau
    calendar, and ``Case.dispatch_due_at`` set to it. Statements: the policies and the calendar
    once per message type present, one insert, one update per message type.

    Args:
        cases: ``(case_id, message_type)`` of cases just registered (state ``registered``, round 1).
        platform_id: their platform.
        at: aware registration time (the clocks start then).

    Returns:
        the number of clocks started.
    """
    if not cases:
        return 0
    by_type = dispatch_deadlines(message_types=[mt for _pk, mt in cases], platform_id=platform_id, at=at)
    CaseClock.objects.bulk_create(
        [
            CaseClock(
                case_id=pk, clock=Clock.DISPATCH, round=1, unit=None, started_at=at,
                amount=by_type[mt][0], time_unit=by_type[mt][1], due_at=by_type[mt][2].due_at,
                calendar_unconfirmed=",".join(str(y) for y in by_type[mt][2].unconfirmed_years),
            )
            for pk, mt in cases
        ]
    )
    ids = [pk for pk, _mt in cases]
    for message_type, (_a, _u, deadline) in by_type.items():
        Case.objects.filter(pk__in=ids, message_type=message_type).update(dispatch_due_at=deadline.due_at)
    return len(cases)


def dispatch_clocks_backfill(*, at: datetime | None = None) -> int:
    """Start the 交办 clock of every registered case that has none running (once, after upgrading).

    Cases registered before the 交办 clock existed (issue 13 §5) wait in ``registered`` without
    one. Their clock starts at ``at`` (default now: the rule applies from the upgrade, so old
    messages do not all escalate to the leaders at once), in their current round, with the
    policy of their type and platform. Idempotent: a case with a running 交办 clock is left alone.

    Returns:
        the number of clocks started.
    """
    at = at or timezone.now()
    running = CaseClock.objects.filter(clock=Clock.DISPATCH, stopped_at__isnull=True).values("case_id")
    count = 0
    for case in Case.objects.filter(state="registered").exclude(pk__in=running).iterator():
        with transaction.atomic():
            locked = Case.objects.select_for_update().get(pk=case.pk)
            if locked.state != "registered":
                continue
            row = clock_start(case=locked, clock=Clock.DISPATCH, at=at)
            _sync_case_fields(locked, [row])
            count += 1
    return count


def clock_extend(*, case: Case, clock: str, working_days: int) -> CaseClock | None:
    """Move the running ``clock`` of ``case``'s current round by ``working_days`` (approved 延期).

    Args:
        case: the case, locked by the calling service.
        clock: a ``Clock`` value.
        working_days: how many working days to add to the stored deadline (>= 0).

    Returns:
        the moved clock, or None when that clock does not run (nothing to move).

    Raises:
        ValueError: when ``working_days`` is negative.
    """
    if working_days < 0:
        raise ValueError("working_days must be >= 0")
    row = (
        CaseClock.objects.select_for_update()
        .filter(case=case, clock=clock, round=case.handling_round, stopped_at__isnull=True)
        .first()
    )
    if row is None:
        return None
    cal = calendar.work_calendar(unit=row.unit)
    row.extended_days += working_days
    row.due_at = cal.add_working_days(row.due_at, working_days)
    years = set(filter(None, row.calendar_unconfirmed.split(",")))
    years |= {str(y) for y in cal.unconfirmed_between(
        timezone.localtime(row.started_at).date(), timezone.localtime(row.due_at).date()
    )}
    row.calendar_unconfirmed = ",".join(sorted(years))
    row.save(update_fields=["extended_days", "due_at", "calendar_unconfirmed"])
    _sync_case_fields(case, [row])
    return row


def clocks_recompute_policy(*, case: Case) -> list[CaseClock]:
    """Recompute the running clocks of ``case``'s current round on the policy now in force for it.

    Used when the message type is corrected: each running clock keeps its start and its approved
    extensions, and takes the length of the new type's policy (DESIGN.md §4). The ladder steps
    already taken on those clocks stay taken.

    Args:
        case: the case, locked by the calling service, with its new ``message_type``.

    Returns:
        the recomputed clocks.
    """
    policies = deadline_policies(message_type=case.message_type, platform_id=case.platform_id)
    rows = list(
        CaseClock.objects.select_for_update(of=("self",))  # the unit (nullable) is read, not locked
        .filter(case=case, round=case.handling_round, stopped_at__isnull=True)
        .select_related("unit")
    )
    calendars: dict = {}
    for row in rows:
        if row.unit_id not in calendars:
            calendars[row.unit_id] = calendar.work_calendar(unit=row.unit)
        row.amount, row.time_unit = policies[row.clock]
        deadline = calendars[row.unit_id].deadline(
            start=row.started_at, amount=row.amount, unit=row.time_unit, extra_days=row.extended_days
        )
        row.due_at = deadline.due_at
        row.calendar_unconfirmed = ",".join(str(y) for y in deadline.unconfirmed_years)
        row.save(update_fields=["amount", "time_unit", "due_at", "calendar_unconfirmed"])
    _sync_case_fields(case, rows)
    return rows


def clocks_recompute_year(*, year: int) -> int:
    """Recompute the running clocks flagged with ``year`` once its calendar changed or was confirmed.

    Each is recomputed from its start, length and extensions on the current calendar, and its
    flag keeps only the years still unconfirmed. Returns how many clocks were recomputed.
    """
    rows = list(
        CaseClock.objects.filter(stopped_at__isnull=True, calendar_unconfirmed__contains=str(year))
        .select_related("case", "unit")
    )
    calendars: dict = {}
    for row in rows:
        key = row.unit_id
        if key not in calendars:
            calendars[key] = calendar.work_calendar(unit=row.unit)
        deadline = calendars[key].deadline(
            start=row.started_at, amount=row.amount, unit=row.time_unit, extra_days=row.extended_days
        )
        row.due_at = deadline.due_at
        row.calendar_unconfirmed = ",".join(str(y) for y in deadline.unconfirmed_years)
        row.save(update_fields=["due_at", "calendar_unconfirmed"])
        if row.round == row.case.handling_round:
            _sync_case_fields(row.case, [row])
    return len(rows)


def unconfirmed_calendar_warnings(*, case: Case) -> list[str]:
    """Return the years (as strings) whose unconfirmed calendar a running clock of ``case`` uses.

    For the admin's warning on the case page; one query.
    """
    years: set[str] = set()
    for value in CaseClock.objects.filter(
        case=case, stopped_at__isnull=True
    ).exclude(calendar_unconfirmed="").values_list("calendar_unconfirmed", flat=True):
        years |= set(value.split(","))
    return sorted(years)



def calendar_unconfirmed_years_in_use() -> list[str]:
    """Return the years whose unconfirmed calendar some running clock's deadline depends on.

    For the admin's warning on the case list and the calendar pages. One query on a partial index.
    """
    years: set[str] = set()
    for value in (
        CaseClock.objects.filter(stopped_at__isnull=True)
        .exclude(calendar_unconfirmed="")
        .values_list("calendar_unconfirmed", flat=True)
        .distinct()
    ):
        years |= set(value.split(","))
    return sorted(years)


@transaction.atomic
def calendar_year_confirm(*, year: int, acting_user, source: str = "") -> int:
    """Confirm that ``year``'s official schedule is in the calendar; recompute the clocks using it.

    Args:
        year: the calendar year whose holidays and 调休 days a superuser has entered or imported.
        acting_user: a superuser.
        source: where the schedule comes from (e.g. 国务院办公厅关于2027年部分节假日安排的通知).

    Returns:
        the number of running clocks whose deadline was recomputed and unflagged.

    Raises:
        PermissionDenied: when ``acting_user`` is not a superuser.
    """
    from django.core.exceptions import PermissionDenied

    if not acting_user.is_superuser:
        raise PermissionDenied(_("只有系统管理员可以确认工作日历。"))
    CalendarYear.objects.update_or_create(
        year=year,
        defaults={
            "confirmed": True,
            "confirmed_by": acting_user,
            "confirmed_at": timezone.now(),
            **({"source": source} if source else {}),
        },
    )
    count = clocks_recompute_year(year=year)
    logger.info("calendar year %s confirmed by %s; %s clocks recomputed", year, acting_user, count)
    return count
