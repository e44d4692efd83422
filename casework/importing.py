"""Message intake by spreadsheet import (DESIGN.md §5).

The platforms export their messages as CSV or XLSX with the eleven columns of
``casework/data/messages/`` (``message_id, user_id, subject, body, submitted_at, category, reply,
replied_at, likes, dislikes, source``); the Chinese headers of the platforms' own exports
(留言编号, 留言主题 …) are accepted as aliases. :func:`read_message_rows` parses a file into
:class:`MessageRow` / :class:`RowError` items; :func:`messages_import` turns every good row into a
case through :func:`casework.services.case_register`, one savepoint per row, so a bad row never
loses a good one. Re-importing is idempotent on (platform, external id).

Rules kept here, with their sources:

- Row numbers are the spreadsheet's: the header is row 1, the first message row 2. In a CSV a
  body with line breaks is still one row.
- Naive times are Asia/Shanghai (DESIGN.md §4); identifiers are stored half-width (field case
  C23); free text is kept exactly as written (C22, C23).
- The message type is guessed from keywords (:func:`message_type_infer`); the dispatcher can
  correct it.
"""

from collections.abc import Callable, Iterator
import contextlib
import csv
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
import gzip
import io
import itertools
import os
import time as monotonic_time
import zipfile

from django.core.exceptions import PermissionDenied
from django.db import DataError, IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from casework import calendar, services
from casework.models import Case, MessageType, Platform
from casework.text import to_half_width

COLUMNS = (
    "message_id",
    "user_id",
    "subject",
    "body",
    "submitted_at",
    "category",
    "reply",
    "replied_at",
    "likes",
    "dislikes",
    "source",
)
REQUIRED_COLUMNS = ("message_id", "subject", "body", "submitted_at")

# Headers of the platforms' own exports (附件2–4 of the 2020 Teddy Cup data) → our columns.
HEADER_ALIASES = {
    "留言编号": "message_id",
    "留言用户": "user_id",
    "留言主题": "subject",
    "留言详情": "body",
    "留言时间": "submitted_at",
    "一级标签": "category",
    "一级分类": "category",
    "答复意见": "reply",
    "答复时间": "replied_at",
    "点赞数": "likes",
    "反对数": "dislikes",
    "来源": "source",
}

COLUMN_LABELS = {
    "message_id": "留言编号",
    "user_id": "留言用户",
    "subject": "留言主题",
    "body": "留言详情",
    "submitted_at": "留言时间",
}

# Keyword rules of :func:`message_type_infer`, tried in this order (first match wins).
MESSAGE_TYPE_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (MessageType.REPORT, ("举报",)),
    (MessageType.COMPLAIN, ("投诉",)),
    (MessageType.SUGGEST, ("建议",)),
    (MessageType.HELP, ("求助", "请求帮助")),
)

DEFAULT_PLATFORM_CODE = "wzxd"
DEFAULT_PLATFORM_NAME = "问政西地省"

BATCH_SIZE = 200
MAX_COUNT = 2**31 - 1  # PositiveIntegerField on PostgreSQL
FUTURE_TOLERANCE = timedelta(days=1)
MAX_CSV_FIELD = 16 * 1024 * 1024  # characters

_DATETIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%Y.%m.%d %H:%M:%S",
    "%Y.%m.%d",
    "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M",
    "%Y年%m月%d日%H:%M:%S",
    "%Y年%m月%d日%H:%M",
    "%Y年%m月%d日",
)

ProgressCallback = Callable[[int, int | None, float, float | None], None]


class ImportFileError(Exception):
    """The file cannot be read at all (wrong format, not UTF-8, missing columns); ``str`` says why."""


@dataclass(frozen=True, slots=True)
class MessageRow:
    """One good row of an export, parsed. Times are aware; ``external_id`` is half-width."""

    row_number: int
    external_id: str
    citizen_name: str
    subject: str
    body: str
    submitted_at: datetime
    category: str
    reply: str
    replied_at: datetime | None
    likes: int | None
    dislikes: int | None


@dataclass(frozen=True, slots=True)
class RowError:
    """One bad row: its spreadsheet row number (header = 1), its id if readable, and the reason."""

    row_number: int
    external_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class ImportedRow:
    """A row that has its case: created by this import, or skipped because it was imported before."""

    row_number: int
    external_id: str
    case_id: int
    created: bool
    reply: str
    replied_at: datetime | None


