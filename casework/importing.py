"""Message intake by spreadsheet import (DESIGN.md §5).

The platforms export their messages as CSV or XLSX with the eleven columns of
``casework/data/messages/`` (``message_id, user_id, subject, body, submitted_at, category, reply,
replied_at, likes, dislikes, source``); the Chinese headers of the platforms' own exports
(留言编号, 留言主题 …) are accepted as aliases. :func:`read_message_rows` parses a file into
:class:`MessageRow` / :class:`RowError` items; :func:`messages_import` registers the good rows in
batches (one query for the ids already imported, bulk inserts of cases and their hash-chained
``register`` events), so a bad row never loses a good one. Re-importing is idempotent on
(platform, external id).

Rules kept here, with their sources:

- Row numbers are the spreadsheet's: the header is row 1, the first message row 2. In a CSV a
  body with line breaks is still one row.
- Naive times are Asia/Shanghai (DESIGN.md §4); identifiers are stored half-width (field case
  C23); free text is kept exactly as written (C22, C23).
- The message type is guessed from keywords (:func:`message_type_infer`); the dispatcher can
  correct it.
- Hostile files are bounded before a row lands (issue 9 §3): decompressed size, rows (blank rows
  included), cells, row width and XLSX shared strings have limits in settings
  (``CASEWORK_IMPORT_MAX_*``); a file over one is refused whole with :class:`ImportLimitError`.
  A row with undecodable bytes, an oversized field or too many cells is reported on its own;
  values quoted in reasons are cut short.
- CSV encodings: UTF-8 (with or without BOM) and the GBK/GB18030 (or Big5) that Chinese Excel
  writes, detected by charset-normalizer on the first 256 KiB. An XLSX merged cell gives its
  value to every cell it covers.
- Memory is flat in the number of rows: the report of a file import is kept in the database
  (:class:`~casework.importing_models.ImportJob` and its rows); the in-memory
  :class:`ImportReport` holds the counts and only the first ``REPORT_ROWS_KEPT`` rows.
"""

from collections.abc import Callable, Iterator
import contextlib
import csv
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
import functools
import gzip
import io
import itertools
import os
import queue
import re
import threading
import time as monotonic_time
import zipfile

import charset_normalizer
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import Case as SqlCase
from django.db.models import CharField, Min, Value, When
from django.db.models.functions import Cast, Concat, ExtractYear, LPad
from django.utils import timezone, translation
from django.utils.translation import gettext as _
import openpyxl
from openpyxl.utils.cell import range_boundaries
from openpyxl.utils.datetime import from_excel

from casework import audit, calendar, clocks, services
from casework.duplicates import duplicates_index_and_flag_many
from casework.importing_copy import cases_register_copy, existing_case_ids, first_rows_in_job, job_rows_copy
from casework.importing_models import ImportJob, ImportJobRow
from casework.models import Case, CaseEvent, MessageType, Platform
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

MAX_COUNT = 2**31 - 1  # PositiveIntegerField on PostgreSQL
FUTURE_TOLERANCE = timedelta(days=1)
ECHO_CHARS = 40  # characters of a cell value quoted in a row's reason
REPORT_ROWS_KEPT = 1000  # rows and errors an ImportReport keeps in memory (the job keeps all)
ENCODING_SAMPLE_BYTES = 256 * 1024
# Encodings the CSV of a Chinese platform or of Chinese Excel comes in (GBK and GB2312 are
# subsets of GB18030); charset-normalizer chooses among these only.
CSV_ENCODINGS = ("utf_8", "gb18030", "big5")

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
    """The file cannot be read at all (wrong format, missing columns); ``str`` says why."""


class ImportLimitError(ImportFileError):
    """The file is over one of the import limits (``CASEWORK_IMPORT_MAX_*``); ``str`` names it."""


@dataclass(frozen=True, slots=True)
class ImportLimits:
    """The bounds of one import, from settings (see ``config/settings/base.py``)."""

    max_bytes: int
    max_rows: int
    max_cells: int
    max_columns: int
    max_shared_strings: int
    max_field_chars: int

    @classmethod
    def from_settings(cls) -> "ImportLimits":
        return cls(
            max_bytes=settings.CASEWORK_IMPORT_MAX_BYTES,
            max_rows=settings.CASEWORK_IMPORT_MAX_ROWS,
            max_cells=settings.CASEWORK_IMPORT_MAX_CELLS,
            max_columns=settings.CASEWORK_IMPORT_MAX_COLUMNS,
            max_shared_strings=settings.CASEWORK_IMPORT_MAX_SHARED_STRINGS,
            max_field_chars=settings.CASEWORK_IMPORT_MAX_FIELD_CHARS,
        )


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
    """The outcome of one import: counts, and the first ``REPORT_ROWS_KEPT`` bad and good rows.

    A file import keeps every row's outcome in the database (``job``); the lists here are capped
    so that memory does not grow with the file.
    """

    created: int = 0
    skipped: int = 0
    error_count: int = 0
    errors: list[RowError] = field(default_factory=list)
    rows: list[ImportedRow] = field(default_factory=list)
    seconds: float = 0.0
    job: ImportJob | None = None

    @property
    def rows_read(self) -> int:
        return self.created + self.skipped + self.error_count

    def add_error(self, error: RowError) -> None:
        self.error_count += 1
        if len(self.errors) < REPORT_ROWS_KEPT:
            self.errors.append(error)

    def add_row(self, row: ImportedRow) -> None:
        if row.created:
            self.created += 1
        else:
            self.skipped += 1
        if len(self.rows) < REPORT_ROWS_KEPT:
            self.rows.append(row)

    def replies(self) -> dict[str, tuple[str, datetime | None]]:
        """Return ``external_id → (official reply, reply time)`` for the kept good rows that have a reply."""
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
        for keyword, message_type in _KEYWORD_TYPES:
            if keyword in text:
                return message_type
    return MessageType.CONSULT


