"""Casework data: the case and its closed loop, drafts, audit events, clocks and escalation.

The case state is one protected django-fsm-2 field. Transition bodies only set fields; every
transition is performed by exactly one service in :mod:`casework.services`, which checks the
permission, locks the row, writes the audit event and queues side effects after commit.
"""

import datetime as _dt
import hashlib
import hmac
import json

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.utils.translation import gettext_lazy as _, pgettext_lazy
from django_fsm import ConcurrentTransitionMixin, FSMField, transition
import pgtrigger

from casework.text import mask_personal_numbers


class Platform(models.Model):
    """A public message board the bureau answers on (人民网领导留言板, 问政平台, 12345 …)."""

    name = models.CharField(_("名称"), max_length=100, unique=True)
    code = models.SlugField(_("代码"), max_length=50, unique=True)
    url = models.URLField(_("网址"), blank=True)

    class Meta:
        verbose_name = _("留言平台")
        verbose_name_plural = _("留言平台")

    def __str__(self) -> str:
        return self.name


class MessageType(models.TextChoices):
    CONSULT = "consult", _("咨询")
    HELP = "help", _("求助")
    SUGGEST = "suggest", _("建议")
    COMPLAIN = "complain", _("投诉")
    REPORT = "report", _("举报")
    OTHER = "other", _("其他")


class State(models.TextChoices):
    REGISTERED = "registered", _("已登记·待交办")
    DISPATCHED = "dispatched", _("已交办·待签收")
    HANDLING = "handling", _("承办中")
    OFFICE_REVIEW = "office_review", _("网评办审核")
    LEADER_REVIEW = "leader_review", _("分管局领导审签")
    APPROVED = "approved", _("待发布")
    REPLIED = "replied", _("已回复·督办回访")
    ARCHIVED = "archived", _("已归档")


ACTIVE_STATES = [
    State.DISPATCHED,
    State.HANDLING,
    State.OFFICE_REVIEW,
    State.LEADER_REVIEW,
    State.APPROVED,
]


def _may(perm: str, scope: str):
    """Build a django-fsm-2 permission callable: role permission ``perm`` plus the unit scope.

    ``scope`` is ``"lead"`` (the user's units cover the case's lead unit) or ``"case"`` (the user
    may see the case at all). The rule itself lives in :func:`casework.selectors.user_may_act`.
    """

    def check(case: "Case", user) -> bool:
        from casework.selectors import user_may_act

        return user_may_act(user=user, case=case, perm=perm, scope=scope)

    check.__name__ = f"may_{perm}_{scope}"
    return check


def _has_current_draft(case: "Case") -> bool:
    return case.drafts.filter(round=case.handling_round).exists()


def _co_units_reported(case: "Case") -> bool:
    """Joint handling: the lead unit reports only after every co-unit has (DESIGN.md §3)."""
    return not case.co_unit_tasks.filter(reported_at__isnull=True).exists()


