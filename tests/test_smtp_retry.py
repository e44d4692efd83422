"""Outbox e-mail through a real SMTP server on loopback (aiosmtpd): retried once, delivered once."""

from datetime import datetime
from email import message_from_bytes
from email.header import decode_header, make_header
from io import StringIO
import socket
from zoneinfo import ZoneInfo

from aiosmtpd.controller import Controller
from django.core.management import call_command
import pytest
import time_machine

from casework import escalation
from casework.models import Notification, State
from casework.tasks import notification_send

SHANGHAI = ZoneInfo("Asia/Shanghai")


class FlakyHandler:
    """Refuses the first ``failures`` messages with a temporary error, then accepts and keeps them."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        if self.failures > 0:
            self.failures -= 1
            return "451 4.3.0 Mail server temporarily unavailable"
        self.received.append(envelope.content)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp(settings):
    """A real SMTP server on 127.0.0.1 that fails once; Django mail goes to it over SMTP."""
    handler = FlakyHandler(failures=1)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    yield handler
    controller.stop()


@pytest.fixture
def urge_notification(bureau):
    call_command("calendar_seed", "--from-year", "2026", "--to-year", "2026", stdout=StringIO(),
                 stderr=StringIO())
    at = datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI)
    with time_machine.travel(at, tick=False):
        case = bureau.case_in(State.HANDLING, submitted_at=at)
    escalation.escalation_sweep(now=datetime(2026, 3, 5, 10, 1, tzinfo=SHANGHAI))
    return Notification.objects.get(case=case, key__startswith="digest:")


def test_an_smtp_failure_is_retried_and_the_mail_is_delivered_once(smtp, urge_notification):
    # apply() runs the task as a worker would, including Celery's autoretry (countdown skipped).
    result = notification_send.apply(args=[urge_notification.pk])
    assert result.get() is True
    assert len(smtp.received) == 1
    urge_notification.refresh_from_db()
    assert urge_notification.attempts == 2
    assert "451" in urge_notification.last_error
    assert urge_notification.sent_at is not None
    message = message_from_bytes(smtp.received[0])
    assert "督办单" in str(make_header(decode_header(message["Subject"])))
    assert message["Message-ID"] == f"<notification-{urge_notification.pk}@casework.invalid>"
    kinds = {part.get_content_type() for part in message.walk()}
    assert {"text/plain", "text/html"} <= kinds


def test_a_task_redelivered_after_a_worker_crash_sends_no_second_mail(smtp, urge_notification):
    smtp.failures = 0
    assert notification_send.apply(args=[urge_notification.pk]).get() is True
    # The worker died before acknowledging: the broker redelivers the same message (acks_late).
    assert notification_send.apply(args=[urge_notification.pk]).get() is False
    assert notification_send.apply(args=[urge_notification.pk]).get() is False
    assert len(smtp.received) == 1
    urge_notification.refresh_from_db()
    assert urge_notification.attempts == 1


def test_a_mail_server_that_stays_down_leaves_the_mail_unsent_in_the_outbox(
    settings, urge_notification
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nobody listens
    settings.EMAIL_TIMEOUT = 2
    notification_send.max_retries, saved = 2, notification_send.max_retries
    try:
        with pytest.raises(OSError):
            notification_send.apply(args=[urge_notification.pk]).get()
    finally:
        notification_send.max_retries = saved
    urge_notification.refresh_from_db()
    assert urge_notification.sent_at is None
    assert urge_notification.attempts == 3 and urge_notification.last_error
