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
At most ``MAX_FLAGS`` flags per message, the most similar first.
"""

from __future__ import annotations

from datetime import timedelta
import hashlib
import re

from datasketch import MinHash
from django.db.models import Q
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
MAX_CANDIDATES = 200

_STRIP = re.compile(r"[\s\W_]+", re.UNICODE)


def shingles(subject: str, body: str) -> set[str]:
    """Return the character 3-gram shingles of subject + body (whitespace and punctuation removed)."""
    text = _STRIP.sub("", f"{subject or ''}{body or ''}")
    if len(text) <= SHINGLE:
        return {text} if text else set()
    return {text[i:i + SHINGLE] for i in range(len(text) - SHINGLE + 1)}


def jaccard(a: set, b: set) -> float:
    """Exact Jaccard similarity of two shingle sets (0 when both are empty)."""
    if not a and not b:
        return 0.0
    return len(a & b) / len(a | b)


def band_keys(sh: set[str]) -> list[str]:
    """Return the ``BANDS`` LSH keys of a shingle set: band number + digest of its MinHash rows."""
    m = MinHash(num_perm=NUM_PERM, seed=1)
    m.update_batch([s.encode("utf-8") for s in sorted(sh)])
    values = np.asarray(m.hashvalues, dtype=np.uint64)
    keys = []
    for b in range(BANDS):
        digest = hashlib.blake2b(values[b * ROWS:(b + 1) * ROWS].tobytes(), digest_size=12).hexdigest()
        keys.append(f"{b:02d}{digest}")
    return keys


def repeat_reason(*, similarity: float, same_citizen: bool) -> str | None:
    """Return the flag reason for a candidate pair at ``similarity`` (Jaccard), or None (no flag)."""
    if same_citizen and similarity >= SAME_CITIZEN_MIN:
        return DuplicateFlag.Reason.SAME_CITIZEN
    if similarity >= SAME_TEXT_MIN:
        return DuplicateFlag.Reason.SAME_TEXT
    return None


def _same_citizen(a: Case, b: Case) -> bool:
    return bool((a.citizen_name and a.citizen_name == b.citizen_name)
                or (a.citizen_contact and a.citizen_contact == b.citizen_contact))


def duplicates_index_and_flag(*, case: Case) -> list[DuplicateFlag]:
    """Index the newly registered ``case`` and flag the open or recent cases it nearly repeats.

    Called by :func:`casework.services.case_register` inside its transaction (every intake path:
    manual entry, import, platform push). Returns the flags created, most similar first.
    """
    sh = shingles(case.subject, case.body)
    if not sh:
        return []
    keys = band_keys(sh)
    recent = Q(submitted_at__gte=case.submitted_at - timedelta(days=RECENT_DAYS),
               submitted_at__lte=case.submitted_at + timedelta(days=RECENT_DAYS))
    eligible = (Case.objects.exclude(pk=case.pk).filter(merged_into__isnull=True)
                .filter(~Q(state=State.ARCHIVED) | recent))
    by_band = eligible.filter(pk__in=DuplicateBand.objects.filter(key__in=keys).values("case_id"))
    candidates = {c.pk: c for c in by_band.only("pk", "subject", "body", "citizen_name", "citizen_contact")
                  [:MAX_CANDIDATES]}
    citizen = Q()
    if case.citizen_name:
        citizen |= Q(citizen_name=case.citizen_name)
    if case.citizen_contact:
        citizen |= Q(citizen_contact=case.citizen_contact)
    if citizen:
        for c in (eligible.filter(citizen).exclude(state=State.ARCHIVED)
                  .only("pk", "subject", "body", "citizen_name", "citizen_contact")[:MAX_CANDIDATES]):
            candidates.setdefault(c.pk, c)
    found = []
    for other in candidates.values():
        sim = jaccard(sh, shingles(other.subject, other.body))
        reason = repeat_reason(similarity=sim, same_citizen=_same_citizen(case, other))
        if reason is not None:
            found.append((sim, other, reason))
    found.sort(key=lambda x: (-x[0], x[1].pk))
    DuplicateBand.objects.bulk_create([DuplicateBand(case=case, band=i, key=k) for i, k in enumerate(keys)])
    return [DuplicateFlag.objects.create(case=case, repeats=other, similarity=round(sim, 4), reason=reason)
            for sim, other, reason in found[:MAX_FLAGS]]


def duplicates_index_and_flag_many(*, case_ids: list[int]) -> int:
    """Index and flag, as :func:`duplicates_index_and_flag`, the cases a batch import registered.

    The import writes its cases in bulk (``casework.importing``) rather than one ``case_register``
    at a time; this keeps intake duplicates flagged on that path too. Cases are taken in id order,
    so a repeat within one batch is flagged against the earlier row. Returns the flags created.
    """
    flagged = 0
    for case in Case.objects.filter(pk__in=case_ids).order_by("pk").only(
        "pk", "subject", "body", "citizen_name", "citizen_contact", "submitted_at"
    ):
        flagged += len(duplicates_index_and_flag(case=case))
    return flagged
