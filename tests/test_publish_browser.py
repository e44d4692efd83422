"""In a real browser at 1366×768: the reviewer's word at the top, typed feedback surviving 提交反馈
without 保存, opinions and signed versions in the signature panel, a change after sign-off going
back through review, and the archive confirmation (issue 8 §1–2, issue 10 §4, §6).

Headless Chromium (Debian's ``/usr/bin/chromium``) through Playwright against the live server;
screenshots under ``test-artifacts/publish/``.
"""

from pathlib import Path

from django.conf import settings
import pytest

from casework import joint, services
from casework.models import Case, FollowUp, State

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "publish"
VIEWPORT = {"width": 1366, "height": 768}


class Person:
    def __init__(self, browser, live_server, user):
        self.base = live_server.url
        self.context = browser.new_context(locale="zh-CN", viewport=VIEWPORT)
        self.context.set_default_timeout(15000)
        self.page = self.context.new_page()
        self.page.goto(f"{self.base}/admin/login/")
        self.page.fill("#id_username", user.username)
        self.page.fill("#id_password", "pw")
        with self.page.expect_navigation():
            self.page.click("input[type=submit]")

    def open_case(self, case):
        self.page.goto(f"{self.base}/admin/casework/case/{case.pk}/change/")

    def click(self, selector):
        with self.page.expect_navigation():
            self.page.click(selector)

    def state(self):
        return self.page.get_attribute("#cw-state", "data-state")

    def shot(self, name):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_opinion_on_top_typed_feedback_kept_versions_signed_and_published(browser, live_server, bureau):
    case = bureau.case_in(State.OFFICE_REVIEW)
    services.case_office_send_back(case=case, acting_user=bureau.reviewer, reason="请写明整改时限和责任人。")
    task = joint.co_unit_assign(case=case, acting_user=bureau.dispatcher, unit=bureau.unit_b,
                                task="请核查小区监控情况", working_days=3)

    # 1. The handler sees the send-back reason first, above the message.
    handler = Person(browser, live_server, bureau.handler_a)
    handler.open_case(case)
    opinion = handler.page.locator("#cw-latest-opinion")
    assert "请写明整改时限和责任人。" in opinion.inner_text()
    assert opinion.bounding_box()["y"] < handler.page.locator("#cw-message").bounding_box()["y"]
    assert opinion.bounding_box()["y"] < VIEWPORT["height"]  # on the first screen
    handler.shot("1_handler_sees_the_send_back_reason")

    # 2. Typed feedback, 提交反馈 pressed without 保存: refused (co-unit not reported), text kept.
    typed = "网友您好!经核实,物业公司将于两周内整改,责任人为物业经理。"
    handler.page.fill("#cw-form-draft textarea[name=handling_report]", "已现场核实,监控损坏属实。")
    handler.page.fill("#cw-form-draft textarea[name=reply_text]", typed)
    handler.click("#cw-form-submit_feedback input[type=submit]")
    assert handler.state() == State.HANDLING
    assert "协办单位尚未全部报告" in handler.page.inner_text(".messagelist")
    assert handler.page.input_value("#cw-form-draft textarea[name=reply_text]") == typed
    assert handler.page.input_value("#cw-form-draft textarea[name=handling_report]") == "已现场核实,监控损坏属实。"
    handler.shot("2_refused_submission_keeps_the_typed_feedback")

    # 3. Meanwhile the co-unit reports, which changes the case under the open page: the next
    # submission is refused as stale, the typed text still kept; the one after goes through.
    joint.co_unit_report(task=task, acting_user=bureau.handler_b, report="监控已报修")
    handler.click("#cw-form-submit_feedback input[type=submit]")
    assert "在您打开页面后已有变化" in handler.page.inner_text(".messagelist")  # names who changed what
    assert handler.page.input_value("#cw-form-draft textarea[name=reply_text]") == typed
    handler.click("#cw-form-submit_feedback input[type=submit]")
    assert handler.state() == State.OFFICE_REVIEW
    draft = Case.objects.get(pk=case.pk).drafts.order_by("-version").first()
    assert (draft.version, draft.reply_text) == (2, typed)

    # 4. Tiers 2 and 3 approve with an opinion, each typed in its own button's box.
    reviewer = Person(browser, live_server, bureau.reviewer)
    reviewer.open_case(case)
    reviewer.page.fill("#cw-form-office_approve textarea[name=opinion]", "整改时限已写明,同意。")
    reviewer.shot("3_reviewer_opinion_box_beside_its_button")
    reviewer.click("#cw-form-office_approve input[type=submit]")
    assert reviewer.state() == State.LEADER_REVIEW
    leader = Person(browser, live_server, bureau.leader)
    leader.open_case(case)
    leader.page.fill("#cw-form-leader_approve textarea[name=opinion]", "同意发布,请跟踪整改。")
    leader.click("#cw-form-leader_approve input[type=submit]")
    assert leader.state() == State.APPROVED

    # 5. The dispatcher sees what each tier signed; changing it sends it back for review.
    dispatcher = Person(browser, live_server, bureau.dispatcher)
    dispatcher.open_case(case)
    signatures = dispatcher.page.inner_text("#cw-signatures")
    assert signatures.count("答复草稿第 2 版") == 3
    assert "整改时限已写明,同意。" in signatures and "同意发布,请跟踪整改。" in signatures
    assert dispatcher.page.inner_text("#cw-publish-text") == typed
    assert dispatcher.page.locator("#cw-form-publish textarea").count() == 0
    dispatcher.shot("4_signed_version_ready_to_publish")
    dispatcher.page.click("#cw-actions details summary:has-text('发布前修改')")
    dispatcher.page.fill("#cw-form-revise textarea[name=reply_text]", typed + "感谢您的监督!")
    dispatcher.page.fill("#cw-form-revise textarea[name=reason]", "补充致谢语")
    dispatcher.click("#cw-form-revise input[type=submit]")
    assert dispatcher.state() == State.OFFICE_REVIEW
    services.case_office_approve(case=case, acting_user=bureau.reviewer, opinion="同意修改。")
    services.case_leader_approve(case=case, acting_user=bureau.leader)

    # 6. Published: exactly version 3, and the panel says who signed which version.
    dispatcher.open_case(case)
    dispatcher.click("#cw-form-publish input[type=submit]")
    assert dispatcher.state() == State.REPLIED
    rows = dispatcher.page.locator("#cw-signatures tr.cw-sign-row").all_inner_texts()
    assert "答复草稿第 2 版" in rows[0] and "答复草稿第 3 版" in rows[1] and "答复草稿第 3 版" in rows[2]
    assert "第 1 次发布 · 答复草稿第 3 版" in dispatcher.page.inner_text("#cw-sign-published")
    assert Case.objects.get(pk=case.pk).published_reply == typed + "感谢您的监督!"
    assert dispatcher.page.input_value("#cw-form-follow-up select[name=result]") == ""
    dispatcher.shot("5_published_with_the_versions_signed")

    # 7. The follow-up rating shows on the page; archiving asks first.
    dispatcher.page.select_option("#cw-form-follow-up select[name=result]", FollowUp.Result.BASICALLY)
    dispatcher.click("#cw-form-follow-up input[type=submit]")
    assert "基本满意" in dispatcher.page.inner_text("#cw-rating")
    asked = []
    dispatcher.page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    dispatcher.page.click("#cw-form-archive input[type=submit]")
    dispatcher.page.wait_for_timeout(300)
    assert asked and "确认归档" in asked[0]
    assert dispatcher.state() == State.REPLIED  # dismissed: nothing sent
    dispatcher.page.once("dialog", lambda dialog: dialog.accept())
    dispatcher.click("#cw-form-archive input[type=submit]")
    assert dispatcher.state() == State.ARCHIVED
    dispatcher.shot("6_archived_with_rating")
