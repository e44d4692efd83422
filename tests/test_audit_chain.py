"""Tamper evidence that someone checks (issue 9 §2): every kind of tampering fails, genuine chains pass.

Tampering is done as an attacker with the app's database role would: raw SQL, on PostgreSQL with
the table's user triggers disabled first (``ALTER TABLE … DISABLE TRIGGER USER``, which the owning
role may do; inside the test transaction, so it is rolled back).
"""

from datetime import datetime, timedelta
import gzip
import hashlib
import json
from pathlib import Path
from zoneinfo import ZoneInfo

from django.core.checks import run_checks
from django.db import DatabaseError, connection, transaction
import pytest

from casework import audit, services
from casework.models import (
    AuditChainHead,
    AuditVerificationRun,
    Case,
    CaseEvent,
    Notification,
    State,
    chain_head_mac,
    chain_head_macs,
    event_hash,
    event_hashes,
)
from casework.selectors import case_audit_verify
from casework.tasks import audit_verify

SHANGHAI = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parent.parent


def sql(statement: str, params=()) -> None:
    """Run raw SQL against the audit table as the app role could, triggers disabled on PostgreSQL."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Run the deferred foreign-key checks of this test transaction first (ALTER needs it).
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE casework_caseevent DISABLE TRIGGER USER")
        cursor.execute(statement, params)
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE casework_caseevent ENABLE TRIGGER USER")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


@pytest.fixture
def cases(bureau):
    """Three genuine cases with several events each, some written with Asia/Shanghai times."""
    replied = bureau.case_in(State.REPLIED)
    handling = bureau.case_in(State.HANDLING, unit=bureau.unit_b)
    registered = bureau.case_in(State.REGISTERED)
    with transaction.atomic():
        locked = services.case_lock(case=handling)
        services.event_append(case=locked, action="note", actor=bureau.handler_b,
                              from_state=locked.state, to_state=locked.state, reason="北京时间的记录",
                              payload={"n": 1.5, "列表": [1, "二"]},
                              at=datetime(2026, 3, 3, 8, 30, 15, 123456, tzinfo=SHANGHAI))
    return replied, handling, registered


def seqs(case) -> list[int]:
    return list(case.events.order_by("seq").values_list("seq", flat=True))


def run_failures() -> dict[int | None, str]:
    run = audit.audit_verify_run()
    assert run.failure_count == len(run.failures)
    return {f["case_id"]: f["reason"] for f in run.failures}


def test_genuine_chains_verify_including_non_utc_times(cases):
    for case in cases:
        assert case_audit_verify(case=case), case.reference
    run = audit.audit_verify_run(batch_size=2)  # several batches
    assert run.failure_count == 0 and run.ok
    assert run.cases_checked == Case.objects.count()
    assert run.events_checked == CaseEvent.objects.count()
    again = audit.audit_verify_run()  # against the anchor the first run wrote
    assert again.failure_count == 0
    note = CaseEvent.objects.get(action="note")
    assert note.at == datetime(2026, 3, 3, 0, 30, 15, 123456, tzinfo=ZoneInfo("UTC"))


def unkeyed(event) -> str:
    """The chain an attacker without the key can compute: plain SHA-256 over the same content."""
    content = json.dumps(
        [event.case_id, event.seq, event.action, event.from_state, event.to_state, event.actor_id,
         event.at.isoformat(timespec="microseconds"), event.reason, event.payload, event.prev_hash],
        ensure_ascii=False, sort_keys=True, default=str,
    )
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def tamper_edit(case):
    sql("UPDATE casework_caseevent SET reason = %s WHERE case_id = %s AND seq = 2", ["改过的理由", case.pk])


def tamper_delete_middle(case):
    sql("DELETE FROM casework_caseevent WHERE case_id = %s AND seq = 2", [case.pk])


def _drop_publications(case):
    # A published reply names its publish event; whoever deletes events drops those rows too.
    sql("DELETE FROM casework_publishedreply WHERE case_id = %s", [case.pk])


def tamper_delete_tail(case):
    last = max(seqs(case))
    _drop_publications(case)
    sql("DELETE FROM casework_caseevent WHERE case_id = %s AND seq = %s", [case.pk, last])


def tamper_empty(case):
    _drop_publications(case)
    sql("DELETE FROM casework_caseevent WHERE case_id = %s", [case.pk])


def tamper_empty_with_head(case):
    _drop_publications(case)
    sql("DELETE FROM casework_caseevent WHERE case_id = %s", [case.pk])
    AuditChainHead.objects.filter(case_id=case.pk).delete()


def tamper_reorder(case):
    sql("UPDATE casework_caseevent SET seq = 1000 WHERE case_id = %s AND seq = 2", [case.pk])
    sql("UPDATE casework_caseevent SET seq = 2 WHERE case_id = %s AND seq = 3", [case.pk])
    sql("UPDATE casework_caseevent SET seq = 3 WHERE case_id = %s AND seq = 1000", [case.pk])


def tamper_recompute_unkeyed(case):
    """Edit an event, then recompute the whole chain and the head without the key."""
    tamper_edit(case)
    prev = ""
    for event in case.events.order_by("seq"):
        event.prev_hash = prev
        new = unkeyed(event)
        sql("UPDATE casework_caseevent SET prev_hash = %s, hash = %s WHERE id = %s", [prev, new, event.pk])
        prev = new
    AuditChainHead.objects.filter(case_id=case.pk).update(head_hash=prev)


def tamper_drop_tail_and_head(case):
    """Delete the tail and rewrite the head's count and hash to match (without the key)."""
    last = case.events.order_by("-seq").first()
    before = case.events.get(seq=last.seq - 1)
    tamper_delete_tail(case)
    AuditChainHead.objects.filter(case_id=case.pk).update(event_count=before.seq, head_hash=before.hash)


