"""The PostgreSQL fast path of the batch import: cases, events, chain heads and report rows by ``COPY``.

Issue 11 §4 (import at ≥ 5,000 messages/s, memory flat in rows). ``casework.importing`` calls
these per batch, inside the batch's transaction; other databases take ``bulk_create`` there.

Each batch is a handful of statements, whatever its size: one ``nextval`` over
``generate_series`` for the ids, one ``COPY`` each for the cases, their ``register`` events, their
sealed chain heads and the job's report rows. The rows are written as PostgreSQL's COPY *text*
format directly (one string per batch) rather than through psycopg's per-value adaptation, which
was most of the Python time per message. What is written is what ``services.case_register`` writes
one at a time:

- the case, state ``registered``, reference ``PREFIX-<year of registration, Beijing time>-<id,
  6 digits at least>``, every other column the model's default (taken from one template instance,
  so a column added later with a default is filled);
- its first audit event ``register`` (seq 1, ``prev_hash`` empty), sealed with
  :meth:`casework.models.CaseEvent.compute_hash`'s function (by :func:`casework.models.event_hashes`,
  its batch form, which checks itself against it);
- its chain head (event count 1, that hash), sealed as by :func:`casework.models.chain_head_mac`,
  as :func:`casework.audit.chain_heads_bulk_record` records it. The ids are fresh from the
  sequence, so no head can exist yet; the unique constraint on the head's case would refuse one.

Errors are Django's (``IntegrityError``, ``DataError``), so the caller's fallback (the batch redone
row by row through ``case_register``) works as for any other statement.
"""

from __future__ import annotations

import contextlib
from datetime import date, datetime
from decimal import Decimal
import json

from django.db import connection
from django.utils import timezone

from casework.importing_models import ImportJobRow
from casework.models import AuditChainHead, Case, CaseClock, CaseEvent, Clock, chain_head_macs, event_hashes

NULL = "\\N"


def escape(text: str) -> str:
    """Return ``text`` escaped for a field of COPY text format (backslash, tab, newline, carriage return).

    Four ``str.replace`` passes (C speed); ``str.translate`` with a mapping went character by
    character in Python-level lookups, the largest cost of building a batch.
    """
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if "\t" in text:
        text = text.replace("\t", "\\t")
    if "\n" in text:
        text = text.replace("\n", "\\n")
    if "\r" in text:
        text = text.replace("\r", "\\r")
    return text

# The columns an import sets per case, in COPY order; every other column takes the model's default.
CASE_VARYING = ("id", "reference", "external_id", "subject", "body", "submitted_at", "citizen_name", "likes",
                "dislikes", "message_type", "category", "dispatch_due_at")
EVENT_VARYING = ("case_id", "payload", "hash")


