"""Batched import: encodings, merged cells, batch boundaries, the job's progress and report.

Issue 9 §3 (GBK/GB18030 CSV, merged XLSX cells) and issue 11 §4 (import in batches with the
same idempotency, the same per-row errors and the chained audit event of every registration).
"""

import csv
from datetime import datetime, timedelta
import io
from zoneinfo import ZoneInfo

from django.db import connection
from django.urls import reverse
import openpyxl
import pytest

from casework import calendar, importing, importing_copy, selectors, services
from casework.importing import COLUMNS, messages_import, read_message_rows
from casework.importing_models import ImportJob, ImportJobRow
from casework.models import Case, CaseClock, CaseEvent, Clock, State


def csv_text(rows, header=COLUMNS) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def row(message_id: str, subject: str = "路灯坏了", body: str = "小区门口的路灯坏了三天。", at: str = "2019-04-25 09:32:09"):
    return [message_id, f"U{message_id}", subject, body, at]


# ---------------------------------------------------------------- encodings


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "gb2312"])
def test_the_csv_chinese_excel_writes_is_read_in_its_encoding(bureau, tmp_path, encoding):
    header = ["留言编号", "留言用户", "留言主题", "留言详情", "留言时间"]
    rows = [row(f"C{n}", subject=f"关于户口迁移的咨询{n}", body="请问从外省迁入需要哪些材料?谢谢。") for n in range(30)]
    path = tmp_path / "excel.csv"
    path.write_bytes(csv_text(rows, header=header).encode(encoding))

    report = messages_import(rows_source=path, platform=bureau.platform)

    assert (report.created, report.error_count) == (30, 0)
    case = Case.objects.get(external_id="C7")
    assert (case.subject, case.body) == ("关于户口迁移的咨询7", "请问从外省迁入需要哪些材料?谢谢。")


def test_a_one_row_gb18030_file_and_characters_outside_gbk_are_read(tmp_path):
    path = tmp_path / "short.csv"
    path.write_bytes(csv_text([row("1", subject="国标编码𠮷", body="正文")]).encode("gb18030"))

    (item,) = read_message_rows(path)

    assert (item.subject, item.body) == ("国标编码𠮷", "正文")


def test_a_big5_file_is_read(tmp_path):
    path = tmp_path / "big5.csv"
    path.write_bytes(csv_text([row(str(n), subject="關於戶口遷移的諮詢", body="請問需要哪些材料") for n in range(20)]).encode("big5"))

    items = list(read_message_rows(path))

    assert [i.subject for i in items] == ["關於戶口遷移的諮詢"] * 20


# ---------------------------------------------------------------- merged cells


def test_a_merged_cell_gives_its_value_to_every_row_it_spans(bureau, tmp_path):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(list(COLUMNS))
    for n in range(2, 6):
        sheet.append([f"M{n}", f"U{n}", f"路灯坏了 {n}", "正文", None, "城乡建设" if n == 2 else None])
    sheet["E2"] = "2019-05-01 10:00:00"
    sheet.merge_cells("E2:E5")  # one time for four messages
    sheet.merge_cells("F2:F5")  # one category for four messages
    sheet.append(["M6", "U6", "单独一行", "正文", "2019-05-02 10:00:00"])
    path = tmp_path / "merged.xlsx"
    workbook.save(path)

    report = messages_import(rows_source=path, platform=bureau.platform)

    assert (report.created, report.error_count) == (5, 0)
    for n in range(2, 6):
        case = Case.objects.get(external_id=f"M{n}")
        assert case.submitted_at == datetime(2019, 5, 1, 10, tzinfo=ZoneInfo("Asia/Shanghai"))
        assert case.category == "城乡建设"
    assert Case.objects.get(external_id="M6").category == ""


# ---------------------------------------------------------------- batch boundaries


@pytest.fixture
def batches_of_three(settings):
    settings.CASEWORK_IMPORT_BATCH_SIZE = 3


