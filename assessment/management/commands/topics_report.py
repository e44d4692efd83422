"""Group messages from a CSV file into topics and print the hottest ones (no import needed)."""

import csv
from datetime import datetime
import gzip
from pathlib import Path
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from assessment.topics import Message, topics_group

DEFAULT_FILE = Path(settings.BASE_DIR) / "casework" / "data" / "messages" / "fj3_with_votes.csv.gz"


def messages_read(path: Path) -> list[Message]:
    """Read messages from a platform CSV (optionally gzipped) with the columns of casework/data/messages."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
        out = []
        for row in csv.DictReader(fh):
            at = row.get("submitted_at") or ""
            out.append(Message(
                id=row.get("message_id") or len(out) + 1,
                subject=row.get("subject") or "",
                body=row.get("body") or "",
                submitted_at=datetime.fromisoformat(at) if at else None,
                citizen=row.get("user_id") or "",
                likes=int(row.get("likes") or 0),
                dislikes=int(row.get("dislikes") or 0),
            ))
    return out


class Command(BaseCommand):
    help = "对留言文件做主题聚类并计算热度指数,输出热度前 N 的主题(无需导入)。"

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", default=str(DEFAULT_FILE),
                            help="CSV 或 CSV.gz(默认 casework/data/messages/fj3_with_votes.csv.gz)")
        parser.add_argument("--top", type=int, default=10)
        parser.add_argument("--examples", type=int, default=3)
        parser.add_argument("--threshold", type=float, default=0.35)

    def handle(self, *args, **opts):
        path = Path(opts["file"])
        if not path.exists():
            raise CommandError(f"文件不存在:{path}")
        messages = messages_read(path)
        started = time.perf_counter()
        groups = topics_group(messages, threshold=opts["threshold"])
        elapsed = time.perf_counter() - started
        self.stdout.write(f"{len(messages)} 条留言,{len(groups)} 个主题(≥2 条),用时 {elapsed:.1f} 秒")
        for rank, g in enumerate(groups[: opts["top"]], start=1):
            likes = sum(m.likes for m in g.members)
            self.stdout.write(
                f"{rank:>2}. 热度 {g.heat:6.1f} | {g.size} 条 · {g.citizens} 位网民 · 点赞 {likes} | "
                f"关键词:{' '.join(g.keywords)}"
            )
            seen = []
            for m in sorted(g.members, key=lambda m: -m.likes):
                if m.subject not in seen:
                    seen.append(m.subject)
                if len(seen) >= opts["examples"]:
                    break
            for subject in seen:
                self.stdout.write(f"      · {subject}")
