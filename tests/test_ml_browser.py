"""Issue 12 in a real browser: the dispatcher's suggestion and duplicate panel, the handler's
类案参考 insert, the leader's dashboard alert mark."""

import csv
from datetime import date
from pathlib import Path

from django.conf import settings
import pytest

from assessment.models import Topic, TopicAlert, TopicMembership
from casework import router_service
from casework.models import CaseEvent, State

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "ml"
DATA = Path(__file__).parent / "data" / "router_small.csv"


def login(browser, live_server, user):
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(20000)
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "pw")
    with page.expect_navigation():
        page.click("input[type=submit]")
    return context, page


def test_dispatcher_handler_and_leader_see_what_the_archive_taught(browser, live_server, bureau, settings):
    settings.CASEWORK_ROUTER_MIN_HISTORY = 8
    rows = list(csv.DictReader(DATA.open(encoding="utf-8")))
    traffic = [r for r in rows if r["category"] == "交通运输"]
    health = [r for r in rows if r["category"] == "卫生计生"]
    for r in traffic[:5]:
        bureau.case_in(State.REPLIED, unit=bureau.unit_a, subject=r["subject"], body=r["body"])
    for r in health[:5]:
        bureau.case_in(State.REPLIED, unit=bureau.unit_b, subject=r["subject"], body=r["body"])
    assert router_service.router_train(folds=2) is not None
    first = bureau.register(subject=traffic[6]["subject"], body=traffic[6]["body"], citizen_name="UU1")
    repeat = bureau.register(subject=traffic[6]["subject"], body=traffic[6]["body"], citizen_name="UU2")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    context, page = login(browser, live_server, bureau.dispatcher)
    page.goto(f"{live_server.url}/admin/casework/case/{repeat.pk}/change/")
    assert page.get_attribute("#cw-dispatch-suggestion", "data-source") in ("model", "catalogue")
    assert page.locator("#cw-suggest-top3 tbody tr").count() == 2
    assert first.reference in page.inner_text("#cw-duplicates")
    page.screenshot(path=str(ARTIFACTS / "dispatch_suggestion.png"), full_page=True)
    suggested = page.get_attribute("#id_suggested_unit_id", "value")
    assert page.eval_on_selector("#id_unit", "e => e.value") == suggested  # preselected
    with page.expect_navigation():
        page.click("#cw-form-dispatch input[type=submit]")
    event = CaseEvent.objects.get(case=repeat, action="dispatch")
    assert event.payload["suggestion"]["taken"] is True
    context.close()

    drafting = bureau.case_in(State.HANDLING, unit=bureau.unit_a, subject=traffic[0]["subject"], body=traffic[0]["body"])
    context, page = login(browser, live_server, bureau.handler_a)
    page.goto(f"{live_server.url}/admin/casework/case/{drafting.pk}/change/")
    item = page.locator("#cw-similar .cw-similar-item").first
    reply = item.locator(".cw-similar-reply").inner_text()
    item.locator(".cw-insert-reply").click()
    assert page.eval_on_selector("#id_reply_text", "e => e.value").strip() == reply.strip()
    page.screenshot(path=str(ARTIFACTS / "similar_replies.png"), full_page=True)
    context.close()

    topic = Topic.objects.create(title="天然气开户费", status=Topic.Status.CONFIRMED)
    TopicMembership.objects.create(topic=topic, case=first, similarity=1)
    TopicAlert.objects.create(topic=topic, week_start=date(2026, 3, 2), count=9, baseline=1.0)
    context, page = login(browser, live_server, bureau.leader)
    page.goto(f"{live_server.url}/admin/")
    page.wait_for_selector("#cw-dashboard[data-ready='1']")
    assert "天然气开户费" in page.inner_text("#cw-dash-alerts")
    page.screenshot(path=str(ARTIFACTS / "dashboard_alert.png"), full_page=True)
    context.close()
