"""``manage.py replay_deadlines [FILE]``: replay real messages through the calendar and the ladder.

Reads a platform export with submission and official reply times (default: the bundled
``casework/data/messages/fj4_with_replies.csv.gz``), and for each message, without writing
anything: infers its type as the importer does, starts its reply clock at the submission time with
the current deadline policy, computes the deadline on the work calendar, and asks which ladder
rungs of the reply clock the sweep would have taken before the reply was published. Prints how
many messages reached each level and the distribution of working days from submission to reply.

Assumptions, printed with the figures: the reply clock starts at submission (the file has no
dispatch time, so the figures measure the whole bureau, 网评办 included, against the policy);
the sweep runs continuously; the unit-督办单 referral trigger is not replayed (the file names no
units).

Calendar: the stored calendar for the years it confirms; every other year the installed
``chinese_calendar`` knows (2004 onwards) is loaded in memory from the library — never written.
``--unit CODE`` replays the messages as that unit's: its own calendar exceptions
(``UnitCalendarDay``) win over the bureau's, for the deadlines, the ladder and the working days,
as they do for that unit's live cases.
"""

from bisect import bisect_left
from collections import Counter
import csv
from datetime import datetime, timedelta
import gzip
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from accounts.models import Unit
from casework import calendar, escalation
from casework.clocks import deadline_policies
from casework.importing import message_type_infer
from casework.management.commands.calendar_seed import supported_years, year_exceptions
from casework.models import Clock, UnitCalendarDay

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEFAULT_FILE = Path(settings.BASE_DIR) / "casework" / "data" / "messages" / "fj4_with_replies.csv.gz"
BUCKETS = [(0, 1), (2, 3), (4, 5), (6, 10), (11, 15), (16, 20), (21, 30), (31, 60), (61, 120),
           (121, None)]
PERCENTILES = [10, 25, 50, 75, 90, 95, 99]


def replay_calendar(years: range) -> tuple[calendar.WorkCalendar, list[int]]:
    """Return the calendar for the replay and the years taken from the library in memory.

    The stored calendar wins for the years it has confirmed; other years covered by the installed
    ``chinese_calendar`` are added in memory, marked confirmed (the library transcribes the
    official schedule). Nothing is written.
    """
    cal = calendar.work_calendar()
    lib_first, lib_last = supported_years()
    added = []
    for year in years:
        if year in cal.confirmed_years or not (lib_first <= year <= lib_last):
            continue
        for day, is_workday, _note in year_exceptions(year):
            cal.exceptions[day] = is_workday
        added.append(year)
    cal.confirmed_years = frozenset(cal.confirmed_years | set(added))
    return cal, added


def _parse(value: str) -> datetime | None:
    value = (value or "").strip()
    if not value:
        return None
    moment = datetime.fromisoformat(value.replace(" ", "T"))
    return moment if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)


def _percentile(sorted_values: list[int], p: float) -> int:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return 0
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


