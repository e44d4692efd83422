"""The case page keeps what people type and shows the reviewers' word (issue 8 §1–2, issue 10 §4, §6).

- Every form of the case page, refused (invalid input, stale page, condition not met, wrong
  state), comes back with what was typed in it (``casework.kept_input``); a test walks every form
  the page can show and fails on a form it does not know.
- 提交反馈 sends the typed draft with it: saving and submitting are one step.
- The publish form has no text to edit: it publishes the signed version; 发布前修改 is its own form.
- The signature panel names the draft version and the opinion of each tier and the publication;
  the latest reviewer's opinion or send-back reason is at the top of the page.
- The 回访 form has no preset rating; the rating shows on the case page and in the exports.
- Archive, 不予受理, merge and bulk archive ask for confirmation.
"""

import csv
import io
import re

from django.contrib.messages import get_messages
from django.urls import reverse
from openpyxl import load_workbook
import pytest

from casework import export, joint, quality, services
from casework.models import Case, FollowUp, State
from tests.test_publish_versions import EXACT, signed_case

CHANGELIST = "admin:casework_case_changelist"


def change_url(case):
    return reverse("admin:casework_case_change", args=[case.pk])


def act_url(case, action):
    return reverse("admin:casework_case_act", args=[case.pk, action])


def errors_of(response):
    return [str(m) for m in get_messages(response.wsgi_request) if m.level_tag == "error"]


def forms_of(html):
    """{form id: form html} of the case page's action forms."""
    return {m.group(1): m.group(0) for m in re.finditer(r'<form[^>]*id="cw-form-([a-z_\-0-9]+)".*?</form>', html, re.S)}


# ---------------------------------------------------------------- every form keeps its input


def _handling(bureau):
    return bureau.case_in(State.HANDLING), bureau.handler_a


def _with_co_unit(bureau):
    case = bureau.case_in(State.HANDLING)
    joint.co_unit_assign(case=case, acting_user=bureau.dispatcher, unit=bureau.unit_b, task="协查", working_days=3)
    return Case.objects.get(pk=case.pk)


def _with_extension(bureau):
    case = bureau.case_in(State.HANDLING)
    extension = joint.extension_request(case=case, acting_user=bureau.handler_a, reason="材料多", working_days=2)
    return Case.objects.get(pk=case.pk), extension


def _returned(bureau):
    case = bureau.case_in(State.DISPATCHED)
    return services.case_return_to_office(case=case, acting_user=bureau.handler_a, reason="非本单位辖区")


def _replied(bureau):
    case = signed_case(bureau)
    return services.case_publish_reply(case=case, acting_user=bureau.dispatcher, where="问政西地省")


