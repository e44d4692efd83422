"""The click-count walk (issue 10 "Done means"): one imported message through the whole loop.

Five people in their own browsers (Debian's Chromium at 1366×768) take one real imported message
through 交办 → 签收并反馈 (with a standard answer inserted from the knowledge base and a photo
attached) → 网评办审核 (the reviewer downloads the photo) → 分管局领导审签 → 发布 → 回访并归档, each
arriving the way the design gives them: the dispatcher from the 待交办 queue, the others from the
link in the e-mail that tells them the case is theirs. Every click (a select and a confirmation
dialog count as clicks) and every page load is counted; the loop must take at most 25 clicks and
15 page loads. Signing in (once a day per person, not per message: the link then opens the login
page first) is counted on its own lines and in a second total.
Screenshots of every screen go to ``test-artifacts/walk/<language>/`` (the case page also at
1920×1080).
"""

from pathlib import Path
import re

from django.conf import settings
from django.core import mail
import pytest

from assessment.models import KnowledgeArticle
from casework import importing
from casework.models import Case, State
from tests.test_attachments import png_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "walk"
MESSAGES = Path(settings.BASE_DIR) / "casework" / "data" / "messages" / "fj4_with_replies.csv.gz"
MAX_CLICKS, MAX_LOADS = 25, 15


class Counter:
    def __init__(self):
        self.rows = []  # (step, person, clicks, loads)

    def add(self, step, person, clicks, loads):
        self.rows.append((step, person, clicks, loads))

    def totals(self, *, sign_in: bool):
        rows = [r for r in self.rows if sign_in or not r[0].startswith("sign in")]
        return sum(r[2] for r in rows), sum(r[3] for r in rows)

    def table(self) -> str:
        lines = ["| step | who | clicks | page loads |", "|---|---|---|---|"]
        lines += [f"| {s} | {p} | {c} | {n} |" for s, p, c, n in self.rows]
        clicks, loads = self.totals(sign_in=False)
        lines.append(f"| **the loop** | | **{clicks}** | **{loads}** |")
        clicks, loads = self.totals(sign_in=True)
        lines.append(f"| the loop with the four sign-ins | | {clicks} | {loads} |")
        return "\n".join(lines)


class Person:
    """One member of staff in their own browser; clicks and page loads counted per step."""

    def __init__(self, browser, live_server, user, name, language, counter):
        self.base, self.user, self.name, self.language, self.counter = live_server.url, user, name, language, counter
        self.context = browser.new_context(locale="zh-CN" if language == "zh-hans" else "en-US",
                                           viewport={"width": 1366, "height": 768}, accept_downloads=True)
        self.context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": self.base}])
        self.context.set_default_timeout(20000)
        self.page = self.context.new_page()
        self.loads = 0
        self.page.on("load", lambda _page: self._loaded())
        self.page.on("dialog", lambda dialog: dialog.accept())
        self.clicks = 0
        self._mark = (0, 0)

    def _loaded(self):
        self.loads += 1

    def step(self, name):
        clicks, loads = self.clicks - self._mark[0], self.loads - self._mark[1]
        self._mark = (self.clicks, self.loads)
        self.counter.add(name, self.name, clicks, loads)

    def open(self, path):  # a bookmark or an e-mail link: one click, one page load
        self.clicks += 1
        with self.page.expect_event("load"):
            self.page.goto(self.base + path)

    def click(self, selector, navigates=True, dialog=False):
        self.clicks += 1 + (1 if dialog else 0)
        if navigates:
            with self.page.expect_navigation():
                self.page.click(selector)
        else:
            self.page.click(selector)

    def select(self, selector, **kwargs):
        self.clicks += 1
        self.page.select_option(selector, **kwargs)

    def sign_in(self):
        """From the login page the e-mail link or bookmark led to: the password, one click."""
        self.page.fill("#id_username", self.user.username)
        self.page.fill("#id_password", "pw")
        self.click("input[type=submit]")
        assert "/admin/login/" not in self.page.url

    def state(self):
        return self.page.get_attribute("#cw-state", "data-state")

    def shot(self, name, *, wide=False):
        folder = ARTIFACTS / self.language
        folder.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(folder / f"{name}_1366x768.png"), full_page=True)
        if wide:
            self.page.set_viewport_size({"width": 1920, "height": 1080})
            self.page.screenshot(path=str(folder / f"{name}_1920x1080.png"), full_page=True)
            self.page.set_viewport_size({"width": 1366, "height": 768})


