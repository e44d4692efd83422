"""The escalation ladder, as data (DESIGN.md §4).

The rungs are ``EscalationRung`` rows, editable by superusers; the defaults
(:data:`casework.defaults.DEFAULT_LADDER`) are:

=========  =========  ====================================================  =====================
level      threshold  what happens                                          needs level first
=========  =========  ====================================================  =====================
remind     -1         reminder e-mail to the lead unit's handlers            —
urge        0         督办单 opened; e-mail to unit head, handlers, 网评办      —
escalate   +3         e-mail to the 分管局领导 and 网评办                       urge
refer      +5         纪检督察 referral record; e-mail to the supervisors     escalate
=========  =========  ====================================================  =====================

A threshold is in working days relative to a stored clock deadline (``CaseClock.due_at``, see
:mod:`casework.clocks`). A rung with ``k >= 0`` is due when the deadline lies at least ``k``
working days before now (``due_at <= subtract_working_days(now, k)``; ``k = 0`` means the deadline
has passed). A rung with ``k < 0`` is due while the deadline is still ahead but at most ``-k``
working days away (``now < due_at <= add_working_days(now, -k)``), so a case first seen already
overdue gets the 督办单, not a "due soon" reminder. A referral rung with
``unit_open_notices_limit`` also fires on every case of a unit that has that many 督办单 left
unanswered for ``notice_answer_days`` working days.

Every step is an ``EscalationStep`` row under a unique constraint (case, clock, round, level), so it
happens at most once whatever the scheduler does (two beats, a redelivered task, two sweeps at
once). A rung that needs another fires only once that one exists, so a case climbs one step per
sweep. The sweep computes the cut-offs once and selects due clocks with one indexed query per
rung on the running clocks' deadlines, so with nothing due it runs a fixed number of queries.

Set-based (issue 11): the due clocks of a rung are claimed in batches (``FOR UPDATE SKIP LOCKED``
on the cases, so several workers share one sweep) and each batch writes its steps, 督办单,
referrals (snapshots read for the whole batch), audit events (chained on the heads of all its
cases, read in one query) and heads in a fixed number of statements. Each batch also leaves an
``EscalationDigestBatch`` row (its steps' ids) in its transaction; at the end of the rung the sweep writes one
digest e-mail per recipient listing all his cases (``DigestLine`` records which e-mail listed
which step) and hands it to Celery after commit. A sweep that stops before its digests leaves
them to the next sweep: never lost, never sent twice. Statements grow with batches, not cases.
"""

from collections import namedtuple
from datetime import UTC, datetime, timedelta
import hashlib
from html import escape
import json
import logging
import re

from django.conf import settings
from django.db import connection, transaction
from django.db.models import BigIntegerField, Count, Exists, F, Func, OuterRef, Q, Subquery, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Substr
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

from accounts import roles
from accounts.models import Unit
from accounts.selectors import (
    comment_office_emails,
    leader_emails_for_unit,
    role_emails,
    unit_by_function,
    unit_staff_emails,
    user_covers_unit,
)
from casework import audit, calendar, outbox
from casework.access import user_can_see_case
from casework.clocks import OFFICE_CLOCKS, UNIT_CLOCKS
from casework.models import (
    AuditChainHead,
    Case,
    CaseClock,
    CaseEvent,
    Clock,
    DigestLine,
    DisciplineReferral,
    EscalationDigestBatch,
    EscalationLevel,
    EscalationRung,
    EscalationStep,
    Notification,
    State,
    SupervisionNotice,
    chain_head_mac,
    event_hash,
)
from casework.selectors import notices_awaiting_answer
from casework.services import TransitionRefused, case_lock, event_append
from casework.supervision_rules import notice_answer_due, notices_past_answer_due_q
from casework.text import mask_personal_numbers

logger = logging.getLogger("casework")

TRIGGER_LADDER = "ladder"
TRIGGER_UNIT_NOTICES = "unit_notices"


def ladder_rungs() -> list[EscalationRung]:
    """Return the active rungs, highest threshold first (the order the sweep takes them). One query."""
    return list(
        EscalationRung.objects.filter(is_active=True)
        .select_related("requires")
        .order_by("-threshold_days", "level")
    )


def _cutoff(cal: calendar.WorkCalendar, now: datetime, threshold_days: int) -> datetime:
    """Return the latest deadline on which a rung with ``threshold_days`` is due at ``now``."""
    if threshold_days >= 0:
        return cal.subtract_working_days(now, threshold_days)
    return cal.add_working_days(now, -threshold_days)


def _is_due(*, due_at: datetime, now: datetime, rung: EscalationRung, cutoff: datetime) -> bool:
    if due_at > cutoff:
        return False
    return rung.threshold_days >= 0 or due_at > now


def _step_exists(level: str):
    return EscalationStep.objects.filter(
        case=OuterRef("case_id"), clock=OuterRef("clock"), round=OuterRef("round"), level=level
    )


def _clock_calendar(clock: CaseClock, cal: calendar.WorkCalendar, unit_cals: dict | None) -> calendar.WorkCalendar:
    """Return the calendar ``clock`` counts on: its unit's for a unit clock, else the bureau's."""
    if clock.clock not in UNIT_CLOCKS or not clock.unit_id:
        return cal
    if unit_cals is None:
        return calendar.work_calendar(unit=clock.unit)
    return unit_cals.get(clock.unit_id, cal)


def _per_unit_q(field: str, bureau_cutoff: datetime, unit_cutoffs: dict[int, datetime] | None,
                unit_field: str, only_clocks: bool) -> Q:
    """``field <= cutoff`` with each unit of ``unit_cutoffs`` on its own cut-off (its calendar)."""
    if not unit_cutoffs:
        return Q(**{f"{field}__lte": bureau_cutoff})
    own = Q(**{f"{unit_field}__in": list(unit_cutoffs)})
    if only_clocks:
        own &= Q(clock__in=list(UNIT_CLOCKS))
    q = Q(**{f"{field}__lte": bureau_cutoff}) & ~own
    for unit_id, cut in unit_cutoffs.items():
        unit_q = Q(**{unit_field: unit_id, f"{field}__lte": cut})
        if only_clocks:
            unit_q &= Q(clock__in=list(UNIT_CLOCKS))
        q |= unit_q
    return q


def escalation_due_clocks(
    *, now: datetime, rung: EscalationRung, cutoff: datetime,
    unit_cutoffs: dict[int, datetime] | None = None,
) -> list[int]:
    """Return ids of running clocks on which ``rung`` is due at ``now`` and not yet taken.

    One query on the partial index of running clocks' deadlines, without a join to the cases; the
    taken and required steps are checked by the database through the (case, clock, round, level)
    unique index. (A running clock always has a lead unit: a return stops every clock; the lock
    in :func:`case_escalate` re-checks it.)

    Args:
        now: aware datetime of the sweep.
        rung: an active ``EscalationRung``.
        cutoff: ``_cutoff(calendar, now, rung.threshold_days)`` on the bureau calendar.
        unit_cutoffs: ``{unit_id: cutoff}`` on the calendar of each unit with its own exceptions
            (:func:`casework.calendar.unit_calendars`); that unit's clocks (签收, 承办反馈, 答复)
            count on it, so its own day off moves its escalation as it moved its deadline.
    """
    return list(_due_clocks_qs(now=now, rung=rung, cutoff=cutoff, unit_cutoffs=unit_cutoffs)
                .values_list("pk", flat=True))


def _due_clocks_qs(*, now, rung, cutoff, unit_cutoffs=None):
    """The query of :func:`escalation_due_clocks`, ordered by deadline (``CaseClock.objects.none()`` when
    the rung names no clock)."""
    if not rung.clocks:
        return CaseClock.objects.none()
    qs = CaseClock.objects.filter(
        _per_unit_q("due_at", cutoff, unit_cutoffs, "unit_id", only_clocks=True),
        stopped_at__isnull=True,
        clock__in=rung.clocks,
    ).filter(~Exists(_step_exists(rung.level)))
    if rung.threshold_days < 0:
        qs = qs.filter(due_at__gt=now)
    if rung.requires_id:
        qs = qs.filter(Exists(_step_exists(rung.requires.level)))
    return qs.order_by("due_at")