def scenario(bureau, action):
    """Return (case, user, POST data with the typed marker) for a refused ``action``."""
    m = f"输入不丢·{action}"
    if action == "dispatch":
        return bureau.case_in(State.REGISTERED), bureau.dispatcher, {"note": m}  # no unit chosen
    if action == "set_type":  # the same type again: refused (nothing to correct)
        case = bureau.case_in(State.HANDLING)
        return case, bureau.dispatcher, {"message_type": case.message_type, "reason": m,
                                         "lock_version": case.lock_version}
    if action == "reject_invalid":
        return bureau.case_in(State.REGISTERED), bureau.dispatcher, {"reason": m, "expected_state": "dispatched"}
    if action == "merge":
        return bureau.case_in(State.REGISTERED), bureau.dispatcher, {"main_reference": "JB-0000-000000",
                                                                      "reason": m}
    if action == "arbitrate_return":
        return _returned(bureau), bureau.dispatcher, {"decision": "send_back", "ruling": m,
                                                      "expected_state": "dispatched"}
    if action == "return_to_office":
        return bureau.case_in(State.DISPATCHED), bureau.handler_a, {"reason": m, "expected_state": "registered"}
    if action == "save_draft":
        case, user = _handling(bureau)
        return case, user, {"handling_report": "", "reply_text": m, "lock_version": case.lock_version}
    if action == "accept_and_submit":  # the report is missing: nothing is signed for, the reply is kept
        case = bureau.case_in(State.DISPATCHED)
        return case, bureau.handler_a, {"handling_report": "", "reply_text": m, "lock_version": case.lock_version,
                                        "expected_state": "dispatched"}
    if action == "submit_feedback":
        case = _with_co_unit(bureau)  # the co-unit has not reported: the submission is refused
        return case, bureau.handler_a, {"handling_report": "已核实", "measures": "限期整改", "reply_text": m,
                                        "lock_version": case.lock_version, "expected_state": "handling"}
    if action == "assign_co_unit":
        case, _user = _handling(bureau)
        return case, bureau.dispatcher, {"unit": bureau.unit_b.pk, "task": m, "working_days": 0}
    if action == "co_unit_report":
        return _with_co_unit(bureau), bureau.handler_b, {"report": m}  # no task id
    if action == "request_extension":
        case, user = _handling(bureau)
        return case, user, {"clock": "reply", "working_days": 0, "reason": m}
    if action == "decide_extension":
        case, extension = _with_extension(bureau)
        return case, bureau.dispatcher, {"extension_id": extension.pk, "decision": "maybe", "note": m}
    if action in ("office_approve", "office_send_back"):
        field = "opinion" if action == "office_approve" else "reason"
        return bureau.case_in(State.OFFICE_REVIEW), bureau.reviewer, {field: m, "expected_state": "handling"}
    if action in ("leader_approve", "leader_send_back"):
        field = "opinion" if action == "leader_approve" else "reason"
        return bureau.case_in(State.LEADER_REVIEW), bureau.leader, {field: m, "expected_state": "handling"}
    if action == "publish_reply":
        return signed_case(bureau), bureau.dispatcher, {"where": m, "draft_id": 987654,
                                                        "expected_state": "approved"}
    if action == "revise_after_sign_off":
        return signed_case(bureau), bureau.dispatcher, {"reply_text": m, "reason": "",
                                                        "expected_state": "approved"}
    if action == "record_follow_up":
        return _replied(bureau), bureau.dispatcher, {"result": "", "rectification": "not_needed", "note": m}
    if action in ("reopen", "archive"):
        return _replied(bureau), bureau.dispatcher, {"reason": m, "expected_state": "archived"}
    # issue 13: the 督办与问责 panel
    if action == "open_notice":
        return bureau.case_in(State.HANDLING), bureau.leader, {"content": m, "answer_days": "0"}
    if action == "refer_poor_handling":
        return bureau.case_in(State.HANDLING), bureau.leader, {"poor_reason": "", "statement": m}
    if action == "decide_proposal":
        return _proposed(bureau), bureau.dispatcher, {"decision": "maybe", "note": m}
    raise KeyError(action)


def _proposed(bureau):
    case = _replied(bureau)
    services.case_record_follow_up(case=case, acting_user=bureau.dispatcher, result="unsatisfied", reply_untrue=True)
    quality.quality_sweep()
    return case


KEPT = ["dispatch", "reject_invalid", "merge", "arbitrate_return", "return_to_office", "save_draft",
        "submit_feedback", "assign_co_unit", "co_unit_report", "request_extension", "decide_extension",
        "office_approve", "office_send_back", "leader_approve", "leader_send_back", "publish_reply",
        "revise_after_sign_off", "record_follow_up", "reopen", "archive", "set_type",
        "open_notice", "refer_poor_handling", "decide_proposal", "accept_and_submit"]
# Forms with nothing to type (a button, a choice of leader).
NOTHING_TYPED = {"accept", "mark_key_case"}


