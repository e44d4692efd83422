"""Supervision by hand and accountability for poor handling (办理不力, issue 13).

Imported at the end of :mod:`casework.models`, so these are ordinary models of the casework app.

* :class:`PoorHandlingReason` — the configurable list of reasons a case or unit is referred to
  纪检督察 for poor handling (敷衍塞责, 答复不实, 推诿扯皮, 多次发回重办, 群众不满意 …).
* :class:`QualityRung` — a quality trigger beside the clock rungs of the ladder: a handling round
  with ≥ N send-backs, a case reopened after an unsatisfied follow-up ≥ N times, a follow-up that
  finds the reply untrue. Each opens a 督办单 or proposes a referral for the office to confirm.
* :class:`QualityStep` — one rung taken on one case and round, under a unique constraint, so it
  happens exactly once whatever the scheduler does; a proposed referral is confirmed or refused
  (with a reason) on it.
* :class:`ReferralCase` — the cases concerned by a referral (a unit referred with several cases).
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Origin(models.TextChoices):
    """Who opened a 督办单 or a referral: the clock ladder, a person, or a quality rung."""

    LADDER = "ladder", _("催督办阶梯")
    MANUAL = "manual", _("人工开具")
    QUALITY = "quality", _("质量触发")


class ReferralKind(models.TextChoices):
    LATE = "late", _("超期未办")
    POOR_HANDLING = "poor_handling", _("办理不力")


class PoorHandlingReason(models.Model):
    """One reason of the list a 办理不力 referral chooses from (superusers edit the list)."""

    name = models.CharField(_("名称"), max_length=50, unique=True)
    description = models.CharField(_("说明"), max_length=300, blank=True)
    order = models.PositiveSmallIntegerField(_("排序"), default=0)
    is_active = models.BooleanField(_("启用"), default=True)

    class Meta:
        verbose_name = _("办理不力事由")
        verbose_name_plural = _("办理不力事由")
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name


class QualityRung(models.Model):
    """A quality trigger of the ladder, as data: what it measures, from how many, what it does."""

    class Kind(models.TextChoices):
        SEND_BACKS = "send_backs", _("同一轮办理被发回修改次数")
        REOPENED_UNSATISFIED = "reopened_unsatisfied", _("回访不满意后重办次数")
        REPLY_UNTRUE = "reply_untrue", _("回访发现答复不实")

    class Action(models.TextChoices):
        NOTICE = "notice", _("开具督办单")
        PROPOSE_REFERRAL = "propose_referral", _("提请移交纪检督察(网评办确认)")

    name = models.CharField(_("名称"), max_length=50, unique=True)
    kind = models.CharField(_("触发条件"), max_length=30, choices=Kind.choices)
    threshold = models.PositiveSmallIntegerField(
        _("达到次数"), default=1,
        help_text=_("达到此次数时触发(答复不实:回访发现一次即触发,填 1)。"),
    )
    action = models.CharField(_("触发后"), max_length=30, choices=Action.choices)
    answer_days = models.PositiveSmallIntegerField(
        _("督办单答复时限(工作日)"), default=2,
        help_text=_("开具督办单时,按被督办单位的工作日历计算答复期限。"),
    )
    reason = models.ForeignKey(
        PoorHandlingReason, verbose_name=_("移交事由"), null=True, blank=True, on_delete=models.PROTECT,
        help_text=_("提请移交时使用的办理不力事由。"),
    )
    is_active = models.BooleanField(_("启用"), default=True)

    class Meta:
        verbose_name = _("质量触发规则")
        verbose_name_plural = _("质量触发规则")
        ordering = ["kind", "threshold", "pk"]

    def __str__(self) -> str:
        return self.name


class QualityStep(models.Model):
    """One quality rung taken on one case and handling round (once, by the unique constraint)."""

    class Status(models.TextChoices):
        NOTICE = "notice", _("已开具督办单")
        PROPOSED = "proposed", _("待网评办确认")
        CONFIRMED = "confirmed", _("已确认移交")
        REFUSED = "refused", _("不予移交")

    rung = models.ForeignKey(QualityRung, verbose_name=_("质量触发规则"), on_delete=models.PROTECT)
    case = models.ForeignKey("casework.Case", verbose_name=_("案件"), on_delete=models.PROTECT,
                             related_name="quality_steps")
    round = models.PositiveSmallIntegerField(_("办理轮次"))
    unit = models.ForeignKey("accounts.Unit", verbose_name=_("涉及单位"), on_delete=models.PROTECT)
    count = models.PositiveSmallIntegerField(_("触发时次数"))
    happened_at = models.DateTimeField(_("触发时间"))
    status = models.CharField(_("状态"), max_length=20, choices=Status.choices, db_index=True)
    notice = models.OneToOneField(
        "casework.SupervisionNotice", verbose_name=_("督办单"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="quality_step",
    )
    referral = models.OneToOneField(
        "casework.DisciplineReferral", verbose_name=_("纪检督察移交"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="quality_step",
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("确认人"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="+",
    )
    decided_at = models.DateTimeField(_("确认时间"), null=True, blank=True)
    decision_note = models.TextField(_("确认意见"), blank=True)

    class Meta:
        verbose_name = _("质量触发记录")
        verbose_name_plural = _("质量触发记录")
        ordering = ["-happened_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["rung", "case", "round"], name="quality_step_once"),
        ]

    def __str__(self) -> str:
        return f"{self.case.reference} {self.rung}"


class ReferralCase(models.Model):
    """A case concerned by a referral (the referral's own case and any other case of the unit)."""

    referral = models.ForeignKey("casework.DisciplineReferral", on_delete=models.PROTECT,
                                 related_name="cases_concerned")
    case = models.ForeignKey("casework.Case", verbose_name=_("案件"), on_delete=models.PROTECT,
                             related_name="referral_links")

    class Meta:
        verbose_name = _("移交涉及案件")
        verbose_name_plural = _("移交涉及案件")
        constraints = [
            models.UniqueConstraint(fields=["referral", "case"], name="referral_case_once"),
        ]

    def __str__(self) -> str:
        return str(self.case.reference)
