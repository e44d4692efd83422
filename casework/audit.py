"""Tamper evidence that someone checks: the keyed audit chain, its sealed heads, the scheduled check.

What each layer catches (issue 9 §2):

- Every ``CaseEvent`` is sealed with an HMAC-SHA256 keyed with ``settings.CASEWORK_AUDIT_KEY``
  (a secret outside the database) over its content and the previous event's hash
  (:meth:`casework.models.CaseEvent.compute_hash`). An edited, reordered or deleted middle event
  breaks the chain; a chain recomputed without the key does not verify.
- Every case has an ``AuditChainHead`` (event count and last hash, sealed with the same key),
  written with each event. A deleted tail or an emptied chain (TRUNCATE, or DELETE with the
  triggers disabled) no longer matches its head; a case with no events at all fails (every case
  is registered with an event).
- Each verification run writes a signed snapshot of all heads outside the database
  (``settings.CASEWORK_AUDIT_ANCHOR_DIR``: ``heads-<run>.tsv.gz`` and a line in ``anchors.log``)
  and compares the chains with the previous snapshot: a chain shorter than anchored, or whose
  anchored event changed, fails even when someone with database access rolled the head row
  back to an older genuine state.
- On PostgreSQL the event table refuses UPDATE, DELETE and TRUNCATE (django-pgtrigger,
  declared on the model). The app role owns the table and could ``DISABLE TRIGGER``; what it can
  then do (delete, truncate, edit) is caught by the layers above at the next run.

:func:`audit_verify_run` runs on a schedule (beat, daily 03:00 Beijing time, ``casework.audit_verify``),
in batches of cases, records an ``AuditVerificationRun`` (admin → 审计链核验) and e-mails the
superusers through the outbox when anything failed.
"""

from dataclasses import dataclass
from datetime import datetime
import gzip
import hashlib
import hmac
import json
import logging
from pathlib import Path
from types import SimpleNamespace

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from casework.models import (
    AuditChainHead,
    AuditVerificationRun,
    Case,
    CaseEvent,
    audit_key,
    chain_head_mac,
    event_hash,
)
from casework.outbox import notification_queue

logger = logging.getLogger("casework")

BATCH_CASES = 500
KEEP_SNAPSHOTS = 7
MAX_FAILURES_STORED = 1000
ANCHOR_LOG = "anchors.log"
EVENT_FIELDS = ("case_id", "seq", "action", "from_state", "to_state", "actor_id", "at", "reason",
                "payload", "prev_hash", "hash")


# ---------------------------------------------------------------- writing heads


def chain_head_record(*, case_id: int, event_count: int, head_hash: str) -> None:
    """Record ``case_id``'s chain head after an append (inside the appending transaction).

    One UPDATE; an INSERT as well for a case's first event.
    """
    mac = chain_head_mac(case_id=case_id, event_count=event_count, head_hash=head_hash)
    updated = AuditChainHead.objects.filter(case_id=case_id).update(
        event_count=event_count, head_hash=head_hash, mac=mac
    )
    if not updated:
        AuditChainHead.objects.create(case_id=case_id, event_count=event_count, head_hash=head_hash, mac=mac)


def chain_heads_bulk_record(*, events: list[CaseEvent]) -> None:
    """Record the chain heads of bulk-written events (e.g. an import's registration events).

    ``events`` are saved events sealed with :meth:`CaseEvent.compute_hash`; for each case the one
    with the highest ``seq`` becomes its head. Call it in the transaction that wrote them.
    """
    last: dict[int, CaseEvent] = {}
    for event in events:
        if event.case_id not in last or event.seq > last[event.case_id].seq:
            last[event.case_id] = event
    AuditChainHead.objects.bulk_create(
        [
            AuditChainHead(
                case_id=e.case_id, event_count=e.seq, head_hash=e.hash,
                mac=chain_head_mac(case_id=e.case_id, event_count=e.seq, head_hash=e.hash),
            )
            for e in last.values()
        ],
        update_conflicts=True,
        unique_fields=["case"],
        update_fields=["event_count", "head_hash", "mac"],
    )


# ---------------------------------------------------------------- checking one chain


