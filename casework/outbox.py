"""The e-mail outbox: every e-mail of the site is a ``Notification`` row, sent exactly once, eventually.

The guarantee (issue 8 §2) and how it holds:

- A row is written in the transaction of its cause (:func:`notification_queue`), so an e-mail exists
  exactly when its cause committed. The hand-off to the broker happens after commit and never
  raises: with the broker down the action still succeeds, the row stays unsent and is due for the
  periodic flush at once.
- :func:`notification_flush` (beat, every minute) sends the unsent rows whose retry time has come,
  oldest first, in batches. Each row is claimed by its row lock (``select_for_update(skip_locked)``
  on PostgreSQL; SQLite serialises writers), held while the mail server is spoken to, so two
  workers, a redelivered task and the flush never send one row twice.
- Delivery is recorded per recipient (``NotificationRecipient``). A recipient the mail server
  refuses for now (SMTP 4xx, e.g. 450) is retried alone, with backoff; the recipients that accepted
  the e-mail never get it again. A permanent refusal (5xx) waits for a superuser's retry in the
  admin. ``sent_at`` is set when every recipient has the e-mail.
- A whole-message failure (mail server down) is recorded (attempts, last error) and retried with
  backoff by the Celery task and by the flush, whichever comes first.

A crash between the mail server accepting the message and the commit that records it sends that
e-mail again (at least once); every copy carries the row's Message-ID, so it is recognisable.
"""

from datetime import datetime, timedelta
import logging
import smtplib

from celery import current_app
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.mail.message import sanitize_address
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from casework.models import Case, Notification, NotificationRecipient
from casework.text import mask_personal_numbers

logger = logging.getLogger("casework")

SEND_TASK = "casework.notification_send"
# Until the hand-off's task runs, the flush leaves a new row alone for this long.
HANDOFF_GRACE = timedelta(minutes=2)
BACKOFF_FIRST_SECONDS = 60
BACKOFF_MAX_SECONDS = 3600
FLUSH_BATCH = 200

Status = NotificationRecipient.Status
OPEN_STATUSES = (Status.PENDING, Status.DEFERRED)


def retry_delay(attempts: int) -> timedelta:
    """Return the wait before the next try after ``attempts`` failed tries: 1, 2, 4 … 60 minutes."""
    return timedelta(seconds=min(BACKOFF_FIRST_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS))


def notification_handoff(notification_id: int) -> bool:
    """Hand one outbox row to the broker for the worker to send; never raises.

    Returns False when the broker could not take it (logged); the row stays unsent and is due for
    :func:`notification_flush` at once, so nothing is lost and the caller's request goes on.
    """
    try:
        task = current_app.tasks[SEND_TASK]
        if current_app.conf.task_always_eager:
            task.apply_async(args=[notification_id])
            return True
        # One connection attempt, no publish retries: a request or a sweep never waits on a
        # broker that is down (kombu would otherwise keep reconnecting for seconds per e-mail).
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0)
            task.apply_async(args=[notification_id], connection=conn, retry=False)
        return True
    except Exception as exc:  # broker down, DNS, timeout …: the outbox row is the source of truth
        logger.warning("outbox: broker hand-off of notification %s failed, left for the flush: %s",
                       notification_id, exc)
        try:
            Notification.objects.filter(pk=notification_id, sent_at__isnull=True).update(
                next_attempt_at=timezone.now()
            )
        except Exception:  # the database too: the grace period brings the row round anyway
            logger.exception("outbox: could not mark notification %s as due", notification_id)
        return False


def notification_queue(
    *,
    key: str,
    recipients: list[str],
    subject: str,
    body: str,
    case: Case | None = None,
    html_body: str = "",
) -> Notification | None:
    """Put an e-mail in the outbox once per ``key`` and hand it to the broker after the commit.

    Args:
        key: unique cause of the e-mail (e.g. ``"event:<id>"``, ``"step:<id>"``); a cause that
            runs twice queues one e-mail.
        recipients: addresses; blanks and duplicates are dropped.
        subject, body: the e-mail; ``html_body``, when given, is sent as its HTML alternative.
        case: the case it is about, if any.

    Personal numbers in the subject and bodies are masked: an e-mail leaves the system and its
    recipients need not hold ``casework.view_citizen_contact`` (issue 9 §1, :mod:`casework.text`).

    Returns:
        The notification, or None when it has no recipients or ``key`` was queued before.
        The hand-off after commit never raises (see :func:`notification_handoff`).
    """
    subject, body = mask_personal_numbers(subject), mask_personal_numbers(body)
    html_body = mask_personal_numbers(html_body)
    recipients = sorted({r for r in recipients if r})
    if not recipients:
        return None
    try:
        with transaction.atomic():
            notification = Notification.objects.create(
                key=key, case=case, recipients=recipients, subject=subject, body=body,
                html_body=html_body, next_attempt_at=timezone.now() + HANDOFF_GRACE,
            )
    except IntegrityError:
        return None
    transaction.on_commit(lambda: notification_handoff(notification.pk))
    return notification