@dataclass
class ImportReport:
    """The outcome of one import: counts, the bad rows and, per good row, its case and reply."""

    created: int = 0
    skipped: int = 0
    errors: list[RowError] = field(default_factory=list)
    rows: list[ImportedRow] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_read(self) -> int:
        return self.created + self.skipped + len(self.errors)

    def replies(self) -> dict[str, tuple[str, datetime | None]]:
        """Return ``external_id → (official reply, reply time)`` for the good rows that have a reply."""
        return {r.external_id: (r.reply, r.replied_at) for r in self.rows if r.reply}


# ---------------------------------------------------------------- rules


def message_type_infer(*, subject: str, body: str) -> str:
    """Guess the message type from its words; return a ``MessageType`` value.

    Rules (DESIGN.md §4 names the types; the keywords are ours): the subject is searched first,
    then the body, for 举报 → report, 投诉 → complain, 建议 → suggest, 求助 or 请求帮助 → help, in
    that order; the first keyword found decides. Anything else is a consultation (咨询). The guess
    only sets the default deadline; the dispatcher can correct it.
    """
    for text in (subject or "", body or ""):
        for message_type, keywords in MESSAGE_TYPE_KEYWORDS:
            if any(keyword in text for keyword in keywords):
                return message_type
    return MessageType.CONSULT


def platform_ensure(*, code: str = DEFAULT_PLATFORM_CODE, name: str = DEFAULT_PLATFORM_NAME) -> Platform:
    """Return the platform with ``code``, creating it with ``name`` when missing.

    Raises:
        ValueError: when ``name`` already belongs to a platform with another code.
    """
    platform = Platform.objects.filter(code=code).first()
    if platform is not None:
        return platform
    if Platform.objects.filter(name=name).exists():
        raise ValueError(_("平台名称「%(name)s」已被其他平台代码使用。") % {"name": name})
    platform, _created = Platform.objects.get_or_create(code=code, defaults={"name": name})
    return platform


# ---------------------------------------------------------------- reading files


def sniff_format(fh) -> str:
    """Tell the format of an open binary file from its content: ``"xlsx"``, ``"csv.gz"`` or ``"csv"``.

    The file position is restored. Raises:
        ImportFileError: for anything else (old .xls, other zip files, HTML/SVG/XML, binary data).
    """
    head = fh.read(4096)
    fh.seek(0)
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(fh) as archive:
                names = set(archive.namelist())
        except zipfile.BadZipFile as exc:
            raise ImportFileError(_("文件是损坏的压缩包,不是有效的 xlsx 工作簿。")) from exc
        finally:
            fh.seek(0)
        if "[Content_Types].xml" not in names or "xl/workbook.xml" not in names:
            raise ImportFileError(_("压缩包不是 xlsx 工作簿(缺少 xl/workbook.xml)。"))
        return "xlsx"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise ImportFileError(_("不支持旧版 Excel(.xls)文件,请另存为 .xlsx 或 UTF-8 编码的 CSV。"))
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.GzipFile(fileobj=fh) as inner:
                _check_text_head(inner.read(4096))
        except (OSError, EOFError) as exc:
            raise ImportFileError(_("gzip 压缩文件已损坏。")) from exc
        finally:
            fh.seek(0)
        return "csv.gz"
    _check_text_head(head)
    return "csv"


def _check_text_head(head: bytes) -> None:
    if b"\x00" in head:
        raise ImportFileError(_("文件是二进制数据,不是 CSV 或 xlsx 表格。"))
    stripped = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if stripped.startswith(b"<"):
        raise ImportFileError(_("文件内容是 HTML/XML 等标记文本,不是 CSV 或 xlsx 表格。"))
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The 4 KiB cut may split one character; only an error before the last 3 bytes counts.
        if exc.start < len(head) - 3:
            raise ImportFileError(_not_utf8()) from exc


def _not_utf8() -> str:
    return _("文件不是 UTF-8 编码。请在表格软件中另存为「CSV UTF-8」或 .xlsx 后再导入。")


@dataclass
class _Table:
    header: list[str]
    records: Iterator[tuple[int, list]]  # (spreadsheet row number, cell values)
    total: int | None  # data rows, when known before reading them


