"""What the leader signs is what is published, and what was published stays published (issue 8 §1).

A publish test per way of changing the reply's text: the unit's drafts (save, send-back and a new
version), a change after sign-off (发布前修改, back through tiers 2 and 3), a reopened case's second
reply, a merged duplicate following its main case, a draft added behind the leader's back, a
publisher trying to pass other text, and the demo walk (in ``test_demo``). Each publication is an
immutable ``PublishedReply`` row, and the publish event names the versions each tier signed.
"""

from django.core.exceptions import PermissionDenied
import pytest

from casework import joint, review, services
from casework.models import Case, FollowUp, PublishedReply, ReplyDraft, State

# Text with what a careless copy would lose: trailing blanks, a full-width comma, line breaks.
EXACT = "网友您好!\n  您反映的问题已收悉,经核实已处理。 \n感谢监督!\n"


def signed_case(bureau, text=EXACT, *, unit=None):
    """A unit-A case approved by all three tiers, its draft's reply being ``text``."""
    case = bureau.case_in(State.HANDLING, unit=unit)
    handler = bureau.handler_a if unit in (None, bureau.unit_a) else bureau.handler_b
    services.draft_save(case=case, acting_user=handler, handling_report="已核实", reply_text=text)
    services.case_submit_feedback(case=case, acting_user=handler)
    services.case_office_approve(case=case, acting_user=bureau.reviewer, opinion="同意报审。")
    services.case_leader_approve(case=case, acting_user=bureau.leader, opinion="同意发布。")
    return Case.objects.get(pk=case.pk)


def state_of(case):
    fresh = Case.objects.get(pk=case.pk)
    return fresh.state, fresh.events.count(), fresh.published_replies.count(), fresh.drafts.count()


def test_published_text_is_the_signed_draft_byte_for_byte_and_the_event_names_the_versions(bureau):
    case = signed_case(bureau)

    services.case_publish_reply(case=case, acting_user=bureau.dispatcher, where=" 问政西地省 ")

    case.refresh_from_db()
    draft = case.drafts.get()
    publication = case.published_replies.get()
    assert case.published_reply == EXACT == draft.reply_text
    assert publication.text.encode("utf-8") == EXACT.encode("utf-8")
    assert (publication.version, publication.round, publication.draft, publication.where) == (
        1, 1, draft, "问政西地省")
    event = case.events.get(action="publish_reply")
    assert publication.event == event
    assert event.payload["text"] == EXACT
    assert (event.payload["draft_id"], event.payload["draft_version"], event.payload["published_version"]) == (
        draft.pk, 1, 1)
    assert event.payload["signed_versions"] == {"submit_feedback": 1, "office_approve": 1, "leader_approve": 1}
    # Each approval recorded the draft it approved.
    for action in ("office_approve", "leader_approve"):
        payload = case.events.get(action=action).payload
        assert (payload["draft_id"], payload["version"]) == (draft.pk, 1)


@pytest.mark.parametrize("other", [EXACT.strip(), EXACT + " ", EXACT.replace("\n", "\r\n"), "完全不同的答复。"])
def test_publisher_passing_any_other_text_is_refused_and_nothing_is_written(bureau, other):
    case = signed_case(bureau)
    before = state_of(case)

    with pytest.raises(services.TransitionRefused, match="完全一致"):
        services.case_publish_reply(case=case, acting_user=bureau.dispatcher, where="问政西地省", text=other)

    assert state_of(case) == before


def test_publisher_passing_the_signed_text_itself_publishes_it(bureau):
    case = signed_case(bureau)

    services.case_publish_reply(case=case, acting_user=bureau.dispatcher, where="问政西地省", text=EXACT)

    assert Case.objects.get(pk=case.pk).published_reply == EXACT


def test_a_draft_the_leader_did_not_sign_is_never_published(bureau):
    case = signed_case(bureau)
    # A newer version appears behind the leader's back (any path that could add one).
    ReplyDraft.objects.create(case=case, round=1, version=2, handling_report="已核实",
                              reply_text="未经审签的答复。", author=bureau.dispatcher)
    before = state_of(case)

    with pytest.raises(services.TransitionRefused, match="第 2 版不是分管局领导审签的第 1 版"):
        services.case_publish_reply(case=case, acting_user=bureau.dispatcher, where="问政西地省")

    assert state_of(case) == before


