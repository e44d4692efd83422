"""The escalation sweep through a real Celery worker on the configured broker, and its beat schedule."""

from datetime import datetime, timedelta
from io import StringIO
import time
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
import pytest
import time_machine

from casework.models import EscalationLevel, EscalationStep, Notification, State, SupervisionNotice

SHANGHAI = ZoneInfo("Asia/Shanghai")

pytestmark = pytest.mark.celery


@pytest.fixture
def celery_app(settings, tmp_path):
    """The project's Celery app with tasks sent to the broker (not eager) and an empty queue.

    On Redis (REDIS_URL set) the default queue of the configured database is purged first. With the
    filesystem broker (no REDIS_URL) the message folders are moved to a private temporary
    directory, so nobody else's worker or stale message can interfere.
    """
    from config.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    if not settings.REDIS_URL:
        folder = tmp_path / "broker"
        folder.mkdir()
        settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "processed_folder": str(folder),
            "control_folder": str(folder / "control"),
            "store_processed": False,
        }
    # Drop pooled broker connections made with other settings (Celery's own after-fork reset).
    app._after_fork()
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(app.conf.task_default_queue)
    yield app
    app._after_fork()


def wait_for(condition, timeout: float = 30.0) -> bool:
    """Poll ``condition`` until true. On SQLite's shared in-memory test database a read can meet
    a table lock held by the worker's or beat's write ("database table is locked"): poll again."""
    from django.db import OperationalError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except OperationalError:
            pass
        time.sleep(0.2)
    return False


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_sweep_and_sends_the_supervision_email(celery_app):
    from celery.contrib.testing.worker import start_worker

    from casework.tasks import escalation_sweep
    from tests.factories import Bureau

    call_command("calendar_seed", "--from-year", "2025", "--to-year", "2026", stdout=StringIO(),
                 stderr=StringIO())
    bureau = Bureau()
    # Dispatched and signed for four weeks ago, never answered: the reply clock is overdue now.
    then = datetime.now(SHANGHAI).replace(microsecond=0) - timedelta(weeks=4)
    with time_machine.travel(then, tick=False):
        case = bureau.case_in(State.HANDLING, submitted_at=then)
    mail.outbox = []
    # The dispatch e-mail was queued for the broker on commit; this worker will send it too.
    with start_worker(celery_app, perform_ping_check=False, shutdown_timeout=30):
        escalation_sweep.delay()
        sent = wait_for(
            lambda: Notification.objects.filter(
                case=case, key__startswith="digest:", sent_at__isnull=False
            ).exists()
        )
        assert sent, "the worker did not send the escalation e-mail within 30 s"
        assert wait_for(lambda: not Notification.objects.filter(sent_at__isnull=True).exists(), 10)
    step = EscalationStep.objects.get(case=case)
    assert step.level == EscalationLevel.URGE
    assert SupervisionNotice.objects.filter(case=case).count() == 1
    urge = [m for m in mail.outbox if "督办单" in m.subject]
    assert len(urge) == 1
    assert bureau.head_a.email in urge[0].to and bureau.dispatcher.email in urge[0].to
    link = settings.SITE_URL + reverse("admin:casework_case_change", args=[case.pk])
    assert link in urge[0].body


@pytest.mark.django_db
def test_migrate_schedules_the_sweep_in_beat_in_beijing_time():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="casework.escalation_sweep", interval__isnull=False)
    assert task.enabled
    assert task.interval is not None
    assert (task.interval.every, task.interval.period) == (5, "minutes")
    assert settings.CELERY_TIMEZONE == "Asia/Shanghai"
    # Field case C10: a crontab schedule (if one is ever used) must carry the Beijing time zone.
    for periodic in PeriodicTask.objects.filter(task__startswith="casework.", crontab__isnull=False):
        assert str(periodic.crontab.timezone) == "Asia/Shanghai"


@pytest.mark.django_db(transaction=True)
def test_beat_on_the_database_schedule_and_a_real_worker_run_the_sweep_end_to_end(celery_app):
    """Beat (django-celery-beat's DatabaseScheduler, the product's schedule row shortened to one
    second the way a superuser edits it in the admin) sends the sweep; a real worker runs it."""
    import threading

    from celery.beat import Service
    from celery.contrib.testing.worker import start_worker
    from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

    from casework.defaults import DAILY_SCAN_TASK_NAME, SWEEP_TASK_NAME
    from tests.factories import Bureau

    call_command("calendar_seed", "--from-year", "2025", "--to-year", "2026", stdout=StringIO(),
                 stderr=StringIO())
    bureau = Bureau()
    then = datetime.now(SHANGHAI).replace(microsecond=0) - timedelta(weeks=4)
    with time_machine.travel(then, tick=False):
        case = bureau.case_in(State.HANDLING, submitted_at=then)
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(name=SWEEP_TASK_NAME).update(interval=every_second)
    PeriodicTask.objects.filter(name=DAILY_SCAN_TASK_NAME).update(enabled=False)
    PeriodicTasks.update_changed()

    beat = Service(
        celery_app,
        scheduler_cls="django_celery_beat.schedulers:DatabaseScheduler",
        max_interval=1,
    )
    def run_beat():
        from django.db import connections

        try:
            beat.start(embedded_process=True)
        finally:
            connections.close_all()  # the scheduler's own connection, so the test DB can be dropped

    thread = threading.Thread(target=run_beat, daemon=True)
    with start_worker(celery_app, perform_ping_check=False, shutdown_timeout=30):
        thread.start()
        try:
            # Four weeks overdue: one step per sweep, urge → escalate → refer.
            assert wait_for(
                lambda: EscalationStep.objects.filter(case=case).count() == 3, timeout=45
            ), "beat did not get three sweeps run within 45 s"
            # Beat keeps firing every second; nothing is taken twice, every mail goes out.
            time.sleep(3)
            assert wait_for(lambda: not Notification.objects.filter(sent_at__isnull=True).exists(), 15)
        finally:
            beat.stop()
            thread.join(timeout=10)
    levels = EscalationStep.objects.filter(case=case).order_by("pk").values_list("level", flat=True)
    assert list(levels) == [EscalationLevel.URGE, EscalationLevel.ESCALATE, EscalationLevel.REFER]
    assert PeriodicTask.objects.get(name=SWEEP_TASK_NAME).total_run_count >= 1
