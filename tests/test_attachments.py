"""Attachments on feedback (issue 10 item 3; DESIGN.md §8): allow-listed by content, served as downloads.

- JPG/PNG/PDF/DOCX/XLSX are accepted by their bytes, whatever their name or the browser's MIME type.
- HTML, SVG, a renamed HTML, a JPEG header in front of markup (polyglot), a PDF with JavaScript and an
  oversized file are refused with a message naming the file; the typed draft is kept; nothing is
  stored (no row, no file).
- The download is an attachment (Content-Disposition, nosniff, the sniffed type) and follows the
  case's access rule: a handler of another unit gets a readable 404 page.
- Every upload is a CaseEvent of the case's audit chain; the case page and the reviewers list them.
"""

import io
import zipfile

from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image
import pytest

from casework import attachments
from casework.models import Attachment, State

pytestmark = pytest.mark.django_db


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def jpeg_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (30, 30, 200)).save(out, "JPEG")
    return out.getvalue()


def pdf_bytes() -> bytes:
    return (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>"
            b"endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")


def office_bytes(part: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr(part, "<doc/>")
    return out.getvalue()


ACCEPTED = [
    ("现场照片.png", png_bytes, "image/png"),
    ("photo.jpg", jpeg_bytes, "image/jpeg"),
    ("scan.pdf", pdf_bytes, "application/pdf"),
    ("情况说明.docx", lambda: office_bytes("word/document.xml"),
     "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("台账.xlsx", lambda: office_bytes("xl/workbook.xml"),
     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("no-extension", png_bytes, "image/png"),  # judged by content, not by name
]

REFUSED = [
    ("page.html", lambda: b"<!DOCTYPE html><html><script>alert(1)</script></html>", "text/html"),
    ("logo.svg", lambda: b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "image/svg+xml"),
    ("xml.svg", lambda: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml"),
    ("renamed.jpg", lambda: b"<html><body>hi</body></html>", "image/jpeg"),
    ("polyglot.jpg", lambda: jpeg_bytes() + b"<script>alert(1)</script>", "image/jpeg"),
    ("polyglot.png", lambda: png_bytes() + b"<html><svg onload=alert(1)>", "image/png"),
    ("header-only.jpg", lambda: b"\xff\xd8\xff\xe0" + b"x" * 100, "image/jpeg"),
    ("script.pdf", lambda: pdf_bytes().replace(b"/Type/Catalog", b"/Type/Catalog/OpenAction<</S/JavaScript>>"),
     "application/pdf"),
    ("macro.docx", lambda: office_bytes("word/vbaProject.bin"), "application/msword"),
    ("plain.zip", lambda: office_bytes("readme.txt"), "application/zip"),
    ("notes.txt", lambda: "随便写点".encode(), "text/plain"),
]


def handling_page(client, bureau):
    case = bureau.case_in(State.HANDLING)
    client.force_login(bureau.handler_a)
    return case


def post_draft(client, case, files, action="save_draft", reply="网友您好!已处理。"):
    return client.post(reverse("admin:casework_case_act", args=[case.pk, action]), {
        "expected_state": case.state, "lock_version": case.lock_version, "handling_report": "已现场核实",
        "policy_basis": "", "measures": "", "reply_text": reply, "attachments": files})


def errors_of(response):
    return [str(m) for m in get_messages(response.wsgi_request) if m.level_tag == "error"]


@pytest.mark.parametrize("name,make,content_type", ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_allowed_kinds_are_accepted_by_content(name, make, content_type):
    assert attachments.attachment_sniff(content=make()) == content_type


@pytest.mark.parametrize("name,make,client_type", REFUSED, ids=[r[0] for r in REFUSED])
def test_markup_and_unknown_kinds_are_refused(name, make, client_type):
    with pytest.raises(attachments.AttachmentRefused):
        attachments.attachment_sniff(content=make())


def test_an_attachment_is_uploaded_with_the_draft_audited_and_downloaded(client, bureau, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    case = handling_page(client, bureau)
    photo = png_bytes()
    response = post_draft(client, case, [SimpleUploadedFile("现场照片.png", photo, content_type="text/html"),
                                         SimpleUploadedFile("scan.pdf", pdf_bytes(), content_type="image/png")])
    assert response.status_code == 302 and not errors_of(response)

    first, second = Attachment.objects.filter(case=case).order_by("pk")
    assert (first.original_name, first.content_type, first.size) == ("现场照片.png", "image/png", len(photo))
    assert second.content_type == "application/pdf"
    assert first.draft == case.drafts.get()
    stored = list((tmp_path / "attachments").iterdir())
    assert len(stored) == 2 and all("照片" not in p.name and "scan" not in p.name for p in stored)
    events = case.events.filter(action="attachment_added")
    assert [e.payload["name"] for e in events] == ["现场照片.png", "scan.pdf"]
    assert events[0].payload["sha256"] == first.sha256

    # The reviewer sees it on the case page and downloads it.
    case.refresh_from_db()
    client.post(reverse("admin:casework_case_act", args=[case.pk, "submit_feedback"]),
                {"expected_state": "handling"})
    client.force_login(bureau.reviewer)
    page = client.get(reverse("admin:casework_case_change", args=[case.pk])).content.decode()
    url = reverse("admin:casework_attachment_download", args=[first.pk])
    assert url in page and "现场照片.png" in page
    download = client.get(url)
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == photo
    assert download["Content-Type"] == "image/png"
    assert download["Content-Disposition"].startswith("attachment;")
    assert "filename*=utf-8''%E7%8E%B0" in download["Content-Disposition"]
    assert download["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("name,make,client_type", REFUSED[:6], ids=[r[0] for r in REFUSED[:6]])
def test_a_refused_file_stores_nothing_and_keeps_the_typed_draft(client, bureau, settings, tmp_path,
                                                                 name, make, client_type):
    settings.MEDIA_ROOT = tmp_path
    case = handling_page(client, bureau)
    good = SimpleUploadedFile("ok.png", png_bytes(), content_type="image/png")
    response = post_draft(client, case, [good, SimpleUploadedFile(name, make(), content_type=client_type)],
                          reply="网友您好!这段话不能丢。")
    errors = errors_of(response)
    assert response.status_code == 302 and errors and name in errors[0]
    assert "JPG" in errors[0]
    assert not Attachment.objects.exists() and not case.drafts.exists()
    assert not list((tmp_path / "attachments").glob("*")) if (tmp_path / "attachments").exists() else True
    assert not case.events.filter(action__in=["attachment_added", "draft_saved"]).exists()
    page = client.get(reverse("admin:casework_case_change", args=[case.pk])).content.decode()
    assert "网友您好!这段话不能丢。" in page


def test_submit_feedback_with_a_refused_file_does_not_submit(client, bureau, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    case = handling_page(client, bureau)
    response = post_draft(client, case, [SimpleUploadedFile("x.svg", REFUSED[1][1](), "image/svg+xml")],
                          action="submit_feedback")
    assert errors_of(response)
    case.refresh_from_db()
    assert case.state == State.HANDLING


def test_an_oversized_file_is_refused(client, bureau, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.CASEWORK_ATTACHMENT_MAX_BYTES = 1024
    case = handling_page(client, bureau)
    response = post_draft(client, case, [SimpleUploadedFile("big.pdf", pdf_bytes() + b"0" * 2000, "application/pdf")])
    assert "big.pdf" in errors_of(response)[0] and "MB" in errors_of(response)[0]
    assert not Attachment.objects.exists()


def test_out_of_scope_download_is_a_readable_404(client, bureau, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    case = handling_page(client, bureau)
    post_draft(client, case, [SimpleUploadedFile("p.png", png_bytes(), "image/png")])
    attachment = Attachment.objects.get()
    url = reverse("admin:casework_attachment_download", args=[attachment.pk])
    client.force_login(bureau.handler_b)
    response = client.get(url)
    assert response.status_code == 404
    assert "该附件不存在,或所属案件不在您的查看范围内" in response.content.decode()
    missing = client.get(reverse("admin:casework_attachment_download", args=[attachment.pk + 999]))
    assert missing.status_code == 404 and "不在您的查看范围内" in missing.content.decode()
    client.logout()
    assert client.get(url).status_code == 302  # to the login page


def test_only_the_lead_units_handler_in_handling_may_attach(bureau, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    case = bureau.case_in(State.HANDLING)
    checked = attachments.attachments_check(files=[SimpleUploadedFile("p.png", png_bytes(), "image/png")])
    from django.core.exceptions import PermissionDenied
    from django.db import transaction

    with pytest.raises(PermissionDenied), transaction.atomic():
        attachments.attachments_add(case=case, acting_user=bureau.handler_b, files=checked)
    review = bureau.case_in(State.OFFICE_REVIEW)
    with pytest.raises(attachments.AttachmentRefused), transaction.atomic():
        attachments.attachments_add(case=review, acting_user=bureau.handler_a, files=checked)
    assert not Attachment.objects.exists()
