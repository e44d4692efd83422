"""Breaking the admin search box (field cases C21, C23): Chinese words, phone fragments, full width."""

from django.urls import reverse
import pytest

from casework.models import Case, State
from casework.text import to_half_width

CHANGELIST = "admin:casework_case_changelist"


def found(client, q):
    """The cases the search box finds for ``q``, less those it finds by their case number: a digit
    fragment such as "0013" also finds JB-2026-001340 when the sequence has come that far."""
    response = client.get(reverse(CHANGELIST), {"q": q})
    assert response.status_code == 200
    by_number = set(Case.objects.filter(reference__contains=to_half_width(q)).values_list("pk", flat=True))
    return {c.pk for c in response.context["cl"].result_list} - by_number


@pytest.fixture
def messages_(bureau):
    return {
        "lamp": bureau.case_in(State.REGISTERED, subject="小区路灯", body="小区门口路灯坏了三天",
                               citizen_contact="138-0013-8000"),
        "upload": bureau.case_in(State.REGISTERED, subject="网上办事", body="网页上传附件总是失败",
                                 citizen_contact="13966667777"),
        "full_width": bureau.case_in(State.REGISTERED, subject="回电", body="电话１３８００１３８０００,请回电"),
    }


@pytest.mark.parametrize(("term", "key"), [("路灯", "lamp"), ("三天", "lamp"), ("附件", "upload"),
                                           ("失败", "upload")])
def test_c21_a_word_from_the_middle_of_a_chinese_sentence_finds_its_message(client, bureau, messages_, term, key):
    client.force_login(bureau.dispatcher)

    assert found(client, term) == {messages_[key].pk}


def test_c21_a_phone_fragment_finds_the_message_for_a_clerk_who_may_see_contacts(client, bureau, messages_):
    client.force_login(bureau.dispatcher)  # holds casework.view_citizen_contact

    assert found(client, "0013") == {messages_["lamp"].pk}
    # Typed full-width it finds the contact and also the body where the citizen wrote it full-width.
    assert found(client, "００１３") == {messages_["lamp"].pk, messages_["full_width"].pk}
    assert found(client, "66667777") == {messages_["upload"].pk}


def test_c21_a_phone_fragment_is_no_contact_oracle_for_users_without_the_contact_permission(
        client, bureau, messages_):
    bureau.handler_a.user_permissions.clear()
    client.force_login(bureau.handler_a)
    case = bureau.case_in(State.HANDLING, subject="某事", body="无", citizen_contact="13712345678")

    assert not bureau.handler_a.has_perm("casework.view_citizen_contact")
    assert found(client, "1234") == set()
    assert found(client, "某事") == {case.pk}


def test_c23_full_width_text_copied_from_a_message_body_still_finds_that_message(client, bureau, messages_):
    client.force_login(bureau.dispatcher)

    assert found(client, "１３８００１３８０００") == {messages_["full_width"].pk}
