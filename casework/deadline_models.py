"""The deadline machinery's data: work calendars, deadline policies, case clocks, the escalation
ladder and what it opens (督办单 supervision notices, 纪检督察 referrals).

Services: :mod:`casework.calendar` (working days), :mod:`casework.clocks` (policies and clocks),
:mod:`casework.escalation` (the ladder's sweep, notices and referrals).
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from casework.choices import MessageType


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
    DISPATCH = "dispatch", _("交办")
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
        "casework.Platform", verbose_name=_("平台"), null=True, blank=True, on_delete=models.CASCADE,
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

    # No index of its own: case_clock_once_per_round (case, clock, round) serves every lookup by case.
    case = models.ForeignKey("casework.Case", on_delete=models.CASCADE, related_name="clocks", db_index=False)
    clock = models.CharField(_("时限"), max_length=20, choices=Clock.choices)
    round = models.PositiveSmallIntegerField(_("办理轮次"))
    unit = models.ForeignKey(
        "accounts.Unit", verbose_name=_("计时单位"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="+",
        db_index=False,  # caseclock_unit_idx (Meta): the 交办 clock of every registration has none
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
            # The sweep's selection of due clocks (issue 11): a range of running clocks by deadline,
            # answered from the index alone (the clock id; the case and round for the step check; the unit for
            # its calendar), not one heap page per due clock.
            models.Index(
                fields=["clock", "due_at"],
                include=["id", "case", "round", "unit"],
                condition=models.Q(stopped_at__isnull=True),
                name="caseclock_running_due_cov_idx",
            ),
            models.Index(
                fields=["case"],
                condition=~models.Q(calendar_unconfirmed=""),
                name="caseclock_unconfirmed_idx",
            ),
            # The office's figures read one clock's rows started in a period (the 交办 clock on the
            # dashboard, assessment.office_metrics): without it, every clock of every case is read.
            models.Index(fields=["clock", "started_at"], name="caseclock_clock_started_idx"),
            # ``unit = <unit>`` lookups (a unit's PROTECT check, the sweep's per-unit cut-offs): only
            # the clocks that have a unit, so a registration's 交办 clock (unit NULL) adds no entry.
            models.Index(fields=["unit"], condition=models.Q(unit__isnull=False), name="caseclock_unit_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.case.reference} {self.get_clock_display()} → {self.due_at:%Y-%m-%d %H:%M}"


class EscalationLevel(models.TextChoices):
    REMIND = "remind", _("到期提醒")
    URGE = "urge", _("催办·督办单")
    ESCALATE = "escalate", _("报分管局领导")
    REFER = "refer", _("移交纪检督察")
    OFFICE_URGE = "office_urge", _("交办催办")
    OFFICE_ESCALATE = "office_escalate", _("交办报局领导")


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

    # No index of its own: escalation_step_once (case, clock, round, level) serves every lookup by case.
    case = models.ForeignKey("casework.Case", verbose_name=_("案件"), on_delete=models.PROTECT,
                             related_name="escalation_steps", db_index=False)
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

    case = models.ForeignKey("casework.Case", verbose_name=_("案件"), on_delete=models.PROTECT,
                             related_name="supervision_notices")
    unit = models.ForeignKey("accounts.Unit", verbose_name=_("被督办单位"), on_delete=models.PROTECT)
    step = models.OneToOneField(
        EscalationStep, verbose_name=_("催督办记录"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="notice",
    )
    content = models.TextField(_("督办内容"))
    # Indexed only where set (notice_opened_by_idx): a ladder notice has no one who opened it.
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("督办人"),
        db_index=False,
    )
    opened_at = models.DateTimeField(_("督办时间"))
    answer = models.TextField(_("单位答复"), blank=True)
    answered_at = models.DateTimeField(pgettext_lazy("督办单", "答复时间"), null=True, blank=True)
    # Closed without an answer because the unit stopped being answerable for the case (it returned
    # the case to the 网评办); see casework.selectors.notices_awaiting_answer.
    closed_at = models.DateTimeField(_("终止时间"), null=True, blank=True)
    closed_reason = models.CharField(_("终止原因"), max_length=200, blank=True)
    # Issue 13: who opened it (ladder / by hand / quality rung), by when the unit must answer
    # (working days on the unit's own calendar), and whether it went to a co-unit.
    # Indexed by notice_origin_idx (equality only: no pattern index beside it).
    origin = models.CharField(_("来源"), max_length=20, default="ladder",
                              choices=[("ladder", _("催督办阶梯")), ("manual", _("人工开具")),
                                       ("quality", _("质量触发"))])
    answer_due_at = models.DateTimeField(_("督办单答复期限"), null=True, blank=True, db_index=True)
    to_co_unit = models.BooleanField(_("致协办单位"), default=False)

    class Meta:
        verbose_name = _("督办单")
        verbose_name_plural = _("督办单")
        ordering = ["-opened_at"]
        # Fewer index entries per 督办单 the sweep writes (issue 11 §1): the opener only where
        # there is one (a user's notices are found on it, Django's PROTECT check included), the
        # origin without the LIKE index Django adds to an indexed CharField (nothing matches it).
        indexes = [
            models.Index(fields=["opened_by"], name="notice_opened_by_idx", condition=models.Q(opened_by__isnull=False)),
            models.Index(fields=["origin"], name="notice_origin_idx"),
        ]
        permissions = [("answer_supervision", _("答复督办单")),
                       ("open_supervision", _("开具督办单")),
                       ("refer_poor_handling", _("移交办理不力"))]

    def __str__(self) -> str:
        return _("督办单 %(ref)s → %(unit)s") % {"ref": self.case.reference, "unit": self.unit}


class DisciplineReferral(models.Model):
    """An immutable referral of a case to 纪检督察, with a snapshot of its timeline and notices."""

    case = models.ForeignKey("casework.Case", verbose_name=_("案件"), on_delete=models.PROTECT,
                             related_name="referrals")
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
    # Issue 13: late (the ladder) or poor handling (办理不力: by hand or a confirmed quality rung).
    kind = models.CharField(_("移交类型"), max_length=20, default="late", db_index=True,
                            choices=[("late", _("超期未办")), ("poor_handling", _("办理不力"))])
    poor_reason = models.ForeignKey(
        "casework.PoorHandlingReason", verbose_name=_("办理不力事由"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="+",
    )
    statement = models.TextField(_("移交说明"), blank=True)
    origin = models.CharField(_("来源"), max_length=20, default="ladder", db_index=True,
                              choices=[("ladder", _("催督办阶梯")), ("manual", _("人工开具")),
                                       ("quality", _("质量触发"))])
    referred_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("移交人"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="+",
    )
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
