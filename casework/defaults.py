"""Default configuration rows: role groups, deadline policies, the escalation ladder, beat schedules.

:func:`defaults_ensure` runs after every ``migrate`` (and after a test-database flush) through the
``post_migrate`` signal; it only creates what is missing, so superusers' edits are kept.

Deadline policies (DESIGN.md §4, "published local practice"): 1 working day for the 网评办 to
dispatch a registered message (交办, 快速批办; issue 13 §5); 1 working day to sign for
(签收); 3 working days to reply to a consultation (咨询); 10–15 working days for complaints and
reports (投诉, 举报); help requests (求助) and suggestions (建议) in between. Inside the reply time, the unit's
handling to feedback leaves the 网评办 review and the 分管局领导 sign-off one working day each; the
follow-up call (回访) is due 5 working days after the reply is published.

Escalation ladder (DESIGN.md §4): a reminder to the handler when one working day is left; 催办
to the unit's head and 网评办 with a 督办单 when overdue; the 分管局领导 after 3 more working days;
纪检督察 after 5, or when the unit has 2 督办单 left unanswered for 2 working days. The 交办 clock
has its own two rungs: 交办催办 to the 网评办's head and staff when the day has passed, 交办报局领导
to the leaders one working day later.
"""

from django.db import transaction

from accounts.services import roles_sync
from casework.models import DeadlinePolicy, EscalationRung, PoorHandlingReason, QualityRung

D, H = "days", "hours"

# message type → {clock: (amount, unit)}. Reply = handling + office review + leader review.
DEFAULT_POLICY_LENGTHS: dict[str, dict[str, tuple[int, str]]] = {
    "consult": {"dispatch": (1, D), "sign_for": (1, D), "handling": (1, D), "office_review": (1, D),
                "leader_review": (1, D), "reply": (3, D), "follow_up": (5, D)},
    "help": {"dispatch": (1, D), "sign_for": (1, D), "handling": (3, D), "office_review": (1, D),
             "leader_review": (1, D), "reply": (5, D), "follow_up": (5, D)},
    "suggest": {"dispatch": (1, D), "sign_for": (1, D), "handling": (8, D), "office_review": (1, D),
                "leader_review": (1, D), "reply": (10, D), "follow_up": (5, D)},
    "complain": {"dispatch": (1, D), "sign_for": (1, D), "handling": (13, D), "office_review": (1, D),
                 "leader_review": (1, D), "reply": (15, D), "follow_up": (5, D)},
    "report": {"dispatch": (1, D), "sign_for": (1, D), "handling": (13, D), "office_review": (1, D),
               "leader_review": (1, D), "reply": (15, D), "follow_up": (5, D)},
    "other": {"dispatch": (1, D), "sign_for": (1, D), "handling": (8, D), "office_review": (1, D),
              "leader_review": (1, D), "reply": (10, D), "follow_up": (5, D)},
}
POLICY_SOURCE = "DESIGN.md §4 默认值(签收1个工作日;咨询3个工作日;投诉、举报10–15个工作日)"

# (level, name, clocks, threshold working days, requires, notify flags, opens notice, opens referral,
#  unit open-notice limit)
DEFAULT_LADDER = [
    ("remind", "到期提醒", ["reply"], -1, None,
     {"notify_handlers": True}, False, False, None),
    ("urge", "催办·督办单", ["sign_for", "reply"], 0, None,
     {"notify_handlers": True, "notify_unit_head": True, "notify_comment_office": True},
     True, False, None),
    ("escalate", "报分管局领导", ["sign_for", "reply"], 3, "urge",
     {"notify_leaders": True, "notify_comment_office": True}, False, False, None),
    ("refer", "移交纪检督察", ["sign_for", "reply"], 5, "escalate",
     {"notify_supervisors": True}, False, True, 2),
    # The 网评办's own 交办 clock (快速批办, issue 13 §5): an undispatched message climbs to the
    # office's head, then to the leaders (the office's 分管局领导, else every leader).
    ("office_urge", "交办催办", ["dispatch"], 0, None,
     {"notify_unit_head": True, "notify_comment_office": True}, False, False, None),
    ("office_escalate", "交办报局领导", ["dispatch"], 1, "office_urge",
     {"notify_unit_head": True, "notify_leaders": True}, False, False, None),
]

