"""Regroup the registered messages into suggested topics (confirmed topics are kept)."""

from django.core.management.base import BaseCommand

from assessment.services import topics_suggest


class Command(BaseCommand):
    help = "将已登记的留言重新聚类为建议主题(已确认或不成立的主题保留不动)。"

    def add_arguments(self, parser):
        parser.add_argument("--threshold", type=float, default=0.35)

    def handle(self, *args, **opts):
        topics = topics_suggest(threshold=opts["threshold"])
        self.stdout.write(f"建议主题 {len(topics)} 个")
        for topic in topics[:10]:
            self.stdout.write(f"  热度 {topic.heat:6.1f} | {topic.message_count} 条 | {topic.title}")