def chain_problems(
    *, events: list, head: AuditChainHead | None, anchored: tuple[int, str] | None = None
) -> list[str]:
    """Return what is wrong with one case's chain (empty when it verifies).

    Args:
        events: the case's events in ``seq`` order (``CaseEvent`` or objects with its fields).
        head: its ``AuditChainHead`` (None when missing).
        anchored: ``(event_count, head_hash)`` of the previous external snapshot, if any.
    """
    problems = []
    if not events:
        problems.append(_("审计链为空:案件没有任何办理记录(登记时必有一条)。"))
    prev = ""
    for expected, event in enumerate(events, start=1):
        if event.seq != expected:
            problems.append(_("第 %(n)s 条记录序号为 %(seq)s:记录被删除或调换。") % {"n": expected, "seq": event.seq})
            break
        if event.prev_hash != prev:
            problems.append(_("第 %(n)s 条记录与上一条不相接:记录被删除、插入或调换。") % {"n": expected})
            break
        if not hmac.compare_digest(event_hash(event), event.hash):
            problems.append(_("第 %(n)s 条记录的密钥哈希不符:记录被修改或整条链被重算。") % {"n": expected})
            break
        prev = event.hash
    if head is None:
        problems.append(_("缺少链头记录(条数与末条哈希)。"))
    else:
        mac = chain_head_mac(case_id=head.case_id, event_count=head.event_count, head_hash=head.head_hash)
        if not hmac.compare_digest(mac, head.mac):
            problems.append(_("链头签名不符:链头被改写。"))
        if len(events) < head.event_count:
            problems.append(
                _("链头记载 %(head)s 条,现存 %(n)s 条:末尾记录被删除或整条链被清空。")
                % {"head": head.event_count, "n": len(events)}
            )
        elif len(events) > head.event_count:
            problems.append(
                _("链头记载 %(head)s 条,现存 %(n)s 条:有记录未经登记写入。")
                % {"head": head.event_count, "n": len(events)}
            )
        elif events and events[-1].hash != head.head_hash:
            problems.append(_("末条记录哈希与链头不符。"))
    if anchored is not None:
        count, anchored_hash = anchored
        if len(events) < count:
            problems.append(
                _("外部锚定记载 %(a)s 条,现存 %(n)s 条:记录被删除(链头被回退)。")
                % {"a": count, "n": len(events)}
            )
        elif count and events[count - 1].hash != anchored_hash:
            problems.append(_("第 %(n)s 条记录与外部锚定不符:记录被改写。") % {"n": count})
    return problems


def case_chain_problems(*, case: Case, anchored: tuple[int, str] | None = None) -> list[str]:
    """Read ``case``'s events and head and return :func:`chain_problems` for it."""
    events = [SimpleNamespace(**row) for row in
              CaseEvent.objects.filter(case_id=case.pk).order_by("seq").values(*EVENT_FIELDS)]
    head = AuditChainHead.objects.filter(case_id=case.pk).first()
    return chain_problems(events=events, head=head, anchored=anchored)


# ---------------------------------------------------------------- the external anchor


def anchor_dir() -> Path:
    return Path(settings.CASEWORK_AUDIT_ANCHOR_DIR)


