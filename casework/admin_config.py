"""Admin of the deadline configuration and the ladder's records (DESIGN.md §4).

The work calendar, calendar years, unit calendar exceptions, deadline policies and the escalation
ladder are superuser configuration; escalation steps, referrals to 纪检督察 and the e-mail outbox
are records. Imported at the bottom of :mod:`casework.admin`.
"""

from django.contrib import admin

from casework.admin import ScopedCaseChildAdmin, SuperuserConfigAdmin
from casework.models import (
    DeadlinePolicy,
    DisciplineReferral,
    EscalationStep,
    Notification,
    WorkCalendarDay,
)


@admin.register(DisciplineReferral)
class DisciplineReferralAdmin(ScopedCaseChildAdmin):
    list_display = ["case", "unit", "created_at", "outcome_recorded_at"]
    list_select_related = ["case", "unit"]
    readonly_fields = ["case", "unit", "reason", "snapshot", "created_at", "outcome", "outcome_recorded_at"]


@admin.register(EscalationStep)
class EscalationStepAdmin(ScopedCaseChildAdmin):
    list_display = ["case", "clock", "level", "round", "due_at", "happened_at"]
    list_select_related = ["case"]
    list_filter = ["clock", "level"]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["subject", "created_at", "sent_at", "attempts"]
    list_filter = [("sent_at", admin.EmptyFieldListFilter)]

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(DeadlinePolicy)
class DeadlinePolicyAdmin(SuperuserConfigAdmin):
    list_display = ["message_type", "platform", "clock", "amount", "unit", "source"]


@admin.register(WorkCalendarDay)
class WorkCalendarDayAdmin(SuperuserConfigAdmin):
    list_display = ["date", "is_workday", "note"]
    list_filter = ["is_workday"]
    date_hierarchy = "date"
