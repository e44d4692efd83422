"""Admin bases shared by the casework admin modules (below :mod:`casework.admin`, which registers them).

:class:`ScopedCaseChildAdmin` is the read-only admin of a model hanging off a case, its rows
following the case's one access rule; :class:`SuperuserConfigAdmin` is the admin of configuration
only superusers see (calendar, policies, ladder, platforms, the router).
"""

from django.http import Http404

from accounts.admin_base import StaffModelAdmin
from casework import privacy, selectors
from casework.text import to_half_width


class ScopedCaseChildAdmin(StaffModelAdmin):
    """Admin of a model that hangs off a case: rows follow the case's access rule; read-only."""

    def get_queryset(self, request):
        qs = super().get_queryset(request).select_related("case")
        return qs.filter(case__in=selectors.cases_visible_to(user=request.user))

    def get_object(self, request, object_id, from_field=None):
        # A row of a case outside the user's scope does not exist for them: 404 on the change,
        # history and delete pages alike, before any model permission check (field case C01).
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404
        if not privacy.user_may_see_personal_numbers(user=request.user):
            privacy.mask_instance_text(obj)  # these pages are read-only: the row is never saved
        return obj

    def get_search_results(self, request, queryset, search_term):
        # Digits would probe the personal numbers quoted in drafts, reasons or answers.
        folded = to_half_width(search_term or "")
        if sum(ch.isdigit() for ch in folded) >= 4 and not privacy.user_may_see_personal_numbers(user=request.user):
            for bit in folded.split():
                queryset = queryset.filter(case__reference__icontains=bit)
            return queryset, False
        return super().get_search_results(request, queryset, search_term)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class SuperuserConfigAdmin(StaffModelAdmin):
    def has_module_permission(self, request):
        return request.user.is_superuser
