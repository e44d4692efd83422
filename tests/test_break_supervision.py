"""Breaking the supervision tail: 督办单 answers and 纪检督察 outcomes follow the one access rule.

DESIGN.md §3: a 督办单 "is tracked until the unit answers it"; a referral is tracked until the
supervisors record an outcome. Both are writes on a case, so both need the role permission *and*
the case in the user's scope (field case C17: a model-wide permission never widens the scope).
"""

from datetime import datetime
from zoneinfo import ZoneInfo

from django.core.exceptions import PermissionDenied
from django.urls import reverse
import pytest

from accounts import roles
from casework import escalation
from casework.models import DisciplineReferral, State, SupervisionNotice
from casework.selectors import case_audit_verify
from tests.factories import make_user

SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def notice_b(bureau):
    case = bureau.case_in(State.HANDLING, unit=bureau.unit_b)
    return SupervisionNotice.objects.create(case=case, unit=bureau.unit_b, content="请立即办理",
                                            opened_at=datetime(2026, 3, 10, 9, 0, tzinfo=SH))


@pytest.fixture
def referral_b(bureau):
    case = bureau.case_in(State.HANDLING, unit=bureau.unit_b)
    return DisciplineReferral.objects.create(case=case, unit=bureau.unit_b, reason="超期",
                                             created_at=datetime(2026, 3, 20, 9, 0, tzinfo=SH))


def test_the_supervised_units_handler_answers_a_notice_once_with_an_audit_event(bureau, notice_b):
    answered = escalation.supervision_notice_answer(notice=notice_b, acting_user=bureau.handler_b,
                                                    answer="已约见网民,正在办理")

    assert answered.answered_at is not None and answered.answer == "已约见网民,正在办理"
    event = answered.case.events.order_by("-seq").first()
    assert (event.action, event.actor) == ("supervision_answered", bureau.handler_b)
    assert case_audit_verify(case=answered.case)
    with pytest.raises(escalation.NoticeAnswerRefused):
        escalation.supervision_notice_answer(notice=notice_b, acting_user=bureau.handler_b, answer="再答")
    notice_b.refresh_from_db()
    assert notice_b.answer == "已约见网民,正在办理"


def test_another_units_handler_cannot_answer_a_notice_though_he_holds_the_answer_permission(bureau, notice_b):
    with pytest.raises(PermissionDenied):
        escalation.supervision_notice_answer(notice=notice_b, acting_user=bureau.handler_a, answer="冒答")
    notice_b.refresh_from_db()
    assert notice_b.answered_at is None


def test_an_empty_answer_is_refused(bureau, notice_b):
    with pytest.raises(escalation.NoticeAnswerRefused):
        escalation.supervision_notice_answer(notice=notice_b, acting_user=bureau.handler_b, answer="  ")


def test_a_notice_is_answered_through_the_admin_by_its_unit_and_is_not_found_by_another(client, bureau, notice_b):
    url = reverse("admin:casework_supervisionnotice_answer", args=[notice_b.pk])
    client.force_login(bureau.handler_a)
    assert client.get(url).status_code == 404
    assert client.post(url, {"answer": "冒答"}).status_code == 404

    client.force_login(bureau.handler_b)
    page = client.get(reverse("admin:casework_supervisionnotice_change", args=[notice_b.pk]))
    assert url in page.content.decode()
    assert client.post(url, {"answer": "已办理完毕"}).status_code == 302
    notice_b.refresh_from_db()
    assert notice_b.answer == "已办理完毕"


def test_the_dispatcher_who_sees_the_case_but_is_not_the_unit_cannot_answer_for_it(client, bureau, notice_b):
    client.force_login(bureau.dispatcher)
    url = reverse("admin:casework_supervisionnotice_answer", args=[notice_b.pk])

    assert client.post(url, {"answer": "代答"}).status_code == 403
    notice_b.refresh_from_db()
    assert notice_b.answered_at is None


def test_a_referral_outcome_needs_the_case_in_the_supervisors_scope(bureau, referral_b):
    # A district discipline officer: the outcome permission, but a scope of district A only.
    officer = make_user("district_jjdc", role=roles.SUPERVISOR, unit=bureau.unit_a)

    with pytest.raises(PermissionDenied):
        escalation.referral_record_outcome(referral=referral_b, acting_user=officer, kind="talk", note="约谈")
    referral_b.refresh_from_db()
    assert referral_b.outcome_recorded_at is None

    done = escalation.referral_record_outcome(referral=referral_b, acting_user=bureau.supervisor,
                                              kind="talk", note="约谈")
    assert done.outcome_by == bureau.supervisor


def test_the_case_page_links_an_open_notice_to_its_answer_page_and_shows_the_answer_as_text(
        client, bureau, notice_b):
    client.force_login(bureau.handler_b)
    url = reverse("admin:casework_supervisionnotice_answer", args=[notice_b.pk])
    case_page = reverse("admin:casework_case_change", args=[notice_b.case_id])
    assert url in client.get(case_page).content.decode()

    escalation.supervision_notice_answer(notice=notice_b, acting_user=bureau.handler_b,
                                         answer="<img src=x onerror=alert(1)>")
    body = client.get(case_page).content.decode()
    assert "&lt;img src=x onerror=alert(1)&gt;" in body and "<img src=x" not in body