@contextlib.contextmanager
def _open_binary(source):
    if isinstance(source, (str, os.PathLike)):
        try:
            fh = open(source, "rb")  # noqa: SIM115
        except OSError as exc:
            raise ImportFileError(_("无法打开文件:%(error)s") % {"error": exc.strerror or exc}) from exc
        with fh:
            yield fh
        return
    if not (hasattr(source, "seekable") and source.seekable()):
        source = io.BytesIO(source.read())
    source.seek(0)
    yield source


def _csv_text(fh, kind: str):
    # A citizen may write a very long message; the csv module's default cap (128 Ki characters per
    # field) would make one long body abort the whole file.
    if csv.field_size_limit() < MAX_CSV_FIELD:
        csv.field_size_limit(MAX_CSV_FIELD)
    raw = gzip.GzipFile(fileobj=fh) if kind == "csv.gz" else fh
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="", errors="strict")


def _blank(values) -> bool:
    return all(v is None or (isinstance(v, str) and not v.strip()) for v in values)


def _csv_count(fh, kind: str) -> int:
    """Count the data rows of a CSV and prove that all of it decodes as UTF-8."""
    text = _csv_text(fh, kind)
    try:
        reader = csv.reader(text)
        next(reader, None)
        count = sum(1 for record in reader if not _blank(record))
    except UnicodeDecodeError as exc:
        raise ImportFileError(_not_utf8()) from exc
    except (csv.Error, OSError, EOFError) as exc:
        raise ImportFileError(_("CSV 文件无法解析:%(error)s") % {"error": exc}) from exc
    finally:
        text.detach()
        fh.seek(0)
    return count


@contextlib.contextmanager
def _open_table(source) -> Iterator[_Table]:
    with _open_binary(source) as fh:
        kind = sniff_format(fh)
        if kind == "xlsx":
            import openpyxl

            try:
                workbook = openpyxl.load_workbook(fh, read_only=True, data_only=True)
            except Exception as exc:  # openpyxl raises many types for a broken workbook
                raise ImportFileError(_("xlsx 工作簿无法读取:%(error)s") % {"error": exc}) from exc
            try:
                sheet = workbook.worksheets[0]
                rows = enumerate(sheet.iter_rows(min_row=1, values_only=True), start=1)
                first = next(rows, None)
                header = list(first[1]) if first else []
                total = sheet.max_row - 1 if sheet.max_row else None
                yield _Table(header=header, records=((n, list(v)) for n, v in rows), total=total)
            finally:
                workbook.close()
            return
        total = _csv_count(fh, kind)
        text = _csv_text(fh, kind)
        try:
            reader = csv.reader(text)
            records = enumerate(reader, start=1)
            first = next(records, None)
            header = first[1] if first else []
            yield _Table(header=header, records=records, total=total)
        finally:
            text.detach()


def _header_map(header: list) -> dict[str, int]:
    """Map our column names to positions; raise ImportFileError for a missing or repeated column."""
    positions: dict[str, int] = {}
    for index, cell in enumerate(header):
        name = to_half_width(_cell_text(cell)).removeprefix("\ufeff").strip()
        column = HEADER_ALIASES.get(name, name.lower())
        if column not in COLUMNS:
            continue
        if column in positions:
            raise ImportFileError(_("表头中「%(column)s」列出现了两次。") % {"column": name})
        positions[column] = index
    missing = [c for c in REQUIRED_COLUMNS if c not in positions]
    if missing:
        names = "、".join(f"{c}({COLUMN_LABELS[c]})" for c in missing)
        raise ImportFileError(
            _("表头缺少必需的列:%(columns)s。第 1 行必须是表头,列名见 casework/data/messages/README.md。")
            % {"columns": names}
        )
    return positions


