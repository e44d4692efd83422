"""Data of the set-based escalation sweep's digest e-mails (issue 11 §1).

A sweep writes its steps in batches; each step taken waits in :class:`EscalationDigestPending`
(written in the step's own transaction) until the sweep composes the rung's digests: one e-mail per
recipient per rung per sweep, listing that recipient's cases (:mod:`casework.escalation`). Each
case listed in a digest is a :class:`DigestLine`, so "which e-mail told whom about which step" is
kept (the referral snapshot's ``notifications`` and the case's e-mails read it, through the step's
case). Loaded by
``casework.models``.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class EscalationDigestPending(models.Model):
    """A step taken whose digest e-mail is not written yet (deleted when its digest is written).

    Written in the transaction of the step, so a sweep that stops between its batches and its
    digests leaves the step to be mailed by the next sweep, never lost and never mailed twice.
    """

    step = models.OneToOneField(
        "casework.EscalationStep", primary_key=True, on_delete=models.CASCADE, related_name="digest_pending"
    )
    level = models.CharField(_("级别"), max_length=20)
    queued_at = models.DateTimeField(_("时间"))

    class Meta:
        verbose_name = _("待发送催督办汇总")
        verbose_name_plural = _("待发送催督办汇总")
        indexes = [models.Index(fields=["level"], name="digest_pending_level_idx")]

    def __str__(self) -> str:
        return f"{self.step_id} {self.level}"


class DigestLine(models.Model):
    """One case listed in one digest e-mail of the escalation sweep (the step it reports).

    The case is the step's (``step.case``): an append-only line does not repeat it (a column, two
    indexes and a foreign-key check per line; issue 11 §1). The lines of a case are found through
    its steps (``step__case``), on the index of the step column. The e-mail's lines are found on the
    unique (notification, step) index, which leads with the notification.
    """

    notification = models.ForeignKey(
        "casework.Notification", on_delete=models.PROTECT, related_name="digest_lines", db_index=False
    )
    step = models.ForeignKey("casework.EscalationStep", on_delete=models.PROTECT, related_name="digest_lines")

    class Meta:
        verbose_name = _("汇总邮件所列案件")
        verbose_name_plural = _("汇总邮件所列案件")
        constraints = [
            models.UniqueConstraint(fields=["notification", "step"], name="digest_line_once"),
        ]

    def __str__(self) -> str:
        return f"{self.notification_id}: {self.step_id}"
