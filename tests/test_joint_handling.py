"""Joint handling (多警种联动), key cases and return arbitration (DESIGN.md §3): happy paths and refusals."""

from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone
import pytest

from accounts.models import Unit
from accounts.services import unit_create
from casework import joint, selectors, services
from casework.models import CoUnitTask, State
from tests.factories import make_user


def change_url(case):
    return reverse("admin:casework_case_change", args=[case.pk])


def act_url(case, action):
    return reverse("admin:casework_case_act", args=[case.pk, action])


@pytest.fixture
def joint_case(bureau):
    """A case of unit A in handling with unit B as co-unit, and another case of unit A."""
    case = bureau.case_in(State.HANDLING)
    other = bureau.case_in(State.HANDLING, subject="雨湖区另一件留言")
    task = joint.co_unit_assign(case=case, acting_user=bureau.dispatcher, unit=bureau.unit_b,
                                task="核实岳塘辖区内的监控录像", working_days=2)
    return case, other, task


# ---------------------------------------------------------------- co-units


def test_dispatcher_assigns_a_co_unit_with_a_task_and_a_deadline_in_the_timeline(bureau, joint_case):
    case, _other, task = joint_case

    assert task.unit == bureau.unit_b
    assert task.due_at > timezone.now()
    event = case.events.order_by("-seq").first()
    assert (event.action, event.actor, event.payload["unit"]) == ("co_unit_assign", bureau.dispatcher, "岳塘分局")
    assert selectors.case_timeline(case=case).last().action_label == "指定协办单位"


def test_co_unit_handler_sees_the_joint_case_but_not_the_lead_units_other_work(client, bureau, joint_case):
    case, other, _task = joint_case

    visible = set(selectors.cases_visible_to(user=bureau.handler_b).values_list("pk", flat=True))
    assert case.pk in visible and other.pk not in visible
    client.force_login(bureau.handler_b)
    assert client.get(change_url(case)).status_code == 200
    assert client.get(change_url(other)).status_code == 404


def test_co_unit_handler_cannot_act_as_the_lead_unit(bureau, joint_case):
    case, _other, _task = joint_case

    with pytest.raises(PermissionDenied):
        services.draft_save(case=case, acting_user=bureau.handler_b, handling_report="x", reply_text="y")
    with pytest.raises(PermissionDenied):
        joint.extension_request(case=case, acting_user=bureau.handler_b, reason="x", working_days=2)


def test_lead_unit_cannot_submit_feedback_until_every_co_unit_has_reported(bureau, joint_case):
    case, _other, task = joint_case
    services.draft_save(case=case, acting_user=bureau.handler_a, handling_report="已核实", reply_text="您好。")

    with pytest.raises(services.TransitionRefused, match="协办单位尚未全部报告.*岳塘分局"):
        services.case_submit_feedback(case=case, acting_user=bureau.handler_a)
    case.refresh_from_db()
    assert case.state == State.HANDLING

    joint.co_unit_report(task=task, acting_user=bureau.handler_b, report="监控录像已调取并移交。")
    case = services.case_submit_feedback(case=case, acting_user=bureau.handler_a)
    assert case.state == State.OFFICE_REVIEW
    assert list(case.events.values_list("action", flat=True))[-2:] == ["co_unit_report", "submit_feedback"]


def test_co_unit_reports_through_the_admin_and_the_lead_unit_then_submits(client, bureau, joint_case):
    case, _other, task = joint_case
    client.force_login(bureau.handler_b)
    page = client.get(change_url(case)).content.decode()
    assert 'id="cw-form-co_unit_report"' in page and 'id="cw-form-submit_feedback"' not in page

    client.post(act_url(case, "co_unit_report"), {"task_id": task.pk, "report": "已调取录像"})

    task.refresh_from_db()
    assert task.report == "已调取录像" and task.reported_by == bureau.handler_b


@pytest.mark.parametrize(
    ("who", "unit", "task_text", "days", "error"),
    [
        ("handler_a", "unit_b", "协查", 2, PermissionDenied),
        ("dispatcher", "unit_a", "协查", 2, services.TransitionRefused),  # the lead unit itself
        ("dispatcher", "unit_b", "  ", 2, services.TransitionRefused),
        ("dispatcher", "unit_b", "协查", 0, services.TransitionRefused),
    ],
)
def test_co_unit_assignment_refusals(bureau, who, unit, task_text, days, error):
    case = bureau.case_in(State.HANDLING)

    with pytest.raises(error):
        joint.co_unit_assign(case=case, acting_user=getattr(bureau, who), unit=getattr(bureau, unit),
                             task=task_text, working_days=days)
    assert not CoUnitTask.objects.filter(case=case).exists()


def test_the_same_co_unit_twice_and_a_case_under_review_are_refused(bureau, joint_case):
    case, _other, _task = joint_case
    with pytest.raises(services.TransitionRefused, match="已是该案件的协办单位"):
        joint.co_unit_assign(case=case, acting_user=bureau.dispatcher, unit=bureau.unit_b, task="再查",
                             working_days=2)
    reviewed = bureau.case_in(State.OFFICE_REVIEW)
    with pytest.raises(services.TransitionRefused, match="已交办或承办中"):
        joint.co_unit_assign(case=reviewed, acting_user=bureau.dispatcher, unit=bureau.unit_b, task="协查",
                             working_days=2)


def test_co_unit_report_refusals(bureau, joint_case):
    case, _other, task = joint_case
    with pytest.raises(PermissionDenied):
        joint.co_unit_report(task=task, acting_user=bureau.handler_a, report="代报")
    with pytest.raises(services.TransitionRefused, match="请填写协办情况"):
        joint.co_unit_report(task=task, acting_user=bureau.handler_b, report=" ")
    joint.co_unit_report(task=task, acting_user=bureau.handler_b, report="已报告")
    with pytest.raises(services.TransitionRefused, match="不能重复报告"):
        joint.co_unit_report(task=task, acting_user=bureau.handler_b, report="再报")


