"""Every export of the site: typed date cells, a frozen header, a meaningful file name (issue 10 item 11).

The exports are found, not listed by hand: every admin action named ``export_*`` on every registered
admin, plus the assessment report's xlsx (with and without its drill-down case sheet). A new export
that is not covered fails :func:`test_every_export_is_covered`.
"""

from datetime import datetime, timedelta
import io
from urllib.parse import unquote

from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook
import pytest

from casework.models import State

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:casework_case_changelist"
COVERED_ACTIONS = {("casework", "case", "export_csv"), ("casework", "case", "export_xlsx")}


def test_every_export_is_covered():
    found = set()
    for model, model_admin in admin.site._registry.items():
        for action in model_admin.actions or []:
            name = action if isinstance(action, str) else action.__name__
            if name.startswith("export"):
                found.add((model._meta.app_label, model._meta.model_name, name))
    assert found == COVERED_ACTIONS


def filename_of(response) -> tuple[str, str]:
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment;")
    ascii_name = disposition.split('filename="')[1].split('"')[0]
    utf8_name = unquote(disposition.split("filename*=UTF-8''")[1])
    assert ascii_name.isascii()
    return ascii_name, utf8_name


def case_export(client, bureau, action):
    case = bureau.case_in(State.HANDLING)
    client.force_login(bureau.dispatcher)
    response = client.post(reverse(CHANGELIST), {"action": action, "_selected_action": [case.pk], "index": 0})
    assert response.status_code == 200
    return case, response


def test_case_xlsx_has_datetime_cells_a_frozen_header_and_a_dated_name(client, bureau):
    case, response = case_export(client, bureau, "export_xlsx")
    today = timezone.localdate().isoformat()
    assert filename_of(response) == (f"cases_{today}.xlsx", f"网民留言案件_{today}.xlsx")
    assert response["X-Content-Type-Options"] == "nosniff"
    sheet = load_workbook(io.BytesIO(response.content)).active
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref.startswith("A1:")
    assert sheet["A1"].font.bold
    header = [c.value for c in sheet[1]]
    row = sheet[2]
    submitted = row[header.index("留言时间")]
    assert isinstance(submitted.value, datetime) and submitted.data_type == "d"
    assert submitted.value == timezone.localtime(case.submitted_at).replace(tzinfo=None, microsecond=0)
    assert submitted.number_format == "yyyy-mm-dd hh:mm"
    due = row[header.index("答复期限")]
    assert isinstance(due.value, datetime) and due.number_format == "yyyy-mm-dd hh:mm"
    assert row[0].data_type == "s" and row[0].value == case.reference


def test_case_csv_has_a_dated_name_and_local_times(client, bureau):
    case, response = case_export(client, bureau, "export_csv")
    today = timezone.localdate().isoformat()
    assert filename_of(response) == (f"cases_{today}.csv", f"网民留言案件_{today}.csv")
    text = response.content.decode("utf-8-sig")
    assert timezone.localtime(case.submitted_at).strftime("%Y-%m-%d %H:%M") in text


def test_assessment_export_has_datetime_cells_frozen_headers_and_a_dated_name(client, bureau):
    case = bureau.case_in(State.HANDLING)
    client.force_login(bureau.leader)
    day = timezone.localdate()
    start, end = day.replace(day=1), day + timedelta(days=1)
    response = client.get(reverse("assessment:report_export") +
                          f"?start={start}&end={end}&metric=return_rate&part=den&unit={bureau.unit_a.pk}")
    assert response.status_code == 200
    today = day.isoformat()
    assert filename_of(response) == (f"assessment_{start}_{today}.xlsx", f"绩效考核_{start}_{today}.xlsx")
    book = load_workbook(io.BytesIO(response.content))
    ranking = book["年度考核"]
    assert ranking.freeze_panes == "A5" and ranking["A4"].font.bold
    cases = book["案件明细"]
    assert cases.freeze_panes == "A2"
    rows = {cases.cell(row=r, column=1).value: cases.cell(row=r, column=4) for r in range(2, cases.max_row + 1)}
    cell = rows[case.reference]
    assert isinstance(cell.value, datetime) and cell.number_format == "yyyy-mm-dd hh:mm"
    assert cell.value == timezone.localtime(case.submitted_at).replace(tzinfo=None, microsecond=0)