# ---------------------------------------------------------------- parsing cells


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _parse_datetime(value) -> datetime | None:
    """Parse a cell as an aware datetime (naive → Asia/Shanghai); None when empty; ValueError if bad."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time(0))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        from openpyxl.utils.datetime import from_excel

        if not 1 <= value < 2958466:
            raise ValueError(value)
        parsed = from_excel(value)
    else:
        text = " ".join(to_half_width(str(value)).split())
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            for pattern in _DATETIME_FORMATS:
                try:
                    parsed = datetime.strptime(text, pattern)
                    break
                except ValueError:
                    continue
            else:
                raise ValueError(value) from None
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=calendar.SHANGHAI)
    return parsed


def _parse_count(value) -> int | None:
    """Parse a like/dislike cell as a non-negative integer; None when empty; ValueError if bad."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(value)
        value = int(value)
    if isinstance(value, int):
        number = value
    else:
        text = to_half_width(str(value)).replace(",", "").strip()
        if not text:
            return None
        if "." in text and text.rstrip("0").endswith("."):  # "2.0" from a spreadsheet's number format
            text = text.rstrip("0")[:-1]
        if not (text.isascii() and text.isdigit()):
            raise ValueError(value)
        number = int(text)
    if not 0 <= number <= MAX_COUNT:
        raise ValueError(value)
    return number


def _max_length(name: str) -> int:
    return Case._meta.get_field(name).max_length


def _parse_record(row_number: int, values: list, columns: dict[str, int], width: int, now: datetime):
    """Turn one record into a MessageRow, or a RowError listing every problem found."""

    def get(column: str):
        index = columns.get(column)
        if index is None or index >= len(values):
            return None
        return values[index]

    def text(column: str) -> str:
        return _cell_text(get(column))

    external_id = to_half_width(text("message_id"))
    problems: list[str] = []
    if len(values) > width and not _blank(values[width:]):
        problems.append(
            _("本行有 %(cells)d 列,多于表头的 %(width)d 列(可能有未闭合的引号)。")
            % {"cells": len(values), "width": width}
        )
    for column in COLUMNS:
        if "\x00" in text(column):
            problems.append(_("「%(column)s」含有空字符(NUL),无法保存。") % {"column": column})
    subject, body = text("subject"), text("body")
    citizen_name, category = text("user_id").strip(), text("category").strip()
    if not external_id:
        problems.append(_("缺少留言编号。"))
    elif len(external_id) > _max_length("external_id"):
        problems.append(_("留言编号超过 %(n)d 个字符。") % {"n": _max_length("external_id")})
    if not subject.strip():
        problems.append(_("缺少留言主题。"))
    elif len(subject.strip()) > _max_length("subject"):
        problems.append(_("留言主题超过 %(n)d 个字。") % {"n": _max_length("subject")})
    if not body.strip():
        problems.append(_("留言详情为空。"))
    if len(citizen_name) > _max_length("citizen_name"):
        problems.append(_("留言用户超过 %(n)d 个字符。") % {"n": _max_length("citizen_name")})
    if len(category) > _max_length("category"):
        problems.append(_("分类超过 %(n)d 个字。") % {"n": _max_length("category")})

    submitted_at = replied_at = None
    try:
        submitted_at = _parse_datetime(get("submitted_at"))
    except (ValueError, OverflowError):
        problems.append(_("留言时间无法识别:「%(value)s」。") % {"value": text("submitted_at")})
    else:
        if submitted_at is None:
            problems.append(_("缺少留言时间。"))
        elif submitted_at > now + FUTURE_TOLERANCE:
            problems.append(_("留言时间晚于当前时间:「%(value)s」。") % {"value": text("submitted_at")})
    try:
        replied_at = _parse_datetime(get("replied_at"))
    except (ValueError, OverflowError):
        problems.append(_("答复时间无法识别:「%(value)s」。") % {"value": text("replied_at")})
    counts = {}
    for column, label in (("likes", _("点赞数")), ("dislikes", _("反对数"))):
        try:
            counts[column] = _parse_count(get(column))
        except (ValueError, OverflowError):
            problems.append(
                _("%(label)s不是非负整数:「%(value)s」。") % {"label": label, "value": text(column)}
            )
    if problems:
        return RowError(row_number=row_number, external_id=external_id, reason="".join(problems))
    return MessageRow(
        row_number=row_number,
        external_id=external_id,
        citizen_name=citizen_name,
        subject=subject.strip(),
        body=body,
        submitted_at=submitted_at,
        category=category,
        reply=text("reply").strip(),
        replied_at=replied_at,
        likes=counts["likes"],
        dislikes=counts["dislikes"],
    )


