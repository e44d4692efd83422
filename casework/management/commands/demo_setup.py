"""``manage.py demo_setup``: build the demo bureau and walk real messages through the loop."""

import csv
from datetime import datetime
import gzip
import logging
import os
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils import timezone

from accounts.models import User
from accounts.presets import bureau_preset_load
from casework import demo, demo_history, importing
from casework.models import EscalationLevel

DATA_FILE = Path(settings.BASE_DIR) / "casework" / "data" / "messages" / "fj4_with_replies.csv.gz"


def read_rows(path: Path) -> list[dict]:
    """Return the rows of a gzipped message CSV as mappings with the export's column names."""
    with gzip.open(path, "rt", encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def official_replies(rows: list[dict]) -> dict[str, tuple[str, datetime | None]]:
    """Return {message_id: (official reply, replied_at aware or None)} from (re-based) rows."""
    replies = {}
    for row in rows:
        at = None
        if row.get("replied_at"):
            try:
                at = datetime.fromisoformat(row["replied_at"])
            except ValueError:
                at = None
        replies[row["message_id"]] = (row.get("reply", ""), at)
    return replies


# 演示办理 summary: stage code → words.
STAGE_LABELS = {
    "dispatched": "待签收", "handling": "承办中", "joint_handling": "多警种联动", "extension": "申请延期",
    "office_review": "网评办审核", "office_sent_back": "网评办发回", "leader_review": "分管局领导审签",
    "leader_review_key": "局领导挂帅审签", "approved": "待发布", "returned": "退回待裁定",
    "replied": "已回复待回访", "reopened": "回访不满意重办", "archived": "已归档",
    "rejected": "重复留言不予受理", "out_of_scope": "非公安事项不予受理",
}
LEVEL_LABELS = dict(EscalationLevel.choices)


class Command(BaseCommand):
    help = "建立演示单位与人员,导入真实留言并按闭环办理一部分(可重复运行,不产生重复数据)。"

    def add_arguments(self, parser):
        parser.add_argument("--password", default=os.environ.get("DEMO_PASSWORD", "demo2026"),
                            help="新建演示账号的密码(默认 demo2026)")
        parser.add_argument("--file", default=str(DATA_FILE), help="留言数据文件")

    def handle(self, *args, password: str, file: str, **options):
        # One line per escalation step is right for the worker's log, too much for this summary.
        logging.getLogger("casework").setLevel(logging.WARNING)
        out = self.stdout
        result = bureau_preset_load(password=password)
        out.write(f"单位:新建 {result.units_created};人员:新建 {result.users_created},共 {len(result.logins)} 人")
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@bureau.invalid", password, full_name="系统管理员")
            out.write("已创建系统管理员 admin")
        try:
            call_command("calendar_seed", stdout=self.stdout, stderr=self.stderr)
        except Exception as exc:  # the calendar command reports its own coverage warnings
            self.stderr.write(f"工作日历初始化失败:{exc}")
        now = timezone.now()
        rows = demo_history.rows_rebase(read_rows(Path(file)), now=now)
        created = demo.demo_import(rows=rows, platform=importing.platform_ensure())
        out.write(f"导入留言:新建 {created} 件,共 {len(rows)} 条(留言时间已平移到最近十二个月,间隔不变)")
        report = demo.demo_walk(replies=official_replies(rows), now=now)
        if report.walked:
            out.write("演示办理:" + ",".join(f"{STAGE_LABELS.get(k, k)} {v} 件"
                                            for k, v in sorted(report.walked.items())))
        else:
            out.write("演示办理:已存在办理中的案件,本次不再推进。")
        for line in report.refused:
            out.write(f"  未能推进 {line}")
        try:  # suggested common-issue topics for the office to review (assessment app)
            call_command("topics_suggest", stdout=self.stdout, stderr=self.stderr)
        except Exception as exc:
            self.stderr.write(f"共性问题分组失败:{exc}")
        if report.escalation:
            out.write("催督办(按时间逐日运行):" + ",".join(
                f"{LEVEL_LABELS.get(k, k)} {v} 次" for k, v in sorted(report.escalation.items())))
        out.write("")
        out.write("演示账号(密码均为 %s):" % password)
        out.write("  admin                系统管理员(超级管理员)")
        by_username = {username: (name, roles) for username, name, roles in result.logins}
        showcase = result.showcase or [username for username, _n, _r in result.logins[:6]]
        for username in showcase:
            if username in by_username:
                name, roles = by_username[username]
                out.write(f"  {username:<20} {name} · {roles}")
        out.write(f"后台地址:{settings.SITE_URL}/admin/   邮件输出目录:{getattr(settings, 'EMAIL_FILE_PATH', 'SMTP')}")
