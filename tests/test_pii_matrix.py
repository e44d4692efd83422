"""The PII matrix (issue 9 §1): every personal-number format × every place citizen text reaches.

One message quotes every format of ``tests.pii_formats`` (mobiles with +86, hyphens, spaces,
full-width and zero-width characters; landlines with and without area code; ID numbers with spaces,
an X, a wrong check digit, 15 digits) in its body, and a number in its subject. It is walked
through the loop and the escalation ladder up to a 纪检督察 referral, and another message is
returned with a reason quoting the numbers. Then each place is read by each role: only the
dispatcher (``casework.view_citizen_contact``) reads the numbers; every other role, every export
they make, every e-mail, the timeline, the referral's frozen material, child pages and the JSON
answers carry them masked. Each test names every format that leaked.
"""

import base64
import csv
from datetime import datetime
import html
import io
from io import StringIO
import json
from zoneinfo import ZoneInfo

from django.core.management import call_command
from django.urls import reverse
from openpyxl import load_workbook
import pytest
import time_machine

from assessment.models import Topic, TopicMembership
from casework import escalation, services
from casework.models import CaseEvent, DisciplineReferral, Notification, State
from tests.pii_formats import FORMATS, body_with_every_format, leaked

SHANGHAI = ZoneInfo("Asia/Shanghai")
DISPATCHED_AT = datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI)
SUBJECT = f"噪音扰民 请回电{FORMATS['mobile_hyphens']}"
WITHOUT_PERMISSION = ["reviewer", "leader", "supervisor", "handler_a"]
CHANGELIST = "admin:casework_case_changelist"


def leaks(text: str) -> list[str]:
    """Return the names of the formats readable in ``text`` (HTML entities decoded)."""
    text = html.unescape(text)
    return [name for name, raw in FORMATS.items() if leaked(raw, text)]