# MESSAGE_TYPE_KEYWORDS flattened in rule order (the first keyword found decides, as the rules say).
_KEYWORD_TYPES = tuple((keyword, message_type) for message_type, keywords in MESSAGE_TYPE_KEYWORDS for keyword in keywords)


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
        raise ImportFileError(_("不支持旧版 Excel(.xls)文件,请另存为 .xlsx 或 CSV。"))
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


def _over(what: str, limit: int, setting: str) -> ImportLimitError:
    return ImportLimitError(
        _("文件超出导入限制:%(what)s超过 %(limit)s(设置 %(setting)s)。文件未导入,请拆分后再导入。")
        % {"what": what, "limit": f"{limit:,}", "setting": setting}
    )


class _BoundedReader(io.RawIOBase):
    """A binary stream that raises ImportLimitError once more than ``limit`` bytes were read."""

    def __init__(self, raw, limit: int) -> None:
        self.raw, self.limit, self.count = raw, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(buffer)
        self.count += n or 0
        if self.count > self.limit:
            raise _over(_("解压后大小"), self.limit, "CASEWORK_IMPORT_MAX_BYTES")
        return n


@dataclass
class _Table:
    header: list[str]
    records: Iterator[tuple[int, list]]  # (spreadsheet row number, cell values)
    total: int | None  # data rows, when known before reading them
    encoding: str = "utf-8"


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


def _raw_csv(fh, kind: str, limits: ImportLimits):
    fh.seek(0)
    raw = gzip.GzipFile(fileobj=fh) if kind == "csv.gz" else fh
    return io.BufferedReader(_BoundedReader(raw, limits.max_bytes), buffer_size=256 * 1024)


def _detect_encoding(fh, kind: str, limits: ImportLimits) -> str:
    """Return the Python codec of a CSV: UTF-8 (BOM or not), GB18030 or Big5, by charset-normalizer.

    The sample is the first ``ENCODING_SAMPLE_BYTES`` cut at a line end. A UTF-8 BOM decides at
    once; a sample charset-normalizer cannot place among ``CSV_ENCODINGS`` (e.g. UTF-8 with a
    stray byte) is read as UTF-8, and the rows with undecodable bytes are reported one by one.
    """
    try:
        sample = _raw_csv(fh, kind, limits).read(ENCODING_SAMPLE_BYTES)
    except (OSError, EOFError) as exc:
        raise ImportFileError(_("gzip 压缩文件已损坏。")) from exc
    finally:
        fh.seek(0)
    if sample.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if len(sample) == ENCODING_SAMPLE_BYTES and b"\n" in sample:
        sample = sample[: sample.rindex(b"\n") + 1]
    if sample.isascii():
        return "utf-8"
    best = charset_normalizer.from_bytes(sample, cp_isolation=list(CSV_ENCODINGS)).best()
    if best is None or best.encoding == "utf_8":
        return "utf-8"
    return best.encoding


def _csv_text(fh, kind: str, encoding: str, limits: ImportLimits):
    # A citizen may write a very long message: the csv module must never abort the file on one
    # long field (its default cap is 128 Ki characters); the field limit is checked per row, and
    # the decompressed-size limit bounds what a field can hold.
    if csv.field_size_limit() < limits.max_bytes:
        csv.field_size_limit(limits.max_bytes)
    # Undecodable bytes become lone surrogates (U+DC80…U+DCFF): the row holding them is reported.
    return io.TextIOWrapper(_raw_csv(fh, kind, limits), encoding=encoding, newline="", errors="surrogateescape")


def _blank(values) -> bool:
    if not isinstance(values, list | tuple):
        values = list(values)
    try:  # a CSV record: strings only, whitespace-only exactly when their concatenation is
        return not "".join(values).strip()
    except TypeError:  # XLSX cells: None, numbers, dates
        return all(v is None or (isinstance(v, str) and not v.strip()) for v in values)


def _csv_scan(fh, kind: str, encoding: str, limits: ImportLimits, limit: int | None) -> int:
    """Check a CSV against the limits in one streaming pass; return its non-blank data rows."""
    text = _csv_text(fh, kind, encoding, limits)
    count = cells = 0
    try:
        reader = csv.reader(text)
        header = next(reader, [])
        if len(header) > limits.max_columns:
            raise _over(_("表头列数"), limits.max_columns, "CASEWORK_IMPORT_MAX_COLUMNS")
        for rows, record in enumerate(reader, start=1):
            if rows > limits.max_rows:
                raise _over(_("行数(含空行)"), limits.max_rows, "CASEWORK_IMPORT_MAX_ROWS")
            cells += len(record)
            if cells > limits.max_cells:
                raise _over(_("单元格数"), limits.max_cells, "CASEWORK_IMPORT_MAX_CELLS")
            if not _blank(record):
                count += 1
                if limit is not None and count >= limit:
                    break
    except (csv.Error, OSError, EOFError) as exc:
        raise ImportFileError(_("CSV 文件无法解析:%(error)s") % {"error": exc}) from exc
    finally:
        text.detach()
        fh.seek(0)
    return count


# What the XLSX pre-scan looks for; the namespace prefix of a part (``<x:worksheet>``) is read
# from its root tag, so the counting runs as plain byte searches at C speed.
_XML_ROOT = re.compile(rb"<(?:([\w.-]+):)?(worksheet|sst)\b")
MAX_XLSX_OTHER_PART_BYTES = 16 * 1024 * 1024  # styles, workbook, relations… (real files: < 1 MB)
WIDE_ROW_MARK = "\u2026"  # appended to an XLSX row that has a cell beyond the width limit


@dataclass
class _PartStats:
    kind: str = ""
    shared_strings: int = 0
    cells: int = 0
    row_tags: int = 0
    highest_row: int = 0
    merges: list[str] = field(default_factory=list)
    wide_rows: set[int] = field(default_factory=set)

    @property
    def last_row(self) -> int:
        return max(self.row_tags, self.highest_row)


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + (letter - 64)
    return number


