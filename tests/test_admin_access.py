"""The staff admin and the one access rule (DESIGN.md §1, §8): what each role lists, opens and may press.

The admin is an interface only; these tests drive it through the test client as each role and check
that the list, the case page, the buttons and the action endpoint all follow
:func:`casework.selectors.cases_visible_to` and the transition services.
"""

import re

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
import pytest

from casework.models import Case, State

CHANGELIST = "admin:casework_case_changelist"


def change_url(case):
    return reverse("admin:casework_case_change", args=[case.pk])


def act_url(case, action):
    return reverse("admin:casework_case_act", args=[case.pk, action])


def listed_pks(client, **params):
    response = client.get(reverse(CHANGELIST), params)
    assert response.status_code == 200
    return {case.pk for case in response.context["cl"].result_list}


def buttons_on(client, case):
    response = client.get(change_url(case))
    assert response.status_code == 200
    return set(re.findall(r'id="cw-form-([a-z_-]+)"', response.content.decode()))


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def case_logentries(case):
    return LogEntry.objects.filter(object_id=str(case.pk), content_type__model="case")


@pytest.fixture
def cases(bureau):
    """One case of each kind: unregistered, unit A at two stages, unit B."""
    return {
        "registered": bureau.case_in(State.REGISTERED),
        "a_dispatched": bureau.case_in(State.DISPATCHED),
        "a_leader_review": bureau.case_in(State.LEADER_REVIEW),
        "b_handling": bureau.case_in(State.HANDLING, unit=bureau.unit_b, subject="岳塘区路灯损坏"),
    }


# ---------------------------------------------------------------- list and open


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("handler_a", {"a_dispatched", "a_leader_review"}),
        ("handler_b", {"b_handling"}),
        ("dispatcher", {"registered", "a_dispatched", "a_leader_review", "b_handling"}),
        ("reviewer", {"registered", "a_dispatched", "a_leader_review", "b_handling"}),
        ("leader", {"registered", "a_dispatched", "a_leader_review", "b_handling"}),
        ("supervisor", {"registered", "a_dispatched", "a_leader_review", "b_handling"}),
    ],
)
def test_each_role_lists_and_opens_only_the_cases_of_its_units(client, bureau, cases, role, expected):
    client.force_login(getattr(bureau, role))

    assert listed_pks(client) == {cases[k].pk for k in expected}
    for key, case in cases.items():
        assert client.get(change_url(case)).status_code == (200 if key in expected else 404)


def test_search_never_finds_a_case_of_another_unit(client, bureau, cases):
    client.force_login(bureau.handler_a)

    assert listed_pks(client, q=cases["b_handling"].subject) == set()
    assert listed_pks(client, q=cases["b_handling"].reference) == set()
    assert listed_pks(client, q=cases["a_dispatched"].reference) == {cases["a_dispatched"].pk}


def test_unit_filter_offers_only_units_in_scope(client, bureau, cases):
    client.force_login(bureau.handler_a)

    response = client.get(reverse(CHANGELIST))

    content = response.content.decode()
    assert bureau.unit_a.name in content
    assert bureau.unit_b.name not in content


def test_member_without_a_role_cannot_open_the_case_list(client, bureau, cases):
    client.force_login(bureau.head_a)

    assert client.get(reverse(CHANGELIST)).status_code == 403
    assert client.get(change_url(cases["a_dispatched"])).status_code == 403


