"""Celery tasks: thin, idempotent interfaces that take ids and call services."""

from celery import shared_task
from django.core.exceptions import ObjectDoesNotExist

from casework import audit, escalation, importing, outbox, quality, router_service, services, tracking


@shared_task(name="casework.escalation_sweep", acks_late=True)
def escalation_sweep() -> dict[str, int]:
    """Run the escalation ladder over the cases due now (scheduled by Celery beat).

    Returns the number of steps taken per level (and per quality rung kind, ``quality_<kind>``,
    :func:`casework.quality.quality_sweep`, issue 13). Running it twice, or on several workers at
    once, takes each step once: the workers share the due clocks batch by batch (``SKIP LOCKED`` on
    PostgreSQL) and each recipient gets one digest per rung of each run (see
    :mod:`casework.escalation`); a quality step is unique per case, round and rung.
    """
    return {**escalation.escalation_sweep(), **quality.quality_sweep()}


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


@shared_task(name="casework.notification_flush", acks_late=True)
def notification_flush() -> dict[str, int]:
    """Send the outbox e-mails still unsent whose retry time has come (beat, every minute).

    Catches what the broker never got (hand-off failed at commit), what the task's retries gave up
    on, and recipients a mail server refused for now (each retried alone). Each row is claimed
    under its row lock, so overlapping runs and workers never send one e-mail twice.

    Returns:
        ``{"due": n, "sent": n, "failed": n}`` (see :func:`casework.outbox.notification_flush`).
    """
    return outbox.notification_flush()


@shared_task(name="casework.audit_verify", acks_late=True)
def audit_verify() -> dict[str, int]:
    """Verify every case's audit chain against its sealed head and the external anchor (beat, daily).

    Records an ``AuditVerificationRun`` (visible in the admin) and, on any failure, queues an alert
    e-mail to the superusers through the outbox.

    Returns:
        ``{"run": id, "cases": n, "events": n, "failures": n}``.
    """
    run = audit.audit_verify_run()
    return {"run": run.pk, "cases": run.cases_checked, "events": run.events_checked,
            "failures": run.failure_count}


@shared_task(name="casework.import_job_run", acks_late=True)
def import_job_run(job_id: int) -> str:
    """Import the stored file of one :class:`~casework.importing_models.ImportJob` (queued by the admin upload).

    Args:
        job_id: primary key of the job.

    Returns:
        the job's final status (``done`` or ``failed``). A redelivered task for a finished job
        does nothing; progress and every row's outcome are kept in the job as it runs.

    Raises:
        ImportJob.DoesNotExist: no such job.
    """
    return importing.import_job_run(job_id=job_id).status


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


@shared_task(name="casework.rectification_reminders", acks_late=True)
def rectification_reminders() -> dict[str, int]:
    """Send the 跟踪督办 reminders due now (beat, every 30 minutes; issue 13 §4).

    Each open rectification round is reminded once when one working day is left on the referred
    unit's calendar and once when its deadline has passed (:func:`casework.tracking.rectification_reminders_send`);
    overlapping runs and redelivered tasks send each reminder once.

    Returns:
        ``{"due_soon": n, "overdue": n}``: the reminders this run sent to the outbox.
    """
    return tracking.rectification_reminders_send()