@pytest.mark.parametrize("action", KEPT)
def test_a_refused_form_comes_back_with_what_was_typed_in_it(client, bureau, action):
    case, user, data = scenario(bureau, action)
    marker = f"输入不丢·{action}"
    events = case.events.count()
    client.force_login(user)

    response = client.post(act_url(case, action), data)

    assert response.status_code == 302
    assert errors_of(response), action
    assert Case.objects.get(pk=case.pk).events.count() == events  # refused: nothing written
    page = client.get(change_url(case)).content.decode()
    form_html = "".join(html for form_id, html in forms_of(page).items() if marker in html)
    assert form_html, f"{action}: the typed text is not back in a form"
    # Once back, it is not kept any longer.
    assert marker not in client.get(change_url(case)).content.decode()


def test_every_form_of_the_case_page_is_covered_by_the_kept_input_test(client, bureau):
    """Walk every state and role (and the special panels) and collect the actions of the page's forms."""
    pages = []
    for state in State.values:
        case = bureau.case_in(state)
        for role in ("dispatcher", "reviewer", "leader", "handler_a", "handler_b", "supervisor"):
            pages.append((case, getattr(bureau, role)))
    pages += [(_with_co_unit(bureau), bureau.handler_b), (_with_extension(bureau)[0], bureau.dispatcher),
              (_returned(bureau), bureau.dispatcher), (_replied(bureau), bureau.dispatcher),
              (_proposed(bureau), bureau.dispatcher)]
    seen = set()
    for case, user in pages:
        client.force_login(user)
        response = client.get(change_url(case))
        if response.status_code == 200:
            page = response.content.decode()
            seen |= set(re.findall(r'/act/([a-z_]+)/', page))

    assert seen - NOTHING_TYPED <= set(KEPT), seen - NOTHING_TYPED - set(KEPT)
    assert set(KEPT) <= seen, set(KEPT) - seen


# ---------------------------------------------------------------- 提交反馈 without 保存


def test_submit_feedback_is_a_button_of_the_draft_form_and_sends_the_typed_draft(client, bureau):
    case = bureau.case_in(State.HANDLING)
    client.force_login(bureau.handler_a)
    page = client.get(change_url(case)).content.decode()
    draft_form = forms_of(page)["draft"]
    assert 'formaction="%s"' % act_url(case, "submit_feedback") in draft_form
    assert 'id="cw-form-submit_feedback"' in draft_form

    response = client.post(act_url(case, "submit_feedback"), {
        "expected_state": "handling", "lock_version": case.lock_version, "handling_report": "已现场核实",
        "policy_basis": "", "measures": "", "reply_text": "网友您好!已处理。"})

    assert response.status_code == 302 and not errors_of(response)
    case.refresh_from_db()
    assert case.state == State.OFFICE_REVIEW
    assert case.drafts.get().reply_text == "网友您好!已处理。"


# ---------------------------------------------------------------- publishing from the page


def test_the_publish_form_has_no_text_to_edit_and_publishes_the_signed_version(client, bureau):
    case = signed_case(bureau)
    client.force_login(bureau.dispatcher)
    page = client.get(change_url(case)).content.decode()
    publish = forms_of(page)["publish"]
    assert 'name="text"' not in publish and "<textarea" not in publish
    assert "答复草稿第 1 版" in publish
    assert 'id="cw-form-revise"' in page  # the change after sign-off is a form of its own

    # A forged text field is not read: the signed text is published.
    response = client.post(act_url(case, "publish_reply"), {
        "expected_state": "approved", "where": "问政西地省", "draft_id": case.drafts.get().pk,
        "text": "私自改动的答复"})

    assert not errors_of(response)
    assert Case.objects.get(pk=case.pk).published_reply == EXACT


def test_revise_after_sign_off_through_the_page(client, bureau):
    case = signed_case(bureau)
    client.force_login(bureau.dispatcher)

    response = client.post(act_url(case, "revise_after_sign_off"), {
        "expected_state": "approved", "lock_version": case.lock_version, "reply_text": "改后的答复。",
        "reason": "措辞调整"})

    assert not errors_of(response)
    case.refresh_from_db()
    assert case.state == State.OFFICE_REVIEW
    assert case.drafts.order_by("-version").first().reply_text == "改后的答复。"


