"""Kept assessment figures (issue 11 §5): computed in the background, read by the pages in milliseconds.

The whole-year computation over ten million audit events takes tens of seconds
(:func:`assessment.selectors.assessment_figures`, one pass over the log). The report a leader
opens reads instead the figures last computed for its period (:class:`KeptFigures`), refreshed by
the Celery beat task ``assessment.figures_refresh`` (every 10 minutes, this year and last) and on
demand (the report's 立即更新 button), and says when they were computed. The kept figures are
exactly what the computation gave at that time (a test computes both on the same timelines), and
a reader's figures are the kept figures of the reader's units (each unit's figures do not depend
on who reads them, see :func:`assessment.selectors.assessment_scope_unit_ids`).

This module is the storage layer only: what is computed stays in :mod:`assessment.selectors`
(new metrics added there are kept without a change here, as long as they are ``Ratio``, ``Mean``
or whole numbers per unit).
"""

from __future__ import annotations

from datetime import datetime, timedelta
import time
import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from assessment.facts import Period
from assessment.models import KeptFigures
from assessment.office_metrics import office_figures, office_figures_dump
from assessment.selectors import Mean, Ratio, assessment_figures
from casework.models import CaseEvent


def figures_dump(figures: dict[str, dict]) -> dict:
    """Return ``{metric: {unit_id: figure}}`` as JSON: Ratio → ``{"num", "den"}``, Mean → ``{"total", "count"}``."""
    out: dict = {}
    for metric, by_unit in figures.items():
        cells = {}
        for unit_id, value in by_unit.items():
            if isinstance(value, Ratio):
                cells[str(unit_id)] = {"num": value.num, "den": value.den}
            elif isinstance(value, Mean):
                cells[str(unit_id)] = {"total": value.total, "count": value.count}
            else:
                cells[str(unit_id)] = value
        out[metric] = cells
    return out


def figures_load(data: dict, *, unit_ids: list[int] | None = None) -> dict[str, dict]:
    """Inverse of :func:`figures_dump`, keeping only ``unit_ids`` (None: every unit)."""
    wanted = None if unit_ids is None else set(unit_ids)
    out: dict[str, dict] = {}
    for metric, cells in data.items():
        by_unit = {}
        for key, value in cells.items():
            unit_id = int(key)
            if wanted is not None and unit_id not in wanted:
                continue
            if isinstance(value, dict) and "den" in value:
                by_unit[unit_id] = Ratio(value["num"], value["den"])
            elif isinstance(value, dict) and "count" in value:
                by_unit[unit_id] = Mean(value["total"], value["count"])
            else:
                by_unit[unit_id] = value
        out[metric] = by_unit
    return out


def figures_refresh(*, period: Period, now: datetime | None = None) -> KeptFigures:
    """Compute every figure of every unit for ``period`` from the audit log and keep it.

    Args:
        period: the assessment period (e.g. ``Period.year(2026)``).
        now: the report time (``as_of``) of the computation, an aware datetime; default now.

    Returns the kept row (created or replaced). One computation of
    :func:`assessment.selectors.assessment_figures` with ``unit_ids=None`` and one of the office
    table (:func:`assessment.office_metrics.office_figures`); the row is written in one transaction, so a reader sees the previous figures until the new ones are complete.
    """
    now = now or timezone.now()
    last_event = CaseEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    started = time.perf_counter()
    figures = assessment_figures(period=period, unit_ids=None, as_of=now)
    office = office_figures(period=period, as_of=now)
    seconds = time.perf_counter() - started
    with transaction.atomic():
        kept, _ = KeptFigures.objects.update_or_create(
            period_start=period.start, period_end=period.end,
            defaults={"computed_at": now, "seconds": seconds, "last_event_id": last_event,
                      "data": figures_dump(figures), "office": office_figures_dump(office)},
        )
    return kept


def figures_max_age() -> timedelta:
    """How old kept figures may be before a page computes them again (``CASEWORK_ASSESSMENT_MAX_AGE_MINUTES``, 30)."""
    return timedelta(minutes=int(getattr(settings, "CASEWORK_ASSESSMENT_MAX_AGE_MINUTES", 30)))


def figures_kept(*, period: Period, unit_ids: list[int] | None, now: datetime | None = None,
                 refresh: bool = False) -> tuple[dict[str, dict], KeptFigures]:
    """Return the kept figures of ``period`` for ``unit_ids`` and their row, computing them when needed.

    The kept row is used when it is younger than :func:`figures_max_age`; otherwise (none yet,
    too old, or ``refresh``) the figures are computed now (:func:`figures_refresh`) and kept.

    Args:
        period: the assessment period.
        unit_ids: the reader's units (:func:`assessment.selectors.assessment_scope_unit_ids`);
            None for every unit.
        now: the current time (aware); default now.
        refresh: compute now whatever the age of the kept figures (the 立即更新 button).

    Returns ``({metric: {unit_id: Ratio | Mean | int}}, KeptFigures)``.
    """
    now = now or timezone.now()
    kept = None if refresh else (KeptFigures.objects.filter(period_start=period.start, period_end=period.end)
                                 .first())
    if kept is None or kept.computed_at < now - figures_max_age():
        kept = figures_refresh(period=period, now=now)
    return figures_load(kept.data, unit_ids=unit_ids), kept


# The beat task's lock (Django's cache: Redis in production, so every worker sees it).
REFRESH_LOCK_KEY = "assessment:figures_refresh_current"


def figures_refresh_current(*, now: datetime | None = None, lock_seconds: int = 3600) -> list[KeptFigures]:
    """Refresh the kept figures of this year and of last year (Beijing), for the beat task.

    Runs one at a time: at 10,000,000 events a whole year takes minutes (553 s measured), longer
    than the beat's 10-minute interval, and runs that overlapped would pile up on the workers
    computing the same figures. A run that finds another one going returns ``[]`` at once (the
    next beat tick tries again). The lock is a cache key (``REFRESH_LOCK_KEY``) that expires after
    ``lock_seconds`` seconds, so a worker killed mid-run does not stop the refreshes for good.

    Args:
        now: aware datetime to compute as of; default now.
        lock_seconds: the lock's lifetime in seconds (longer than one run).

    Returns the refreshed ``KeptFigures`` rows (this year, last year), or ``[]`` when skipped.
    """
    token = uuid.uuid4().hex
    if not cache.add(REFRESH_LOCK_KEY, token, timeout=lock_seconds):
        return []
    try:
        now = now or timezone.now()
        year = timezone.localtime(now).year
        return [figures_refresh(period=Period.year(y), now=now) for y in (year, year - 1)]
    finally:
        if cache.get(REFRESH_LOCK_KEY) == token:
            cache.delete(REFRESH_LOCK_KEY)
