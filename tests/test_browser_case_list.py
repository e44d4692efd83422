"""The case list reads at a glance at the bureau's office screen (1366×768) and at 1920×1080.

Real Chromium on the live server, in Chinese and in English: the subject column is wide enough to
read, nothing overflows sideways, and the running clock shows red when overdue and amber when at
most one working day is left. Screenshots go to ``test-artifacts/case_list/``.
"""

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.utils import timezone
import pytest

from casework import calendar, escalation, services
from casework.models import MessageType, Notification

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


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_a_digest_link_opens_the_list_of_its_cases(browser, live_server, bureau, settings, language):
    """The link of a 催办 digest e-mail (``?digest=<key>``) lists its cases, the filter named in the sidebar."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    cases = _seed(bureau)
    late = _seed(bureau)["overdue"]  # a second overdue case: the digest lists two
    escalation.escalation_sweep(now=timezone.now())
    key = next(n.key for n in Notification.objects.filter(key__startswith="digest:")
               if bureau.dispatcher.email in n.recipients)  # the 网评办's digest
    context = browser.new_context(viewport={"width": 1366, "height": 768},
                                  locale="zh-CN" if language == "zh-hans" else "en-US")
    context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": live_server.url}])
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", bureau.dispatcher.username)
    page.fill("#id_password", "pw")
    with page.expect_navigation():
        page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/casework/case/?{urlencode({'digest': key})}")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"digest_list_{language}_1366x768.png"))
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    listed = rows.all_inner_texts()
    assert any(cases["overdue"].reference in r for r in listed) and any(late.reference in r for r in listed)
    assert not any(cases["ok"].reference in r for r in listed)
    # Named first in the sidebar, above the fold: why the list holds these cases.
    first = page.locator("#changelist-filter details, #changelist-filter h3").first
    assert first.is_visible() and first.bounding_box()["y"] < 768
    sidebar = page.locator("#changelist-filter").inner_text()
    assert sidebar.index("催办通知" if language == "zh-hans" else "Escalation e-mail") < sidebar.index(
        "我的待办" if language == "zh-hans" else "My work")
    assert ("催办通知" if language == "zh-hans" else "Escalation e-mail") in sidebar
    assert ("该通知所列案件" if language == "zh-hans" else "Cases of this e-mail") in sidebar
    context.close()