def test_errors_and_duplicates_at_batch_boundaries_are_reported_like_one_by_one(bureau, tmp_path, batches_of_three):
    Case.objects.create(platform=bureau.platform, external_id="OLD", subject="s", body="b", submitted_at="2019-01-01T00:00:00+08:00")
    rows = [
        row("A"),  # 2  batch 1
        row("B"),  # 3
        row("C", subject=""),  # 4  error on the last row of batch 1
        row("OLD"),  # 5  batch 2: imported before
        row("B", subject="重复"),  # 6  duplicate of row 3 in the batch before
        row("C"),  # 7  same id as the bad row 4: still a duplicate
        row("D", at="明天"),  # 8  batch 3
        row("E"),  # 9
        row("D"),  # 10 duplicate of a bad row within its batch
        row("F"),  # 11 batch 4, alone
    ]
    path = tmp_path / "batches.csv"
    path.write_text(csv_text(rows), encoding="utf-8")

    first = messages_import(rows_source=path, platform=bureau.platform)
    second = messages_import(rows_source=path, platform=bureau.platform)

    assert (first.created, first.skipped) == (4, 1)
    reasons = {e.row_number: e.reason for e in first.errors}
    assert sorted(reasons) == [4, 6, 7, 8, 10]
    assert "缺少留言主题" in reasons[4]
    assert "第 3 行" in reasons[6] and "第 4 行" in reasons[7] and "第 8 行" in reasons[10]
    assert "留言时间无法识别" in reasons[8]
    assert (second.created, second.skipped) == (0, 5)
    assert {e.row_number: e.reason for e in second.errors} == reasons
    assert sorted(Case.objects.values_list("external_id", flat=True)) == ["A", "B", "E", "F", "OLD"]
    outcomes = list(first.job.rows.order_by("row_number").values_list("row_number", "outcome"))
    assert outcomes == [
        (2, "created"), (3, "created"), (4, "error"), (5, "skipped"), (6, "error"),
        (7, "error"), (8, "error"), (9, "created"), (10, "error"), (11, "created"),
    ]


def test_every_batched_registration_has_its_chained_register_event(bureau, tmp_path, batches_of_three, settings):
    path = tmp_path / "chain.csv"
    path.write_text(csv_text([row(f"H{n}") for n in range(8)]), encoding="utf-8")

    report = messages_import(rows_source=path, platform=bureau.platform, acting_user=bureau.dispatcher)

    assert report.created == 8
    for case in Case.objects.filter(external_id__startswith="H"):
        (event,) = CaseEvent.objects.filter(case=case)
        assert (event.seq, event.action, event.to_state, event.actor) == (1, "register", State.REGISTERED, bureau.dispatcher)
        assert event.payload == {"source": "import", "platform": bureau.platform.code, "external_id": case.external_id}
        assert event.hash == event.compute_hash() and event.prev_hash == ""
        assert selectors.case_audit_verify(case=case)
        year = case.created_at.astimezone(ZoneInfo("Asia/Shanghai")).year
        assert case.reference == f"{settings.CASEWORK_REFERENCE_PREFIX}-{year}-{case.pk:06d}"


TYPED = [("举报非法营运车辆", "report"), ("关于噪音的投诉", "complain"), ("建议增设红绿灯", "suggest"),
         ("求助:邻居扰民", "help"), ("咨询户口迁移", "consult")]


def _dispatch_clock(case):
    (clock,) = CaseClock.objects.filter(case=case)
    return clock


def test_the_batch_path_starts_the_same_dispatch_clock_as_one_registration(bureau, tmp_path, batches_of_three):
    """Every batched case has the running 交办 clock and dispatch_due_at case_register gives it (issue 13 §5)."""
    path = tmp_path / "typed.csv"
    path.write_text(csv_text([row(f"T{n}", subject=s) for n, (s, _k) in enumerate(TYPED)]), encoding="utf-8")

    report = messages_import(rows_source=path, platform=bureau.platform, acting_user=bureau.dispatcher)

    assert report.created == len(TYPED)
    for n, (subject, kind) in enumerate(TYPED):
        batched = Case.objects.get(external_id=f"T{n}")
        single = services.case_register(
            acting_user=bureau.dispatcher, platform=bureau.platform, subject=subject, body="小区门口的路灯坏了三天。",
            submitted_at=batched.submitted_at, external_id=f"S{n}", message_type=kind, source="import",
        )
        single.refresh_from_db()
        assert batched.message_type == single.message_type == kind
        one, other = _dispatch_clock(batched), _dispatch_clock(single)
        fields = ("clock", "round", "unit_id", "amount", "time_unit", "extended_days", "stopped_at",
                  "calendar_unconfirmed")
        assert [getattr(one, f) for f in fields] == [getattr(other, f) for f in fields]
        assert (one.clock, one.round, one.stopped_at) == (Clock.DISPATCH, 1, None)
        assert abs(one.started_at - batched.created_at) < timedelta(seconds=5)  # equal on PostgreSQL (COPY)
        assert batched.dispatch_due_at == one.due_at and single.dispatch_due_at == other.due_at
        assert one.due_at == calendar.work_calendar().deadline(
            start=one.started_at, amount=one.amount, unit=one.time_unit).due_at


