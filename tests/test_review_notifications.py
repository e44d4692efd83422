"""Each review tier is told by e-mail, once, when a case reaches its queue."""

from django.core import mail

from accounts.models import User
from casework import joint, services
from casework.models import Notification, State


def test_feedback_notifies_office_reviewers_with_a_link(bureau, eager_celery, django_capture_on_commit_callbacks):
    case = bureau.case_in(State.HANDLING)
    services.draft_save(case=case, acting_user=bureau.handler_a, handling_report="已核实", reply_text="答复")
    mail.outbox = []
    with django_capture_on_commit_callbacks(execute=True):
        services.case_submit_feedback(case=case, acting_user=bureau.handler_a)
    assert [(m.to, m.subject) for m in mail.outbox] == [
        ([bureau.reviewer.email], f"【待审核】{case.reference} 雨湖分局 已反馈")
    ]
    assert f"/admin/casework/case/{case.pk}/change/" in mail.outbox[0].body


def test_office_approval_notifies_the_leaders_or_only_the_leader_of_a_key_case(
    bureau, eager_celery, django_capture_on_commit_callbacks
):
    other_leader = User.objects.create_user("leader2", email="leader2@bureau.invalid")
    other_leader.groups.add(*bureau.leader.groups.all())
    plain = bureau.case_in(State.OFFICE_REVIEW)
    key = bureau.case_in(State.OFFICE_REVIEW)
    joint.case_mark_key(case=key, acting_user=bureau.dispatcher, leader=bureau.leader)
    mail.outbox = []
    with django_capture_on_commit_callbacks(execute=True):
        services.case_office_approve(case=plain, acting_user=bureau.reviewer)
        services.case_office_approve(case=key, acting_user=bureau.reviewer)
    assert sorted(mail.outbox[0].to) == sorted([bureau.leader.email, other_leader.email])
    assert mail.outbox[1].to == [bureau.leader.email]
    assert all(m.subject.startswith("【待审签】") for m in mail.outbox)


def test_leader_approval_notifies_the_dispatchers_once(bureau, eager_celery, django_capture_on_commit_callbacks):
    case = bureau.case_in(State.LEADER_REVIEW)
    mail.outbox = []
    with django_capture_on_commit_callbacks(execute=True):
        services.case_leader_approve(case=case, acting_user=bureau.leader)
    assert [(m.to, m.subject) for m in mail.outbox] == [([bureau.dispatcher.email], f"【待发布】{case.reference}")]
    assert Notification.objects.filter(case=case, subject__startswith="【待发布】").count() == 1
