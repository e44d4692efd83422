"""Duplicates at intake (重复留言提示): MinHash/LSH band keys stored in an indexed table.

Rule (issue 12): when a message is registered, its text (subject + body, whitespace and
punctuation removed) is cut into character 3-gram shingles and summarised by a 128-permutation
MinHash (datasketch). The signature is split into ``BANDS`` bands of ``ROWS`` rows; each band's key
is stored in :class:`~casework.models.DuplicateBand` under an index, so the candidates for a new
message are the cases sharing at least one key: one indexed query, whatever the archive's size
(near-linear overall, never all pairs). A candidate is flagged when it is open (not archived) or
was submitted within ``RECENT_DAYS`` of the new message, is not itself merged away, and the exact
Jaccard similarity of the two shingle sets is at least

- ``SAME_CITIZEN_MIN`` (0.3) when both carry the same citizen name/id or contact (同一网民), or
- ``SAME_TEXT_MIN`` (0.6) otherwise (多人相同内容, e.g. a copy-paste campaign).

With 32 bands of 4 rows, a pair at Jaccard 0.6 becomes a candidate with probability
1 − (1 − 0.6⁴)³² ≈ 0.98, at 0.3 with ≈ 0.23; the same citizen's open cases are therefore also
looked up directly (an exact match on the name or contact), so their repeats are not missed.
Per message, the band candidates are ranked by the number of keys shared with it (an estimate of
their similarity) and the ``MAX_CANDIDATES`` best, plus the citizen's own open cases, get the exact
Jaccard check; at most ``MAX_FLAGS`` flags per message, the most similar first.

The check is set-based (:func:`duplicates_index_and_flag_batch`): an import batch costs a fixed
number of queries (band keys, citizens, candidate texts, two bulk inserts), not a few per row; a
single registration is a batch of one. Per band key at most ``PER_KEY`` stored cases (the most
recent eligible ones) are read, so a campaign with thousands of copies stays cheap.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
import functools
import hashlib
from operator import itemgetter
import re
import threading

from datasketch import MinHash
from datasketch.hashfunc import sha1_hash32
from django.db import connection
from django.db.models import F, Q, Window
from django.db.models.expressions import RawSQL
from django.db.models.functions import RowNumber
from django.utils import timezone
import numpy as np

from casework.models import Case, DuplicateBand, DuplicateFlag, State

NUM_PERM = 128
BANDS = 32
ROWS = 4
SHINGLE = 3
SAME_TEXT_MIN = 0.6
SAME_CITIZEN_MIN = 0.3
RECENT_DAYS = 30
MAX_FLAGS = 3
MAX_CANDIDATES = 50
PER_KEY = 50
CHUNK = 2000
ARRAY_CHUNK = 100_000  # values per query on PostgreSQL, where they are one array parameter
_FIELDS = ("pk", "subject", "body", "citizen_name", "citizen_contact", "submitted_at", "state", "merged_into")

_BY_COUNT_THEN_ID = itemgetter(1, 0)  # (case id, keys shared): most keys first, then the newest
_STRIP = re.compile(r"[\s\W_]+", re.UNICODE)


def shingles(subject: str, body: str) -> set[str]:
    """Return the character 3-gram shingles of subject + body (whitespace and punctuation removed)."""
    text = _STRIP.sub("", f"{subject or ''}{body or ''}")
    if len(text) <= SHINGLE:
        return {text} if text else set()
    return {text[i:i + SHINGLE] for i in range(len(text) - SHINGLE + 1)}


def jaccard(a: set, b: set) -> float:
    """Exact Jaccard similarity of two shingle sets (0 when both are empty).

    |a ∩ b| / (|a| + |b| − |a ∩ b|): the union's size without building it (the same float).
    """
    if not a and not b:
        return 0.0
    common = len(a & b)
    return common / (len(a) + len(b) - common)


# The permutations of MinHash(num_perm=NUM_PERM, seed=1), drawn once: drawing them again for every
# message (datasketch does, from the seed) was a third of the time of band_keys.
_PERMUTED = MinHash(num_perm=NUM_PERM, seed=1)


@functools.lru_cache(maxsize=1 << 18)
def _shingle_hash(shingle: str) -> int:
    """datasketch's default hash of a shingle (``sha1_hash32`` of its UTF-8), remembered: shingles recur a lot."""
    return sha1_hash32(shingle.encode("utf-8"))


_local = threading.local()  # one MinHash per thread, cleared per message (its set-up checks the permutations)