def test_an_id_registered_by_another_import_between_lookup_and_insert_costs_nothing(
    bureau, tmp_path, batches_of_three, monkeypatch
):
    # Another import wins the race for R2 after this batch looked its ids up: the bulk insert
    # hits the real unique constraint, the batch is retried row by row and R2 becomes a skip.
    path = tmp_path / "race.csv"
    path.write_text(csv_text([row("R1"), row("R2"), row("R3"), row("R4")]), encoding="utf-8")
    bulk = importing._cases_register_bulk
    calls = []

    def other_import_first(**kwargs):
        if not calls:
            Case.objects.create(
                platform=bureau.platform, external_id="R2", subject="s", body="b", submitted_at="2019-01-01T00:00:00+08:00"
            )
        calls.append(len(kwargs["rows"]))
        return bulk(**kwargs)

    monkeypatch.setattr(importing, "_cases_register_bulk", other_import_first)

    report = messages_import(rows_source=path, platform=bureau.platform)

    assert (report.created, report.skipped, report.error_count) == (3, 1, 0)
    assert calls == [3, 1]  # batch 1 fell back to one by one; batch 2 was bulk again
    assert Case.objects.filter(external_id__in=["R1", "R2", "R3", "R4"]).count() == 4
    assert all(selectors.case_audit_verify(case=c) for c in Case.objects.filter(external_id__in=["R1", "R3", "R4"]))


# ---------------------------------------------------------------- the job: progress and report


def test_the_job_records_progress_batch_by_batch_and_every_rows_outcome(bureau, tmp_path, batches_of_three):
    path = tmp_path / "progress.csv"
    path.write_text(csv_text([row(f"P{n}") if n != 4 else row("P4", body="") for n in range(10)]), encoding="utf-8")
    seen_in_database = []

    def progress(done, total, rate, eta):
        job = ImportJob.objects.order_by("-pk").first()
        seen_in_database.append((done, job.status, job.rows_done, job.total_rows))

    report = messages_import(rows_source=path, platform=bureau.platform, progress=progress, progress_every=1)

    job = report.job
    job.refresh_from_db()
    assert (job.status, job.total_rows, job.rows_done) == (ImportJob.Status.DONE, 10, 10)
    assert (job.created_count, job.skipped_count, job.error_count) == (9, 0, 1)
    assert job.file_name == "progress.csv" and job.finished_at >= job.started_at
    # While the import ran, the database showed the rows of the batches already committed.
    assert [(d, s, r) for d, s, r, _t in seen_in_database[:10]] == [
        (1, "running", 0), (2, "running", 0), (3, "running", 0),
        (4, "running", 3), (5, "running", 3), (6, "running", 3),
        (7, "running", 6), (8, "running", 6), (9, "running", 6), (10, "running", 9),
    ]
    assert job.rows.count() == 10
    (error,) = job.rows.filter(outcome=ImportJobRow.Outcome.ERROR)
    assert (error.row_number, error.external_id) == (6, "P4") and "留言详情为空" in error.reason
    assert set(job.rows.filter(outcome="created").values_list("case__external_id", flat=True)) == {
        f"P{n}" for n in range(10) if n != 4
    }