def test_superuser_lists_and_opens_every_case(client, bureau, cases, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@bureau.invalid", "pw")
    client.force_login(root)

    assert listed_pks(client) == {c.pk for c in cases.values()}
    assert client.get(change_url(cases["b_handling"])).status_code == 200


def test_changelist_query_count_does_not_grow_with_the_page(client, bureau):
    client.force_login(bureau.handler_a)
    for _ in range(5):
        bureau.case_in(State.DISPATCHED)
    with CaptureQueriesContext(connection) as small:
        assert len(listed_pks(client)) == 5
    for _ in range(35):
        bureau.case_in(State.DISPATCHED)

    with CaptureQueriesContext(connection) as large:
        assert len(listed_pks(client)) == 40

    assert len(large.captured_queries) == len(small.captured_queries)
    assert len(large.captured_queries) <= 15


def test_case_page_query_count_does_not_grow_with_its_history(client, bureau):
    client.force_login(bureau.dispatcher)
    short = bureau.case_in(State.DISPATCHED)
    long = bureau.case_in(State.REPLIED)
    with CaptureQueriesContext(connection) as few_events:
        client.get(change_url(short))

    with CaptureQueriesContext(connection) as many_events:
        client.get(change_url(long))

    # The replied case shows the follow-up form and a draft; its 8 events add no queries.
    assert len(many_events.captured_queries) <= len(few_events.captured_queries) + 3


# ---------------------------------------------------------------- buttons per role

BUTTONS = [
    # (state, role, the action forms the case page offers)
    # 督办单 by hand on any active case, 办理不力 referral on any dispatched case (issue 13), to the
    # 网评办 and the leaders; a dispatched handler may sign for and submit at once (draft, issue 10).
    (State.REGISTERED, "dispatcher", {"dispatch", "reject_invalid", "merge", "mark_key_case"}),
    (State.REGISTERED, "reviewer", set()),
    (State.DISPATCHED, "handler_a", {"accept", "draft", "return_to_office", "request_extension"}),
    (State.DISPATCHED, "dispatcher", {"assign_co_unit", "mark_key_case", "set_type", "open_notice", "refer_poor_handling"}),
    (State.HANDLING, "handler_a", {"draft", "submit_feedback", "request_extension"}),
    (State.HANDLING, "reviewer", {"open_notice", "refer_poor_handling"}),
    (State.OFFICE_REVIEW, "reviewer", {"office_approve", "office_send_back", "open_notice", "refer_poor_handling"}),
    (State.OFFICE_REVIEW, "handler_a", set()),
    (State.LEADER_REVIEW, "leader", {"leader_approve", "leader_send_back", "mark_key_case", "open_notice", "refer_poor_handling"}),
    (State.LEADER_REVIEW, "reviewer", {"open_notice", "refer_poor_handling"}),
    (State.LEADER_REVIEW, "handler_a", set()),
    (State.APPROVED, "dispatcher", {"publish", "revise", "set_type", "open_notice", "refer_poor_handling"}),
    (State.APPROVED, "leader", {"open_notice", "refer_poor_handling"}),
    (State.REPLIED, "dispatcher", {"follow-up", "reopen", "archive", "refer_poor_handling"}),
    (State.REPLIED, "handler_a", set()),
    (State.REPLIED, "supervisor", set()),
    (State.ARCHIVED, "dispatcher", set()),
]


@pytest.mark.parametrize(("state", "role", "expected"), BUTTONS)
def test_case_page_offers_exactly_the_actions_of_the_role(client, bureau, state, role, expected):
    case = bureau.case_in(state)
    client.force_login(getattr(bureau, role))

    assert buttons_on(client, case) == expected


def test_case_page_sends_the_loaded_state_with_every_action(client, bureau):
    case = bureau.case_in(State.LEADER_REVIEW)
    client.force_login(bureau.leader)

    content = client.get(change_url(case)).content.decode()

    assert content.count('name="expected_state" value="leader_review"') == 2


# ---------------------------------------------------------------- acting through the admin


def test_handler_signs_for_a_case_through_the_admin(client, bureau):
    case = bureau.case_in(State.DISPATCHED)
    client.force_login(bureau.handler_a)

    response = client.post(act_url(case, "accept"), {"expected_state": State.DISPATCHED})

    assert response.status_code == 302
    assert response["Location"] == change_url(case)
    case.refresh_from_db()
    assert case.state == State.HANDLING
    event = case.events.order_by("-seq").first()
    assert (event.action, event.actor) == ("accept", bureau.handler_a)
    entries = list(case_logentries(case))
    assert len(entries) == 1
    assert (entries[0].action_flag, entries[0].user) == (CHANGE, bureau.handler_a)
    assert any("承办中" in m for m in messages_of(response))


def test_whole_loop_can_be_walked_through_the_admin(client, bureau):
    case = bureau.case_in(State.REGISTERED)

    def act(user, action, **data):
        client.force_login(user)
        current = Case.objects.get(pk=case.pk).state
        response = client.post(act_url(case, action), {"expected_state": current, **data})
        assert response.status_code == 302, action
        errors = [m for m in get_messages(response.wsgi_request) if m.level_tag == "error"]
        assert not errors, (action, [str(m) for m in errors])

    act(bureau.dispatcher, "dispatch", unit=bureau.unit_a.pk, note="请按时办理")
    act(bureau.handler_a, "accept")
    act(bureau.handler_a, "save_draft", handling_report="已核实", reply_text="您好,答复如下。")
    act(bureau.handler_a, "submit_feedback")
    act(bureau.reviewer, "office_send_back", reason="补充政策依据")
    act(bureau.handler_a, "save_draft", handling_report="已核实", policy_basis="《户口登记条例》",
        reply_text="您好,答复如下。")
    act(bureau.handler_a, "submit_feedback")
    act(bureau.reviewer, "office_approve")
    act(bureau.leader, "leader_approve")
    act(bureau.dispatcher, "publish_reply", where="问政西地省", text="您好,答复如下。")
    act(bureau.dispatcher, "record_follow_up", result="satisfied", rectification="not_needed", note="")
    act(bureau.dispatcher, "archive")

    case.refresh_from_db()
    assert case.state == State.ARCHIVED
    assert case.published_reply == "您好,答复如下。"
    assert list(case.events.order_by("seq").values_list("action", flat=True)) == [
        "register", "dispatch", "accept", "draft_saved", "submit_feedback", "office_send_back",
        "draft_saved", "submit_feedback", "office_approve", "leader_approve", "publish_reply",
        "record_follow_up", "archive",
    ]
    # One admin LogEntry per transition (buttons and forms alike); saving a draft is not one.
    assert case_logentries(case).count() == 10


def test_forged_transition_post_without_the_permission_is_refused(client, bureau):
    case = bureau.case_in(State.LEADER_REVIEW)
    events = case.events.count()
    client.force_login(bureau.handler_a)

    response = client.post(act_url(case, "leader_approve"), {"expected_state": State.LEADER_REVIEW})

    assert response.status_code == 302
    assert "您没有对该案件执行此操作的权限。" in messages_of(response)
    case.refresh_from_db()
    assert case.state == State.LEADER_REVIEW
    assert case.events.count() == events
    assert not case_logentries(case).exists()


def test_missing_reason_through_the_admin_is_refused(client, bureau):
    case = bureau.case_in(State.LEADER_REVIEW)
    client.force_login(bureau.leader)

    response = client.post(act_url(case, "leader_send_back"),
                           {"expected_state": State.LEADER_REVIEW, "reason": "  "})

    assert "必须填写理由。" in messages_of(response)
    assert Case.objects.get(pk=case.pk).state == State.LEADER_REVIEW


def test_action_on_a_case_of_another_unit_is_not_found(client, bureau):
    case = bureau.case_in(State.DISPATCHED, unit=bureau.unit_b)
    client.force_login(bureau.handler_a)

    response = client.post(act_url(case, "accept"), {"expected_state": State.DISPATCHED})

    assert response.status_code == 404
    assert Case.objects.get(pk=case.pk).state == State.DISPATCHED


def test_unknown_action_is_not_found_and_get_is_not_allowed(client, bureau):
    case = bureau.case_in(State.DISPATCHED)
    client.force_login(bureau.handler_a)

    assert client.post(act_url(case, "delete"), {}).status_code == 404
    assert client.get(act_url(case, "accept")).status_code == 405
    assert Case.objects.get(pk=case.pk).state == State.DISPATCHED


def test_stale_page_gets_a_reload_message_not_an_error_page(client, bureau):
    case = bureau.case_in(State.DISPATCHED)
    client.force_login(bureau.handler_a)
    client.post(act_url(case, "accept"), {"expected_state": State.DISPATCHED})

    response = client.post(act_url(case, "return_to_office"),
                           {"expected_state": State.DISPATCHED, "reason": "非本单位辖区"})

    assert response.status_code == 302
    assert any("请刷新页面后再操作" in m for m in messages_of(response))
    case.refresh_from_db()
    assert case.state == State.HANDLING
    assert case_logentries(case).count() == 1
