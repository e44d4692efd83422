"""Case list export to CSV and XLSX, safe to open in a spreadsheet (DESIGN.md §8, field case C19).

Rows come only from :func:`casework.selectors.cases_visible_to`; contacts are masked unless the user
holds ``casework.view_citizen_contact``, and so are the personal numbers inside subjects, bodies and
replies (:mod:`casework.privacy`). Citizen text never becomes a formula: XLSX cells are typed
as strings (never formulas or numbers, so an 18-digit reference keeps every digit), and CSV cells
that a spreadsheet would evaluate (starting with ``= + - @``, a tab or a carriage return) get a
leading apostrophe, the OWASP-recommended neutraliser; the rest of the text is kept as written.
"""

import csv
import io

from django.db.models import OuterRef, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from accounts.models import User
from casework.models import Case, FollowUp
from casework.privacy import citizen_text_for
from casework.selectors import cases_visible_to
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


def cases_export_rows(*, user: User, queryset=None) -> list[list[str]]:
    """Return the export rows (all text) of the cases of ``queryset`` that ``user`` may see.

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
        def when(value):
            return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else ""

        rows.append([
            case.reference or "",
            case.external_id,
            case.platform.name,
            citizen_text_for(user=user, text=case.subject),
            citizen_text_for(user=user, text=case.body),
            when(case.submitted_at),
            case.citizen_name,
            case.citizen_contact if may_see_contact else mask_contact(case.citizen_contact),
            str(case.get_state_display()),
            case.lead_unit.name if case.lead_unit else "",
            when(case.reply_due_at),
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
        writer.writerow([csv_cell_safe(v) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def cases_export_xlsx(*, user: User, queryset=None) -> bytes:
    """Return the export as an XLSX workbook whose every cell is a string cell."""
    book = Workbook()
    sheet = book.active
    sheet.title = _("网民留言")
    for r, row in enumerate([_headers(), *cases_export_rows(user=user, queryset=queryset)], start=1):
        for c, value in enumerate(row, start=1):
            cell = sheet.cell(row=r, column=c)
            cell.value = ILLEGAL_CHARACTERS_RE.sub("", value)
            cell.data_type = "s"  # never "f" (formula) or "n": literal text, every digit kept
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
