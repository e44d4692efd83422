"""Hostile files are refused with a clear message in bounded time and memory (issue 9 §3).

Each file is generated here: an XLSX whose shared-string table holds 10 million strings (about
400 KB zipped, the file of the issue), a ``.csv.gz`` of blank lines, over-wide rows and headers,
a sheet whose rows claim to reach row 1,048,576. Memory is measured with tracemalloc around the
import only (the file is on disk by then).
"""

import csv
import gzip
import io
from pathlib import Path
import time
import tracemalloc
import zipfile

import openpyxl
import pytest

from casework import importing
from casework.importing import COLUMNS, ImportLimitError, messages_import, read_message_rows
from casework.importing_models import ImportJob
from casework.models import Case, CaseEvent

MB = 1024 * 1024


@pytest.fixture(autouse=True)
def _importer_alone(settings):
    """These tests bound the importer's own CPU and memory; the intake duplicate check, which
    compares each of these generated (repetitive) rows with the others, is tested on its own
    (tests/test_ml_duplicates.py)."""
    settings.CASEWORK_INTAKE_DUPLICATES = False


def run(func):
    try:
        return func()
    except Exception as exc:  # noqa: BLE001 - the exception is the result under test
        return exc


def measure(func, *, timed: bool = True):
    """Run ``func`` twice: timed alone, then under tracemalloc (which slows Python down).

    Returns (result or exception of the traced run, CPU seconds of the plain run, peak in bytes).
    CPU time, not wall time: the machine running the suite may be shared.
    """
    seconds = 0.0
    if timed:
        started = time.process_time()
        run(func)
        seconds = time.process_time() - started
    tracemalloc.start()
    result = run(func)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak


def csv_text(rows, header=COLUMNS) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def good_row(n: int) -> list[str]:
    return [f"G{n}", f"U{n}", f"路灯坏了 {n}", "小区门口的路灯坏了三天。", "2019-04-25 09:32:09"]


