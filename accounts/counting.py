"""Counting rows up to a cap, so no list, tile or page counts a million rows (issue 11 §3).

A list needs to know whether there is more than a page and roughly how much; past a cap
(``CASEWORK_LIST_COUNT_CAP``, 1000) it says "1000+" instead of counting on. Each count is
``SELECT COUNT(*) FROM (… LIMIT cap + 1)``, which PostgreSQL stops reading after ``cap + 1`` rows.
"""

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import F, QuerySet
from django.db.models.expressions import Col


class CappedCount(int):
    """A row count that stopped at a cap: an ``int`` (the exact count, or ``cap + 1`` when capped).

    ``capped`` tells whether there were more than ``cap`` rows; ``str()`` (and so every template
    that prints it, the admin's pagination and action counter included) reads ``"1000+"`` then.
    """

    def __new__(cls, value: int, *, cap: int):
        obj = super().__new__(cls, min(int(value), cap + 1))
        obj.cap = cap
        obj.capped = int(value) > cap
        return obj

    def __str__(self) -> str:
        return f"{self.cap}+" if self.capped else str(int(self))

    __repr__ = __str__


def list_count_cap() -> int:
    """Return the number of rows a list or tile counts before it says "N+" (``CASEWORK_LIST_COUNT_CAP``, 1000)."""
    return int(getattr(settings, "CASEWORK_LIST_COUNT_CAP", 1000))


def counts_capped(*, querysets: list[QuerySet], cap: int | None = None, keep_order: bool = False) -> list[CappedCount]:
    """Count the rows of each queryset up to ``cap`` + 1, all in one query; return :class:`CappedCount` s.

    Each count is ``SELECT COUNT(*) FROM (… LIMIT cap + 1)``: PostgreSQL stops reading after
    ``cap + 1`` matching rows, so the cost does not grow with the table (issue 11 §3).

    Args:
        querysets: querysets of one database (e.g. the work queues), in the order wanted.
        cap: rows counted exactly (default :func:`list_count_cap`).
        keep_order: keep each queryset's ordering inside the limited subquery (a list's count then
            walks the same index as its page); by default the ordering is dropped. An ordering on a
            computed value (a subquery, e.g. a queue's earliest pending extension) is dropped all the
            same: no index serves it, and keeping it computed and sorted every row before counting.
    """
    cap = list_count_cap() if cap is None else cap
    if not querysets:
        return []
    parts, params = [], []
    for i, qs in enumerate(querysets):
        limited = (qs if keep_order and ordered_by_columns(qs) else qs.order_by())[: cap + 1].values("pk")
        try:
            sql, sql_params = limited.query.sql_with_params()
        except EmptyResultSet:  # e.g. a user with no unit in scope: nothing to count
            parts.append("0")
            continue
        parts.append(f"(SELECT COUNT(*) FROM ({sql}) AS capped_{i})")
        params.extend(sql_params)
    with connections[querysets[0].db].cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        row = cursor.fetchone()
    return [CappedCount(n, cap=cap) for n in row]


def ordered_by_columns(qs: QuerySet) -> bool:
    """Tell whether ``qs`` orders by table columns only (names, or annotations that are plain columns)."""
    annotations = qs.query.annotations

    def plain(expr) -> bool:
        if isinstance(expr, F):
            name = expr.name
            return name not in annotations or isinstance(annotations[name], Col)
        if isinstance(expr, Col):
            return True
        return all(plain(e) for e in expr.get_source_expressions() if e is not None)

    for item in qs.query.order_by:
        if isinstance(item, str):
            name = item.lstrip("-?")
            if name in annotations and not isinstance(annotations[name], Col):
                return False
        elif not plain(item):
            return False
    return True


def count_capped(*, queryset: QuerySet, cap: int | None = None, keep_order: bool = False) -> CappedCount:
    """Count ``queryset`` up to ``cap`` + 1 rows (one query); see :func:`counts_capped`."""
    return counts_capped(querysets=[queryset], cap=cap, keep_order=keep_order)[0]