# ---------------------------------------------------------------- key cases


def test_key_case_carries_its_leader_and_shows_in_his_queue(client, bureau):
    case = bureau.case_in(State.HANDLING)

    joint.case_mark_key(case=case, acting_user=bureau.dispatcher, leader=bureau.leader)

    case.refresh_from_db()
    assert case.is_key_case and case.key_case_leader == bureau.leader
    assert list(selectors.case_queue(user=bureau.leader, key="key_cases")) == [case]
    client.force_login(bureau.leader)
    assert "cw-key-case" in client.get(change_url(case)).content.decode()


def test_key_case_leader_must_be_a_leader_and_a_handler_cannot_mark(bureau):
    case = bureau.case_in(State.HANDLING)
    with pytest.raises(services.TransitionRefused, match="分管局领导"):
        joint.case_mark_key(case=case, acting_user=bureau.dispatcher, leader=bureau.handler_a)
    with pytest.raises(PermissionDenied):
        joint.case_mark_key(case=case, acting_user=bureau.handler_a, leader=bureau.leader)
    case.refresh_from_db()
    assert not case.is_key_case


# ---------------------------------------------------------------- return arbitration


@pytest.fixture
def returned(bureau):
    case = bureau.case_in(State.DISPATCHED)
    return services.case_return_to_office(case=case, acting_user=bureau.handler_a, reason="不属于本单位辖区")


def test_returned_case_waits_in_the_dispatchers_arbitration_queue(bureau, returned):
    assert joint.case_returned_by(case=returned) == bureau.unit_a
    assert list(selectors.case_queue(user=bureau.dispatcher, key="returned")) == [returned]
    assert returned not in selectors.case_queue(user=bureau.dispatcher, key="to_dispatch")


def test_dispatcher_redispatches_a_returned_case_to_another_unit(bureau, returned):
    case = joint.case_return_arbitrate(case=returned, acting_user=bureau.dispatcher, send_back=False,
                                       unit=bureau.unit_b, ruling="属岳塘辖区")

    assert (case.state, case.lead_unit) == (State.DISPATCHED, bureau.unit_b)
    ruling = case.events.get(action="return_ruling")
    assert ruling.payload["decision"] == "redispatch" and ruling.actor == bureau.dispatcher


def test_dispatcher_sends_a_returned_case_back_to_the_same_unit_with_a_ruling(client, bureau, returned):
    client.force_login(bureau.dispatcher)
    response = client.post(act_url(returned, "arbitrate_return"),
                           {"decision": "send_back", "ruling": "经核实属雨湖辖区,请继续办理",
                            "expected_state": State.REGISTERED})

    assert response.status_code == 302
    returned.refresh_from_db()
    assert (returned.state, returned.lead_unit) == (State.DISPATCHED, bureau.unit_a)
    assert returned.events.get(action="return_ruling").reason == "经核实属雨湖辖区,请继续办理"
    assert returned.events.order_by("-seq").first().action == "dispatch"


@pytest.mark.parametrize(
    ("send_back", "unit", "ruling", "message"),
    [
        (True, None, "", "必须填写裁定意见"),
        (False, None, "", "请选择改派的承办单位"),
        (False, "unit_a", "", "改派须选择其他单位"),
    ],
)
def test_return_arbitration_refusals(bureau, returned, send_back, unit, ruling, message):
    with pytest.raises(services.TransitionRefused, match=message):
        joint.case_return_arbitrate(case=returned, acting_user=bureau.dispatcher, send_back=send_back,
                                    unit=getattr(bureau, unit) if unit else None, ruling=ruling)
    returned.refresh_from_db()
    assert returned.state == State.REGISTERED
    assert not returned.events.filter(action="return_ruling").exists()


def test_a_new_message_is_not_a_returned_one_and_a_handler_cannot_rule(bureau, returned):
    fresh = bureau.case_in(State.REGISTERED)
    with pytest.raises(services.TransitionRefused, match="不是退回待裁定"):
        joint.case_return_arbitrate(case=fresh, acting_user=bureau.dispatcher, send_back=False, unit=bureau.unit_b)
    with pytest.raises(PermissionDenied):
        joint.case_return_arbitrate(case=returned, acting_user=bureau.handler_a, send_back=True, ruling="x")


def test_co_unit_scope_is_by_unit_subtree(bureau):
    station = unit_create(name="城正街派出所", code="czj", kind=Unit.Kind.STATION, parent=bureau.unit_b)
    officer = make_user("station_officer", role="handler", unit=station)
    case = bureau.case_in(State.HANDLING)
    joint.co_unit_assign(case=case, acting_user=bureau.dispatcher, unit=station, task="走访", working_days=1)

    assert selectors.user_can_see_case(user=officer, case=case)
    assert selectors.user_can_see_case(user=bureau.handler_b, case=case)  # parent unit covers the station


def test_co_unit_outside_the_assigners_scope_is_refused(bureau):
    from django.core.exceptions import PermissionDenied

    from accounts import roles
    from accounts.services import unit_access_grant
    from tests.factories import make_user

    case = bureau.case_in(State.HANDLING)
    clerk = make_user("clerk_a", role=roles.DISPATCHER, unit=bureau.unit_a)
    unit_access_grant(user=clerk, unit=bureau.unit_a)
    with pytest.raises(PermissionDenied):
        joint.co_unit_assign(case=case, acting_user=clerk, unit=bureau.unit_b, task="协查", working_days=2)
    assert not case.co_unit_tasks.exists()