def _sign(record: dict) -> str:
    content = json.dumps(record, sort_keys=True, ensure_ascii=False)
    return hmac.new(audit_key(), b"anchor|" + content.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass
class Anchor:
    """The latest signed snapshot: the file's rows sorted by case id, or why it cannot be trusted."""

    record: dict | None
    problem: str = ""

    def rows(self):
        """Yield ``(case_id, event_count, head_hash)`` in case id order."""
        if not self.record or self.problem:
            return
        with gzip.open(anchor_dir() / self.record["file"], "rt", encoding="ascii") as fh:
            for line in fh:
                case_id, count, head_hash = line.rstrip("\n").split("\t")
                yield int(case_id), int(count), head_hash


def anchor_latest() -> Anchor:
    """Return the latest anchor, checked: its log line's signature and its snapshot file's digest."""
    log = anchor_dir() / ANCHOR_LOG
    if not log.exists():
        if AuditVerificationRun.objects.exclude(anchor="").exists():
            return Anchor(None, _("外部锚定文件丢失(此前的核验写过锚定)。"))
        return Anchor(None)
    lines = [line for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        return Anchor(None, _("外部锚定记录为空。"))
    try:
        record = json.loads(lines[-1])
        mac = record.pop("mac")
    except (ValueError, KeyError):
        return Anchor(None, _("外部锚定记录无法读取。"))
    if not hmac.compare_digest(mac, _sign(record)):
        return Anchor(None, _("外部锚定记录签名不符。"))
    path = anchor_dir() / record["file"]
    if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != record["sha256"]:
        return Anchor(None, _("外部锚定快照文件缺失或被改动。"))
    return Anchor(record)


def _anchor_write(*, run: AuditVerificationRun, heads: list[tuple[int, int, str]]) -> str:
    """Write the snapshot file and its signed log line; return the file name. Keeps the last few."""
    folder = anchor_dir()
    folder.mkdir(parents=True, exist_ok=True)
    name = f"heads-{run.started_at:%Y%m%dT%H%M%S}-{run.pk}.tsv.gz"
    tmp = folder / (name + ".tmp")
    with gzip.open(tmp, "wt", encoding="ascii") as fh:
        for case_id, count, head_hash in heads:
            fh.write(f"{case_id}\t{count}\t{head_hash}\n")
    tmp.replace(folder / name)
    record = {
        "run": run.pk, "at": run.started_at.isoformat(), "file": name, "cases": len(heads),
        "sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest(),
    }
    record["mac"] = _sign({k: v for k, v in record.items()})
    with open(folder / ANCHOR_LOG, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
    for old in sorted(folder.glob("heads-*.tsv.gz"), key=lambda p: p.stat().st_mtime)[:-KEEP_SNAPSHOTS]:
        old.unlink(missing_ok=True)
    return name


# ---------------------------------------------------------------- the scheduled run


def _recheck_locked(case_id: int, anchored) -> list[str]:
    """Check one case again under its row lock, so an event appended meanwhile is no false alarm."""
    with transaction.atomic():
        case = Case.objects.select_for_update().filter(pk=case_id).first()
        if case is None:
            return [_("案件已不存在。")]
        return case_chain_problems(case=case, anchored=anchored)


def audit_verify_run(*, batch_size: int = BATCH_CASES, now: datetime | None = None) -> AuditVerificationRun:
    """Verify every case's chain, head and anchor; record the run; e-mail superusers on failure.

    Cases are read in batches of ``batch_size`` (one query for their heads, one for their events),
    so memory stays bounded whatever the number of cases. A case found wrong is checked again
    under its row lock before it is reported. The new anchor keeps, for a case that failed, its
    previous anchored head, so a tampered chain keeps failing on later runs.

    Args:
        batch_size: cases per batch.
        now: aware datetime recorded as the run's start; defaults to the current time.

    Returns:
        The finished ``AuditVerificationRun``.

    Raises:
        django.core.exceptions.ImproperlyConfigured: ``CASEWORK_AUDIT_KEY`` is not set.
    """
    run = AuditVerificationRun.objects.create(started_at=now or timezone.now())
    failures: list[dict] = []
    anchor = anchor_latest()
    if anchor.problem:
        failures.append({"case_id": None, "reference": "", "reason": anchor.problem})
    anchored_rows = anchor.rows()
    pending_anchor = next(anchored_rows, None)
    new_heads: list[tuple[int, int, str]] = []
    cases = events_checked = 0
    last_id = 0
    while True:
        batch = list(
            Case.objects.filter(pk__gt=last_id).order_by("pk").values_list("pk", "reference")[:batch_size]
        )
        if not batch:
            break
        last_id = batch[-1][0]
        ids = [pk for pk, _ref in batch]
        heads = {h.case_id: h for h in AuditChainHead.objects.filter(case_id__in=ids)}
        events: dict[int, list] = {pk: [] for pk in ids}
        for row in CaseEvent.objects.filter(case_id__in=ids).order_by("case_id", "seq").values(*EVENT_FIELDS):
            events[row["case_id"]].append(SimpleNamespace(**row))
        for pk, reference in batch:
            anchored = None
            while pending_anchor is not None and pending_anchor[0] <= pk:
                if pending_anchor[0] < pk:  # anchored case no longer in the database
                    failures.append({"case_id": pending_anchor[0], "reference": "",
                                     "reason": _("外部锚定中的案件已不存在。")})
                else:
                    anchored = pending_anchor[1:]
                pending_anchor = next(anchored_rows, None)
            cases += 1
            events_checked += len(events[pk])
            problems = chain_problems(events=events[pk], head=heads.get(pk), anchored=anchored)
            head = heads.get(pk)
            if problems:
                problems = _recheck_locked(pk, anchored)
                head = AuditChainHead.objects.filter(case_id=pk).first()
            if problems:
                failures.append({"case_id": pk, "reference": reference or "", "reason": " ".join(problems)})
                if anchored is not None:
                    new_heads.append((pk, *anchored))
            else:
                new_heads.append((pk, head.event_count, head.head_hash))
    while pending_anchor is not None:
        failures.append({"case_id": pending_anchor[0], "reference": "",
                         "reason": _("外部锚定中的案件已不存在。")})
        pending_anchor = next(anchored_rows, None)

    run.anchor = _anchor_write(run=run, heads=new_heads)
    run.cases_checked, run.events_checked = cases, events_checked
    run.failure_count = len(failures)
    run.failures = failures[:MAX_FAILURES_STORED]
    run.finished_at = timezone.now()
    run.save()
    if failures:
        logger.error("audit: verification run %s found %s failures", run.pk, len(failures))
        _alert(run=run, failures=failures)
    else:
        logger.info("audit: verification run %s: %s cases, %s events verified", run.pk, cases, events_checked)
    return run


def _alert(*, run: AuditVerificationRun, failures: list[dict]) -> None:
    """Queue the alert e-mail to every active superuser (through the outbox, once per run)."""
    recipients = list(
        User.objects.filter(is_superuser=True, is_active=True).exclude(email="").values_list("email", flat=True)
    )
    lines = [
        _("审计链核验发现 %(n)s 处异常(核验 %(cases)s 件案件,%(events)s 条记录)。")
        % {"n": len(failures), "cases": run.cases_checked, "events": run.events_checked},
        "",
    ]
    for failure in failures[:50]:
        lines.append(f"- {failure['reference'] or failure['case_id'] or '—'}: {failure['reason']}")
    if len(failures) > 50:
        lines.append(_("…… 其余 %(n)s 处见管理后台。") % {"n": len(failures) - 50})
    lines += ["", settings.SITE_URL + reverse("admin:casework_auditverificationrun_change", args=[run.pk])]
    with transaction.atomic():
        notification_queue(
            key=f"audit-run:{run.pk}",
            recipients=recipients,
            subject=_("【审计链核验异常】%(n)s 处异常") % {"n": len(failures)},
            body="\n".join(lines),
        )
