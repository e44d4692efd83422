"""System checks for casework configuration (ids ``casework.E001`` …)."""

from django.conf import settings
from django.core.checks import Error, register


@register()
def check_time_zone(app_configs, **kwargs):
    """Deadlines and "today" are defined in Asia/Shanghai with aware datetimes (DESIGN.md §4)."""
    errors = []
    if settings.TIME_ZONE != "Asia/Shanghai" or not settings.USE_TZ:
        errors.append(
            Error(
                "TIME_ZONE must be 'Asia/Shanghai' and USE_TZ must be True.",
                hint="Deadlines, 'today' and 'overdue' are computed in Beijing time.",
                id="casework.E001",
            )
        )
    return errors