def _scan_part(src, part: _PartStats, prefix: bytes, limits: ImportLimits, shared_so_far: int) -> None:
    tag = (prefix + b":") if prefix else b""
    si = (b"<" + tag + b"si>", b"<" + tag + b"si ")
    cell = (b"<" + tag + b"c>", b"<" + tag + b"c ")
    row = (b"<" + tag + b"row>", b"<" + tag + b"row ", b"<" + tag + b"row/")
    row_number = re.compile(rb"<" + re.escape(tag) + rb"row\s[^>]*?\br=\"(\d+)\"")
    merge = re.compile(rb"<" + re.escape(tag) + rb"mergeCell\s[^>]*?\bref=\"([A-Za-z0-9:$]+)\"")
    letters = "{1,3}" if limits.max_columns < 26 else ("{2,3}" if limits.max_columns < 702 else "{3}")
    far_cell = re.compile(rb"<" + re.escape(tag) + rb"c\s[^>]*?\br=\"([A-Z]" + letters.encode() + rb")(\d+)\"")
    carry = b""
    while chunk := src.read(1024 * 1024):
        buffer = carry + chunk
        cut = buffer.rfind(b"<")
        if cut <= 0 or len(buffer) - cut > 65536:
            cut = len(buffer)
        block, carry = buffer[:cut], buffer[cut:]
        if part.kind == "sst":
            part.shared_strings += sum(block.count(s) for s in si)
            if shared_so_far + part.shared_strings > limits.max_shared_strings:
                raise _over(_("共享字符串数"), limits.max_shared_strings, "CASEWORK_IMPORT_MAX_SHARED_STRINGS")
            continue
        part.cells += sum(block.count(c) for c in cell)
        if part.cells > limits.max_cells:
            raise _over(_("单元格数"), limits.max_cells, "CASEWORK_IMPORT_MAX_CELLS")
        part.row_tags += sum(block.count(r) for r in row)
        part.highest_row = max(part.highest_row, max((int(n) for n in row_number.findall(block)), default=0))
        for column, number in far_cell.findall(block):
            if _column_number(column) > limits.max_columns and len(part.wide_rows) <= limits.max_rows:
                part.wide_rows.add(int(number))
        if b"mergeCell" in block:
            part.merges.extend(m.decode("ascii") for m in merge.findall(block))
            if len(part.merges) > limits.max_rows:
                raise _over(_("合并单元格数"), limits.max_rows, "CASEWORK_IMPORT_MAX_ROWS")


def _xlsx_scan(fh, limits: ImportLimits) -> dict[str, _PartStats]:
    """Bound an XLSX before openpyxl reads it: sizes, shared strings, cells, rows, merged ranges.

    The declared size of each zip member bounds what it decompresses to (zipfile stops there), so
    their sum is checked first, and a part that is neither a worksheet nor the shared strings
    may not exceed ``MAX_XLSX_OTHER_PART_BYTES``. Worksheets and shared strings (told by their
    root tag, whatever their name) are then streamed once, counting tags by byte search. Returns
    the statistics per member name.
    """
    fh.seek(0)
    try:
        archive = zipfile.ZipFile(fh)
    except zipfile.BadZipFile as exc:
        raise ImportFileError(_("文件是损坏的压缩包,不是有效的 xlsx 工作簿。")) from exc
    stats: dict[str, _PartStats] = {}
    with archive:
        members = archive.infolist()
        if len(members) > 10_000 or sum(m.file_size for m in members) > limits.max_bytes:
            raise _over(_("解压后大小"), limits.max_bytes, "CASEWORK_IMPORT_MAX_BYTES")
        shared = 0
        for member in members:
            try:
                with archive.open(member) as src:
                    head = src.read(4096)
                    root = _XML_ROOT.search(head)
                    if root is None:
                        if member.file_size > MAX_XLSX_OTHER_PART_BYTES:
                            raise _over(
                                _("工作簿部件「%(name)s」解压后大小") % {"name": value_echo(member.filename)},
                                MAX_XLSX_OTHER_PART_BYTES,
                                "MAX_XLSX_OTHER_PART_BYTES",
                            )
                        continue
                    part = stats[member.filename] = _PartStats(kind=root.group(2).decode())
                    _scan_part(
                        _Prepend(head, src), part, root.group(1) or b"", limits, shared
                    )
                    shared += part.shared_strings
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:  # CRC, truncation
                raise ImportFileError(_("xlsx 工作簿无法读取:%(error)s") % {"error": exc}) from exc
    fh.seek(0)
    return stats


class _Prepend:
    """A reader giving ``head`` first, then the rest of ``src``."""

    def __init__(self, head: bytes, src) -> None:
        self.head, self.src = head, src

    def read(self, size: int) -> bytes:
        if self.head:
            head, self.head = self.head, b""
            return head + self.src.read(max(0, size - len(head)))
        return self.src.read(size)


def _merge_ranges(refs: list[str], limits: ImportLimits) -> dict[int, list[tuple[int, int, int, int]]]:
    """Parse merged ranges into ``first row → [(min_col, min_row, max_col, max_row)]`` (1-based)."""
    by_row: dict[int, list[tuple[int, int, int, int]]] = {}
    area = 0
    for ref in refs:
        try:
            min_col, min_row, max_col, max_row = range_boundaries(ref.replace("$", ""))
        except (ValueError, TypeError):
            continue
        if None in (min_col, min_row, max_col, max_row):
            continue
        max_col = min(max_col, limits.max_columns + 1)
        max_row = min(max_row, limits.max_rows + 1)
        area += (max_col - min_col + 1) * (max_row - min_row + 1)
        if area > limits.max_cells:
            raise _over(_("合并单元格覆盖的单元格数"), limits.max_cells, "CASEWORK_IMPORT_MAX_CELLS")
        by_row.setdefault(min_row, []).append((min_col, min_row, max_col, max_row))
    return by_row