def link_for(user, subject_part) -> str:
    """The case link of the newest e-mail to ``user`` whose subject holds ``subject_part`` (path only)."""
    for message in reversed(mail.outbox):
        if user.email in message.to and subject_part in message.subject:
            url = re.search(r"https?://\S+/admin/casework/case/\d+/change/", message.body).group(0)
            return "/admin/" + url.split("/admin/", 1)[1]
    raise AssertionError(f"no e-mail {subject_part} to {user}")


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_one_message_walks_the_loop_in_few_clicks(browser, live_server, bureau, eager_celery, settings,
                                                  tmp_path, language):
    settings.MEDIA_ROOT = tmp_path
    report = importing.messages_import(rows_source=MESSAGES, platform=bureau.platform,
                                       acting_user=bureau.dispatcher, limit=1)
    case = Case.objects.get(pk=report.rows[0].case_id)
    KnowledgeArticle.objects.create(title="物业管理类留言标准答复", keywords=case.subject[:4],
                                    body="网友您好!您反映的物业管理问题已转交属地派出所会同住建部门核查处理。",
                                    policy_basis="《物业管理条例》第三十五条")
    counter = Counter()
    photo = tmp_path / "现场照片.png"
    photo.write_bytes(png_bytes())

    # 1. 网评办 dispatcher: the 待交办 queue (bookmarked), the case, the unit, 交办.
    dispatcher = Person(browser, live_server, bureau.dispatcher, "dispatcher", language, counter)
    dispatcher.open("/admin/casework/case/?queue=to_dispatch")
    dispatcher.step("待交办 queue (bookmark)")
    dispatcher.sign_in()
    dispatcher.step("sign in (dispatcher)")
    dispatcher.shot("01_queue_to_dispatch")
    dispatcher.click(f"text={case.reference}")
    dispatcher.shot("02_case_dispatch", wide=True)
    dispatcher.select("#cw-form-dispatch select[name=unit]", label=bureau.unit_a.name)
    dispatcher.click("#cw-form-dispatch input[type=submit]")
    assert dispatcher.state() == State.DISPATCHED
    dispatcher.step("交办 dispatch")

    # 2. The unit's handler: the e-mail link, a standard answer inserted, a photo, 签收并提交反馈.
    handler = Person(browser, live_server, bureau.handler_a, "unit handler", language, counter)
    handler.open(link_for(bureau.handler_a, case.reference))
    handler.step("e-mail link to the case")
    handler.sign_in()
    handler.step("sign in (unit handler)")
    handler.page.wait_for_selector("#cw-standard .cw-insert-standard")
    handler.shot("03_case_drafting", wide=True)
    handler.page.fill("#cw-form-draft textarea[name=handling_report]", "经核实,留言反映的问题属实,已现场查看。")
    handler.click("#cw-standard .cw-insert-standard", navigates=False)
    assert "已转交属地派出所" in handler.page.input_value("#id_reply_text")
    assert handler.page.input_value("#id_policy_basis") == "《物业管理条例》第三十五条"
    handler.clicks += 1  # choosing the file
    handler.page.set_input_files("#cw-attachments-input", str(photo))
    handler.click("#cw-accept-and-submit")
    assert handler.state() == State.OFFICE_REVIEW
    handler.step("签收并提交反馈 sign for and feedback")
    handler.shot("04_case_submitted")

    # 3. 网评办 reviewer: the 待审核 e-mail link, the photo downloaded, 审核通过 with an opinion.
    reviewer = Person(browser, live_server, bureau.reviewer, "office reviewer", language, counter)
    reviewer.open(link_for(bureau.reviewer, "待审核" if language == "zh-hans" else ""))
    reviewer.step("e-mail link to the case")
    reviewer.sign_in()
    reviewer.step("sign in (office reviewer)")
    assert "已转交属地派出所" in reviewer.page.inner_text("#cw-review")
    reviewer.shot("05_case_office_review", wide=True)
    with reviewer.page.expect_download() as download:
        reviewer.click("#cw-attachments a", navigates=False)
    assert Path(download.value.path()).read_bytes() == photo.read_bytes()
    assert download.value.suggested_filename == "现场照片.png"
    reviewer.page.fill("#cw-form-office_approve textarea[name=opinion]", "事实清楚,同意。")
    reviewer.click("#cw-form-office_approve input[type=submit]")
    assert reviewer.state() == State.LEADER_REVIEW
    reviewer.step("审核 office review (and the photo)")

    # 4. 分管局领导: the 待审签 e-mail link, 审签.
    leader = Person(browser, live_server, bureau.leader, "leader", language, counter)
    leader.open(link_for(bureau.leader, case.reference))
    leader.step("e-mail link to the case")
    leader.sign_in()
    leader.step("sign in (leader)")
    leader.shot("06_case_leader_review")
    leader.click("#cw-form-leader_approve input[type=submit]")
    assert leader.state() == State.APPROVED
    leader.step("审签 leader sign-off")

    # 5. The dispatcher again: the 待发布 e-mail link, 发布, then 回访 with the rating and 归档.
    dispatcher.open(link_for(bureau.dispatcher, case.reference))
    dispatcher.step("e-mail link to the case")
    dispatcher.shot("07_case_publish")
    dispatcher.click("#cw-form-publish input[type=submit]")
    assert dispatcher.state() == State.REPLIED
    dispatcher.step("发布 publish")
    dispatcher.shot("08_case_follow_up")
    dispatcher.select("#cw-form-follow-up select[name=result]", value="satisfied")
    dispatcher.click("#cw-follow-up-archive", dialog=True)
    assert dispatcher.state() == State.ARCHIVED
    dispatcher.step("回访并归档 follow-up and archive")
    dispatcher.shot("09_case_archived", wide=True)

    case.refresh_from_db()
    assert case.state == State.ARCHIVED and case.follow_ups.get().result == "satisfied"
    assert case.attachments.get().original_name == "现场照片.png"
    table = counter.table()
    (ARTIFACTS / f"counts_{language}.md").write_text(table + "\n", encoding="utf-8")
    print("\n" + table)
    clicks, loads = counter.totals(sign_in=False)
    assert clicks <= MAX_CLICKS and loads <= MAX_LOADS, table
    for person in (dispatcher, handler, reviewer, leader):
        person.context.close()
