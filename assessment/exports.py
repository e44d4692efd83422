"""The annual assessment as an xlsx workbook a bureau can file as is.

Citizen text (subjects) is written as typed string cells, never as formulas: a subject such as
``=HYPERLINK(...)`` opens as that literal text (field case C19). Characters XML cannot hold are
removed. Rates are numbers formatted as percentages; case references are strings, so an 18-digit
reference is never shown in scientific notation.
"""

from __future__ import annotations

from io import BytesIO

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font

from assessment.facts import Period
from assessment.selectors import METRIC_LABELS, RATE_METRICS, Mean, Ratio, UnitFigures
from casework.models import Case

_CASE_HEADERS = (_lazy("案件编号"), _lazy("平台留言编号"), _lazy("留言主题"), _lazy("留言时间"), _lazy("承办单位"),
                 _lazy("状态"))


def _text(cell, value: str) -> None:
    """Write ``value`` into ``cell`` as a literal string (no formula, no number conversion)."""
    cell.value = ILLEGAL_CHARACTERS_RE.sub("", str(value or ""))
    cell.data_type = "s"


def assessment_workbook(*, rows: list[UnitFigures], period: Period, title: str,
                        cases: list[Case] | None = None) -> bytes:
    """Return the xlsx bytes of the ranked assessment ``rows`` (and optionally a case list sheet)."""
    wb = Workbook()
    ws = wb.active
    ws.title = str(_("年度考核"))
    _text(ws.cell(row=1, column=1), title)
    ws.cell(row=1, column=1).font = Font(bold=True, size=14)
    _text(ws.cell(row=2, column=1), _("考核期间:%(s)s 至 %(e)s(不含)") % {"s": f"{period.start:%Y-%m-%d}", "e": f"{period.end:%Y-%m-%d}"})
    headers = [str(_("排名")), str(_("单位")), str(_("得分"))]
    for name in RATE_METRICS:
        headers += [str(METRIC_LABELS[name]), _("%(m)s(分子/分母)") % {"m": METRIC_LABELS[name]}]
    headers += [str(METRIC_LABELS[n]) for n in ("reply_working_days", "supervision_notices", "referrals", "extensions")]
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
        cs = wb.create_sheet(str(_("案件明细")))
        for col, h in enumerate([str(h) for h in _CASE_HEADERS], start=1):
            _text(cs.cell(row=1, column=col), h)
            cs.cell(row=1, column=col).font = Font(bold=True)
        for r, case in enumerate(cases, start=2):
            _text(cs.cell(row=r, column=1), case.reference or "")
            _text(cs.cell(row=r, column=2), case.external_id)
            _text(cs.cell(row=r, column=3), case.subject)
            _text(cs.cell(row=r, column=4), f"{case.submitted_at:%Y-%m-%d %H:%M}")
            _text(cs.cell(row=r, column=5), case.lead_unit.name if case.lead_unit_id else "")
            _text(cs.cell(row=r, column=6), case.get_state_display())
        cs.column_dimensions["C"].width = 60
    buf = BytesIO()
    wb.save(buf)
    return buf.getvalue()
