"""The demo's history on the last twelve months: re-based message times and a clock that follows them.

Rule (issue 10 item 9): the real messages of the data file were posted 2011–2020. The demo moves
their submission times onto the twelve months ending today, linearly (the oldest message a year
ago, the newest two hours ago), and keeps each message's own intervals: the official reply comes
exactly as long after the re-based submission as it came after the real one. Each step of a case
(registration, dispatch, sign-for, feedback, review, publication, follow-up, archive) is taken
*at* its re-based time: :func:`clock_at` makes ``django.utils.timezone.now`` answer that time while
the services run, so audit events, clocks, deadlines and case numbers (JB-<year of registration>)
are those of a real year of work. Only the demo loader uses it, single-threaded, before the site
serves; nothing else in the project moves the clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.utils import timezone

from casework.calendar import SHANGHAI

WINDOW = timedelta(days=365)
NEWEST_AGE = timedelta(hours=2)


@contextmanager
def clock_at(moment: datetime) -> Iterator[None]:
    """Inside the block, ``django.utils.timezone.now()`` starts at ``moment`` and ticks on.

    Args:
        moment: aware datetime, not in the future (a later one is taken as now).

    The clock ticks with real time from ``moment`` so that steps taken in one block keep their
    order. Not thread-safe by design: the demo loader runs alone.
    """
    real = timezone.now
    start = real()
    moment = min(moment, start)
    timezone.now = lambda: moment + (real() - start)
    try:
        yield
    finally:
        timezone.now = real


def _parse(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat((value or "").strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=SHANGHAI)


def rows_rebase(rows: list[dict], *, now: datetime) -> list[dict]:
    """Return copies of the data file's rows with ``submitted_at`` and ``replied_at`` re-based.

    Args:
        rows: mappings with the export's columns (``submitted_at``, ``replied_at`` ISO texts,
            naive = Beijing time).
        now: aware "today"; the newest message lands :data:`NEWEST_AGE` before it and the oldest
            :data:`WINDOW` before it.

    Returns:
        The rows (those with a readable ``submitted_at``), oldest first, with ISO times carrying
        +08:00; a reply keeps its real delay after the message (at least one hour).
    """
    dated = [(r, _parse(r.get("submitted_at", ""))) for r in rows]
    dated = [(r, s) for r, s in dated if s is not None]
    if not dated:
        return []
    oldest = min(s for _r, s in dated)
    newest = max(s for _r, s in dated)
    span = (newest - oldest) or timedelta(seconds=1)
    target = WINDOW - NEWEST_AGE
    end = now - NEWEST_AGE
    out = []
    for row, submitted in sorted(dated, key=lambda item: item[1]):
        moved = end - (newest - submitted) * (target / span)
        moved = moved.astimezone(SHANGHAI).replace(microsecond=0)
        copy = dict(row)
        copy["submitted_at"] = moved.isoformat()
        replied = _parse(row.get("replied_at", ""))
        if replied is not None:
            delay = max(replied - submitted, timedelta(hours=1))
            copy["replied_at"] = (moved + delay).isoformat()
        else:
            copy["replied_at"] = ""
        out.append(copy)
    return out