def unit_notice_referrals_due(
    *, now: datetime, rung: EscalationRung, cal: calendar.WorkCalendar, unit_cals: dict | None = None,
) -> list[int]:
    """Return ids of clocks to refer because their unit has too many unanswered 督办单.

    A 督办单 counts once it has been awaiting its unit's answer
    (:func:`casework.selectors.notices_awaiting_answer_q`: not answered, not closed, the case
    active and still led by the unit it was addressed to) for ``rung.notice_answer_days`` working
    days, counted on that unit's calendar (``unit_cals``, default the bureau's ``cal``). Every such
    notice of a unit with at least ``rung.unit_open_notices_limit`` of them names the clock (of its
    ladder step) to refer, unless that clock's ``rung`` step exists; so only cases the unit still
    holds are referred, and a notice left behind on a case it returned never counts. Two queries
    (one when no unit is over the limit).
    """
    return [pk for pk, _case in _unit_notice_rows(now=now, rung=rung, cal=cal, unit_cals=unit_cals)]


def _unit_notice_rows(*, now, rung, cal, unit_cals=None) -> list[tuple[int, int]]:
    """The ``(clock id, case id)`` rows of :func:`unit_notice_referrals_due`, one clock per case
    (none when the rung has no unit limit or no unit is over it; that check is its own query).

    A 督办单 opened by hand or by a quality rung (issue 13) counts once its own answer deadline
    (``answer_due_at``) has passed; it has no ladder step, so it names the case's running clocks
    of the rung, and a case is referred once whichever of its clocks is named.
    """
    if not (rung.opens_referral and rung.unit_open_notices_limit):
        return []
    overdue_since = cal.subtract_working_days(now, rung.notice_answer_days)
    unit_since = {uid: c.subtract_working_days(now, rung.notice_answer_days) for uid, c in (unit_cals or {}).items()}
    unanswered = notices_awaiting_answer().filter(
        Q(_per_unit_q("opened_at", overdue_since, unit_since, "unit_id", only_clocks=False), step__isnull=False)
        | notices_past_answer_due_q(now=now)  # issue 13: notices by hand, past their answer deadline
    )
    units = list(
        unanswered.values("unit_id")
        .annotate(n=Count("pk"))
        .filter(n__gte=rung.unit_open_notices_limit)
        .values_list("unit_id", flat=True)
    )
    if not units:
        return []
    notices = unanswered.filter(
        unit_id__in=units,
        case_id=OuterRef("case_id"),
        step__clock=OuterRef("clock"),
        step__round=OuterRef("round"),
    )
    by_hand = unanswered.filter(unit_id__in=units, case_id=OuterRef("case_id"), step__isnull=True)
    rows = list(
        CaseClock.objects.filter(
            stopped_at__isnull=True,
            case_id__in=unanswered.filter(unit_id__in=units).values("case_id"),
        )
        .filter(Exists(notices) | (Q(clock__in=rung.clocks) & Exists(by_hand)))
        .filter(~Exists(_step_exists(rung.level)))
        .order_by("due_at")
        .values_list("pk", "case_id")
    )
    seen: set[int] = set()
    return [(pk, case_id) for pk, case_id in rows if not (case_id in seen or seen.add(case_id))]


# ---------------------------------------------------------------- the set-based sweep

# Due clocks claimed and written per transaction. A batch is a few statements whatever its size;
# smaller batches let several workers share a sweep more evenly and hold each lock shorter.
BATCH_SIZE = 500
# Steps taken by one rung after which the sweep refreshes the steps table's statistics.
ANALYZE_AFTER = 1000
# Characters of the message shown for each case of a digest.
EXCERPT_CHARS = 120
# Cases named in a digest's subject before "等 n 件".
SUBJECT_REFERENCES = 3


def _recipients_for(rung: EscalationRung, unit, cache: dict) -> list[str]:
    """Return the addresses ``rung`` mails about a case of ``unit``; each part read once per sweep."""

    def part(key, read):
        if key not in cache:
            cache[key] = read()
        return cache[key]

    emails: list[str] = []
    if rung.notify_handlers:
        emails += part(("handlers", unit.pk), lambda: unit_staff_emails(unit=unit, role=roles.HANDLER))
    if rung.notify_unit_head:
        emails += part(("heads", unit.pk), lambda: unit_staff_emails(unit=unit, heads_only=True))
    if rung.notify_comment_office:
        emails += part(("office",), comment_office_emails)
    if rung.notify_leaders:  # the unit's 分管局领导, else every leader
        emails += part(("leaders", unit.pk), lambda: leader_emails_for_unit(unit=unit))
    if rung.notify_supervisors:
        emails += part(("supervisors",), lambda: role_emails(role=roles.SUPERVISOR))
    return sorted(set(emails))


def _office_recipients_by_role(rung: EscalationRung, cache: dict) -> list[str]:
    """The addresses of an office-clock rung when no active unit has the 网评办 function.

    The office by role (its dispatchers and reviewers) for ``notify_comment_office`` or
    ``notify_unit_head``, and every leader for ``notify_leaders`` (issue 13 §5).
    """
    key = ("office-by-role", rung.pk)
    if key not in cache:
        emails = comment_office_emails() if (rung.notify_comment_office or rung.notify_unit_head) else []
        cache[key] = sorted(set(emails + (role_emails(role=roles.LEADER) if rung.notify_leaders else [])))
    return cache[key]


def office_clock_unit(*, clock: str) -> Unit | None:
    """Return the office that answers for ``clock`` when it is one of the 网评办's own (交办), else None.

    The 交办 clock runs while no unit leads the case (issue 13 §5): its rungs go to the 网评办 (its
    head with ``notify_unit_head``, its dispatchers and reviewers with ``notify_comment_office``)
    and to the 网评办's 分管局领导, or every leader when none is configured (``notify_leaders``).
    None too when no active unit has the 网评办 function; the recipients are then found by role.
    """
    if clock not in OFFICE_CLOCKS:
        return None
    return unit_by_function(function=Unit.Function.COMMENT_OFFICE)


def _iso(value: datetime | None) -> str | None:
    return timezone.localtime(value).isoformat() if value else None


def _by_case(rows, key="case_id") -> dict:
    grouped: dict = {}
    for row in rows:
        grouped.setdefault(row[key] if isinstance(row, dict) else getattr(row, key), []).append(row)
    return grouped


def _snapshots(*, targets: list[tuple[Case, CaseClock]], now: datetime, cal_for) -> list[dict]:
    """Return the referral material of each ``(case, clock)``, read for all of them at once.

    The same fields, in the same order and form, as the referral snapshot always had (issue 11:
    "referral snapshots keep every field"): the case, its clock, every clock, the timeline of
    audit events, the ladder steps (the one being taken included), the 督办单 and the e-mails about
    the case (those naming it and the digests listing it). Times are ISO 8601 in Beijing time.
    Five queries whatever the number of cases; taken inside the transaction holding their locks.

    Args:
        targets: the locked cases (``lead_unit`` joined) and the clocks being referred.
        now: the sweep's time (``taken_at``).
        cal_for: ``clock -> WorkCalendar`` the clock counts on (``working_days_overdue``).
    """
    ids = sorted({case.pk for case, _clock in targets})
    clocks = _by_case(CaseClock.objects.filter(case_id__in=ids).order_by("case_id", "round", "started_at", "pk"))
    events = _by_case(CaseEvent.objects.filter(case_id__in=ids).select_related("actor").order_by("case_id", "seq"))
    steps = _by_case(EscalationStep.objects.filter(case_id__in=ids).order_by("case_id", "happened_at", "pk"))
    notices = _by_case(
        SupervisionNotice.objects.filter(case_id__in=ids).select_related("unit").order_by("case_id", "opened_at", "pk")
    )
    # The e-mails without their bodies (a digest's body lists thousands of cases): each read once.
    listed = list(DigestLine.objects.filter(step__case_id__in=ids).values_list("step__case_id", "notification_id"))
    fields = ("pk", "case_id", "subject", "recipients", "created_at", "sent_at")
    found = {n.pk: n for n in Notification.objects.filter(
        Q(case_id__in=ids) | Q(pk__in={pk for _case, pk in listed})).only(*fields)}
    mails: dict[int, dict[int, Notification]] = {}
    wanted = set(ids)
    for n in found.values():
        if n.case_id in wanted:
            mails.setdefault(n.case_id, {})[n.pk] = n
    for case_id, pk in listed:
        mails.setdefault(case_id, {})[pk] = found[pk]
    result = []
    for case, clock in targets:
        result.append({
            "reference": case.reference,
            "subject": case.subject,
            "body": case.body,
            "message_type": case.message_type,
            "state": case.state,
            "lead_unit": case.lead_unit.name if case.lead_unit else "",
            "handling_round": case.handling_round,
            "clock": clock.clock,
            "due_at": _iso(clock.due_at),
            "working_days_overdue": cal_for(clock).working_days_between(clock.due_at, now),
            "submitted_at": _iso(case.submitted_at),
            "dispatched_at": _iso(case.dispatched_at),
            "accepted_at": _iso(case.accepted_at),
            "taken_at": _iso(now),
            "clocks": [
                {"clock": c.clock, "round": c.round, "started_at": _iso(c.started_at),
                 "due_at": _iso(c.due_at), "stopped_at": _iso(c.stopped_at)}
                for c in clocks.get(case.pk, [])
            ],
            "timeline": [
                {"seq": e.seq, "action": e.action, "from": e.from_state, "to": e.to_state,
                 "actor": str(e.actor) if e.actor else "", "at": _iso(e.at), "reason": e.reason,
                 "payload": e.payload, "hash": e.hash}
                for e in events.get(case.pk, [])
            ],
            "escalation_steps": [
                {"clock": s.clock, "round": s.round, "level": s.level, "due_at": _iso(s.due_at),
                 "happened_at": _iso(s.happened_at)}
                for s in steps.get(case.pk, [])
            ],
            "notices": [
                {"unit": n.unit.name, "opened_at": _iso(n.opened_at), "content": n.content,
                 "answer": n.answer, "answered_at": _iso(n.answered_at)}
                for n in notices.get(case.pk, [])
            ],
            "notifications": [
                {"subject": n.subject, "recipients": n.recipients, "created_at": _iso(n.created_at),
                 "sent_at": _iso(n.sent_at)}
                for n in sorted(mails.get(case.pk, {}).values(), key=lambda n: (n.created_at, n.pk))
            ],
        })
    return result


