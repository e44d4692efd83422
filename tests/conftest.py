"""Shared fixtures: a small bureau with one user per role, built through the services."""

import csv
import gzip
from pathlib import Path
import threading

from django.conf import settings
from django.core.servers.basehttp import ThreadedWSGIServer
from django.test.testcases import LiveServerThread
from django.utils import translation
import pytest

from casework.demo import is_police_related
from casework.management.commands.demo_setup import DATA_FILE
from casework.models import Case
from config.celery import app as celery_app
from tests.factories import Bureau


class SerialWSGIServer(ThreadedWSGIServer):
    """The live server, answering one request at a time (each connection still in its own thread).

    On SQLite the test database is one connection shared by the live server's threads: two
    requests at once on it (a page's background fetch of the dashboard data still running when the
    test opens the next page) abort each other ("database table is locked", "abort due to
    ROLLBACK") and the page answers 500. Browsers keep connections open, so the lock is per
    request, around the application, not per connection.
    """

    def set_app(self, application):
        lock = threading.Lock()

        def one_at_a_time(environ, start_response):
            with lock:
                return application(environ, start_response)

        super().set_app(one_at_a_time)


if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    LiveServerThread.server_class = SerialWSGIServer

# Debian's chromium, headless, with nothing reaching outside this machine.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(autouse=True)
def _default_language():
    """Start and end every test in the site's default language (Simplified Chinese).

    The test client runs requests in the test's own thread, and ``LocaleMiddleware`` leaves the
    language of the last request (an English page, say) active there; without this a later test
    in the same process would render its e-mails and messages in that language.
    """
    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture
def bureau(db) -> Bureau:
    """A bureau with districts A and B and a dispatcher, reviewer, leader, supervisor and handlers."""
    return Bureau()


@pytest.fixture(scope="session", autouse=True)
def _close_sessions_left_by_server_threads(django_db_setup, django_db_blocker):
    """End PostgreSQL sessions that finished live-server request threads left open.

    Their threads are gone but their connections stay open until garbage collection, and an open
    session stops Django from dropping the test database at the end of the run.
    """
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def _fresh_sign_in_counters():
    """Every test starts with no failed sign-ins counted (django-axes keeps them across tests in Redis).

    In the database the counters roll back with the test; in the cache they would leak, so the keys
    under this process's own ``axes`` cache prefix (config/settings/test.py) are dropped.
    """
    yield
    from django.core.cache import caches

    axes_cache = caches["axes"]
    client_of = getattr(getattr(axes_cache, "_cache", None), "get_client", None)
    if client_of is None:  # local memory
        axes_cache.clear()
        return
    client = client_of(None, write=True)
    keys = list(client.scan_iter(match=f"{axes_cache.key_prefix}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture(autouse=True)
def celery_conf_restored():
    """Undo what a test set on the Celery app's configuration itself, after the test.

    A value set on ``celery_app.conf`` (``conf.task_always_eager = …``) sits above Django's
    settings for the rest of the process: "restoring" it by assigning the old value still hides
    every later ``settings.CELERY_TASK_ALWAYS_EAGER`` override of the tests run after it on the
    same worker (CI saw a digest test send its e-mails to Redis instead of the outbox). So the
    settings the tests change are dropped from the app's own configuration after every test:
    Django's settings (with pytest-django's overrides) decide again.
    """
    yield
    if celery_app.configured:
        for key in ("task_always_eager", "task_eager_propagates", "broker_url"):
            celery_app.conf.changes.pop(key, None)


@pytest.fixture
def eager_celery(settings):
    """Run Celery tasks in-process so e-mails queued after commit are sent and counted."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CELERY_TASK_EAGER_PROPAGATES = True
    yield


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test itself are
    # ordinary synchronous calls (the live server answers in its own thread).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium is not installed (make browser-deps)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def _audit_anchor_dir(settings, tmp_path):
    """Each test anchors its audit chain heads in a folder of its own (the anchor is per database)."""
    settings.CASEWORK_AUDIT_ANCHOR_DIR = tmp_path / "audit-anchor"


@pytest.fixture
def small_data_file(tmp_path):
    """A gzipped slice of the real data file: 80 police-related and 70 other messages (the demo loader's input)."""
    with gzip.open(DATA_FILE, "rt", encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames
        rows = list(reader)
    police = [r for r in rows if is_police_related(Case(subject=r["subject"], body=r["body"]))][:80]
    others = [r for r in rows if r not in police][:70]
    path = tmp_path / "slice.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(police + others)
    return path
