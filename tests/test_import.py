"""Message intake by spreadsheet import: service, command and admin upload (DESIGN.md §5)."""

import csv
from datetime import datetime
import gzip
import io
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse
import openpyxl
import pytest

from casework.importing import (
    COLUMNS,
    ImportFileError,
    MessageRow,
    RowError,
    message_type_infer,
    messages_import,
    read_message_rows,
)
from casework.models import Case, CaseEvent, MessageType, Platform, State

SHANGHAI = ZoneInfo("Asia/Shanghai")
DATA = Path(settings.BASE_DIR) / "casework" / "data" / "messages"
FJ4 = DATA / "fj4_with_replies.csv.gz"
FJ3 = DATA / "fj3_with_votes.csv.gz"


def csv_bytes(rows: list[dict], *, header=COLUMNS, bom: bool = False) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(column, "") for column in header])
    return (("\ufeff" if bom else "") + out.getvalue()).encode("utf-8")


def message(message_id: str, **fields) -> dict:
    return {
        "message_id": message_id,
        "user_id": f"UU{message_id}",
        "subject": f"关于户口迁移的咨询 {message_id}",
        "body": "请问户口从外省迁入需要哪些材料?",
        "submitted_at": "2019-04-25T09:32:09",
        **fields,
    }


# Row 1 is the header; row 7 has a body with a line break and is still one spreadsheet row.
BAD_FILE_ROWS = [
    message("9001"),  # row 2: good
    message("9002", subject=""),  # row 3: missing subject
    message("9003", submitted_at="去年夏天"),  # row 4: unparseable date
    message("9001", subject="重复的编号"),  # row 5: duplicate of row 2
    message("9005", likes="很多"),  # row 6: non-numeric likes
    message("9006", body="第一段\n第二段", likes="12", dislikes="0"),  # row 7: good
    message("9007", body="   "),  # row 8: empty body
]


@pytest.fixture
def bad_file(tmp_path) -> Path:
    path = tmp_path / "export.csv"
    path.write_bytes(csv_bytes(BAD_FILE_ROWS))
    return path


# ---------------------------------------------------------------- the real data in the repository


def test_repository_sample_files_parse_without_a_single_bad_row():
    fj4 = list(read_message_rows(FJ4))
    fj3 = list(read_message_rows(FJ3))

    assert len(fj4) == 2253 and all(isinstance(r, MessageRow) for r in fj4)
    assert len(fj3) == 4326 and all(isinstance(r, MessageRow) for r in fj3)
    assert all(r.reply and r.replied_at for r in fj4)
    assert sum(r.likes for r in fj3) == 12512
    assert sum(r.dislikes for r in fj3) == 510


def test_importing_a_slice_of_the_real_export_registers_exactly_those_messages(bureau):
    report = messages_import(rows_source=FJ4, platform=bureau.platform, limit=120)

    assert (report.created, report.skipped, report.errors) == (120, 0, [])
    assert Case.objects.filter(platform=bureau.platform, state=State.REGISTERED).count() == 120
    case = Case.objects.get(platform=bureau.platform, external_id="2549")
    assert case.subject == "A2区景蓉华苑物业管理有问题"
    assert case.citizen_name == "A00045581"
    assert case.submitted_at == datetime(2019, 4, 25, 9, 32, 9, tzinfo=SHANGHAI)
    assert case.reference.startswith(f"{settings.CASEWORK_REFERENCE_PREFIX}-")
    event = CaseEvent.objects.get(case=case)
    assert (event.action, event.actor, event.payload["source"]) == ("register", None, "import")
    reply, replied_at = report.replies()["2549"]
    assert reply.startswith("现将网友在平台《问政西地省》栏目") and replied_at.tzinfo is not None
    assert [r.case_id for r in report.rows if r.external_id == "2549"] == [case.pk]


def test_importing_the_same_export_again_creates_nothing_and_skips_every_row(bureau):
    first = messages_import(rows_source=FJ3, platform=bureau.platform, limit=60)
    second = messages_import(rows_source=FJ3, platform=bureau.platform, limit=60)

    assert (first.created, first.skipped) == (60, 0)
    assert (second.created, second.skipped, second.errors) == (0, 60, [])
    assert Case.objects.count() == 60
    assert {r.case_id for r in second.rows} == {r.case_id for r in first.rows}


def test_the_same_message_id_on_another_platform_is_a_different_message(bureau, bad_file):
    other = Platform.objects.create(code="rmw", name="人民网领导留言板")
    messages_import(rows_source=bad_file, platform=bureau.platform)
    report = messages_import(rows_source=bad_file, platform=other)

    assert report.created == 2
    assert Case.objects.filter(external_id="9001").count() == 2


