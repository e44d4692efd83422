"""Case list export to CSV and XLSX, safe to open in a spreadsheet (DESIGN.md §8, field case C19).

Rows come only from :func:`casework.selectors.cases_visible_to`; contacts are masked unless the user
holds ``casework.view_citizen_contact``, and so are the personal numbers inside subjects, bodies and
replies (:mod:`casework.privacy`). Citizen text never becomes a formula: XLSX text cells are typed
as strings (never formulas or numbers, so an 18-digit reference keeps every digit); times are real
datetime cells (Asia/Shanghai, ``yyyy-mm-dd hh:mm``) under a frozen, filterable header
(:mod:`casework.spreadsheets`); CSV cells
that a spreadsheet would evaluate (starting with ``= + - @``, a tab or a carriage return) get a
leading apostrophe, the OWASP-recommended neutraliser; the rest of the text is kept as written.
"""

import csv
import io

from django.db.models import OuterRef, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _
from openpyxl import Workbook

from accounts.models import User
from casework.models import Case, FollowUp
from casework.privacy import citizen_text_for
from casework.selectors import cases_visible_to
from casework.spreadsheets import header_row, text_cell, when_cell
from casework.text import mask_contact

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell_safe(value: str) -> str:
    """Return ``value`` neutralised for a CSV cell: a leading apostrophe before a formula trigger."""
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


def _headers() -> list[str]:
    return [
        _("案件编号"), _("平台留言编号"), _("平台"), _("留言主题"), _("留言详情"), _("留言时间"),
        _("网民昵称"), _("联系方式"), _("状态"), _("承办单位"), _("答复期限"), _("已发布答复"),
        _("回访结果"), _("整改情况"),
    ]


# Columns holding an aware datetime (the others hold text).
WHEN_COLUMNS = (5, 10)


def cases_export_rows(*, user: User, queryset=None) -> list[list]:
    """Return the export rows of the cases of ``queryset`` that ``user`` may see.

    Each row is text except the columns of :data:`WHEN_COLUMNS` (0-based), which hold aware
    datetimes or None.

    Args:
        queryset: cases to export (e.g. the admin's selection); narrowed by the access rule again.
    """
    may_see_contact = user.has_perm("casework.view_citizen_contact")
    qs = cases_visible_to(user=user, queryset=queryset if queryset is not None else Case.objects.all())
    # The latest 回访 of each case (its rating and rectification), read in the same query.
    latest = FollowUp.objects.filter(case_id=OuterRef("pk")).order_by("-recorded_at", "-id")
    qs = qs.annotate(follow_up_result=Subquery(latest.values("result")[:1]),
                     follow_up_rectification=Subquery(latest.values("rectification")[:1]))
    results, rectifications = dict(FollowUp.Result.choices), dict(FollowUp.Rectification.choices)
    rows = []
    for case in qs.select_related("platform", "lead_unit").order_by("pk"):
        rows.append([
            case.reference or "",
            case.external_id,
            case.platform.name,
            citizen_text_for(user=user, text=case.subject),
            citizen_text_for(user=user, text=case.body),
            case.submitted_at,
            case.citizen_name,
            case.citizen_contact if may_see_contact else mask_contact(case.citizen_contact),
            str(case.get_state_display()),
            case.lead_unit.name if case.lead_unit else "",
            case.reply_due_at,
            citizen_text_for(user=user, text=case.published_reply),
            str(results.get(case.follow_up_result, "")),
            str(rectifications.get(case.follow_up_rectification, "")) if case.follow_up_result else "",
        ])
    return rows


def cases_export_csv(*, user: User, queryset=None) -> bytes:
    """Return the export as UTF-8 CSV with a BOM (so spreadsheet programs read the Chinese)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_headers())
    for row in cases_export_rows(user=user, queryset=queryset):
        writer.writerow([_when_text(v) if i in WHEN_COLUMNS else csv_cell_safe(v) for i, v in enumerate(row)])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _when_text(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else ""


def cases_export_xlsx(*, user: User, queryset=None) -> bytes:
    """Return the export as an XLSX workbook: text cells typed as strings, times as datetime cells.

    The header row is bold, frozen and filterable; the subject and body columns are wide.
    """
    book = Workbook()
    sheet = book.active
    sheet.title = _("网民留言")
    rows = cases_export_rows(user=user, queryset=queryset)
    header_row(sheet, 1, _headers(), widths={1: 18, 4: 40, 5: 60, 6: 17, 10: 20, 11: 17, 12: 60},
               last_row=len(rows) + 1)
    for r, row in enumerate(rows, start=2):
        for c, value in enumerate(row, start=1):
            cell = sheet.cell(row=r, column=c)
            if c - 1 in WHEN_COLUMNS:
                when_cell(cell, value)
            else:
                text_cell(cell, value)  # never "f" (formula) or "n": literal text, every digit kept
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
