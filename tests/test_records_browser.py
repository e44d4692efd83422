"""The 纪检督察 and 督办单 pages read well and print (issue 10 §7), in a real browser.

Headless Chromium (Debian's /usr/bin/chromium) through Playwright at 1366×768, in Chinese and in
English: the referral page with its 跟踪督办 timeline, the notice list, the unit's tile, the print
views and the PDF downloads. A Chinese page shows no English label, an English page no Chinese
text (the data of the English world is in Latin letters, created with English active, as staff
working in English would have it); no page shows an ISO timestamp or a raw code; the notice list
has one row per notice with its case, its answer deadline (red once passed) and its status; each
PDF is one A4 page with the text in it. Screenshots and PDFs (with a PNG of each page) go to
test-artifacts/records/.
"""

import io
from pathlib import Path
import re
import shutil
import subprocess
import zlib

from django.conf import settings
from django.utils import translation
import pytest
import time_machine

from casework import tracking
from casework.escalation import supervision_notice_answer
from casework.models import DisciplineReferral, EscalationRung, SupervisionNotice
from tests.factories import Bureau
from tests.tracking_helpers import bj, calendar_seed, ladder_referral

try:  # pypdf parses the PDF when installed; else its page objects are counted
    from pypdf import PdfReader
except ImportError:  # pragma: no cover
    PdfReader = None

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "records"
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}|\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}|\+08:00")
# Codes stored in the rows and the frozen snapshot; none may reach a page as such.
CODES = ["escalation_remind", "escalation_urge", "escalation_escalate", "escalation_refer", "unit_notices",
         "sign_for", "office_review", "leader_review", "follow_up", "rectification_", "referral_outcome",
         "supervision_answered", "due_soon", "no_accountability", "self_examination", "draft_saved",
         "submit_feedback", "message_type", "None", "True", "False"]
LANGS = {"zh-hans": "zh-CN", "en": "en-US"}

NAMES = {
    "zh-hans": {"supervisor": "吴强", "dispatcher": "李娜", "handler_a": "许婷", "head_a": "王磊",
                "leader": "韩立新", "reviewer": "赵磊", "handler_b": "魏巍"},
    "en": {"supervisor": "Wu Qiang", "dispatcher": "Li Na", "handler_a": "Xu Ting", "head_a": "Wang Lei",
           "leader": "Han Lixin", "reviewer": "Zhao Lei", "handler_b": "Wei Wei"},
}
TEXT = {
    "zh-hans": {"subject": "关于户口迁移材料的咨询", "body": "请问户口迁入需要哪些材料?", "subject2": "小区门口路灯损坏",
                "r1": "请报送超期原因及整改措施。", "a1": "已查明超期原因,已对承办民警批评教育并整改。",
                "r2": "请补充对责任人的处理情况。", "outcome": "对单位负责人进行约谈。"},
    "en": {"subject": "Question about the papers for a household registration move",
           "body": "Which papers do I need to move my registration here?", "subject2": "Street light broken",
           "r1": "Report why the reply was late and what was changed.",
           "a1": "The cause is found; the officer was spoken to and the procedure changed.",
           "r2": "Add how the people responsible were dealt with.", "outcome": "The unit head is called in for a talk."},
}


def build_world(language):
    """Two ladder referrals of unit A (one tracked through two rounds and still open, one closed)
    and 督办单 of units A and B, one answered; written with ``language`` active."""
    with translation.override(language):
        calendar_seed()
        b = Bureau()
        if language == "en":
            for unit, name in ((b.city, "City Bureau"), (b.office, "Comment Office"), (b.discipline, "Discipline"),
                               (b.leadership, "Leaders"), (b.unit_a, "Yuhu District"), (b.unit_b, "Yuetang District")):
                unit.name = name
                unit.save(update_fields=["name"])
            b.platform.name = "Wenzheng"
            b.platform.save(update_fields=["name"])
            # The ladder's rung names are configuration a superuser writes (seeded in Chinese).
            for rung in EscalationRung.objects.all():
                rung.name = f"Rung {rung.level}"
                rung.save(update_fields=["name"])
        for attr, name in NAMES[language].items():
            user = getattr(b, attr)
            user.full_name = name
            user.save(update_fields=["full_name"])
        t = TEXT[language]
        tracked = ladder_referral(b, subject=t["subject"], body=t["body"])
        closed = ladder_referral(b, subject=t["subject2"], body=t["body"])
        other = ladder_referral(b, unit=b.unit_b, subject=t["subject2"], body=t["body"])
        with time_machine.travel(bj(2026, 3, 16, 10, 0), tick=False):
            first = tracking.rectification_set(referral=tracked, acting_user=b.supervisor, requirement=t["r1"],
                                               working_days=3)
        tracking.rectification_reminders_send(now=bj(2026, 3, 18, 10, 0))
        tracking.rectification_reminders_send(now=bj(2026, 3, 19, 10, 1))
        with time_machine.travel(bj(2026, 3, 20, 11, 0), tick=False):
            tracking.rectification_answer(rnd=first, acting_user=b.handler_a, answer=t["a1"])
        with time_machine.travel(bj(2026, 3, 23, 9, 0), tick=False):
            tracking.rectification_set(referral=tracked, acting_user=b.supervisor, requirement=t["r2"], working_days=2)
        with time_machine.travel(bj(2026, 3, 24, 9, 0), tick=False):
            tracking.referral_close(referral=closed, acting_user=b.supervisor,
                                    kind=DisciplineReferral.Outcome.CRITICISM, note=t["outcome"])
        # unit B's notice answered (ends red), unit A's two left unanswered (red: their deadline passed)
        supervision_notice_answer(notice=other.case.supervision_notices.get(), acting_user=b.handler_b,
                                  answer=t["a1"])
    return b, tracked, closed