def test_a_publish_page_showing_another_draft_is_refused_as_stale(bureau):
    case = signed_case(bureau)
    draft = case.drafts.get()

    with pytest.raises(services.CaseConflict):
        services.case_publish_reply(case=case, acting_user=bureau.dispatcher, where="问政西地省",
                                    expected_draft_id=draft.pk + 1000)

    assert Case.objects.get(pk=case.pk).state == State.APPROVED


def test_a_reply_with_a_phone_number_is_refused_even_when_signed(bureau):
    case = signed_case(bureau, text="您好,请致电13812345678咨询。")
    before = state_of(case)

    with pytest.raises(services.TransitionRefused, match="电话或身份证号码"):
        services.case_publish_reply(case=case, acting_user=bureau.dispatcher, where="问政西地省")

    assert state_of(case) == before


# ---------------------------------------------------------------- a change after sign-off


def test_change_after_sign_off_is_a_new_version_that_goes_back_through_tiers_2_and_3(bureau):
    case = signed_case(bureau)
    signed = case.drafts.get()

    draft = services.case_revise_after_sign_off(
        case=case, acting_user=bureau.dispatcher, reply_text="网友您好!修改后的答复。",
        reason="补充办理时限", expected_state=State.APPROVED, expected_lock_version=case.lock_version)

    case.refresh_from_db()
    assert case.state == State.OFFICE_REVIEW
    assert (draft.version, draft.author, draft.reply_text) == (2, bureau.dispatcher, "网友您好!修改后的答复。")
    assert (draft.handling_report, draft.policy_basis, draft.measures) == (
        signed.handling_report, signed.policy_basis, signed.measures)
    event = case.events.order_by("-seq").first()
    assert (event.action, event.reason, event.from_state, event.to_state) == (
        "revise_after_sign_off", "补充办理时限", State.APPROVED, State.OFFICE_REVIEW)
    assert (event.payload["version"], event.payload["replaces_version"]) == (2, 1)
    assert str(event.action_label) == "发布前修改(重新审核)"
    # Tier 1 signed version 1; tiers 2 and 3 must sign version 2 anew.
    rows = review.case_signatures(case=case)
    assert [(r["actor"], r["version"]) for r in rows] == [(bureau.handler_a, 1), (None, None), (None, None)]
    assert review.case_signed_draft_id(case=case) is None

    services.case_office_approve(case=case, acting_user=bureau.reviewer, opinion="修改可以。")
    services.case_leader_approve(case=case, acting_user=bureau.leader)
    services.case_publish_reply(case=case, acting_user=bureau.dispatcher, where="问政西地省")

    case.refresh_from_db()
    assert case.published_reply == "网友您好!修改后的答复。"
    publication = case.published_replies.get()
    assert publication.draft == draft
    rows = review.case_signatures(case=case)
    assert [(r["actor"], r["version"], r["opinion"]) for r in rows] == [
        (bureau.handler_a, 1, ""), (bureau.reviewer, 2, "修改可以。"), (bureau.leader, 2, "")]
    assert case.events.get(action="publish_reply").payload["signed_versions"] == {
        "submit_feedback": 1, "office_approve": 2, "leader_approve": 2}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"reply_text": "改了", "reason": "  "}, "必须填写理由"),
    ({"reply_text": "   ", "reason": "改"}, "答复内容不能为空"),
    ({"reply_text": EXACT, "reason": "改"}, "无需修改"),
])
def test_change_after_sign_off_without_reason_or_change_is_refused(bureau, kwargs, message):
    case = signed_case(bureau)
    before = state_of(case)

    with pytest.raises(services.TransitionRefused, match=message):
        services.case_revise_after_sign_off(case=case, acting_user=bureau.dispatcher, **kwargs)

    assert state_of(case) == before