def _parse_table(table: _Table, limit: int | None) -> Iterator[MessageRow | RowError]:
    columns = _header_map(table.header)
    width = len(table.header)
    now = timezone.now()
    records = ((n, v) for n, v in table.records if not _blank(v))
    if limit is not None:
        records = itertools.islice(records, limit)
    for row_number, values in records:
        yield _parse_record(row_number, values, columns, width, now)


@contextlib.contextmanager
def _rows(source, limit: int | None = None):
    with _open_table(source) as table:
        total = table.total if limit is None or table.total is None else min(table.total, limit)
        try:
            yield _parse_table(table, limit), total
        except UnicodeDecodeError as exc:
            raise ImportFileError(_not_utf8()) from exc
        except csv.Error as exc:
            raise ImportFileError(_("CSV 文件无法解析:%(error)s") % {"error": exc}) from exc


def read_message_rows(source, *, limit: int | None = None) -> Iterator[MessageRow | RowError]:
    """Yield the parsed rows of an export, in file order, without touching the database.

    Args:
        source: a path (``.csv``, ``.csv.gz``, ``.xlsx``; the format is told from the content) or
            an open binary file (e.g. an uploaded file).
        limit: read only the first ``limit`` non-blank data rows.

    Yields:
        a :class:`MessageRow` per good row (aware Asia/Shanghai times, official reply kept) and a
        :class:`RowError` per bad row. Duplicates within the file are *not* detected here.

    Raises:
        ImportFileError: when the file cannot be read at all.
    """
    with _rows(source, limit) as (rows, _total):
        yield from rows


# ---------------------------------------------------------------- importing


class _Progress:
    def __init__(self, total: int | None, callback: ProgressCallback | None, every: int) -> None:
        self.total, self.callback, self.every = total, callback, max(1, every)
        self.done = self.reported = 0
        self.started = monotonic_time.monotonic()

    def elapsed(self) -> float:
        return monotonic_time.monotonic() - self.started

    def tick(self, *, final: bool = False) -> None:
        if not final:
            self.done += 1
        if self.callback is None or not (final or self.done % self.every == 0):
            return
        if final and self.reported == self.done and self.done:
            return
        self.reported = self.done
        elapsed = self.elapsed()
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = None
        if self.total is not None and rate > 0:
            eta = max(0.0, (self.total - self.done) / rate)
        self.callback(self.done, self.total, rate, eta)


def _register(*, row: MessageRow, platform: Platform, acting_user) -> Case:
    with transaction.atomic():  # one savepoint per row: a failure here loses only this row
        return services.case_register(
            acting_user=acting_user,
            platform=platform,
            subject=row.subject,
            body=row.body,
            submitted_at=row.submitted_at,
            external_id=row.external_id,
            citizen_name=row.citizen_name,
            likes=row.likes,
            dislikes=row.dislikes,
            message_type=message_type_infer(subject=row.subject, body=row.body),
            category=row.category,
            source="import",
        )


def messages_import(
    *,
    rows_source,
    platform: Platform,
    acting_user=None,
    progress: ProgressCallback | None = None,
    progress_every: int = 100,
    limit: int | None = None,
) -> ImportReport:
    """Import a platform's export: register a case for every good row, report every bad one.

    Each good row becomes a case in state ``registered`` through ``case_register`` (source
    ``import``, message type from :func:`message_type_infer`), in its own savepoint. A row whose
    (platform, message id) exists already is skipped, so importing the same file twice creates
    nothing the second time. Bad rows (missing subject or id, empty body, unreadable time or count,
    an id repeated in the file, …) are collected with their row number and a reason in Chinese.

    Args:
        rows_source: a path or an open binary file; CSV (UTF-8, with or without BOM), gzipped CSV
            or XLSX, told apart by content.
        platform: the platform the messages came from.
        acting_user: the member of staff importing, or None for a system import.
        progress: called every ``progress_every`` rows and once at the end with
            ``(rows_done, total_or_None, rate_rows_per_second, eta_seconds_or_None)``.
        limit: import only the first ``limit`` non-blank data rows.

    Returns:
        an :class:`ImportReport`; its ``rows`` give, for each created or skipped row, the case id
        and the official reply and reply time of the export.

    Raises:
        PermissionDenied: when ``acting_user`` lacks ``casework.import_messages`` or
            ``casework.register_case``.
        ImportFileError: when the file cannot be read at all (nothing is imported then, except
            for a CSV that turns unreadable after its first pass, which cannot happen for a file
            that does not change while it is read).
    """
    if acting_user is not None and not (
        acting_user.has_perm("casework.import_messages") and acting_user.has_perm("casework.register_case")
    ):
        raise PermissionDenied(_("您没有导入留言的权限。"))
    report = ImportReport()
    with _rows(rows_source, limit) as (rows, total):
        clock = _Progress(total, progress, progress_every)
        _import_items(rows, report=report, platform=platform, acting_user=acting_user, clock=clock)
        report.seconds = clock.elapsed()
        clock.tick(final=True)
    return report


