"""Data of the set-based escalation sweep's digest e-mails (issue 11 §1).

A sweep writes its steps in batches; the steps of each batch wait in an :class:`EscalationDigestBatch`
(written in the steps' own transaction) until the sweep composes the rung's digests: one e-mail per
recipient per rung per sweep, listing that recipient's cases (:mod:`casework.escalation`). Each
case listed in a digest is a :class:`DigestLine`, so "which e-mail told whom about which step" is
kept (the referral snapshot's ``notifications`` and the case's e-mails read it, through the step's
case). Loaded by
``casework.models``.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class EscalationDigestBatch(models.Model):
    """The steps of one batch of the sweep whose digest e-mail is not written yet (deleted when it is).

    Written in the transaction of the batch's steps, so a sweep that stops between its batches and
    its digests leaves the steps to be mailed by the next sweep, never lost and never mailed twice.
    One row per batch, its steps' ids in ``step_ids`` (issue 11 §1: a row per step was an insert,
    two index entries, a foreign-key check at commit and a delete for each step taken). The ids
    name steps written in the same transaction, and a step is never deleted (its 督办单, referral,
    digest lines and audit event protect it); the digest reads them by id.
    """

    level = models.CharField(_("级别"), max_length=20)
    queued_at = models.DateTimeField(_("时间"))
    step_ids = models.JSONField(_("催督办记录"), default=list)

    class Meta:
        verbose_name = _("待发送催督办汇总")
        verbose_name_plural = _("待发送催督办汇总")
        indexes = [models.Index(fields=["level"], name="digest_batch_level_idx")]

    def __str__(self) -> str:
        return f"{self.level} {self.queued_at:%Y-%m-%d %H:%M} ({len(self.step_ids)})"


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
