"""The dashboard renders real charts for a leader and, for a handler, only his unit's figures.

Headless Chromium (Debian's /usr/bin/chromium) through Playwright against the live server; Chart.js
is served from static/vendor/ (no CDN). Screenshots go to test-artifacts/assessment/.
"""

from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone
import pytest

from casework import services
from tests.factories import Bureau

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "assessment"




def open_dashboard(browser, live_server, user, name):
    context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1400})
    context.set_default_timeout(15000)
    page = context.new_page()
    external = []
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(live_server.url) else None)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "pw")
    with page.expect_navigation():
        page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/assessment/dashboard/")
    page.wait_for_selector("#cw-dashboard[data-ready='1']")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard_{name}.png"), full_page=True)
    return page, external


def unit_rows(page):
    figure = page.locator('[data-chart="volume_by_unit"]')
    figure.locator("summary").click()
    return figure.locator("table tr td:first-child").all_inner_texts()


def test_dashboard_shows_charts_to_a_leader_and_only_his_units_figures_to_a_handler(browser, live_server):
    b = Bureau()
    # Submitted this week: the weekly window opens on the current week unless the reader picks another.
    recent = timezone.now() - timedelta(hours=1)
    for unit in (b.unit_a, b.unit_a, b.unit_b):
        b.case_in("handling", unit=unit, submitted_at=recent)
    case = b.case_in("dispatched", unit=b.unit_b, submitted_at=recent)
    services.case_accept(case=case, acting_user=b.handler_b)

    page, external = open_dashboard(browser, live_server, b.leader, "leader")
    assert page.locator("#cw-dashboard canvas").count() == 5
    # Chart.js drew on every canvas (a drawn canvas is not blank).
    blank = page.evaluate("""() => [...document.querySelectorAll('#cw-dashboard canvas')].filter(c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return !d.some(v => v !== 0); }).length""")
    assert blank == 0
    assert sorted(unit_rows(page)) == ["岳塘分局", "雨湖分局"]
    assert external == []

    page, _ = open_dashboard(browser, live_server, b.handler_a, "handler_a")
    assert unit_rows(page) == ["雨湖分局"]
    week_total = page.evaluate("""() => [...document.querySelectorAll('[data-chart="volume_by_week"] td:nth-child(2)')]
        .reduce((s, td) => s + Number(td.textContent), 0)""")
    assert week_total == 2