def referral_snapshot(case: Case, *, clock: str, due_at: datetime, now: datetime, cal) -> dict:
    """Return one case's referral material, the same dict a ladder referral freezes (:func:`_snapshots`).

    Used by the referrals made by hand (办理不力, :mod:`casework.supervision`), so every referral
    keeps the same fields whoever opens it.

    Args:
        case: the case, its ``lead_unit`` loaded, locked by the caller's transaction.
        clock: the clock the referral is about (``Clock`` value, or ``""`` when none ran).
        due_at: that clock's aware deadline (``now`` when none ran).
        now: aware time of the referral (``taken_at``).
        cal: the ``WorkCalendar`` the clock counts on (``working_days_overdue``).
    """
    target = CaseClock(case_id=case.pk, clock=clock, due_at=due_at)
    return _snapshots(targets=[(case, target)], now=now, cal_for=lambda _clock: cal)[0]


def _column_cast(field) -> str:
    """The PostgreSQL type ``field``'s column is read as, without a length (``varchar``, not
    ``varchar(20)``): an explicit cast would cut a long value silently, the insert into the column
    refuses it as ``bulk_create`` would."""
    return re.sub(r"\(\d+\)", "", field.db_type(connection).split(" CHECK")[0])


def _rows_insert(model, names: list[str], rows: list[tuple], *, returning: bool = False, **constants) -> list:
    """Insert ``rows`` of ``model`` (tuples of the fields ``names``) and ``constants`` in one statement.

    Rows are plain tuples, not model instances (issue 11: building ~50,000 instances was most of
    the sweep's Python time). Every other concrete field gets its model default (``auto_now`` and
    ``auto_now_add`` fields the current time), as ``bulk_create`` would write it. On PostgreSQL the
    rows travel as one JSON document, an array of rows (``INSERT … SELECT … FROM
    jsonb_array_elements(…) WITH ORDINALITY``): the statement's size and its compilation do not
    grow with the rows, and the document is encoded by the C JSON encoder; a datetime travels as
    its ISO 8601 text, a JSON field's value nested in the document, and each constant (and
    default) is one parameter prepared by its field. Elsewhere (SQLite) it is ``bulk_create``.

    Args:
        model: the model class; its primary key must be an auto field unless named.
        names: field names (``attname`` for a foreign key, e.g. ``"case_id"``), the order of each row.
        rows: the values, in Python form (aware datetimes, ints, strings, dicts for a JSON field).
        returning: return the new primary keys, in the order of ``rows``.
        constants: field name → one value for every row.

    Returns:
        The new primary keys in the order of ``rows`` when ``returning``, else ``[]``.

    Raises:
        ValueError: on PostgreSQL, a JSON field with its own encoder among ``names``.
    """
    if not rows:
        return []
    meta = model._meta
    if connection.vendor != "postgresql":
        objs = model.objects.bulk_create(
            [model(**dict(zip(names, row, strict=True)), **constants) for row in rows])
        return [obj.pk for obj in objs] if returning else []
    quote = connection.ops.quote_name
    fields = {name: meta.get_field(name) for name in [*names, *constants]}
    select, params = [], []
    for i, name in enumerate(names):
        field = fields[name]
        cast = _column_cast(field)
        if cast == "jsonb":
            if getattr(field, "encoder", None) is not None:  # its values would need that encoder
                raise ValueError(f"{model.__name__}.{name}: a JSON field with an encoder is not supported")
            select.append(f"CASE WHEN jsonb_typeof(d.r->{i}) = 'null' THEN NULL ELSE d.r->{i} END")
        else:
            select.append(f"(d.r->>{i})::{cast}")
    columns = [fields[name].column for name in [*names, *constants]]
    for name, value in constants.items():
        field = fields[name]
        select.append(f"%s::{_column_cast(field)}")
        params.append(field.get_db_prep_save(value, connection))
    given = {f.column for f in fields.values()}
    for field in meta.concrete_fields:
        if field.column in given or (field.primary_key and field.get_internal_type().endswith("AutoField")):
            continue
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            value = timezone.now()
        else:
            value = field.get_default()
        columns.append(field.column)
        select.append(f"%s::{_column_cast(field)}")
        params.append(field.get_db_prep_save(value, connection))
    dates = [i for i, name in enumerate(names) if fields[name].get_internal_type() == "DateTimeField"]
    if dates:
        rows = [list(row) for row in rows]
        for row in rows:
            for i in dates:
                if row[i] is not None:
                    row[i] = row[i].isoformat()
    params.append(json.dumps(rows, ensure_ascii=False, separators=(",", ":")))
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
        f"SELECT {', '.join(select)} FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS d(r, n) "
        "ORDER BY d.n"
    )
    if returning:
        sql += f" RETURNING {quote(meta.pk.column)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [value for (value,) in cursor.fetchall()] if returning else []


def _ids(values):
    """``values`` (ids) for an ``__in`` filter: on PostgreSQL one array parameter, as its text.

    ``pk__in=[…500 ids…]`` is 500 placeholders that Django prepares and the driver splits and
    adapts one by one (a second of the sweep's Python time at 10,000 due); ``IN (SELECT
    unnest(%s::bigint[]))`` is one, and the planner probes the same index. Elsewhere the list.
    """
    values = list(values)
    if connection.vendor != "postgresql":
        return values
    return RawSQL("SELECT unnest(%s::bigint[])", ["{" + ",".join(map(str, values)) + "}"])


class _Microseconds(Func):
    """A ``timestamptz`` as whole microseconds since 1970-01-01 UTC (``bigint``), exact on every
    PostgreSQL (``EXTRACT`` returns a double before 14: the whole seconds and the microseconds are
    each exact in it)."""

    template = ("(EXTRACT(EPOCH FROM date_trunc('second', %(expressions)s))::bigint * 1000000"
                " + MOD(EXTRACT(MICROSECONDS FROM %(expressions)s)::bigint, 1000000))")
    output_field = BigIntegerField()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(name: str):
    """The expression reading the datetime field ``name`` for :func:`_moment` (to select in
    ``values()``). On PostgreSQL the moment as an integer (:class:`_Microseconds`): the driver's
    timestamp parser, in Python, cost a third of a second per 50,000 values. Elsewhere the field."""
    return _Microseconds(name) if connection.vendor == "postgresql" else F(name)


def _moment(value):
    """The aware UTC datetime of a value read with :func:`_micros` (None stays None)."""
    if value is None or isinstance(value, datetime):
        return value
    return _EPOCH + timedelta(0, 0, value)  # positional: the same timedelta, built faster


def _ids_insert(model, id_fields: list[str], columns: list[list[int]], **constants) -> None:
    """Insert rows of ``model`` made of id columns (``columns[i]`` for ``id_fields[i]``) and constants.

    One statement; on PostgreSQL each id column travels as the text of an array (``'{1,2,3}'``),
    which the driver passes as it is (adapting thousands of ints one by one is what cost). Elsewhere
    ``bulk_create``.
    """
    if not columns or not columns[0]:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create([
            model(**dict(zip(id_fields, values, strict=True)), **constants)
            for values in zip(*columns, strict=True)])
        return
    meta = model._meta
    quote = connection.ops.quote_name
    names = [meta.get_field(name).column for name in id_fields] + [meta.get_field(name).column for name in constants]
    unnest = ", ".join("%s::bigint[]" for _name in id_fields)
    aliases = ", ".join(f"c{i}" for i in range(len(id_fields)))
    consts = "".join(", %s" for _name in constants)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(n) for n in names)}) "
            f"SELECT {aliases}{consts} FROM unnest({unnest}) AS u({aliases})",
            list(constants.values()) + ["{" + ",".join(map(str, column)) + "}" for column in columns],
        )


