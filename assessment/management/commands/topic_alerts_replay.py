"""``manage.py topic_alerts_replay [FILE]``: replay the 未诉先办 rule over a message file (writes nothing).

Groups the messages into topics as the topic suggestion does (:func:`assessment.topics.topics_group`,
default: the bundled ``fj3_with_votes``), counts each topic's messages per Monday week from the
file's first week to its last, and applies :func:`assessment.alerts.rises` with the rule's
parameters (defaults of ``TopicAlertRule``, or ``--baseline-weeks``, ``--ratio``, ``--min-count``).
Prints every week and topic that would have alerted.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from assessment.alerts import rises, weekly_series
from assessment.management.commands.topics_report import DEFAULT_FILE, messages_read
from assessment.models import TopicAlertRule
from assessment.topics import topics_group


class Command(BaseCommand):
    help = "按未诉先办规则回放留言文件,列出会发出预警的周与主题(不写数据库)。"

    def add_arguments(self, parser):
        rule = TopicAlertRule()
        parser.add_argument("file", nargs="?", default=str(DEFAULT_FILE))
        parser.add_argument("--baseline-weeks", type=int, default=rule.baseline_weeks)
        parser.add_argument("--ratio", type=float, default=rule.ratio)
        parser.add_argument("--min-count", type=int, default=rule.min_count)
        parser.add_argument("--threshold", type=float, default=0.35, help="topic grouping similarity")

    def handle(self, *args, file, baseline_weeks, ratio, min_count, threshold, **options):
        path = Path(file)
        if not path.exists():
            raise CommandError(f"文件不存在:{path}")
        messages = [m for m in messages_read(path) if m.submitted_at is not None]
        if not messages:
            raise CommandError("文件中没有带时间的留言")
        first = min(m.submitted_at for m in messages).date()
        last = max(m.submitted_at for m in messages).date()
        groups = topics_group(messages, threshold=threshold)
        found = []
        for g in groups:
            weeks, counts = weekly_series([m.submitted_at.date() for m in g.members], first=first, last=last)
            for r in rises(counts, baseline_weeks=baseline_weeks, ratio=ratio, min_count=min_count):
                end = weeks[r.end].isoformat() if r.end is not None else "—"
                found.append((weeks[r.start], g, r, end))
        found.sort(key=lambda x: (x[0], -x[2].count))
        self.stdout.write(f"{len(messages)} messages, {len(groups)} topics, weeks {first} – {last}; rule: "
                          f"count ≥ {min_count} and ≥ {ratio} × max(mean of previous {baseline_weeks} weeks, 1)")
        self.stdout.write(f"alerts: {len(found)}")
        self.stdout.write("week (Mon) | count | baseline | rise ended | topic size | topic")
        for week, g, r, end in found:
            self.stdout.write(f"{week} | {r.count} | {r.baseline:.2f} | {end} | {g.size} | {g.title[:60]}")