@pytest.mark.parametrize("role", ["handler_a", "leader", "reviewer"])
def test_change_after_sign_off_by_a_role_that_does_not_publish_is_refused(bureau, role):
    case = signed_case(bureau)
    before = state_of(case)

    with pytest.raises(PermissionDenied):
        services.case_revise_after_sign_off(case=case, acting_user=getattr(bureau, role),
                                            reply_text="改了", reason="改")

    assert state_of(case) == before


def test_change_after_sign_off_from_a_stale_form_is_refused(bureau):
    case = signed_case(bureau)
    stale = case.lock_version
    joint.case_mark_key(case=case, acting_user=bureau.dispatcher, leader=bureau.leader)  # bumps it
    before = state_of(case)

    with pytest.raises(services.CaseConflict):
        services.case_revise_after_sign_off(case=case, acting_user=bureau.dispatcher, reply_text="改了",
                                            reason="改", expected_lock_version=stale)

    assert state_of(case) == before


def test_send_back_and_new_unit_version_is_what_gets_published(bureau):
    case = bureau.case_in(State.LEADER_REVIEW)
    services.case_leader_send_back(case=case, acting_user=bureau.leader, reason="表述不准确")
    services.draft_save(case=case, acting_user=bureau.handler_a, handling_report="补充核实",
                        reply_text="您好,修改后的答复。")
    services.case_submit_feedback(case=case, acting_user=bureau.handler_a)
    services.case_office_approve(case=case, acting_user=bureau.reviewer)
    services.case_leader_approve(case=case, acting_user=bureau.leader)

    services.case_publish_reply(case=case, acting_user=bureau.dispatcher, where="问政西地省")

    case.refresh_from_db()
    assert case.published_reply == "您好,修改后的答复。"
    assert case.published_replies.get().draft.version == 2
    assert [r["version"] for r in review.case_signatures(case=case)] == [2, 2, 2]


# ---------------------------------------------------------------- what was published stays published


def reopen_and_answer_again(bureau, case, text):
    services.case_record_follow_up(case=case, acting_user=bureau.dispatcher,
                                   result=FollowUp.Result.UNSATISFIED,
                                   rectification=FollowUp.Rectification.NOT_DONE)
    services.case_reopen(case=case, acting_user=bureau.dispatcher, reason="回访不满意")
    services.draft_save(case=case, acting_user=bureau.handler_a, handling_report="再次核实", reply_text=text)
    services.case_submit_feedback(case=case, acting_user=bureau.handler_a)
    services.case_office_approve(case=case, acting_user=bureau.reviewer)
    services.case_leader_approve(case=case, acting_user=bureau.leader)
    services.case_publish_reply(case=case, acting_user=bureau.dispatcher, where="问政西地省 第二次答复")


def test_a_reopened_cases_second_reply_is_a_new_version_beside_the_first(bureau):
    case = signed_case(bureau)
    services.case_publish_reply(case=case, acting_user=bureau.dispatcher, where="问政西地省")
    first = PublishedReply.objects.get(case=case)
    first_values = (first.text, first.where, first.published_at, first.draft_id, first.round)

    reopen_and_answer_again(bureau, case, "第二轮答复:已整改完毕。")

    case.refresh_from_db()
    rows = list(case.published_replies.order_by("version"))
    assert [r.version for r in rows] == [1, 2]
    assert (rows[0].text, rows[0].where, rows[0].published_at, rows[0].draft_id, rows[0].round) == first_values
    assert (rows[1].text, rows[1].round, rows[1].draft.version) == ("第二轮答复:已整改完毕。", 2, 2)
    # The case's fields show the latest publication.
    assert (case.published_reply, case.published_where) == ("第二轮答复:已整改完毕。", "问政西地省 第二次答复")
    assert [e.payload["published_version"] for e in case.events.filter(action="publish_reply")] == [1, 2]


