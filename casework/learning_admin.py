"""Admin of what is learned from the archive (issue 12). Imported at the bottom of :mod:`casework.admin`.

- 智能交办模型: the trained dispatch models (superusers only, read-only) with their
  cross-validated scores, and above the list the suggestion acceptance rate per unit.

The duplicate flags are shown on the case page only (a flag names a second case, which must pass
the access rule on its own).
"""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from casework.admin_common import SuperuserConfigAdmin
from casework.models import RouterModel
from casework.router_service import router_threshold, suggestion_acceptance


@admin.register(RouterModel)
class RouterModelAdmin(SuperuserConfigAdmin):
    change_list_template = "admin/casework/routermodel/change_list.html"
    list_display = ["trained_at", "n_cases", "n_units", "macro_f1", "micro_f1", "top3", "size_bytes",
                    "seconds", "is_active"]
    fields = ["trained_at", "n_cases", "n_units", "folds", "macro_f1", "micro_f1", "top3", "size_bytes",
              "seconds", "is_active", "scores"]
    readonly_fields = fields

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "acceptance": suggestion_acceptance(),
                         "threshold": router_threshold(), "acceptance_title": _("交办建议采纳率(按建议单位)")}
        return super().changelist_view(request, extra_context)