_HEX = re.compile(r"[0-9a-f]*")


def _hex(value: str) -> str:
    """``value`` when it is a hex digest (as every hash of the chain is), else ValueError."""
    if not _HEX.fullmatch(value):
        raise ValueError(f"not a hex digest: {value!r}")
    return value


def _heads_record(events: list) -> None:
    """Record the chain head of each case of ``events`` (its last one), sealed: one statement.

    ``events`` are sealed events or anything with their ``case_id``, ``seq`` and ``hash`` (the
    sweep's rows). The bulk form of :func:`casework.audit.chain_head_record` (an upsert on the case), with the
    head's MAC from :func:`casework.models.chain_head_mac`; on SQLite
    :func:`casework.audit.chain_heads_bulk_record`.
    """
    if connection.vendor != "postgresql":
        audit.chain_heads_bulk_record(events=events)
        return
    last: dict[int, CaseEvent] = {}
    for event in events:
        if event.case_id not in last or event.seq > last[event.case_id].seq:
            last[event.case_id] = event
    heads = list(last.values())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {AuditChainHead._meta.db_table} (case_id, event_count, head_hash, mac) "
            "SELECT * FROM unnest(%s::bigint[], %s::integer[], %s::varchar[], %s::varchar[]) "
            "ON CONFLICT (case_id) DO UPDATE SET event_count = EXCLUDED.event_count, "
            "head_hash = EXCLUDED.head_hash, mac = EXCLUDED.mac",
            # Each array as its text (ids, counts and hex digests need no quoting), passed by the
            # driver as it is: adapting the elements one by one cost more than the upsert.
            ["{" + ",".join(values) + "}" for values in (
                [str(e.case_id) for e in heads], [str(e.seq) for e in heads], [_hex(e.hash) for e in heads],
                [chain_head_mac(case_id=e.case_id, event_count=e.seq, head_hash=e.hash) for e in heads])],
        )