def write_xlsx_parts(path: Path, parts: dict) -> None:
    """Write a minimal XLSX; a part given as a callable writes itself in chunks (never all in memory)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, content in parts.items():
            if callable(content):
                with archive.open(name, "w", force_zip64=True) as out:
                    content(out)
            else:
                archive.writestr(name, content)


CONTENT_TYPES = b"""<?xml version="1.0" encoding="UTF-8"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>
<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>
<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>
</Types>"""
ROOT_RELS = b"""<?xml version="1.0" encoding="UTF-8"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>
</Relationships>"""
WORKBOOK = b"""<?xml version="1.0" encoding="UTF-8"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">
<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"""
WORKBOOK_RELS = b"""<?xml version="1.0" encoding="UTF-8"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>
<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>
</Relationships>"""
NS = b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'


def inline_row(number: int, values: list[str]) -> bytes:
    cells = "".join(
        f'<c r="{openpyxl.utils.get_column_letter(i + 1)}{number}" t="inlineStr"><is><t>{v}</t></is></c>'
        for i, v in enumerate(values)
    )
    return f'<row r="{number}">{cells}</row>'.encode()


def xlsx(path: Path, *, sheet_rows: bytes, shared: int = 0, dimension: str = "A1:K3") -> Path:
    def strings(out):
        out.write(b'<?xml version="1.0" encoding="UTF-8"?><sst ' + NS + b">")
        chunk = b"<si><t/></si>" * 100_000
        for _ in range(shared // 100_000):
            out.write(chunk)
        out.write(b"<si><t/></si>" * (shared % 100_000) + b"</sst>")

    sheet = (
        b'<?xml version="1.0" encoding="UTF-8"?><worksheet ' + NS + b'><dimension ref="' + dimension.encode()
        + b'"/><sheetData>' + inline_row(1, list(COLUMNS)) + sheet_rows + b"</sheetData></worksheet>"
    )
    write_xlsx_parts(
        path,
        {
            "[Content_Types].xml": CONTENT_TYPES,
            "_rels/.rels": ROOT_RELS,
            "xl/workbook.xml": WORKBOOK,
            "xl/_rels/workbook.xml.rels": WORKBOOK_RELS,
            "xl/worksheets/sheet1.xml": sheet,
            "xl/sharedStrings.xml": strings,
        },
    )
    return path


def test_an_xlsx_with_ten_million_shared_strings_is_refused_fast_in_little_memory(bureau, tmp_path):
    path = xlsx(tmp_path / "bomb.xlsx", sheet_rows=inline_row(2, good_row(1)), shared=10_000_000)
    assert path.stat().st_size < 1 * MB  # the file: 414 KB

    result, seconds, peak = measure(lambda: messages_import(rows_source=path, platform=bureau.platform))

    assert isinstance(result, ImportLimitError)
    assert "共享字符串数超过 1,000,000" in str(result) and "CASEWORK_IMPORT_MAX_SHARED_STRINGS" in str(result)
    assert peak < 16 * MB, f"peak {peak / MB:.1f} MB"
    assert seconds < 20, seconds  # was 58 s and about 1 GB
    assert Case.objects.count() == 0
    job = ImportJob.objects.last()
    assert job.status == ImportJob.Status.FAILED and "共享字符串" in job.message


def test_an_xlsx_under_the_shared_string_limit_is_read(bureau, tmp_path, settings):
    path = xlsx(tmp_path / "ok.xlsx", sheet_rows=inline_row(2, good_row(1)), shared=10)

    report = messages_import(rows_source=path, platform=bureau.platform)

    assert (report.created, report.error_count) == (1, 0)


def test_a_sheet_whose_rows_claim_to_reach_row_a_million_is_refused_not_padded(bureau, tmp_path, settings):
    settings.CASEWORK_IMPORT_MAX_ROWS = 100_000
    rows = inline_row(2, good_row(1)) + inline_row(1_048_576, good_row(2))
    path = xlsx(tmp_path / "far.xlsx", sheet_rows=rows, dimension="A1:XFD1048576")

    result, seconds, peak = measure(lambda: messages_import(rows_source=path, platform=bureau.platform))

    assert isinstance(result, ImportLimitError) and "行数" in str(result)
    assert seconds < 5 and peak < 16 * MB
    assert Case.objects.count() == 0


def test_a_lying_dimension_does_not_pad_every_row_to_sixteen_thousand_cells(bureau, tmp_path):
    rows = b"".join(inline_row(n, good_row(n)) for n in range(2, 402))
    path = xlsx(tmp_path / "wide-dimension.xlsx", sheet_rows=rows, dimension="A1:XFD401")

    result, seconds, peak = measure(lambda: messages_import(rows_source=path, platform=bureau.platform))

    assert result.created == 0 and result.skipped == 400 and result.error_count == 0  # second run
    assert Case.objects.count() == 400
    assert seconds < 20
    assert peak < 16 * MB, f"peak {peak / MB:.1f} MB"


def test_an_xlsx_row_wider_than_the_limit_is_reported_alone(bureau, tmp_path):
    wide = inline_row(3, good_row(3))[:-6] + b'<c r="XFD3" t="inlineStr"><is><t>far</t></is></c></row>'
    path = xlsx(tmp_path / "wide-row.xlsx", sheet_rows=inline_row(2, good_row(2)) + wide + inline_row(4, good_row(4)))

    report = messages_import(rows_source=path, platform=bureau.platform)

    assert report.created == 2
    (error,) = report.errors
    assert error.row_number == 3 and "CASEWORK_IMPORT_MAX_COLUMNS" in error.reason


def test_a_csv_gz_of_blank_lines_is_refused_in_seconds_not_minutes(bureau, tmp_path, settings):
    path = tmp_path / "blank.csv.gz"
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(csv_text([good_row(1)]).encode())
        chunk = b"\n" * MB
        for _ in range(200):  # 200 MB of blank lines in about 200 KB
            out.write(chunk)
    assert path.stat().st_size < 1 * MB

    started = time.process_time()  # CPU time: the machine running the suite may be shared
    result = run(lambda: messages_import(rows_source=path, platform=bureau.platform))
    seconds = time.process_time() - started
    assert isinstance(result, ImportLimitError)
    assert "行数(含空行)超过 1,000,000" in str(result)
    assert seconds < 15, seconds  # was over 10 minutes of CPU

    settings.CASEWORK_IMPORT_MAX_ROWS = 100_000  # the same path under tracemalloc, which is slow
    result, _seconds, peak = measure(lambda: messages_import(rows_source=path, platform=bureau.platform), timed=False)
    assert isinstance(result, ImportLimitError)
    assert peak < 16 * MB, f"peak {peak / MB:.1f} MB"
    assert Case.objects.count() == 0


def test_a_csv_gz_over_the_decompressed_size_limit_is_refused_before_a_row_lands(bureau, tmp_path, settings):
    settings.CASEWORK_IMPORT_MAX_BYTES = 2 * MB
    path = tmp_path / "big.csv.gz"
    rows = [good_row(n)[:3] + ["很长的正文。" * 200, "2019-04-25 09:32:09"] for n in range(2000)]
    path.write_bytes(gzip.compress(csv_text(rows).encode()))

    with pytest.raises(ImportLimitError, match="解压后大小超过 2,097,152"):
        messages_import(rows_source=path, platform=bureau.platform)
    assert Case.objects.count() == 0 and CaseEvent.objects.count() == 0


def test_an_xlsx_over_the_decompressed_size_limit_is_refused(bureau, tmp_path, settings):
    settings.CASEWORK_IMPORT_MAX_BYTES = 1 * MB
    path = xlsx(tmp_path / "big.xlsx", sheet_rows=inline_row(2, good_row(1)), shared=200_000)  # ~2.6 MB inflated

    with pytest.raises(ImportLimitError, match="解压后大小"):
        messages_import(rows_source=path, platform=bureau.platform)


def test_too_many_cells_are_refused_whole(bureau, tmp_path, settings):
    settings.CASEWORK_IMPORT_MAX_CELLS = 1000
    path = tmp_path / "cells.csv"
    path.write_text(csv_text([good_row(n) for n in range(300)]), encoding="utf-8")

    with pytest.raises(ImportLimitError, match="单元格数超过 1,000"):
        list(read_message_rows(path))
    with pytest.raises(ImportLimitError):
        messages_import(rows_source=path, platform=bureau.platform)
    assert Case.objects.count() == 0


def test_a_header_wider_than_the_limit_is_refused_and_a_wide_row_is_reported_alone(bureau, tmp_path):
    path = tmp_path / "wide-header.csv"
    path.write_text(csv_text([good_row(1)], header=[*COLUMNS, *(f"x{i}" for i in range(100))]), encoding="utf-8")
    with pytest.raises(ImportLimitError, match="表头列数超过 64"):
        messages_import(rows_source=path, platform=bureau.platform)

    path = tmp_path / "wide-row.csv"
    path.write_text(csv_text([good_row(1), good_row(2) + ["x"] * 100_000, good_row(3)]), encoding="utf-8")
    report = messages_import(rows_source=path, platform=bureau.platform)
    assert report.created == 2
    (error,) = report.errors
    assert error.row_number == 3 and "超过 64 列" in error.reason


def test_an_oversized_field_is_reported_alone_with_the_echo_cut_short(bureau, tmp_path, settings):
    settings.CASEWORK_IMPORT_MAX_FIELD_CHARS = 5000
    long_id = "编号" * 3000
    rows = [
        good_row(1),
        ["G2", "U2", "路灯", "很长" * 3000, "2019-04-25 09:32:09"],
        [long_id, "U3", "路灯", "正文", "2019-04-25 09:32:09"],
        ["G4", "U4", "路灯", "正文", "时间" * 3000],
        good_row(5),
    ]
    path = tmp_path / "long.csv"
    path.write_text(csv_text(rows), encoding="utf-8")

    report = messages_import(rows_source=path, platform=bureau.platform)

    assert report.created == 2
    reasons = {e.row_number: e for e in report.errors}
    assert sorted(reasons) == [3, 4, 5]
    assert "「body」有 6,000 个字符,超过上限 5,000" in reasons[3].reason
    assert "「message_id」有 6,000 个字符" in reasons[4].reason and len(reasons[4].external_id) <= 64
    assert "「submitted_at」有 6,000 个字符" in reasons[5].reason
    assert all(len(e.reason) < 400 for e in report.errors)  # values quoted are cut short
    stored = list(report.job.rows.filter(outcome="error").values_list("row_number", flat=True))
    assert stored == [3, 4, 5]


def test_memory_stays_flat_as_the_file_grows(bureau, tmp_path, settings, monkeypatch):
    settings.CASEWORK_IMPORT_BATCH_SIZE = 100
    # The importer's own memory: every row here repeats one text, which the intake duplicate check
    # (tested in test_ml_duplicates) would compare row by row under tracemalloc.
    settings.CASEWORK_INTAKE_DUPLICATES = False
    # The in-memory report keeps the first REPORT_ROWS_KEPT rows (1,000); both files here are
    # past a smaller cap so that only memory growing with rows would show.
    monkeypatch.setattr(importing, "REPORT_ROWS_KEPT", 50)
    # Likewise the encoding sample (256 KiB, more than the small file): both files exceed it here.
    monkeypatch.setattr(importing, "ENCODING_SAMPLE_BYTES", 16 * 1024)

    def peak_for(rows: int, tag: str) -> int:
        path = tmp_path / f"{tag}.csv"
        path.write_text(
            csv_text([[f"{tag}{n}", f"U{n}", f"咨询 {n}", "请问户口迁移需要哪些材料?" * 5, "2019-04-25 09:32:09"]
                      for n in range(rows)]),
            encoding="utf-8",
        )
        report, _seconds, peak = measure(
            lambda: messages_import(rows_source=path, platform=bureau.platform), timed=False
        )
        assert report.created == rows
        return peak

    small = peak_for(300, "S")
    large = peak_for(1500, "L")  # five times the rows

    assert large < small * 1.3 + 512 * 1024, (small, large)
    assert Case.objects.count() == 1800
