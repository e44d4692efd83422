"""The dashboard's weekly window is the reader's choice, and every figure is explained on the page.

Headless Chromium (Debian's /usr/bin/chromium) through Playwright at 1366×768; screenshots go to
test-artifacts/assessment/.
"""

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
import pytest

from assessment.office_metrics import OFFICE_METRIC_DEFINITIONS
from assessment.selectors import METRIC_DEFINITIONS
from tests.factories import Bureau

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "assessment"
SH = ZoneInfo("Asia/Shanghai")


def login(browser, live_server, user):
    context = browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 768},
                                  bypass_csp=True)  # lets wait_for_function evaluate its predicate; CSP: test_csp_browser
    context.set_default_timeout(15000)
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "pw")
    with page.expect_navigation():
        page.click("input[type=submit]")
    return page


def test_the_reader_moves_the_weekly_window_and_reads_each_definition(browser, live_server):
    b = Bureau()
    for day in (2, 3, 10):  # two messages in the week of 2 March 2026, one in the next
        b.case_in("dispatched", submitted_at=datetime(2026, 3, day, 9, 0, tzinfo=SH))
    page = login(browser, live_server, b.leader)
    page.goto(f"{live_server.url}/admin/assessment/dashboard/")
    page.wait_for_selector("#cw-dashboard[data-ready='1']")
    # The units' definitions, then the office's and the leaders' own (issue 13 §5) for a reader of every unit.
    assert page.locator("#cw-dash-definitions dd").count() == len(METRIC_DEFINITIONS) + len(OFFICE_METRIC_DEFINITIONS)
    assert str(METRIC_DEFINITIONS["handled_on_time"]) in page.locator("#cw-dash-definitions").inner_text()
    # The default window is the current week and the eleven before it, not the newest message's.
    window = page.locator(".cw-dash-window").inner_text()
    today = datetime.now(tz=SH).date()
    sunday = today + timedelta(days=6 - today.weekday())
    assert sunday.isoformat() in window
    # The reader picks four weeks ending with the week of 10 March.
    page.select_option("#cw-dash-controls select[name=weeks]", "4")
    page.wait_for_selector("#cw-dashboard[data-ready='1']")
    page.fill("#cw-dash-controls input[name=end]", "2026-03-10")
    page.dispatch_event("#cw-dash-controls input[name=end]", "change")
    page.wait_for_function("document.querySelector('.cw-dash-window').textContent.includes('2026-03-15')")
    page.wait_for_selector("#cw-dashboard[data-ready='1']")
    assert "2026-02-16 至 2026-03-15" in page.locator(".cw-dash-window").inner_text()
    weeks = page.evaluate("""() => [...document.querySelectorAll('[data-chart="volume_by_week"] tr')].slice(1)
        .map(tr => [tr.children[0].textContent, Number(tr.children[1].textContent)])""")
    assert weeks == [["2026-02-16", 0], ["2026-02-23", 0], ["2026-03-02", 2], ["2026-03-09", 1]]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard_window_chosen.png"), full_page=True)
    # ‹ moves to the four weeks before.
    page.click("#cw-dash-controls button[data-move=previous]")
    page.wait_for_function("document.querySelector('.cw-dash-window').textContent.includes('2026-02-15')")
    assert "2026-01-19 至 2026-02-15" in page.locator(".cw-dash-window").inner_text()


def test_the_report_marks_small_denominators_and_explains_each_figure(browser, live_server):
    b = Bureau()
    for _ in range(5):
        b.case_in("dispatched", unit=b.unit_a)
    b.case_in("dispatched", unit=b.unit_b)
    page = login(browser, live_server, b.leader)
    page.goto(f"{live_server.url}/admin/assessment/report/?start=2026-01-01&end=2026-12-31")
    rows = page.locator("#assessment-table tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).get_attribute("data-unit") == str(b.unit_a.pk)
    assert rows.nth(1).get_attribute("data-small") == "1"
    assert "样本不足" in rows.nth(1).inner_text() and "样本不足" not in rows.nth(0).inner_text()
    # Nine units' figures, the two parts for 督办单 by hand and 办理不力 referrals (issue 13 §6).
    assert page.locator("#assessment-definitions dd").count() == 11
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report_small_marked.png"), full_page=True)
