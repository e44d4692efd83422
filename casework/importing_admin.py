"""The admin's upload page for message imports (案件列表 → 导入留言).

A thin interface over :func:`casework.importing.messages_import`: it checks the
``casework.import_messages`` permission, accepts only CSV, gzipped CSV and XLSX files (checked on
the name *and* the content, field case C04), runs the import and shows the summary and the table
of bad rows. :class:`casework.admin.CaseAdmin` mounts it at ``admin:casework_case_import``.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from casework.importing import DEFAULT_PLATFORM_CODE, ImportFileError, messages_import, sniff_format
from casework.models import Case, Platform

# Name endings accepted, and the content each must have (see importing.sniff_format).
ALLOWED_SUFFIXES = {".csv": "csv", ".csv.gz": "csv.gz", ".xlsx": "xlsx"}
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_ERRORS_SHOWN = 1000


class ImportForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("文件"),
        help_text=gettext_lazy(
            "CSV(UTF-8)、CSV.gz 或 xlsx;第 1 行为表头,列:message_id, user_id, subject, body, "
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


def import_view(request):
    """Show the upload form; on POST import the file and show the summary and the bad rows.

    Requires ``casework.import_messages`` (403 otherwise). The file is imported in the request;
    very large exports belong to ``manage.py import_messages``, which shows progress.
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
            upload.seek(0)
            try:
                report = messages_import(rows_source=upload, platform=platform, acting_user=request.user)
            except ImportFileError as exc:
                form.add_error("file", str(exc))
            else:
                level = messages.WARNING if report.errors else messages.SUCCESS
                messages.add_message(
                    request,
                    level,
                    _("导入完成:新建 %(created)d 件,跳过 %(skipped)d 件,错误 %(errors)d 行。")
                    % {"created": report.created, "skipped": report.skipped, "errors": len(report.errors)},
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
        "hidden_error_count": (len(report.errors) - len(shown)) if report else 0,
    }
    return TemplateResponse(request, "admin/casework/case/import.html", context)
