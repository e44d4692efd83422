"""In a real browser at 1366×768, in Chinese and in English: a 分管局领导 opens a 督办单 and refers the
unit for poor handling (办理不力) from the case page (issue 13).

Headless Chromium (Debian's ``/usr/bin/chromium``) through Playwright against the live server;
screenshots under ``test-artifacts/supervision/``.
"""

from pathlib import Path

from django.conf import settings
import pytest

from accounts.models import Unit
from casework.models import DisciplineReferral, PoorHandlingReason, State, SupervisionNotice

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "supervision"
VIEWPORT = {"width": 1366, "height": 768}


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_a_leader_opens_a_notice_and_refers_the_unit_from_the_case_page(browser, live_server, bureau, language):
    if language == "en":  # data in Latin letters, so the English page is all English
        for unit in Unit.objects.all():
            unit.name = f"Unit {unit.code}"
            unit.save(update_fields=["name"])
        PoorHandlingReason.objects.filter(name="推诿扯皮").update(name="Passing the buck")
    case = bureau.case_in(State.HANDLING, subject="Street light" if language == "en" else "路灯不亮")
    other = bureau.case_in(State.REPLIED)
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN" if language == "zh-hans" else "en-US")
    context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": live_server.url}])
    context.set_default_timeout(15000)
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", bureau.leader.username)
    page.fill("#id_password", "pw")
    with page.expect_navigation():
        page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/casework/case/{case.pk}/change/")
    panel = page.locator("#cw-supervision")
    assert panel.is_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    panel.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"1_panel_{language}.png"))
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= VIEWPORT["width"], "nothing overflows sideways"

    # 1. A notice with nothing typed is refused by the browser's own check; then it is opened.
    page.fill("#cw-form-open_notice textarea[name=content]", "三次发回仍未写明整改措施,请两个工作日内答复。"
              if language == "zh-hans" else "Sent back three times without measures; answer within two days.")
    page.fill("#cw-form-open_notice input[name=answer_days]", "2")
    with page.expect_navigation():
        page.click("#cw-form-open_notice input[type=submit]")
    messages = page.inner_text(".messagelist")
    assert ("已开具督办单" if language == "zh-hans" else "Supervision notice opened") in messages
    notice = SupervisionNotice.objects.get(case=case)
    assert notice.origin == "manual" and notice.opened_by == bureau.leader and notice.answer_due_at
    page.locator("#cw-notices").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"2_notice_opened_{language}.png"))

    # 2. A referral without a reason is refused with the reason and keeps the statement typed.
    statement = ("答复敷衍,三次发回仍未整改,群众多次投诉。" if language == "zh-hans"
                 else "Evasive answers, three send-backs, repeated complaints.")
    page.fill("#cw-form-refer_poor_handling textarea[name=statement]", statement)
    page.evaluate("document.querySelector('#cw-form-refer_poor_handling select[name=poor_reason]').required = false")
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("#cw-form-refer_poor_handling input[type=submit]")
    assert page.locator(".messagelist .error").count() == 1
    assert page.input_value("#cw-form-refer_poor_handling textarea[name=statement]") == statement
    assert not DisciplineReferral.objects.filter(case=case).exists()
    page.locator("#cw-supervision").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"3_refusal_keeps_input_{language}.png"))

    # 3. With a reason and the unit's other case: referred, once, with both cases concerned.
    reason = PoorHandlingReason.objects.get(pk=PoorHandlingReason.objects.order_by("order")[2].pk)
    page.select_option("#cw-form-refer_poor_handling select[name=poor_reason]", str(reason.pk))
    page.check(f"#cw-form-refer_poor_handling input[name=other_cases][value='{other.pk}']")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    with page.expect_navigation():
        page.click("#cw-form-refer_poor_handling input[type=submit]")
    assert asked, "the referral asks before it is sent"
    referral = DisciplineReferral.objects.get(case=case)
    assert (referral.kind, referral.origin, referral.poor_reason, referral.statement) == (
        "poor_handling", "manual", reason, statement)
    assert set(referral.cases_concerned.values_list("case_id", flat=True)) == {case.pk, other.pk}
    assert ("移交纪检督察" if language == "zh-hans" else "referred to discipline supervision") in page.inner_text(".messagelist")
    page.screenshot(path=str(ARTIFACTS / f"4_referred_{language}.png"))
    page.screenshot(path=str(ARTIFACTS / f"5_case_page_full_{language}.png"), full_page=True)
    context.close()
