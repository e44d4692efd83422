"""``manage.py calendar_seed``: fill the work calendar from the ``chinese_calendar`` library.

Each imported year is marked confirmed (``CalendarYear``): the library transcribes the State
Council's published schedule. Years the library does not know are never guessed.
"""

from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from casework.models import CalendarYear, WorkCalendarDay

DEFAULT_FIRST_YEAR = 2018

# chinese_calendar.Holiday values → the names used on the State Council's published schedule.
HOLIDAY_NAMES = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "中国人民抗日战争暨世界反法西斯战争胜利70周年纪念日",
}


def supported_years() -> tuple[int, int]:
    """Return the first and last year the installed ``chinese_calendar`` has data for."""
    import chinese_calendar

    years = [d.year for d in chinese_calendar.holidays]
    return min(years), max(years)


def library_source() -> str:
    """Return the name and version of the calendar library, for ``CalendarYear.source``."""
    from importlib.metadata import version

    return f"chinese_calendar {version('chinese-calendar')}(国务院办公厅节假日安排)"


def year_exceptions(year: int) -> list[tuple[date, bool, str]]:
    """Return the exceptions to the Monday–Friday week of ``year``: (date, is_workday, note).

    Weekday holidays carry the holiday's Chinese name; weekend make-up working days carry
    "调休上班(<holiday>)". Weekend days inside a holiday are rest days anyway and are not listed.

    Raises:
        NotImplementedError: from ``chinese_calendar`` when ``year`` is outside its data.
    """
    import chinese_calendar

    rows = []
    day = date(year, 1, 1)
    while day.year == year:
        is_workday = chinese_calendar.is_workday(day)
        weekday_workday = day.weekday() < 5
        if is_workday != weekday_workday:
            _on_holiday, name = chinese_calendar.get_holiday_detail(day)
            label = HOLIDAY_NAMES.get(name, name or "")
            if is_workday:
                note = _("调休上班(%(name)s)") % {"name": label} if label else _("调休上班")
            else:
                note = label or _("休息日")
            rows.append((day, is_workday, note))
        day += timedelta(days=1)
    return rows


class Command(BaseCommand):
    help = _(
        "从 chinese_calendar 库写入工作日历的例外日期(工作日放假、周末调休上班)。"
        "可重复执行;超出库数据范围的年份会给出警告。"
    )

    def add_arguments(self, parser):
        parser.add_argument("--from-year", type=int, default=DEFAULT_FIRST_YEAR)
        parser.add_argument(
            "--to-year", type=int, default=None, help=_("默认为 chinese_calendar 已知的最后一年")
        )

    def handle(self, *args, from_year: int, to_year: int | None, verbosity: int = 1, **options):
        """Write the calendar rows of ``from_year``..``to_year`` (update_or_create, so idempotent).

        Years outside the library's data are skipped with a warning naming them; no row is
        invented for them. Without ``--to-year`` the range ends at the library's last year, and
        next year is warned about when the library does not cover it yet.

        Raises:
            CommandError: when the range is empty or no year of it is supported.
        """
        lib_first, lib_last = supported_years()
        if to_year is None:
            # Write up to the library's last year, but still warn when next year (which deadlines
            # set in December run into) is beyond it.
            to_year = max(lib_last, timezone.localdate().year + 1)
        if to_year < from_year:
            raise CommandError(_("--to-year 不能早于 --from-year。"))
        wanted = range(from_year, to_year + 1)
        years = [y for y in wanted if lib_first <= y <= lib_last]
        skipped = [y for y in wanted if y not in years]
        created = updated = 0
        with transaction.atomic():
            for year in years:
                for day, is_workday, note in year_exceptions(year):
                    _row, was_created = WorkCalendarDay.objects.update_or_create(
                        date=day, defaults={"is_workday": is_workday, "note": note}
                    )
                    created += was_created
                    updated += not was_created
                CalendarYear.objects.update_or_create(
                    year=year,
                    defaults={"confirmed": True, "source": library_source()},
                )
        if years:
            self.stdout.write(
                self.style.SUCCESS(
                    _("工作日历 %(first)s–%(last)s 年:新增 %(created)s 条,更新 %(updated)s 条。")
                    % {"first": years[0], "last": years[-1], "created": created, "updated": updated}
                )
            )
        if skipped:
            self.stderr.write(
                self.style.WARNING(
                    _(
                        "警告:chinese_calendar 只有 %(lib_first)s–%(lib_last)s 年的数据,"
                        "以下年份未写入:%(years)s。这些年份的节假日和调休未知,"
                        "请在管理后台按国务院公布的安排手工录入。"
                    )
                    % {
                        "lib_first": lib_first,
                        "lib_last": lib_last,
                        "years": "、".join(str(y) for y in skipped),
                    }
                )
            )
        if not years:
            raise CommandError(_("所选年份均不在 chinese_calendar 的数据范围内。"))
