"""Extension (延期, DESIGN.md §3): a unit asks before its deadline; the dispatcher approves or refuses."""

from datetime import timedelta

from django.core.exceptions import PermissionDenied
from django.urls import reverse
import pytest
import time_machine

from casework import calendar, joint, services
from casework.models import Extension, State


def act_url(case, action):
    return reverse("admin:casework_case_act", args=[case.pk, action])


def test_approved_extension_moves_the_reply_clock_by_working_days_from_the_old_deadline(bureau):
    case = bureau.case_in(State.HANDLING)
    old_due = case.reply_due_at

    extension = joint.extension_request(case=case, acting_user=bureau.handler_a, reason="需调取外地材料",
                                        working_days=5)
    decided = joint.extension_decide(extension=extension, acting_user=bureau.dispatcher, approve=True)

    case.refresh_from_db()
    assert case.reply_due_at == calendar.add_working_days(old_due, 5)
    assert decided.decision == Extension.Decision.APPROVED
    assert (decided.old_due_at, decided.new_due_at) == (old_due, case.reply_due_at)
    actions = list(case.events.values_list("action", flat=True))[-2:]
    assert actions == ["extension_request", "extension_decide"]
    assert case.events.get(action="extension_request").reason == "需调取外地材料"


def test_sign_for_clock_can_be_extended_while_waiting_to_be_signed_for(bureau):
    case = bureau.case_in(State.DISPATCHED)
    old_due = case.sign_for_due_at
    extension = joint.extension_request(case=case, acting_user=bureau.handler_a, reason="负责人出差",
                                        working_days=1, clock="sign_for")
    joint.extension_decide(extension=extension, acting_user=bureau.dispatcher, approve=True)
    case.refresh_from_db()
    assert case.sign_for_due_at == calendar.add_working_days(old_due, 1)


def test_refused_extension_keeps_the_clock_and_needs_a_reason(bureau):
    case = bureau.case_in(State.HANDLING)
    old_due = case.reply_due_at
    extension = joint.extension_request(case=case, acting_user=bureau.handler_a, reason="材料多", working_days=3)

    with pytest.raises(services.TransitionRefused, match="必须填写理由"):
        joint.extension_decide(extension=extension, acting_user=bureau.dispatcher, approve=False)
    decided = joint.extension_decide(extension=extension, acting_user=bureau.dispatcher, approve=False,
                                     note="咨询类留言应按时答复")

    case.refresh_from_db()
    assert case.reply_due_at == old_due
    assert decided.decision == Extension.Decision.REFUSED and decided.new_due_at is None
    assert case.events.get(action="extension_decide").payload["decision"] == "refused"


def test_request_after_the_deadline_is_refused(bureau):
    case = bureau.case_in(State.HANDLING)
    with time_machine.travel(case.reply_due_at + timedelta(minutes=1)):
        with pytest.raises(services.TransitionRefused, match="期限已过"):
            joint.extension_request(case=case, acting_user=bureau.handler_a, reason="来不及", working_days=2)
    assert not case.extensions.exists()


@pytest.mark.parametrize(
    ("who", "reason", "days", "error", "message"),
    [
        ("handler_b", "理由", 2, PermissionDenied, "权限"),
        ("dispatcher", "理由", 2, PermissionDenied, "权限"),
        ("handler_a", "  ", 2, services.TransitionRefused, "延期理由"),
        ("handler_a", "理由", 0, services.TransitionRefused, "延长天数"),
        ("handler_a", "理由", joint.MAX_EXTENSION_DAYS + 1, services.TransitionRefused, "延长天数"),
    ],
)
def test_extension_request_refusals(bureau, who, reason, days, error, message):
    case = bureau.case_in(State.HANDLING)
    with pytest.raises(error, match=message):
        joint.extension_request(case=case, acting_user=getattr(bureau, who), reason=reason, working_days=days)
    assert not case.extensions.exists()
    assert not case.events.filter(action="extension_request").exists()


def test_second_pending_request_for_the_same_clock_and_a_case_under_review_are_refused(bureau):
    case = bureau.case_in(State.HANDLING)
    joint.extension_request(case=case, acting_user=bureau.handler_a, reason="材料多", working_days=3)
    with pytest.raises(services.TransitionRefused, match="待审批"):
        joint.extension_request(case=case, acting_user=bureau.handler_a, reason="再申请", working_days=2)
    reviewed = bureau.case_in(State.OFFICE_REVIEW)
    with pytest.raises(services.TransitionRefused, match="不能申请延期"):
        joint.extension_request(case=reviewed, acting_user=bureau.handler_a, reason="x", working_days=2)


def test_decision_refusals_wrong_role_and_deciding_twice(bureau):
    case = bureau.case_in(State.HANDLING)
    extension = joint.extension_request(case=case, acting_user=bureau.handler_a, reason="材料多", working_days=3)
    with pytest.raises(PermissionDenied):
        joint.extension_decide(extension=extension, acting_user=bureau.handler_a, approve=True)
    joint.extension_decide(extension=extension, acting_user=bureau.dispatcher, approve=True)
    with pytest.raises(services.CaseConflict, match="已审批"):
        joint.extension_decide(extension=extension, acting_user=bureau.dispatcher, approve=True)
    case.refresh_from_db()
    assert case.events.filter(action="extension_decide").count() == 1


def test_extension_is_requested_and_approved_through_the_admin_and_queued_for_the_dispatcher(client, bureau):
    case = bureau.case_in(State.HANDLING)
    old_due = case.reply_due_at
    client.force_login(bureau.handler_a)
    client.post(act_url(case, "request_extension"), {"clock": "reply", "working_days": 2, "reason": "需协调"})
    extension = case.extensions.get()

    client.force_login(bureau.dispatcher)
    index = client.get(reverse("admin:index")).content.decode()
    assert 'id="cw-queue-extension"' in index
    page = client.get(reverse("admin:casework_case_change", args=[case.pk])).content.decode()
    assert f'id="cw-form-decide_extension-{extension.pk}"' in page
    client.post(act_url(case, "decide_extension"), {"extension_id": extension.pk, "decision": "approve"})

    case.refresh_from_db()
    assert case.reply_due_at == calendar.add_working_days(old_due, 2)
    timeline = client.get(reverse("admin:casework_case_change", args=[case.pk])).content.decode()
    assert "申请延期" in timeline and "延期审批" in timeline