def test_signature_panel_names_versions_opinions_and_the_publication(client, bureau):
    case = _replied(bureau)
    client.force_login(bureau.handler_a)

    page = client.get(change_url(case)).content.decode()

    panel = page[page.index('id="cw-signatures"'):]
    panel = panel[:panel.index("</table>")]
    assert panel.count("答复草稿第 1 版") == 4  # three tiers and the publication
    assert "同意报审。" in panel and "同意发布。" in panel
    assert "第 1 次发布" in panel


def test_the_latest_reviewer_opinion_is_at_the_top_of_the_handlers_page(client, bureau):
    case = bureau.case_in(State.LEADER_REVIEW)
    services.case_leader_send_back(case=case, acting_user=bureau.leader, reason="请写明整改时限<b>!</b>")
    client.force_login(bureau.handler_a)

    page = client.get(change_url(case)).content.decode()

    assert 0 < page.index('id="cw-latest-opinion"') < page.index('id="cw-message"')
    top = page[page.index('id="cw-latest-opinion"'):page.index('id="cw-message"')]
    assert "请写明整改时限&lt;b&gt;!&lt;/b&gt;" in top  # shown as text
    assert "分管局领导发回" in top and str(bureau.leader) in top


def test_each_button_sits_in_its_own_form_with_its_own_input(client, bureau):
    case = bureau.case_in(State.LEADER_REVIEW)
    client.force_login(bureau.leader)

    forms = forms_of(client.get(change_url(case)).content.decode())

    approve, send_back = forms["leader_approve"], forms["leader_send_back"]
    assert approve.count('type="submit"') == 1 and send_back.count('type="submit"') == 1
    assert 'name="opinion"' in approve and 'name="reason"' not in approve
    assert 'name="reason"' in send_back and "required" in send_back
    assert "审签意见" in approve and "理由(必填)" in send_back


# ---------------------------------------------------------------- follow-up, rating, archive, confirmations


def test_the_follow_up_form_presets_no_rating_and_the_rating_is_shown_and_exported(client, bureau):
    case = _replied(bureau)
    client.force_login(bureau.dispatcher)
    form = forms_of(client.get(change_url(case)).content.decode())["follow-up"]
    assert re.search(r'<option value="" selected>', form)
    assert not re.search(r'<option value="satisfied" selected>', form)

    response = client.post(act_url(case, "record_follow_up"), {
        "expected_state": "replied", "result": "basically_satisfied", "rectification": "done", "note": ""})
    assert not errors_of(response)

    page = client.get(change_url(case)).content.decode()
    assert re.search(r'id="cw-rating">回访结果:基本满意', page)
    rows = list(csv.reader(io.StringIO(export.cases_export_csv(user=bureau.dispatcher).decode("utf-8-sig"))))
    header, row = rows[0], next(r for r in rows[1:] if r[0] == case.reference)
    assert (row[header.index("回访结果")], row[header.index("整改情况")]) == ("基本满意", "已整改")
    sheet = load_workbook(io.BytesIO(export.cases_export_xlsx(user=bureau.dispatcher))).active
    values = [[c.value for c in r] for r in sheet.iter_rows()]
    xrow = next(r for r in values[1:] if r[0] == case.reference)
    assert xrow[values[0].index("回访结果")] == "基本满意"


def test_archive_without_follow_up_through_the_page_needs_the_reason(client, bureau):
    case = _replied(bureau)
    client.force_login(bureau.dispatcher)
    archive = forms_of(client.get(change_url(case)).content.decode())["archive"]
    assert 'name="reason"' in archive and "未回访时必填" in archive

    refused = client.post(act_url(case, "archive"), {"expected_state": "replied", "reason": ""})
    assert any("尚未回访" in m for m in errors_of(refused))
    client.get(change_url(case))  # the page shows (and so consumes) the refusal message
    done = client.post(act_url(case, "archive"), {"expected_state": "replied", "reason": "网民已在平台确认"})

    assert not errors_of(done)
    event = Case.objects.get(pk=case.pk).events.order_by("-seq").first()
    assert (event.action, event.reason) == ("archive", "网民已在平台确认")


