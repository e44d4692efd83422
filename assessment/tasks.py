"""Celery tasks of the assessment app: thin interfaces over its services."""

from celery import shared_task
from django.utils.dateparse import parse_datetime

from assessment import alerts


@shared_task(name="assessment.topic_alerts_scan", acks_late=True)
def topic_alerts_scan(now: str | None = None) -> dict[str, int]:
    """Raise the 未诉先办 topic alerts due now (scheduled daily by Celery beat; idempotent).

    Args:
        now: optional ISO-8601 aware datetime to scan as of (replays and tests); default now.

    Returns ``{"alerts": n}``, the number of new alerts (each sends one e-mail after commit).
    """
    at = parse_datetime(now) if now else None
    return {"alerts": len(alerts.topic_alerts_scan(now=at))}