TAMPERINGS = [tamper_edit, tamper_delete_middle, tamper_delete_tail, tamper_empty, tamper_empty_with_head,
              tamper_reorder, tamper_recompute_unkeyed, tamper_drop_tail_and_head]


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=[t.__name__ for t in TAMPERINGS])
def test_each_kind_of_tampering_fails_the_check_and_the_others_pass(cases, tamper):
    victim, *others = cases
    audit.audit_verify_run()  # an anchor of the genuine state
    tamper(victim)
    assert not case_audit_verify(case=victim)
    for case in others:
        assert case_audit_verify(case=case)
    failures = run_failures()
    assert set(failures) == {victim.pk}, failures
    assert AuditVerificationRun.objects.first().failures[0]["reference"] == victim.reference
    # A tampered chain keeps failing on later runs (its anchored head is carried forward).
    assert set(run_failures()) == {victim.pk}


def test_a_rolled_back_head_with_its_genuine_seal_is_caught_by_the_external_anchor(cases):
    victim = cases[0]
    head_then = AuditChainHead.objects.get(case_id=victim.pk)
    with transaction.atomic():
        locked = services.case_lock(case=victim)
        services.event_append(case=locked, action="note", actor=None, from_state=locked.state,
                              to_state=locked.state, reason="之后的记录")
    assert run_failures() == {}  # anchors the longer chain
    # Someone with database access deletes the new event and puts back the old (genuinely sealed) head.
    tamper_delete_tail(victim)
    AuditChainHead.objects.filter(case_id=victim.pk).update(
        event_count=head_then.event_count, head_hash=head_then.head_hash, mac=head_then.mac
    )
    assert case_audit_verify(case=victim)  # the database alone looks consistent …
    failures = run_failures()
    assert set(failures) == {victim.pk}  # … the anchor outside it does not
    assert "外部锚定" in failures[victim.pk]


def test_a_tampered_or_deleted_anchor_is_reported(cases, settings):
    assert run_failures() == {}
    log = Path(settings.CASEWORK_AUDIT_ANCHOR_DIR) / "anchors.log"
    record = json.loads(log.read_text().splitlines()[-1])
    snapshot = Path(settings.CASEWORK_AUDIT_ANCHOR_DIR) / record["file"]
    with gzip.open(snapshot, "wt") as fh:  # rewritten without one case
        fh.write("")
    assert None in run_failures()
    log.unlink()
    for f in Path(settings.CASEWORK_AUDIT_ANCHOR_DIR).glob("heads-*"):
        f.unlink()
    assert "丢失" in run_failures()[None]


def test_the_chain_is_keyed_a_different_key_does_not_verify(cases, settings):
    assert case_audit_verify(case=cases[0])
    settings.CASEWORK_AUDIT_KEY = "another-key-of-sufficient-length"
    assert not case_audit_verify(case=cases[0])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="triggers are PostgreSQL's")
@pytest.mark.parametrize("statement", [
    "TRUNCATE casework_caseevent CASCADE",
    "DELETE FROM casework_caseevent",
    "UPDATE casework_caseevent SET reason = 'x'",
])
def test_the_database_refuses_truncate_update_and_delete_of_events(cases, statement):
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    with pytest.raises(DatabaseError, match="pgtrigger"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)
    assert all(case_audit_verify(case=c) for c in cases)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="triggers are PostgreSQL's")
def test_truncate_with_the_triggers_disabled_is_detected_for_every_case(cases):
    sql("TRUNCATE casework_caseevent CASCADE")
    assert CaseEvent.objects.count() == 0
    failures = run_failures()
    assert set(failures) == {c.pk for c in Case.objects.all()}
    assert all("清空" in reason or "为空" in reason for reason in failures.values())


