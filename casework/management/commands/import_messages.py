"""``manage.py import_messages FILE``: import a platform's export of citizen messages.

Reads CSV (UTF-8, with or without BOM), gzipped CSV or XLSX with the columns described in
``casework/data/messages/README.md``, registers a case for every good row and reports every bad
row with its spreadsheet row number and reason. Re-running it on the same file creates nothing.
Progress lines (rows done, rate, time left) go to stderr; the summary and the bad rows to stdout.
The exit status is non-zero only when the file cannot be read at all or is over an import limit
(``CASEWORK_IMPORT_MAX_*``). Memory stays flat in the number of rows: the report is kept in the
database as an import job (admin → 导入任务), and the bad rows are printed from there.
"""

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from casework.importing import (
    DEFAULT_PLATFORM_CODE,
    DEFAULT_PLATFORM_NAME,
    ImportFileError,
    ImportJobRow,
    messages_import,
    platform_ensure,
)


def format_seconds(seconds: float | None) -> str:
    """Return a duration as 时:分:秒 (or 分:秒), or "?" when unknown."""
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Command(BaseCommand):
    help = _("导入留言平台导出的 CSV / CSV.gz / xlsx 文件;按(平台, 留言编号)去重,逐行报告错误。")

    def add_arguments(self, parser):
        parser.add_argument("file", help=_("要导入的文件路径(.csv、.csv.gz 或 .xlsx)"))
        parser.add_argument(
            "--platform", default=DEFAULT_PLATFORM_CODE, help=_("平台代码,不存在时创建(默认 %(default)s)")
        )
        parser.add_argument(
            "--platform-name", default=DEFAULT_PLATFORM_NAME, help=_("新建平台时使用的名称(默认 %(default)s)")
        )
        parser.add_argument("--limit", type=int, default=None, help=_("只导入前 N 行数据"))
        parser.add_argument(
            "--progress-every", type=int, default=100, help=_("每处理多少行输出一次进度(默认 %(default)s)")
        )

    def handle(self, *args, **options):
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError(_("--limit 必须是正整数。"))
        try:
            platform = platform_ensure(code=options["platform"], name=options["platform_name"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

        def progress(done: int, total: int | None, rate: float, eta: float | None) -> None:
            of = f"{done}/{total}" if total is not None else str(done)
            self.stderr.write(
                _("已处理 %(of)s 行 · %(rate).1f 行/秒 · 预计剩余 %(eta)s")
                % {"of": of, "rate": rate, "eta": format_seconds(eta)}
            )

        try:
            report = messages_import(
                rows_source=options["file"],
                platform=platform,
                progress=progress,
                progress_every=options["progress_every"],
                limit=options["limit"],
            )
        except ImportFileError as exc:
            raise CommandError(
                _("无法读取 %(file)s:%(error)s") % {"file": options["file"], "error": exc}
            ) from exc

        self.stdout.write(
            _(
                "导入完成(平台:%(platform)s,用时 %(time)s):新建 %(created)d 件,跳过 %(skipped)d 件(已导入过),"
                "错误 %(errors)d 行。"
            )
            % {
                "platform": platform.name,
                "time": format_seconds(report.seconds),
                "created": report.created,
                "skipped": report.skipped,
                "errors": report.error_count,
            }
        )
        errors = (
            report.job.rows.filter(outcome=ImportJobRow.Outcome.ERROR)
            .order_by("row_number")
            .values_list("row_number", "reason")
        )
        for row_number, reason in errors.iterator(chunk_size=2000):
            self.stdout.write(_("第 %(row)d 行:%(reason)s") % {"row": row_number, "reason": reason})