# ---------------------------------------------------------------- bad rows


def test_each_bad_row_is_reported_with_its_row_number_and_reason_and_good_rows_land(bureau, bad_file):
    report = messages_import(rows_source=bad_file, platform=bureau.platform)

    assert (report.created, report.skipped) == (2, 0)
    reasons = {e.row_number: e.reason for e in report.errors}
    assert sorted(reasons) == [3, 4, 5, 6, 8]
    assert "缺少留言主题" in reasons[3]
    assert "留言时间无法识别" in reasons[4] and "去年夏天" in reasons[4]
    assert "重复" in reasons[5] and "第 2 行" in reasons[5]
    assert "点赞数不是非负整数" in reasons[6]
    assert "留言详情为空" in reasons[8]
    assert set(Case.objects.values_list("external_id", flat=True)) == {"9001", "9006"}
    good = Case.objects.get(external_id="9006")
    assert (good.body, good.likes, good.dislikes) == ("第一段\n第二段", 12, 0)
    assert Case.objects.get(external_id="9001").subject == "关于户口迁移的咨询 9001"


def test_one_row_with_a_byte_that_is_not_utf8_is_reported_alone_and_the_other_rows_land(bureau, tmp_path):
    rows = [message(str(n)) for n in range(100)]  # Chinese UTF-8 text
    path = tmp_path / "stray.csv"
    path.write_bytes(csv_bytes(rows) + "101,U1,坏字节".encode() + b"\xff\xfe" + ",正文,2019-04-25T09:32:09\r\n".encode())

    report = messages_import(rows_source=path, platform=bureau.platform)

    assert (report.created, report.error_count) == (100, 1)
    (error,) = report.errors
    assert error.row_number == 102 and error.external_id == "101"
    assert "无法按 utf-8 解码" in error.reason and "坏字节\ufffd\ufffd" in error.reason
    assert Case.objects.count() == 100
    assert Case.objects.get(external_id="7").subject == "关于户口迁移的咨询 7"


