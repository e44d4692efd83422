"""Issue 8 §2 on the case page: every form carries the case's version; a stale submit is refused.

Walks every form the case page shows, in every state and to each role that sees it (dispatch,
merge, key case, co-unit, co-unit report, draft, extension request and decision, arbitration,
publish, follow-up and every transition button): load the page, another user changes the case,
submit: refused with who and what, the case as the other user left it, the input back in the form.
"""

from django.db import transaction
from django.urls import reverse
import pytest

from accounts import roles
from casework import joint, quality, services
from casework.models import Case, FollowUp, State
from tests.factories import make_user
from tests.stale_helpers import form_action, form_ids, read_form, row_values

REFUSED = "在您打开页面后已有变化"
TYPED = "我在页面上写的内容"


@pytest.fixture
def other(bureau):
    user = make_user("han", role=roles.DISPATCHER, unit=bureau.office, city_wide=bureau.city)
    user.full_name = "韩主任"
    user.save(update_fields=["full_name"])
    return user


def touch(case, by):
    """Another user's write to the case (an audited step that bumps its version)."""
    with transaction.atomic():
        locked = services.case_lock(case=case)
        services.event_append(case=locked, action="mark_key_case", actor=by, from_state=locked.state,
                              to_state=locked.state, payload={})
        services.case_touch(case=locked)


def _returned(bureau):
    case = bureau.case_in(State.DISPATCHED)
    return services.case_return_to_office(case=case, acting_user=bureau.handler_a, reason="不属本单位")


def _pending_extension(bureau):
    case = bureau.case_in(State.HANDLING)
    joint.extension_request(case=case, acting_user=bureau.handler_a, clock="reply", working_days=2, reason="需调查")
    return case


def _co_unit(bureau):
    case = bureau.case_in(State.HANDLING)
    joint.co_unit_assign(case=case, acting_user=bureau.dispatcher, unit=bureau.unit_b, task="核实", working_days=3)
    return case


def _proposed(bureau):
    case = bureau.case_in(State.REPLIED)
    services.case_record_follow_up(case=case, acting_user=bureau.dispatcher, result="unsatisfied", reply_untrue=True)
    quality.quality_sweep()
    return case


# (how the case is built, who looks at it)
SCENES = [
    (lambda b: b.case_in(State.REGISTERED), "dispatcher"),
    (lambda b: b.case_in(State.DISPATCHED), "handler_a"),
    (lambda b: b.case_in(State.HANDLING), "handler_a"),
    (lambda b: b.case_in(State.HANDLING), "dispatcher"),
    (lambda b: b.case_in(State.OFFICE_REVIEW), "reviewer"),
    (lambda b: b.case_in(State.LEADER_REVIEW), "leader"),
    (lambda b: b.case_in(State.APPROVED), "dispatcher"),
    (lambda b: b.case_in(State.REPLIED), "dispatcher"),
    (_returned, "dispatcher"),
    (_pending_extension, "dispatcher"),
    (_co_unit, "handler_b"),
    (_proposed, "dispatcher"),  # issue 13: a quality rung's proposed referral to decide
]

EXPECTED_FORMS = {
    "cw-form-dispatch", "cw-form-merge", "cw-form-mark_key_case", "cw-form-reject_invalid", "cw-form-accept",
    "cw-form-return_to_office", "cw-form-draft", "cw-form-request_extension",
    "cw-form-assign_co_unit", "cw-form-office_approve", "cw-form-office_send_back", "cw-form-leader_approve",
    "cw-form-leader_send_back", "cw-form-publish", "cw-form-follow-up", "cw-form-reopen", "cw-form-archive",
    "cw-form-arbitrate_return", "cw-form-decide_extension", "cw-form-co_unit_report",
    "cw-form-open_notice", "cw-form-refer_poor_handling", "cw-form-decide_proposal",  # issue 13
}


def _type_into(data, html, form_id):
    """The user's input: the first free-text field of the form gets TYPED."""
    for name in ("reason", "note", "report", "task", "handling_report", "text", "ruling", "main_reference",
                 "content", "statement"):
        if name in data:
            data[name] = [TYPED]
            return name
    return None


def test_every_form_of_the_case_page_refuses_a_stale_submit_and_keeps_the_input(client, bureau, other):
    seen = set()
    for build, who in SCENES:
        user = getattr(bureau, who)
        client.force_login(user)
        ids = form_ids(client.get(reverse("admin:casework_case_change", args=[build(bureau).pk])).content.decode(),
                       "cw-form-")
        for form_id in ids:
            case = build(bureau)  # a fresh case per form
            url = reverse("admin:casework_case_change", args=[case.pk])
            html = client.get(url).content.decode()
            if form_id not in html:  # ids carrying a row id (extension decisions)
                form_id = next(i for i in form_ids(html, form_id.rsplit("-", 1)[0]))
            data, _t = read_form(html, form_id)
            assert data.get("case_version"), f"{form_id} carries no case version"
            typed = _type_into(data, html, form_id)
            touch(case, other)
            before = row_values(case)
            response = client.post(form_action(html, form_id), data, follow=True)
            body = response.content.decode()
            assert response.status_code == 200, form_id
            assert REFUSED in body and "韩主任" in body and "标记重点难点" in body, (form_id, who)
            assert row_values(case) == before, form_id
            if typed:
                assert TYPED in body, form_id
            seen.add(form_id.rsplit("-", 1)[0] if form_id.startswith("cw-form-decide_extension") else form_id)
    assert EXPECTED_FORMS <= seen, sorted(EXPECTED_FORMS - seen)


