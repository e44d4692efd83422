"""The closed loop's transition graph (DESIGN.md §3) and its audit trail (DESIGN.md §8).

Every move is made through the one service per transition in :mod:`casework.services`; these tests
prove the allowed moves, refuse every other move with a clear message, refuse missing reasons, the
wrong role and users of another unit, and show that the state is never written any other way.
"""

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
import pytest

from accounts import roles
from casework import services
from casework.models import Case, CaseEvent, FollowUp, Notification, State
from casework.selectors import case_audit_verify, user_can_see_case
from tests.factories import make_user

# Transition name → (source state, target state, role attribute on the bureau that performs it).
GRAPH = {
    "dispatch": (State.REGISTERED, State.DISPATCHED, "dispatcher"),
    "reject_invalid": (State.REGISTERED, State.ARCHIVED, "dispatcher"),
    "accept": (State.DISPATCHED, State.HANDLING, "handler_a"),
    "return_to_office": (State.DISPATCHED, State.REGISTERED, "handler_a"),
    "submit_feedback": (State.HANDLING, State.OFFICE_REVIEW, "handler_a"),
    "office_approve": (State.OFFICE_REVIEW, State.LEADER_REVIEW, "reviewer"),
    "office_send_back": (State.OFFICE_REVIEW, State.HANDLING, "reviewer"),
    "leader_approve": (State.LEADER_REVIEW, State.APPROVED, "leader"),
    "leader_send_back": (State.LEADER_REVIEW, State.HANDLING, "leader"),
    "publish_reply": (State.APPROVED, State.REPLIED, "dispatcher"),
    "revise_after_sign_off": (State.APPROVED, State.OFFICE_REVIEW, "dispatcher"),
    "record_follow_up": (State.REPLIED, State.REPLIED, "dispatcher"),
    "reopen": (State.REPLIED, State.HANDLING, "dispatcher"),
    "archive": (State.REPLIED, State.ARCHIVED, "dispatcher"),
}

REASON_REQUIRED = ["reject_invalid", "return_to_office", "office_send_back", "leader_send_back", "reopen",
                   "revise_after_sign_off"]


def perform(bureau, name, case, user, *, reason="已核实,理由充分", expected_state=None):
    """Call the service of transition ``name`` with sensible arguments; return the service's result."""
    common = {"case": case, "acting_user": user, "expected_state": expected_state}
    if name == "dispatch":
        return services.case_dispatch(unit=bureau.unit_a, **common)
    if name == "publish_reply":
        # No text: what is published is the draft the leader signed.
        return services.case_publish_reply(where="问政西地省", **common)
    if name == "revise_after_sign_off":
        return services.case_revise_after_sign_off(reply_text="您好,所需材料已告知。", reason=reason, **common)
    if name == "record_follow_up":
        return services.case_record_follow_up(result=FollowUp.Result.SATISFIED, **common)
    service, needs_reason = services.TRANSITION_SERVICES[name]
    if needs_reason:
        common["reason"] = reason
    return service(**common)


def case_ready_for(bureau, name):
    """Return a unit-A case in the source state of ``name``, with its current draft where needed."""
    source = GRAPH[name][0]
    case = bureau.case_in(source)
    if name == "submit_feedback":
        services.draft_save(case=case, acting_user=bureau.handler_a, handling_report="已核实",
                            reply_text="您好,所需材料如下。")
    if name == "archive":
        # The loop closes with the follow-up; archiving without one needs a reason (tested apart).
        services.case_record_follow_up(case=case, acting_user=bureau.dispatcher,
                                       result=FollowUp.Result.SATISFIED)
    return case


def snapshot(case):
    case = Case.objects.get(pk=case.pk)
    return case.state, case.events.count()


def test_model_declares_exactly_the_transitions_of_the_design():
    declared = {(t.name, t.source, t.target) for t in Case().get_all_state_transitions()}
    assert declared == {(name, src, dst) for name, (src, dst, _role) in GRAPH.items()}


@pytest.mark.parametrize("name", list(GRAPH))
def test_allowed_move_reaches_its_target_and_writes_one_chained_event(bureau, name):
    source, target, role = GRAPH[name]
    case = case_ready_for(bureau, name)
    user = getattr(bureau, role)
    events_before = case.events.count()

    perform(bureau, name, case, user, expected_state=source)

    case = Case.objects.get(pk=case.pk)
    assert case.state == target
    assert case.events.count() == events_before + 1
    event = case.events.order_by("-seq").first()
    assert (event.action, event.from_state, event.to_state, event.actor) == (name, source, target, user)
    if name in REASON_REQUIRED:
        assert event.reason == "已核实,理由充分"
    assert case_audit_verify(case=case)


REFUSED = [(name, state) for name in GRAPH for state in State.values if state != GRAPH[name][0]]


