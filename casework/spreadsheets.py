"""What every export of the site shares: typed date cells, a frozen header and a meaningful file name.

Rule (issue 10 item 11): dates and times in a workbook are real date/datetime cells in Asia/Shanghai
(spreadsheets sort, filter and compute on them) with an explicit number format; the header row is
bold, frozen and filterable; the download is named after what it holds and the day it was made
(``网民留言案件_2026-12-02.xlsx``), sent with an RFC 6266/5987 ``filename*`` for the Chinese name
and an ASCII ``filename`` for old clients. Used by :mod:`casework.export` and
:mod:`assessment.exports` (and any new export).
"""

from __future__ import annotations

from datetime import date, datetime
from urllib.parse import quote

from django.http import HttpResponse
from django.utils import timezone
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
DATE_FORMAT = "yyyy-mm-dd"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv; charset=utf-8"


def local_naive(value: datetime | None) -> datetime | None:
    """``value`` in Asia/Shanghai without tzinfo (what an xlsx cell holds); None stays None."""
    if value is None:
        return None
    return timezone.localtime(value).replace(tzinfo=None, microsecond=0)


def text_cell(cell, value) -> None:
    """Write ``value`` as a literal string cell (never a formula or a number; every digit kept)."""
    cell.value = ILLEGAL_CHARACTERS_RE.sub("", str(value if value is not None else ""))
    cell.data_type = "s"


def when_cell(cell, value: datetime | date | None) -> None:
    """Write a date (``yyyy-mm-dd``) or an aware datetime (local, ``yyyy-mm-dd hh:mm``) cell; blank for None."""
    if value is None:
        cell.value = None
        return
    if isinstance(value, datetime):
        cell.value = local_naive(value)
        cell.number_format = DATETIME_FORMAT
    else:
        cell.value = value
        cell.number_format = DATE_FORMAT


def header_row(sheet, row: int, headers, *, widths: dict[int, float] | None = None,
               last_row: int | None = None) -> None:
    """Write bold ``headers`` on ``row``, freeze the sheet below it and switch on the filter.

    Args:
        widths: column (1-based) → width in characters; other columns get 14, date columns need 17.
        last_row: the last data row, for the filter range (default: the sheet's max row).
    """
    for col, text in enumerate(headers, start=1):
        cell = sheet.cell(row=row, column=col)
        text_cell(cell, text)
        cell.font = Font(bold=True)
        sheet.column_dimensions[get_column_letter(col)].width = (widths or {}).get(col, 14)
    sheet.freeze_panes = sheet.cell(row=row + 1, column=1)
    end = max(last_row or sheet.max_row, row)
    sheet.auto_filter.ref = f"A{row}:{get_column_letter(len(headers))}{end}"


def export_filename(stem: str, ext: str, *, day: date | None = None) -> str:
    """``<stem>_<yyyy-mm-dd>.<ext>``, the day in Asia/Shanghai (default today)."""
    day = day or timezone.localdate()
    return f"{stem}_{day:%Y-%m-%d}.{ext}"


def download(content: bytes, *, content_type: str, filename: str, ascii_filename: str) -> HttpResponse:
    """A download response: ``attachment`` with the ASCII name and the UTF-8 ``filename*``, nosniff."""
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = (
        f'attachment; filename="{ascii_filename}"; filename*=UTF-8\'\'{quote(filename, safe="")}'
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response
