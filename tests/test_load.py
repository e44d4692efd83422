"""Concurrent staff sessions against the site served as in production lose nothing (issue 11 §6).

``scripts/serve_production.sh`` serves the test database (gunicorn with its threads, whitenoise,
a real Celery worker on a queue of this test's own, beat) on a loopback port, and
``scripts/load.py`` drives a few sessions of every role for a few seconds: lists, queues, searches,
case pages, draft saves and transitions, each form sent as the page rendered it. Asserted: no
request failed, every write the site confirmed is in the database, and the e-mails those writes
queued were sent by the worker. Timings are not asserted here: the targets are the benchmark's
(``scripts/bench.py --only load``).

PostgreSQL: the served site uses the test database itself. SQLite: the test database lives in
memory, so it is copied to a file (the backup API) that the served processes share in WAL mode.
The production settings need Redis (``REDIS_URL``); without it the test is skipped and says so.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
import secrets
import socket
import sqlite3
import sys
import time

from django.contrib.auth.hashers import make_password
from django.db import connection
from django.db.models import Max
import pytest

from accounts import roles
from accounts.models import User
from casework.models import Notification, State
from tests.factories import Bureau, make_user

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "load-test-password"
STATES = ([State.REGISTERED] * 2 + [State.DISPATCHED] * 2 + [State.HANDLING] * 4 + [State.OFFICE_REVIEW] * 2
          + [State.LEADER_REVIEW] * 2 + [State.APPROVED] * 1)


def _load_module():
    spec = importlib.util.spec_from_file_location("casework_load_script", ROOT / "scripts" / "load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _port() -> int | None:
    """A free port from ``CASEWORK_TEST_PORTS`` ("8740-8760") when set, else None (any free port)."""
    spec = os.environ.get("CASEWORK_TEST_PORTS", "")
    if not spec:
        return None
    low, _, high = spec.partition("-")
    for port in range(int(low), int(high or low) + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail(f"no free port in CASEWORK_TEST_PORTS={spec}")


def _database_url(tmp_path: Path) -> str:
    """The served site's database: the test database (PostgreSQL), or a file copy of it (SQLite)."""
    s = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
        return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    path = tmp_path / "served.sqlite3"
    connection.ensure_connection()
    target = sqlite3.connect(path)
    connection.connection.backup(target)
    target.execute("PRAGMA journal_mode=WAL")
    target.close()
    return f"sqlite:///{path}"


def _bureau_with_work(audit_key: str) -> list[dict]:
    """The small bureau of the factories with cases waiting at every step; return its staff as
    ``accounts/data/demo_bureau.json`` lists them (username, roles)."""
    bureau = Bureau()
    for n, state in enumerate(STATES):
        bureau.case_in(state, unit=(bureau.unit_a, bureau.unit_b)[n % 2])
    superuser = make_user("load_admin")
    superuser.is_superuser = True
    superuser.save(update_fields=["is_superuser"])
    # The production settings hash with PBKDF2 (the test settings' MD5 is not among theirs): one hash for all.
    User.objects.update(password=make_password(PASSWORD, hasher="pbkdf2_sha256"))
    return [
        {"username": "dispatcher", "roles": [roles.DISPATCHER]},
        {"username": "reviewer", "roles": [roles.OFFICE_REVIEWER]},
        {"username": "leader", "roles": [roles.LEADER]},
        {"username": "supervisor", "roles": [roles.SUPERVISOR]},
        {"username": "handler_a", "roles": [roles.HANDLER]},
        {"username": "handler_b", "roles": [roles.HANDLER]},
    ]


@pytest.mark.celery
@pytest.mark.skipif(not os.environ.get("REDIS_URL"),
                    reason="the production settings need Redis (REDIS_URL): broker, cache, sign-in counters")
@pytest.mark.django_db(transaction=True)
def test_staff_sessions_of_every_role_against_the_production_server_lose_no_write(tmp_path, settings):
    load = _load_module()
    audit_key = secrets.token_urlsafe(32)
    settings.CASEWORK_AUDIT_KEY = audit_key  # the served site seals with the same key
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher",
                                 *settings.PASSWORD_HASHERS]
    staff = _bureau_with_work(audit_key)
    accounts = tmp_path / "staff.json"
    accounts.write_text(json.dumps({"staff": staff}), encoding="utf-8")
    before = Notification.objects.aggregate(last=Max("id"))["last"] or 0  # the seeding's e-mails wait for beat
    url = _database_url(tmp_path)
    queue = f"load-test-{os.getpid()}-{time.monotonic_ns()}"
    env = load.production_env(database_url=url, redis_url=os.environ["REDIS_URL"], var_dir=tmp_path / "var",
                              audit_key=audit_key)
    sink = load.SmtpSink()
    env.update(EMAIL_PORT=str(sink.port), CASEWORK_CELERY_QUEUE=queue, WEB_WORKERS="2", WEB_THREADS="2")
    served = load.Served(env, celery_workers=1, log=tmp_path / "serve.log", port=_port())
    try:
        served.wait_ready(timeout=150)  # a shared machine; ~15 s on a quiet one
        started = time.time()
        result = load.load_run(base=served.base, sessions=8, seconds=6, password=PASSWORD, accounts=accounts,
                               superuser="load_admin", think=0.3)
        # The e-mails the writes queued are sent by the worker (on this test's queue) to the sink.
        deadline = time.monotonic() + 20
        while (unsent := load.outbox_unsent(url, after_id=before)) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        code = served.stop()
        sink.stop()
    log = (tmp_path / "serve.log").read_text(errors="replace")
    assert code == 0, log[-3000:]
    assert result["signed_in"] == 8, result["errors"]
    assert result["errors"] == [], (result["errors"][:10], log[-3000:])
    assert result["think_model"].startswith("think exp. mean 0.3 s")
    pages = result["pages"]
    assert {"case list", "case page", "search", "write"} <= set(pages), pages
    assert {role for role, _ in result["sessions"]} == {"dispatcher", "handler", "office_reviewer", "leader",
                                                        "supervisor", "superuser"}
    assert result["writes"], (result["refusals"], pages)  # the sessions did write
    assert load.writes_missing(database_url=url, writes=result["writes"], since=started) == []
    assert unsent == 0, log[-3000:]
    assert sink.messages >= 1  # the worker sent what the sessions' writes queued (dispatch, review notices)
    assert "Using worker: gthread" in log and f".> {queue} " in log, log[:3000]  # the worker read our queue