def test_a_merged_duplicate_gets_each_main_reply_as_a_new_version_never_over_the_first(bureau):
    main = bureau.case_in(State.HANDLING)
    duplicate = bureau.register(subject="同一问题的重复留言")
    joint.case_merge(case=duplicate, into=main, acting_user=bureau.dispatcher)
    services.draft_save(case=main, acting_user=bureau.handler_a, handling_report="已核实", reply_text=EXACT)
    services.case_submit_feedback(case=main, acting_user=bureau.handler_a)
    services.case_office_approve(case=main, acting_user=bureau.reviewer)
    services.case_leader_approve(case=main, acting_user=bureau.leader)
    services.case_publish_reply(case=main, acting_user=bureau.dispatcher, where="问政西地省")
    first = PublishedReply.objects.get(case=duplicate)
    first_values = (first.text, first.published_at, first.follows_id)

    reopen_and_answer_again(bureau, main, "第二轮答复:已整改完毕。")

    duplicate.refresh_from_db()
    rows = list(duplicate.published_replies.order_by("version"))
    main_rows = list(main.published_replies.order_by("version"))
    assert [r.version for r in rows] == [1, 2]
    assert (rows[0].text, rows[0].published_at, rows[0].follows_id) == first_values == (
        EXACT, main_rows[0].published_at, main_rows[0].pk)
    assert (rows[1].text, rows[1].follows) == ("第二轮答复:已整改完毕。", main_rows[1])
    assert all(r.where == duplicate.platform.name for r in rows)
    assert duplicate.published_reply == "第二轮答复:已整改完毕。"
    assert duplicate.state == State.ARCHIVED
    events = list(duplicate.events.filter(action="merged_reply").order_by("seq"))
    assert [(e.payload["published_version"], e.payload["follows_version"]) for e in events] == [(1, 1), (2, 2)]


def test_a_published_version_cannot_be_edited_or_deleted(bureau):
    case = signed_case(bureau)
    services.case_publish_reply(case=case, acting_user=bureau.dispatcher, where="问政西地省")
    publication = PublishedReply.objects.get(case=case)

    publication.text = "改写"
    with pytest.raises(RuntimeError):
        publication.save()
    with pytest.raises(RuntimeError):
        publication.delete()

    assert PublishedReply.objects.get(case=case).text == EXACT


# ---------------------------------------------------------------- one step: save and submit


def test_submitting_typed_feedback_saves_it_as_a_new_version_and_submits_that_version(bureau):
    case = bureau.case_in(State.HANDLING)
    typed = {"handling_report": "已现场核实", "policy_basis": "", "measures": "限期整改",
             "reply_text": "网友您好!已处理。"}

    services.case_submit_feedback(case=case, acting_user=bureau.handler_a, expected_state=State.HANDLING,
                                  draft=typed, expected_lock_version=case.lock_version)

    case.refresh_from_db()
    draft = case.drafts.get()
    assert case.state == State.OFFICE_REVIEW
    assert {f: getattr(draft, f) for f in typed} == typed
    assert case.events.get(action="submit_feedback").payload == {"draft_id": draft.pk, "version": 1}


def test_submitting_the_saved_draft_unchanged_adds_no_version(bureau):
    case = bureau.case_in(State.HANDLING)
    services.draft_save(case=case, acting_user=bureau.handler_a, handling_report="已核实", reply_text="您好。")
    case.refresh_from_db()

    services.case_submit_feedback(case=case, acting_user=bureau.handler_a, draft={
        "handling_report": "已核实", "policy_basis": "", "measures": "", "reply_text": "您好。"},
        expected_lock_version=case.lock_version)

    assert case.drafts.count() == 1
    assert Case.objects.get(pk=case.pk).state == State.OFFICE_REVIEW


def test_a_refused_submission_saves_nothing(bureau):
    case = bureau.case_in(State.HANDLING)
    joint.co_unit_assign(case=case, acting_user=bureau.dispatcher, unit=bureau.unit_b, task="协查",
                         working_days=3)
    before = state_of(case)

    with pytest.raises(services.TransitionRefused, match="协办单位尚未全部报告"):
        services.case_submit_feedback(case=case, acting_user=bureau.handler_a, draft={
            "handling_report": "已核实", "reply_text": "您好。"})

    assert state_of(case) == before


