"""Admin of the topic alerts (未诉先办). Imported at the bottom of :mod:`assessment.admin`.

The rule's parameters are edited by superusers only (through :func:`assessment.alerts.alert_rule_set`);
the alerts are read-only records for the office and the leaders.
"""

from django.contrib import admin

from accounts.admin_base import StaffModelAdmin
from assessment import alerts
from assessment.admin_scope import OfficeAdmin
from assessment.models import TopicAlert, TopicAlertRule


def _superuser(request) -> bool:
    return request.user.is_active and request.user.is_superuser


@admin.register(TopicAlertRule)
class TopicAlertRuleAdmin(StaffModelAdmin):
    list_display = ("__str__", "baseline_weeks", "ratio", "min_count", "lookback_weeks", "enabled", "updated_at")

    def has_module_permission(self, request):
        return _superuser(request)

    has_view_permission = has_add_permission = has_change_permission = (
        lambda self, request, obj=None: _superuser(request)
    )

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        alerts.alert_rule_set(acting_user=request.user, rule=obj)


@admin.register(TopicAlert)
class TopicAlertAdmin(OfficeAdmin):
    list_display = ("topic", "week_start", "count", "baseline", "ended_week", "created_at")
    list_filter = (("ended_week", admin.EmptyFieldListFilter),)
    fields = list_display
    readonly_fields = list_display

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
