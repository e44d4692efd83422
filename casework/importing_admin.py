"""The admin's upload page for message imports (案件列表 → 导入留言) and the import jobs' pages.

A thin interface over :mod:`casework.importing`: it checks the ``casework.import_messages``
permission, accepts only CSV, gzipped CSV and XLSX files (checked on the name *and* the content,
field case C04). A file up to ``CASEWORK_IMPORT_INLINE_BYTES`` is imported in the request and its
summary and bad rows shown at once; a larger one is stored under ``CASEWORK_IMPORT_DIR`` and
imported by the Celery worker (task ``casework.import_job_run``), and the page of its
:class:`~casework.importing_models.ImportJob` (导入任务) shows the progress and the bad rows.
:class:`casework.admin.CaseAdmin` mounts the upload page at ``admin:casework_case_import``.
"""

import os
from pathlib import Path
import uuid

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.admin_base import StaffModelAdmin
from casework import tasks
from casework.importing import (
    DEFAULT_PLATFORM_CODE,
    ImportFileError,
    import_job_create,
    messages_import,
    sniff_format,
)
from casework.importing_models import ImportJob, ImportJobRow
from casework.models import Case, Platform

# Name endings accepted, and the content each must have (see importing.sniff_format).
ALLOWED_SUFFIXES = {".csv": "csv", ".csv.gz": "csv.gz", ".xlsx": "xlsx"}
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_ERRORS_SHOWN = 1000


class ImportForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("文件"),
        help_text=gettext_lazy(
            "CSV(UTF-8 或 Excel 的 GBK/GB18030)、CSV.gz 或 xlsx;第 1 行为表头,列:message_id, user_id, subject, body, "
            "submitted_at, category, reply, replied_at, likes, dislikes(也可用 留言编号、留言主题、留言详情、"
            "留言时间 等中文列名)。同一平台已导入的留言编号会被跳过。"
        ),
    )
    platform = forms.ModelChoiceField(
        label=gettext_lazy("平台"), queryset=Platform.objects.order_by("name"), empty_label=None
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        name = (upload.name or "").lower()
        expected = next((kind for suffix, kind in ALLOWED_SUFFIXES.items() if name.endswith(suffix)), None)
        if name.endswith(".gz") and not name.endswith(".csv.gz"):
            expected = None
        if expected is None:
            raise ValidationError(_("只接受 .csv、.csv.gz 或 .xlsx 文件。"), code="suffix")
        if upload.size > MAX_UPLOAD_BYTES:
            raise ValidationError(
                _("文件超过 %(mb)d MB,请用命令 manage.py import_messages 导入。")
                % {"mb": MAX_UPLOAD_BYTES // (1024 * 1024)},
                code="size",
            )
        upload.seek(0)
        try:
            kind = sniff_format(upload)
        except ImportFileError as exc:
            raise ValidationError(str(exc), code="content") from exc
        if kind != expected:
            raise ValidationError(
                _("文件扩展名与内容不符:文件名是 %(expected)s,内容是 %(kind)s。")
                % {"expected": expected, "kind": kind},
                code="mismatch",
            )
        return upload


def _store_upload(upload) -> str:
    """Copy an upload to ``CASEWORK_IMPORT_DIR`` in chunks; return its path."""
    folder = Path(settings.CASEWORK_IMPORT_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    name = (upload.name or "").lower()
    suffix = next((s for s in ALLOWED_SUFFIXES if name.endswith(s)), "")
    path = folder / f"{uuid.uuid4().hex}{suffix}"
    upload.seek(0)
    with open(path, "wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return str(path)


def _queue(request, *, upload, platform):
    path = _store_upload(upload)
    try:
        with transaction.atomic():
            job = import_job_create(
                platform=platform, acting_user=request.user, file_name=upload.name or "", stored_path=path
            )
            transaction.on_commit(lambda: tasks.import_job_run.delay(job.pk))
    except BaseException:
        os.remove(path)
        raise
    messages.info(request, _("文件较大,已转入后台导入;本页显示进度和错误行。"))
    return HttpResponseRedirect(reverse("admin:casework_importjob_change", args=[job.pk]))


def import_view(request):
    """Show the upload form; on POST import the file (or queue it) and show the summary and the bad rows.

    Requires ``casework.import_messages`` (403 otherwise). A file up to
    ``CASEWORK_IMPORT_INLINE_BYTES`` is imported in the request; a larger one becomes a background
    :class:`ImportJob` and the answer redirects to its page (progress, counts, bad rows).
    """
    if not request.user.has_perm("casework.import_messages"):
        raise PermissionDenied
    report = None
    platform = None
    file_name = ""
    if request.method == "POST":
        form = ImportForm(request.POST, request.FILES)
        if form.is_valid():
            platform = form.cleaned_data["platform"]
            upload = form.cleaned_data["file"]
            file_name = upload.name
            if upload.size > settings.CASEWORK_IMPORT_INLINE_BYTES:
                return _queue(request, upload=upload, platform=platform)
            upload.seek(0)
            try:
                report = messages_import(
                    rows_source=upload, platform=platform, acting_user=request.user, file_name=file_name
                )
            except ImportFileError as exc:
                form.add_error("file", str(exc))
            else:
                level = messages.WARNING if report.error_count else messages.SUCCESS
                messages.add_message(
                    request,
                    level,
                    _("导入完成:新建 %(created)d 件,跳过 %(skipped)d 件,错误 %(errors)d 行。")
                    % {"created": report.created, "skipped": report.skipped, "errors": report.error_count},
                )
    else:
        form = ImportForm(initial={"platform": Platform.objects.filter(code=DEFAULT_PLATFORM_CODE).first()})
    shown = report.errors[:MAX_ERRORS_SHOWN] if report else []
    context = {
        **admin.site.each_context(request),
        "opts": Case._meta,
        "title": _("导入留言"),
        "form": form,
        "report": report,
        "platform": platform,
        "file_name": file_name,
        "shown_errors": shown,
        "hidden_error_count": (report.error_count - len(shown)) if report else 0,
        "job": report.job if report else None,
    }
    return TemplateResponse(request, "admin/casework/case/import.html", context)


@admin.register(ImportJob)
class ImportJobAdmin(StaffModelAdmin):
    """导入任务: one row per imported file, read only; its page shows progress and the bad rows.

    Visible to staff with ``casework.import_messages``; nobody edits or deletes a job here (the
    report is the record of what the import did).
    """

    list_display = ("created_at", "file_name", "platform", "status", "progress", "created_count",
                    "skipped_count", "error_count", "created_by")
    list_filter = ("status", "platform")
    list_select_related = ("platform", "created_by")
    fields = ("file_name", "platform", "status", "message", "progress", "created_count", "skipped_count",
              "error_count", "created_by", "created_at", "started_at", "finished_at", "error_rows")
    readonly_fields = fields
    change_form_template = "admin/casework/importjob/change_form.html"

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("casework.import_messages")

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=gettext_lazy("进度"))
    def progress(self, obj: ImportJob) -> str:
        if obj.total_rows:
            return f"{obj.rows_done:,} / {obj.total_rows:,}({min(100, obj.rows_done * 100 // obj.total_rows)}%)"
        return f"{obj.rows_done:,}"

    @admin.display(description=gettext_lazy("未导入的行(其他行已正常导入)"))
    def error_rows(self, obj: ImportJob):
        rows = list(
            obj.rows.filter(outcome=ImportJobRow.Outcome.ERROR)
            .order_by("row_number")
            .values_list("row_number", "external_id", "reason")[:MAX_ERRORS_SHOWN]
        )
        if not rows:
            return "—"
        table = format_html(
            '<table class="cw-import-errors" id="cw-job-errors"><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr>'
            "</thead><tbody>{}</tbody></table>",
            _("行号"),
            _("留言编号"),
            _("原因"),
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )
        hidden = obj.error_count - len(rows)
        if hidden > 0:
            table = format_html(
                "{}<p>{}</p>", table, _("另有 %(n)d 行错误未显示,请用命令 manage.py import_messages 查看完整列表。") % {"n": hidden}
            )
        return table