def test_a_large_upload_runs_as_a_background_job_and_its_page_shows_progress_and_bad_rows(
    bureau, client, settings, eager_celery, django_capture_on_commit_callbacks, tmp_path
):
    settings.CASEWORK_IMPORT_INLINE_BYTES = 100  # every upload here is "large"
    settings.CASEWORK_IMPORT_DIR = tmp_path / "imports"
    content = csv_text([row("J1"), row("J2", subject=""), row("J3", subject="<b>x</b>")]).encode()
    client.force_login(bureau.dispatcher)
    from django.core.files.uploadedfile import SimpleUploadedFile

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:casework_case_import"),
            {"platform": bureau.platform.pk, "file": SimpleUploadedFile("big.csv", content, content_type="text/csv")},
        )

    job = ImportJob.objects.get()
    assert response.status_code == 302 and response.url == reverse("admin:casework_importjob_change", args=[job.pk])
    assert (job.status, job.created_count, job.error_count, job.created_by) == ("done", 2, 1, bureau.dispatcher)
    assert list((tmp_path / "imports").iterdir()) == []  # the stored upload is removed when done
    page = client.get(response.url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "<td>3</td><td>J2</td>" in html and "缺少留言主题" in html
    assert 'http-equiv="refresh"' not in html  # finished: no more refreshing
    assert "3 / 3" in html
    assert set(Case.objects.values_list("external_id", flat=True)) == {"J1", "J3"}


def test_a_queued_job_page_refreshes_and_only_importers_see_jobs(bureau, client, settings, tmp_path):
    settings.CASEWORK_IMPORT_INLINE_BYTES = 100
    settings.CASEWORK_IMPORT_DIR = tmp_path / "imports"
    client.force_login(bureau.dispatcher)
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post(
        reverse("admin:casework_case_import"),
        {"platform": bureau.platform.pk, "file": SimpleUploadedFile("q.csv", csv_text([row("Q1")]).encode())},
    )
    job = ImportJob.objects.get()
    assert job.status == "queued" and len(list((tmp_path / "imports").iterdir())) == 1
    page = client.get(response.url)
    assert page.status_code == 200 and 'http-equiv="refresh"' in page.content.decode()

    client.force_login(bureau.handler_a)
    assert client.get(response.url).status_code == 403
    assert client.get(reverse("admin:casework_importjob_changelist")).status_code == 403

    from casework import importing

    assert importing.import_job_run(job_id=job.pk).status == "done"
    assert Case.objects.filter(external_id="Q1").exists()
    assert importing.import_job_run(job_id=job.pk).created_count == 1  # a redelivered task does nothing


# ---------------------------------------------------------------- every batch size, the COPY path, interruptions


BOUNDARY_ROWS = [
    row("A"), row("B"), row("C", subject=""), row("OLD"), row("B", subject="重复"), row("C"),
    row("D", at="明天"), row("E"), row("D"), row("F"), row("G", body=""), row("E"), row("H"),
]


def _outcomes(job):
    return list(job.rows.order_by("row_number").values_list("row_number", "external_id", "outcome", "reason"))


@pytest.mark.parametrize("batch_size", [1, 2, 3, 4, 5, 12, 13, 2000])
def test_every_batch_size_gives_the_same_outcomes_as_one_row_at_a_time(bureau, tmp_path, settings, batch_size):
    # The reference is a batch of one (every boundary everywhere); every other size, a boundary
    # falling before, on or after each bad, duplicate or earlier-imported row, must agree.
    Case.objects.create(platform=bureau.platform, external_id="OLD", subject="s", body="b",
                        submitted_at="2019-01-01T00:00:00+08:00")
    path = tmp_path / "boundaries.csv"
    path.write_text(csv_text(BOUNDARY_ROWS), encoding="utf-8")
    expected = [
        (2, "A", "created"), (3, "B", "created"), (4, "C", "error"), (5, "OLD", "skipped"), (6, "B", "error"),
        (7, "C", "error"), (8, "D", "error"), (9, "E", "created"), (10, "D", "error"), (11, "F", "created"),
        (12, "G", "error"), (13, "E", "error"), (14, "H", "created"),
    ]
    settings.CASEWORK_IMPORT_BATCH_SIZE = batch_size

    first = messages_import(rows_source=path, platform=bureau.platform)
    again = messages_import(rows_source=path, platform=bureau.platform)

    assert [o[:3] for o in _outcomes(first.job)] == expected
    reasons = {n: r for n, _i, o, r in _outcomes(first.job) if o == "error"}
    assert "第 3 行" in reasons[6] and "第 4 行" in reasons[7] and "第 8 行" in reasons[10] and "第 9 行" in reasons[13]
    # Importing again: what was created is skipped, the same rows are refused for the same reasons.
    assert [(n, i, "skipped" if o == "created" else o, r) for n, i, o, r in _outcomes(first.job)] == _outcomes(again.job)
    assert sorted(Case.objects.values_list("external_id", flat=True)) == ["A", "B", "E", "F", "H", "OLD"]
    for case in Case.objects.exclude(external_id="OLD"):
        assert selectors.case_audit_verify(case=case)
        assert case.events.count() == 1
        # One running 交办 clock, started once (importing again adds none), copied to the case.
        (clock,) = case.clocks.all()
        assert (clock.clock, clock.round, clock.stopped_at) == (Clock.DISPATCH, 1, None)
        assert case.dispatch_due_at == clock.due_at


def test_text_the_copy_format_escapes_lands_exactly(bureau, tmp_path, batches_of_three):
    # PostgreSQL's COPY text format gives tab, newline, CR and backslash a meaning; "\N" is its NULL.
    tricky = [
        ("T1", "制表\t符", "第一行\n第二行\r\n第三行", "反斜杠\\N\\t\\\\", None),
        ("T2", "引号\"'", "\\N", "U\\N", "0"),
        ("T3", "表情😀𠮷", "全角　空格\u200b零宽", "\\", "7"),
    ]
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["message_id", "user_id", "subject", "body", "submitted_at", "likes"])
    for message_id, subject, body, user, likes in tricky:
        writer.writerow([message_id, user, subject, body, "2019-04-25 09:32:09", likes or ""])
    path = tmp_path / "tricky.csv"
    path.write_text(out.getvalue(), encoding="utf-8")

    report = messages_import(rows_source=path, platform=bureau.platform, acting_user=bureau.dispatcher)

    assert (report.created, report.error_count) == (3, 0)
    for message_id, subject, body, user, likes in tricky:
        case = Case.objects.get(external_id=message_id)
        assert (case.subject, case.body, case.citizen_name) == (subject, body, user)
        assert case.likes == (None if likes is None else int(likes))
        assert case.submitted_at == datetime(2019, 4, 25, 9, 32, 9, tzinfo=ZoneInfo("Asia/Shanghai"))
        (event,) = case.events.all()
        assert event.payload["external_id"] == message_id and event.actor == bureau.dispatcher
        assert selectors.case_audit_verify(case=case)


