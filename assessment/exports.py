"""The annual assessment as an xlsx workbook a bureau can file as is.

Citizen text (subjects) is written as typed string cells, never as formulas: a subject such as
``=HYPERLINK(...)`` opens as that literal text (field case C19). Characters XML cannot hold are
removed. Rates are numbers formatted as percentages; case references are strings, so an 18-digit
reference is never shown in scientific notation; message times are datetime cells (Asia/Shanghai)
and every table's header row is frozen and filterable (:mod:`casework.spreadsheets`).
"""

from __future__ import annotations

from io import BytesIO

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font

from assessment.facts import Period
from assessment.office_metrics import OFFICE_METRIC_DEFINITIONS, OFFICE_METRIC_LABELS, OFFICE_METRICS
from assessment.selectors import (
    METRIC_DEFINITIONS,
    METRIC_LABELS,
    MIN_VOLUME,
    RATE_METRICS,
    Mean,
    Ratio,
    UnitFigures,
)
from casework.models import Case
from casework.spreadsheets import header_row, when_cell
from casework.text import mask_personal_numbers

_CASE_HEADERS = (_lazy("案件编号"), _lazy("平台留言编号"), _lazy("留言主题"), _lazy("留言时间"), _lazy("承办单位"),
                 _lazy("状态"))


def _text(cell, value: str) -> None:
    """Write ``value`` into ``cell`` as a literal string (no formula, no number conversion)."""
    cell.value = ILLEGAL_CHARACTERS_RE.sub("", str(value or ""))
    cell.data_type = "s"


# The count columns of the sheet, in the report's order (issue 13: manual 督办单, 办理不力 referrals).
COUNT_COLUMNS = ("supervision_notices", "manual_notices", "referrals", "poor_handling_referrals", "extensions")


def _office_sheet(wb: Workbook, office: list) -> None:
    """The sheet 网评办与局领导: one row per office table row, rate and 分子/分母 per figure."""
    ws = wb.create_sheet(str(_("网评办与局领导")))
    headers = [str(_("部门或领导"))]
    for name in OFFICE_METRICS:
        headers += [str(OFFICE_METRIC_LABELS[name]), _("%(m)s(分子/分母)") % {"m": OFFICE_METRIC_LABELS[name]}]
    headers.append(str(_("备注")))
    header_row(ws, 1, headers, widths={1: 20}, last_row=1 + len(office))
    for r, fig in enumerate(office, start=2):
        _text(ws.cell(row=r, column=1), fig.label)
        col, small = 2, False
        for name in OFFICE_METRICS:
            v = fig.values.get(name)
            if v is not None:
                if v.value is not None:
                    ws.cell(row=r, column=col, value=round(v.value, 4)).number_format = "0.00%"
                _text(ws.cell(row=r, column=col + 1), f"{v.num}/{v.den}")
                small = small or v.den < MIN_VOLUME
            col += 2
        if small:
            _text(ws.cell(row=r, column=col), _("样本不足(分母少于 %(min)s 件,比率仅供参考)") % {"min": MIN_VOLUME})
    ws.column_dimensions["A"].width = 20


def assessment_workbook(*, rows: list[UnitFigures], period: Period, title: str,
                        cases: list[Case] | None = None, hidden_cases: int = 0,
                        may_see_numbers: bool = False, office: list | None = None) -> bytes:
    """Return the xlsx bytes of the ranked assessment ``rows`` (and optionally a case list sheet).

    The figures are the report's (same ``rows``); a unit with fewer than ``MIN_VOLUME`` dispatches
    is marked 样本不足 in the 备注 column; the sheet 口径说明 holds each figure's definition.
    ``hidden_cases`` is the number of cases behind the number the reader may not open (counted
    in the case list sheet, not listed). Subjects in the case list have their personal numbers
    masked unless ``may_see_numbers`` (the reader holds ``casework.view_citizen_contact``, see
    :mod:`casework.privacy`). ``office`` (:func:`assessment.office_metrics.office_figures`, for
    readers of every unit) adds the sheet 网评办与局领导 with the office's and the leaders' own rates.
    """
    wb = Workbook()
    ws = wb.active
    ws.title = str(_("年度考核"))
    _text(ws.cell(row=1, column=1), title)
    ws.cell(row=1, column=1).font = Font(bold=True, size=14)
    _text(ws.cell(row=2, column=1), _("考核期间:%(s)s 至 %(e)s(不含)") % {"s": f"{period.start:%Y-%m-%d}", "e": f"{period.end:%Y-%m-%d}"})
    headers = [str(_("排名")), str(_("单位")), str(_("得分"))]
    for name in RATE_METRICS:
        headers += [str(METRIC_LABELS[name]), _("%(m)s(分子/分母)") % {"m": METRIC_LABELS[name]}]
    headers += [str(METRIC_LABELS[n]) for n in ("reply_working_days", *COUNT_COLUMNS)]
    headers += [str(_("备注"))]
    header_row(ws, 4, headers, widths={2: 24}, last_row=4 + len(rows))
    for col in range(1, len(headers) + 1):
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
        for i, name in enumerate(COUNT_COLUMNS, start=1):
            ws.cell(row=r, column=col + i, value=int(row.values.get(name, 0) or 0))
        if row.small:
            _text(ws.cell(row=r, column=col + len(COUNT_COLUMNS) + 1), _("样本不足(交办 %(n)s 件,少于 %(min)s 件),排在有足够样本的单位之后")
                  % {"n": row.volume, "min": MIN_VOLUME})
    if office is not None:
        _office_sheet(wb, office)
    ds = wb.create_sheet(str(_("口径说明")))
    definitions = [(METRIC_LABELS[n], t) for n, t in METRIC_DEFINITIONS.items()]
    if office is not None:
        definitions += [(OFFICE_METRIC_LABELS[n], t) for n, t in OFFICE_METRIC_DEFINITIONS.items()]
    for r, (label, text) in enumerate(definitions, start=1):
        _text(ds.cell(row=r, column=1), label)
        _text(ds.cell(row=r, column=2), str(text))
    ds.column_dimensions["A"].width = 24
    ds.column_dimensions["B"].width = 120
    if cases is not None:
        cs = wb.create_sheet(str(_("案件明细")))
        header_row(cs, 1, [str(h) for h in _CASE_HEADERS], widths={1: 18, 3: 60, 4: 17, 5: 20},
                   last_row=len(cases) + 1)
        for r, case in enumerate(cases, start=2):
            _text(cs.cell(row=r, column=1), case.reference or "")
            _text(cs.cell(row=r, column=2), case.external_id)
            _text(cs.cell(row=r, column=3), case.subject if may_see_numbers else mask_personal_numbers(case.subject))
            when_cell(cs.cell(row=r, column=4), case.submitted_at)
            _text(cs.cell(row=r, column=5), case.lead_unit.name if case.lead_unit_id else "")
            _text(cs.cell(row=r, column=6), case.get_state_display())
        if hidden_cases:
            _text(cs.cell(row=len(cases) + 2, column=1), f"另有 {hidden_cases} 件不在您的查看范围内(计入统计,不列出)")
    buf = BytesIO()
    wb.save(buf)
    return buf.getvalue()
