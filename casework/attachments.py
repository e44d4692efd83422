"""Attachments on feedback: photos and scanned documents, allow-listed by their content.

Rule (DESIGN.md §8, issue 10 item 3): an upload is accepted only when its *bytes* say it is one of
the allowed kinds — JPEG, PNG, PDF, Word (.docx) or Excel (.xlsx) — never by its extension or the
MIME type the browser sent. No magic-number library is installed in the project's environment, so
the signatures are the small explicit table :data:`SIGNATURES` below (the formats' published magic
numbers; Office files are ZIP containers recognised by their part names). On top of the signature:

- an image must open and verify with Pillow (a JPEG header in front of anything else is refused);
- a file containing markup a browser would run (``<script``, ``<html``, ``<svg``, ``<iframe`` …,
  or a PDF ``/JavaScript`` action) is refused even behind a valid signature (a *polyglot*);
- size is limited by ``settings.CASEWORK_ATTACHMENT_MAX_BYTES`` (default 10 MiB) per file and
  ``CASEWORK_ATTACHMENT_MAX_FILES`` (default 10) per submission.

Stored files get a random name under ``MEDIA_ROOT/attachments/``; they are served only through
:func:`casework.selectors.attachment_get_for_user` (the one access rule of the case) as downloads.
"""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
import io
from pathlib import Path
import secrets
import zipfile

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from casework import selectors
from casework.attachment_models import Attachment
from casework.models import Case, ReplyDraft, State
from casework.services import event_append

try:  # Pillow is a dependency of the project (openpyxl images, weasyprint); checked, not assumed
    from PIL import Image
except ImportError:  # pragma: no cover - Pillow is in requirements.txt
    Image = None


class AttachmentRefused(Exception):
    """An uploaded file is not accepted; ``str(exc)`` names the file and says why."""


# (content type, label, file extension) of each allowed kind.
KINDS = {
    "image/jpeg": (gettext_lazy("JPEG 图片"), ".jpg"),
    "image/png": (gettext_lazy("PNG 图片"), ".png"),
    "application/pdf": (gettext_lazy("PDF 文档"), ".pdf"),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (gettext_lazy("Word 文档"), ".docx"),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": (gettext_lazy("Excel 表格"), ".xlsx"),
}

# Leading bytes → content type (ZIP containers are told apart by their parts, see _office_kind).
SIGNATURES = [
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "zip"),
]

# Markup a browser would interpret; found anywhere in the file (case-insensitive), it is refused.
ACTIVE_MARKERS = (b"<script", b"<html", b"<svg", b"<!doctype", b"<iframe", b"<body", b"<object",
                  b"<embed", b"<meta", b"<?xml-stylesheet", b"javascript:")
PDF_ACTIVE_MARKERS = (b"/javascript", b"/js ", b"/js(", b"/js<", b"/launch", b"/embeddedfile")

ACCEPT = ".jpg,.jpeg,.png,.pdf,.docx,.xlsx"