def _digest_lock_key(level: str) -> int:
    """The PostgreSQL advisory lock (a signed 64-bit key) of the digests of the rung ``level``."""
    digest = hashlib.sha256(f"casework.escalation.digest:{level}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


class _RungShare:
    """``pg_advisory_lock_shared(key)`` for the ``with`` block, on the default connection's session."""

    def __init__(self, key: int) -> None:
        self.key = key

    def __enter__(self):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock_shared(%s)", [self.key])
        return self

    def __exit__(self, *exc) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock_shared(%s)", [self.key])
        except Exception:  # a broken connection has lost the lock with its session
            if exc[0] is None:
                raise


_CASE_LOCK_FIELDS = ("pk", "state", "lead_unit_id")
_CASE_ROW_FIELDS = (*_CASE_LOCK_FIELDS, "reference", "subject", "body", "message_type", "handling_round",
                    "submitted_at", "dispatched_at", "accepted_at")


class _CaseRow:
    """A locked case of a batch: the fields read (``names``), under a ``Case``'s attribute names,
    with ``lead_unit`` (the sweep's one ``Unit`` instance, or None); what :func:`_snapshots` reads."""

    __slots__ = (*_CASE_ROW_FIELDS, "lead_unit")

    def __init__(self, names: tuple[str, ...], values: tuple) -> None:
        for name, value in zip(names, values, strict=True):
            setattr(self, name, value)
        self.lead_unit = None


class _ClockRow:
    """A running clock of a batch, under a ``CaseClock``'s attribute names (what the sweep reads)."""

    __slots__ = ("pk", "case_id", "clock", "round", "unit_id", "due_at")

    def __init__(self, pk: int, case_id: int, clock: str, round_: int, unit_id: int | None, due_at: datetime) -> None:
        self.pk, self.case_id, self.clock, self.round, self.unit_id, self.due_at = (
            pk, case_id, clock, round_, unit_id, due_at)

    @property
    def unit(self):
        return Unit.objects.get(pk=self.unit_id) if self.unit_id else None


class _Sealed:
    """The fields of one audit event that :func:`casework.models.event_hash` seals, refilled per event."""

    __slots__ = ("case_id", "seq", "action", "from_state", "to_state", "actor_id", "at", "reason", "payload",
                 "prev_hash")

    def __init__(self, *, at: datetime, action: str) -> None:
        self.at, self.action, self.actor_id, self.reason = at, action, None, ""


_Head = namedtuple("_Head", "case_id seq hash")  # what _heads_record reads of an event


class _Sweep:
    """One run of the sweep: its time, calendars, address cache and counts (see :func:`escalation_sweep`)."""

    def __init__(self, *, now: datetime, batch_size: int) -> None:
        self.now = now
        self.batch_size = max(1, batch_size)
        self.cal = calendar.work_calendar()
        self.unit_cals = calendar.unit_calendars(base=self.cal)
        self.addresses: dict = {}
        self.cutoffs: dict = {}
        self.units: dict[int, Unit] = {}
        self.batches = 0
        self.tz = timezone.get_current_timezone()
        self.minutes: dict[datetime, str] = {}
        self.answer_due: dict = {}
        self.html_labels: dict[str, str] = {}
        self.skip_locked = connection.features.has_select_for_update_skip_locked
        self.case_url = _url_template("admin:casework_case_change")
        self.referral_url = _url_template("admin:casework_disciplinereferral_change")

    # -- calendars

    def cal_for(self, clock: CaseClock) -> calendar.WorkCalendar:
        return _clock_calendar(clock, self.cal, self.unit_cals)

    def notice_due(self, unit, rung: EscalationRung, cal: calendar.WorkCalendar) -> datetime:
        """:func:`notice_answer_due` of a 督办单 opened now, once per calendar and rung."""
        key = (id(cal), rung.notice_answer_days)
        if key not in self.answer_due:
            self.answer_due[key] = notice_answer_due(unit=unit, opened_at=self.now, days=rung.notice_answer_days,
                                                     cal=cal)
        return self.answer_due[key]

    def cutoff(self, cal: calendar.WorkCalendar, threshold_days: int) -> datetime:
        key = (id(cal), threshold_days)
        if key not in self.cutoffs:
            self.cutoffs[key] = _cutoff(cal, self.now, threshold_days)
        return self.cutoffs[key]

    # -- one digest per rung whatever the number of workers (issue 11 §2)

    def taking(self, rung: EscalationRung):
        """Hold the rung's advisory lock *shared* while this sweep takes its batches (PostgreSQL).

        Several workers take the batches of one rung at once (each holds the lock shared); the
        digest is written under the same lock held *exclusive* (:meth:`digests`), which is only
        granted once no worker is still taking the rung, so the worker that finishes last lists
        every step of every worker, and a recipient gets one e-mail per rung. Session-level, so it
        spans the batches' transactions; a worker that dies loses it with its connection.
        """
        return _RungShare(_digest_lock_key(rung.level)) if self.skip_locked else _NoLock()

    # -- claiming and taking

    def take(self, rows: list[tuple[int, int]], rung: EscalationRung, trigger: str) -> int:
        """Take ``rung`` on the ``(clock id, case id)`` rows, batch by batch; return steps taken.

        Each batch locks its cases with ``SKIP LOCKED`` (PostgreSQL), so another worker's sweep
        takes the batches this one skips; what was skipped and is still untaken at the end is
        taken with a waiting lock, so nothing due is left behind.
        """
        taken, skipped = 0, []
        for i in range(0, len(rows), self.batch_size):
            n, missed = self._batch(rows[i:i + self.batch_size], rung, trigger, skip_locked=self.skip_locked)
            taken += n
            skipped += missed
        if skipped:  # held by another transaction: wait for it, then take what is still untaken
            still = list(
                CaseClock.objects.filter(pk__in=[pk for pk, _case in skipped], stopped_at__isnull=True)
                .filter(~Exists(_step_exists(rung.level))).order_by("due_at").values_list("pk", "case_id")
            )
            for i in range(0, len(still), self.batch_size):
                n, _missed = self._batch(still[i:i + self.batch_size], rung, trigger, skip_locked=False)
                taken += n
        return taken

    def _batch(self, rows, rung, trigger, *, skip_locked: bool) -> tuple[int, list[tuple[int, int]]]:
        """Claim one batch and take ``rung`` on every clock of it still due; one transaction.

        Returns the steps taken and the rows whose case another transaction held (skipped).
        """
        self.batches += 1
        if self.skip_locked and self.batches > 1:
            # The foreign-key checks of the rows written below (督办单 → the steps
            # just inserted) run plans cached by this session. Planned while the steps table was
            # small (a new site, a benchmark), they scan it sequentially, and each batch then costs
            # more than the last (quadratic: 0.03 → 0.7 s per 500-row commit by the 12th batch at
            # 1M cases). Re-planned each batch after the first, they use the primary key (measured:
            # ~12 ms flat).
            with connection.cursor() as cursor:
                cursor.execute("DISCARD PLANS")
        with transaction.atomic():
            # The cases as tuples of the fields the batch uses (the referral's snapshot needs
            # them all, the other rungs three), locked; model instances cost more than the rest.
            names = _CASE_ROW_FIELDS if rung.opens_referral else _CASE_LOCK_FIELDS
            cases_qs = (
                Case.objects.filter(pk__in=_ids(sorted({case_id for _pk, case_id in rows})))
                .order_by("pk").values_list(*names)
            )
            if connection.features.has_select_for_update:
                cases_qs = cases_qs.select_for_update(of=("self",), skip_locked=skip_locked)
            cases = {row[0]: _CaseRow(names, row) for row in cases_qs}
            # The lead units, one instance each per sweep (not one per case: a unit leads thousands).
            wanted = {c.lead_unit_id for c in cases.values() if c.lead_unit_id and c.lead_unit_id not in self.units}
            if wanted:
                self.units.update(Unit.objects.in_bulk(wanted))
            for case in cases.values():
                if case.lead_unit_id:
                    case.lead_unit = self.units[case.lead_unit_id]
            skipped = [row for row in rows if row[1] not in cases]
            if not cases:
                return 0, skipped
            # The re-check, under the locks: the clock still runs, the step is due and untaken; with
            # each case's chain head (read under the case's lock, as every append reads it).
            head = AuditChainHead.objects.filter(case_id=OuterRef("case_id"))
            clocks_qs = CaseClock.objects.filter(
                pk__in=_ids([pk for pk, case_id in rows if case_id in cases]), stopped_at__isnull=True
            ).annotate(
                taken=Exists(_step_exists(rung.level)),
                head_count=Subquery(head.values("event_count")),
                head_hash=Subquery(head.values("head_hash")),
            )
            if rung.requires_id:
                clocks_qs = clocks_qs.annotate(required=Exists(_step_exists(rung.requires.level)))
            else:
                clocks_qs = clocks_qs.annotate(required=Value(True))
            chosen: list[tuple[_CaseRow, _ClockRow]] = []
            seen: set[tuple] = set()
            heads: dict[int, tuple[int, str]] = {}
            for pk, case_id, clock_name, round_, unit_id, due_at, taken, required, count, hash_ in (
                clocks_qs.order_by("case_id", "pk").values_list(
                    "pk", "case_id", "clock", "round", "unit_id", _micros("due_at"), "taken", "required",
                    "head_count", "head_hash")
            ):
                due_at = _moment(due_at)
                if count is not None:
                    heads[case_id] = (count, hash_)
                clock = _ClockRow(pk, case_id, clock_name, round_, unit_id, due_at)
                case = cases[case_id]
                if case.lead_unit_id is None and clock_name not in OFFICE_CLOCKS:
                    continue  # a unit clock needs its unit (a return stops every clock)
                if trigger == TRIGGER_LADDER:
                    cutoff = self.cutoff(self.cal_for(clock), rung.threshold_days)
                    if not _is_due(due_at=due_at, now=self.now, rung=rung, cutoff=cutoff):
                        continue
                    if not required:
                        continue
                if taken or (case_id, clock_name, round_) in seen:
                    continue
                seen.add((case_id, clock_name, round_))
                chosen.append((case, clock))
            if chosen:
                self._write(chosen, rung, trigger, heads)
        return len(chosen), skipped

    def _write(self, chosen: list[tuple["_CaseRow", "_ClockRow"]], rung: EscalationRung, trigger: str,
               heads: dict[int, tuple[int, str]]) -> None:
        """Write the steps, 督办单, referrals, audit events and pending digests of ``chosen``.

        ``heads`` holds ``case id → (event count, head hash)`` of the chosen cases that have a chain
        head (read with the re-check, under the cases' locks). Rows are written as tuples.
        """
        now = self.now
        level = rung.level
        step_ids = _rows_insert(
            EscalationStep, ["case_id", "clock", "round", "due_at"],
            [(case.pk, clock.clock, clock.round, clock.due_at) for case, clock in chosen],
            returning=True, level=level, happened_at=now,
        )
        clock_labels = self.labels()["clocks"]
        notice_ids: list[int | None] = [None] * len(chosen)
        # The 网评办's own 交办 clock (issue 13 §5) opens no 督办单 or referral: it only tells the office.
        unit_rows = [i for i, (case, clock) in enumerate(chosen) if clock.clock not in OFFICE_CLOCKS]
        if rung.opens_notice and unit_rows:
            content = _("案件%(clock)s已超期,请%(unit)s立即办理并答复督办单。")
            made = _rows_insert(SupervisionNotice, ["case_id", "unit_id", "step_id", "answer_due_at", "content"], [
                (case.pk, case.lead_unit_id, step_ids[i],
                 self.notice_due(case.lead_unit, rung, self.cal_for(clock)),
                 content % {"clock": clock_labels.get(clock.clock, clock.clock), "unit": case.lead_unit.name})
                for i, (case, clock) in ((i, chosen[i]) for i in unit_rows)
            ], returning=True, opened_at=now)
            for i, notice_id in zip(unit_rows, made, strict=True):
                notice_ids[i] = notice_id
        referral_ids: list[int | None] = [None] * len(chosen)
        if rung.opens_referral and unit_rows:
            snapshots = _snapshots(targets=[chosen[i] for i in unit_rows], now=now, cal_for=self.cal_for)
            reason = _referral_reason(rung, trigger)
            made = _rows_insert(DisciplineReferral, ["case_id", "unit_id", "step_id", "reason", "snapshot"], [
                (case.pk, case.lead_unit_id, step_ids[i],
                 reason % {"unit": case.lead_unit.name, "n": rung.unit_open_notices_limit,
                           "clock": clock_labels.get(clock.clock, clock.clock)},
                 snapshot)
                for (i, (case, clock)), snapshot in zip(((i, chosen[i]) for i in unit_rows), snapshots, strict=True)
            ], returning=True, trigger=trigger, created_at=now)
            for i, referral_id in zip(unit_rows, made, strict=True):
                referral_ids[i] = referral_id
        # The audit events, chained in one pass on the heads read with the re-check.
        missing = sorted({case.pk for case, _clock in chosen} - heads.keys())
        if missing:  # a case from before the chain heads: its last event, read once
            for case_id, seq, hash_ in (
                CaseEvent.objects.filter(case_id__in=missing).order_by("case_id", "-seq")
                .values_list("case_id", "seq", "hash")
            ):
                heads.setdefault(case_id, (seq, hash_))
        action = f"escalation_{level}"
        sealed = _Sealed(at=now.astimezone(UTC), action=action)  # sealed as UTC: converted once
        events = []
        for (case, clock), step_id, notice_id, referral_id in zip(chosen, step_ids, notice_ids, referral_ids,
                                                                   strict=True):
            seq, prev = heads.get(case.pk, (0, ""))
            payload = {"clock": clock.clock, "level": level, "step_id": step_id,
                       "due_at": clock.due_at.isoformat(), "trigger": trigger}
            if notice_id is not None:
                payload["notice_id"] = notice_id
            if referral_id is not None:
                payload["referral_id"] = referral_id
            sealed.case_id, sealed.seq, sealed.from_state = case.pk, seq + 1, case.state
            sealed.to_state, sealed.payload, sealed.prev_hash = case.state, payload, prev
            hash_ = event_hash(sealed)
            heads[case.pk] = (seq + 1, hash_)
            events.append((case.pk, seq + 1, case.state, case.state, payload, prev, hash_))
        _rows_insert(CaseEvent, ["case_id", "seq", "from_state", "to_state", "payload", "prev_hash", "hash"],
                     events, action=action, at=now, actor_id=None)
        _heads_record([_Head(case_id, seq, hash_) for case_id, seq, _f, _t, _p, _prev, hash_ in events])
        # One row for the batch's steps (not one per step), read and deleted by the rung's digests.
        _rows_insert(EscalationDigestBatch, ["step_ids"], [(step_ids,)], level=level, queued_at=now)
        logger.info("escalation %s: %s steps taken (%s)", level, len(step_ids), trigger)

    # -- the digests

    def digests(self, rung: EscalationRung) -> int:
        """Write the digest e-mails of the steps of ``rung`` waiting for one; return how many.

        One e-mail per recipient: each recipient's cases are those of the units the rung mails
        them about; recipients with the same cases share one outbox row (each is still one
        recipient of one e-mail). On PostgreSQL the digests of a rung are written by one worker
        only, under the rung's advisory lock held exclusive (:meth:`taking`): granted once no
        worker is still taking the rung, tried without waiting, so the others leave every waiting
        row to it and a recipient gets one e-mail per rung even when several workers share the
        sweep; the waiting rows are locked too, so no step is listed twice. Templates are rendered once per e-mail, each case's
        line is built once (no event history is read).
        """
        with transaction.atomic():
            if self.skip_locked:
                # Another worker still taking this rung (its shared lock) or writing its digest
                # will list the steps this one left waiting: write nothing (see :meth:`taking`).
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_digest_lock_key(rung.level)])
                    if not cursor.fetchone()[0]:
                        logger.info("escalation %s: digests left to the worker still taking the rung", rung.level)
                        return 0
            pending = EscalationDigestBatch.objects.filter(level=rung.level).order_by("pk")
            if connection.features.has_select_for_update:
                pending = pending.select_for_update()
            batches = list(pending.values_list("pk", "step_ids"))
            step_ids = sorted({step_id for _pk, ids in batches for step_id in ids})
            if not step_ids:
                return 0
            # Every step with what grouping needs (its unit, clock, due time); the citizen text and
            # the history are read below for the lines an e-mail lists, not for every step.
            steps = [
                {"pk": pk, "case_id": case_id, "clock": clock, "unit_id": unit_id, "due_at": _moment(due_us)}
                for pk, case_id, clock, unit_id, due_us in
                EscalationStep.objects.filter(pk__in=_ids(step_ids)).order_by("due_at", "pk").values_list(
                    "pk", "case_id", "clock", "case__lead_unit_id", _micros("due_at"))
            ]
            office = None
            if any(s["clock"] in OFFICE_CLOCKS for s in steps):
                office = office_clock_unit(clock=Clock.DISPATCH)
                for s in steps:  # the 网评办 answers for its own 交办 clock, not a lead unit
                    if s["clock"] in OFFICE_CLOCKS:
                        s["unit_id"], s["office_clock"] = (office.pk if office else None), True
            units = Unit.objects.in_bulk({s["unit_id"] for s in steps if s["unit_id"]})
            by_recipient: dict[str, list[int]] = {}
            unit_addresses: dict[int, list[str]] = {}  # the addresses of each unit, once per digest
            for i, step in enumerate(steps):
                unit = units.get(step["unit_id"])
                if unit is not None:
                    addresses = unit_addresses.get(unit.pk)
                    if addresses is None:
                        addresses = unit_addresses[unit.pk] = _recipients_for(rung, unit, self.addresses)
                elif step.get("office_clock"):
                    addresses = _office_recipients_by_role(rung, self.addresses)
                else:
                    addresses = []
                for address in addresses:
                    by_recipient.setdefault(address, []).append(i)
            groups: dict[tuple[int, ...], list[str]] = {}
            for address, items in by_recipient.items():
                groups.setdefault(tuple(items), []).append(address)
            # An e-mail lists its first DIGEST_LINES cases (the longest overdue) line by line and
            # links to the case list of all of them: 10,000 lines made a 20 MB e-mail, past what
            # mail servers accept (Postfix's default limit is 10 MB), and nobody reads them.
            limit = max(SUBJECT_REFERENCES, settings.CASEWORK_DIGEST_LINES)  # the subject names the first three
            listed = sorted({i for items in groups for i in items[:limit]})
            self._details([steps[i] for i in listed])
            lines = {i: self._line(steps[i], rung, units.get(steps[i]["unit_id"]), steps[i]["history"])
                     for i in listed}
            list_url = settings.SITE_URL + reverse("admin:casework_case_changelist")
            mails, members = [], []
            for items, addresses in groups.items():
                chosen = [steps[i] for i in items]
                shown = items[:limit]
                digest_key = hashlib.sha256("|".join(sorted(addresses)).encode()).hexdigest()[:16]
                first = chosen[0]
                key = f"digest:{rung.level}:{first['pk']}-{chosen[-1]['pk']}-{len(chosen)}:{digest_key}"
                # The lines joined here, once per e-mail (a template loop over the lines cost more).
                context = {
                    "rung": rung, "count": len(items), "listed": len(shown), "more": len(items) - len(shown),
                    "list_url": f"{list_url}?{urlencode({'digest': key})}" if len(items) > 1 else "",
                    "lines_text": "".join([lines[i]["text"] + "\n" for i in shown]),
                    "lines_html": mark_safe("".join([lines[i]["html"] + "\n" for i in shown])),
                    "now": timezone.localtime(self.now).strftime("%Y-%m-%d %H:%M"),
                    "closing": _closing(rung, office_clock=all(s.get("office_clock") for s in chosen)),
                }
                mails.append({
                    "key": key,
                    "case": Case(pk=first["case_id"]) if len(chosen) == 1 else None,
                    "recipients": addresses,
                    "subject": _digest_subject(rung, chosen, units, self.labels()["clocks"]),
                    "body": render_to_string("casework/email/escalation_digest.txt", context),
                    "html_body": render_to_string("casework/email/escalation_digest.html", context),
                })
                members.append(chosen)
            # Citizen text was masked field by field in each line; the rest is the system's own.
            written = outbox.notification_queue_many(mails=mails, citizen_text_masked=True)
            by_key = {n.key: n for n in written}
            lines_rows = [
                (by_key[mail["key"]].pk, step["pk"])
                for mail, chosen in zip(mails, members, strict=True) if mail["key"] in by_key
                for step in chosen
            ]
            _ids_insert(DigestLine, ["notification_id", "step_id"],
                        [list(column) for column in zip(*lines_rows, strict=True)] if lines_rows else [[], []])
            EscalationDigestBatch.objects.filter(pk__in=[pk for pk, _ids in batches]).delete()
        logger.info("escalation %s: %s digest e-mails for %s steps", rung.level, len(written), len(steps))
        return len(written)

    def _details(self, steps: list[dict]) -> None:
        """Add to each of ``steps`` (rows of :meth:`digests`) what its digest line shows.

        Its case's reference, subject, message excerpt, state, round, 交办 and 签收 times, its
        督办单's content and referral, and ``history``: the words of the case's ladder steps
        ("催办·督办单(答复) 2026-03-05 10:01"). Three statements whatever the number of steps.
        """
        if not steps:
            return
        by_pk = {step["pk"]: step for step in steps}
        for row in EscalationStep.objects.filter(pk__in=_ids(by_pk)).values(
            "pk", reference=F("case__reference"), subject=F("case__subject"),
            excerpt=Substr("case__body", 1, EXCERPT_CHARS + 40), state=F("case__state"),
            handling_round=F("case__handling_round"), notice_content=F("notice__content"),
            referral_id=F("referral__id"), referral_reason=F("referral__reason"),
            dispatched_us=_micros("case__dispatched_at"), accepted_us=_micros("case__accepted_at"),
        ):
            step = by_pk[row.pop("pk")]
            step["dispatched_at"] = _moment(row.pop("dispatched_us"))
            step["accepted_at"] = _moment(row.pop("accepted_us"))
            step.update(row)
        words = self.labels()
        history: dict[int, list[str]] = {}
        entries: dict[tuple, str] = {}  # each (level, clock, time) in words once: a sweep's steps share its time
        for case_id, clock, level, happened_at in (
            EscalationStep.objects.filter(case_id__in=_ids({s["case_id"] for s in steps}))
            .order_by("case_id", "happened_at", "pk").values_list("case_id", "clock", "level",
                                                                  _micros("happened_at"))
        ):
            entry = entries.get((level, clock, happened_at))
            if entry is None:
                entry = entries[(level, clock, happened_at)] = (
                    f"{words['levels'].get(level, level)}({words['clocks'].get(clock, clock)}) "
                    f"{self.minute(_moment(happened_at))}")
            history.setdefault(case_id, []).append(entry)
        for step in steps:
            step["history"] = history.get(step["case_id"], [])

    def labels(self) -> dict:
        """The words of a digest line, translated once per sweep (not once per case)."""
        if not hasattr(self, "_labels"):
            self._labels = {
                "dispatch": _("交办"), "accept": _("签收"), "unit": _("承办单位"), "clock": _("时限"),
                "office": _("责任部门"), "office_name": _("网评办"),
                "state": _("当前状态"), "round": _("(第 %(n)s 轮办理)"), "notice": _("督办单"),
                "referral": _("移交理由"), "excerpt": _("留言摘要"), "history": _("办理经过"),
                "outcome": _("登记处理结果"), "page": _("案件页面"),
                "outcome_link": _("登记处理结果(约谈、通报批评、诫勉谈话、不予追责等)"),
                "not_due": _("期限 %(due)s,尚未到期。"), "late": _("期限 %(due)s,已超期。"),
                "late_days": _("期限 %(due)s,已超期 %(days)s 个工作日。"),
                "clocks": {value: str(label) for value, label in Clock.choices},
                "levels": {value: str(label) for value, label in EscalationLevel.choices},
                "states": {value: str(label) for value, label in State.choices},
            }
        return self._labels

    def _html_label(self, label: str) -> str:
        """``<strong>label</strong>:`` with ``label`` escaped, once per sweep (a digest line's field name)."""
        text = self.html_labels[label] = f"<strong>{_escape(label)}</strong>:"
        return text

    def minute(self, moment: datetime) -> str:
        """``moment`` in local time to the minute (``2026-03-05 10:00``), each distinct value formatted once."""
        text = self.minutes.get(moment)
        if text is None:
            text = self.minutes[moment] = moment.astimezone(self.tz).strftime("%Y-%m-%d %H:%M")
        return text

    def _line(self, step: dict, rung: EscalationRung, unit, history: list[str]) -> dict:
        """One case of a digest: its text and HTML lines, built once and shared by every e-mail.

        ``step`` is a row of :meth:`digests` (the step with its case's fields), ``history`` the
        words of the case's ladder steps. Citizen text (subject, excerpt) is masked here, field by
        field (see :func:`_masked`).
        """
        words = self.labels()
        cal = self.unit_cals.get(step["unit_id"], self.cal) if step["clock"] in UNIT_CLOCKS else self.cal
        url = self.case_url.replace(URL_PK, str(step["case_id"]))

        at = self.minute

        done = []
        if step["dispatched_at"]:
            done.append(f"{words['dispatch']} {at(step['dispatched_at'])}")
        if step["accepted_at"]:
            done.append(f"{words['accept']} {at(step['accepted_at'])}")
        done += history
        due_at = step["due_at"]
        due = at(due_at)
        if self.now <= due_at:
            late = words["not_due"] % {"due": due}
        else:
            days = cal.working_days_between(due_at, self.now)
            late = (words["late_days"] % {"due": due, "days": days}) if days else (words["late"] % {"due": due})
        fields = [
            (words["office"], unit.name if unit else words["office_name"]) if step.get("office_clock")
            else (words["unit"], unit.name if unit else ""),
            (words["clock"], f"{words['clocks'].get(step['clock'], step['clock'])}。{late}"),
            (words["state"], words["states"].get(step["state"], step["state"])
             + words["round"] % {"n": step["handling_round"]}),
        ]
        if rung.opens_notice and step["notice_content"] is not None:
            fields.append((words["notice"], step["notice_content"]))
        referral_url = ""
        if rung.opens_referral and step["referral_id"] is not None:
            fields.append((words["referral"], step["referral_reason"]))
            referral_url = self.referral_url.replace(URL_PK, str(step["referral_id"]))
        fields.append((words["excerpt"], _masked(step["excerpt"] or "")[:EXCERPT_CHARS]))
        fields.append((words["history"], ";".join(done)))
        subject = _masked(step["subject"])
        reference = step["reference"] or ""
        text = [f"■ {reference} {subject}"]
        text += [f"  {label}:{value}" for label, value in fields]
        if referral_url:
            text.append(f"  {words['outcome']}:{referral_url}")
        text.append(f"  {words['page']}:{url}")
        html = [f'<tr><td><a href="{_escape(url)}">{_escape(reference)}</a><br>{_escape(subject)}</td><td>',
                "<br>".join((self.html_labels.get(label) or self._html_label(label)) + _escape(value)
                            for label, value in fields)]
        if referral_url:
            html.append(f'<br><a href="{_escape(referral_url)}">{_escape(words["outcome_link"])}</a>')
        html.append("</td></tr>")
        return {"text": "\n".join(text) + "\n", "html": mark_safe("".join(html)), "reference": reference}


