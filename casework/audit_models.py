"""The audit log of a case: its append-only events, the keyed hash chain and its verification.

Each ``CaseEvent`` is sealed with a keyed HMAC (``settings.CASEWORK_AUDIT_KEY``) over its content
and the previous event's hash; ``AuditChainHead`` seals the chain's length and last hash; PostgreSQL
triggers (pgtrigger) refuse UPDATE, DELETE and TRUNCATE on the events. The services that append
and verify are in :mod:`casework.audit`.
"""

import datetime as _dt
import functools
import hashlib
import hmac
import json

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.utils.translation import gettext_lazy as _
import pgtrigger

from casework.choices import State

ACTION_LABELS = {
    "register": _("登记"),
    "dispatch": _("交办"),
    "message_type_set": _("更正留言类型"),
    "reject_invalid": _("不予受理"),
    "accept": _("签收"),
    "return_to_office": _("退回"),
    "draft_saved": _("保存答复草稿"),
    "submit_feedback": _("反馈(一审)"),
    "office_approve": _("网评办审核通过(二审)"),
    "office_send_back": _("网评办发回"),
    "leader_approve": _("分管局领导审签(三审)"),
    "leader_send_back": _("分管局领导发回"),
    "publish_reply": _("发布答复"),
    "revise_after_sign_off": _("发布前修改(重新审核)"),
    "record_follow_up": _("回访"),
    "reopen": _("重办"),
    "archive": _("归档"),
    "escalation_remind": _("到期提醒"),
    "escalation_urge": _("催办·督办单"),
    "escalation_escalate": _("报分管局领导"),
    "escalation_refer": _("移交纪检督察"),
    "co_unit_assign": _("指定协办单位"),
    "co_unit_report": _("协办单位报告"),
    "extension_request": _("申请延期"),
    "extension_decide": _("延期审批"),
    "return_ruling": _("退回裁定"),
    "merge": _("并入主案件"),
    "merge_in": _("合并重复留言"),
    "merged_reply": _("随主案件答复"),
    "mark_key_case": _("标记重点难点"),
    "supervision_closed": _("督办单终止"),
    "attachment_added": _("上传附件"),
    # issue 13: supervision by hand and poor handling
    "supervision_opened": _("开具督办单"),
    "referral_poor_handling": _("移交纪检督察(办理不力)"),
    "quality_rung": _("质量触发"),
    "quality_proposal_decided": _("确认质量触发的移交"),
    "supervision_answered": _("答复督办单"),
    "referral_outcome": _("登记移交处理结果"),
    "rectification_set": _("下达整改报告要求"),
    "rectification_answered": _("报送整改报告"),
    "rectification_reminder": _("整改报告提醒"),
}


