"""Admin of issue 13's configuration and records: 办理不力事由, 质量触发规则, 质量触发记录.

Reasons and rungs are superuser configuration (rungs are deactivated, never deleted, as the clock
rungs); the quality steps are records read by the 网评办 and the 分管局领导 within their scope
(decided on the case page, never edited here).
"""

from django.contrib import admin

from casework.admin_common import ScopedCaseChildAdmin, SuperuserConfigAdmin
from casework.models import PoorHandlingReason, QualityRung, QualityStep


@admin.register(PoorHandlingReason)
class PoorHandlingReasonAdmin(SuperuserConfigAdmin):
    list_display = ["name", "description", "order", "is_active"]
    list_filter = ["is_active"]


@admin.register(QualityRung)
class QualityRungAdmin(SuperuserConfigAdmin):
    list_display = ["name", "kind", "threshold", "action", "answer_days", "reason", "is_active"]
    list_select_related = ["reason"]
    list_filter = ["kind", "action", "is_active"]

    def has_delete_permission(self, request, obj=None):
        return False  # its steps keep pointing at it: deactivate instead


@admin.register(QualityStep)
class QualityStepAdmin(ScopedCaseChildAdmin):
    list_display = ["case", "rung", "round", "unit", "count", "status", "happened_at", "decided_by", "decided_at"]
    list_select_related = ["case", "rung", "unit", "decided_by"]
    list_filter = ["status", "rung"]
    search_fields = ["case__reference"]
