"""The annual assessment as an xlsx workbook a bureau can file as is.

Citizen text (subjects) is written as typed string cells, never as formulas: a subject such as
``=HYPERLINK(...)`` opens as that literal text (field case C19). Characters XML cannot hold are
removed. Rates are numbers formatted as percentages; case references are strings, so an 18-digit
reference is never shown in scientific notation.
"""

from __future__ import annotations

from io import BytesIO

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font

from assessment.facts import Period
from assessment.selectors import METRIC_LABELS, RATE_METRICS, Mean, Ratio, UnitFigures
from casework.models import Case
from casework.text import mask_personal_numbers


def _text(cell, value: str) -> None:
    """Write ``value`` into ``cell`` as a literal string (no formula, no number conversion)."""
    cell.value = ILLEGAL_CHARACTERS_RE.sub("", str(value or ""))
    cell.data_type = "s"


def assessment_workbook(*, rows: list[UnitFigures], period: Period, title: str,
                        cases: list[Case] | None = None, may_see_numbers: bool = False) -> bytes:
    """Return the xlsx bytes of the ranked assessment ``rows`` (and optionally a case list sheet).

    Subjects in the case list have their personal numbers masked unless ``may_see_numbers`` (the
    reader holds ``casework.view_citizen_contact``, see :mod:`casework.privacy`).
    """
    wb = Workbook()
    ws = wb.active
    ws.title = "年度考核"
    _text(ws.cell(row=1, column=1), title)
    ws.cell(row=1, column=1).font = Font(bold=True, size=14)
    _text(ws.cell(row=2, column=1), f"考核期间:{period.start:%Y-%m-%d} 至 {period.end:%Y-%m-%d}(不含)")
    headers = ["排名", "单位", "得分"]
    for name in RATE_METRICS:
        headers += [METRIC_LABELS[name], f"{METRIC_LABELS[name]}(分子/分母)"]
    headers += [METRIC_LABELS[n] for n in ("reply_working_days", "supervision_notices", "referrals", "extensions")]
    for col, h in enumerate(headers, start=1):
        _text(ws.cell(row=4, column=col), h)
        ws.cell(row=4, column=col).font = Font(bold=True)
        ws.cell(row=4, column=col).alignment = Alignment(wrap_text=True)
    for r, row in enumerate(rows, start=5):
        ws.cell(row=r, column=1, value=row.rank)
        _text(ws.cell(row=r, column=2), row.unit.name)
        ws.cell(row=r, column=3, value=row.score)
        col = 4
        for name in RATE_METRICS:
            v = row.values.get(name)
            if isinstance(v, Ratio) and v.value is not None:
                ws.cell(row=r, column=col, value=round(v.value, 4)).number_format = "0.00%"
            _text(ws.cell(row=r, column=col + 1), f"{v.num}/{v.den}" if isinstance(v, Ratio) else "")
            col += 2
        mean = row.values.get("reply_working_days")
        if isinstance(mean, Mean) and mean.value is not None:
            ws.cell(row=r, column=col, value=round(mean.value, 2))
        for i, name in enumerate(("supervision_notices", "referrals", "extensions"), start=1):
            ws.cell(row=r, column=col + i, value=int(row.values.get(name, 0) or 0))
    ws.column_dimensions["B"].width = 24
    if cases is not None:
        cs = wb.create_sheet("案件明细")
        for col, h in enumerate(["案件编号", "平台留言编号", "留言主题", "留言时间", "承办单位", "状态"], start=1):
            _text(cs.cell(row=1, column=col), h)
            cs.cell(row=1, column=col).font = Font(bold=True)
        for r, case in enumerate(cases, start=2):
            _text(cs.cell(row=r, column=1), case.reference or "")
            _text(cs.cell(row=r, column=2), case.external_id)
            _text(cs.cell(row=r, column=3), case.subject if may_see_numbers else mask_personal_numbers(case.subject))
            _text(cs.cell(row=r, column=4), f"{case.submitted_at:%Y-%m-%d %H:%M}")
            _text(cs.cell(row=r, column=5), case.lead_unit.name if case.lead_unit_id else "")
            _text(cs.cell(row=r, column=6), case.get_state_display())
        cs.column_dimensions["C"].width = 60
    buf = BytesIO()
    wb.save(buf)
    return buf.getvalue()
