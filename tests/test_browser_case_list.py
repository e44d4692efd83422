"""The case list reads at a glance at the bureau's office screen (1366×768) and at 1920×1080.

Real Chromium on the live server, in Chinese and in English: the subject column is wide enough to
read, nothing overflows sideways, and the running clock shows red when overdue and amber when at
most one working day is left. Screenshots go to ``test-artifacts/case_list/``.
"""

from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone
import pytest

from casework import calendar, services
from casework.models import MessageType

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "case_list"


def _seed(bureau):
    """Three consultations (3 working days to reply) being handled: overdue, due soon and in time."""
    now = timezone.now()
    cal = calendar.work_calendar()
    starts = {
        "overdue": now - timedelta(days=20),
        "due_soon": calendar.subtract_working_days(now, 2, cal=cal),
        "ok": now - timedelta(minutes=5),
    }
    cases = {}
    for name, at in starts.items():
        case = bureau.register(subject=f"关于小区门口路灯长期损坏无人维修的问题反映({name})",
                               message_type=MessageType.CONSULT, submitted_at=at - timedelta(hours=1))
        case = services.case_dispatch(case=case, acting_user=bureau.dispatcher, unit=bureau.unit_a, at=at)
        cases[name] = services.case_accept(case=case, acting_user=bureau.handler_a)
    return cases


@pytest.mark.parametrize("width,height", [(1366, 768), (1920, 1080)])
@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_case_list_reads_at_a_glance(browser, live_server, bureau, width, height, language):
    cases = _seed(bureau)
    context = browser.new_context(viewport={"width": width, "height": height},
                                  locale="zh-CN" if language == "zh-hans" else "en-US")
    context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": live_server.url}])
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", bureau.dispatcher.username)
    page.fill("#id_password", "pw")
    with page.expect_navigation():
        page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/casework/case/")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"case_list_{language}_{width}x{height}.png"))

    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "the page scrolls sideways"
    table_right = page.evaluate("document.querySelector('#result_list').getBoundingClientRect().right")
    assert table_right <= width
    subject_width = page.evaluate("document.querySelector('#result_list .column-subject').getBoundingClientRect().width")
    assert subject_width >= (300 if width < 1500 else 450), subject_width

    for name, css in (("overdue", "cw-overdue"), ("due_soon", "cw-due-soon"), ("ok", "cw-ok")):
        row = page.locator("#result_list tr", has_text=cases[name].reference)
        mark = row.locator(".field-clock_cell .cw-clock")
        assert mark.get_attribute("class") == f"cw-clock {css}", name
    red = page.locator("#result_list tr", has_text=cases["overdue"].reference).locator(".cw-clock")
    assert red.evaluate("e => getComputedStyle(e).color") == "rgb(166, 27, 27)"
    assert ("超期" if language == "zh-hans" else "Overdue") in red.inner_text()

    context.close()
