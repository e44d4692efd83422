"""Merge (DESIGN.md §3): a duplicate registered message joins its main case and follows its reply.

Decision: the duplicate is archived at once (closing reason "重复留言,并入主案件 …", linked by
``merged_into``); when the main case's reply is published, each merged case receives the same
text, time and its own platform as the place to post it, and a "随主案件答复" event.
"""

from django.core.exceptions import PermissionDenied
from django.urls import reverse
import pytest

from casework import joint, services
from casework.models import State


def act_url(case, action):
    return reverse("admin:casework_case_act", args=[case.pk, action])


def test_duplicate_is_archived_into_the_main_case_and_follows_its_reply(bureau):
    main = bureau.case_in(State.HANDLING)
    duplicate = bureau.case_in(State.REGISTERED, subject="重复:户口迁移咨询")

    merged = joint.case_merge(case=duplicate, into=main, acting_user=bureau.dispatcher, reason="同一网民重复提交")

    assert (merged.state, merged.merged_into) == (State.ARCHIVED, main)
    assert main.reference in merged.closing_reason
    assert merged.events.order_by("-seq").first().action == "merge"
    assert main.events.order_by("-seq").first().action == "merge_in"

    services.draft_save(case=main, acting_user=bureau.handler_a, handling_report="已核实", reply_text="您好,材料如下。")
    services.case_submit_feedback(case=main, acting_user=bureau.handler_a)
    services.case_office_approve(case=main, acting_user=bureau.reviewer)
    services.case_leader_approve(case=main, acting_user=bureau.leader)
    services.case_publish_reply(case=main, acting_user=bureau.dispatcher, where="问政西地省")

    merged.refresh_from_db()
    assert merged.published_reply == "您好,材料如下。"
    assert merged.published_where == merged.platform.name
    assert merged.events.order_by("-seq").first().action == "merged_reply"


def test_merge_through_the_admin_accepts_a_full_width_reference(client, bureau):
    main = bureau.case_in(State.DISPATCHED)
    duplicate = bureau.case_in(State.REGISTERED)
    full_width = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in main.reference)
    client.force_login(bureau.dispatcher)

    client.post(act_url(duplicate, "merge"), {"main_reference": full_width})

    duplicate.refresh_from_db()
    assert duplicate.merged_into == main


@pytest.mark.parametrize(
    ("dup_state", "main_state", "message"),
    [
        (State.DISPATCHED, State.HANDLING, "只有待交办的留言"),
        (State.REGISTERED, State.ARCHIVED, "主案件已归档"),
    ],
)
def test_merge_refusals_by_state(bureau, dup_state, main_state, message):
    duplicate = bureau.case_in(dup_state)
    main = bureau.case_in(main_state)
    with pytest.raises(services.TransitionRefused, match=message):
        joint.case_merge(case=duplicate, into=main, acting_user=bureau.dispatcher)
    duplicate.refresh_from_db()
    assert duplicate.state == dup_state and duplicate.merged_into is None


def test_merge_into_itself_into_a_merged_case_or_by_a_handler_is_refused(bureau):
    a = bureau.case_in(State.REGISTERED)
    b = bureau.case_in(State.REGISTERED)
    main = bureau.case_in(State.HANDLING)
    with pytest.raises(services.TransitionRefused, match="它自己"):
        joint.case_merge(case=a, into=a, acting_user=bureau.dispatcher)
    joint.case_merge(case=b, into=main, acting_user=bureau.dispatcher)
    with pytest.raises(services.TransitionRefused, match="本身已被合并"):
        joint.case_merge(case=a, into=b, acting_user=bureau.dispatcher)
    with pytest.raises(PermissionDenied):
        joint.case_merge(case=a, into=main, acting_user=bureau.handler_a)
    a.refresh_from_db()
    assert a.state == State.REGISTERED


def test_unknown_main_reference_in_the_admin_changes_nothing(client, bureau):
    duplicate = bureau.case_in(State.REGISTERED)
    client.force_login(bureau.dispatcher)
    response = client.post(act_url(duplicate, "merge"), {"main_reference": "WZ-2026-999999"}, follow=True)
    assert "找不到该编号的主案件" in response.content.decode()
    duplicate.refresh_from_db()
    assert duplicate.state == State.REGISTERED