def test_a_file_without_the_required_columns_is_refused(bureau, tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("name,amount\n张三,3\n", encoding="utf-8")

    with pytest.raises(ImportFileError, match="subject"):
        messages_import(rows_source=path, platform=bureau.platform)


def test_a_csv_with_bom_and_chinese_headers_is_read(bureau, tmp_path):
    header = ["留言编号", "留言用户", "留言主题", "留言时间", "留言详情", "一级标签", "点赞数", "反对数"]
    rows = [
        {
            "留言编号": "7",
            "留言用户": "U1",
            "留言主题": "噪音扰民",
            "留言时间": "2019/4/5 8:03",
            "留言详情": "夜里施工",
            "一级标签": "环境保护",
            "点赞数": "3",
            "反对数": "1",
        }
    ]
    path = tmp_path / "bom.csv"
    path.write_bytes(csv_bytes(rows, header=header, bom=True))

    report = messages_import(rows_source=path, platform=bureau.platform)

    assert report.created == 1
    case = Case.objects.get(external_id="7")
    assert (case.category, case.likes, case.dislikes) == ("环境保护", 3, 1)
    assert case.submitted_at == datetime(2019, 4, 5, 8, 3, tzinfo=SHANGHAI)


# ---------------------------------------------------------------- xlsx


def test_an_xlsx_export_with_date_cells_and_numeric_ids_is_imported(bureau, tmp_path):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(
        [
            "留言编号",
            "留言用户",
            "留言主题",
            "留言详情",
            "留言时间",
            "答复意见",
            "答复时间",
            "点赞数",
            "反对数",
        ]
    )
    sheet.append(
        [
            188006,
            "A000102948",
            "举报无证经营",
            "楼下网吧无证经营",
            datetime(2019, 2, 28, 11, 25, 5),
            "已查处",
            "2019-03-05 10:00:00",
            4,
            0,
        ]
    )
    sheet.append([188007, "A00074795", "", "主题空了", datetime(2019, 3, 1), "", None, None, None])
    sheet.append([None] * 9)  # a blank row in the middle is ignored but keeps the numbering
    sheet.append([188009, "A1", "投诉噪音", "夜里施工", "2019-03-02T08:00:00", "", None, "2.0", None])
    path = tmp_path / "export.xlsx"
    workbook.save(path)

    report = messages_import(rows_source=path, platform=bureau.platform)

    assert (report.created, [(e.row_number, e.external_id) for e in report.errors]) == (2, [(3, "188007")])
    case = Case.objects.get(external_id="188006")
    assert case.submitted_at == datetime(2019, 2, 28, 11, 25, 5, tzinfo=SHANGHAI)
    assert (case.likes, case.dislikes, case.message_type) == (4, 0, MessageType.REPORT)
    assert report.replies()["188006"] == ("已查处", datetime(2019, 3, 5, 10, 0, tzinfo=SHANGHAI))
    assert Case.objects.get(external_id="188009").likes == 2


# ---------------------------------------------------------------- field cases C22 and C23


def test_emoji_and_rare_characters_survive_import_unchanged(bureau, tmp_path):
    subject = "路灯坏了🤦‍♂️三天了😡"
    body = "小区门口路灯坏了🤦‍♂️三天了😡,联系人𠮷田。" + "长" * 20000
    path = tmp_path / "emoji.csv.gz"
    path.write_bytes(gzip.compress(csv_bytes([message("E1", subject=subject, body=body, user_id="𠮷")])))

    report = messages_import(rows_source=path, platform=bureau.platform)

    assert report.created == 1
    case = Case.objects.get(external_id="E1")
    assert (case.subject, case.body, case.citizen_name) == (subject, body, "𠮷")
    assert len(case.subject) == len(subject) and len(case.body) == len(body) > 20000


def test_a_full_width_message_id_is_stored_half_width_and_matches_on_reimport(bureau, tmp_path):
    full = tmp_path / "full.csv"
    full.write_bytes(csv_bytes([message("ＪＢ００１", body="正文保持原样:１２３")]))
    half = tmp_path / "half.csv"
    half.write_bytes(csv_bytes([message("JB001")]))

    first = messages_import(rows_source=full, platform=bureau.platform)
    second = messages_import(rows_source=half, platform=bureau.platform)

    case = Case.objects.get(platform=bureau.platform)
    assert case.external_id == "JB001"
    assert case.body == "正文保持原样:１２３"
    assert (first.created, second.created, second.skipped) == (1, 0, 1)


# ---------------------------------------------------------------- rules and progress


@pytest.mark.parametrize(
    ("subject", "body", "expected"),
    [
        ("举报小区内有人赌博", "", MessageType.REPORT),
        ("投诉交警执法态度", "我要举报", MessageType.COMPLAIN),
        ("关于增设路灯的建议", "", MessageType.SUGGEST),
        ("老人走失求助", "", MessageType.HELP),
        ("请求帮助寻找孩子", "", MessageType.HELP),
        ("户口迁移需要哪些材料", "我想举报中介乱收费", MessageType.REPORT),
        ("户口迁移需要哪些材料", "请问怎么办理", MessageType.CONSULT),
    ],
)
def test_message_type_is_inferred_from_subject_first_then_body(subject, body, expected):
    assert message_type_infer(subject=subject, body=body) == expected


def test_progress_reports_rows_done_total_rate_and_time_left(bureau, tmp_path):
    path = tmp_path / "many.csv"
    path.write_bytes(csv_bytes([message(str(n)) for n in range(1, 26)]))
    calls = []

    messages_import(
        rows_source=path,
        platform=bureau.platform,
        progress_every=10,
        progress=lambda *args: calls.append(args),
    )

    assert [(done, total) for done, total, _rate, _eta in calls] == [(10, 25), (20, 25), (25, 25)]
    assert all(rate > 0 for _d, _t, rate, _e in calls)
    assert calls[0][3] > 0 and calls[-1][3] == 0


def test_a_user_without_the_import_permission_cannot_run_the_service(bureau, bad_file):
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        messages_import(rows_source=bad_file, platform=bureau.platform, acting_user=bureau.handler_a)
    assert Case.objects.count() == 0


# ---------------------------------------------------------------- the management command


def test_command_creates_the_platform_prints_progress_summary_and_each_bad_row(db, bad_file):
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "import_messages",
        str(bad_file),
        "--platform",
        "rmw",
        "--platform-name",
        "人民网",
        "--progress-every",
        "2",
        stdout=out,
        stderr=err,
    )

    platform = Platform.objects.get(code="rmw")
    assert platform.name == "人民网"
    assert Case.objects.filter(platform=platform).count() == 2
    assert "已处理 2/7 行" in err.getvalue() and "行/秒" in err.getvalue() and "预计剩余" in err.getvalue()
    text = out.getvalue()
    assert "新建 2 件" in text and "错误 5 行" in text
    for row in (3, 4, 5, 6, 8):
        assert f"第 {row} 行:" in text


def test_command_fails_only_when_the_file_cannot_be_read(db, tmp_path):
    path = tmp_path / "page.csv"
    path.write_text("<html><body>not a table</body></html>", encoding="utf-8")

    with pytest.raises(CommandError, match="HTML"):
        call_command("import_messages", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError):
        call_command(
            "import_messages", str(tmp_path / "missing.csv"), stdout=io.StringIO(), stderr=io.StringIO()
        )
    assert Platform.objects.filter(code="wzxd", name="问政西地省").exists()