class CaseEvent(models.Model):
    """An append-only, hash-chained audit event of a case (one per transition and side step).

    ``hash`` is an HMAC-SHA256 (key outside the database) over the event's content and the previous
    event's hash of the same case, so an edited, deleted or reordered event breaks the chain; the
    case's ``AuditChainHead`` records its length (:mod:`casework.audit`).
    """

    # No index of its own: event_case_seq_unique (case, seq) serves every lookup by case.
    case = models.ForeignKey("casework.Case", on_delete=models.PROTECT, related_name="events", db_index=False)
    seq = models.PositiveIntegerField(_("序号"))
    action = models.CharField(_("动作"), max_length=50)
    from_state = models.CharField(_("原状态"), max_length=20, blank=True)
    to_state = models.CharField(_("新状态"), max_length=20, blank=True)
    # Indexed only where set (event_actor_idx): the sweep's and other system events have no actor.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("操作人"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        db_index=False,  # event_actor_idx (Meta): only the events a person did
    )
    at = models.DateTimeField(_("时间"))
    reason = models.TextField(_("理由"), blank=True)
    payload = models.JSONField(_("内容"), default=dict, blank=True)
    prev_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64)

    class Meta:
        verbose_name = _("办理记录")
        verbose_name_plural = _("办理记录")
        ordering = ["case", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["case", "seq"], name="event_case_seq_unique"),
        ]
        indexes = [
            models.Index(fields=["action", "at"], name="event_action_at_idx"),
            # ``actor = <user>`` lookups (a user's PROTECT check, events by person): partial, so the
            # events of the system (sweeps, escalations, imports without a person: actor NULL) add no entry.
            models.Index(fields=["actor"], condition=models.Q(actor__isnull=False), name="event_actor_idx"),
        ]
        # Append-only in the database itself (PostgreSQL): UPDATE, DELETE and TRUNCATE are refused.
        triggers = [
            pgtrigger.Protect(name="caseevent_append_only", operation=pgtrigger.Update | pgtrigger.Delete),
            pgtrigger.Trigger(
                name="caseevent_no_truncate", operation=pgtrigger.Truncate, when=pgtrigger.Before,
                level=pgtrigger.Statement,
                func="RAISE EXCEPTION 'pgtrigger: Cannot truncate % table', TG_TABLE_NAME;",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.case_id}#{self.seq} {self.action}"

    @property
    def action_label(self) -> str:
        """The action in words staff use (falls back to the code for actions added later)."""
        return str(ACTION_LABELS.get(self.action, self.action))

    @property
    def from_state_label(self) -> str:
        return str(State(self.from_state).label) if self.from_state in State.values else self.from_state

    @property
    def to_state_label(self) -> str:
        return str(State(self.to_state).label) if self.to_state in State.values else self.to_state

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise RuntimeError("CaseEvent is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise RuntimeError("CaseEvent is append-only.")

    def compute_hash(self) -> str:
        """Return the keyed hash (HMAC-SHA256, ``settings.CASEWORK_AUDIT_KEY``) of this event.

        The one function that seals an event: :func:`casework.services.event_append` and any bulk
        path call it on the unsaved event after setting ``seq`` and ``prev_hash``.
        """
        return event_hash(self)


def audit_key() -> bytes:
    """Return the audit chain's HMAC key from ``settings.CASEWORK_AUDIT_KEY`` (kept outside the database).

    Raises:
        ImproperlyConfigured: the setting is empty (production must set ``CASEWORK_AUDIT_KEY``).
    """
    key = getattr(settings, "CASEWORK_AUDIT_KEY", "")
    if not key:
        raise ImproperlyConfigured("CASEWORK_AUDIT_KEY is not set: the audit chain cannot be sealed.")
    return key.encode("utf-8")


def _event_content(event, *, case_id, payload) -> str:
    at = event.at.astimezone(_dt.UTC).isoformat(timespec="microseconds")
    return _CONTENT_ENCODE(
        [case_id, event.seq, event.action, event.from_state, event.to_state, event.actor_id, at,
         event.reason, payload, event.prev_hash]
    )


def _sealer(key: bytes):
    """Return ``seal(content) -> HMAC-SHA256 hex``: the keyed state is set up once and copied per call."""
    keyed = _keyed(key)

    def seal(content: str) -> str:
        mac = keyed.copy()
        mac.update(content.encode("utf-8"))
        return mac.hexdigest()

    return seal


def _seal(key: bytes, content: str) -> str:
    mac = _keyed(key).copy()
    mac.update(content.encode("utf-8"))
    return mac.hexdigest()


def event_hash(event) -> str:
    """Return the HMAC-SHA256 of an event's content chained to its ``prev_hash``.

    ``event`` is a ``CaseEvent`` (or a historical model in a migration, or any object with the same
    attributes) with ``case_id``, ``seq``, ``action``, ``from_state``, ``to_state``, ``actor_id``,
    ``at`` (aware datetime, any time zone: it is sealed as UTC, so an Asia/Shanghai time verifies
    after the database returns it in UTC), ``reason``, ``payload`` and ``prev_hash``.

    Raises:
        ImproperlyConfigured: ``settings.CASEWORK_AUDIT_KEY`` is empty (:func:`audit_key`).
    """
    return _seal(audit_key(), _event_content(event, case_id=event.case_id, payload=event.payload))


# ``json.dumps(content, ensure_ascii=False, sort_keys=True, default=str)``, the encoder built once
# (``json.dumps`` builds one per call with these options; the text is the same).
_CONTENT_ENCODE = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str).encode


@functools.lru_cache(maxsize=4)
def _keyed(key: bytes):
    """An HMAC-SHA256 object keyed with ``key`` and fed nothing yet, to ``copy()`` per message.

    The same MAC as ``hmac.new(key, message, hashlib.sha256)``, without preparing the key's inner
    and outer pads for every event (a sweep seals ten thousand). Cached by the key's value, so a
    changed ``CASEWORK_AUDIT_KEY`` is used at once.
    """
    return hmac.new(key, digestmod=hashlib.sha256)


_CASE_MARK, _VALUE_MARK = "\x01case-id\x01", "\x01value\x01"


def event_hashes(event, *, case_ids: list[int], key: str, values: list[str]) -> list[str]:
    """Return the seals of events alike but for their case and one string in their payload (a bulk path's).

    Item ``i`` is :func:`event_hash` of ``event`` with ``case_id = case_ids[i]`` and ``payload =
    {**event.payload, key: values[i]}`` (an import's ``register`` events differ only by case and
    external id). The rest of the sealed content is serialised once and each value encoded alone
    by the same JSON rules; the first result is checked against ``event_hash`` itself, so the two
    can never drift apart.

    Raises:
        ImproperlyConfigured: ``settings.CASEWORK_AUDIT_KEY`` is empty (:func:`audit_key`).
        RuntimeError: the first seal differs from :func:`event_hash` (never expected).
    """
    if not case_ids:
        return []
    audit = audit_key()
    seal = _sealer(audit)
    outline = _event_content(event, case_id=_CASE_MARK, payload={**event.payload, key: _VALUE_MARK})
    head, rest = outline.split(json.dumps(_CASE_MARK))
    middle, tail = rest.split(json.dumps(_VALUE_MARK))
    encode = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) does to a str
    seals = [
        seal(f"{head}{case_id}{middle}{encode(value)}{tail}") for case_id, value in zip(case_ids, values, strict=True)
    ]
    first = _event_content(event, case_id=case_ids[0], payload={**event.payload, key: values[0]})
    if seals[0] != _seal(audit, first):
        raise RuntimeError("event_hashes drifted from event_hash")
    return seals


