"""跟踪督办 (issue 13 §4): the rectification rounds a referral is tracked through until it closes.

纪检督察 set the referred unit a rectification report (整改报告) with a deadline in working days on
the unit's calendar; the unit answers on its own page; reminders go out as the deadline nears and
once it has passed; further rounds may follow; the outcome closes the matter
(``DisciplineReferral.outcome_*``). Services: :mod:`casework.tracking`. Imported at the end of
:mod:`casework.models`, so these are ordinary models of the casework app.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class RectificationRound(models.Model):
    """One round of 跟踪督办 on a referral: what the unit must report, by when, and its answer.

    ``number`` counts the rounds of one referral from 1; a new round may be set only once the
    previous one is answered (or the supervisors ended it). The text the supervisors set and the
    unit's answer are written once each.
    """

    referral = models.ForeignKey(
        "casework.DisciplineReferral", verbose_name=_("纪检督察移交"), on_delete=models.PROTECT,
        related_name="rectification_rounds",
    )
    number = models.PositiveSmallIntegerField(_("轮次"))
    requirement = models.TextField(_("整改要求"))
    working_days = models.PositiveSmallIntegerField(_("报告期限(工作日)"))
    due_at = models.DateTimeField(_("报告期限"), db_index=True)
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("督办人"), on_delete=models.PROTECT, related_name="+",
    )
    set_at = models.DateTimeField(_("下达时间"))
    answer = models.TextField(_("整改报告"), blank=True)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("报告人"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="+",
    )
    answered_at = models.DateTimeField(_("报告时间"), null=True, blank=True)
    # Ended without an answer because the matter was closed (the outcome was recorded).
    closed_at = models.DateTimeField(_("终止时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("整改报告")
        verbose_name_plural = _("整改报告")
        ordering = ["referral", "number"]
        constraints = [
            models.UniqueConstraint(fields=["referral", "number"], name="rectification_round_once"),
        ]

    def __str__(self) -> str:
        return _("%(ref)s 第 %(n)s 轮整改报告") % {"ref": self.referral.case.reference, "n": self.number}

    @property
    def is_open(self) -> bool:
        """True while the unit still owes this round's report."""
        return self.answered_at is None and self.closed_at is None


class RectificationReminder(models.Model):
    """A reminder e-mail of one round, sent once per kind (unique), whatever the scheduler does."""

    class Kind(models.TextChoices):
        DUE_SOON = "due_soon", _("即将到期提醒")
        OVERDUE = "overdue", _("逾期提醒")

    round = models.ForeignKey(RectificationRound, verbose_name=_("整改报告"), on_delete=models.PROTECT,
                              related_name="reminders")
    kind = models.CharField(_("提醒类型"), max_length=20, choices=Kind.choices)
    sent_at = models.DateTimeField(_("提醒时间"))
    recipients = models.JSONField(_("收件人"), default=list)

    class Meta:
        verbose_name = _("整改报告提醒")
        verbose_name_plural = _("整改报告提醒")
        ordering = ["round", "sent_at"]
        constraints = [
            models.UniqueConstraint(fields=["round", "kind"], name="rectification_reminder_once"),
        ]

    def __str__(self) -> str:
        return f"{self.round} {self.get_kind_display()}"