def band_keys(sh: set[str]) -> list[str]:
    """Return the ``BANDS`` LSH keys of a shingle set: band number + digest of its MinHash rows."""
    m = getattr(_local, "minhash", None)
    if m is None:
        m = _local.minhash = MinHash(num_perm=NUM_PERM, seed=1, hashfunc=_shingle_hash,
                                     permutations=_PERMUTED.permutations, scheme=_PERMUTED.scheme)
    m.clear()
    m.update_batch(list(sh))  # the minimum does not depend on the order
    values = np.asarray(m.hashvalues, dtype=np.uint64).tobytes()
    width = ROWS * 8  # bytes of one band's rows
    return [
        f"{b:02d}{hashlib.blake2b(values[b * width:(b + 1) * width], digest_size=12).hexdigest()}"
        for b in range(BANDS)
    ]


def repeat_reason(*, similarity: float, same_citizen: bool) -> str | None:
    """Return the flag reason for a candidate pair at ``similarity`` (Jaccard), or None (no flag)."""
    if same_citizen and similarity >= SAME_CITIZEN_MIN:
        return DuplicateFlag.Reason.SAME_CITIZEN
    if similarity >= SAME_TEXT_MIN:
        return DuplicateFlag.Reason.SAME_TEXT
    return None


class _Text:
    """The fields of a case the check reads (``_FIELDS``), without a model instance (and django-fsm's state)."""

    __slots__ = ("pk", "subject", "body", "citizen_name", "citizen_contact", "submitted_at", "state",
                 "merged_into_id")

    def __init__(self, pk, subject, body, citizen_name, citizen_contact, submitted_at, state, merged_into_id):
        self.pk, self.subject, self.body = pk, subject, body
        self.citizen_name, self.citizen_contact, self.submitted_at = citizen_name, citizen_contact, submitted_at
        self.state, self.merged_into_id = state, merged_into_id


def _texts(queryset) -> list[_Text]:
    return [_Text(*row) for row in queryset.values_list(*_FIELDS)]


def _same_citizen(a: Case, b: Case) -> bool:
    return bool((a.citizen_name and a.citizen_name == b.citizen_name)
                or (a.citizen_contact and a.citizen_contact == b.citizen_contact))


def _chunks(values: list, size: int = CHUNK):
    """Yield ``values`` in pieces for ``__in`` lookups: ``CHUNK`` each, or all at once on PostgreSQL.

    On PostgreSQL a piece is one array parameter (:func:`_among`), so its size costs no placeholders.
    """
    if connection.vendor == "postgresql":
        size = max(size, ARRAY_CHUNK)
    for i in range(0, len(values), size):
        yield values[i:i + size]


def _among(values: list, cast: str = "text"):
    """The right side of an ``__in`` lookup: on PostgreSQL one array parameter, unnested.

    ``field__in=[…]`` binds one placeholder per value, and psycopg's client-side query building
    then costs more than the query itself for thousands of band keys.
    """
    if connection.vendor == "postgresql":
        return RawSQL(f"SELECT unnest(%s::{cast}[])", (list(values),))
    return values


def _eligible_for(case: Case, other: Case) -> bool:
    """The per-case eligibility rule: not merged away, and open or submitted within RECENT_DAYS."""
    if other.pk == case.pk or other.merged_into_id is not None:
        return False
    if other.state != State.ARCHIVED:
        return True
    return abs(other.submitted_at - case.submitted_at) <= timedelta(days=RECENT_DAYS)


