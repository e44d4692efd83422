"""The outbox sends every e-mail exactly once, eventually (issue 8 §2).

Real parts only: the Celery app publishing to a Redis URL on a port where nothing listens (the
broker down), a real SMTP server on loopback (aiosmtpd) refusing one recipient with 450, real
database transactions and row locks.
"""

from datetime import datetime, timedelta
from email import message_from_bytes
from io import StringIO
import socket
from zoneinfo import ZoneInfo

from aiosmtpd.controller import Controller
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone
import pytest
import time_machine

from casework import escalation, outbox
from casework.models import Notification, NotificationRecipient, State
from casework.tasks import notification_flush, notification_send
from config.celery import app as celery_app
from tests.factories import Bureau, run_together

SHANGHAI = ZoneInfo("Asia/Shanghai")
Status = NotificationRecipient.Status


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def broker_down(settings):
    """The Celery app publishes to Redis on a closed port: every hand-off to the broker fails."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    saved = celery_app.conf.broker_url, celery_app.conf.task_always_eager
    celery_app.conf.broker_url = f"redis://127.0.0.1:{free_port()}/0"
    celery_app.conf.task_always_eager = False
    celery_app._after_fork()  # drop pooled connections to the real broker
    yield
    celery_app.conf.broker_url, celery_app.conf.task_always_eager = saved
    celery_app._after_fork()


def later(minutes: int = 10) -> datetime:
    return timezone.now() + timedelta(minutes=minutes)


@pytest.mark.django_db(transaction=True)
def test_broker_down_at_commit_the_action_commits_and_the_flush_sends_it_once(broker_down):
    bureau = Bureau()
    case = bureau.case_in(State.DISPATCHED)  # the dispatch e-mail is handed off after the commit
    case.refresh_from_db()
    assert case.state == State.DISPATCHED  # committed, and no exception reached the caller
    notification = Notification.objects.get(case=case, subject__startswith="【")
    assert notification.sent_at is None
    assert notification.next_attempt_at <= timezone.now()  # due for the flush at once
    mail.outbox = []

    assert outbox.notification_flush()["sent"] >= 1
    assert outbox.notification_flush()["sent"] == 0
    notification_send.apply(args=[notification.pk])  # the lost message arriving late: nothing new
    notification.refresh_from_db()
    assert notification.sent_at is not None
    mine = [m for m in mail.outbox if m.subject == notification.subject]
    assert len(mine) == 1
    assert mine[0].to == [bureau.handler_a.email]
    assert not Notification.objects.filter(sent_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_broker_down_an_admin_action_answers_normally_not_500(broker_down, client):
    bureau = Bureau()
    case = bureau.case_in(State.DISPATCHED)
    client.force_login(bureau.handler_a)
    response = client.post(
        reverse("admin:casework_case_act", args=[case.pk, "return_to_office"]),
        {"reason": "非本单位辖区", "expected_state": State.DISPATCHED},
    )
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.state != State.DISPATCHED  # the return committed
    returned = Notification.objects.get(case=case, subject__startswith="【退回】")
    assert returned.sent_at is None
    mail.outbox = []
    # The periodic task through Celery's task path (apply: as a worker runs it).
    notification_flush.apply().get()
    assert [m.subject for m in mail.outbox].count(returned.subject) == 1


@pytest.mark.django_db(transaction=True)
def test_broker_down_during_a_sweep_every_step_is_taken_and_every_mail_sent_later(broker_down):
    call_command("calendar_seed", "--from-year", "2026", "--to-year", "2026", stdout=StringIO(),
                 stderr=StringIO())
    bureau = Bureau()
    at = datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI)
    with time_machine.travel(at, tick=False):
        cases = [bureau.case_in(State.HANDLING, submitted_at=at) for _ in range(3)]
        cases.append(bureau.case_in(State.HANDLING, submitted_at=at, unit=bureau.unit_b))
    taken = escalation.escalation_sweep(now=datetime(2026, 3, 5, 10, 1, tzinfo=SHANGHAI))
    assert taken == {"urge": 4}  # the sweep went through every case despite the broker
    # One digest per recipient (issue 11): unit A's head and handler (3 cases), unit B's handler
    # (1 case), the 网评办 (all 4).
    steps = Notification.objects.filter(key__startswith="digest:")
    assert steps.count() == 3 and not steps.filter(sent_at__isnull=False).exists()
    mail.outbox = []
    outbox.notification_flush()
    assert steps.filter(sent_at__isnull=True).count() == 0
    urges = [m for m in mail.outbox if "督办单" in m.subject]
    assert len(urges) == 3
    assert sorted(len(m.to) for m in urges) == [1, 2, 2]
    for case in cases:  # every case reached its unit and the 网评办, once each
        assert sum(case.reference in m.body for m in urges) == 2


class RefusingHandler:
    """Accepts every recipient except those in ``refuse`` (450 while ``refuse`` holds them)."""

    def __init__(self, refuse: set[str], code: str = "450 4.2.1 Mailbox busy, try later") -> None:
        self.refuse = refuse
        self.code = code
        self.received: list[tuple[list[str], bytes]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.code
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def deliveries_to(self, address: str) -> int:
        return sum(address in rcpts for rcpts, _ in self.received)


@pytest.fixture
def smtp_server(settings):
    handler = RefusingHandler(set())
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    yield handler
    controller.stop()


def queue_three() -> Notification:
    return outbox.notification_queue(
        key="test:three", recipients=["a@bureau.invalid", "b@bureau.invalid", "c@bureau.invalid"],
        subject="【测试】三人邮件", body="正文", html_body="<p>正文</p>",
    )


def test_a_recipient_refused_with_450_is_retried_alone_and_gets_it_once(db, smtp_server):
    smtp_server.refuse = {"b@bureau.invalid"}
    notification = queue_three()
    assert notification_send.apply(args=[notification.pk]).get() is True
    assert smtp_server.deliveries_to("a@bureau.invalid") == 1
    assert smtp_server.deliveries_to("c@bureau.invalid") == 1
    assert smtp_server.deliveries_to("b@bureau.invalid") == 0
    notification.refresh_from_db()
    assert notification.sent_at is None  # not marked sent with b never reached
    assert "450" in notification.last_error
    states = dict(notification.deliveries.values_list("address", "status"))
    assert states == {"a@bureau.invalid": Status.SENT, "b@bureau.invalid": Status.DEFERRED,
                      "c@bureau.invalid": Status.SENT}
    refused = notification.deliveries.get(address="b@bureau.invalid")
    assert refused.last_code == 450 and "Mailbox busy" in refused.last_error

    # Before its backoff the flush leaves it alone; b is still refused on the next try.
    assert outbox.notification_flush()["due"] == 0
    assert outbox.notification_flush(now=later())["sent"] == 0
    assert smtp_server.deliveries_to("b@bureau.invalid") == 0
    # The mail server takes b now: b alone gets it, once; a and c never get a second copy.
    smtp_server.refuse = set()
    assert outbox.notification_flush(now=later(120))["sent"] == 1
    assert outbox.notification_flush(now=later(240))["due"] == 0
    assert notification_send.apply(args=[notification.pk]).get() is False
    assert [smtp_server.deliveries_to(a) for a in ("a@bureau.invalid", "b@bureau.invalid",
                                                    "c@bureau.invalid")] == [1, 1, 1]
    retried_rcpts, content = smtp_server.received[-1]
    assert retried_rcpts == ["b@bureau.invalid"]
    assert message_from_bytes(content)["Message-ID"] == f"<notification-{notification.pk}@casework.invalid>"
    notification.refresh_from_db()
    assert notification.sent_at is not None and notification.next_attempt_at is None


def test_a_permanent_refusal_waits_for_a_superuser_who_retries_it_in_the_admin(db, smtp_server, client):
    smtp_server.refuse, smtp_server.code = {"b@bureau.invalid"}, "550 5.1.1 No such user"
    notification = queue_three()
    notification_send.apply(args=[notification.pk]).get()
    notification.refresh_from_db()
    assert notification.sent_at is None and notification.next_attempt_at is None
    assert notification.deliveries.get(address="b@bureau.invalid").status == Status.REFUSED
    assert outbox.notification_flush(now=later(600))["due"] == 0  # not retried by itself

    client.force_login(_superuser())
    url = reverse("admin:casework_notification_changelist")
    for state, expected in [("unsent", True), ("partial", True), ("failing", True), ("stuck", True),
                            ("sent", False)]:
        page = client.get(url, {"delivery": state})
        assert page.status_code == 200
        assert (notification.subject in page.content.decode()) is expected, state
    detail = client.get(reverse("admin:casework_notification_change", args=[notification.pk]))
    text = detail.content.decode()
    assert "b@bureau.invalid" in text and "550 5.1.1 No such user" in text
    assert "拒收" in text and "已送达" in text

    smtp_server.refuse = set()
    response = client.post(url, {"action": "retry_selected", "_selected_action": [notification.pk]})
    assert response.status_code == 302
    outbox.notification_flush()
    notification.refresh_from_db()
    assert notification.sent_at is not None
    assert [smtp_server.deliveries_to(a) for a in ("a@bureau.invalid", "b@bureau.invalid",
                                                    "c@bureau.invalid")] == [1, 1, 1]


def _superuser():
    from accounts.models import User

    return User.objects.create_superuser("root", "root@bureau.invalid", "pw-not-used-123")


def test_staff_without_superuser_cannot_see_or_retry_the_outbox(db, bureau, client):
    notification = queue_three()
    client.force_login(bureau.dispatcher)
    url = reverse("admin:casework_notification_changelist")
    assert client.get(url).status_code == 403
    response = client.post(url, {"action": "retry_selected", "_selected_action": [notification.pk]})
    assert response.status_code == 403
    with pytest.raises(PermissionDenied):
        outbox.notification_retry(notification=notification, acting_user=bureau.dispatcher)


def test_mail_server_down_then_up_the_flush_delivers_once(db, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    notification = queue_three()
    with pytest.raises(OSError):
        outbox.notification_deliver(notification_id=notification.pk)
    notification.refresh_from_db()
    assert notification.sent_at is None and notification.attempts == 1
    assert notification.next_attempt_at > timezone.now()  # backoff
    assert outbox.notification_flush()["due"] == 0
    assert outbox.notification_flush(now=later(5))["failed"] == 1
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    assert outbox.notification_flush(now=later(60))["sent"] == 1
    assert outbox.notification_flush(now=later(120))["due"] == 0
    assert len(mail.outbox) == 1
    assert sorted(mail.outbox[0].to) == ["a@bureau.invalid", "b@bureau.invalid", "c@bureau.invalid"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_two_workers_and_two_flushes_at_once_send_each_mail_once(smtp_server):
    rows = [
        outbox.notification_queue(key=f"test:race:{i}", recipients=[f"r{i}@bureau.invalid"],
                                  subject=f"并发 {i}", body="正文")
        for i in range(6)
    ]
    Notification.objects.update(next_attempt_at=timezone.now())
    calls = [lambda: outbox.notification_flush(), lambda: outbox.notification_flush()]
    calls += [lambda pk=r.pk: outbox.notification_deliver(notification_id=pk) for r in rows[:3]]
    calls += [lambda pk=r.pk: notification_send.apply(args=[pk]).get() for r in rows[:3]]
    results = run_together(*calls)
    assert all(kind == "ok" for kind, _ in results), results
    assert len(smtp_server.received) == 6
    for i in range(6):
        assert smtp_server.deliveries_to(f"r{i}@bureau.invalid") == 1
    assert not Notification.objects.filter(sent_at__isnull=True).exists()
    assert set(NotificationRecipient.objects.values_list("attempts", flat=True)) == {1}


def test_every_sender_of_the_site_goes_through_the_outbox():
    """No module of the project sends mail except the outbox (one place, one guarantee)."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    offenders = []
    for path in root.glob("*/**/*.py"):
        if ".venv" in path.parts or "tests" in path.parts or "migrations" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        for needle in ("send_mail(", "send_mass_mail(", "mail_admins(", "mail_managers(",
                       "EmailMessage(", "EmailMultiAlternatives(", ".send_messages(", ".email_user("):
            if needle in text and path.name != "outbox.py":
                offenders.append(f"{path.relative_to(root)}: {needle}")
    assert offenders == []


def test_the_flush_is_scheduled_every_minute_in_beat(db):
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="casework.notification_flush")
    assert task.enabled and (task.interval.every, task.interval.period) == (1, "minutes")
