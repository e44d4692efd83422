from casework.models import State
from casework.selectors import case_audit_verify


def test_case_walks_to_replied_with_one_event_per_step(bureau):
    case = bureau.case_in(State.REPLIED)
    assert case.state == State.REPLIED
    actions = list(case.events.order_by("seq").values_list("action", flat=True))
    assert actions == ["register", "dispatch", "accept", "draft_saved", "submit_feedback",
                       "office_approve", "leader_approve", "publish_reply"]
    assert case_audit_verify(case=case)
