"""Default configuration rows the product needs to run: role groups, deadline policies, beat schedule.

:func:`defaults_ensure` runs after every ``migrate`` (and after a test-database flush) through the
``post_migrate`` signal; it only creates what is missing, so superusers' edits are kept.
"""

from django.db import transaction

# Source of the lengths: DESIGN.md §4 (1 working day to sign for; 3 for a consultation; 10–15 for
# complaints and reports). Editable in the admin afterwards.
DEFAULT_POLICIES = [
    ("consult", 1, 3),
    ("help", 1, 5),
    ("suggest", 1, 10),
    ("complain", 1, 15),
    ("report", 1, 15),
    ("other", 1, 10),
]
SWEEP_TASK_NAME = "催督办巡检 escalation sweep"
SWEEP_EVERY_MINUTES = 5


@transaction.atomic
def defaults_ensure() -> None:
    """Create the role groups (with their permissions), deadline policies and escalation schedule.

    Idempotent. Existing deadline policies and schedules are left as superusers edited them; role
    groups are reset to the permissions of :data:`accounts.roles.ROLE_PERMISSIONS`.

    Raises:
        django.contrib.auth.models.Permission.DoesNotExist: when run before the permissions exist.
    """
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from accounts.services import roles_sync
    from casework.models import DeadlinePolicy

    roles_sync()
    for message_type, sign_for, reply in DEFAULT_POLICIES:
        DeadlinePolicy.objects.get_or_create(
            message_type=message_type, defaults={"sign_for_days": sign_for, "reply_days": reply}
        )
    every, _ = IntervalSchedule.objects.get_or_create(
        every=SWEEP_EVERY_MINUTES, period=IntervalSchedule.MINUTES
    )
    PeriodicTask.objects.get_or_create(
        name=SWEEP_TASK_NAME,
        defaults={"task": "casework.escalation_sweep", "interval": every, "enabled": True},
    )


def defaults_on_post_migrate(sender, using="default", **kwargs) -> None:
    """``post_migrate`` receiver for the casework app: run :func:`defaults_ensure`."""
    if using != "default":
        return
    defaults_ensure()
