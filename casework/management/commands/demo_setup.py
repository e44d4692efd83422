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

from accounts.models import User
from accounts.presets import bureau_preset_load
from casework import demo, escalation

DATA_FILE = Path(settings.BASE_DIR) / "casework" / "data" / "messages" / "fj4_with_replies.csv.gz"


def read_official_replies(path: Path) -> dict[str, tuple[str, datetime | None]]:
    """Return {message_id: (official reply, replied_at)} from a gzipped message CSV."""
    replies = {}
    with gzip.open(path, "rt", encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            at = None
            if row.get("replied_at"):
                try:
                    at = datetime.fromisoformat(row["replied_at"])
                except ValueError:
                    at = None
            replies[row["message_id"]] = (row.get("reply", ""), at)
    return replies


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
        call_command("import_messages", file, stdout=self.stdout, stderr=self.stderr)
        report = demo.demo_walk(replies=read_official_replies(Path(file)))
        if report.walked:
            out.write("演示办理:" + ",".join(f"{k} {v}" for k, v in sorted(report.walked.items())))
        else:
            out.write("演示办理:已存在办理中的案件,本次不再推进。")
        for line in report.refused:
            out.write(f"  未能推进 {line}")
        try:  # suggested common-issue topics for the office to review (assessment app)
            call_command("topics_suggest", stdout=self.stdout, stderr=self.stderr)
        except Exception as exc:
            self.stderr.write(f"共性问题分组失败:{exc}")
        for _ in range(3):
            taken = escalation.escalation_sweep()
            if taken:
                out.write("催督办:" + ",".join(f"{k} {v}" for k, v in sorted(taken.items())))
        out.write("")
        out.write("演示账号(密码均为 %s):" % password)
        out.write("  admin                系统管理员(superuser)")
        by_username = {username: (name, roles) for username, name, roles in result.logins}
        showcase = result.showcase or [username for username, _n, _r in result.logins[:6]]
        for username in showcase:
            if username in by_username:
                name, roles = by_username[username]
                out.write(f"  {username:<20} {name} · {roles}")
        out.write(f"后台地址:{settings.SITE_URL}/admin/   邮件输出目录:{getattr(settings, 'EMAIL_FILE_PATH', 'SMTP')}")
