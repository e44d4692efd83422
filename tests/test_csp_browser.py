"""The content security policy holds in a real browser: no violation on the admin's pages, charts drawn.

Headless Chromium (Debian's /usr/bin/chromium) against the live server, which sends the policy of
config/settings/base.py (production adds only upgrade-insecure-requests). Every
``securitypolicyviolation`` event and every console error is collected from the first page on.
Screenshots go to test-artifacts/csp/.
"""

from pathlib import Path

from django.conf import settings
from django.urls import reverse
import pytest

from assessment.models import Topic, TopicMembership
from casework.models import State
from tests.factories import Bureau

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "csp"
COLLECT = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", e => window.__cspViolations.push(
  e.violatedDirective + " " + (e.blockedURI || "inline") + " " + (e.sourceFile || "") + ":" + e.lineNumber));
"""


def test_no_csp_violation_on_admin_index_case_list_case_page_dashboard_and_topic(browser, live_server, django_user_model):
    b = Bureau()
    case = b.case_in(State.OFFICE_REVIEW)
    b.case_in(State.HANDLING, unit=b.unit_b)
    topic = Topic.objects.create(title="户口迁移咨询")
    TopicMembership.objects.create(topic=topic, case=case, similarity=0.9)
    root = django_user_model.objects.create_superuser("root", "root@bureau.invalid", "pw")

    context = browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 900})
    context.set_default_timeout(20000)
    context.add_init_script(COLLECT)
    page = context.new_page()
    console, policies = [], []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in {"error", "warning"} else None)
    page.on("response", lambda r: policies.append(r.headers.get("content-security-policy"))
            if r.request.resource_type == "document" else None)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def visit(name, path, ready=None):
        page.goto(live_server.url + path)
        if ready:
            page.wait_for_selector(ready)
        page.wait_for_load_state("load")
        page.wait_for_timeout(500)  # late scripts (widgets, charts) run
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        violations = page.evaluate("window.__cspViolations")
        assert violations == [], (name, violations)

    def login(user):
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", "pw")
        with page.expect_navigation():
            page.click("input[type=submit]")

    login(b.reviewer)
    visit("admin_index", "/admin/", "#cw-dashboard[data-ready='1']")
    visit("case_list", reverse("admin:casework_case_changelist"))
    visit("case_page", reverse("admin:casework_case_change", args=[case.pk]))
    visit("dashboard", reverse("assessment:dashboard"), "#cw-dashboard[data-ready='1']")
    blank = page.evaluate("""() => [...document.querySelectorAll('#cw-dashboard canvas')].filter(c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return !d.some(v => v !== 0); }).length""")
    assert page.locator("#cw-dashboard canvas").count() >= 1 and blank == 0  # Chart.js drew under the policy
    visit("topic_page", reverse("admin:assessment_topic_change", args=[topic.pk]), "#topic-weekly-chart")
    assert page.evaluate("!!window.Chart && !!window.Chart.getChart(document.getElementById('topic-weekly-chart'))")
    context.clear_cookies()
    login(root)  # the superuser's widgets: filtered multi-selects, date pickers, related popups
    visit("user_change", reverse("admin:accounts_user_change", args=[b.dispatcher.pk]), ".selector")
    visit("calendar_add", reverse("admin:casework_workcalendarday_add"), ".datetimeshortcuts")

    assert console == [] or not [c for c in console if "Content Security Policy" in c or "Refused" in c], console
    assert policies and all(p and "script-src 'self'" in p for p in policies), policies