_HTML_SPECIAL = re.compile("[&<>\"']")


def _escape(text: str) -> str:
    """``html.escape(text)``; a text without ``& < > " '`` (most of a digest's) is returned as it is."""
    return escape(text) if _HTML_SPECIAL.search(text) else text


def _masked(text: str) -> str:
    """``mask_personal_numbers(text)``, skipping the parsers when ``text`` cannot hold a number.

    Every personal number :mod:`casework.text` finds has at least 7 digits (a local landline; a
    mobile 11, an ID number 15 or 18), and each of them is a character ``str.isdigit`` accepts
    (ASCII, full-width, superscript or circled digits alike), so a text with fewer than 7 such
    characters is returned as it is.
    """
    if not text or len(text) < 7 or sum(map(str.isdigit, text)) < 7:
        return text or ""
    return mask_personal_numbers(text)


URL_PK = "987654321"


def _url_template(name: str) -> str:
    """An absolute admin URL with ``URL_PK`` for the object's id (reversed once per sweep)."""
    return settings.SITE_URL + reverse(name, args=[URL_PK])


def _referral_reason(rung: EscalationRung, trigger: str) -> str:
    """The referral's reason, to fill with ``unit``, ``n`` (the rung's notice limit) and ``clock``."""
    if trigger == TRIGGER_UNIT_NOTICES:
        return _("%(unit)s有 %(n)s 件以上督办单逾期未答复,本案%(clock)s超期。")
    return _("%(clock)s超期,经催办、报分管局领导后仍未办结。")


