"""Data of file imports: one :class:`ImportJob` per imported file and one :class:`ImportJobRow` per row.

The job carries its status and progress counts so the admin can show an import running in the
background (Celery), and its rows are the import report kept in the database instead of in
memory: each data row's outcome (created, skipped as imported before, or error with its reason).
Loaded by ``casework.models``; see :mod:`casework.importing` for the rules.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ImportJob(models.Model):
    """One import of one file: who, which platform, status, counts and timing."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("排队中")
        RUNNING = "running", _("导入中")
        DONE = "done", _("已完成")
        FAILED = "failed", _("失败")

    platform = models.ForeignKey("casework.Platform", verbose_name=_("平台"), on_delete=models.PROTECT)
    file_name = models.CharField(_("文件名"), max_length=255, blank=True)
    stored_path = models.CharField(_("暂存路径"), max_length=500, blank=True, editable=False)
    status = models.CharField(_("状态"), max_length=10, choices=Status.choices, default=Status.QUEUED)
    message = models.TextField(_("说明"), blank=True)
    total_rows = models.PositiveIntegerField(_("数据行数"), null=True, blank=True)
    rows_done = models.PositiveIntegerField(_("已处理行数"), default=0)
    created_count = models.PositiveIntegerField(_("新建"), default=0)
    skipped_count = models.PositiveIntegerField(_("跳过"), default=0)
    error_count = models.PositiveIntegerField(_("错误行"), default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("导入人"), null=True, blank=True, on_delete=models.PROTECT
    )
    created_at = models.DateTimeField(_("提交时间"), auto_now_add=True)
    started_at = models.DateTimeField(_("开始时间"), null=True, blank=True)
    finished_at = models.DateTimeField(_("结束时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("导入任务")
        verbose_name_plural = _("导入任务")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.file_name or self.pk} · {self.get_status_display()}"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)


class ImportJobRow(models.Model):
    """The outcome of one data row of an import (row numbers are the spreadsheet's: header = 1)."""

    class Outcome(models.TextChoices):
        CREATED = "created", _("新建")
        SKIPPED = "skipped", _("跳过(已导入过)")
        ERROR = "error", _("错误")

    # No index of its own: importrow_job_outcome_idx and importrow_job_extid_idx begin with the job.
    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="rows", db_index=False)
    row_number = models.PositiveIntegerField(_("行号"))
    external_id = models.CharField(_("留言编号"), max_length=64, blank=True)
    outcome = models.CharField(_("结果"), max_length=10, choices=Outcome.choices)
    # No index: nothing reads the rows by case; a case with its register event cannot be deleted
    # (CaseEvent.case is PROTECT, events are append-only), so SET_NULL never has to find them.
    case = models.ForeignKey(
        "casework.Case", verbose_name=_("案件"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False,
    )
    reason = models.TextField(_("原因"), blank=True)

    class Meta:
        verbose_name = _("导入行")
        verbose_name_plural = _("导入行")
        ordering = ["job", "row_number"]
        indexes = [
            models.Index(fields=["job", "outcome", "row_number"], name="importrow_job_outcome_idx"),
            models.Index(fields=["job", "external_id"], name="importrow_job_extid_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}:{self.row_number} {self.outcome}"
