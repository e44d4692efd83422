"""Topic alerts (未诉先办): a topic's weekly volume rising well above its own baseline.

The rule (parameters in :class:`~assessment.models.TopicAlertRule`, editable by superusers):

- Weeks run Monday–Sunday, Beijing time. A topic's series counts its messages per week from the
  first week of the archive to the current week (weeks without messages count 0), so a topic that
  appears suddenly has a baseline of zero.
- The **baseline** of week *t* is the mean count of the ``baseline_weeks`` weeks before *t*; the
  archive's first ``baseline_weeks`` weeks only build the baseline (no alert).
- Week *t* **starts a rise** when no rise is running, its count ≥ ``min_count`` and its count ≥
  ``ratio`` × max(baseline, 1).
- The rise **runs** while the weekly count stays ≥ max(``min_count``, ``ratio`` × max(baseline at
  the start, 1)); the first week below ends it. A new rise (a new alert) needs the start
  condition again after that.
- Each rise alerts **once**: one ``TopicAlert`` row (unique per topic and start week), one e-mail
  through the outbox to the 网评办 and the 分管局领导, and the dashboard marks the topic while the
  rise runs. The daily scan alerts only rises that started within ``lookback_weeks``, so enabling
  the rule on an old archive does not send a burst of stale alerts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import roles
from accounts.models import User
from accounts.selectors import comment_office_emails, role_emails
from assessment.models import Topic, TopicAlert, TopicAlertRule
from casework.calendar import SHANGHAI
from casework.models import Case
from casework.services import notification_queue


@dataclass(frozen=True)
class Rise:
    """One rise in a weekly series: start index, its count and baseline, end index (None: running)."""

    start: int
    count: int
    baseline: float
    end: int | None


def rises(counts: list[int], *, baseline_weeks: int = 8, ratio: float = 3.0, min_count: int = 5) -> list[Rise]:
    """Apply the rule (module docstring) to weekly ``counts``, oldest first; return the rises found."""
    found: list[Rise] = []
    running: tuple[int, int, float, float] | None = None  # start, count, baseline, level to stay above
    for t, c in enumerate(counts):
        if running is not None:
            if c >= running[3]:
                continue
            found.append(Rise(running[0], running[1], running[2], t))
            running = None
        if t < baseline_weeks:  # the archive's first weeks only build the baseline
            continue
        baseline = sum(counts[t - baseline_weeks:t]) / baseline_weeks
        level = ratio * max(baseline, 1.0)
        if c >= min_count and c >= level:
            running = (t, c, baseline, max(min_count, level))
    if running is not None:
        found.append(Rise(running[0], running[1], running[2], None))
    return found


def week_start(d: date) -> date:
    """The Monday of ``d``'s week."""
    return d - timedelta(days=d.weekday())


def weekly_series(dates: list[date], *, first: date, last: date) -> tuple[list[date], list[int]]:
    """Count ``dates`` per Monday week from ``first``'s week to ``last``'s week (zeros included)."""
    counts: dict[date, int] = defaultdict(int)
    for d in dates:
        counts[week_start(d)] += 1
    weeks, day, end = [], week_start(first), week_start(last)
    while day <= end:
        weeks.append(day)
        day += timedelta(days=7)
    return weeks, [counts.get(w, 0) for w in weeks]


def alert_rule_current() -> TopicAlertRule:
    """Return the rule in force (the newest row; the defaults when none was saved)."""
    return TopicAlertRule.objects.order_by("-updated_at", "-id").first() or TopicAlertRule()


@transaction.atomic
def alert_rule_set(*, acting_user: User, rule: TopicAlertRule) -> TopicAlertRule:
    """Save ``rule`` (the superuser's edit of the parameters), validated.

    Raises:
        PermissionDenied: ``acting_user`` is not an active superuser.
        ValidationError: a parameter is out of range (e.g. ratio below 1).
    """
    if not (acting_user.is_active and acting_user.is_superuser):
        raise PermissionDenied(_("只有系统管理员可以修改预警规则。"))
    rule.full_clean()
    rule.save()
    return rule


def _alert_recipients() -> list[str]:
    return sorted(set(comment_office_emails()) | set(role_emails(role=roles.LEADER)))


@transaction.atomic
def topic_alerts_scan(*, now: datetime | None = None) -> list[TopicAlert]:
    """Raise the alerts due at ``now`` (default: now) over every topic not dismissed; idempotent.

    Args:
        now: aware datetime; the current week is the Beijing week containing it.

    Returns:
        the alerts created by this call (a running rise already alerted creates nothing; ended
        rises get their ``ended_week`` set). Each new alert queues one e-mail (outbox key
        ``topic-alert:<id>``) to the 网评办 and the leaders, sent after commit.
    """
    rule = alert_rule_current()
    if not rule.enabled:
        return []
    now = now or timezone.now()
    today = timezone.localtime(now, SHANGHAI).date()
    first_at = Case.objects.order_by("submitted_at").values_list("submitted_at", flat=True).first()
    if first_at is None:
        return []
    first = timezone.localtime(first_at, SHANGHAI).date()
    by_topic: dict[int, list[date]] = defaultdict(list)
    for topic_id, at in (Case.objects.filter(topic_membership__isnull=False, submitted_at__lte=now)
                         .exclude(topic_membership__topic__status=Topic.Status.DISMISSED)
                         .values_list("topic_membership__topic_id", "submitted_at")):
        by_topic[topic_id].append(timezone.localtime(at, SHANGHAI).date())
    oldest_new = week_start(today) - timedelta(days=7 * (rule.lookback_weeks - 1))
    created = []
    topics = Topic.objects.in_bulk(list(by_topic))
    for topic_id, dates in by_topic.items():
        weeks, counts = weekly_series(dates, first=first, last=today)
        for r in rises(counts, baseline_weeks=rule.baseline_weeks, ratio=rule.ratio, min_count=rule.min_count):
            start = weeks[r.start]
            ended = weeks[r.end] if r.end is not None else None
            existing = TopicAlert.objects.filter(topic_id=topic_id, week_start=start).first()
            if existing is not None:
                if existing.ended_week != ended:
                    existing.ended_week = ended
                    existing.save(update_fields=["ended_week"])
                continue
            if start < oldest_new:
                continue
            alert = TopicAlert.objects.create(topic_id=topic_id, week_start=start, count=r.count,
                                              baseline=round(r.baseline, 2), ended_week=ended)
            topic = topics[topic_id]
            notification_queue(
                key=f"topic-alert:{alert.pk}",
                recipients=_alert_recipients(),
                subject=_("【未诉先办预警】主题「%(t)s」留言量上升") % {"t": topic.title[:80]},
                body="\n".join([
                    _("主题:%s") % topic.title,
                    _("自 %(w)s 这一周起留言 %(c)d 条,前 %(n)d 周周均 %(b).1f 条。")
                    % {"w": start.isoformat(), "c": r.count, "n": rule.baseline_weeks, "b": r.baseline},
                    _("请网评办研判,必要时提前部署办理(未诉先办)。"),
                ]),
            )
            created.append(alert)
    return created


def topics_alerting(*, now: datetime | None = None) -> dict[int, TopicAlert]:
    """Return the running alerts (rise not ended) by topic id, for the dashboard's mark."""
    return {a.topic_id: a for a in TopicAlert.objects.filter(ended_week__isnull=True).order_by("week_start")}