@pytest.mark.parametrize(("name", "state"), REFUSED)
def test_move_from_another_state_is_refused_with_the_current_state_named(bureau, name, state):
    case = bureau.case_in(state)
    user = getattr(bureau, GRAPH[name][2])
    before = snapshot(case)

    if not user_can_see_case(user=user, case=case):
        # A case outside the user's scope (e.g. not yet dispatched, for a handler) is refused
        # without naming its state: the user learns nothing about it.
        with pytest.raises(PermissionDenied):
            perform(bureau, name, case, user)
    else:
        with pytest.raises(services.TransitionRefused) as exc:
            perform(bureau, name, case, user)
        assert not isinstance(exc.value, services.CaseConflict)
        assert str(exc.value) == f"案件当前状态为「{State(state).label}」,不能执行此操作。"
    assert snapshot(case) == before


@pytest.mark.parametrize("reason", ["", "   \n "])
@pytest.mark.parametrize("name", REASON_REQUIRED)
def test_move_that_needs_a_reason_is_refused_without_one(bureau, name, reason):
    case = case_ready_for(bureau, name)
    before = snapshot(case)

    with pytest.raises(services.TransitionRefused, match="必须填写理由"):
        perform(bureau, name, case, getattr(bureau, GRAPH[name][2]), reason=reason)

    assert snapshot(case) == before


def test_feedback_without_a_draft_of_this_round_is_refused(bureau):
    case = bureau.case_in(State.HANDLING)
    before = snapshot(case)

    with pytest.raises(services.TransitionRefused, match="请先保存本轮的办理情况和答复草稿"):
        services.case_submit_feedback(case=case, acting_user=bureau.handler_a)

    assert snapshot(case) == before


# A user in scope who holds the wrong role for each transition.
WRONG_ROLE = [
    ("dispatch", "reviewer"),
    ("dispatch", "handler_a"),
    ("reject_invalid", "leader"),
    ("accept", "dispatcher"),
    ("accept", "head_a"),
    ("return_to_office", "reviewer"),
    ("submit_feedback", "dispatcher"),
    ("submit_feedback", "head_a"),
    ("office_approve", "leader"),
    ("office_approve", "handler_a"),
    ("office_send_back", "dispatcher"),
    ("leader_approve", "reviewer"),
    ("leader_approve", "handler_a"),
    ("leader_send_back", "dispatcher"),
    ("publish_reply", "leader"),
    ("publish_reply", "handler_a"),
    ("revise_after_sign_off", "leader"),
    ("revise_after_sign_off", "handler_a"),
    ("record_follow_up", "handler_a"),
    ("reopen", "reviewer"),
    ("archive", "handler_a"),
    ("archive", "supervisor"),
]


@pytest.mark.parametrize(("name", "role"), WRONG_ROLE)
def test_wrong_role_is_refused_and_nothing_changes(bureau, name, role):
    case = case_ready_for(bureau, name)
    before = snapshot(case)

    with pytest.raises(PermissionDenied):
        perform(bureau, name, case, getattr(bureau, role))

    assert snapshot(case) == before


def _other_unit_user(bureau, role):
    """A user with ``role`` whose only unit is district B (no city-wide scope)."""
    if role == "handler_a":
        return bureau.handler_b
    role_code = {"dispatcher": roles.DISPATCHER, "reviewer": roles.OFFICE_REVIEWER,
                 "leader": roles.LEADER}[role]
    return make_user(f"{role}_of_b", role=role_code, unit=bureau.unit_b)


@pytest.mark.parametrize("name", [n for n in GRAPH if GRAPH[n][0] != State.REGISTERED])
def test_user_of_another_unit_with_the_right_role_is_refused(bureau, name):
    case = case_ready_for(bureau, name)
    assert case.lead_unit == bureau.unit_a
    stranger = _other_unit_user(bureau, GRAPH[name][2])
    before = snapshot(case)

    with pytest.raises(PermissionDenied):
        perform(bureau, name, case, stranger)

    assert snapshot(case) == before


def test_dispatcher_of_another_unit_cannot_touch_an_undispatched_case(bureau):
    case = bureau.case_in(State.REGISTERED)
    stranger = _other_unit_user(bureau, "dispatcher")

    with pytest.raises(PermissionDenied):
        services.case_dispatch(case=case, acting_user=stranger, unit=bureau.unit_b)
    with pytest.raises(PermissionDenied):
        services.case_reject_invalid(case=case, acting_user=stranger, reason="重复")

    assert snapshot(case) == (State.REGISTERED, 1)


def test_handler_of_another_unit_cannot_save_a_draft(bureau):
    case = bureau.case_in(State.HANDLING)

    with pytest.raises(PermissionDenied):
        services.draft_save(case=case, acting_user=bureau.handler_b, handling_report="x", reply_text="y")

    assert case.drafts.count() == 0