def test_the_triggers_are_declared_on_the_model_with_pgtrigger():
    names = {t.name for t in CaseEvent._meta.triggers}
    assert names == {"caseevent_append_only", "caseevent_no_truncate"}


def test_a_failed_run_e_mails_the_superusers_through_the_outbox(cases, django_capture_on_commit_callbacks):
    from accounts.models import User

    root = User.objects.create_superuser("root", "root@bureau.invalid", "pw-not-used-123")
    assert audit_verify.apply().get()["failures"] == 0
    assert not Notification.objects.filter(key__startswith="audit-run:").exists()
    tamper_edit(cases[1])
    result = audit_verify.apply().get()  # the beat task's own code path, as a worker runs it
    assert result["failures"] == 1
    alert = Notification.objects.get(key=f"audit-run:{result['run']}")
    assert alert.recipients == [root.email]
    assert cases[1].reference in alert.body
    assert "/admin/casework/auditverificationrun/" in alert.body


def test_the_verification_is_scheduled_daily_in_beijing_time(db):
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="casework.audit_verify")
    assert task.enabled and task.crontab is not None
    assert (task.crontab.hour, task.crontab.minute, str(task.crontab.timezone)) == ("3", "0", "Asia/Shanghai")


def test_the_admin_shows_the_runs_and_their_failures_to_superusers_only(cases, client, bureau):
    from django.urls import reverse

    from accounts.models import User

    tamper_delete_tail(cases[0])
    run = audit.audit_verify_run()
    client.force_login(bureau.dispatcher)
    assert client.get(reverse("admin:casework_auditverificationrun_changelist")).status_code == 403
    client.force_login(User.objects.create_superuser("root", "root@bureau.invalid", "pw-not-used-123"))
    page = client.get(reverse("admin:casework_auditverificationrun_changelist"), {"result": "failed"})
    assert page.status_code == 200
    detail = client.get(reverse("admin:casework_auditverificationrun_change", args=[run.pk]))
    text = detail.content.decode()
    assert cases[0].reference in text and "末尾记录被删除" in text


def test_the_audit_key_is_required_outside_local_and_test_settings(settings):
    settings.CASEWORK_AUDIT_KEY = ""
    assert "casework.E002" in {e.id for e in run_checks()}
    # Production refusing to start without it: tests/test_production.py (with every other variable set).


def test_bulk_written_events_get_their_heads_from_the_public_helpers(bureau):
    case = bureau.case_in(State.REGISTERED)
    with transaction.atomic():
        services.case_lock(case=case)
        last = case.events.order_by("-seq").first()
        events = []
        prev = last.hash
        for seq in range(last.seq + 1, last.seq + 4):
            event = CaseEvent(case=case, seq=seq, action="note", actor=None, at=datetime.now(SHANGHAI) +
                              timedelta(seconds=seq), reason="批量", payload={}, prev_hash=prev)
            event.hash = event.compute_hash()
            prev = event.hash
            events.append(event)
        CaseEvent.objects.bulk_create(events)
        audit.chain_heads_bulk_record(events=events)
    assert case_audit_verify(case=case)
    assert AuditChainHead.objects.get(case_id=case.pk).event_count == last.seq + 3


@pytest.mark.parametrize("values", [["A-1", "B-2"], ['引号"与\\反斜杠', "制表\t换行\n", "\x01控制", "😀 emoji"]])
def test_the_batch_seals_equal_event_hash_of_each_event(settings, values):
    # event_hashes / chain_head_macs (the import's batch forms) must seal exactly as the one-event
    # functions do, whatever the varying string holds (JSON escapes, non-ASCII, control characters).

    at = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=SHANGHAI)
    event = CaseEvent(seq=1, action="register", from_state="", to_state="registered", actor=None, at=at, reason="",
                      payload={"source": "import", "platform": "wzxd"}, prev_hash="")
    case_ids = [7, 1_000_001][: len(values)] + list(range(10, 10 + len(values) - 2))
    seals = event_hashes(event, case_ids=case_ids, key="external_id", values=values)
    for case_id, value, seal in zip(case_ids, values, seals, strict=True):
        one = CaseEvent(case_id=case_id, seq=1, action="register", from_state="", to_state="registered", actor=None,
                        at=at, reason="", payload={"source": "import", "platform": "wzxd", "external_id": value},
                        prev_hash="")
        assert seal == event_hash(one) == one.compute_hash()
    heads = [(case_id, 1, seal) for case_id, seal in zip(case_ids, seals, strict=True)]
    assert chain_head_macs(heads=heads) == [chain_head_mac(case_id=c, event_count=n, head_hash=h) for c, n, h in heads]
    settings.CASEWORK_AUDIT_KEY = "another-key"
    assert event_hashes(event, case_ids=case_ids, key="external_id", values=values) != seals