class Command(BaseCommand):
    help = _("用真实留言的提交与答复时间回放工作日历、办理时限和催督办阶梯(不改动任何案件)。")

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", default=str(DEFAULT_FILE))
        parser.add_argument("--unit", default="", help=_("按该单位(单位代码)的工作日历回放。"))

    def handle(self, *args, file: str, unit: str = "", **options):
        """Replay ``file`` and print the ladder counts and the working-days distribution.

        Args:
            file: a CSV (optionally gzipped) with ``submitted_at`` and ``replied_at``.
            unit: a unit code: count on that unit's calendar (its own exceptions included).

        Raises:
            CommandError: when the file is missing or has no usable rows, or the unit is unknown.
        """
        own_days = {}
        if unit:
            found = Unit.objects.filter(code=unit).first()
            if found is None:
                raise CommandError(_("找不到单位:%s") % unit)
            own_days = dict(UnitCalendarDay.objects.filter(unit=found).values_list("date", "is_workday"))
        path = Path(file)
        if not path.exists():
            raise CommandError(_("找不到文件:%s") % path)
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.DictReader(fh))
        pairs = []
        skipped = 0
        for row in rows:
            submitted, replied = _parse(row.get("submitted_at")), _parse(row.get("replied_at"))
            if submitted is None or replied is None or replied < submitted:
                skipped += 1
                continue
            pairs.append((row, submitted, replied))
        if not pairs:
            raise CommandError(_("文件中没有同时含留言时间和答复时间的有效行。"))
        first = min(s for _r, s, _p in pairs).year
        last = max(p for _r, _s, p in pairs).year + 1
        cal, from_library = replay_calendar(range(first, last + 1))
        cal.exceptions.update(own_days)  # the unit's own days win, as in calendar.work_calendar(unit=)
        rungs = [r for r in escalation.ladder_rungs() if Clock.REPLY in r.clocks]
        policy_cache: dict[str, tuple[int, str]] = {}
        reached: Counter = Counter()
        by_type: Counter = Counter()
        days_to_reply: list[int] = []
        unconfirmed = Counter()
        on_time = 0
        for row, submitted, replied in pairs:
            mtype = message_type_infer(subject=row.get("subject", ""), body=row.get("body", ""))
            by_type[mtype] += 1
            if mtype not in policy_cache:
                policy_cache[mtype] = deadline_policies(message_type=mtype, platform_id=None)[Clock.REPLY]
            amount, unit = policy_cache[mtype]
            deadline = cal.deadline(start=submitted, amount=amount, unit=unit)
            for year in deadline.unconfirmed_years:
                unconfirmed[year] += 1
            due = deadline.due_at
            days_to_reply.append(cal.working_days_between(submitted, replied))
            on_time += replied <= due
            last_sweep = replied - timedelta(seconds=1)
            taken = set()
            for rung in sorted(rungs, key=lambda r: r.threshold_days):
                if rung.requires_id and rung.requires.level not in taken:
                    continue
                if rung.threshold_days >= 0:
                    hit = due <= cal.subtract_working_days(last_sweep, rung.threshold_days)
                else:
                    # Reminder window: some sweep moment t with t < due <= t + k working days,
                    # after the clock started and before the reply.
                    window_opens = max(submitted, cal.subtract_working_days(due, -rung.threshold_days))
                    hit = window_opens < min(due, replied)
                if hit:
                    taken.add(rung.level)
                    reached[rung.level] += 1
        days_to_reply.sort()
        self._print(len(rows), len(pairs), skipped, from_library, unconfirmed, by_type,
                    policy_cache, rungs, reached, on_time, days_to_reply)

    def _print(self, total, n, skipped, from_library, unconfirmed, by_type, policies, rungs,
               reached, on_time, days):
        out = self.stdout.write
        out(_("回放 %(n)s 条留言(文件共 %(total)s 行,跳过 %(skipped)s 行缺少时间的)。")
            % {"n": n, "total": total, "skipped": skipped})
        out(_("假设:留言提交即交办,答复时限从提交时起算;巡检持续运行;不回放“单位督办单过多”触发的移交。"))
        if from_library:
            out(_("工作日历:%(years)s 年取自 chinese_calendar(仅在内存中,未写入数据库)。")
                % {"years": f"{from_library[0]}–{from_library[-1]}"})
        if unconfirmed:
            out(self.style.WARNING(_("警告:部分期限涉及未确认日历的年份:%s")
                                   % ", ".join(f"{y}({c})" for y, c in sorted(unconfirmed.items()))))
        out(_("留言类型(按导入规则推断)及答复时限:"))
        for mtype, count in by_type.most_common():
            amount, unit = policies[mtype]
            out(f"  {mtype:10s} {count:6d}  {amount} {'工作日' if unit == 'days' else '工作小时'}")
        out(_("按时答复:%(k)s 条(%(p).1f%%)") % {"k": on_time, "p": 100 * on_time / n})
        out(_("达到各级催督办的留言数:"))
        for rung in sorted(rungs, key=lambda r: r.threshold_days):
            count = reached.get(rung.level, 0)
            out(f"  {rung.name}({rung.level}, {rung.threshold_days:+d}): {count:6d}  "
                f"({100 * count / n:.1f}%)")
        out(_("提交到答复的工作日数分位数:"))
        out("  " + "  ".join(f"P{p}={_percentile(days, p)}" for p in PERCENTILES)
            + f"  max={days[-1]}")
        out(_("工作日数分布:"))
        for lo, hi in BUCKETS:
            start = bisect_left(days, lo)
            end = len(days) if hi is None else bisect_left(days, hi + 1)
            count = end - start
            label = f"{lo}+" if hi is None else f"{lo}–{hi}"
            bar = "#" * round(60 * count / n)
            out(f"  {label:>7s} {count:6d} {100 * count / n:5.1f}% {bar}")
