"""Where the 网评办's and the leaders' own rates are shown: the report and the dashboard, in zh and en.

Headless Chromium (/usr/bin/chromium) against the live server, 1366×768; screenshots into
test-artifacts/office/ (looked at by hand: the office table beside the units', marks and links).
"""

from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone
import pytest
import time_machine

from casework import services
from tests.factories import Bureau

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "office"


def _page(browser, live_server, user, language):
    context = browser.new_context(locale="zh-CN" if language == "zh-hans" else "en-US",
                                  viewport={"width": 1366, "height": 768})
    context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": live_server.url}])
    context.set_default_timeout(15000)
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "pw")
    with page.expect_navigation():
        page.click("input[type=submit]")
    return page


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_the_office_rates_are_shown_beside_the_units_with_marks_and_links(browser, live_server, language):
    b = Bureau()
    start = timezone.now() - timedelta(days=10)
    with time_machine.travel(start, tick=False):
        cases = [b.register() for _ in range(3)]
    with time_machine.travel(start + timedelta(hours=2), tick=False):
        services.case_dispatch(case=cases[0], acting_user=b.dispatcher, unit=b.unit_a)
    services.case_dispatch(case=cases[1], acting_user=b.dispatcher, unit=b.unit_b)
    b.case_in("approved")
    page = _page(browser, live_server, b.reviewer, language)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{live_server.url}/admin/assessment/report/")
    table = page.locator("#office-table")
    table.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"report_office_{language}.png"))
    office = page.locator('#office-table tr[data-who="office"] td[data-metric="dispatch_on_time"]')
    assert office.get_attribute("data-den") == "4" and office.get_attribute("data-num") == "2"
    assert page.locator("#office-definitions dt").count() == 3
    if language == "en":
        assert "On-time dispatch rate" in page.content()
    with page.expect_navigation():
        office.locator("a").first.click()
    assert page.locator("#drill-total").get_attribute("data-total") == "4"
    page.goto(f"{live_server.url}/admin/assessment/dashboard/")
    page.wait_for_selector("#cw-dashboard[data-ready='1']")
    page.locator("#cw-dash-office").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"dashboard_office_{language}.png"))
    month = timezone.localtime(start).strftime("%Y-%m")
    cell = page.locator(f'#cw-dash-office tr[data-month="{month}"] td[data-who="office"][data-metric="dispatch_on_time"]')
    same_month = month == timezone.localtime().strftime("%Y-%m")
    assert ("(2/4)" if same_month else "(1/3)") in cell.inner_text()