def max_bytes() -> int:
    """The largest accepted file, in bytes (``CASEWORK_ATTACHMENT_MAX_BYTES``, default 10 MiB)."""
    return int(getattr(settings, "CASEWORK_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024))


def max_files() -> int:
    """The most files accepted in one submission (``CASEWORK_ATTACHMENT_MAX_FILES``, default 10)."""
    return int(getattr(settings, "CASEWORK_ATTACHMENT_MAX_FILES", 10))


def storage_dir() -> Path:
    """The directory attachments are stored in: ``MEDIA_ROOT/attachments`` (created when missing)."""
    path = Path(settings.MEDIA_ROOT) / "attachments"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _office_kind(content: bytes) -> str | None:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = set(archive.namelist())
            if "[Content_Types].xml" not in names:
                return None
            # Macros or embedded objects in an Office file are active content: refused.
            if any(n.lower().endswith((".bin", ".js", ".html", ".htm", ".svg")) for n in names):
                return None
    except (zipfile.BadZipFile, ValueError, OSError):
        return None
    if "word/document.xml" in names:
        return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    if "xl/workbook.xml" in names:
        return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return None


def attachment_sniff(*, content: bytes) -> str:
    """Return the content type of ``content`` if it is an allowed kind, judged by its bytes alone.

    Args:
        content: the whole file.

    Returns:
        One of the keys of :data:`KINDS`.

    Raises:
        AttachmentRefused: the bytes match no allowed signature, an image does not decode, or the
            file carries active markup (HTML, SVG, script, a PDF JavaScript action).
    """
    kind = next((k for sig, k in SIGNATURES if content.startswith(sig)), None)
    lowered = content.lower()
    if kind is None:
        if any(m in lowered[:4096] for m in (b"<svg", b"<html", b"<!doctype", b"<?xml", b"<script")):
            raise AttachmentRefused(_("网页(HTML)或 SVG 文件不能作为附件。"))
        raise AttachmentRefused(_("文件内容不是允许的类型。"))
    if kind == "zip":
        kind = _office_kind(content)
        if kind is None:
            raise AttachmentRefused(_("压缩文件只接受不含宏和嵌入内容的 Word(.docx)和 Excel(.xlsx)文档。"))
        return kind
    if any(m in lowered for m in ACTIVE_MARKERS):
        raise AttachmentRefused(_("文件中夹带网页代码(HTML/SVG/脚本),不能作为附件。"))
    if kind == "application/pdf":
        if any(m in lowered for m in PDF_ACTIVE_MARKERS):
            raise AttachmentRefused(_("PDF 中含有脚本或嵌入文件,不能作为附件。"))
        return kind
    if Image is not None:
        try:
            with Image.open(io.BytesIO(content)) as image:
                image.verify()
                fmt = image.format
        except Exception as exc:  # noqa: BLE001 - any decoder error means "not a real image"
            raise AttachmentRefused(_("图片无法识别(文件已损坏或不是真正的图片)。")) from exc
        if {"JPEG": "image/jpeg", "PNG": "image/png"}.get(fmt) != kind:
            raise AttachmentRefused(_("图片无法识别(文件已损坏或不是真正的图片)。"))
    return kind


@dataclass
class CheckedFile:
    """An upload that passed :func:`attachments_check`: its name, bytes and sniffed type."""

    name: str
    content: bytes
    content_type: str


def attachments_check(*, files) -> list[CheckedFile]:
    """Read and judge every uploaded file before anything is written.

    Args:
        files: Django ``UploadedFile`` objects (``request.FILES.getlist(...)``); empty ones skipped.

    Returns:
        The accepted files, in order.

    Raises:
        AttachmentRefused: too many files, a file over the size limit, or a refused kind; the
            message names the file. Nothing is stored when this is raised.
    """
    files = [f for f in files if f is not None and getattr(f, "size", 0)]
    if len(files) > max_files():
        raise AttachmentRefused(_("一次最多上传 %(n)d 个附件。") % {"n": max_files()})
    checked = []
    for upload in files:
        name = Path(str(upload.name or "")).name[:200] or "attachment"
        if upload.size > max_bytes():
            raise AttachmentRefused(_("附件「%(name)s」超过 %(mb)d MB 的大小限制。")
                                    % {"name": name, "mb": max_bytes() // (1024 * 1024)})
        content = b"".join(upload.chunks())
        if len(content) > max_bytes():
            raise AttachmentRefused(_("附件「%(name)s」超过 %(mb)d MB 的大小限制。")
                                    % {"name": name, "mb": max_bytes() // (1024 * 1024)})
        try:
            content_type = attachment_sniff(content=content)
        except AttachmentRefused as exc:
            raise AttachmentRefused(_("附件「%(name)s」未被接受:%(why)s只接受 JPG、PNG 图片和 PDF、Word(.docx)、Excel(.xlsx)文档。")
                                    % {"name": name, "why": exc}) from exc
        checked.append(CheckedFile(name=name, content=content, content_type=content_type))
    return checked


def attachments_add(*, case: Case, acting_user: User, files: list[CheckedFile],
                    draft: ReplyDraft | None = None) -> list[Attachment]:
    """Store checked files as attachments of ``case``'s feedback, one audit event each.

    Must run inside the transaction holding the case row lock (``services.case_lock``). Files are
    written under :func:`storage_dir` with random names; when the database write fails the files
    just written are removed again.

    Args:
        case: the locked case, in handling.
        files: the output of :func:`attachments_check`.
        draft: the draft version the files go with (None: the case's current round).

    Raises:
        PermissionDenied: the user may not write the lead unit's feedback (same rule as drafts).
        AttachmentRefused: the case is not in handling.
    """
    if not selectors.user_may_act(user=acting_user, case=case, perm="submit_feedback", scope="lead"):
        raise PermissionDenied(_("您没有为该案件上传附件的权限。"))
    if case.state != State.HANDLING:
        raise AttachmentRefused(_("只有承办中的案件可以上传附件。"))
    written, created = [], []
    try:
        for item in files:
            stored = secrets.token_hex(16) + KINDS[item.content_type][1]
            path = storage_dir() / stored
            path.write_bytes(item.content)
            written.append(path)
            attachment = Attachment.objects.create(
                case=case, draft=draft, round=case.handling_round, original_name=item.name,
                stored_name=stored, content_type=item.content_type, size=len(item.content),
                sha256=hashlib.sha256(item.content).hexdigest(), uploaded_by=acting_user,
                uploaded_at=timezone.now(),
            )
            event_append(case=case, action="attachment_added", actor=acting_user, from_state=case.state,
                         to_state=case.state, reason=item.name,
                         payload={"attachment_id": attachment.pk, "name": item.name,
                                  "content_type": item.content_type, "size": attachment.size,
                                  "sha256": attachment.sha256})
            created.append(attachment)
    except BaseException:
        attachments_discard(paths=written)
        raise
    return created


def attachments_discard(*, paths) -> None:
    """Remove stored files whose rows did not commit (best effort; missing files are ignored)."""
    for path in paths:
        Path(path).unlink(missing_ok=True)


def attachment_path(attachment: Attachment) -> Path:
    """The stored file of ``attachment`` (inside :func:`storage_dir`; the name is never user input)."""
    return storage_dir() / Path(attachment.stored_name).name