def notification_queue_many(*, mails: list[dict], citizen_text_masked: bool = False) -> list[Notification]:
    """Put many e-mails in the outbox in one statement (the escalation digests), each once per key.

    The bulk form of :func:`notification_queue`, with the same rules: personal numbers masked in
    subjects and bodies, blank and duplicate recipients dropped, an e-mail without recipients or
    whose ``key`` was queued before skipped, every row handed to the broker after the commit.
    Two statements whatever the number of e-mails (the keys already queued, the insert). Call it
    inside the transaction of the cause, which must hold the locks that make its keys its own.

    Args:
        mails: dicts with ``key``, ``recipients``, ``subject``, ``body`` and optionally
            ``html_body`` and ``case`` (as :func:`notification_queue` takes them).
        citizen_text_masked: the caller built the bodies from citizen text it masked itself, field
            by field, with :func:`casework.text.mask_personal_numbers` (the escalation digests:
            thousands of cases in one body, where the parsers would take seconds on the dates,
            references and links around them); only the subjects are masked again here.

    Returns:
        The notifications written, in the order of ``mails`` (skipped ones left out).
    """
    wanted = []
    for mail in mails:
        recipients = sorted({r for r in mail["recipients"] if r})
        if recipients:
            wanted.append((mail, recipients))
    if not wanted:
        return []
    queued = set(Notification.objects.filter(key__in=[m["key"] for m, _r in wanted]).values_list("key", flat=True))
    due = timezone.now() + HANDOFF_GRACE
    body = (lambda text: text) if citizen_text_masked else mask_personal_numbers
    rows, seen = [], set()
    for mail, recipients in wanted:
        if mail["key"] in queued or mail["key"] in seen:
            continue
        seen.add(mail["key"])
        rows.append(Notification(
            key=mail["key"], case=mail.get("case"), recipients=recipients,
            subject=mask_personal_numbers(mail["subject"]), body=body(mail["body"]),
            html_body=body(mail.get("html_body", "")), next_attempt_at=due,
        ))
    rows = Notification.objects.bulk_create(rows)
    ids = [n.pk for n in rows]

    def handoff():
        for pk in ids:
            notification_handoff(pk)

    transaction.on_commit(handoff)
    return rows


def _mail_send(message: EmailMultiAlternatives) -> dict[str, tuple[int, str]]:
    """Send ``message`` through the configured backend; return the recipients refused, with code.

    Django's SMTP backend drops the refusals of some recipients (``smtplib`` returns them); here
    the SMTP conversation keeps them. Other backends (file, memory) refuse nobody.

    Raises:
        smtplib.SMTPException, OSError: the message as a whole was not accepted.
    """
    connection = get_connection()
    if not isinstance(connection, SMTPBackend):
        connection.send_messages([message])
        return {}
    encoding = message.encoding or settings.DEFAULT_CHARSET
    envelope = {sanitize_address(addr, encoding): addr for addr in message.recipients()}
    connection.open()
    try:
        try:
            refused = connection.connection.sendmail(
                sanitize_address(message.from_email, encoding),
                list(envelope),
                message.message().as_bytes(linesep="\r\n"),
            )
        except smtplib.SMTPRecipientsRefused as exc:  # every recipient refused
            refused = exc.recipients
    finally:
        connection.close()
    result = {}
    for addr, (code, text) in refused.items():
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        result[envelope.get(addr, addr)] = (int(code), text)
    return result


def _deliveries(notification: Notification) -> list[NotificationRecipient]:
    """Return the per-recipient rows of ``notification``, creating them at the first attempt."""
    rows = list(notification.deliveries.all())
    missing = [a for a in notification.recipients if a not in {r.address for r in rows}]
    if missing:
        NotificationRecipient.objects.bulk_create(
            [NotificationRecipient(notification=notification, address=a) for a in missing],
            ignore_conflicts=True,
        )
        rows = list(notification.deliveries.all())
    return rows