def _closing(rung: EscalationRung, *, office_clock: bool = False) -> str:
    if office_clock:
        return _("该留言登记后已超过交办时限仍未交办,请网评办立即交办(或不予受理、并入主案件)。")
    if rung.opens_referral:
        return _("请纪检督察核查后登记处理结果(约谈、通报批评、诫勉谈话、不予追责等)。")
    if rung.opens_notice:
        return _("请单位立即办理,并在系统中答复督办单。")
    if rung.threshold_days < 0:
        return _("请抓紧办理。")
    return _("以上案件已开具督办单仍未办结,报请分管局领导督促。")


def _digest_subject(rung: EscalationRung, steps: list[dict], units: dict, clock_labels: dict) -> str:
    """The digest's subject: the one case as before, or the count and the first references."""
    first = steps[0]
    if all(s.get("office_clock") for s in steps):  # the office's own 交办 clock
        if len(steps) == 1:
            return _("【%(name)s】%(ref)s 登记后超过交办时限仍未交办") % {"name": rung.name, "ref": first["reference"]}
        refs = "、".join(dict.fromkeys(s["reference"] for s in steps[:SUBJECT_REFERENCES]))
        return _("【%(name)s】%(n)s 件留言登记后超过交办时限仍未交办:%(refs)s 等") % {
            "name": rung.name, "n": len(steps), "refs": refs}
    clocks = "、".join(dict.fromkeys(clock_labels.get(s["clock"], s["clock"]) for s in steps))
    if len(steps) == 1:
        ref = first["reference"]
        if rung.opens_referral:
            unit = units.get(first["unit_id"])
            return _("【移交纪检督察】%(ref)s %(unit)s 超期未办") % {"ref": ref, "unit": unit.name if unit else ""}
        if rung.opens_notice:
            return _("【催办·督办单】%(ref)s %(clock)s已超期") % {"ref": ref, "clock": clocks}
        if rung.threshold_days < 0:
            return _("【到期提醒】%(ref)s %(clock)s即将到期") % {"ref": ref, "clock": clocks}
        return _("【%(name)s】%(ref)s 超期未办结") % {"name": rung.name, "ref": ref}
    refs = "、".join(dict.fromkeys(s["reference"] for s in steps[:SUBJECT_REFERENCES]))
    values = {"n": len(steps), "refs": refs, "clock": clocks, "name": rung.name}
    if rung.opens_referral:
        return _("【移交纪检督察】%(n)s 件案件超期未办:%(refs)s 等") % values
    if rung.opens_notice:
        return _("【催办·督办单】%(n)s 件案件%(clock)s已超期:%(refs)s 等") % values
    if rung.threshold_days < 0:
        return _("【到期提醒】%(n)s 件案件%(clock)s即将到期:%(refs)s 等") % values
    return _("【%(name)s】%(n)s 件案件超期未办结:%(refs)s 等") % values


