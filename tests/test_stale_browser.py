"""Issue 8 §2 in a real browser: two people edit the same thing; the later, stale save is refused
with who changed what, and what the second person typed is still on the screen.

Screenshots under ``test-artifacts/stale/``.
"""

from pathlib import Path

from django.conf import settings
import pytest

from accounts import roles
from assessment.models import KnowledgeArticle
from casework.models import Case, State
from tests.factories import make_user
from tests.test_browser_loop import Person

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "stale"


def _shot(person, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    person.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _people(browser, live_server, *users):
    people = [Person(browser, live_server, u) for u in users]
    for person in people:
        person.context.set_default_timeout(60000)  # a loaded 2-core machine is slow, not wrong
    return people


def _clerk(bureau, name, full_name):
    user = make_user(name, role=roles.DISPATCHER, unit=bureau.office, city_wide=bureau.city)
    user.full_name = full_name
    user.save(update_fields=["full_name"])
    return user


def test_two_clerks_edit_one_article_and_the_stale_save_keeps_its_text(browser, live_server, bureau):
    li, zhao = _people(browser, live_server, _clerk(bureau, "li", "李娜"), _clerk(bureau, "zhao", "赵磊"))
    article = KnowledgeArticle.objects.create(title="户口迁移", body="需要身份证、户口簿。")
    url = f"{live_server.url}/admin/assessment/knowledgearticle/{article.pk}/change/"
    li.page.goto(url)
    zhao.page.goto(url)
    zhao.page.fill("#id_body", "需要身份证、户口簿和准迁证。")
    with zhao.page.expect_navigation():
        zhao.page.click("input[name=_save]")
    li.page.fill("#id_body", "李娜的新答复:请携带身份证到户籍窗口办理。")
    with li.page.expect_navigation():
        li.page.click("input[name=_save]")
    _shot(li, "article_refused")
    errors = li.page.inner_text(".errornote") + li.page.inner_text("ul.errorlist")
    assert "赵磊" in errors and "标准答复" in errors
    assert li.page.input_value("#id_body") == "李娜的新答复:请携带身份证到户籍窗口办理。"
    article.refresh_from_db()
    assert article.body == "需要身份证、户口簿和准迁证。"
    li.close()
    zhao.close()


def test_a_stale_key_case_form_on_the_case_page_is_refused_and_refilled(browser, live_server, bureau):
    leader2 = make_user("leader2", role=roles.LEADER, unit=bureau.leadership, city_wide=bureau.city)
    leader2.full_name = "韩立新"
    leader2.save(update_fields=["full_name"])
    case = bureau.case_in(State.HANDLING)
    li, boss = _people(browser, live_server, _clerk(bureau, "li", "李娜"), leader2)
    li.open_case(case)
    boss.open_case(case)
    boss.page.click("#cw-form-mark_key_case >> xpath=.. >> summary")
    boss.page.select_option("#cw-form-mark_key_case select[name=leader]", str(leader2.pk))
    boss.submit("cw-form-mark_key_case")
    li.page.click("#cw-form-mark_key_case >> xpath=.. >> summary")
    li.page.select_option("#cw-form-mark_key_case select[name=leader]", str(bureau.leader.pk))
    li.submit("cw-form-mark_key_case")
    li.page.click("#cw-form-mark_key_case >> xpath=.. >> summary")
    _shot(li, "key_case_refused")
    text = li.page.inner_text("ul.messagelist")
    assert "韩立新" in text and "标记重点难点" in text
    assert li.page.input_value("#cw-form-mark_key_case select[name=leader]") == str(bureau.leader.pk)
    assert Case.objects.get(pk=case.pk).key_case_leader == leader2
    li.close()
    boss.close()