def test_the_key_case_form_from_an_older_page_does_not_undo_a_newer_leader(client, bureau):
    case = bureau.case_in(State.HANDLING)
    url = reverse("admin:casework_case_change", args=[case.pk])
    client.force_login(bureau.dispatcher)
    html = client.get(url).content.decode()
    data, _t = read_form(html, "cw-form-mark_key_case")
    assert data["leader"] == [""]
    # Meanwhile the leader takes the case on himself.
    joint.case_mark_key(case=case, acting_user=bureau.leader, leader=bureau.leader)
    leader2 = make_user("leader2", role=roles.LEADER, unit=bureau.leadership, city_wide=bureau.city)
    response = client.post(form_action(html, "cw-form-mark_key_case"), {**data, "leader": [leader2.pk]},
                           follow=True)
    case.refresh_from_db()
    assert case.key_case_leader == bureau.leader
    body = response.content.decode()
    assert REFUSED in body and "标记重点难点" in body and bureau.leader.full_name in body
    kept, _t = read_form(body, "cw-form-mark_key_case")
    assert kept["leader"] == [str(leader2.pk)]
    # The page now carries the current version: submitting it again is a deliberate choice.
    client.post(form_action(body, "cw-form-mark_key_case"), kept)
    case.refresh_from_db()
    assert case.key_case_leader == leader2


def test_two_follow_ups_from_the_same_page_record_one_rating(client, bureau, other):
    case = bureau.case_in(State.REPLIED)
    url = reverse("admin:casework_case_change", args=[case.pk])
    first, second = client, type(client)()
    first.force_login(bureau.dispatcher)
    second.force_login(other)
    page1, page2 = first.get(url).content.decode(), second.get(url).content.decode()
    d1, _t = read_form(page1, "cw-form-follow-up")
    d2, _t = read_form(page2, "cw-form-follow-up")
    action = form_action(page1, "cw-form-follow-up")
    first.post(action, {**d1, "result": ["satisfied"], "note": ["很满意"]})
    body = second.post(action, {**d2, "result": ["unsatisfied"], "note": ["不满意:没有解决"]},
                       follow=True).content.decode()
    assert list(FollowUp.objects.filter(case=case).values_list("result", flat=True)) == ["satisfied"]
    assert REFUSED in body and "不满意:没有解决" in body and "回访" in body


def test_bulk_archive_leaves_out_a_case_that_got_an_unsatisfied_follow_up_since_listed(client, bureau, other):
    quiet, rated = bureau.case_in(State.REPLIED), bureau.case_in(State.REPLIED)
    url = reverse("admin:casework_case_changelist")
    client.force_login(bureau.dispatcher)
    data, _t = read_form(client.get(url).content.decode(), "changelist-form")
    services.case_record_follow_up(case=rated, acting_user=other, result="unsatisfied", note="没有解决")
    # The confirmation page's post (bulk archive confirms first), with the versions the list carried.
    response = client.post(url, {"action": "bulk_archive", "index": "0", "_selected_action": [quiet.pk, rated.pk],
                                 "_row_version": data["_row_version"], "confirm": "yes",
                                 "reason": "网民未接听,已办结"}, follow=True)
    body = response.content.decode()
    quiet.refresh_from_db()
    rated.refresh_from_db()
    assert quiet.state == State.ARCHIVED
    assert rated.state == State.REPLIED
    assert rated.reference in body and "韩主任" in body and "回访" in body and "未对其执行操作" in body


def test_a_case_selected_but_not_listed_is_not_acted_on(client, bureau):
    listed, hidden = bureau.case_in(State.REPLIED), bureau.case_in(State.REPLIED)
    url = reverse("admin:casework_case_changelist")
    client.force_login(bureau.dispatcher)
    data, _t = read_form(client.get(url).content.decode(), "changelist-form")
    versions = [v for v in data["_row_version"] if not v.startswith(f"{hidden.pk}:")]
    client.post(url, {"action": "bulk_archive", "index": "0", "_selected_action": [listed.pk, hidden.pk],
                      "_row_version": versions, "confirm": "yes", "reason": "网民未接听,已办结"})
    assert Case.objects.get(pk=listed.pk).state == State.ARCHIVED
    assert Case.objects.get(pk=hidden.pk).state == State.REPLIED
