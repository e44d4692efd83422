"""Every list of the site reads at 1366×768, in Chinese and in English (issue 10 §1, the class).

The case list has its own test of column widths and clock marks (``test_browser_case_list``); this
one opens the changelist of every registered admin, with one row of every model (the permission
table's world), as the role that sees the most columns (a superuser) and as the 网评办's dispatcher,
and asserts what a person would see: the page does not scroll sideways and no column of the table
is cut off by its area. A screenshot of each list is kept under ``test-artifacts/lists/``.
"""

from pathlib import Path

from django.conf import settings
from django.contrib import admin
from django.urls import reverse
import pytest

from tests.test_permission_table import world  # noqa: F401 (the fixture: one row of every model)

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "lists"

pytestmark = pytest.mark.django_db(transaction=True)


def _changelists():
    return sorted(
        (f"{m._meta.app_label}_{m._meta.model_name}", m) for m in admin.site._registry
    )


@pytest.mark.parametrize("language", ["zh-hans", "en"])
@pytest.mark.parametrize("who", ["superuser", "dispatcher"])
def test_every_list_fits_the_office_screen(browser, live_server, world, language, who):  # noqa: F811
    user = world["users"][who]
    user.set_password("pw")
    user.save()
    context = browser.new_context(viewport={"width": 1366, "height": 768},
                                  locale="zh-CN" if language == "zh-hans" else "en-US")
    context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": live_server.url}])
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "pw")
    with page.expect_navigation():
        page.click("input[type=submit]")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    seen, problems = 0, []
    for name, model in _changelists():
        if not admin.site._registry[model].has_view_or_change_permission(_request_for(user)):
            continue
        response = page.goto(live_server.url + reverse(f"admin:{name}_changelist"))
        if response.status != 200:
            continue
        seen += 1
        page.screenshot(path=str(ARTIFACTS / f"{name}_{who}_{language}.png"))
        if not page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"):
            problems.append(f"{name}: the page scrolls sideways")
        cut = page.evaluate("""() => {
            const table = document.querySelector('#result_list');
            const area = document.querySelector('#changelist .results') || table && table.parentElement;
            if (!table || !area) return null;
            return table.getBoundingClientRect().right - area.getBoundingClientRect().right;
        }""")
        if cut is not None and cut > 1:
            problems.append(f"{name}: the table runs {cut:.0f} px past its area")
    context.close()
    assert seen >= (25 if who == "superuser" else 8), seen
    assert problems == [], "\n".join(problems)


class _request_for:  # the little of a request ModelAdmin permission checks read
    def __init__(self, user):
        self.user = user
