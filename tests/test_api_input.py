"""The push API takes strings where strings are meant and reports each bad message alone (issue 9 §3).

Raw bodies are written by hand here (``json.dumps`` cannot produce duplicate keys, and lone
surrogates must reach the server as the ``\\ud800`` escape a client may send).
"""

import base64
import json

from django.urls import reverse
import pytest

from casework.models import Case

URL = reverse("api_messages_push") + "?platform=wzxd"


def auth(username: str = "dispatcher", password: str = "pw") -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def post(client, body: str | bytes, content_type: str = "application/json"):
    return client.post(URL, data=body, content_type=content_type, **auth())


def good(message_id: str, **fields) -> dict:
    return {
        "message_id": message_id,
        "subject": "小区门口路灯坏了",
        "body": "晚上很黑。",
        "submitted_at": "2026-03-02T09:00:00+08:00",
        **fields,
    }


def dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("subject", 46000, "「subject」必须是字符串,收到的是数字"),
        ("submitted_at", 46000, "「submitted_at」必须是字符串,收到的是数字"),  # not a 2025 date
        ("body", {"text": "正文"}, "「body」必须是字符串,收到的是对象"),
        ("body", ["正文"], "「body」必须是字符串,收到的是数组"),
        ("message_id", 123, "「message_id」必须是字符串,收到的是数字"),
        ("user_id", True, "「user_id」必须是字符串,收到的是布尔值"),
        ("likes", "12", "「likes」必须是整数,收到的是字符串"),
        ("likes", 1.5, "「likes」必须是整数,收到的是数字"),
        ("dislikes", False, "「dislikes」必须是整数,收到的是布尔值"),
        ("category", ["a"], "「category」必须是字符串,收到的是数组"),
    ],
)
def test_a_value_of_the_wrong_type_is_reported_for_that_message_only(client, bureau, field, value, expected):
    messages = [good("T-1"), {**good("T-2"), field: value}, good("T-3")]

    response = post(client, dumps(messages))

    assert response.status_code == 200
    body = response.json()
    assert body["created"] == 2
    (error,) = body["errors"]
    assert error["index"] == 1 and expected in error["reason"]
    assert sorted(Case.objects.values_list("external_id", flat=True)) == ["T-1", "T-3"]


def test_nulls_and_integral_numbers_are_taken_where_they_are_meant(client, bureau):
    response = post(client, dumps([good("N-1", user_id=None, likes=7.0, dislikes=None, category=None)]))

    assert response.json()["created"] == 1
    case = Case.objects.get(external_id="N-1")
    assert (case.likes, case.dislikes, case.citizen_name, case.category) == (7, None, "", "")


def test_a_lone_surrogate_is_reported_alone(client, bureau):
    body = "[" + dumps(good("S-1")) + ',{"message_id": "S-2", "subject": "坏\\ud800字", "body": "正文", ' \
        '"submitted_at": "2026-03-02T09:00:00+08:00"},' + dumps(good("S-3")) + "]"

    response = post(client, body)

    data = response.json()
    assert response.status_code == 200 and data["created"] == 2
    (error,) = data["errors"]
    assert (error["index"], error["message_id"]) == (1, "S-2") and "代理字符" in error["reason"]


def test_deep_nesting_duplicate_keys_and_broken_json_inside_one_message_fail_only_it(client, bureau):
    deep = '{"message_id": "D-2", "subject": ' + "[" * 50_000 + "]" * 50_000 + "}"
    duplicate = '{"message_id": "D-3", "subject": "甲", "subject": "乙", "body": "b", "submitted_at": "2026-03-02T09:00:00"}'
    broken = '{"message_id": "D-4", "subject": tru}'
    body = "[" + ",".join([dumps(good("D-1")), deep, duplicate, broken, dumps(good("D-5"))]) + "]"

    response = post(client, body)

    assert response.status_code == 200
    data = response.json()
    assert data["created"] == 2
    reasons = {e["index"]: e["reason"] for e in data["errors"]}
    assert sorted(reasons) == [1, 2, 3]
    assert "嵌套超过" in reasons[1]
    assert "键「subject」出现了两次" in reasons[2]
    assert "不是有效的 JSON" in reasons[3]
    assert sorted(Case.objects.values_list("external_id", flat=True)) == ["D-1", "D-5"]


def test_the_envelope_and_a_single_message_are_still_accepted(client, bureau):
    assert post(client, dumps({"platform": "wzxd", "messages": [good("E-1")]})).json()["created"] == 1
    assert post(client, dumps(good("E-2"))).json()["created"] == 1
    single_bad = post(client, dumps(good("E-3", subject=5))).json()
    assert single_bad["created"] == 0 and single_bad["errors"][0]["index"] == 0
    envelope_bad = post(client, dumps({"platform": 7, "messages": [good("E-4")]}))
    assert envelope_bad.status_code == 400 and "platform" in envelope_bad.json()["error"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/json"]
)
def test_a_body_that_is_not_declared_json_is_refused_with_415(client, bureau, content_type):
    response = post(client, dumps([good("C-1")]), content_type=content_type)

    assert response.status_code == 415 and "application/json" in response.json()["error"]
    assert not Case.objects.exists()


def test_json_with_a_charset_parameter_is_json(client, bureau):
    assert post(client, dumps([good("C-2")]), content_type="application/json; charset=utf-8").json()["created"] == 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"\xff\xfe[]", "UTF-8"),
        (b"[{", "括号未闭合"),
        (b'"just a string"', "留言对象"),
        (b"42", "留言对象"),
        (b"[] []", "多余内容"),
    ],
)
def test_a_body_unusable_as_a_whole_is_refused_with_400_and_writes_nothing(client, bureau, body, expected):
    response = post(client, body)

    assert response.status_code == 400 and expected in response.json()["error"]
    assert not Case.objects.exists()


def test_request_size_and_batch_length_are_bounded(client, bureau, settings):
    settings.CASEWORK_API_MAX_BODY_BYTES = 10_000
    settings.CASEWORK_API_MAX_MESSAGES = 5
    too_big = post(client, dumps([good("B-1", body="很长" * 5000)]))
    assert too_big.status_code == 413 and "10,000" in too_big.json()["error"]
    too_many = post(client, dumps([good(f"B-{n}") for n in range(6)]))
    assert too_many.status_code == 400 and "最多推送 5 条" in too_many.json()["error"]
    assert not Case.objects.exists()
    assert post(client, dumps([good(f"B-{n}") for n in range(5)])).json()["created"] == 5


def test_a_bad_message_never_fails_the_batch_half_way(client, bureau):
    messages = [good(f"H-{n}") if n % 3 else good(f"H-{n}", submitted_at=n) for n in range(30)]

    data = post(client, dumps(messages)).json()

    assert data["created"] == 20 and [e["index"] for e in data["errors"]] == list(range(0, 30, 3))
    assert Case.objects.count() == 20