@pytest.mark.parametrize(("state", "form_id"), [(State.REPLIED, "archive"), (State.REGISTERED, "reject_invalid"),
                                                (State.REGISTERED, "merge")])
def test_destructive_actions_ask_for_confirmation(client, bureau, state, form_id):
    case = _replied(bureau) if state == State.REPLIED else bureau.case_in(state)
    client.force_login(bureau.dispatcher)

    page = client.get(change_url(case)).content.decode()

    assert re.search(r'data-confirm="确认[^"]+"', forms_of(page)[form_id])
    assert "casework/case_page.js" in page


def test_bulk_archive_asks_first_and_needs_a_reason_for_cases_without_follow_up(client, bureau):
    followed, unfollowed = _replied(bureau), _replied(bureau)
    services.case_record_follow_up(case=followed, acting_user=bureau.dispatcher, result=FollowUp.Result.SATISFIED)
    ids = [followed.pk, unfollowed.pk]
    client.force_login(bureau.dispatcher)

    page = client.post(reverse(CHANGELIST), {"action": "bulk_archive", "_selected_action": ids})

    assert page.status_code == 200
    html = page.content.decode()
    assert "确认归档所选案件" in html and 'name="confirm" value="yes"' in html
    assert html.count("本轮尚未回访") == 2  # the row mark and the reason's label
    assert set(Case.objects.filter(pk__in=ids).values_list("state", flat=True)) == {State.REPLIED}

    client.post(reverse(CHANGELIST), {"action": "bulk_archive", "_selected_action": ids, "confirm": "yes"})
    states = dict(Case.objects.filter(pk__in=ids).values_list("pk", "state"))
    assert states == {followed.pk: State.ARCHIVED, unfollowed.pk: State.REPLIED}

    client.post(reverse(CHANGELIST), {"action": "bulk_archive", "_selected_action": [unfollowed.pk],
                                      "confirm": "yes", "reason": "网民失联,已在平台公开答复"})
    assert Case.objects.get(pk=unfollowed.pk).state == State.ARCHIVED
    assert Case.objects.get(pk=unfollowed.pk).events.order_by("-seq").first().reason == "网民失联,已在平台公开答复"


def test_sign_for_and_submit_in_one_step_and_follow_up_with_archive(client, bureau):
    """The walk's shortcuts (issue 10 Done means): 签收并提交反馈 and 记录回访并归档, each one request."""
    case = bureau.case_in(State.DISPATCHED)
    client.force_login(bureau.handler_a)
    page = client.get(change_url(case)).content.decode()
    assert 'id="cw-accept-and-submit"' in forms_of(page)["draft"]
    response = client.post(act_url(case, "accept_and_submit"), {
        "expected_state": "dispatched", "lock_version": case.lock_version, "handling_report": "已当场核实",
        "policy_basis": "", "measures": "", "reply_text": "网友您好!已办结。"})
    assert response.status_code == 302 and not errors_of(response)
    case.refresh_from_db()
    assert case.state == State.OFFICE_REVIEW and case.drafts.get().reply_text == "网友您好!已办结。"
    assert list(case.events.values_list("action", flat=True))[-3:] == ["accept", "draft_saved", "submit_feedback"]

    replied = _replied(bureau)
    client.force_login(bureau.dispatcher)
    form = forms_of(client.get(change_url(replied)).content.decode())["follow-up"]
    assert 'name="_archive"' in form and "data-confirm" in form
    response = client.post(act_url(replied, "record_follow_up"), {
        "expected_state": "replied", "result": "satisfied", "rectification": "not_needed", "note": "",
        "_archive": "1"})
    assert not errors_of(response)
    replied.refresh_from_db()
    assert replied.state == State.ARCHIVED and replied.follow_ups.count() == 1
