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


@register()
def check_audit_key(app_configs, **kwargs):
    """The audit chain is keyed with a secret outside the database (issue 9 §2)."""
    key = getattr(settings, "CASEWORK_AUDIT_KEY", "")
    if len(key) < 16:
        return [
            Error(
                "CASEWORK_AUDIT_KEY must be set to a secret of at least 16 characters.",
                hint="Set the CASEWORK_AUDIT_KEY environment variable; keep it outside the database.",
                id="casework.E002",
            )
        ]
    return []
