"""The outbox: every e-mail of the site as a row written with its cause, delivered per recipient.

Services: :mod:`casework.outbox` (queue, deliver, flush with retries under row locks).
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Notification(models.Model):
    """An e-mail in the outbox. Written in the same transaction as its cause, sent after commit.

    ``key`` is unique, so a cause that runs twice queues one e-mail; ``sent_at`` is set under a
    row lock by the sending task, so a redelivered task sends nothing new.
    """

    key = models.CharField(max_length=200, unique=True)
    case = models.ForeignKey("casework.Case", null=True, blank=True, on_delete=models.PROTECT)
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