# ---------------------------------------------------------------- the admin upload


IMPORT_URL = "/admin/casework/case/import/"


def upload(name: str, content: bytes, content_type: str = "text/csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=content_type)


def test_import_url_is_mounted_on_the_case_admin():
    assert reverse("admin:casework_case_import") == IMPORT_URL


def test_dispatcher_uploads_an_export_and_sees_the_summary_and_bad_rows(bureau, client):
    client.force_login(bureau.dispatcher)
    rows = [*BAD_FILE_ROWS, message("9008", likes="<script>alert(1)</script>")]  # row 9

    response = client.post(
        IMPORT_URL, {"platform": bureau.platform.pk, "file": upload("export.csv", csv_bytes(rows))}
    )

    assert response.status_code == 200
    assert [e.row_number for e in response.context["report"].errors] == [3, 4, 5, 6, 8, 9]
    html = response.content.decode()
    assert 'id="cw-import-created">2<' in html
    assert 'id="cw-import-error-count">6<' in html
    for row in (3, 4, 5, 6, 8, 9):
        assert f"<tr><td>{row}</td>" in html
    assert "缺少留言主题" in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    registered = Case.objects.get(external_id="9001")
    assert CaseEvent.objects.get(case=registered).actor == bureau.dispatcher


def test_dispatcher_uploads_an_xlsx_export(bureau, client):
    workbook = openpyxl.Workbook()
    workbook.active.append(list(COLUMNS))
    workbook.active.append(["X1", "U1", "建议增设红绿灯", "路口车多", "2019-05-01T10:00:00"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    client.force_login(bureau.dispatcher)

    response = client.post(
        IMPORT_URL, {"platform": bureau.platform.pk, "file": upload("export.xlsx", buffer.getvalue())}
    )

    assert response.status_code == 200 and response.context["report"].created == 1
    assert Case.objects.get(external_id="X1").message_type == MessageType.SUGGEST


def test_handler_gets_403_from_the_import_page(bureau, client):
    client.force_login(bureau.handler_a)

    assert client.get(IMPORT_URL).status_code == 403
    response = client.post(
        IMPORT_URL, {"platform": bureau.platform.pk, "file": upload("export.csv", csv_bytes([message("1")]))}
    )
    assert response.status_code == 403
    assert Case.objects.count() == 0


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("evidence.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
        ("page.html", b"<html><script>alert(1)</script></html>"),
        ("page.csv", b"<html><script>alert(1)</script></html>"),
        ("export.xlsx", csv_bytes([message("1")])),
        ("export.csv", b"PK\x03\x04 not really a zip"),
    ],
)
def test_an_upload_that_is_not_a_csv_or_xlsx_is_refused(bureau, client, name, content):
    client.force_login(bureau.dispatcher)

    response = client.post(IMPORT_URL, {"platform": bureau.platform.pk, "file": upload(name, content)})

    assert response.status_code == 200
    assert response.context["report"] is None
    assert response.context["form"].errors["file"]
    assert Case.objects.count() == 0


def test_case_list_shows_the_import_link_only_to_users_with_the_permission(bureau, client):
    changelist = reverse("admin:casework_case_changelist")
    client.force_login(bureau.dispatcher)
    assert f'href="{IMPORT_URL}"' in client.get(changelist).content.decode()

    client.force_login(bureau.handler_a)
    response = client.get(changelist)
    assert response.status_code == 200
    assert IMPORT_URL not in response.content.decode()


def test_the_import_page_shows_the_form_with_the_default_platform(bureau, client):
    client.force_login(bureau.dispatcher)

    response = client.get(IMPORT_URL)

    assert response.status_code == 200
    assert response.context["form"]["platform"].value() == bureau.platform.pk
    assert 'enctype="multipart/form-data"' in response.content.decode()


def test_row_errors_carry_the_message_id_when_it_could_be_read(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(csv_bytes([message("ＡＢ１", submitted_at="2019-13-45")]))

    (item,) = read_message_rows(path)

    assert isinstance(item, RowError)
    assert (item.row_number, item.external_id) == (2, "AB1")


def test_a_body_longer_than_the_csv_modules_default_field_limit_is_imported(bureau, tmp_path):
    body = "很长的留言。" * 30000  # 180,000 characters
    path = tmp_path / "long.csv"
    path.write_bytes(csv_bytes([message("L1", body=body), message("L2")]))

    report = messages_import(rows_source=path, platform=bureau.platform)

    assert (report.created, report.errors) == (2, [])
    assert Case.objects.get(external_id="L1").body == body