def test_a_submission_from_a_stale_form_saves_nothing(bureau):
    case = bureau.case_in(State.HANDLING)
    stale = case.lock_version
    services.draft_save(case=case, acting_user=bureau.handler_a, handling_report="同事写的", reply_text="同事的答复")
    before = state_of(case)

    with pytest.raises(services.CaseConflict):
        services.case_submit_feedback(case=case, acting_user=bureau.handler_a, expected_lock_version=stale,
                                      draft={"handling_report": "我写的", "reply_text": "我的答复"})

    assert state_of(case) == before


# ---------------------------------------------------------------- archive, follow-up, opinions


def replied_case(bureau):
    case = signed_case(bureau)
    return services.case_publish_reply(case=case, acting_user=bureau.dispatcher, where="问政西地省")


def test_archiving_without_a_follow_up_needs_a_reason_and_records_it(bureau):
    case = replied_case(bureau)
    before = state_of(case)

    with pytest.raises(services.TransitionRefused, match="尚未回访"):
        services.case_archive(case=case, acting_user=bureau.dispatcher, reason="  ")
    assert state_of(case) == before

    services.case_archive(case=case, acting_user=bureau.dispatcher, reason="网民电话无法接通三次")

    event = Case.objects.get(pk=case.pk).events.order_by("-seq").first()
    assert (event.action, event.reason, event.payload) == ("archive", "网民电话无法接通三次",
                                                           {"without_follow_up": True})


def test_archiving_after_a_follow_up_needs_no_reason(bureau):
    case = replied_case(bureau)
    services.case_record_follow_up(case=case, acting_user=bureau.dispatcher, result=FollowUp.Result.SATISFIED)

    services.case_archive(case=case, acting_user=bureau.dispatcher)

    event = Case.objects.get(pk=case.pk).events.order_by("-seq").first()
    assert (event.action, event.payload) == ("archive", {})


def test_a_follow_up_of_an_earlier_round_does_not_count_for_archiving(bureau):
    case = replied_case(bureau)
    reopen_and_answer_again(bureau, case, "第二轮答复。")

    with pytest.raises(services.TransitionRefused, match="尚未回访"):
        services.case_archive(case=case, acting_user=bureau.dispatcher)


def test_a_follow_up_without_a_rating_is_refused(bureau):
    case = replied_case(bureau)

    with pytest.raises(services.TransitionRefused, match="请选择回访结果"):
        services.case_record_follow_up(case=case, acting_user=bureau.dispatcher, result="")

    assert not case.follow_ups.exists()


def test_the_latest_opinion_is_the_newest_reviewers_word(bureau):
    case = bureau.case_in(State.OFFICE_REVIEW)
    assert review.case_latest_opinion(case=case) is None
    services.case_office_send_back(case=case, acting_user=bureau.reviewer, reason="请写明整改时限。")
    assert review.case_latest_opinion(case=case).reason == "请写明整改时限。"
    services.draft_save(case=case, acting_user=bureau.handler_a, handling_report="已核实", reply_text="两周内整改。")
    services.case_submit_feedback(case=case, acting_user=bureau.handler_a)
    services.case_office_approve(case=case, acting_user=bureau.reviewer)  # no opinion: the reason stays
    assert review.case_latest_opinion(case=case).action == "office_send_back"
    services.case_leader_approve(case=case, acting_user=bureau.leader, opinion="同意,注意跟踪整改。")
    latest = review.case_latest_opinion(case=case)
    assert (latest.action, latest.actor, latest.reason) == ("leader_approve", bureau.leader, "同意,注意跟踪整改。")


def test_signatures_of_events_written_before_approvals_named_their_draft(bureau):
    """Older approval events have no draft in their payload: the draft current then is named."""
    case = bureau.case_in(State.OFFICE_REVIEW)
    services.event_append(case=case, action="office_approve", actor=bureau.reviewer,
                          from_state=State.OFFICE_REVIEW, to_state=State.LEADER_REVIEW)
    draft = case.drafts.get()

    rows = review.case_signatures(case=case)

    assert [(r["actor"], r["version"]) for r in rows[:2]] == [(bureau.handler_a, 1), (bureau.reviewer, 1)]
    assert draft.version == 1