def test_stale_expected_state_is_a_conflict_that_asks_to_reload(bureau):
    case = bureau.case_in(State.LEADER_REVIEW)
    services.case_leader_approve(case=case, acting_user=bureau.leader, expected_state=State.LEADER_REVIEW)
    before = snapshot(case)

    # The same leader double-submits, and a second leader acts on the page loaded before.
    with pytest.raises(services.CaseConflict, match="请刷新页面后再操作"):
        services.case_leader_approve(case=case, acting_user=bureau.leader, expected_state=State.LEADER_REVIEW)
    with pytest.raises(services.CaseConflict, match="待发布"):
        services.case_leader_send_back(case=case, acting_user=bureau.leader, reason="再改",
                                       expected_state=State.LEADER_REVIEW)

    assert snapshot(case) == before
    assert list(case.events.filter(action__startswith="leader_").values_list("action", flat=True)) == [
        "leader_approve"
    ]


# ---------------------------------------------------------------- the state is written by transitions only


def test_state_cannot_be_assigned_on_a_loaded_case(bureau):
    case = bureau.case_in(State.HANDLING)

    with pytest.raises(AttributeError):
        case.state = State.ARCHIVED

    assert Case.objects.get(pk=case.pk).state == State.HANDLING


def test_unknown_state_written_by_queryset_update_is_rejected_by_the_database(bureau):
    case = bureau.case_in(State.HANDLING)

    with pytest.raises(IntegrityError), transaction.atomic():
        Case.objects.filter(pk=case.pk).update(state="asdf")

    assert Case.objects.get(pk=case.pk).state == State.HANDLING


def test_unknown_state_saved_through_the_orm_is_rejected_by_the_database(bureau):
    with pytest.raises(IntegrityError), transaction.atomic():
        Case.objects.create(platform=bureau.platform, subject="s", body="b",
                            submitted_at="2026-03-02T09:00:00+08:00", state="asdf")


def test_refresh_from_db_reloads_the_protected_state(bureau):
    stale = bureau.case_in(State.DISPATCHED)
    services.case_accept(case=Case.objects.get(pk=stale.pk), acting_user=bureau.handler_a)

    stale.refresh_from_db()

    assert stale.state == State.HANDLING
    with pytest.raises(AttributeError):
        stale.state = State.ARCHIVED


# ---------------------------------------------------------------- audit events


def test_refused_transition_leaves_no_event_and_no_mail(bureau):
    case = bureau.case_in(State.OFFICE_REVIEW)
    before = snapshot(case)
    notifications = Notification.objects.count()

    with pytest.raises(PermissionDenied):
        services.case_office_send_back(case=case, acting_user=bureau.handler_a, reason="自己发回")

    assert snapshot(case) == before
    assert Notification.objects.count() == notifications


def test_failure_after_the_event_is_written_rolls_back_state_event_and_mail(bureau, monkeypatch):
    case = bureau.case_in(State.DISPATCHED)
    before = snapshot(case)
    real_queue = services.notification_queue

    def queue_then_fail(**kwargs):
        real_queue(**kwargs)
        assert CaseEvent.objects.filter(case=case, action="return_to_office").exists()
        raise RuntimeError("mail outbox unavailable")

    monkeypatch.setattr(services, "notification_queue", queue_then_fail)

    with pytest.raises(RuntimeError):
        services.case_return_to_office(case=case, acting_user=bureau.handler_a, reason="非本单位辖区")

    assert snapshot(case) == before
    assert not CaseEvent.objects.filter(case=case, action="return_to_office").exists()
    assert not Notification.objects.filter(case=case, subject__startswith="【退回】").exists()


def test_a_whole_round_trip_writes_exactly_one_event_per_transition(bureau):
    case = bureau.case_in(State.LEADER_REVIEW)
    services.case_leader_send_back(case=case, acting_user=bureau.leader, reason="表述不准确")
    services.draft_save(case=case, acting_user=bureau.handler_a, handling_report="补充核实",
                        reply_text="您好,修改后的答复。")
    services.case_submit_feedback(case=case, acting_user=bureau.handler_a)
    services.case_office_approve(case=case, acting_user=bureau.reviewer)
    services.case_leader_approve(case=case, acting_user=bureau.leader)
    services.case_publish_reply(case=case, acting_user=bureau.dispatcher, where="问政西地省")
    services.case_record_follow_up(case=case, acting_user=bureau.dispatcher,
                                   result=FollowUp.Result.UNSATISFIED,
                                   rectification=FollowUp.Rectification.NOT_DONE)
    services.case_reopen(case=case, acting_user=bureau.dispatcher, reason="群众不满意")

    events = list(case.events.order_by("seq").values_list("action", "from_state", "to_state"))
    assert [e[0] for e in events] == [
        "register", "dispatch", "accept", "draft_saved", "submit_feedback", "office_approve",
        "leader_send_back", "draft_saved", "submit_feedback", "office_approve", "leader_approve",
        "publish_reply", "record_follow_up", "reopen",
    ]
    assert events[-1] == ("reopen", State.REPLIED, State.HANDLING)
    case.refresh_from_db()
    assert (case.state, case.handling_round) == (State.HANDLING, 2)
    assert case_audit_verify(case=case)
