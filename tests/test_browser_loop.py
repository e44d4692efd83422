"""One real message walks the whole loop in a real browser, by five people logging in (DESIGN.md §3).

Headless Chromium (Debian's ``/usr/bin/chromium``) driven by Playwright against the live server, in
the Chinese UI. Screenshots of each tier's screen are saved under ``test-artifacts/``.
"""

from pathlib import Path

from django.conf import settings
from django.core import mail
import pytest

from casework import importing
from casework.models import Case, FollowUp, State

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "browser_loop"
MESSAGES = Path(settings.BASE_DIR) / "casework" / "data" / "messages" / "fj4_with_replies.csv.gz"






class Person:
    """One member of staff in their own browser context (own cookies), logged in to the admin."""

    def __init__(self, browser, live_server, user):
        self.base = live_server.url
        self.context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 1000})
        self.context.set_default_timeout(15000)
        self.page = self.context.new_page()
        self.page.goto(f"{self.base}/admin/login/")
        self.page.fill("#id_username", user.username)
        self.page.fill("#id_password", "pw")
        with self.page.expect_navigation():
            self.page.click("input[type=submit]")
        assert "/admin/login/" not in self.page.url

    def open_queue(self, key: str) -> None:
        self.page.goto(f"{self.base}/admin/")
        with self.page.expect_navigation():
            self.page.click(f"#cw-queue-{key} a")

    def open_case(self, case: Case) -> None:
        self.page.goto(f"{self.base}/admin/casework/case/{case.pk}/change/")

    def submit(self, form_id: str) -> None:
        with self.page.expect_navigation():
            self.page.click(f"#{form_id} input[type=submit]")

    def state(self) -> str:
        return self.page.get_attribute("#cw-state", "data-state")

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()


def test_a_real_message_walks_the_whole_loop_through_the_admin(browser, live_server, bureau, eager_celery):
    report = importing.messages_import(rows_source=MESSAGES, platform=bureau.platform,
                                       acting_user=bureau.dispatcher, limit=1)
    assert report.created == 1
    case = Case.objects.get(pk=report.rows[0].case_id)

    # 1. 网评办 dispatches it from the 待交办 queue.
    dispatcher = Person(browser, live_server, bureau.dispatcher)
    dispatcher.open_queue("to_dispatch")
    with dispatcher.page.expect_navigation():
        dispatcher.page.click(f"text={case.reference}")
    assert dispatcher.page.inner_text("#cw-message h2").startswith(case.reference)
    dispatcher.page.select_option("#cw-form-dispatch select[name=unit]", label=bureau.unit_a.name)
    dispatcher.submit("cw-form-dispatch")
    assert dispatcher.state() == State.DISPATCHED

    # 2. The unit's handler signs for it and submits the feedback (tier 1).
    handler = Person(browser, live_server, bureau.handler_a)
    handler.open_queue("sign_for")
    assert handler.page.is_visible(f"text={case.reference}")
    handler.open_case(case)
    handler.submit("cw-form-accept")
    assert handler.state() == State.HANDLING
    handler.page.fill("#cw-form-draft textarea[name=handling_report]", "经核实,留言反映的问题属实,已现场查看。")
    handler.page.fill("#cw-form-draft textarea[name=policy_basis]", "《物业管理条例》第三十五条")
    handler.page.fill("#cw-form-draft textarea[name=measures]", "已督促物业公司限期整改。")
    handler.page.fill("#cw-form-draft textarea[name=reply_text]", "网友您好!您反映的问题已转交辖区派出所核查。")
    handler.submit("cw-form-draft")
    handler.shot("1_handler_feedback")
    handler.submit("cw-form-submit_feedback")
    assert handler.state() == State.OFFICE_REVIEW

    # 3. 网评办 review (tier 2) sends it back once with a reason.
    reviewer = Person(browser, live_server, bureau.reviewer)
    reviewer.open_queue("office_review")
    with reviewer.page.expect_navigation():
        reviewer.page.click(f"text={case.reference}")
    assert "经核实" in reviewer.page.inner_text("#cw-review")
    reviewer.page.fill("#cw-form-office_send_back textarea[name=reason]", "请写明整改时限。")
    reviewer.submit("cw-form-office_send_back")
    assert reviewer.state() == State.HANDLING

    # 4. The handler revises and submits again.
    handler.open_queue("sent_back")
    handler.open_case(case)
    handler.page.fill("#cw-form-draft textarea[name=reply_text]",
                      "网友您好!您反映的问题已转交辖区派出所核查,物业公司将于两周内整改完毕。")
    handler.submit("cw-form-draft")
    handler.submit("cw-form-submit_feedback")
    assert handler.state() == State.OFFICE_REVIEW

    # 5. Tier 2 sees the changes against the previous version and approves.
    reviewer.open_case(case)
    assert "两周内整改完毕" in reviewer.page.inner_text("#cw-review")
    assert "两周内整改完毕" in " ".join(reviewer.page.locator("#cw-review ins.cw-ins").all_inner_texts())
    reviewer.shot("2_office_review")
    reviewer.submit("cw-form-office_approve")
    assert reviewer.state() == State.LEADER_REVIEW

    # 6. 分管局领导 signs (tier 3).
    leader = Person(browser, live_server, bureau.leader)
    leader.open_queue("leader_review")
    with leader.page.expect_navigation():
        leader.page.click(f"text={case.reference}")
    leader.shot("3_leader_review")
    leader.submit("cw-form-leader_approve")
    assert leader.state() == State.APPROVED

    # 7. 网评办 publishes and records the follow-up.
    dispatcher.open_queue("to_publish")
    dispatcher.open_case(case)
    dispatcher.submit("cw-form-publish")
    assert dispatcher.state() == State.REPLIED
    dispatcher.page.select_option("#cw-form-follow-up select[name=result]", FollowUp.Result.SATISFIED)
    dispatcher.submit("cw-form-follow-up")
    published = dispatcher.page.inner_text("#cw-published")
    assert "两周内整改完毕" in published
    signatures = dispatcher.page.inner_text("#cw-signatures")
    for person in (bureau.handler_a, bureau.reviewer, bureau.leader):
        assert str(person) in signatures
    dispatcher.shot("4_published")

    case.refresh_from_db()
    assert case.state == State.REPLIED
    assert case.follow_ups.get().result == FollowUp.Result.SATISFIED
    assert list(case.events.values_list("action", flat=True)) == [
        "register", "dispatch", "accept", "draft_saved", "submit_feedback", "office_send_back",
        "draft_saved", "submit_feedback", "office_approve", "leader_approve", "publish_reply",
        "record_follow_up",
    ]
    assert len(mail.outbox) >= 2  # the dispatch and the send-back reached the unit

    # 8. A handler of another unit can neither find nor open it.
    outsider = Person(browser, live_server, bureau.handler_b)
    outsider.page.goto(f"{live_server.url}/admin/casework/case/?q={case.subject[:8]}")
    assert case.reference not in outsider.page.content()
    response = outsider.page.goto(f"{live_server.url}/admin/casework/case/{case.pk}/change/")
    assert response.status == 404
    for person in (dispatcher, handler, reviewer, leader, outsider):
        person.close()
