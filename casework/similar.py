"""类案参考: the archived cases most similar to the one being drafted, with their published replies.

Rule (issue 12): the pool is the replied or archived cases with a published reply that the
handler may see (:func:`casework.selectors.cases_visible_to`, the one access rule), newest
first, at most ``POOL`` of them; they are ranked by cosine similarity of character 1–2-gram
TF-IDF over subject + body. Personal numbers (mobile, landline, ID card) in the subject and the
reply are masked (138****8000), and the source case's citizen name and contact are replaced, so
nothing personal comes along when a reply is inserted as a starting point.
"""

from __future__ import annotations

import re

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from accounts.models import User
from casework.models import Case, State
from casework.selectors import cases_visible_to
from casework.text import find_personal_numbers, mask_contact

POOL = 1500
TOP = 5
_SPACE = re.compile(r"\s+")


def text_masked(text: str, *, citizen: tuple[str, ...] = ()) -> str:
    """Return ``text`` with personal numbers masked and the given citizen names/contacts replaced."""
    out = text or ""
    for number in sorted(find_personal_numbers(out), key=len, reverse=True):
        out = out.replace(number, mask_contact(number))
    for value in citizen:
        value = (value or "").strip()
        if len(value) >= 2:
            out = out.replace(value, "***")
    return out


def similar_replies(*, user: User, case: Case, k: int = TOP) -> list[dict]:
    """Return up to ``k`` archived cases like ``case`` that ``user`` may see, most similar first.

    Each item: ``pk``, ``reference``, ``subject`` (masked), ``similarity`` (0–1, cosine) and
    ``reply`` (the published reply, masked). ``case`` itself and merged duplicates are never
    offered; cases outside the user's scope are never read.
    """
    pool = list(
        cases_visible_to(user=user)
        .filter(state__in=[State.REPLIED, State.ARCHIVED], merged_into__isnull=True)
        .exclude(published_reply="").exclude(pk=case.pk)
        .order_by("-published_at", "-pk")
        .values("pk", "reference", "subject", "body", "published_reply", "citizen_name", "citizen_contact")
        [:POOL]
    )
    if not pool:
        return []
    docs = [_SPACE.sub("", f"{p['subject']}。{p['body']}") for p in pool]
    query = _SPACE.sub("", f"{case.subject}。{case.body}")
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True, dtype=np.float32)
    matrix = vec.fit_transform(docs + [query])
    sims = (matrix[:-1] @ matrix[-1].T).toarray().ravel()
    order = np.argsort(-sims)[:k]
    out = []
    for i in order:
        if sims[i] <= 0:
            break
        p = pool[i]
        who = (p["citizen_name"], p["citizen_contact"])
        out.append({
            "pk": p["pk"], "reference": p["reference"], "similarity": float(sims[i]),
            "subject": text_masked(p["subject"], citizen=who),
            "reply": text_masked(p["published_reply"], citizen=who),
        })
    return out