SWEEP_TASK_NAME = "催督办巡检 escalation sweep"
SWEEP_EVERY_MINUTES = 5
DAILY_SCAN_TASK_NAME = "每日超期巡检 daily overdue scan 09:00"
OUTBOX_FLUSH_TASK_NAME = "邮件补发 outbox flush"
OUTBOX_FLUSH_EVERY_MINUTES = 1
AUDIT_VERIFY_TASK_NAME = "审计链核验 audit chain verification 03:00"
AUDIT_VERIFY_HOUR = 3
DAILY_SCAN_HOUR = 9
TIME_ZONE = "Asia/Shanghai"


def daily_scan_schedule_ensure():
    """Create the daily 09:00 Beijing-time overdue scan (crontab in Asia/Shanghai, field case C10).

    Returns the ``PeriodicTask``. The crontab row carries the Asia/Shanghai time zone explicitly,
    so beat fires at 09:00 Beijing time (01:00 UTC), not 09:00 UTC.
    """
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="0", hour=str(DAILY_SCAN_HOUR), day_of_week="*", day_of_month="*",
        month_of_year="*", timezone=TIME_ZONE,
    )
    task, _ = PeriodicTask.objects.get_or_create(
        name=DAILY_SCAN_TASK_NAME,
        defaults={"task": "casework.escalation_sweep", "crontab": crontab, "enabled": True},
    )
    return task


ROUTER_TRAIN_TASK_NAME = "交办模型训练 dispatch model training (weekly)"
TOPIC_ALERT_TASK_NAME = "未诉先办预警巡检 topic alert scan (daily)"


def learning_schedules_ensure() -> None:
    """Create the beat entries of issue 12 (crontabs in Asia/Shanghai; superusers' edits are kept).

    - the dispatch model is retrained every Sunday at 02:00 (``casework.router_train``);
    - the topic alerts are scanned every day at 08:00 (``assessment.topic_alerts_scan``).
    """
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    for name, task, hour, dow in ((ROUTER_TRAIN_TASK_NAME, "casework.router_train", "2", "0"),
                                  (TOPIC_ALERT_TASK_NAME, "assessment.topic_alerts_scan", "8", "*")):
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute="0", hour=hour, day_of_week=dow, day_of_month="*", month_of_year="*", timezone=TIME_ZONE,
        )
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "crontab": crontab, "enabled": True})


def one_off_schedule_create(*, name: str, task: str, at, kwargs: str = "{}"):
    """Schedule ``task`` once at the aware datetime ``at`` (a clocked schedule; field case C10).

    The time is stored aware, so beat runs it at ``at`` in Beijing time, never eight hours off.
    Returns the ``PeriodicTask``.

    Raises:
        ValueError: when ``at`` is naive.
    """
    from django_celery_beat.models import ClockedSchedule, PeriodicTask

    if at.tzinfo is None:
        raise ValueError("at must be an aware datetime")
    clocked, _ = ClockedSchedule.objects.get_or_create(clocked_time=at)
    return PeriodicTask.objects.create(
        name=name, task=task, clocked=clocked, one_off=True, kwargs=kwargs, enabled=True
    )


def ladder_ensure() -> None:
    """Create the default escalation rungs that are missing (superusers' edits are kept)."""
    rungs = {}
    for level, name, clocks, threshold, requires, flags, notice, referral, limit in DEFAULT_LADDER:
        rung, _ = EscalationRung.objects.get_or_create(
            level=level,
            defaults={
                "name": name, "clocks": clocks, "threshold_days": threshold,
                "requires": rungs.get(requires), "opens_notice": notice,
                "opens_referral": referral, "unit_open_notices_limit": limit, **flags,
            },
        )
        rungs[level] = rung


# Issue 13: the reasons a case or unit is referred for poor handling (办理不力), and the quality rungs.
DEFAULT_POOR_HANDLING_REASONS = ["敷衍塞责", "答复不实", "推诿扯皮", "多次发回重办", "群众不满意"]
# (name, kind, threshold, action, reason name)
DEFAULT_QUALITY_RUNGS = [
    ("同一轮发回修改 3 次", "send_backs", 3, "notice", None),
    ("回访不满意重办 2 次", "reopened_unsatisfied", 2, "propose_referral", "群众不满意"),
    ("回访发现答复不实", "reply_untrue", 1, "propose_referral", "答复不实"),
]


def quality_ensure() -> None:
    """Create the default 办理不力 reasons and quality rungs that are missing (edits are kept)."""
    reasons = {}
    for order, name in enumerate(DEFAULT_POOR_HANDLING_REASONS, start=1):
        reasons[name], _ = PoorHandlingReason.objects.get_or_create(name=name, defaults={"order": order})
    for name, kind, threshold, action, reason in DEFAULT_QUALITY_RUNGS:
        QualityRung.objects.get_or_create(name=name, defaults={
            "kind": kind, "threshold": threshold, "action": action, "reason": reasons.get(reason)})


