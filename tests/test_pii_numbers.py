"""Personal numbers: found by maintained parsers in every format, masked, and kept out of a published reply.

Issue 9 §1: the check before publication missed ``+8613800138000``, ``138-0013-8000``, ``138 0013 8000``,
``(0731)88886666``, ``0731 8888 6666``, ID numbers with spaces and digits split by zero-width
characters; short landlines (``8888666``) were not masked at all.
"""

import pytest

from casework import services
from casework.models import State
from casework.text import find_personal_numbers, mask_personal_numbers, personal_numbers
from tests.pii_formats import FORMATS, NOT_PERSONAL, body_with_every_format, leaked


@pytest.mark.parametrize("name", FORMATS)
def test_each_format_is_found_in_running_text(name):
    raw = FORMATS[name]
    found = personal_numbers(f"您好,请致电{raw}联系,谢谢。")
    assert len(found) == 1, found
    assert found[0].kind in {"phone", "id", "landline"}
    assert find_personal_numbers(f"您好,请致电{raw}联系,谢谢。")


@pytest.mark.parametrize("name", FORMATS)
def test_each_format_is_masked_and_the_rest_of_the_text_kept(name):
    raw = FORMATS[name]
    text = f"您好,请致电{raw}联系,报警110。"
    masked = mask_personal_numbers(text)
    assert not leaked(raw, masked), masked
    assert masked.startswith("您好,请致电") and masked.endswith("联系,报警110。")
    assert "*" in masked
    assert find_personal_numbers(masked) == []  # a masked number is not found again


@pytest.mark.parametrize("text", NOT_PERSONAL)
def test_public_numbers_dates_amounts_and_references_are_not_personal(text):
    assert find_personal_numbers(f"请拨打{text}咨询") == []
    assert mask_personal_numbers(f"请拨打{text}咨询") == f"请拨打{text}咨询"


def test_links_in_mails_keep_their_digits():
    url = "http://127.0.0.1:8000/admin/casework/case/1234567/change/?id=88886666"
    assert mask_personal_numbers(url) == url


def test_every_format_in_one_body_is_masked():
    body = body_with_every_format()
    masked = mask_personal_numbers(body)
    assert [name for name, raw in FORMATS.items() if leaked(raw, masked)] == []
    assert "110" in masked and "12345" in masked


@pytest.mark.parametrize("name", FORMATS)
def test_publication_is_refused_for_a_number_in_the_reply_or_any_other_published_field(bureau, name):
    raw = FORMATS[name]
    # The published text is the signed draft (issue 8 §1): a number in it, as signed, is refused.
    signed_with_number = bureau.case_in(State.APPROVED, reply=f"您好,已处理,如有疑问请拨打{raw}。")
    with pytest.raises(services.TransitionRefused, match="电话或身份证号码"):
        services.case_publish_reply(case=signed_with_number, acting_user=bureau.dispatcher, where="问政西地省")
    signed_with_number.refresh_from_db()
    assert signed_with_number.state == State.APPROVED and signed_with_number.published_reply == ""
    # A number in another published field (where it was published) is refused too.
    case = bureau.case_in(State.APPROVED, reply="您好,已处理。如遇紧急情况请拨打110,政务服务热线12345。")
    with pytest.raises(services.TransitionRefused, match="电话或身份证号码"):
        services.case_publish_reply(case=case, acting_user=bureau.dispatcher, where=f"问政西地省 联系人{raw}")
    case.refresh_from_db()
    assert case.state == State.APPROVED and case.published_reply == ""
    # Public numbers are fine in a reply.
    services.case_publish_reply(case=case, acting_user=bureau.dispatcher, where="问政西地省")
    case.refresh_from_db()
    assert case.state == State.REPLIED