@pytest.fixture
def world(bureau, settings, mailoutbox, django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CELERY_TASK_EAGER_PROPAGATES = True
    call_command("calendar_seed", "--from-year", "2025", "--to-year", "2026", stdout=StringIO(), stderr=StringIO())
    with django_capture_on_commit_callbacks(execute=True), time_machine.travel(DISPATCHED_AT, tick=False):
        case = bureau.case_in(State.HANDLING, subject=SUBJECT, body=body_with_every_format(),
                              submitted_at=DISPATCHED_AT, citizen_contact="13800138000")
        returned = bureau.case_in(State.DISPATCHED, subject="非本单位职责", body="见理由", submitted_at=DISPATCHED_AT)
        services.case_return_to_office(case=returned, acting_user=bureau.handler_a,
                                       reason="非我单位职责,网民留的号码:" + "、".join(FORMATS.values()))
    for when in (datetime(2026, 3, 4, 10, 0), datetime(2026, 3, 5, 10, 1), datetime(2026, 3, 10, 10, 0),
                 datetime(2026, 3, 12, 10, 0)):
        with django_capture_on_commit_callbacks(execute=True):
            escalation.escalation_sweep(now=when.replace(tzinfo=SHANGHAI))
    topic = Topic.objects.create(title=SUBJECT, keywords="噪音 扰民", heat=3.0, message_count=1)
    TopicMembership.objects.create(topic=topic, case=case, similarity=1.0)
    bureau.case, bureau.returned, bureau.topic = case, returned, topic
    bureau.referral = DisciplineReferral.objects.get(case=case)
    assert len(mailoutbox) >= 5
    return bureau


def page(client, user, url, **params):
    client.force_login(user)
    response = client.get(url, params)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


def case_url(case):
    return reverse("admin:casework_case_change", args=[case.pk])


def export(client, user, case, action):
    client.force_login(user)
    response = client.post(reverse(CHANGELIST), {"action": action, "_selected_action": [case.pk], "index": 0})
    assert response.status_code == 200
    if action == "export_csv":
        return "\n".join(",".join(r) for r in csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    sheet = load_workbook(io.BytesIO(response.content)).active
    return "\n".join(str(c.value or "") for row in sheet.iter_rows() for c in row)


# ---------------------------------------------------------------- pages per role


@pytest.mark.parametrize("role", WITHOUT_PERMISSION)
def test_case_page_masks_every_format_for_roles_without_the_permission(client, world, role):
    content = page(client, getattr(world, role), case_url(world.case))
    assert "cw-body" in content
    assert leaks(content) == []
    assert "110" in content and "12345" in content  # public numbers stay


def test_case_page_shows_the_numbers_to_the_dispatcher(client, world):
    content = html.unescape(page(client, world.dispatcher, case_url(world.case)))
    assert all(raw in content for raw in FORMATS.values())


def test_case_page_stays_hidden_from_another_unit(client, world):
    client.force_login(world.handler_b)
    assert client.get(case_url(world.case)).status_code == 404


@pytest.mark.parametrize("role", [*WITHOUT_PERMISSION, "dispatcher"])
def test_case_list_shows_subjects_masked_to_everyone_without_the_permission(client, world, role):
    content = page(client, getattr(world, role), reverse(CHANGELIST))
    assert world.case.reference in content
    if role == "dispatcher":
        assert FORMATS["mobile_hyphens"] in content
    else:
        assert leaks(content) == []


@pytest.mark.parametrize("role", ["reviewer", "handler_a"])
def test_the_search_box_is_no_oracle_on_masked_numbers(client, world, role):
    client.force_login(getattr(world, role))
    for term in ("0013", "13800138000", "88886666", "19900101"):
        response = client.get(reverse(CHANGELIST), {"q": term})
        assert list(response.context["cl"].result_list) == [], term
    response = client.get(reverse(CHANGELIST), {"q": world.case.reference})
    assert list(response.context["cl"].result_list) == [world.case]


@pytest.mark.parametrize("role", WITHOUT_PERMISSION)
def test_timeline_reasons_are_masked(client, world, role):
    user = getattr(world, role)
    client.force_login(user)
    response = client.get(case_url(world.returned))
    if response.status_code == 404:  # the returned case left the unit: not in this role's scope
        return
    content = response.content.decode()
    assert "非我单位职责" in content
    assert leaks(content) == []


def test_timeline_reasons_are_shown_to_the_dispatcher(client, world):
    content = html.unescape(page(client, world.dispatcher, case_url(world.returned)))
    assert FORMATS["mobile_plus86"] in content


@pytest.mark.parametrize("role", ["handler_a", "reviewer", "leader", "supervisor"])
def test_child_pages_of_the_case_mask_what_they_quote(client, world, role):
    """Rows hanging off the case (督办单, referral, events): every page the role may open is masked."""
    user = getattr(world, role)
    client.force_login(user)
    urls = [reverse("admin:casework_supervisionnotice_changelist"),
            reverse("admin:casework_disciplinereferral_changelist")]
    urls += [reverse("admin:casework_supervisionnotice_change", args=[n.pk])
             for n in world.case.supervision_notices.all()]
    urls += [reverse("admin:casework_caseevent_change", args=[e.pk])
             for e in CaseEvent.objects.filter(case__in=[world.case, world.returned])]
    opened = 0
    for url in urls:
        response = client.get(url)
        if response.status_code in (403, 404):  # not this role's page, or outside its scope
            continue
        assert response.status_code == 200, url
        opened += 1
        assert leaks(response.content.decode()) == [], url
    assert opened >= 1


# ---------------------------------------------------------------- exports


@pytest.mark.parametrize("action", ["export_csv", "export_xlsx"])
@pytest.mark.parametrize("role", ["handler_a", "reviewer", "leader"])
def test_exports_mask_every_format_without_the_permission(client, world, role, action):
    content = export(client, getattr(world, role), world.case, action)
    assert world.case.reference in content
    assert leaks(content) == []


@pytest.mark.parametrize("action", ["export_csv", "export_xlsx"])
def test_exports_keep_the_numbers_for_the_dispatcher(client, world, action):
    content = export(client, world.dispatcher, world.case, action)
    assert all(raw in content for raw in FORMATS.values() if not raw.startswith(("+", "(")))


def test_assessment_drill_down_and_export_mask_subjects(client, world):
    params = {"year": 2026, "metric": "sign_for_on_time", "part": "den"}
    content = page(client, world.reviewer, reverse("assessment:report_cases"), **params)
    assert world.case.reference in content
    assert leaks(content) == []
    client.force_login(world.reviewer)
    response = client.get(reverse("assessment:report_export"), params)
    assert response.status_code == 200
    book = load_workbook(io.BytesIO(response.content))
    text = "\n".join(str(c.value or "") for sheet in book for row in sheet.iter_rows() for c in row)
    assert world.case.reference in text and leaks(text) == []
    client.force_login(world.dispatcher)
    book = load_workbook(io.BytesIO(client.get(reverse("assessment:report_export"), params).content))
    text = "\n".join(str(c.value or "") for sheet in book for row in sheet.iter_rows() for c in row)
    assert FORMATS["mobile_hyphens"] in text


# ---------------------------------------------------------------- e-mails


def test_no_e_mail_carries_a_personal_number(world, mailoutbox):
    subjects = [m.subject for m in mailoutbox]
    assert any("移交纪检督察" in s for s in subjects) and any("新交办" in s for s in subjects)
    for message in mailoutbox:
        parts = [message.subject, message.body, *[a[0] for a in getattr(message, "alternatives", [])]]
        assert leaks("\n".join(parts)) == [], message.subject
    assert any("留言摘要" in m.body for m in mailoutbox)  # the excerpt is there, masked
    for notification in Notification.objects.all():
        assert leaks(f"{notification.subject}\n{notification.body}\n{notification.html_body}") == []


# ---------------------------------------------------------------- referral snapshot


def test_the_referral_keeps_its_material_but_shows_it_masked(client, world):
    assert world.referral.snapshot["body"] == world.case.body  # the frozen evidence is complete
    for url in (reverse("admin:casework_disciplinereferral_change", args=[world.referral.pk]),
                reverse("admin:casework_disciplinereferral_outcome", args=[world.referral.pk])):
        content = page(client, world.supervisor, url)
        assert world.case.reference in content
        assert leaks(content) == []


# ---------------------------------------------------------------- JSON answers and topics


@pytest.mark.parametrize("role", ["handler_a", "leader", "reviewer"])
def test_dashboard_json_masks_topic_titles(client, world, role):
    data = json.loads(page(client, getattr(world, role), reverse("assessment:dashboard_data")))
    titles = [t["title"] for t in data["hot_topics"]]
    assert titles, data["hot_topics"]
    assert leaks(json.dumps(data, ensure_ascii=False)) == []


def test_dashboard_json_shows_topic_titles_to_the_dispatcher(client, world):
    data = json.loads(page(client, world.dispatcher, reverse("assessment:dashboard_data")))
    assert SUBJECT in [t["title"] for t in data["hot_topics"]]


@pytest.mark.parametrize("role", ["leader", "reviewer"])
def test_topic_pages_mask_titles_and_member_subjects(client, world, role):
    user = getattr(world, role)
    for url in (reverse("admin:assessment_topic_changelist"),
                reverse("admin:assessment_topic_change", args=[world.topic.pk]),
                reverse("admin:assessment_topic_history", args=[world.topic.pk])):
        content = page(client, user, url)
        assert leaks(content) == [], url


def test_articles_json_and_the_push_api_answer_carry_no_citizen_number(client, world):
    data = page(client, world.handler_a, reverse("assessment:articles_for_case", args=[world.case.pk]))
    assert leaks(data) == []
    client.logout()
    auth = "Basic " + base64.b64encode(b"dispatcher:pw").decode()
    response = client.post(
        reverse("api_messages_push") + "?platform=wzxd", content_type="application/json",
        data=json.dumps([{"message_id": "P-PII", "subject": SUBJECT, "body": body_with_every_format(),
                          "submitted_at": "2026-03-02T09:00:00+08:00"}], ensure_ascii=False),
        HTTP_AUTHORIZATION=auth,
    )
    assert response.status_code == 200
    assert leaks(response.content.decode()) == []