@transaction.atomic
def defaults_ensure() -> None:
    """Create the role groups, deadline policies, escalation ladder and beat schedules.

    Idempotent. Existing deadline policies, rungs and schedules are left as superusers edited
    them; role groups are reset to the permissions of :data:`accounts.roles.ROLE_PERMISSIONS`.

    Raises:
        django.contrib.auth.models.Permission.DoesNotExist: when run before the permissions exist.
    """
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    roles_sync()
    existing = set(
        DeadlinePolicy.objects.filter(platform__isnull=True).values_list("message_type", "clock")
    )
    DeadlinePolicy.objects.bulk_create(
        [
            DeadlinePolicy(message_type=mt, clock=clock, amount=amount, unit=unit, source=POLICY_SOURCE)
            for mt, clocks in DEFAULT_POLICY_LENGTHS.items()
            for clock, (amount, unit) in clocks.items()
            if (mt, clock) not in existing
        ]
    )
    ladder_ensure()
    quality_ensure()
    every, _ = IntervalSchedule.objects.get_or_create(
        every=SWEEP_EVERY_MINUTES, period=IntervalSchedule.MINUTES
    )
    PeriodicTask.objects.get_or_create(
        name=SWEEP_TASK_NAME,
        defaults={"task": "casework.escalation_sweep", "interval": every, "enabled": True},
    )
    daily_scan_schedule_ensure()
    outbox_and_audit_schedules_ensure()
    learning_schedules_ensure()
    assessment_schedules_ensure()
    tracking_schedule_ensure()


RECTIFICATION_TASK_NAME = "跟踪督办提醒 rectification reminders"
RECTIFICATION_EVERY_MINUTES = 30


def tracking_schedule_ensure() -> None:
    """Create the 跟踪督办 reminder run (``casework.rectification_reminders``, every 30 minutes).

    Idempotent; a schedule a superuser edited is left alone (issue 13 §4).
    """
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every, _ = IntervalSchedule.objects.get_or_create(
        every=RECTIFICATION_EVERY_MINUTES, period=IntervalSchedule.MINUTES
    )
    PeriodicTask.objects.get_or_create(
        name=RECTIFICATION_TASK_NAME,
        defaults={"task": "casework.rectification_reminders", "interval": every, "enabled": True},
    )


ASSESSMENT_REFRESH_TASK_NAME = "考核数据更新 assessment figures refresh"
ASSESSMENT_REFRESH_EVERY_MINUTES = 10


def assessment_schedules_ensure() -> None:
    """Create the refresh of the kept assessment figures every 10 minutes (``assessment.figures_refresh``).

    Issue 11 §5: the report a leader opens reads figures computed in the background
    (:mod:`assessment.figures_store`). Idempotent; a schedule a superuser edited is left alone.
    """
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every, _ = IntervalSchedule.objects.get_or_create(
        every=ASSESSMENT_REFRESH_EVERY_MINUTES, period=IntervalSchedule.MINUTES
    )
    PeriodicTask.objects.get_or_create(
        name=ASSESSMENT_REFRESH_TASK_NAME,
        defaults={"task": "assessment.figures_refresh", "interval": every, "enabled": True},
    )


def outbox_and_audit_schedules_ensure() -> None:
    """Create the outbox flush (every minute) and the daily 03:00 Beijing-time audit chain check.

    Idempotent; schedules a superuser edited are left alone.
    """
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    every, _ = IntervalSchedule.objects.get_or_create(
        every=OUTBOX_FLUSH_EVERY_MINUTES, period=IntervalSchedule.MINUTES
    )
    PeriodicTask.objects.get_or_create(
        name=OUTBOX_FLUSH_TASK_NAME,
        defaults={"task": "casework.notification_flush", "interval": every, "enabled": True},
    )
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="0", hour=str(AUDIT_VERIFY_HOUR), day_of_week="*", day_of_month="*",
        month_of_year="*", timezone=TIME_ZONE,
    )
    PeriodicTask.objects.get_or_create(
        name=AUDIT_VERIFY_TASK_NAME,
        defaults={"task": "casework.audit_verify", "crontab": crontab, "enabled": True},
    )


def defaults_on_post_migrate(sender, using="default", **kwargs) -> None:
    """``post_migrate`` receiver for the casework app: run :func:`defaults_ensure`."""
    if using != "default":
        return
    defaults_ensure()