def open_page(browser, live_server, user, language):
    context = browser.new_context(locale=LANGS[language], viewport={"width": 1366, "height": 768})
    context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": live_server.url}])
    context.set_default_timeout(20000)
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "pw")
    with page.expect_navigation():
        page.click("input[type=submit]")
    return page


def readable(text: str, language: str) -> list[str]:
    """What on a page is not in the page's language, an ISO time or a raw code (empty: all good)."""
    problems = [m.group(0) for m in ISO.finditer(text)]
    problems += [c for c in CODES if re.search(rf"(?<![A-Za-z]){re.escape(c)}", text)]
    if language == "en":
        problems += sorted({m.group(0) for m in re.finditer(r".{0,12}" + CJK.pattern + r".{0,12}", text)})
    else:
        # Latin words left on a Chinese page are English labels; references, e-mail addresses and
        # the name "PDF" are the only Latin text the data and the page may carry.
        stripped = re.sub(r"\S+@\S+|[A-Z]{2,}-\d{4}-\d+|PDF", " ", text)
        problems += sorted({m.group(0) for m in re.finditer(r"[A-Za-z]{2,}", stripped)})
    return problems


def shot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def pdf_pages(content: bytes) -> int:
    """The PDF's page count: parsed by pypdf when installed, else its page objects are counted,
    inside the compressed object streams too (WeasyPrint writes its objects compressed)."""
    if PdfReader is not None:
        return len(PdfReader(io.BytesIO(content)).pages)
    parts = [content]
    for stream in re.finditer(rb"stream\r?\n(.*?)endstream", content, re.S):
        try:
            parts.append(zlib.decompress(stream.group(1)))
        except zlib.error:
            continue
    return sum(len(re.findall(rb"/Type\s*/Page(?![s\w])", part)) for part in parts)


