"""Bulk dispatch in a real browser (issue 12 §1): the learned top three on each row, preselected,
and each dispatch recording whether the suggestion was taken; zh and en at 1366×768.

Screenshots into test-artifacts/ml/ (looked at by hand: the rows, the unit choices and the
suggestion under each fit the screen).
"""

import csv
from pathlib import Path

from django.conf import settings
import pytest

from casework import router_service
from casework.models import CaseEvent, State

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "ml"
DATA = Path(__file__).parent / "data" / "router_small.csv"


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_bulk_dispatch_shows_the_learned_suggestion_on_every_row(browser, live_server, bureau, settings, language):
    settings.CASEWORK_ROUTER_MIN_HISTORY = 12
    rows = list(csv.DictReader(DATA.open(encoding="utf-8")))
    by_cat = {c: [r for r in rows if r["category"] == c] for c in ("交通运输", "卫生计生")}
    for cat, unit in (("交通运输", bureau.unit_a), ("卫生计生", bureau.unit_b)):
        for r in by_cat[cat][:8]:
            bureau.case_in(State.REPLIED, unit=unit, subject=r["subject"], body=r["body"])
    assert router_service.router_train(folds=2) is not None
    new = [bureau.register(subject=r["subject"], body=r["body"])
           for r in (by_cat["交通运输"][9], by_cat["卫生计生"][9], by_cat["交通运输"][10])]

    context = browser.new_context(locale="zh-CN" if language == "zh-hans" else "en-US",
                                  viewport={"width": 1366, "height": 768})
    context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": live_server.url}])
    context.set_default_timeout(20000)
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", bureau.dispatcher.username)
    page.fill("#id_password", "pw")
    with page.expect_navigation():
        page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/casework/case/?state__exact=registered")
    for case in new:
        page.check(f'input.action-select[value="{case.pk}"]')
    page.select_option("select[name=action]", "bulk_dispatch")
    with page.expect_navigation():
        page.click("button[name=index]")
    assert page.locator("#cw-bulk-dispatch tbody tr").count() == 3
    assert page.locator(".cw-bulk-suggest[data-source=model]").count() == 3
    assert page.locator(".cw-top3 li").count() == 6  # two units, on each of the three rows
    text = page.inner_text("#cw-bulk-dispatch")
    assert ("Suggested" if language == "en" else "建议") in text and "%" in text
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1366, f"the bulk dispatch page is {width}px wide"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"bulk_dispatch_{language}.png"), full_page=True)
    preselected = {c.pk: page.eval_on_selector(f"select[name=unit_{c.pk}]", "e => e.value") for c in new}
    with page.expect_navigation():
        page.click("#cw-bulk-dispatch input[type=submit]")
    for case in new:
        s = CaseEvent.objects.get(case=case, action="dispatch").payload["suggestion"]
        assert s["source"] == "model" and s["taken"] is True and str(s["unit_id"]) == preselected[case.pk]
    context.close()