class Case(ConcurrentTransitionMixin, models.Model):
    """A citizen's message and the case it opens."""

    reference = models.CharField(_("案件编号"), max_length=30, unique=True, null=True, blank=True)
    platform = models.ForeignKey(Platform, verbose_name=_("平台"), on_delete=models.PROTECT)
    external_id = models.CharField(_("平台留言编号"), max_length=64, blank=True, default="")
    subject = models.CharField(_("留言主题"), max_length=500)
    body = models.TextField(_("留言详情"))
    submitted_at = models.DateTimeField(_("留言时间"))
    citizen_name = models.CharField(_("网民昵称"), max_length=100, blank=True)
    citizen_contact = models.CharField(_("联系方式"), max_length=200, blank=True)
    likes = models.PositiveIntegerField(_("点赞数"), null=True, blank=True)
    dislikes = models.PositiveIntegerField(_("反对数"), null=True, blank=True)
    message_type = models.CharField(
        _("留言类型"), max_length=20, choices=MessageType.choices, default=MessageType.CONSULT
    )
    category = models.CharField(_("平台分类"), max_length=100, blank=True)

    state = FSMField(
        _("状态"), default=State.REGISTERED, choices=State.choices, protected=True, db_index=True
    )
    lead_unit = models.ForeignKey(
        "accounts.Unit",
        verbose_name=_("承办单位"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="lead_cases",
    )
    handling_round = models.PositiveSmallIntegerField(_("办理轮次"), default=1)
    dispatched_at = models.DateTimeField(_("交办时间"), null=True, blank=True)
    accepted_at = models.DateTimeField(_("签收时间"), null=True, blank=True)
    feedback_at = models.DateTimeField(_("反馈时间"), null=True, blank=True)
    sign_for_due_at = models.DateTimeField(_("签收期限"), null=True, blank=True, db_index=True)
    reply_due_at = models.DateTimeField(_("答复期限"), null=True, blank=True, db_index=True)
    published_reply = models.TextField(_("已发布答复"), blank=True)
    published_at = models.DateTimeField(_("答复时间"), null=True, blank=True)
    published_where = models.CharField(_("发布位置"), max_length=200, blank=True)
    archived_at = models.DateTimeField(_("归档时间"), null=True, blank=True)
    closing_reason = models.CharField(_("不予受理理由"), max_length=500, blank=True)
    is_key_case = models.BooleanField(_("重点难点案件"), default=False)
    key_case_leader = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("挂帅局领导"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="led_cases",
    )
    merged_into = models.ForeignKey(
        "self",
        verbose_name=_("并入主案件"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="merged_cases",
    )
    lock_version = models.PositiveIntegerField(_("版本号"), default=0, editable=False)
    created_at = models.DateTimeField(_("登记时间"), auto_now_add=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("网民留言")
        verbose_name_plural = _("网民留言")
        ordering = ["-submitted_at", "-id"]
        permissions = [
            ("register_case", _("登记留言")),
            ("dispatch_case", _("交办")),
            ("reject_case", _("不予受理")),
            ("accept_case", _("签收")),
            ("return_case", _("退回")),
            ("submit_feedback", _("反馈")),
            ("office_review_case", _("网评办审核")),
            ("leader_review_case", _("分管局领导审签")),
            ("publish_reply", _("发布答复")),
            ("follow_up_case", _("回访与重办")),
            ("archive_case", _("归档")),
            ("import_messages", _("导入留言")),
            ("view_citizen_contact", _("查看网民联系方式")),
            ("merge_case", _("合并重复留言")),
            ("assign_co_unit", _("指定协办单位")),
            ("mark_key_case", _("标记重点难点案件")),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "external_id"],
                condition=~models.Q(external_id=""),
                name="case_platform_external_id_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(state__in=State.values), name="case_state_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["state", "reply_due_at"], name="case_state_reply_due_idx"),
            models.Index(fields=["lead_unit", "state"], name="case_unit_state_idx"),
        ]

    def __str__(self) -> str:
        # A label shown to every reader (lists, breadcrumbs, logs): personal numbers masked.
        return f"{self.reference or '—'} {mask_personal_numbers(self.subject)}"

    # --- the closed loop (DESIGN.md §3). Bodies only set fields. ---

    @transition(
        field=state,
        source=State.REGISTERED,
        target=State.DISPATCHED,
        permission=_may("dispatch_case", "case"),
    )
    def dispatch(self, *, unit, at, sign_for_due_at, reply_due_at) -> None:
        self.lead_unit = unit
        self.dispatched_at = at
        self.accepted_at = None
        self.sign_for_due_at = sign_for_due_at
        self.reply_due_at = reply_due_at

    @transition(
        field=state,
        source=State.REGISTERED,
        target=State.ARCHIVED,
        permission=_may("reject_case", "case"),
    )
    def reject_invalid(self, *, reason, at) -> None:
        self.closing_reason = reason
        self.archived_at = at

    @transition(
        field=state,
        source=State.DISPATCHED,
        target=State.HANDLING,
        permission=_may("accept_case", "lead"),
    )
    def accept(self, *, at) -> None:
        self.accepted_at = at

    @transition(
        field=state,
        source=State.DISPATCHED,
        target=State.REGISTERED,
        permission=_may("return_case", "lead"),
    )
    def return_to_office(self) -> None:
        # A re-dispatch after a return is a new round: its clocks and ladder start afresh.
        self.handling_round += 1
        self.lead_unit = None
        self.dispatched_at = None
        self.sign_for_due_at = None
        self.reply_due_at = None

    @transition(
        field=state,
        source=State.HANDLING,
        target=State.OFFICE_REVIEW,
        permission=_may("submit_feedback", "lead"),
        conditions=[_has_current_draft, _co_units_reported],
    )
    def submit_feedback(self, *, at) -> None:
        self.feedback_at = at

    @transition(
        field=state,
        source=State.OFFICE_REVIEW,
        target=State.LEADER_REVIEW,
        permission=_may("office_review_case", "case"),
    )
    def office_approve(self) -> None:
        pass

    @transition(
        field=state,
        source=State.OFFICE_REVIEW,
        target=State.HANDLING,
        permission=_may("office_review_case", "case"),
    )
    def office_send_back(self) -> None:
        pass

    @transition(
        field=state,
        source=State.LEADER_REVIEW,
        target=State.APPROVED,
        permission=_may("leader_review_case", "case"),
    )
    def leader_approve(self) -> None:
        pass

    @transition(
        field=state,
        source=State.LEADER_REVIEW,
        target=State.HANDLING,
        permission=_may("leader_review_case", "case"),
    )
    def leader_send_back(self) -> None:
        pass

    @transition(
        field=state,
        source=State.APPROVED,
        target=State.REPLIED,
        permission=_may("publish_reply", "case"),
    )
    def publish_reply(self, *, text, where, at) -> None:
        # ``text`` is the signed draft's reply, byte for byte (the service passes nothing else);
        # these fields are a view of the latest ``PublishedReply`` row, which keeps every version.
        self.published_reply = text
        self.published_where = where
        self.published_at = at

    @transition(
        field=state,
        source=State.APPROVED,
        target=State.OFFICE_REVIEW,
        permission=_may("publish_reply", "case"),
        conditions=[_has_current_draft],
    )
    def revise_after_sign_off(self) -> None:
        # 发布前修改: a change to a signed reply is a new draft version that goes through tiers 2
        # and 3 again (casework.services.case_revise_after_sign_off saves it).
        pass

    @transition(
        field=state,
        source=State.REPLIED,
        target=State.REPLIED,
        permission=_may("follow_up_case", "case"),
    )
    def record_follow_up(self) -> None:
        pass

    @transition(
        field=state,
        source=State.REPLIED,
        target=State.HANDLING,
        permission=_may("follow_up_case", "case"),
    )
    def reopen(self, *, reply_due_at) -> None:
        # The earlier published reply stays on the case (and in its publish event) until the
        # next publication replaces it: a published text is never edited.
        self.handling_round += 1
        self.reply_due_at = reply_due_at
        self.feedback_at = None

    @transition(
        field=state,
        source=State.REPLIED,
        target=State.ARCHIVED,
        permission=_may("archive_case", "case"),
    )
    def archive(self, *, at) -> None:
        self.archived_at = at


class CoUnitTask(models.Model):
    """A co-unit's sub-task in joint handling (多警种联动): its own task, deadline and report."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="co_unit_tasks")
    unit = models.ForeignKey("accounts.Unit", verbose_name=_("协办单位"), on_delete=models.PROTECT)
    task = models.TextField(_("协办任务"))
    due_at = models.DateTimeField(_("协办期限"), db_index=True)
    report = models.TextField(_("协办情况"), blank=True)
    reported_at = models.DateTimeField(_("报告时间"), null=True, blank=True)
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("协办任务")
        verbose_name_plural = _("协办任务")
        ordering = ["case", "id"]
        constraints = [
            models.UniqueConstraint(fields=["case", "unit"], name="co_unit_task_once_per_unit"),
        ]

    def __str__(self) -> str:
        return f"{self.case.reference} · {self.unit}"


class Extension(models.Model):
    """A unit's request to move one clock of a case (延期), and the dispatcher's decision."""

    class Decision(models.TextChoices):
        PENDING = "pending", _("待审批")
        APPROVED = "approved", _("已批准")
        REFUSED = "refused", _("未批准")

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="extensions")
    clock = models.CharField(_("时限"), max_length=20, default="reply")
    round = models.PositiveSmallIntegerField(_("办理轮次"))
    unit = models.ForeignKey("accounts.Unit", verbose_name=_("申请单位"), on_delete=models.PROTECT)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("申请人")
    )
    requested_at = models.DateTimeField(_("申请时间"))
    reason = models.TextField(_("延期理由"))
    requested_days = models.PositiveSmallIntegerField(_("申请延长(工作日)"))
    decision = models.CharField(
        _("审批结果"), max_length=20, choices=Decision.choices, default=Decision.PENDING, db_index=True
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(_("审批时间"), null=True, blank=True)
    decision_note = models.TextField(_("审批意见"), blank=True)
    old_due_at = models.DateTimeField(_("原期限"))
    new_due_at = models.DateTimeField(_("新期限"), null=True, blank=True)

    class Meta:
        verbose_name = _("延期申请")
        verbose_name_plural = _("延期申请")
        ordering = ["-requested_at"]
        permissions = [
            ("request_extension", _("申请延期")),
            ("decide_extension", _("审批延期")),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["case", "clock"],
                condition=models.Q(decision="pending"),
                name="extension_one_pending_per_clock",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.case.reference} 延期 {self.requested_days} 个工作日"


class ReplyDraft(models.Model):
    """One version of a unit's feedback (办理情况) and draft public reply. Versions are never edited."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="drafts")
    round = models.PositiveSmallIntegerField(_("办理轮次"))
    version = models.PositiveIntegerField(_("版本"))
    handling_report = models.TextField(_("办理情况"))
    policy_basis = models.TextField(_("政策依据"), blank=True)
    measures = models.TextField(_("整改措施"), blank=True)
    reply_text = models.TextField(_("答复草稿"))
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("撰写人"), on_delete=models.PROTECT
    )
    created_at = models.DateTimeField(_("时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("答复草稿")
        verbose_name_plural = _("答复草稿")
        ordering = ["case", "version"]
        constraints = [
            models.UniqueConstraint(fields=["case", "version"], name="draft_case_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.case.reference} v{self.version}"


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
}


class CaseEvent(models.Model):
    """An append-only, hash-chained audit event of a case (one per transition and side step).

    ``hash`` is an HMAC-SHA256 (key outside the database) over the event's content and the previous
    event's hash of the same case, so an edited, deleted or reordered event breaks the chain; the
    case's ``AuditChainHead`` records its length (:mod:`casework.audit`).
    """

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="events")
    seq = models.PositiveIntegerField(_("序号"))
    action = models.CharField(_("动作"), max_length=50)
    from_state = models.CharField(_("原状态"), max_length=20, blank=True)
    to_state = models.CharField(_("新状态"), max_length=20, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("操作人"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
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
        indexes = [models.Index(fields=["action", "at"], name="event_action_at_idx")]
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


def event_hash(event) -> str:
    """Return the HMAC-SHA256 of an event's content chained to its ``prev_hash``.

    ``event`` is a ``CaseEvent`` (or a historical model in a migration) with ``case_id``, ``seq``,
    ``action``, ``from_state``, ``to_state``, ``actor_id``, ``at`` (aware datetime, any time zone:
    it is sealed as UTC, so an Asia/Shanghai time verifies after the database returns it in UTC),
    ``reason``, ``payload`` and ``prev_hash``.
    """
    at = event.at.astimezone(_dt.UTC).isoformat(timespec="microseconds")
    content = json.dumps(
        [
            event.case_id,
            event.seq,
            event.action,
            event.from_state,
            event.to_state,
            event.actor_id,
            at,
            event.reason,
            event.payload,
            event.prev_hash,
        ],
        ensure_ascii=False,
        sort_keys=True,
        default=str,
    )
    return hmac.new(audit_key(), content.encode("utf-8"), hashlib.sha256).hexdigest()


def chain_head_mac(*, case_id: int, event_count: int, head_hash: str) -> str:
    """Return the HMAC that seals one case's chain head (count and last hash) with the audit key."""
    content = f"head|{case_id}|{event_count}|{head_hash}"
    return hmac.new(audit_key(), content.encode("utf-8"), hashlib.sha256).hexdigest()


class AuditChainHead(models.Model):
    """How long each case's audit chain is and how it ends, sealed with the audit key.

    Written by every event append in the same transaction, so a deleted tail or an emptied chain
    no longer matches (:mod:`casework.audit`). Not on ``Case`` itself, so a stale ``case.save()``
    can never write an old head back.
    """

    case = models.OneToOneField(Case, primary_key=True, on_delete=models.PROTECT, related_name="chain_head")
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


class PublishedReply(models.Model):
    """One publication of a case's reply: immutable, numbered per case (发布版本).

    A publication names the signed draft version it published (for a merged duplicate, the main
    case's publication it ``follows``). A later reply (a reopened case's next round, a main case
    published again) is a new row beside the earlier ones, never over them; ``Case.published_*``
    show the latest row.
    """

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="published_replies")
    version = models.PositiveIntegerField(_("发布版本"))
    round = models.PositiveSmallIntegerField(_("办理轮次"))
    draft = models.ForeignKey(
        ReplyDraft, verbose_name=_("答复草稿"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="publications",
    )
    follows = models.ForeignKey(
        "self", verbose_name=_("随主案件答复"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="followers",
    )
    text = models.TextField(_("已发布答复"))
    where = models.CharField(_("发布位置"), max_length=200, blank=True)
    published_at = models.DateTimeField(_("答复时间"))
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("发布人"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="+",
    )
    event = models.OneToOneField(
        CaseEvent, null=True, blank=True, on_delete=models.PROTECT, related_name="publication"
    )
    created_at = models.DateTimeField(_("记录时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("已发布答复")
        verbose_name_plural = _("已发布答复")
        ordering = ["case", "version"]
        constraints = [
            models.UniqueConstraint(fields=["case", "version"], name="published_reply_case_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.case.reference} 发布第 {self.version} 版"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise RuntimeError("PublishedReply is immutable.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise RuntimeError("PublishedReply is immutable.")


class FollowUp(models.Model):
    """A structured 回访 record: reached or not, satisfaction, rectification status."""

    class Result(models.TextChoices):
        SATISFIED = "satisfied", _("满意")
        BASICALLY = "basically_satisfied", _("基本满意")
        UNSATISFIED = "unsatisfied", _("不满意")
        UNREACHABLE = "unreachable", _("未联系上")

    class Rectification(models.TextChoices):
        NOT_NEEDED = "not_needed", _("无需整改")
        DONE = "done", _("已整改")
        IN_PROGRESS = "in_progress", _("整改中")
        NOT_DONE = "not_done", _("未整改")

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="follow_ups")
    round = models.PositiveSmallIntegerField(_("办理轮次"))
    result = models.CharField(_("回访结果"), max_length=30, choices=Result.choices)
    rectification = models.CharField(
        _("整改情况"), max_length=20, choices=Rectification.choices, default=Rectification.NOT_NEEDED
    )
    note = models.TextField(_("说明"), blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    recorded_at = models.DateTimeField(_("回访时间"))

    class Meta:
        verbose_name = _("回访记录")
        verbose_name_plural = _("回访记录")
        ordering = ["case", "recorded_at"]

    def __str__(self) -> str:
        return f"{self.case.reference} {self.get_result_display()}"


class WorkCalendarDay(models.Model):
    """An exception to the Monday–Friday week: a holiday on a weekday or a 调休 working weekend day."""

    date = models.DateField(_("日期"), unique=True)
    is_workday = models.BooleanField(_("工作日"))
    note = models.CharField(_("说明"), max_length=100, blank=True)

    class Meta:
        verbose_name = _("工作日历")
        verbose_name_plural = _("工作日历")
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date} {'班' if self.is_workday else '休'} {self.note}"


class CalendarYear(models.Model):
    """One year of the work calendar and whether its official schedule is confirmed (DESIGN.md §4).

    A year is confirmed once the State Council's schedule of holidays and 调休 days was imported
    (``calendar_seed``) or entered by a superuser and confirmed. A deadline reaching into a year
    that is not confirmed is still computed (Monday–Friday plus the rows entered so far) but is
    flagged on its clock until the year is confirmed.
    """

    year = models.PositiveSmallIntegerField(_("年份"), unique=True)
    confirmed = models.BooleanField(_("已确认"), default=False)
    source = models.CharField(_("来源"), max_length=200, blank=True)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        verbose_name=_("确认人"),
    )
    confirmed_at = models.DateTimeField(_("确认时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("日历年度")
        verbose_name_plural = _("日历年度")
        ordering = ["-year"]

    def __str__(self) -> str:
        return f"{self.year}"


class UnitCalendarDay(models.Model):
    """A unit-specific exception to the bureau calendar (e.g. a window that works a holiday)."""

    unit = models.ForeignKey("accounts.Unit", verbose_name=_("单位"), on_delete=models.CASCADE)
    date = models.DateField(_("日期"))
    is_workday = models.BooleanField(_("工作日"))
    note = models.CharField(_("说明"), max_length=100, blank=True)

    class Meta:
        verbose_name = _("单位工作日历例外")
        verbose_name_plural = _("单位工作日历例外")
        ordering = ["unit", "date"]
        constraints = [
            models.UniqueConstraint(fields=["unit", "date"], name="unit_calendar_day_once"),
        ]

    def __str__(self) -> str:
        return f"{self.unit} {self.date} {'班' if self.is_workday else '休'}"


class Clock(models.TextChoices):
    SIGN_FOR = "sign_for", _("签收")
    HANDLING = "handling", _("承办反馈")
    OFFICE_REVIEW = "office_review", _("网评办审核")
    LEADER_REVIEW = "leader_review", _("分管局领导审签")
    REPLY = "reply", _("答复")
    FOLLOW_UP = "follow_up", _("回访")


class TimeUnit(models.TextChoices):
    WORKING_DAYS = "days", _("工作日")
    WORKING_HOURS = "hours", _("工作小时")


class DeadlinePolicy(models.Model):
    """The length of one clock for one message type, on one platform or on all (DESIGN.md §4).

    The row for the case's platform wins over the row for all platforms (``platform`` empty).
    Defaults (``casework.defaults``) follow published local practice: 1 working day to sign for,
    3 working days to reply to a consultation, 10–15 for complaints and reports.
    """

    message_type = models.CharField(_("留言类型"), max_length=20, choices=MessageType.choices)
    platform = models.ForeignKey(
        Platform, verbose_name=_("平台"), null=True, blank=True, on_delete=models.CASCADE,
        help_text=_("留空表示适用于所有平台"),
    )
    clock = models.CharField(_("时限"), max_length=20, choices=Clock.choices)
    amount = models.PositiveSmallIntegerField(_("时长"))
    unit = models.CharField(
        _("单位"), max_length=10, choices=TimeUnit.choices, default=TimeUnit.WORKING_DAYS
    )
    source = models.CharField(_("依据"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("办理时限")
        verbose_name_plural = _("办理时限")
        ordering = ["message_type", "platform", "clock"]
        constraints = [
            models.UniqueConstraint(
                fields=["message_type", "clock"],
                condition=models.Q(platform__isnull=True),
                name="deadline_policy_once_all_platforms",
            ),
            models.UniqueConstraint(
                fields=["message_type", "platform", "clock"],
                condition=models.Q(platform__isnull=False),
                name="deadline_policy_once_per_platform",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.get_message_type_display()} {self.get_clock_display()}: "
            f"{self.amount} {self.get_unit_display()}"
        )


class CaseClock(models.Model):
    """One clock of one case in one handling round, with its deadline computed once at its start.

    The deadline is stored so lists sort and filter on it and the escalation sweep selects due
    clocks with one indexed query. ``calendar_unconfirmed`` names the years the deadline reached
    into whose official calendar was not confirmed when it was computed.
    """

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="clocks")
    clock = models.CharField(_("时限"), max_length=20, choices=Clock.choices)
    round = models.PositiveSmallIntegerField(_("办理轮次"))
    unit = models.ForeignKey(
        "accounts.Unit", verbose_name=_("计时单位"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="+",
    )
    started_at = models.DateTimeField(_("起算时间"))
    amount = models.PositiveSmallIntegerField(_("时长"))
    time_unit = models.CharField(_("单位"), max_length=10, choices=TimeUnit.choices)
    extended_days = models.PositiveSmallIntegerField(_("已延期(工作日)"), default=0)
    due_at = models.DateTimeField(_("期限"))
    stopped_at = models.DateTimeField(_("停止时间"), null=True, blank=True)
    calendar_unconfirmed = models.CharField(_("未确认日历年份"), max_length=50, blank=True)

    class Meta:
        verbose_name = _("案件时限")
        verbose_name_plural = _("案件时限")
        ordering = ["case", "round", "started_at"]
        constraints = [
            models.UniqueConstraint(fields=["case", "clock", "round"], name="case_clock_once_per_round"),
        ]
        indexes = [
            models.Index(fields=["stopped_at", "due_at"], name="caseclock_stopped_due_idx"),
            models.Index(
                fields=["clock", "due_at"],
                condition=models.Q(stopped_at__isnull=True),
                name="caseclock_running_due_idx",
            ),
            models.Index(
                fields=["case"],
                condition=~models.Q(calendar_unconfirmed=""),
                name="caseclock_unconfirmed_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.case.reference} {self.get_clock_display()} → {self.due_at:%Y-%m-%d %H:%M}"


class EscalationLevel(models.TextChoices):
    REMIND = "remind", _("到期提醒")
    URGE = "urge", _("催办·督办单")
    ESCALATE = "escalate", _("报分管局领导")
    REFER = "refer", _("移交纪检督察")


class EscalationRung(models.Model):
    """One level of the escalation ladder, as data (DESIGN.md §4).

    ``threshold_days`` is in working days relative to the clock's deadline: -1 is "one working day
    left", 0 "overdue", 3 "three working days past the deadline". A rung that ``requires`` another
    fires only once that one was taken on the same clock.
    """

    level = models.SlugField(_("级别代码"), max_length=20, unique=True)
    name = models.CharField(_("名称"), max_length=50)
    clocks = models.JSONField(_("适用时限"), default=list)
    threshold_days = models.SmallIntegerField(_("相对期限(工作日)"))
    requires = models.ForeignKey(
        "self", verbose_name=_("前置级别"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="+",
    )
    notify_handlers = models.BooleanField(_("通知承办人"), default=False)
    notify_unit_head = models.BooleanField(_("通知单位负责人"), default=False)
    notify_comment_office = models.BooleanField(_("通知网评办"), default=False)
    notify_leaders = models.BooleanField(_("通知分管局领导"), default=False)
    notify_supervisors = models.BooleanField(_("通知纪检督察"), default=False)
    opens_notice = models.BooleanField(_("开具督办单"), default=False)
    opens_referral = models.BooleanField(_("移交纪检督察"), default=False)
    unit_open_notices_limit = models.PositiveSmallIntegerField(
        _("单位未答复督办单上限"), null=True, blank=True,
        help_text=_("单位未答复的督办单达到此数时,其案件直接触发本级(仅用于移交级)。"),
    )
    notice_answer_days = models.PositiveSmallIntegerField(
        _("督办单答复时限(工作日)"), default=2,
        help_text=_("督办单开具后超过此工作日数仍未答复,计为未答复督办单。"),
    )
    is_active = models.BooleanField(_("启用"), default=True)

    class Meta:
        verbose_name = _("催督办阶梯")
        verbose_name_plural = _("催督办阶梯")
        ordering = ["threshold_days", "level"]

    def __str__(self) -> str:
        return self.name


class EscalationStep(models.Model):
    """One step of the escalation ladder taken on one case, clock and handling round.

    The unique constraint makes every step happen at most once, whatever the scheduler does.
    """

    case = models.ForeignKey(Case, verbose_name=_("案件"), on_delete=models.PROTECT, related_name="escalation_steps")
    clock = models.CharField(_("时限"), max_length=20, choices=Clock.choices)
    round = models.PositiveSmallIntegerField(_("办理轮次"))
    level = models.CharField(_("级别"), max_length=20, choices=EscalationLevel.choices)
    due_at = models.DateTimeField(_("期限"))
    happened_at = models.DateTimeField(_("时间"))

    class Meta:
        verbose_name = _("催督办记录")
        verbose_name_plural = _("催督办记录")
        ordering = ["case", "happened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["case", "clock", "round", "level"], name="escalation_step_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.case.reference} {self.get_clock_display()} {self.get_level_display()}"


class SupervisionNotice(models.Model):
    """A 督办单 on an active case, tracked until the unit answers it."""

    case = models.ForeignKey(Case, verbose_name=_("案件"), on_delete=models.PROTECT,
                             related_name="supervision_notices")
    unit = models.ForeignKey("accounts.Unit", verbose_name=_("被督办单位"), on_delete=models.PROTECT)
    step = models.OneToOneField(
        EscalationStep, verbose_name=_("催督办记录"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="notice",
    )
    content = models.TextField(_("督办内容"))
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("督办人"),
    )
    opened_at = models.DateTimeField(_("督办时间"))
    answer = models.TextField(_("单位答复"), blank=True)
    answered_at = models.DateTimeField(pgettext_lazy("督办单", "答复时间"), null=True, blank=True)
    # Closed without an answer because the unit stopped being answerable for the case (it returned
    # the case to the 网评办); see casework.selectors.notices_awaiting_answer.
    closed_at = models.DateTimeField(_("终止时间"), null=True, blank=True)
    closed_reason = models.CharField(_("终止原因"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("督办单")
        verbose_name_plural = _("督办单")
        ordering = ["-opened_at"]
        permissions = [("answer_supervision", _("答复督办单"))]

    def __str__(self) -> str:
        return _("督办单 %(ref)s → %(unit)s") % {"ref": self.case.reference, "unit": self.unit}


class DisciplineReferral(models.Model):
    """An immutable referral of a case to 纪检督察, with a snapshot of its timeline and notices."""

    case = models.ForeignKey(Case, verbose_name=_("案件"), on_delete=models.PROTECT, related_name="referrals")
    unit = models.ForeignKey("accounts.Unit", verbose_name=_("涉及单位"), on_delete=models.PROTECT)
    step = models.OneToOneField(
        EscalationStep, verbose_name=_("催督办记录"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="referral",
    )
    reason = models.TextField(_("移交理由"))
    snapshot = models.JSONField(_("案件材料"), default=dict)
    created_at = models.DateTimeField(_("移交时间"))
    class Outcome(models.TextChoices):
        TALK = "talk", _("约谈")
        CRITICISM = "criticism", _("通报批评")
        ADMONITION = "admonition", _("诫勉谈话")
        SELF_EXAMINATION = "self_examination", _("责令书面检查")
        NO_ACCOUNTABILITY = "no_accountability", _("不予追责")
        OTHER = "other", _("其他")

    trigger = models.CharField(_("触发方式"), max_length=30, default="ladder")
    outcome_kind = models.CharField(
        _("处理方式"), max_length=30, choices=Outcome.choices, blank=True, db_index=True
    )
    outcome = models.TextField(_("处理结果"), blank=True)
    outcome_recorded_at = models.DateTimeField(_("结果登记时间"), null=True, blank=True)
    outcome_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("结果登记人"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="+",
    )

    class Meta:
        verbose_name = _("纪检督察移交")
        verbose_name_plural = _("纪检督察移交")
        ordering = ["-created_at"]
        permissions = [("record_referral_outcome", _("登记移交处理结果"))]

    def __str__(self) -> str:
        return _("移交 %(ref)s") % {"ref": self.case.reference}


class Notification(models.Model):
    """An e-mail in the outbox. Written in the same transaction as its cause, sent after commit.

    ``key`` is unique, so a cause that runs twice queues one e-mail; ``sent_at`` is set under a
    row lock by the sending task, so a redelivered task sends nothing new.
    """

    key = models.CharField(max_length=200, unique=True)
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.PROTECT)
    recipients = models.JSONField(_("收件人"), default=list)
    subject = models.CharField(_("主题"), max_length=300)
    body = models.TextField(_("正文"))
    html_body = models.TextField(_("HTML 正文"), blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    sent_at = models.DateTimeField(_("发送时间"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("尝试次数"), default=0)
    last_error = models.TextField(_("最近错误"), blank=True)
    # When the periodic outbox flush may try this row again (None: sent, or waiting for a superuser).
    next_attempt_at = models.DateTimeField(_("下次重试"), null=True, blank=True, db_index=True)

    class Meta:
        verbose_name = _("邮件通知")
        verbose_name_plural = _("邮件通知")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.subject


class NotificationRecipient(models.Model):
    """The delivery state of one recipient of an outbox e-mail (written at the first attempt).

    A recipient the mail server refused for now (4xx) is retried alone; one it refused for good
    (5xx) waits for a superuser's retry; one delivered is never sent the e-mail again.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("待发送")
        SENT = "sent", _("已送达")
        DEFERRED = "deferred", _("暂时拒收(将重试)")
        REFUSED = "refused", _("拒收(不再自动重试)")

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries")
    address = models.CharField(_("收件人"), max_length=254)
    status = models.CharField(_("投递状态"), max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(_("尝试次数"), default=0)
    last_code = models.PositiveSmallIntegerField(_("最近应答码"), null=True, blank=True)
    last_error = models.TextField(_("最近错误"), blank=True)
    sent_at = models.DateTimeField(_("送达时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("收件人投递")
        verbose_name_plural = _("收件人投递")
        ordering = ["notification", "address"]
        constraints = [
            models.UniqueConstraint(fields=["notification", "address"], name="delivery_unique_address"),
        ]

    def __str__(self) -> str:
        return self.address


# Import jobs and their per-row report (a module of their own; loaded here so Django sees them).
from casework.importing_models import ImportJob, ImportJobRow  # noqa: E402,F401
from casework.learning_models import DuplicateBand, DuplicateFlag, RouterModel  # noqa: E402,F401

# 跟踪督办: rectification rounds of a referral and their reminders (issue 13 §4).
from casework.tracking_models import RectificationReminder, RectificationRound  # noqa: E402,F401

# The audit actions of 督办单 answers, outcomes and 跟踪督办, in words (the timeline never shows a code).
ACTION_LABELS.update({
    "supervision_answered": _("答复督办单"),
    "referral_outcome": _("登记移交处理结果"),
    "rectification_set": _("下达整改报告要求"),
    "rectification_answered": _("报送整改报告"),
    "rectification_reminder": _("整改报告提醒"),
})