def test_ids_with_array_syntax_are_looked_up_as_written(bureau, tmp_path, batches_of_three):
    # PostgreSQL looks a batch's ids up as one text[] literal (importing_copy.text_array): quotes,
    # backslashes, commas, braces and the word NULL must each stay one id, in both look-ups
    # (registered before; seen earlier in this file).
    ids = ['Q"1', "Q\\2", "Q,3", "{Q4}", "NULL", "Q 6", "Q\\\"7"]
    path = tmp_path / "ids.csv"
    path.write_text(csv_text([row(i) for i in ids] + [row('Q"1'), row("NULL")]), encoding="utf-8")

    first = messages_import(rows_source=path, platform=bureau.platform)
    again = messages_import(rows_source=path, platform=bureau.platform)

    assert (first.created, first.skipped, first.error_count) == (7, 0, 2)
    assert sorted(Case.objects.values_list("external_id", flat=True)) == sorted(ids)
    assert [e.row_number for e in first.errors] == [9, 10] and "第 2 行" in first.errors[0].reason
    assert "第 6 行" in first.errors[1].reason
    assert (again.created, again.skipped, again.error_count) == (0, 7, 2)
    assert [r.case_id for r in again.rows] == [Case.objects.get(external_id=i).pk for i in ids]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT unnest(%s::text[])", [importing_copy.text_array(ids + ["", " "])])
            assert [v for (v,) in cursor.fetchall()] == ids + ["", " "]


def test_an_import_cut_between_batches_is_finished_by_importing_again(bureau, tmp_path, batches_of_three, monkeypatch):
    path = tmp_path / "cut.csv"
    path.write_text(csv_text([row(f"K{n}") if n != 4 else row("K4", subject="") for n in range(10)]), encoding="utf-8")
    real, calls = importing._import_batch, []

    def crash_on_third(batch, **kwargs):
        calls.append(len(batch))
        if len(calls) == 3:
            raise RuntimeError("worker lost")
        return real(batch, **kwargs)

    monkeypatch.setattr(importing, "_import_batch", crash_on_third)
    with pytest.raises(RuntimeError):
        messages_import(rows_source=path, platform=bureau.platform)
    job = ImportJob.objects.get()
    assert job.status == "failed" and job.rows_done == 6  # two batches landed whole, the third not at all
    assert sorted(Case.objects.values_list("external_id", flat=True)) == ["K0", "K1", "K2", "K3", "K5"]
    monkeypatch.setattr(importing, "_import_batch", real)

    report = messages_import(rows_source=path, platform=bureau.platform)

    assert (report.created, report.skipped, report.error_count) == (4, 5, 1)
    assert Case.objects.count() == 9 and CaseEvent.objects.count() == 9
    assert all(selectors.case_audit_verify(case=c) for c in Case.objects.all())


def test_reasons_are_written_in_the_importers_language_while_the_file_is_read_ahead(bureau, tmp_path, batches_of_three):
    from django.utils import translation

    path = tmp_path / "lang.csv"
    path.write_text(csv_text([row("L1"), row("L2"), row("L3"), row("L4", subject="")]), encoding="utf-8")

    with translation.override("en"):
        report = messages_import(rows_source=path, platform=bureau.platform)

    (error,) = report.job.rows.filter(outcome="error")
    assert error.reason == "Subject missing."