def escalation_sweep(*, now: datetime | None = None, batch_size: int | None = None) -> dict[str, int]:
    """Take every ladder step that is due at ``now``; return how many steps of each level were taken.

    Set-based (issue 11 §1): per rung, one query selects the due clocks; they are then claimed and
    written ``batch_size`` at a time, each batch in one transaction of a fixed number of
    statements (lock the cases; re-check clocks and steps, reading the cases' chain heads with
    them; insert the steps, 督办单, referrals with their snapshots, audit events chained on those
    heads, the heads, the pending digests), rows written as tuples, not model instances. Then each recipient gets one digest e-mail per rung listing his cases.
    So the statements of a sweep grow with the number of batches, not of due cases.

    Safe to run twice or on several workers at once (issue 11 §2): a batch locks its cases with
    ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent sweeps split the batches between them;
    every step is re-checked under the locks and the (case, clock, round, level) unique
    constraint holds; what another sweep held is re-checked with a waiting lock at the end of the
    rung, so nothing due is missed. On SQLite (no SKIP LOCKED; IMMEDIATE transactions let one
    writer at a time) the batches simply run one after the other.

    Highest rungs are handled first so a case climbs one step per sweep. Working days are counted
    on the bureau calendar, and a unit clock (签收, 承办反馈, 答复) on its unit's own calendar when
    that unit has exceptions (:func:`casework.calendar.unit_calendars`). With nothing due it runs
    a fixed number of queries, whatever the number of open cases.

    Args:
        now: aware datetime of the sweep; defaults to the current time.
        batch_size: due clocks claimed per transaction (default ``settings.CASEWORK_SWEEP_BATCH_SIZE``,
            500).

    Returns:
        ``{level: steps taken}`` for the levels that took any.
    """
    sweep = _Sweep(now=now or timezone.now(),
                   batch_size=batch_size or getattr(settings, "CASEWORK_SWEEP_BATCH_SIZE", BATCH_SIZE))
    left_over = set(EscalationDigestBatch.objects.values_list("level", flat=True).distinct())
    taken: dict[str, int] = {}
    for rung in ladder_rungs():
        cutoff = _cutoff(sweep.cal, sweep.now, rung.threshold_days)
        unit_cutoffs = {uid: _cutoff(c, sweep.now, rung.threshold_days) for uid, c in sweep.unit_cals.items()}
        due = list(_due_clocks_qs(now=sweep.now, rung=rung, cutoff=cutoff, unit_cutoffs=unit_cutoffs)
                   .values_list("pk", "case_id"))
        by_notices = _unit_notice_rows(now=sweep.now, rung=rung, cal=sweep.cal, unit_cals=sweep.unit_cals)
        n = 0
        if due or by_notices:
            with sweep.taking(rung):
                n = sweep.take(due, rung, TRIGGER_LADDER) + sweep.take(by_notices, rung, TRIGGER_UNIT_NOTICES)
            if n >= ANALYZE_AFTER and connection.vendor == "postgresql":
                # The next rungs (and the next sweep) select with an anti-join on the steps; planned
                # on statistics from before thousands of new steps, it can turn into a merge join
                # that takes seconds (measured: 22.9 s instead of 20 ms at 10,000 steps unanalysed).
                with connection.cursor() as cursor:
                    cursor.execute(f"ANALYZE {EscalationStep._meta.db_table}")
        # Also when this sweep took nothing of what it found: another worker that took it may
        # have left its digests to this one, still taking the rung then (see _Sweep.taking).
        if due or by_notices or rung.level in left_over:
            sweep.digests(rung)
        if n:
            taken[rung.level] = n
    return taken


class ReferralOutcomeRefused(TransitionRefused):
    """An outcome cannot be recorded; ``str(exc)`` says why."""


@transaction.atomic
def referral_record_outcome(
    *, referral: DisciplineReferral, acting_user, kind: str, note: str
) -> DisciplineReferral:
    """Record 纪检督察's outcome of a referral (约谈, 通报批评, 诫勉谈话, 不予追责 …), once.

    The referral's material (case snapshot, reason) never changes; the outcome is written once
    and is then final, with an audit event on the case.

    Args:
        referral: the ``DisciplineReferral``.
        acting_user: a user with ``casework.record_referral_outcome``.
        kind: a ``DisciplineReferral.Outcome`` value.
        note: the decision in words (required).

    Raises:
        PermissionDenied: the user lacks ``casework.record_referral_outcome`` or cannot see the
            referral's case (the one access rule; a model-wide permission never widens it, C17).
        ReferralOutcomeRefused: an outcome was recorded already, the kind is unknown or the note
            is empty.
    """
    from django.core.exceptions import PermissionDenied

    if not acting_user.has_perm("casework.record_referral_outcome") or not user_can_see_case(
        user=acting_user, case=referral.case
    ):
        raise PermissionDenied(_("您没有登记移交处理结果的权限。"))
    note = (note or "").strip()
    if kind not in DisciplineReferral.Outcome.values:
        raise ReferralOutcomeRefused(_("请选择处理方式。"))
    if not note:
        raise ReferralOutcomeRefused(_("请填写处理结果说明。"))
    # Lock order as everywhere else: the case first, then its child row.
    case = case_lock(case=referral.case)
    locked = DisciplineReferral.objects.select_for_update().get(pk=referral.pk)
    if locked.outcome_recorded_at is not None:
        raise ReferralOutcomeRefused(_("该移交已登记处理结果,不能修改。"))
    now = timezone.now()
    locked.outcome_kind = kind
    locked.outcome = note
    locked.outcome_recorded_at = now
    locked.outcome_by = acting_user
    locked.save(update_fields=["outcome_kind", "outcome", "outcome_recorded_at", "outcome_by"])
    event_append(
        case=case, action="referral_outcome", actor=acting_user, from_state=case.state,
        to_state=case.state, reason=note,
        payload={"referral_id": locked.pk, "kind": kind}, at=now,
    )
    return locked


class NoticeAnswerRefused(TransitionRefused):
    """A 督办单 cannot be answered; ``str(exc)`` says why."""


@transaction.atomic
def supervision_notice_answer(*, notice: SupervisionNotice, acting_user, answer: str) -> SupervisionNotice:
    """Record the supervised unit's answer to a 督办单 (DESIGN.md §3: tracked until the unit answers).

    Only the unit the notice was sent to answers it: the user needs ``casework.answer_supervision``
    and the notice's unit in his scope (seeing the case is not enough: the office sees every case
    but does not answer for a district). The answer is written once, with an audit event on the
    case; an answered notice no longer counts towards the ladder's unanswered-notice referral.

    Args:
        notice: the ``SupervisionNotice``.
        acting_user: a handler (or head) of the supervised unit.
        answer: what the unit did, in words (required).

    Raises:
        PermissionDenied: without the permission, or when the notice's unit is outside the scope.
        NoticeAnswerRefused: the answer is empty or the notice was answered already.
    """
    from django.core.exceptions import PermissionDenied

    if not acting_user.has_perm("casework.answer_supervision") or not user_covers_unit(
        user=acting_user, unit=notice.unit
    ):
        raise PermissionDenied(_("只有被督办单位可以答复督办单。"))
    answer = (answer or "").strip()
    if not answer:
        raise NoticeAnswerRefused(_("请填写答复内容。"))
    case = case_lock(case=notice.case)
    locked = SupervisionNotice.objects.select_for_update().get(pk=notice.pk)
    if locked.answered_at is not None:
        raise NoticeAnswerRefused(_("该督办单已答复,不能修改。"))
    if locked.closed_at is not None:
        raise NoticeAnswerRefused(_("该督办单已终止(%(reason)s),无需答复。") % {"reason": locked.closed_reason})
    if case.lead_unit_id != locked.unit_id and not locked.to_co_unit:
        raise NoticeAnswerRefused(_("该案件已改由其他单位承办,本督办单无需再答复。"))
    now = timezone.now()
    locked.answer = answer
    locked.answered_at = now
    locked.save(update_fields=["answer", "answered_at"])
    event_append(
        case=case, action="supervision_answered", actor=acting_user, from_state=case.state,
        to_state=case.state, reason=answer, payload={"notice_id": locked.pk}, at=now,
    )
    return locked


def referrals_open():
    """Return the referrals without an outcome, oldest first (the supervisors' work list)."""
    return DisciplineReferral.objects.filter(outcome_recorded_at__isnull=True).order_by("created_at")
