"""Celery tasks: thin, idempotent interfaces that take ids and call services."""

from celery import shared_task
from django.core.exceptions import ObjectDoesNotExist

from casework import escalation, router_service, services


@shared_task(name="casework.escalation_sweep", acks_late=True)
def escalation_sweep() -> dict[str, int]:
    """Run the escalation ladder over the cases due now (scheduled by Celery beat).

    Returns the number of steps taken per level. Running it twice, or twice at once, takes each
    step once (see :mod:`casework.escalation`); on PostgreSQL a sweep that starts while another is
    still running skips at once and returns ``{"skipped": 1}``.
    """
    with escalation.sweep_lock() as acquired:
        if not acquired:
            return {"skipped": 1}
        return escalation.escalation_sweep()


@shared_task(
    name="casework.notification_send",
    acks_late=True,
    autoretry_for=(Exception,),
    # A notification that does not exist will not appear by retrying (e.g. a message left in the
    # broker from another database): fail at once instead of retrying for hours.
    dont_autoretry_for=(ObjectDoesNotExist,),
    retry_backoff=30,
    retry_backoff_max=1800,
    max_retries=10,
)
def notification_send(notification_id: int) -> bool:
    """Send one outbox e-mail by id unless already sent; retried with backoff when SMTP fails.

    Args:
        notification_id: primary key of a ``Notification`` row (queued after its cause committed).

    Returns:
        True when this call sent the e-mail, False when it had been sent before (a redelivered
        or repeated task sends nothing new).

    Raises:
        Notification.DoesNotExist: no such row (not retried).
    """
    return services.notification_deliver(notification_id=notification_id)


@shared_task(name="casework.router_train", acks_late=True)
def router_train() -> dict:
    """Retrain the dispatch-suggestion model on the archive (scheduled weekly by Celery beat).

    Returns ``{"model_id": …, "n_cases": …, "macro_f1": …}``, or ``{"skipped": 1}`` when the
    archive has too little history (the previous model and the catalogue stay in use).
    """
    row = router_service.router_train()
    if row is None:
        return {"skipped": 1}
    return {"model_id": row.pk, "n_cases": row.n_cases, "macro_f1": row.macro_f1}
