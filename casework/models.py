"""Casework data: the case and its closed loop, drafts, audit events, clocks and escalation.

The case state is one protected django-fsm-2 field. Transition bodies only set fields; every
transition is performed by exactly one service in :mod:`casework.services`, which checks the
permission, locks the row, writes the audit event and queues side effects after commit.
"""


from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from casework.access import user_may_act
from casework.audit_models import (  # noqa: F401 (re-exported: casework.models is the app's model index)
    ACTION_LABELS,
    AuditChainHead,
    AuditVerificationRun,
    CaseEvent,
    audit_key,
    chain_head_mac,
    chain_head_macs,
    event_hash,
    event_hashes,
)
from casework.choices import ACTIVE_STATES, MessageType, State  # noqa: F401
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


def _may(perm: str, scope: str):
    """Build a django-fsm-2 permission callable: role permission ``perm`` plus the unit scope.

    ``scope`` is ``"lead"`` (the user's units cover the case's lead unit) or ``"case"`` (the user
    may see the case at all). The rule itself lives in :func:`casework.access.user_may_act`.
    """

    def check(case: "Case", user) -> bool:
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
        _("状态"), default=State.REGISTERED, choices=State.choices, protected=True
    )  # indexed by case_state_idx (Meta), without the LIKE index db_index=True would add
    lead_unit = models.ForeignKey(
        "accounts.Unit",
        verbose_name=_("承办单位"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="lead_cases",
        db_index=False,  # indexed as the first column of case_unit_state_idx and case_unit_submitted_idx
    )
    handling_round = models.PositiveSmallIntegerField(_("办理轮次"), default=1)
    dispatched_at = models.DateTimeField(_("交办时间"), null=True, blank=True)
    accepted_at = models.DateTimeField(_("签收时间"), null=True, blank=True)
    feedback_at = models.DateTimeField(_("反馈时间"), null=True, blank=True)
    # Indexed where set (case_sign_for_due_idx, case_reply_due_idx in Meta): NULL until dispatch.
    sign_for_due_at = models.DateTimeField(_("签收期限"), null=True, blank=True)
    reply_due_at = models.DateTimeField(_("答复期限"), null=True, blank=True)
    # The 网评办's own 交办 clock (快速批办, issue 13 §5): a copy of the running dispatch clock's deadline.
    dispatch_due_at = models.DateTimeField(_("交办期限"), null=True, blank=True)
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
        db_index=False,  # case_key_case_leader_idx: only the few cases that have one
    )
    merged_into = models.ForeignKey(
        "self",
        verbose_name=_("并入主案件"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="merged_cases",
        db_index=False,  # case_merged_into_idx: only the few cases merged away
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
            models.Index(fields=["lead_unit", "state"], name="case_unit_state_idx"),
            # The case list's orders (issue 11 §3): the default list (newest first, read backwards),
            # a state or unit filter, the queues on the reply clock and the sign-for queue. Each
            # ends on the primary key, as the list's ordering does, so a page is read off the index.
            models.Index(fields=["submitted_at", "id"], name="case_submitted_idx"),
            models.Index(fields=["state", "submitted_at", "id"], name="case_state_submitted_idx"),
            models.Index(fields=["lead_unit", "submitted_at", "id"], name="case_unit_submitted_idx"),
            models.Index(fields=["state", "reply_due_at", "submitted_at", "id"], name="case_state_reply_queue_idx"),
            models.Index(fields=["sign_for_due_at", "submitted_at", "id"], condition=models.Q(state="dispatched"),
                         name="case_sign_for_queue_idx"),
            # The dashboard's open cases by state and its overdue counts, in one pass over the open
            # cases only, read from this index alone on PostgreSQL (its INCLUDE columns; SQLite
            # keeps the keys). The access rule's columns (lead unit, id) are in it.
            models.Index(fields=["state", "lead_unit", "id"], include=["sign_for_due_at", "reply_due_at"],
                         condition=models.Q(state__in=ACTIVE_STATES), name="case_open_state_idx"),
            # The state alone: the capped counts of the queue tiles (COUNT … WHERE state = … LIMIT n) read it.
            models.Index(fields=["state"], name="case_state_idx"),
            # Foreign keys that are empty on almost every case (every import writes NULL): partial, so
            # registering a case adds no entry to them; ``= <id>`` lookups (PROTECT checks, the
            # merged cases of a case, a leader's key cases) still read them.
            models.Index(fields=["key_case_leader"], condition=models.Q(key_case_leader__isnull=False),
                         name="case_key_case_leader_idx"),
            models.Index(fields=["merged_into"], condition=models.Q(merged_into__isnull=False),
                         name="case_merged_into_idx"),
            # The running clocks' deadlines, for the overdue filter's ``sign_for_due_at < now`` /
            # ``reply_due_at < now`` (cases_overdue_q, a BitmapOr of the two): only cases that have
            # one, so a registration (NULL until dispatch, e.g. every imported message) adds no entry.
            models.Index(fields=["sign_for_due_at"], condition=models.Q(sign_for_due_at__isnull=False),
                         name="case_sign_for_due_idx"),
            models.Index(fields=["reply_due_at"], condition=models.Q(reply_due_at__isnull=False),
                         name="case_reply_due_idx"),
            # The 发回修改 queue (handling again after feedback): a few cases among the handled ones,
            # which the planner otherwise meets by reading the state's rows one by one.
            models.Index(fields=["reply_due_at", "submitted_at", "id"],
                         condition=models.Q(state="handling", feedback_at__isnull=False),
                         name="case_sent_back_queue_idx"),
            # The 退回待裁定 queue (registered again after a unit returned the case): a third of the
            # registered cases, which the planner otherwise read in full and sorted (93 → 0.2 ms).
            models.Index(fields=["submitted_at", "id"], condition=models.Q(state="registered", handling_round__gt=1),
                         name="case_returned_queue_idx"),
            # A unit's 承办中 / 发回修改 and 待签收 queues (lead unit in the handler's scope): the unit's
            # few thousand rows of the state in the queue's order, the access rule's columns (lead
            # unit, id) and the feedback time in the index, so the capped count and the date
            # drill-down read the index alone (a district handler's 承办中 count 31 → 4.5 ms,
            # 待签收 22 → 3 ms), where they visited every one of the unit's rows of the state.
            models.Index(fields=["lead_unit", "reply_due_at", "submitted_at", "id"], include=["feedback_at"],
                         condition=models.Q(state="handling"), name="case_unit_handling_idx"),
            models.Index(fields=["lead_unit", "sign_for_due_at", "submitted_at", "id"],
                         condition=models.Q(state="dispatched"), name="case_unit_sign_for_idx"),
            # The 承办中 queue of the whole bureau (superusers) in its order: next to the unit index
            # above, PostgreSQL (taking "no feedback yet" for a sixth of the handled cases, not the
            # nine tenths it is) read all 90,000 handled cases of the unit index and sorted them.
            models.Index(fields=["reply_due_at", "submitted_at", "id"],
                         condition=models.Q(state="handling", feedback_at__isnull=True),
                         name="case_handling_queue_idx"),
            # A unit's overdue cases (超期 filter of a unit's staff, selectors.cases_overdue_in_scope_q):
            # the reply deadlines of its running cases, so the filter reads the unit's few overdue
            # rows, not every overdue case of the bureau (20,000 heap rows for 950 at 1M cases).
            models.Index(fields=["lead_unit", "reply_due_at"],
                         condition=models.Q(state__in=ACTIVE_STATES, reply_due_at__isnull=False),
                         name="case_unit_reply_due_idx"),
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
    # Issue 13: the follow-up found the published reply untrue (答复不实), a quality rung's trigger.
    reply_untrue = models.BooleanField(_("回访发现答复不实"), default=False)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    recorded_at = models.DateTimeField(_("回访时间"))

    class Meta:
        verbose_name = _("回访记录")
        verbose_name_plural = _("回访记录")
        ordering = ["case", "recorded_at"]

    def __str__(self) -> str:
        return f"{self.case.reference} {self.get_result_display()}"


from casework.attachment_models import Attachment  # noqa: E402,F401
from casework.deadline_models import (  # noqa: E402,F401 (calendar, policies, clocks, ladder, notices, referrals)
    CalendarYear,
    CaseClock,
    Clock,
    DeadlinePolicy,
    DisciplineReferral,
    EscalationLevel,
    EscalationRung,
    EscalationStep,
    SupervisionNotice,
    TimeUnit,
    UnitCalendarDay,
    WorkCalendarDay,
)
from casework.escalation_models import DigestLine, EscalationDigestBatch  # noqa: E402,F401
from casework.importing_models import ImportJob, ImportJobRow  # noqa: E402,F401
from casework.learning_models import DuplicateBand, DuplicateFlag, RouterModel  # noqa: E402,F401
from casework.outbox_models import Notification, NotificationRecipient  # noqa: E402,F401
from casework.supervision_models import (  # noqa: E402,F401
    Origin,
    PoorHandlingReason,
    QualityRung,
    QualityStep,
    ReferralCase,
    ReferralKind,
)
from casework.tracking_models import RectificationReminder, RectificationRound  # noqa: E402,F401 (跟踪督办)