def pdf_text(path: Path) -> str | None:
    if not shutil.which("pdftotext"):
        return None
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True,
                          text=True).stdout


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_the_referral_page_tells_the_whole_story_in_the_page_language(browser, live_server, language):
    b, tracked, closed = build_world(language)
    page = open_page(browser, live_server, b.supervisor, language)
    page.goto(f"{live_server.url}/admin/casework/disciplinereferral/{tracked.pk}/change/")
    shot(page, f"referral_{language}_1366")
    text = page.inner_text("#content")
    assert readable(text, language) == []
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "the page scrolls sideways"
    rows = page.locator("#cw-referral-timeline tbody tr")
    kinds = [c.split("cw-kind-")[1] for c in rows.evaluate_all("rs => rs.map(r => r.className)")]
    assert kinds[-6:] == ["referral", "round", "reminder", "reminder", "answer", "round"]
    # Local Beijing time in words: round 1 was set on 16 March 2026 at 10:00.
    timeline = page.inner_text("#cw-referral-timeline")
    assert ("2026年3月16日 10:00" if language == "zh-hans" else "March 16, 2026, 10 a.m.") in timeline
    assert TEXT[language]["a1"] in timeline
    # Round 2 is past its deadline and still owed: red, and no new round is offered, only the outcome.
    assert page.locator("#cw-referral-rounds .cw-late").count() == 1
    assert page.locator("#cw-rectify-link").count() == 0 and page.locator("#cw-outcome-link").count() == 1

    page.set_viewport_size({"width": 1920, "height": 1080})
    shot(page, f"referral_{language}_1920")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.set_viewport_size({"width": 1366, "height": 768})

    # The outcome form: no preset, a required choice.
    page.click("#cw-outcome-link")
    assert page.locator("select[name=kind]").input_value() == ""
    assert page.locator("select[name=kind]").get_attribute("required") is not None
    shot(page, f"referral_outcome_form_{language}_1366")
    assert readable(page.inner_text("#content"), language) == []

    # The closed referral shows its outcome in words; the dispatcher reads it and is offered nothing.
    page = open_page(browser, live_server, b.dispatcher, language)
    page.goto(f"{live_server.url}/admin/casework/disciplinereferral/{closed.pk}/change/")
    shot(page, f"referral_closed_{language}_1366")
    text = page.inner_text("#content")
    assert readable(text, language) == []
    with translation.override(language):
        assert str(DisciplineReferral.Outcome.CRITICISM.label) in text
    assert page.locator("#cw-rectify-link, #cw-outcome-link").count() == 0
    page.goto(f"{live_server.url}/admin/casework/disciplinereferral/")
    shot(page, f"referral_list_{language}_1366")
    assert readable(page.inner_text("#content"), language) == []


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_the_notice_list_has_one_row_per_notice_with_its_deadline(browser, live_server, language):
    b, tracked, closed = build_world(language)
    page = open_page(browser, live_server, b.dispatcher, language)
    page.goto(f"{live_server.url}/admin/casework/supervisionnotice/")
    shot(page, f"notice_list_{language}_1366")
    assert readable(page.inner_text("#content"), language) == []
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "the page scrolls sideways"
    page.set_viewport_size({"width": 1920, "height": 1080})
    shot(page, f"notice_list_{language}_1920")
    page.set_viewport_size({"width": 1366, "height": 768})
    notices = list(SupervisionNotice.objects.select_related("case"))
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == len(notices) == 3
    for notice in notices:
        row = page.locator("#result_list tbody tr", has_text=f"#{notice.pk} ")
        if row.count() == 0:
            row = page.locator("#result_list tbody tr").filter(has=page.locator(f"a[href$='/{notice.pk}/change/']"))
        assert row.count() == 1
        assert notice.case.reference in row.inner_text()
        due = row.locator(".field-due_cell")
        assert due.inner_text().strip() not in ("", "—")
        late = due.locator(".cw-late")
        assert late.count() == (0 if notice.answered_at else 1), notice
        if late.count():
            assert late.evaluate("e => getComputedStyle(e).color") == "rgb(186, 33, 33)"
    # Each case once per notice: the case column is not repeated as the row's title.
    references = [notice.case.reference for notice in notices]
    assert all(page.locator("#result_list tbody tr", has_text=r).count() == references.count(r) for r in references)

    # The unit sees its unanswered 督办单 on its home page and opens them from the tile.
    page = open_page(browser, live_server, b.handler_a, language)
    page.goto(f"{live_server.url}/admin/")
    tile = page.locator("#cw-queue-unit-notices")
    assert tile.count() == 1
    assert tile.locator(".cw-count").inner_text() == "2"
    rounds = page.locator("#cw-queue-unit-rounds")  # the 整改报告 round 2 the unit still owes
    assert rounds.locator(".cw-count").inner_text() == "1"
    shot(page, f"unit_home_{language}_1366")
    tile.locator("a").click()
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 2
    shot(page, f"unit_notices_{language}_1366")
    assert readable(page.inner_text("#content"), language) == []


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_a_notice_and_a_referral_print_on_one_a4_page_and_download_as_pdf(browser, live_server, language):
    b, tracked, closed = build_world(language)
    notice = tracked.case.supervision_notices.get()
    page = open_page(browser, live_server, b.supervisor, language)
    for kind, pk in (("supervisionnotice", notice.pk), ("disciplinereferral", tracked.pk)):
        page.goto(f"{live_server.url}/admin/casework/{kind}/{pk}/change/")
        assert page.locator("#cw-print-link").count() == 1 and page.locator("#cw-pdf-link").count() == 1
        page.click("#cw-print-link")
        page.wait_for_selector(".sheet")
        shot(page, f"print_{kind}_{language}_1366")
        assert readable(page.inner_text(".sheet"), language) == []
        # As printed (print media, A4): one sheet of paper.
        page.emulate_media(media="print")
        sheet_height = page.evaluate("document.querySelector('.sheet').getBoundingClientRect().height")
        assert sheet_height <= 1123 - 113, sheet_height  # A4 at 96 dpi minus the @page margins
        shot(page, f"print_{kind}_{language}_printmedia")
        page.emulate_media(media="screen")

        # WeasyPrint takes a few seconds on a loaded machine (the first render loads the fonts)
        response = page.context.request.get(f"{live_server.url}/admin/casework/{kind}/{pk}/pdf/", timeout=180000)
        assert response.status == 200
        assert response.headers["content-type"] == "application/pdf"
        assert "attachment" in response.headers["content-disposition"]
        content = response.body()
        assert content.startswith(b"%PDF-")
        assert pdf_pages(content) == 1
        path = ARTIFACTS / f"{kind}_{language}.pdf"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        text = pdf_text(path)
        if text is not None:
            squeezed = re.sub(r"\s+", "", text)
            assert tracked.case.reference in squeezed
            assert re.sub(r"\s+", "", "督办单" if kind == "supervisionnotice" and language == "zh-hans"
                          else "纪检督察移交单" if language == "zh-hans"
                          else "Supervision notice" if kind == "supervisionnotice"
                          else "Referral to discipline supervision") in squeezed
            assert ISO.search(text) is None
        if shutil.which("pdftoppm"):
            subprocess.run(["pdftoppm", "-png", "-r", "60", str(path), str(path.with_suffix(""))], check=True)
