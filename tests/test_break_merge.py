"""Breaking merge as a careless clerk: merging a main case that already has duplicates of its own."""

from casework import joint, services
from casework.models import State


def test_a_duplicate_of_a_duplicate_still_receives_the_final_main_cases_reply(bureau):
    # The clerk merges A into B, then notices B itself repeats C and merges B into C.
    main = bureau.case_in(State.HANDLING)
    b = bureau.case_in(State.REGISTERED, subject="重复:户口迁移咨询(二)")
    a = bureau.case_in(State.REGISTERED, subject="重复:户口迁移咨询(三)")
    joint.case_merge(case=a, into=b, acting_user=bureau.dispatcher)
    joint.case_merge(case=b, into=main, acting_user=bureau.dispatcher)

    services.draft_save(case=main, acting_user=bureau.handler_a, handling_report="已核实", reply_text="您好,材料如下。")
    services.case_submit_feedback(case=main, acting_user=bureau.handler_a)
    services.case_office_approve(case=main, acting_user=bureau.reviewer)
    services.case_leader_approve(case=main, acting_user=bureau.leader)
    services.case_publish_reply(case=main, acting_user=bureau.dispatcher, where="问政西地省")

    for case in (a, b):
        case.refresh_from_db()
        assert case.published_reply == "您好,材料如下。", case.subject
        assert case.published_where == case.platform.name
        assert case.events.order_by("-seq").first().action == "merged_reply"
    assert a.events.order_by("-seq").first().payload["main"] == main.reference
