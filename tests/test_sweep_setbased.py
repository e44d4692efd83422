"""The set-based escalation sweep (issue 11 §1–2): statements per sweep, digests, snapshots, sharing.

Real parts: the database (PostgreSQL for the concurrency tests, with real row locks), the outbox
and its Celery hand-off, two real Celery worker processes on the Redis broker.
"""

import ast
from datetime import datetime, timedelta
from io import StringIO
import os
from pathlib import Path
import re
import subprocess
import sys
import threading
import time
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
import pytest
import time_machine

from casework import escalation
from casework.calendar import work_calendar
from casework.models import (
    CaseClock,
    CaseEvent,
    DigestLine,
    DisciplineReferral,
    EscalationDigestBatch,
    EscalationRung,
    EscalationStep,
    Notification,
    State,
    SupervisionNotice,
)
from casework.selectors import case_audit_verify
from tests.factories import Bureau
from tests.sweep_seed import seed_handling_cases

SHANGHAI = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parent.parent
STARTED = datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI)
DUE = datetime(2026, 3, 5, 10, 0, tzinfo=SHANGHAI)  # Thursday; no holiday that month
URGE_AT = datetime(2026, 3, 5, 10, 1, tzinfo=SHANGHAI)


def bj(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


@pytest.fixture
def calendar_2026(db):
    call_command("calendar_seed", "--from-year", "2025", "--to-year", "2026", stdout=StringIO(),
                 stderr=StringIO())


def waiting_steps() -> list[int]:
    """The ids of the steps waiting for their digest, over every batch row."""
    return sorted(i for ids in EscalationDigestBatch.objects.values_list("step_ids", flat=True) for i in ids)


def case_link(pk: int) -> str:
    return settings.SITE_URL + reverse("admin:casework_case_change", args=[pk])


# ---------------------------------------------------------------- statements per sweep


def _count(bureau, n: int, batch_size: int, tag: str) -> int:
    seed_handling_cases(bureau, n, unit=bureau.unit_a, started_at=STARTED, due_at=DUE, tag=tag)
    with CaptureQueriesContext(connection) as queries:
        taken = escalation.escalation_sweep(now=URGE_AT, batch_size=batch_size)
    assert taken == {"urge": n}
    # A rung that took ``escalation.ANALYZE_AFTER`` steps or more refreshes the steps table's statistics
    # once (one statement per rung, not per case or batch); counted apart.
    analyze = [q for q in queries.captured_queries if q["sql"].startswith("ANALYZE")]
    assert len(analyze) == (1 if connection.vendor == "postgresql" and n >= escalation.ANALYZE_AFTER else 0)
    return len(queries) - len(analyze)


@pytest.mark.parametrize("batch_size", [1000, 500])
def test_a_sweep_of_10_or_of_1000_due_cases_runs_the_same_statements_up_to_batching(
    bureau, calendar_2026, settings, batch_size
):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    ten = _count(bureau, 10, batch_size, "T")
    # The same again, on top of the first 10 (taken): 1,000 more due cases of the same unit.
    thousand = _count(bureau, 1000, batch_size, "K")
    batches = -(-1000 // batch_size)
    print(f"\nbatch {batch_size}: 10 due → {ten} statements, 1000 due → {thousand} statements")
    if connection.vendor == "postgresql":
        # Each further batch is one more transaction of the same dozen statements.
        assert thousand - ten <= (batches - 1) * 14
        if batches == 1:
            assert thousand == ten
    else:  # SQLite splits inserts at 999 parameters: a few more statements, never one per case
        assert thousand - ten <= (batches - 1) * 14 + 40
    # 39 before issue 11 §2's digest lock; +3 per rung with work: the rung's advisory lock taken
    # shared and released around the batches, and tried exclusive for the digests.
    assert ten <= 43
    assert EscalationStep.objects.count() == SupervisionNotice.objects.count() == 1010
    assert CaseEvent.objects.filter(action="escalation_urge").count() == 1010


# ---------------------------------------------------------------- the digest


def test_a_unit_head_with_fifty_overdue_cases_gets_one_digest_listing_them_all_once(
    bureau, calendar_2026, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CELERY_TASK_EAGER_PROPAGATES = True
    cases_a = seed_handling_cases(bureau, 50, unit=bureau.unit_a, started_at=STARTED, due_at=DUE)
    cases_b = seed_handling_cases(bureau, 3, unit=bureau.unit_b, started_at=STARTED, due_at=DUE, tag="B")
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert escalation.escalation_sweep(now=URGE_AT, batch_size=7) == {"urge": 53}

    by_recipient = {}
    for message in mailoutbox:
        for address in message.to:
            by_recipient.setdefault(address, []).append(message)
    # One e-mail per recipient for the rung, whatever the number of batches (8 here).
    assert sorted(by_recipient) == sorted([bureau.head_a.email, bureau.handler_a.email, bureau.handler_b.email,
                                           bureau.dispatcher.email, bureau.reviewer.email])
    assert all(len(messages) == 1 for messages in by_recipient.values())
    head = by_recipient[bureau.head_a.email][0]
    assert "督办单" in head.subject and "50 件" in head.subject
    html = head.alternatives[0][0]
    for case in cases_a:
        assert head.body.count(case.reference) == 1
        assert case_link(case.pk) in head.body and f'href="{case_link(case.pk)}"' in html
    assert not any(case.reference in head.body for case in cases_b)
    assert head.body.count("期限 2026-03-05 10:00,已超期。") == 50
    assert head.body.count("答复") >= 50 and "雨湖分局" in head.body
    # Personal numbers in the citizen's subject are masked in every part.
    assert "13812345678" not in head.body + head.subject + html and "138****5678" in head.body
    office = by_recipient[bureau.dispatcher.email][0]
    assert office is by_recipient[bureau.reviewer.email][0] and "53 件" in office.subject
    assert all(case.reference in office.body for case in cases_a + cases_b)
    # Every step is listed once in each digest that concerns it; nothing waits for a digest.
    assert DigestLine.objects.count() == 50 + 3 + 53
    assert not EscalationDigestBatch.objects.exists()
    assert all(n.sent_at is not None for n in Notification.objects.filter(key__startswith="digest:"))


def test_a_digest_past_its_line_limit_lists_the_longest_overdue_and_links_to_all_of_them(
    bureau, calendar_2026, settings, mailoutbox, django_capture_on_commit_callbacks, client
):
    """10,000 lines made a 20 MB e-mail (past a mail server's 10 MB): the rest is one link away."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CELERY_TASK_EAGER_PROPAGATES = True
    settings.CASEWORK_DIGEST_LINES = 5
    cases_a = seed_handling_cases(bureau, 12, unit=bureau.unit_a, started_at=STARTED, due_at=DUE)
    # Two of unit A's cases are longer overdue than the rest: they lead the list.
    late = cases_a[7:9]
    CaseClock.objects.filter(case__in=late).update(due_at=DUE - timedelta(days=1))
    cases_b = seed_handling_cases(bureau, 2, unit=bureau.unit_b, started_at=STARTED, due_at=DUE, tag="B")
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert escalation.escalation_sweep(now=URGE_AT, batch_size=5) == {"urge": 14}
    mail = {address: m for m in mailoutbox for address in m.to}
    head = mail[bureau.handler_a.email]
    html = head.alternatives[0][0]
    assert "12 件" in head.subject
    shown = [c for c in cases_a if c.reference in head.body]
    assert len(shown) == 5 and set(late) <= set(shown)
    listed = re.findall(r"■ (\S+)", head.body)
    assert len(listed) == 5 and set(listed[:2]) == {c.reference for c in late}
    assert "以下列出超期最久的 5 件,另有 7 件未逐件列出。" in head.body and "另有 7 件" in html
    link = re.search(r"在系统中查看全部案件:(\S+)", head.body).group(1)
    assert link.startswith(settings.SITE_URL + reverse("admin:casework_case_changelist") + "?digest=")
    assert f'href="{link.replace("&", "&amp;")}"' in html
    # Every case of the e-mail is recorded as told, listed line by line or not.
    notification = Notification.objects.get(recipients__contains=[bureau.handler_a.email]) \
        if connection.vendor == "postgresql" else \
        next(n for n in Notification.objects.all() if bureau.handler_a.email in n.recipients)
    assert DigestLine.objects.filter(notification=notification).count() == 12
    path = link.removeprefix(settings.SITE_URL)

    client.force_login(bureau.handler_a)
    page = client.get(path)
    assert page.status_code == 200
    text = page.content.decode()
    assert all(c.reference in text for c in cases_a) and not any(c.reference in text for c in cases_b)
    # The link forwarded to another unit's handler shows none of unit A's cases.
    client.force_login(bureau.handler_b)
    page = client.get(path)
    assert page.status_code == 200
    assert not any(c.reference in page.content.decode() for c in cases_a)
    # A made-up key lists nothing; it is no error.
    client.force_login(bureau.handler_a)
    page = client.get(reverse("admin:casework_case_changelist") + "?digest=digest:urge:1-2-3:nothing")
    assert page.status_code == 200 and not any(c.reference in page.content.decode() for c in cases_a)
    # The 网评办's digest (all 14) says the same with its own link.
    office = mail[bureau.dispatcher.email]
    assert "14 件" in office.subject and "另有 9 件未逐件列出" in office.body

    # Sent once: the next sweeps find nothing new to take or to mail.
    with django_capture_on_commit_callbacks(execute=True):
        assert escalation.escalation_sweep(now=URGE_AT) == {}
        assert escalation.escalation_sweep(now=URGE_AT + timedelta(hours=1)) == {}
    assert sum(len(m.to) for m in mailoutbox) == 5
    assert all(case_audit_verify(case=case) for case in cases_a[:5] + cases_b)


def test_a_digest_left_by_a_sweep_that_stopped_is_written_by_the_next_sweep(bureau, calendar_2026, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    seed_handling_cases(bureau, 4, unit=bureau.unit_a, started_at=STARTED, due_at=DUE)
    original = escalation._Sweep.digests
    escalation._Sweep.digests = lambda self, rung: 0  # the worker dies after its batches
    try:
        assert escalation.escalation_sweep(now=URGE_AT) == {"urge": 4}
    finally:
        escalation._Sweep.digests = original
    assert waiting_steps() == sorted(EscalationStep.objects.values_list("pk", flat=True))
    assert len(waiting_steps()) == 4 and not DigestLine.objects.exists()
    assert EscalationDigestBatch.objects.count() == 1  # one row for the batch, not one per step
    assert escalation.escalation_sweep(now=URGE_AT) == {}
    assert not EscalationDigestBatch.objects.exists()
    # Unit A's head and handler and the 网评办 have the same 4 cases: one e-mail, 4 recipients.
    assert DigestLine.objects.count() == 4
    digest = Notification.objects.get(key__startswith="digest:")
    assert sorted(digest.recipients) == sorted([bureau.head_a.email, bureau.handler_a.email,
                                                bureau.dispatcher.email, bureau.reviewer.email])


# ---------------------------------------------------------------- the referral snapshot


def old_snapshot(case, *, clock, due_at, now, cal) -> dict:
    """The referral snapshot as ``casework.escalation._snapshot`` built it before issue 11 (per case).

    Copied verbatim, but for one line: the e-mails about the case are those naming it
    (``case.notification_set``, as before) *and* the digests listing it (a digest of several
    cases names none).
    """
    iso = escalation._iso
    return {
        "reference": case.reference,
        "subject": case.subject,
        "body": case.body,
        "message_type": case.message_type,
        "state": case.state,
        "lead_unit": case.lead_unit.name if case.lead_unit else "",
        "handling_round": case.handling_round,
        "clock": clock,
        "due_at": iso(due_at),
        "working_days_overdue": cal.working_days_between(due_at, now),
        "submitted_at": iso(case.submitted_at),
        "dispatched_at": iso(case.dispatched_at),
        "accepted_at": iso(case.accepted_at),
        "taken_at": iso(now),
        "clocks": [
            {
                "clock": c.clock,
                "round": c.round,
                "started_at": iso(c.started_at),
                "due_at": iso(c.due_at),
                "stopped_at": iso(c.stopped_at),
            }
            for c in case.clocks.order_by("round", "started_at", "pk")
        ],
        "timeline": [
            {
                "seq": e.seq,
                "action": e.action,
                "from": e.from_state,
                "to": e.to_state,
                "actor": str(e.actor) if e.actor else "",
                "at": iso(e.at),
                "reason": e.reason,
                "payload": e.payload,
                "hash": e.hash,
            }
            for e in case.events.select_related("actor").order_by("seq")
        ],
        "escalation_steps": [
            {
                "clock": s.clock,
                "round": s.round,
                "level": s.level,
                "due_at": iso(s.due_at),
                "happened_at": iso(s.happened_at),
            }
            for s in case.escalation_steps.order_by("happened_at", "pk")
        ],
        "notices": [
            {
                "unit": n.unit.name,
                "opened_at": iso(n.opened_at),
                "content": n.content,
                "answer": n.answer,
                "answered_at": iso(n.answered_at),
            }
            for n in case.supervision_notices.select_related("unit").order_by("opened_at", "pk")
        ],
        "notifications": [
            {
                "subject": n.subject,
                "recipients": n.recipients,
                "created_at": iso(n.created_at),
                "sent_at": iso(n.sent_at),
            }
            for n in Notification.objects.filter(Q(case=case) | Q(digest_lines__step__case=case))
            .distinct().order_by("created_at", "pk")
        ],
    }


def test_each_referral_snapshot_of_a_batch_equals_the_per_case_snapshot_field_by_field(bureau, calendar_2026):
    # The ladder's own referral (+5 working days), not the one for two unanswered 督办单 earlier.
    EscalationRung.objects.filter(level="refer").update(unit_open_notices_limit=None)
    cases = []
    for unit in (bureau.unit_a, bureau.unit_a, bureau.unit_b):
        with time_machine.travel(STARTED, tick=False):
            cases.append(bureau.case_in(State.HANDLING, unit=unit, submitted_at=STARTED))
    with time_machine.travel(bj(2026, 3, 3, 9, 0), tick=False):
        from casework import services

        services.draft_save(case=cases[0], acting_user=bureau.handler_a, handling_report="正在核实",
                            reply_text="您好。")
    escalation.escalation_sweep(now=bj(2026, 3, 4, 10, 0))  # remind
    escalation.escalation_sweep(now=URGE_AT)  # urge: 督办单
    escalation.escalation_sweep(now=bj(2026, 3, 10, 10, 1))  # escalate
    refer_at = bj(2026, 3, 12, 10, 1)
    cal = work_calendar()
    # The old path took the snapshot with the referral step written and nothing else of it yet.
    expected = {}
    for case in cases:
        case.refresh_from_db()
        snap = old_snapshot(case, clock="reply", due_at=case.reply_due_at, now=refer_at, cal=cal)
        snap["escalation_steps"].append({"clock": "reply", "round": 1, "level": "refer",
                                         "due_at": escalation._iso(case.reply_due_at),
                                         "happened_at": escalation._iso(refer_at)})
        expected[case.pk] = snap

    assert escalation.escalation_sweep(now=refer_at) == {"refer": 3}

    for case in cases:
        snapshot = DisciplineReferral.objects.get(case=case).snapshot
        assert sorted(snapshot) == sorted(expected[case.pk])  # every field (jsonb keeps no key order)
        for field, value in expected[case.pk].items():
            assert snapshot[field] == value, field
        assert snapshot["working_days_overdue"] == 5
        assert [s["level"] for s in snapshot["escalation_steps"]] == ["remind", "urge", "escalate", "refer"]
        assert len(snapshot["notifications"]) >= 4  # dispatch and the three digests before
        assert case_audit_verify(case=case)


# ---------------------------------------------------------------- several sweeps at once


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks")
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_sweeps_split_the_batches_and_take_each_step_once(calendar_2026, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    bureau = Bureau()
    cases = seed_handling_cases(bureau, 150, unit=bureau.unit_a, started_at=STARTED, due_at=DUE)
    cases += seed_handling_cases(bureau, 90, unit=bureau.unit_b, started_at=STARTED, due_at=DUE, tag="B")
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        from django.db import connections

        try:
            barrier.wait(timeout=10)
            results.append(escalation.escalation_sweep(now=URGE_AT, batch_size=10))
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    print("\nsteps taken by each sweep:", results)
    assert sum(r.get("urge", 0) for r in results) == 240
    rows = list(EscalationStep.objects.values_list("case_id", "clock", "round", "level"))
    assert len(rows) == len(set(rows)) == 240
    assert sorted(r[0] for r in rows) == sorted(c.pk for c in cases)  # none missed
    assert SupervisionNotice.objects.count() == 240
    # Every recipient is told about each of his steps exactly once (one digest per sweep at most).
    told: dict[str, list[int]] = {}
    for line in DigestLine.objects.select_related("notification"):
        for address in line.notification.recipients:
            told.setdefault(address, []).append(line.step_id)
    steps_a = sorted(EscalationStep.objects.filter(case__lead_unit=bureau.unit_a).values_list("pk", flat=True))
    assert sorted(told[bureau.head_a.email]) == steps_a
    assert sorted(told[bureau.dispatcher.email]) == sorted(EscalationStep.objects.values_list("pk", flat=True))
    per_recipient = {}
    for n in Notification.objects.filter(key__startswith="digest:"):
        for address in n.recipients:
            per_recipient[address] = per_recipient.get(address, 0) + 1
    # One digest per recipient for the rung, however the two sweeps split its batches: the digests
    # are written once, by the sweep that finished the rung last (issue 11 §2).
    assert max(per_recipient.values()) == 1, per_recipient
    assert not EscalationDigestBatch.objects.exists()
    for case in cases[::20]:
        assert case_audit_verify(case=case)


def _worker(env: dict, name: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo", "-c", "1",
         "-n", f"{name}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
         "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )


@pytest.mark.celery
@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"),
                    reason="two worker processes need PostgreSQL and Redis")
@pytest.mark.django_db(transaction=True)
def test_two_real_celery_workers_share_one_sweep_and_take_each_step_once(calendar_2026, tmp_path):
    from config.celery import app

    bureau = Bureau()
    then = timezone.now() - timedelta(weeks=4)  # overdue now, whatever day the test runs
    cases = seed_handling_cases(bureau, 200, unit=bureau.unit_a, started_at=then - timedelta(days=1), due_at=then)
    cases += seed_handling_cases(bureau, 100, unit=bureau.unit_b, started_at=then - timedelta(days=1),
                                 due_at=then, tag="B")
    db = connection.settings_dict
    queue = f"sweep-test-{os.getpid()}-{time.monotonic_ns()}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "CASEWORK_SWEEP_BATCH_SIZE": "10",
        # A queue of this test's own: another test process on the same Redis runs workers too.
        "CASEWORK_CELERY_QUEUE": queue,
        "CASEWORK_LOG_LEVEL": "INFO",
    }
    # This process's app may have been configured by an earlier test (eager mode, another broker):
    # send for real, to the broker the workers read.
    saved = app.conf.task_always_eager, app.conf.broker_url
    app.conf.task_always_eager, app.conf.broker_url = False, os.environ["REDIS_URL"]
    app._after_fork()
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(queue)
    logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
    workers = [_worker(env, "sweep1", logs[0]), _worker(env, "sweep2", logs[1])]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all("ready" in log.read_text() for log in logs):
            time.sleep(0.3)
        assert all("ready" in log.read_text() for log in logs), [log.read_text()[-2000:] for log in logs]
        sweep = app.tasks["casework.escalation_sweep"]
        for _ in range(2):  # two beats at once: one task for each worker
            sweep.apply_async(retry=False, queue=queue)
        deadline = time.monotonic() + 120
        done = re.compile(r"casework\.escalation_sweep\[[^\]]+\] succeeded in [0-9.]+s: (\{.*\})")
        while time.monotonic() < deadline:
            found = [done.findall(log.read_text()) for log in logs]
            if sum(len(f) for f in found) >= 2 and not Notification.objects.filter(sent_at__isnull=True).exists():
                break
            time.sleep(0.5)
        found = [done.findall(log.read_text()) for log in logs]
    finally:
        app.conf.task_always_eager, app.conf.broker_url = saved
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
    print("\nworker results:", found)
    assert sum(len(f) for f in found) == 2, [log.read_text()[-3000:] for log in logs]
    taken = [ast.literal_eval(result) for results in found for result in results]  # the task's dict, as logged
    assert sum(t.get("urge", 0) for t in taken) == 300
    # Each step once. The clocks are weeks overdue, so a sweep that starts after the other has
    # taken a case's 催办 may already take its next rung (报分管局领导): that is the ladder, not a
    # second copy; what must hold is one 催办 per case and no step twice.
    rows = list(EscalationStep.objects.values_list("case_id", "clock", "round", "level"))
    assert len(rows) == len(set(rows))
    urged = [r for r in rows if r[3] == "urge"]
    assert len(urged) == 300
    assert sorted(r[0] for r in urged) == sorted(c.pk for c in cases)
    assert {r[3] for r in rows} <= {"urge", "escalate"}
    assert SupervisionNotice.objects.count() == 300
    assert CaseEvent.objects.filter(action="escalation_urge").count() == 300
    assert not EscalationDigestBatch.objects.exists()
    told: dict[str, list[int]] = {}
    for line in DigestLine.objects.select_related("notification"):
        for address in line.notification.recipients:
            told.setdefault(address, []).append(line.step_id)
    assert sorted(told[bureau.dispatcher.email]) == sorted(EscalationStep.objects.values_list("pk", flat=True))
    urge_b = set(EscalationStep.objects.filter(level="urge", case__lead_unit=bureau.unit_b).values_list("pk", flat=True))
    told_b_urge = [pk for pk in told[bureau.handler_b.email] if pk in urge_b]
    assert len(told_b_urge) == len(set(told_b_urge)) == 100
    assert len(told[bureau.handler_b.email]) == len(set(told[bureau.handler_b.email]))
    assert not Notification.objects.filter(sent_at__isnull=True).exists()  # the workers sent them all
    # Two workers, one digest per recipient per rung (issue 11 §2): never one from each worker.
    per_rung: dict[tuple[str, str], int] = {}
    for n in Notification.objects.filter(key__startswith="digest:"):
        for address in n.recipients:
            per_rung[(address, n.key.split(":")[1])] = per_rung.get((address, n.key.split(":")[1]), 0) + 1
    assert per_rung and max(per_rung.values()) == 1, per_rung
    for case in cases[::25]:
        assert case_audit_verify(case=case)