def notification_deliver(*, notification_id: int, claim: bool = False, now: datetime | None = None) -> bool:
    """Send one outbox e-mail to its recipients still waiting for it; True when someone got it now.

    The row is locked while the mail server is spoken to, so nobody else sends it meanwhile. With
    ``claim`` (the periodic flush) a row locked by another worker, or whose retry time has not
    come, is skipped instead of waited for. Each recipient's outcome is recorded: delivered,
    refused for now (4xx: retried alone after a backoff) or refused for good (5xx: left for a
    superuser). ``sent_at`` is set once every recipient has the e-mail.

    Args:
        notification_id: primary key of a ``Notification``.
        claim: skip instead of wait (see above).
        now: aware datetime of the attempt; defaults to the current time.

    Returns:
        True when this call delivered the e-mail to at least one recipient; False when there was
        nothing to send (sent before, skipped, or only permanently refused recipients left).

    Raises:
        Notification.DoesNotExist: no such row (not with ``claim``).
        smtplib.SMTPException, OSError: the mail server did not take the message; the failure is
            recorded (attempts, last error, next retry) after the rollback, then raised again so
            the Celery task retries.
    """
    now = now or timezone.now()
    try:
        with transaction.atomic():
            rows = Notification.objects.filter(pk=notification_id)
            if claim:
                rows = rows.select_for_update(skip_locked=True).filter(
                    sent_at__isnull=True, next_attempt_at__lte=now
                )
                notification = rows.first()
                if notification is None:
                    return False
            else:
                notification = rows.select_for_update().get()
            if notification.sent_at is not None:
                return False
            deliveries = _deliveries(notification)
            waiting = [r for r in deliveries if r.status in OPEN_STATUSES]
            if not waiting:
                notification.next_attempt_at = None
                notification.save(update_fields=["next_attempt_at"])
                return False
            message = EmailMultiAlternatives(
                subject=notification.subject,
                body=notification.body,
                to=[r.address for r in waiting],
                # One Message-ID per outbox row: a resend after a crash is recognisable as such.
                headers={"Message-ID": f"<notification-{notification.pk}@casework.invalid>"},
            )
            if notification.html_body:
                message.attach_alternative(notification.html_body, "text/html")
            refused = _mail_send(message)
            for row in waiting:
                row.attempts += 1
                if row.address in refused:
                    code, text = refused[row.address]
                    row.status = Status.DEFERRED if 400 <= code < 500 else Status.REFUSED
                    row.last_code, row.last_error = code, f"{code} {text}"[:2000]
                else:
                    row.status, row.sent_at, row.last_code, row.last_error = Status.SENT, now, 250, ""
            NotificationRecipient.objects.bulk_update(
                waiting, ["status", "attempts", "last_code", "last_error", "sent_at"]
            )
            notification.attempts += 1
            fields = ["attempts", "sent_at", "next_attempt_at"]
            if refused:
                notification.last_error = "; ".join(
                    f"{addr}: {code} {text}" for addr, (code, text) in sorted(refused.items())
                )[:2000]
                fields.append("last_error")
            if all(r.status == Status.SENT for r in deliveries):
                notification.sent_at, notification.next_attempt_at = now, None
            elif any(r.status == Status.DEFERRED for r in deliveries):
                notification.next_attempt_at = now + retry_delay(notification.attempts)
            else:
                notification.next_attempt_at = None  # only permanent refusals left: a superuser decides
            notification.save(update_fields=fields)
            if refused:
                logger.warning("outbox: notification %s refused for %s", notification.pk, sorted(refused))
            return len(refused) < len(waiting)
    except Notification.DoesNotExist:
        raise
    except Exception as exc:  # recorded outside the rolled-back block, then re-raised for a retry
        attempts = (
            Notification.objects.filter(pk=notification_id).values_list("attempts", flat=True).first()
        )
        if attempts is not None:
            Notification.objects.filter(pk=notification_id, sent_at__isnull=True).update(
                attempts=F("attempts") + 1, last_error=str(exc)[:2000],
                next_attempt_at=now + retry_delay(attempts + 1),
            )
        raise


def notification_flush(*, now: datetime | None = None, limit: int = FLUSH_BATCH) -> dict[str, int]:
    """Send the unsent outbox e-mails whose retry time has come (the periodic task), oldest first.

    Picks up what the broker lost or never got (hand-off failed at commit), what the Celery
    retries gave up on and the recipients refused for now. Each row is claimed as in
    :func:`notification_deliver` with ``claim=True``; a failing row is recorded and the flush goes on.

    Args:
        now: aware datetime of the run; defaults to the current time.
        limit: most rows tried in one run (the rest wait for the next run).

    Returns:
        ``{"due": rows found, "sent": rows that reached someone, "failed": rows whose send failed}``.
    """
    now = now or timezone.now()
    due = list(
        Notification.objects.filter(sent_at__isnull=True, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    result = {"due": len(due), "sent": 0, "failed": 0}
    for pk in due:
        try:
            if notification_deliver(notification_id=pk, claim=True, now=now):
                result["sent"] += 1
        except Exception as exc:
            result["failed"] += 1
            logger.warning("outbox: notification %s failed again: %s", pk, exc)
    return result


@transaction.atomic
def notification_retry(*, notification: Notification, acting_user) -> bool:
    """Make an unsent e-mail due again now, including its permanently refused recipients (admin).

    Args:
        notification: the ``Notification``.
        acting_user: a superuser.

    Returns:
        False when it had been sent already (nothing to retry).

    Raises:
        PermissionDenied: ``acting_user`` is not a superuser.
    """
    if not acting_user.is_superuser:
        raise PermissionDenied
    locked = Notification.objects.select_for_update().get(pk=notification.pk)
    if locked.sent_at is not None:
        return False
    locked.deliveries.filter(status=Status.REFUSED).update(status=Status.DEFERRED)
    locked.next_attempt_at = timezone.now()
    locked.save(update_fields=["next_attempt_at"])
    logger.info("outbox: notification %s retried by %s", locked.pk, acting_user)
    transaction.on_commit(lambda: notification_handoff(locked.pk))
    return True
