"""Celery tasks of the assessment app: thin interfaces over its services."""

from celery import shared_task
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from assessment import alerts, figures_store


@shared_task(name="assessment.topic_alerts_scan", acks_late=True)
def topic_alerts_scan(now: str | None = None) -> dict[str, int]:
    """Raise the 未诉先办 topic alerts due now (scheduled daily by Celery beat; idempotent).

    Args:
        now: optional ISO-8601 aware datetime to scan as of (replays and tests); default now.

    Returns ``{"alerts": n}``, the number of new alerts (each sends one e-mail after commit).
    """
    at = parse_datetime(now) if now else None
    return {"alerts": len(alerts.topic_alerts_scan(now=at))}


@shared_task(name="assessment.figures_refresh", acks_late=True)
def figures_refresh(now: str | None = None) -> dict[str, float]:
    """Recompute the kept assessment figures of this year and last (beat: every 10 minutes).

    Args:
        now: optional ISO-8601 aware datetime to compute as of; default now.

    Returns ``{"YYYY": seconds}``, the computing time of each year (issue 11 §5).
    """
    at = parse_datetime(now) if now else None
    return {str(timezone.localtime(k.period_start).year): k.seconds
            for k in figures_store.figures_refresh_current(now=at)}