def copy_text(value) -> str:
    """Return ``value`` as one field of PostgreSQL's COPY text format (``\\N`` for None).

    Handles what Django's ``get_db_prep_save`` gives for the import's tables: None, bool, int
    (psycopg's ``Int2``/``Int4`` included), float, Decimal, str (text choices included), aware
    datetime, date and JSON adapters (their ``obj``). Raises TypeError for anything else, so a new
    column type is noticed by the tests rather than written wrongly.
    """
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, (int, float, Decimal)):
        return str(int(value) if isinstance(value, int) else value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    obj = getattr(value, "obj", copy_text)
    if obj is not copy_text:  # psycopg's Json/Jsonb adapter
        return escape(json.dumps(obj, ensure_ascii=False))
    raise TypeError(f"no COPY text form for {type(value).__name__}")


@contextlib.contextmanager
def _copy(model, columns: list[str]):
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
            yield copy


def _columns(model, varying: tuple[str, ...], template) -> tuple[list[str], str]:
    """Return (columns in COPY order, the COPY text of the constant columns after the varying ones).

    Nullable columns whose default is NULL are left to the table (fewer fields per row).
    """
    by_attname = {f.attname: f for f in model._meta.concrete_fields}
    columns = [by_attname[a].column for a in varying]
    constant = []
    for f in model._meta.concrete_fields:
        if f.attname in varying or f.primary_key:
            continue
        value = f.get_db_prep_save(getattr(template, f.attname), connection)
        if value is None and f.null:
            continue
        columns.append(f.column)
        constant.append(copy_text(value))
    return columns, "\t".join(constant)


# A batch's ids are looked up one by one from an unnested array parameter, each by a correlated
# subquery on the unique index (always an index probe per id). ``col = ANY(<2,000 literal ids>)``
# made the planner estimate every id (~20 ms of backend CPU a statement) and, on statistics older
# than the rows a running import had added (a fresh or fast-growing table), read every case of the
# platform (or every row of the job) and filter: a cost that grew with the table. The parameter is
# the array's literal (:func:`text_array`), one string: psycopg's list adapter wrote the ids
# element by element in Python.


def text_array(values) -> str:
    """Return ``values`` (strings) as the literal of a PostgreSQL ``text[]``: ``{"a","b\\"c"}``.

    Every element double-quoted, backslashes and double quotes escaped, so any text (commas,
    braces, blanks, ``NULL``) stays one element as written.
    """
    return "{" + ",".join(['"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]) + "}"


def existing_case_ids(*, platform_id: int, external_ids: list[str]) -> dict[str, int]:
    """Return ``{external_id: case id}`` of the given ids already registered for the platform.

    One statement, the ids as one array parameter, each looked up on the partial unique index
    ``case_platform_external_id_unique`` (whatever the table's statistics say).
    """
    if not external_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT u.e, (SELECT c.id FROM {connection.ops.quote_name(Case._meta.db_table)} c "
            "WHERE c.platform_id = %s AND c.external_id <> '' AND c.external_id = u.e) "
            "FROM unnest(%s::text[]) AS u(e)",
            [platform_id, text_array(external_ids)],
        )
        return {external_id: pk for external_id, pk in cursor.fetchall() if pk is not None}


def first_rows_in_job(*, job_id: int, external_ids: list[str]) -> dict[str, int]:
    """Return ``{external_id: first row number}`` of the ids the job has reported on already.

    One statement, the ids as one array parameter, each looked up on ``importrow_job_extid_idx``.
    """
    if not external_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT u.e, (SELECT MIN(r.row_number) FROM {connection.ops.quote_name(ImportJobRow._meta.db_table)} r "
            "WHERE r.job_id = %s AND r.external_id = u.e) FROM unnest(%s::text[]) AS u(e)",
            [job_id, text_array(external_ids)],
        )
        return {external_id: first for external_id, first in cursor.fetchall() if first is not None}


def cases_register_copy(*, rows: list, message_types: list[str], platform, acting_user, source: str,
                        reference_prefix: str, now=None, dispatch: dict | None = None) -> list[int]:
    """Register ``rows`` (``casework.importing.MessageRow``) as cases with their events and heads.

    Args:
        rows: parsed good rows, none of them registered before (the caller looked them up).
        message_types: the inferred message type of each row, same order.
        platform: the ``Platform`` the messages came from.
        acting_user: the importing member of staff, or None (the event's actor).
        source: the event payload's ``source`` (``"import"``).
        reference_prefix: ``CASEWORK_REFERENCE_PREFIX``.
        now: aware registration time (default: the current time); the 交办 clocks start then.
        dispatch: ``{message type: (amount, time unit, Deadline)}`` of every type in
            ``message_types`` (:func:`casework.clocks.dispatch_deadlines` at ``now``): each case
            is written with its ``dispatch_due_at`` and its running 交办 ``CaseClock`` (round 1)
            by one more ``COPY``, as ``clocks.dispatch_clocks_start_bulk`` would add them after
            (an UPDATE of every new case row, which cost as much as the insert). None: no clocks.

    Returns:
        the new case ids in the order of ``rows``.

    Raises:
        IntegrityError, DataError: a constraint or a value refused by PostgreSQL (the caller rolls
            the batch's savepoint back and registers its rows one by one).
    """
    now = now or timezone.now()
    year = timezone.localtime(now).year
    with connection.cursor() as cursor:
        # The sequence is looked up once (a materialised CTE): pg_get_serial_sequence is only stable,
        # so in the select list it was evaluated, catalogue look-ups and all, for every id (~8 µs each).
        cursor.execute(
            "WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence(%s, 'id')::regclass AS seq) "
            "SELECT nextval(s.seq) FROM s, generate_series(1, %s)",
            [Case._meta.db_table, len(rows)],
        )
        ids = [pk for (pk,) in cursor.fetchall()]

    template = Case(platform=platform, subject="", body="", submitted_at=now, created_at=now, updated_at=now)
    columns, constant = _columns(Case, CASE_VARYING, template)
    due = {kind: d.due_at.isoformat() for kind, (_a, _u, d) in (dispatch or {}).items()}
    after_kind = {
        kind: (f"{escape(str(kind))}\t", f"\t{due.get(kind, NULL)}\t{constant}") for kind in set(message_types)
    }
    prefix = escape(f"{reference_prefix}-{year}-")
    lines = [
        f"{pk}\t{prefix}{pk:06d}\t{escape(row.external_id)}\t{escape(row.subject)}\t{escape(row.body)}\t"
        f"{row.submitted_at.isoformat()}\t{escape(row.citizen_name)}\t"
        f"{NULL if row.likes is None else row.likes}\t{NULL if row.dislikes is None else row.dislikes}\t"
        f"{after_kind[kind][0]}{escape(row.category)}{after_kind[kind][1]}"
        for row, pk, kind in zip(rows, ids, message_types, strict=True)
    ]
    # Each COPY's rows are sent whole first; the next table's rows are built while PostgreSQL inserts
    # them (leaving the block waits for the server), so Python and PostgreSQL work on two cores.
    with _copy(Case, columns) as copy:
        copy.write("\n".join(lines) + "\n")
        # One event, sealed per case by CaseEvent's hashing (event_hashes: event_hash per case id
        # and payload, the constant part serialised once).
        event = CaseEvent(seq=1, action="register", from_state="", to_state=template.state, actor=acting_user,
                          at=now, reason="", payload={"source": source, "platform": platform.code}, prev_hash="",
                          hash="")
        columns, constant = _columns(CaseEvent, EVENT_VARYING, event)
        payload_head = escape(json.dumps(event.payload, ensure_ascii=False)[:-1])
        external_ids = [row.external_id for row in rows]
        seals = event_hashes(event, case_ids=ids, key="external_id", values=external_ids)
        macs = chain_head_macs(heads=[(pk, 1, seal) for pk, seal in zip(ids, seals, strict=True)])
        encode = json.encoder.encode_basestring
        lines = [
            f'{pk}\t{payload_head}, "external_id": {escape(encode(e))}}}\t{seal}\t{constant}'
            for pk, e, seal in zip(ids, external_ids, seals, strict=True)
        ]
        heads = [f"{pk}\t1\t{seal}\t{mac}" for pk, seal, mac in zip(ids, seals, macs, strict=True)]
    with _copy(CaseEvent, columns) as copy:
        copy.write("\n".join(lines) + "\n")
        head_columns = [AuditChainHead._meta.get_field(n).column for n in ("case", "event_count", "head_hash", "mac")]
        clocks = _dispatch_clock_lines(ids=ids, message_types=message_types, dispatch=dispatch, at=now)
    with _copy(AuditChainHead, head_columns) as copy:
        copy.write("\n".join(heads) + "\n")
    if clocks:
        with _copy(CaseClock, [CaseClock._meta.get_field(n).column for n in _CLOCK_COLUMNS]) as copy:
            copy.write(clocks)
    return ids


_CLOCK_COLUMNS = ("case", "clock", "round", "started_at", "amount", "time_unit", "extended_days", "due_at",
                  "calendar_unconfirmed")


def _dispatch_clock_lines(*, ids: list[int], message_types: list[str], dispatch: dict | None, at) -> str:
    """COPY text of one running 交办 clock (round 1, no unit) per new case, as ``dispatch_clocks_start_bulk`` writes."""
    if not dispatch:
        return ""
    started = at.isoformat()
    per_type = {
        kind: f"\t{copy_text(str(Clock.DISPATCH))}\t1\t{started}\t{int(amount)}\t{copy_text(str(unit))}\t0\t"
              f"{deadline.due_at.isoformat()}\t{copy_text(','.join(str(y) for y in deadline.unconfirmed_years))}"
        for kind, (amount, unit, deadline) in dispatch.items()
    }
    return "\n".join(f"{pk}{per_type[kind]}" for pk, kind in zip(ids, message_types, strict=True)) + "\n"


def job_rows_copy(*, job_id: int, rows: list[tuple]) -> None:
    """Write ``(row_number, external_id, outcome, case_id or None, reason)`` tuples as the job's rows."""
    if not rows:
        return
    names = ("job", "row_number", "external_id", "outcome", "case", "reason")
    columns = [ImportJobRow._meta.get_field(n).column for n in names]
    outcomes = {o: escape(str(o)) for o in {row[2] for row in rows}}
    lines = [
        f"{job_id}\t{number}\t{escape(external_id)}\t{outcomes[outcome]}\t"
        f"{NULL if case_id is None else case_id}\t{escape(reason)}"
        for number, external_id, outcome, case_id, reason in rows
    ]
    with _copy(ImportJobRow, columns) as copy:
        copy.write("\n".join(lines) + "\n")