def _import_items(items, *, report: ImportReport, platform: Platform, acting_user, clock) -> None:
    first_seen: dict[str, int] = {}
    while batch := list(itertools.islice(items, BATCH_SIZE)):
        ids = [item.external_id for item in batch if isinstance(item, MessageRow)]
        existing = dict(
            Case.objects.filter(platform=platform, external_id__in=ids).values_list("external_id", "pk")
        )
        for item in batch:
            _import_one(
                item,
                report=report,
                platform=platform,
                acting_user=acting_user,
                existing=existing,
                first_seen=first_seen,
            )
            if clock is not None:
                clock.tick()


def messages_import_records(*, records: list[dict], platform: Platform, acting_user=None) -> ImportReport:
    """Register messages given as mappings with the export's column names (the platform push API).

    Same rules as :func:`messages_import`: one savepoint per record, existing (platform, message
    id) skipped, every bad record reported with its 1-based position in ``records`` as row number.

    Args:
        records: e.g. ``[{"message_id": "123", "subject": "…", "body": "…",
            "submitted_at": "2026-03-02T09:00:00+08:00", "user_id": "…", "likes": 3}]``; naive
            times are Beijing time.

    Raises:
        PermissionDenied: when ``acting_user`` lacks ``casework.register_case``.
    """
    if acting_user is not None and not acting_user.has_perm("casework.register_case"):
        raise PermissionDenied(_("您没有登记留言的权限。"))
    columns = {column: index for index, column in enumerate(COLUMNS)}
    now = timezone.now()
    items = (
        _parse_record(number, [record.get(c) for c in COLUMNS], columns, len(COLUMNS), now)
        if isinstance(record, dict)
        else RowError(row_number=number, external_id="", reason=_("每条留言必须是一个 JSON 对象。"))
        for number, record in enumerate(records, start=1)
    )
    report = ImportReport()
    _import_items(iter(items), report=report, platform=platform, acting_user=acting_user, clock=None)
    return report


def _import_one(item, *, report, platform, acting_user, existing, first_seen) -> None:
    if item.external_id:
        first = first_seen.setdefault(item.external_id, item.row_number)
        if first != item.row_number:
            report.errors.append(
                RowError(
                    row_number=item.row_number,
                    external_id=item.external_id,
                    reason=_("留言编号 %(id)s 在本文件中重复(与第 %(first)d 行相同)。")
                    % {"id": item.external_id, "first": first},
                )
            )
            return
    if isinstance(item, RowError):
        report.errors.append(item)
        return

    def skipped(case_id: int) -> None:
        report.skipped += 1
        report.rows.append(
            ImportedRow(item.row_number, item.external_id, case_id, False, item.reply, item.replied_at)
        )

    if item.external_id in existing:
        skipped(existing[item.external_id])
        return
    try:
        case = _register(row=item, platform=platform, acting_user=acting_user)
    except (services.TransitionRefused, IntegrityError, DataError) as exc:
        # Another import may have registered the same id meanwhile: then it is a skip.
        case_id = (
            Case.objects.filter(platform=platform, external_id=item.external_id)
            .values_list("pk", flat=True)
            .first()
        )
        if case_id is not None:
            skipped(case_id)
            return
        reason = (
            str(exc)
            if isinstance(exc, services.TransitionRefused)
            else _("数据库拒绝保存本行:%(error)s") % {"error": exc}
        )
        report.errors.append(RowError(item.row_number, item.external_id, reason))
        return
    report.created += 1
    report.rows.append(
        ImportedRow(item.row_number, item.external_id, case.pk, True, item.reply, item.replied_at)
    )