def _fill_merged(rows, merges: dict[int, list[tuple[int, int, int, int]]]):
    """Yield ``(row_number, values)`` with each merged range's top-left value in every cell it covers."""
    active: list[tuple[tuple[int, int, int, int], object]] = []
    for number, values in rows:
        values = list(values)
        for bounds in merges.get(number, ()):
            value = values[bounds[0] - 1] if bounds[0] - 1 < len(values) else None
            active.append((bounds, value))
        if active:
            active = [(b, v) for b, v in active if b[3] >= number]
            for (min_col, _min_row, max_col, _max_row), value in active:
                if len(values) < max_col:
                    values.extend([None] * (max_col - len(values)))
                for index in range(min_col - 1, max_col):
                    values[index] = value
        yield number, values


def _mark_wide(records, wide_rows: set[int], limits: ImportLimits):
    """Make a row that had a cell beyond the width limit (dropped by openpyxl) report itself as too wide."""
    for number, values in records:
        if number in wide_rows:
            values = [*values, *([None] * (limits.max_columns - len(values))), WIDE_ROW_MARK]
        yield number, values


@contextlib.contextmanager
def _open_xlsx(fh, limits: ImportLimits) -> Iterator[_Table]:
    stats = _xlsx_scan(fh, limits)
    try:
        workbook = openpyxl.load_workbook(fh, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a broken workbook
        raise ImportFileError(_("xlsx 工作簿无法读取:%(error)s") % {"error": exc}) from exc
    try:
        if not workbook.worksheets:
            raise ImportFileError(_("xlsx 工作簿中没有工作表。"))
        sheet = workbook.worksheets[0]
        part = stats.get(getattr(sheet, "_worksheet_path", ""))
        if part is None or part.kind != "worksheet":
            raise ImportFileError(_("xlsx 工作簿的第一个工作表无法识别。"))
        if part.last_row - 1 > limits.max_rows:
            raise _over(_("行数(含空行)"), limits.max_rows, "CASEWORK_IMPORT_MAX_ROWS")
        merges = _merge_ranges(part.merges, limits)
        # Explicit bounds: a lying <dimension> must not make openpyxl pad every row to 16,384 cells.
        rows = sheet.iter_rows(
            min_row=1, max_row=max(part.last_row, 1), max_col=limits.max_columns + 1, values_only=True
        )
        records = _fill_merged(enumerate(rows, start=1), merges)
        if part.wide_rows:
            records = _mark_wide(records, part.wide_rows, limits)
        first = next(records, None)
        header = [v for v in first[1]] if first else []
        while header and header[-1] is None:
            header.pop()
        if len(header) > limits.max_columns:
            raise _over(_("表头列数"), limits.max_columns, "CASEWORK_IMPORT_MAX_COLUMNS")
        total = max(part.last_row - 1, 0) if part.last_row else None
        yield _Table(header=header, records=records, total=total, encoding="xlsx")
    finally:
        workbook.close()


@contextlib.contextmanager
def _open_table(source, limits: ImportLimits, limit: int | None = None) -> Iterator[_Table]:
    with _open_binary(source) as fh:
        kind = sniff_format(fh)
        if kind == "xlsx":
            with _open_xlsx(fh, limits) as table:
                yield table
            return
        encoding = _detect_encoding(fh, kind, limits)
        total = _csv_scan(fh, kind, encoding, limits, limit)
        text = _csv_text(fh, kind, encoding, limits)
        try:
            reader = csv.reader(text)
            records = enumerate(reader, start=1)
            first = next(records, None)
            header = first[1] if first else []
            yield _Table(header=header, records=records, total=total, encoding=encoding)
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
            raise ImportFileError(_("表头中「%(column)s」列出现了两次。") % {"column": value_echo(name)})
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
        if not 1 <= value < 2958466:
            raise ValueError(value)
        parsed = from_excel(value)
    else:
        text = " ".join(to_half_width(str(value)).split())
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            # Every pattern starts with the year's digits: text that does not cannot match one.
            for pattern in _DATETIME_FORMATS if text[:1].isdigit() else ():
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


_SURROGATE = re.compile("[\ud800-\udfff]")


def value_echo(value) -> str:
    """A cell value as quoted in a reason: at most ``ECHO_CHARS`` characters, undecodable bytes as U+FFFD."""
    text = _SURROGATE.sub("\ufffd", value if isinstance(value, str) else _cell_text(value))
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "…"


@functools.cache
def _max_length(name: str) -> int:
    return Case._meta.get_field(name).max_length


def _parse_record(
    row_number: int,
    values: list,
    columns: dict[str, int],
    width: int,
    now: datetime,
    limits: ImportLimits | None = None,
    encoding: str = "utf-8",
):
    """Turn one record into a MessageRow, or a RowError listing every problem found.

    Values quoted in the reason are cut to ``ECHO_CHARS`` characters (:func:`value_echo`).
    """

    size = len(values)
    cells = {column: values[index] if index < size else None for column, index in columns.items()}
    texts = {column: _cell_text(value) for column, value in cells.items()}

    def get(column: str):
        return cells.get(column)

    def text(column: str) -> str:
        return texts.get(column, "")

    external_id = to_half_width(texts.get("message_id", ""))
    problems: list[str] = []
    max_field = limits.max_field_chars if limits is not None else None
    oversized = set()
    strings = [value for value in cells.values() if isinstance(value, str)]
    joined = "".join(strings)
    suspect = (
        "\x00" in joined
        or (max_field is not None and any(len(value) > max_field for value in strings))
        or _SURROGATE.search(joined) is not None
    )  # else every cell passes the checks below (one scan of the row instead of one per cell)
    for column, value in cells.items() if suspect else ():
        if not isinstance(value, str):
            continue
        if "\x00" in value:
            problems.append(_("「%(column)s」含有空字符(NUL),无法保存。") % {"column": column})
        if max_field is not None and len(value) > max_field:
            oversized.add(column)
            problems.append(
                _("「%(column)s」有 %(n)s 个字符,超过上限 %(limit)s(设置 CASEWORK_IMPORT_MAX_FIELD_CHARS)。")
                % {"column": column, "n": f"{len(value):,}", "limit": f"{max_field:,}"}
            )
        elif _SURROGATE.search(value):
            problems.append(
                _("「%(column)s」含有无法按 %(encoding)s 解码的字节(显示为 \ufffd):「%(value)s」。")
                % {"column": column, "encoding": encoding, "value": value_echo(value)}
            )
    if external_id and ("message_id" in oversized or _SURROGATE.search(external_id)):
        external_id = value_echo(external_id)[: _max_length("external_id")]
    if len(values) > width and not _blank(values[width:]):
        problems.append(
            _("本行有 %(cells)d 列,多于表头的 %(width)d 列(可能有未闭合的引号)。")
            % {"cells": len(values), "width": width}
            if limits is None or len(values) <= limits.max_columns
            else _("本行超过 %(limit)d 列(设置 CASEWORK_IMPORT_MAX_COLUMNS),多于表头的 %(width)d 列。")
            % {"limit": limits.max_columns, "width": width}
        )
    subject, body = text("subject"), text("body")
    citizen_name, category = text("user_id").strip(), text("category").strip()
    if not external_id:
        problems.append(_("缺少留言编号。"))
    elif "message_id" in oversized:
        pass
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
        problems.append(_("留言时间无法识别:「%(value)s」。") % {"value": value_echo(text("submitted_at"))})
    else:
        if submitted_at is None:
            problems.append(_("缺少留言时间。"))
        elif submitted_at > now + FUTURE_TOLERANCE:
            problems.append(_("留言时间晚于当前时间:「%(value)s」。") % {"value": value_echo(text("submitted_at"))})
    try:
        replied_at = _parse_datetime(get("replied_at"))
    except (ValueError, OverflowError):
        problems.append(_("答复时间无法识别:「%(value)s」。") % {"value": value_echo(text("replied_at"))})
    counts = {}
    for column in ("likes", "dislikes"):
        try:
            counts[column] = _parse_count(get(column))
        except (ValueError, OverflowError):
            label = _("点赞数") if column == "likes" else _("反对数")
            problems.append(
                _("%(label)s不是非负整数:「%(value)s」。") % {"label": label, "value": value_echo(text(column))}
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


def _parse_table(table: _Table, limit: int | None, limits: ImportLimits) -> Iterator[MessageRow | RowError]:
    columns = _header_map(table.header)
    width = len(table.header)
    now = timezone.now()
    records = ((n, v) for n, v in table.records if not _blank(v))
    if limit is not None:
        records = itertools.islice(records, limit)
    for row_number, values in records:
        yield _parse_record(row_number, values, columns, width, now, limits, table.encoding)


@contextlib.contextmanager
def _rows(source, limit: int | None = None, limits: ImportLimits | None = None):
    limits = limits or ImportLimits.from_settings()
    with _open_table(source, limits, limit) as table:
        total = table.total if limit is None or table.total is None else min(table.total, limit)
        try:
            yield _parse_table(table, limit, limits), total
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
        ImportLimitError: when the file is over a ``CASEWORK_IMPORT_MAX_*`` limit (checked before
            the first row is yielded).
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

    def advance(self, rows: int) -> None:
        """Count ``rows`` more rows done: ``tick`` per row when there is a callback, else just the count."""
        if self.callback is None:
            self.done += rows
            return
        for _row in range(rows):
            self.tick()

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


def _register(*, row: MessageRow, platform: Platform, acting_user, source: str) -> Case:
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
            source=source,
        )


def _cases_register_bulk(*, rows: list[MessageRow], platform: Platform, acting_user, source: str) -> list[int]:
    """Register ``rows`` as cases in three statements; the batch twin of ``services.case_register``.

    Same rows as ``case_register`` writes one by one: the case in state ``registered`` with its
    reference ``PREFIX-YEAR-000123`` and its first audit event ``register`` (seq 1, hashed by
    ``CaseEvent.compute_hash``, the one hashing function of the chain); returns the new case ids
    in the order of ``rows``. PostgreSQL takes the rows by ``COPY``, other databases by
    ``bulk_create``; model signals are not sent, as with any bulk insert. Runs in a savepoint of
    its own inside the caller's transaction, so a constraint error rolls back only this batch's
    inserts and the caller can retry row by row. Raises IntegrityError/DataError like the
    single-row path. Each case's 交办 clock starts as on the single-row path
    (:func:`casework.clocks.dispatch_clocks_start_bulk`).
    """
    with transaction.atomic():
        now = timezone.now()
        kinds = [message_type_infer(subject=r.subject, body=r.body) for r in rows]
        if connection.vendor == "postgresql":  # COPY in PostgreSQL's text format (casework.importing_copy)
            # The 网评办's 交办 clock starts at registration, as on the single-row path (issue 13 §5):
            # written with the case rows (dispatch_due_at) and by one more COPY.
            dispatch = clocks.dispatch_deadlines(message_types=kinds, platform_id=platform.pk, at=now)
            ids = cases_register_copy(
                rows=rows, message_types=kinds, platform=platform, acting_user=acting_user, source=source,
                reference_prefix=settings.CASEWORK_REFERENCE_PREFIX, now=now, dispatch=dispatch,
            )
        else:
            ids = _cases_insert(rows=rows, kinds=kinds, platform=platform, acting_user=acting_user, source=source,
                                now=now)
            clocks.dispatch_clocks_start_bulk(cases=list(zip(ids, kinds, strict=True)), platform_id=platform.pk, at=now)
        if settings.CASEWORK_INTAKE_DUPLICATES:  # 重复留言提示 on the batch path too (casework.duplicates)
            duplicates_index_and_flag_many(case_ids=ids)
        return ids


def _cases_insert(*, rows: list[MessageRow], kinds: list[str], platform: Platform, acting_user, source: str,
                  now: datetime) -> list[int]:
    prefix = settings.CASEWORK_REFERENCE_PREFIX
    # One event object, refilled and hashed per case with CaseEvent.compute_hash (the chain's one
    # hashing function), saves building a model instance per row.
    event = CaseEvent(
        seq=1, action="register", from_state="", to_state=Case().state, actor=acting_user, reason="", prev_hash=""
    )
    cases = [
        Case(
            platform=platform,
            external_id=row.external_id,
            subject=row.subject,
            body=row.body,
            submitted_at=row.submitted_at,
            citizen_name=row.citizen_name,
            likes=row.likes,
            dislikes=row.dislikes,
            message_type=kind,
            category=row.category,
        )
        for row, kind in zip(rows, kinds, strict=True)
    ]
    Case.objects.bulk_create(cases)
    pk_text = Cast("pk", CharField())
    Case.objects.filter(pk__in=[case.pk for case in cases]).update(
        reference=Concat(
            Value(f"{prefix}-"),
            Cast(ExtractYear("created_at", tzinfo=calendar.SHANGHAI), CharField()),
            Value("-"),
            SqlCase(When(pk__lt=10**6, then=LPad(pk_text, 6, Value("0"))), default=pk_text),
            output_field=CharField(),
        )
    )
    events = []
    for case in cases:
        event.case_id, event.at = case.pk, timezone.now()
        event.payload = {"source": source, "platform": platform.code, "external_id": case.external_id}
        event.hash = event.compute_hash()
        events.append(
            CaseEvent(
                case_id=case.pk, seq=1, action=event.action, from_state="", to_state=event.to_state,
                actor=acting_user, at=event.at, reason="", payload=event.payload, prev_hash="", hash=event.hash,
            )
        )
    CaseEvent.objects.bulk_create(events)
    audit.chain_heads_bulk_record(events=events)  # each new chain's sealed head (tamper evidence)
    return [case.pk for case in cases]


def _job_rows_insert(job: ImportJob, rows: list[tuple]) -> None:
    """Write ``(row_number, external_id, outcome, case_id, reason)`` tuples as the job's rows."""
    if not rows:
        return
    if connection.vendor == "postgresql":
        job_rows_copy(job_id=job.pk, rows=rows)
        return
    ImportJobRow.objects.bulk_create(
        ImportJobRow(job=job, row_number=n, external_id=i, outcome=o, case_id=c, reason=r) for n, i, o, c, r in rows
    )


class _Seen:
    """Where each message id was first seen in this import: the job's rows in the database, or memory.

    A file import asks the database (its job's rows, written batch by batch), so memory does not
    grow with the file; the push API (at most ``CASEWORK_API_MAX_MESSAGES`` records) keeps a dict.
    """

    def __init__(self, job: ImportJob | None) -> None:
        self.job = job
        self.memory: dict[str, int] = {}

    def first_rows(self, ids: set[str]) -> dict[str, int]:
        if not ids:
            return {}
        if self.job is None:
            return {i: self.memory[i] for i in ids if i in self.memory}
        if connection.vendor == "postgresql":
            return first_rows_in_job(job_id=self.job.pk, external_ids=sorted(ids))
        return dict(
            ImportJobRow.objects.filter(job=self.job, external_id__in=ids)
            .values("external_id")
            .annotate(first=Min("row_number"))
            .values_list("external_id", "first")
        )

    def remember(self, batch) -> None:
        if self.job is None:
            for item in batch:
                if item.external_id:
                    self.memory.setdefault(item.external_id, item.row_number)


def _duplicate(item, first: int) -> RowError:
    return RowError(
        row_number=item.row_number,
        external_id=item.external_id,
        reason=_("留言编号 %(id)s 在本文件中重复(与第 %(first)d 行相同)。") % {"id": item.external_id, "first": first},
    )


def _import_batch(batch: list, *, platform: Platform, acting_user, seen: _Seen, source: str) -> list:
    """Import one batch; return its outcomes in file order (RowError or ImportedRow).

    Statements: one for the ids seen earlier in this import (file imports), one for the ids
    registered before, then three for the new cases and their events. When the bulk insert hits
    a constraint (another import registered the same id meanwhile) or a value the database
    refuses, the batch falls back to one savepoint per row, so only the offending row is lost.
    """
    earlier = seen.first_rows({item.external_id for item in batch if item.external_id})
    in_batch: dict[str, int] = {}
    outcomes: dict[int, object] = {}
    pending: list[MessageRow] = []
    for item in batch:
        if item.external_id:
            first = earlier.get(item.external_id) or in_batch.setdefault(item.external_id, item.row_number)
            if first != item.row_number:
                outcomes[item.row_number] = _duplicate(item, first)
                continue
        if isinstance(item, RowError):
            outcomes[item.row_number] = item
        else:
            pending.append(item)
    seen.remember(batch)
    if connection.vendor == "postgresql":
        existing = existing_case_ids(platform_id=platform.pk, external_ids=[row.external_id for row in pending])
    else:
        existing = dict(
            Case.objects.filter(platform=platform, external_id__in=[row.external_id for row in pending]).values_list(
                "external_id", "pk"
            )
        )
    new = []
    for row in pending:
        if row.external_id in existing:
            outcomes[row.row_number] = _imported(row, existing[row.external_id], created=False)
        else:
            new.append(row)
    if new:
        try:
            if not connection.features.can_return_rows_from_bulk_insert:
                raise IntegrityError("no RETURNING: register row by row")
            cases = _cases_register_bulk(rows=new, platform=platform, acting_user=acting_user, source=source)
        except (IntegrityError, DataError):
            for row in new:
                outcomes[row.row_number] = _import_one(row, platform=platform, acting_user=acting_user, source=source)
        else:
            for row, case_id in zip(new, cases, strict=True):
                outcomes[row.row_number] = _imported(row, case_id, created=True)
    return [outcomes[item.row_number] for item in batch]


def _imported(row: MessageRow, case_id: int, *, created: bool) -> ImportedRow:
    return ImportedRow(row.row_number, row.external_id, case_id, created, row.reply, row.replied_at)


def _import_one(row: MessageRow, *, platform: Platform, acting_user, source: str):
    try:
        case = _register(row=row, platform=platform, acting_user=acting_user, source=source)
    except (services.TransitionRefused, IntegrityError, DataError) as exc:
        # Another import may have registered the same id meanwhile: then it is a skip.
        case_id = (
            Case.objects.filter(platform=platform, external_id=row.external_id).values_list("pk", flat=True).first()
        )
        if case_id is not None:
            return _imported(row, case_id, created=False)
        reason = (
            str(exc)
            if isinstance(exc, services.TransitionRefused)
            else _("数据库拒绝保存本行:%(error)s") % {"error": value_echo(str(exc))}
        )
        return RowError(row.row_number, row.external_id, reason)
    return _imported(row, case.pk, created=True)


def _batches(items, batch_size: int) -> Iterator[list]:
    while batch := list(itertools.islice(items, batch_size)):
        yield batch


def _batches_read_ahead(items, batch_size: int, depth: int = 2) -> Iterator[list]:
    """Yield ``items`` in batches, read and parsed by a thread while the caller writes the previous one.

    The file's decoding and parsing (pure Python) overlaps the database's work on the batch before
    (the waiting thread releases the GIL). At most ``depth`` parsed batches wait in the queue, so
    memory stays flat in the number of rows. An exception in the reader (a CSV that stops parsing)
    is raised here, in the caller's thread; the reader runs in the caller's language, so row
    reasons are translated as they would be without it. Closing the generator stops the reader.
    """
    results: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    language = translation.get_language()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                results.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            with translation.override(language):
                for batch in _batches(items, batch_size):
                    if not put(batch):
                        return
            put(done)
        except BaseException as exc:  # handed to the caller's thread
            put(exc)

    reader = threading.Thread(target=read, name="import-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            item = results.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join(timeout=5)


def _import_items(
    items, *, report: ImportReport, platform: Platform, acting_user, clock, job, source, read_ahead: bool = False
) -> None:
    seen = _Seen(job)
    batch_size = max(1, settings.CASEWORK_IMPORT_BATCH_SIZE)
    for batch in (_batches_read_ahead if read_ahead else _batches)(items, batch_size):
        with transaction.atomic():  # a batch lands whole with its report rows, or not at all
            if connection.vendor == "postgresql":
                # A batch need not wait for its WAL flush: after a crash the last batches may be
                # missing (never half of one), and importing the file again adds them.
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
            outcomes = _import_batch(batch, platform=platform, acting_user=acting_user, seen=seen, source=source)
            job_rows = []
            for outcome in outcomes:
                if isinstance(outcome, RowError):
                    report.add_error(outcome)
                    kind, case_id, reason = _ERROR, None, outcome.reason
                else:
                    report.add_row(outcome)
                    kind = _CREATED if outcome.created else _SKIPPED
                    case_id, reason = outcome.case_id, ""
                if job is not None:
                    job_rows.append((outcome.row_number, outcome.external_id[:64], kind, case_id, reason))
            if clock is not None:
                clock.advance(len(outcomes))
            if job is not None:
                _job_rows_insert(job, job_rows)
                job.rows_done, job.created_count = report.rows_read, report.created
                job.skipped_count, job.error_count = report.skipped, report.error_count
                job.save(update_fields=["rows_done", "created_count", "skipped_count", "error_count"])


_ERROR, _CREATED, _SKIPPED = (str(o) for o in (ImportJobRow.Outcome.ERROR, ImportJobRow.Outcome.CREATED,
                                                ImportJobRow.Outcome.SKIPPED))


def _can_import(acting_user) -> bool:
    return acting_user is None or (
        acting_user.has_perm("casework.import_messages") and acting_user.has_perm("casework.register_case")
    )


def import_job_create(*, platform: Platform, acting_user, file_name: str = "", stored_path: str = "") -> ImportJob:
    """Record a file import to be run (status ``queued``); the caller queues ``casework.import_job_run``.

    Args:
        platform: the platform the messages came from.
        acting_user: the member of staff importing, or None for a system import.
        file_name: the name the file had when uploaded (shown in the admin).
        stored_path: where the file waits on disk (under ``CASEWORK_IMPORT_DIR``).

    Raises:
        PermissionDenied: when ``acting_user`` lacks ``casework.import_messages`` or
            ``casework.register_case``.
    """
    if not _can_import(acting_user):
        raise PermissionDenied(_("您没有导入留言的权限。"))
    return ImportJob.objects.create(
        platform=platform, created_by=acting_user, file_name=file_name[:255], stored_path=stored_path
    )


def import_job_run(*, job_id: int) -> ImportJob:
    """Run a queued import job (the Celery task ``casework.import_job_run`` calls this).

    Imports the job's stored file with :func:`messages_import`, keeping progress and every row's
    outcome in the job, then deletes the stored file. A job already finished is left as it is
    (a redelivered task does nothing); a job left ``running`` by a lost worker is resumed, and
    idempotency on (platform, external id) turns its landed rows into skips.

    Returns:
        the job, ``done`` or ``failed`` (with ``message`` saying why the file was refused).

    Raises:
        ImportJob.DoesNotExist: no such job.
    """
    job = ImportJob.objects.select_related("platform", "created_by").get(pk=job_id)
    if job.finished:
        return job
    if job.rows_done:
        job.rows.all().delete()
    try:
        messages_import(rows_source=job.stored_path, platform=job.platform, acting_user=job.created_by, job=job)
    except ImportFileError:
        pass  # recorded in the job by messages_import
    except PermissionDenied as exc:  # the importer lost the permission while the job waited
        _job_finish(job, ImportJob.Status.FAILED, str(exc))
    finally:
        if job.stored_path:
            with contextlib.suppress(OSError):
                os.remove(job.stored_path)
    return job


def messages_import(
    *,
    rows_source,
    platform: Platform,
    acting_user=None,
    progress: ProgressCallback | None = None,
    progress_every: int = 100,
    limit: int | None = None,
    job: ImportJob | None = None,
    file_name: str = "",
) -> ImportReport:
    """Import a platform's export: register a case for every good row, report every bad one.

    Rows are read as a stream and imported in batches of ``CASEWORK_IMPORT_BATCH_SIZE``: each
    batch looks up its ids in one query and registers its new rows in a few bulk statements
    (cases in state ``registered``, source ``import``, message type from
    :func:`message_type_infer`, each with its hash-chained ``register`` event). A row whose
    (platform, message id) exists already is skipped, so importing the same file twice creates
    nothing the second time. Bad rows (missing subject or id, empty body, unreadable time or count,
    undecodable bytes, a field over ``CASEWORK_IMPORT_MAX_FIELD_CHARS``, an id repeated in the
    file, …) are reported with their row number and a reason in Chinese; the other rows land.

    The report is kept in the database: ``job`` (created when not given) gets its status,
    progress counts and one :class:`~casework.importing_models.ImportJobRow` per data row.

    Args:
        rows_source: a path or an open binary file; CSV (UTF-8 with or without BOM, GB18030/GBK,
            Big5), gzipped CSV or XLSX, told apart by content.
        platform: the platform the messages came from.
        acting_user: the member of staff importing, or None for a system import.
        progress: called every ``progress_every`` rows and once at the end with
            ``(rows_done, total_or_None, rate_rows_per_second, eta_seconds_or_None)``.
        limit: import only the first ``limit`` non-blank data rows.
        job: the queued job to run (see :func:`import_job_create`).
        file_name: shown in the admin for a job created here.

    Returns:
        an :class:`ImportReport` with the counts, the first ``REPORT_ROWS_KEPT`` rows and errors,
        and ``job``.

    Raises:
        PermissionDenied: when ``acting_user`` lacks ``casework.import_messages`` or
            ``casework.register_case``.
        ImportFileError: when the file cannot be read at all or is over a limit
            (:class:`ImportLimitError`); nothing is imported then and the job is ``failed``.
    """
    if not _can_import(acting_user):
        raise PermissionDenied(_("您没有导入留言的权限。"))
    if job is None:
        name = file_name or (os.path.basename(rows_source) if isinstance(rows_source, (str, os.PathLike)) else "")
        job = import_job_create(platform=platform, acting_user=acting_user, file_name=str(name))
    job.status, job.started_at, job.message = ImportJob.Status.RUNNING, timezone.now(), ""
    job.save(update_fields=["status", "started_at", "message"])
    report = ImportReport(job=job)
    try:
        with _rows(rows_source, limit) as (rows, total):
            job.total_rows = total
            job.save(update_fields=["total_rows"])
            clock = _Progress(total, progress, progress_every)
            _import_items(
                rows, report=report, platform=platform, acting_user=acting_user, clock=clock, job=job, source="import",
                read_ahead=True,
            )
            report.seconds = clock.elapsed()
            clock.tick(final=True)
    except ImportFileError as exc:
        _job_finish(job, ImportJob.Status.FAILED, str(exc))
        raise
    except BaseException:
        _job_finish(job, ImportJob.Status.FAILED, _("导入因内部错误中断;已导入的批次保留,重新导入将跳过它们。"))
        raise
    _job_finish(job, ImportJob.Status.DONE, "")
    return report


def _job_finish(job: ImportJob, status: str, message: str) -> None:
    job.status, job.message, job.finished_at = status, message, timezone.now()
    job.save(update_fields=["status", "message", "finished_at"])


def messages_import_records(*, records: list, platform: Platform, acting_user=None) -> ImportReport:
    """Register messages given as mappings with the export's column names (the platform push API).

    Same rules as :func:`messages_import` (batched registration, existing (platform, message id)
    skipped), every bad record reported with its 1-based position in ``records`` as row number.
    The report stays in memory (the API bounds ``records`` to ``CASEWORK_API_MAX_MESSAGES``).

    Args:
        records: e.g. ``[{"message_id": "123", "subject": "…", "body": "…",
            "submitted_at": "2026-03-02T09:00:00+08:00", "user_id": "…", "likes": 3}]``; naive
            times are Beijing time. An item may already be a :class:`RowError` (the API's own
            checks of types and encoding); it is reported as it is.

    Raises:
        PermissionDenied: when ``acting_user`` lacks ``casework.register_case``.
    """
    if acting_user is not None and not acting_user.has_perm("casework.register_case"):
        raise PermissionDenied(_("您没有登记留言的权限。"))
    columns = {column: index for index, column in enumerate(COLUMNS)}
    now = timezone.now()
    limits = ImportLimits.from_settings()

    def parse(number: int, record):
        if isinstance(record, RowError):
            return record
        if not isinstance(record, dict):
            return RowError(row_number=number, external_id="", reason=_("每条留言必须是一个 JSON 对象。"))
        return _parse_record(number, [record.get(c) for c in COLUMNS], columns, len(COLUMNS), now, limits)

    items = (parse(number, record) for number, record in enumerate(records, start=1))
    report = ImportReport()
    _import_items(items, report=report, platform=platform, acting_user=acting_user, clock=None, job=None, source="import")
    return report