def chain_head_mac(*, case_id: int, event_count: int, head_hash: str) -> str:
    """Return the HMAC that seals one case's chain head (count and last hash) with the audit key.

    Raises:
        ImproperlyConfigured: ``settings.CASEWORK_AUDIT_KEY`` is empty (:func:`audit_key`).
    """
    mac = _keyed(audit_key()).copy()
    mac.update(f"head|{case_id}|{event_count}|{head_hash}".encode())
    return mac.hexdigest()


def chain_head_macs(*, heads: list[tuple[int, int, str]]) -> list[str]:
    """Return :func:`chain_head_mac` of each ``(case_id, event_count, head_hash)`` (one key look-up).

    Raises:
        ImproperlyConfigured: ``settings.CASEWORK_AUDIT_KEY`` is empty (:func:`audit_key`).
    """
    seal = _sealer(audit_key())
    return [seal(f"head|{case_id}|{count}|{head_hash}") for case_id, count, head_hash in heads]


class AuditChainHead(models.Model):
    """How long each case's audit chain is and how it ends, sealed with the audit key.

    Written by every event append in the same transaction, so a deleted tail or an emptied chain
    no longer matches (:mod:`casework.audit`). Not on ``Case`` itself, so a stale ``case.save()``
    can never write an old head back.
    """

    case = models.OneToOneField("casework.Case", primary_key=True, on_delete=models.PROTECT, related_name="chain_head")
    event_count = models.PositiveIntegerField(_("记录条数"))
    head_hash = models.CharField(_("末条哈希"), max_length=64)
    mac = models.CharField(max_length=64)

    class Meta:
        verbose_name = _("审计链头")
        verbose_name_plural = _("审计链头")

    def __str__(self) -> str:
        return f"{self.case_id}: {self.event_count}"


class AuditVerificationRun(models.Model):
    """One run of the audit chain check (scheduled by beat): when, how much, what failed."""

    started_at = models.DateTimeField(_("开始时间"))
    finished_at = models.DateTimeField(_("结束时间"), null=True, blank=True)
    cases_checked = models.PositiveIntegerField(_("核验案件数"), default=0)
    events_checked = models.PositiveIntegerField(_("核验记录数"), default=0)
    failure_count = models.PositiveIntegerField(_("异常数"), default=0)
    failures = models.JSONField(_("异常明细"), default=list, blank=True)
    anchor = models.CharField(_("外部锚定文件"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("审计链核验")
        verbose_name_plural = _("审计链核验")
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.started_at:%Y-%m-%d %H:%M} · {self.failure_count}"

    @property
    def ok(self) -> bool:
        return self.finished_at is not None and self.failure_count == 0