def _copy_rows(model, fields: tuple[str, ...], rows) -> None:
    """Write ``rows`` (tuples in the order of ``fields``) into ``model``'s table by PostgreSQL ``COPY``.

    ``fields`` must name every concrete field but the auto primary key: ``COPY`` knows no model
    defaults, so a field added to the model later and left out here fails loudly, not as NULLs.

    Raises:
        ValueError: a concrete field of ``model`` is missing from ``fields``.
    """
    meta = model._meta
    missing = [f.name for f in meta.concrete_fields if not f.primary_key and f.name not in fields]
    if missing:
        raise ValueError(f"{model.__name__}: COPY without {missing}")
    columns = ", ".join(connection.ops.quote_name(meta.get_field(f).column) for f in fields)
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(f"COPY {connection.ops.quote_name(meta.db_table)} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _bands_insert(rows: list[tuple[int, int, str]]) -> None:
    """Write ``(case id, band, key)`` rows: PostgreSQL by ``COPY`` (32 rows per case add up), else bulk_create."""
    if connection.vendor != "postgresql":
        DuplicateBand.objects.bulk_create([DuplicateBand(case_id=c, band=b, key=k) for c, b, k in rows],
                                          batch_size=CHUNK)
        return
    _copy_rows(DuplicateBand, ("case", "band", "key"), rows)


def _flags_insert(flags: list[tuple[int, int, float, str]]) -> None:
    """Write ``(case id, repeats id, similarity, reason)`` flags: PostgreSQL by ``COPY``, else bulk_create."""
    if connection.vendor != "postgresql":
        DuplicateFlag.objects.bulk_create(
            [DuplicateFlag(case_id=c, repeats_id=r, similarity=sim, reason=reason) for c, r, sim, reason in flags],
            batch_size=CHUNK,
        )
        return
    now = timezone.now()
    _copy_rows(DuplicateFlag, ("case", "repeats", "similarity", "reason", "created_at"),
               ((c, r, sim, reason, now) for c, r, sim, reason in flags))


def duplicates_index_and_flag(*, case: Case) -> list[DuplicateFlag]:
    """Index the newly registered ``case`` and flag the open or recent cases it nearly repeats.

    Called by :func:`casework.services.case_register` inside its transaction (manual entry and
    platform push register one case at a time). The same rule as the batch path, run on a batch of
    one (:func:`duplicates_index_and_flag_batch`). Returns the flags created, most similar first.
    """
    return duplicates_index_and_flag_batch(cases=[case]).get(case.pk, [])


def duplicates_index_and_flag_many(*, case_ids: list[int]) -> int:
    """Index and flag the cases a batch import registered (ids of rows already written).

    The import writes its cases in bulk (``casework.importing``); this loads them in one query and
    runs :func:`duplicates_index_and_flag_batch`. Returns the number of flags created.
    """
    cases = _texts(Case.objects.filter(pk__in=_among(case_ids, "bigint")).order_by("pk"))
    return len(_index_and_flag(cases))


def duplicates_index_and_flag_batch(*, cases: list[Case]) -> dict[int, list[DuplicateFlag]]:
    """Index ``cases`` (just registered, not yet indexed) and flag what each nearly repeats: set-based.

    Args:
        cases: saved cases with ``subject``, ``body``, ``citizen_name``, ``citizen_contact`` and
            ``submitted_at`` loaded; taken in id order, so a repeat inside the batch is flagged
            against the earlier case, exactly as if they had been registered one by one.

    One pass for the whole batch, whatever its size: one query (per ``CHUNK`` keys; on PostgreSQL
    the values are one array parameter, so one query) for the band keys already stored, keeping per key the ``PER_KEY`` most recent eligible cases (a window
    function, so a copy-paste campaign with thousands of members costs ``PER_KEY`` rows per key);
    one query for the same citizens' open cases; one query for the candidates' texts; then one
    ``COPY`` (``bulk_create`` elsewhere) for the new band keys and one for the flags. Candidates inside the batch come
    from an in-memory band index of the earlier cases. Per case, the candidates are ranked by the
    number of band keys shared (an estimate of the Jaccard similarity), the ``MAX_CANDIDATES``
    best get the exact Jaccard check. The result is the same as registering the cases one by one
    (``tests/test_ml_duplicates.py`` checks this on constructed batches).

    Returns:
        ``{case id: [DuplicateFlag, …]}`` (most similar first) for the cases that got flags: what
        was written (by ``COPY`` on PostgreSQL), as unsaved instances.
    """
    out: dict[int, list[DuplicateFlag]] = defaultdict(list)
    for flag in _index_and_flag(cases):
        out[flag[0]].append(DuplicateFlag(case_id=flag[0], repeats_id=flag[1], similarity=flag[2], reason=flag[3]))
    return dict(out)


def _index_and_flag(cases) -> list[tuple[int, int, float, str]]:
    """The check of :func:`duplicates_index_and_flag_batch`; returns the flags written as
    ``(case id, repeats id, similarity, reason)`` tuples (no model instances: an import batch has thousands)."""
    cases = sorted(cases, key=lambda c: c.pk)
    items = []  # (case, shingles, keys)
    for case in cases:
        sh = shingles(case.subject, case.body)
        if sh:
            items.append((case, sh, band_keys(sh)))
    if not items:
        return []
    lo = min(c.submitted_at for c, _s, _k in items) - timedelta(days=RECENT_DAYS)
    hi = max(c.submitted_at for c, _s, _k in items) + timedelta(days=RECENT_DAYS)
    batch = {c.pk: c for c, _s, _k in items}

    # 1. Stored band keys: per key the PER_KEY most recent cases that may be eligible for some case of the batch.
    stored: dict[str, list[int]] = defaultdict(list)
    all_keys = sorted({k for _c, _s, keys in items for k in keys})
    maybe = Q(case__merged_into__isnull=True) & (~Q(case__state=State.ARCHIVED) | Q(case__submitted_at__range=(lo, hi)))
    for chunk in _chunks(all_keys):
        rows = (DuplicateBand.objects.filter(key__in=_among(chunk)).filter(maybe)
                .annotate(rank=Window(RowNumber(), partition_by=[F("key")], order_by=F("case_id").desc()))
                .filter(rank__lte=PER_KEY).values_list("key", "case_id"))
        for key, case_id in rows:
            stored[key].append(case_id)

    # 2. The same citizens' open cases (name/id or contact), newest first.
    names = sorted({c.citizen_name for c in batch.values() if c.citizen_name})
    contacts = sorted({c.citizen_contact for c in batch.values() if c.citizen_contact})
    by_name: dict[str, list[int]] = defaultdict(list)
    by_contact: dict[str, list[int]] = defaultdict(list)
    open_cases = Case.objects.filter(merged_into__isnull=True).exclude(state=State.ARCHIVED)
    for field, values, target in (("citizen_name", names, by_name), ("citizen_contact", contacts, by_contact)):
        for chunk in _chunks(values):
            for pk, value in (open_cases.filter(**{f"{field}__in": _among(chunk)}).order_by("-pk")
                              .values_list("pk", field)):
                target[value].append(pk)

    # 3. Candidate ids per case: band keys (stored + earlier in the batch) ranked by keys shared; the citizen's.
    memory: dict[str, list[int]] = defaultdict(list)  # key -> earlier batch case ids
    wanted: dict[int, tuple[list[int], list[int]]] = {}
    for case, _sh, keys in items:
        shared: Counter = Counter()
        for k in keys:  # per key, the PER_KEY most recent cases (the batch's are newer than the stored ones)
            recent = memory.get(k, [])[-PER_KEY:]
            shared.update(recent)
            shared.update(stored.get(k, [])[:PER_KEY - len(recent)])
        shared.pop(case.pk, None)
        citizen = set(by_name.get(case.citizen_name, ()) if case.citizen_name else ())
        citizen |= set(by_contact.get(case.citizen_contact, ()) if case.citizen_contact else ())
        citizen = sorted((i for i in citizen if i != case.pk and (i not in batch or i < case.pk)),
                         reverse=True)[:MAX_CANDIDATES]
        wanted[case.pk] = ([i for i, _n in sorted(shared.items(), key=_BY_COUNT_THEN_ID, reverse=True)], citizen)
        for k in keys:
            bucket = memory[k]
            bucket.append(case.pk)
            if len(bucket) > 2 * PER_KEY:  # older ones can never be among the PER_KEY most recent again
                del bucket[:-PER_KEY]

    # 4. The candidates' texts and states, one query per CHUNK ids.
    need = sorted({i for band, citizen in wanted.values() for i in band + citizen} - set(batch))
    others: dict[int, Case] = dict(batch)
    for chunk in _chunks(need):
        others.update((c.pk, c) for c in _texts(Case.objects.filter(pk__in=_among(chunk, "bigint")).order_by()))
    texts: dict[int, set] = {c.pk: sh for c, sh, _k in items}

    # 5. Exact Jaccard on the best candidates; flags.
    flags: list[tuple[int, int, float, str]] = []
    for case, sh, _keys in items:
        band_ids, citizen_ids = wanted[case.pk]
        chosen = []
        for i in band_ids:
            if i in others and _eligible_for(case, others[i]):
                chosen.append(i)
                if len(chosen) == MAX_CANDIDATES:
                    break
        chosen += [i for i in citizen_ids if i in others and i not in chosen and _eligible_for(case, others[i])]
        found = []
        for i in chosen:
            other = others[i]
            if i not in texts:
                texts[i] = shingles(other.subject, other.body)
            sim = jaccard(sh, texts[i])
            reason = repeat_reason(similarity=sim, same_citizen=_same_citizen(case, other))
            if reason is not None:
                found.append((sim, other, reason))
        found.sort(key=lambda x: (-x[0], x[1].pk))
        flags += [(case.pk, other.pk, round(sim, 4), str(reason)) for sim, other, reason in found[:MAX_FLAGS]]
    _bands_insert([(case.pk, i, k) for case, _sh, keys in items for i, k in enumerate(keys)])
    _flags_insert(flags)
    return flags
