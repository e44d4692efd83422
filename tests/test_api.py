"""The platform push endpoint registers messages idempotently and reports bad ones."""

import base64
import json

from django.urls import reverse
import pytest

from casework.models import Case, CaseEvent, State


def auth(username: str, password: str = "pw") -> dict:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def push(client, payload, user="dispatcher", password="pw", platform="wzxd"):
    return client.post(
        reverse("api_messages_push") + f"?platform={platform}",
        data=json.dumps(payload, ensure_ascii=False),
        content_type="application/json",
        **(auth(user, password) if user else {}),
    )


MESSAGE = {
    "message_id": "P-001",
    "user_id": "U123",
    "subject": "小区门口路灯坏了三天",
    "body": "路灯坏了🤦‍♂️三天了😡,晚上很黑。𠮷",
    "submitted_at": "2026-03-02T09:00:00+08:00",
    "likes": 3,
}


def test_push_registers_a_message_and_a_resend_is_skipped(client, bureau):
    first = push(client, MESSAGE)
    assert first.status_code == 200
    body = first.json()
    assert (body["created"], body["skipped"], body["errors"]) == (1, 0, [])
    case = Case.objects.get(external_id="P-001")
    assert body["cases"] == [{"message_id": "P-001", "reference": case.reference, "created": True}]
    assert case.state == State.REGISTERED
    assert case.body == MESSAGE["body"]  # emoji and CJK Extension-B kept as sent
    assert case.likes == 3
    event = CaseEvent.objects.get(case=case)
    assert (event.action, event.actor, event.payload["source"]) == ("register", bureau.dispatcher, "import")

    again = push(client, MESSAGE).json()
    assert (again["created"], again["skipped"]) == (0, 1)
    assert Case.objects.filter(external_id="P-001").count() == 1


def test_push_keeps_good_messages_and_reports_bad_ones_by_index(client, bureau):
    bad_date = {**MESSAGE, "message_id": "P-002", "submitted_at": "昨天下午"}
    no_subject = {**MESSAGE, "message_id": "P-003", "subject": ""}
    good = {**MESSAGE, "message_id": "P-004"}
    body = push(client, {"platform": "wzxd", "messages": [bad_date, no_subject, good, "not an object"]}).json()
    assert body["created"] == 1
    assert [(e["index"], e["message_id"]) for e in body["errors"]] == [(0, "P-002"), (1, "P-003"), (3, "")]
    assert "留言时间无法识别" in body["errors"][0]["reason"]
    assert "缺少留言主题" in body["errors"][1]["reason"]
    assert list(Case.objects.values_list("external_id", flat=True)) == ["P-004"]


def test_push_without_credentials_or_permission_is_refused_and_writes_nothing(client, bureau):
    assert push(client, MESSAGE, user=None).status_code == 401
    assert push(client, MESSAGE, password="wrong").status_code == 401
    assert push(client, MESSAGE, user="handler_a").status_code == 403
    assert push(client, MESSAGE, platform="nope").status_code == 404
    assert client.get(reverse("api_messages_push")).status_code == 405
    bad_json = client.post(reverse("api_messages_push") + "?platform=wzxd", data="{", content_type="application/json",
                           **auth("dispatcher"))
    assert bad_json.status_code == 400
    assert not Case.objects.exists()


@pytest.mark.parametrize("raw", ["ＰＯＳＴ－００１", "POST-001"])
def test_pushed_full_width_message_id_is_stored_half_width_and_deduplicated(client, bureau, raw):
    push(client, {**MESSAGE, "message_id": "POST-001"})
    body = push(client, {**MESSAGE, "message_id": raw}).json()
    assert (body["created"], body["skipped"]) == (0, 1)
    assert list(Case.objects.values_list("external_id", flat=True)) == ["POST-001"]


def test_a_resent_message_does_not_reveal_the_reference_of_a_case_the_account_cannot_see(client, bureau):
    from accounts import roles
    from tests.factories import make_user

    push(client, MESSAGE)  # registered by the city-wide dispatcher
    clerk = make_user("district_clerk", role=roles.DISPATCHER, unit=bureau.unit_a)  # no city-wide scope
    body = push(client, MESSAGE, user="district_clerk").json()
    assert (body["created"], body["skipped"]) == (0, 1)
    assert body["cases"] == [{"message_id": "P-001", "reference": None, "created": False}]
    assert clerk.pk
