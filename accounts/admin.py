"""Admin for people and the work matrix. Superusers configure; every write goes through services."""

from axes.handlers.proxy import AxesProxyHandler
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils.translation import gettext_lazy as _
from guardian.shortcuts import get_objects_for_user

from accounts import roles, services
from accounts.admin_base import StaffAdminMixin, StaffModelAdmin, StaffTabularInline, admin_adopt
from accounts.models import Unit, UnitMembership, User
from accounts.versioning import digest


class SuperuserOnlyMixin:
    """Rule of the staff and unit pages: superusers only (DESIGN.md §1: they configure people and units)."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser


class UnitMembershipInline(StaffTabularInline):
    model = UnitMembership
    extra = 0
    autocomplete_fields = ["unit"]
    fields = ["unit", "is_head", "title"]


class UserAccessForm(forms.ModelForm):
    access_units = forms.ModelMultipleChoiceField(
        label=_("可办理案件的单位(含下级)"),
        queryset=Unit.objects.filter(is_active=True),
        required=False,
        widget=admin.widgets.FilteredSelectMultiple(_("单位"), is_stacked=False),
        help_text=_("成员所在单位会自动授权;网评办、局领导和纪检督察人员通常授权到市局(全市)。"),
    )

    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(SuperuserOnlyMixin, StaffAdminMixin, DjangoUserAdmin):
    form = UserAccessForm
    inlines = [UnitMembershipInline]
    list_display = ["username", "full_name", "email", "role_list", "unit_list", "is_active", "is_superuser"]
    list_filter = ["groups", "is_active", "is_superuser", "units"]
    search_fields = ["username", "full_name", "email"]
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        (_("个人信息"), {"fields": ("full_name", "email", "phone")}),
        (_("角色与授权"), {"fields": ("groups", "access_units", "is_active", "is_staff", "is_superuser")}),
        (_("重要日期"), {"fields": ("last_login", "date_joined")}),
    )

    version_extra_labels = {"access_units": _("可办理案件的单位(含下级)")}

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups", "units")

    def version_extra_state(self, request, obj):
        # The access units are object permissions, not a field: a stale form must not revoke a grant.
        units = get_objects_for_user(obj, "accounts.access_unit", klass=Unit,
                                     accept_global_perms=False, with_superuser=False)
        return {"access_units": digest(sorted(units.values_list("pk", flat=True)))}

    @admin.display(description=_("角色"))
    def role_list(self, obj):
        return "、".join(str(roles.ROLE_LABELS.get(g.name, g.name)) for g in obj.groups.all())

    @admin.display(description=_("单位"))
    def unit_list(self, obj):
        return "、".join(u.name for u in obj.units.all())

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is not None and "access_units" in form.base_fields:
            form.base_fields["access_units"].initial = list(
                get_objects_for_user(obj, "accounts.access_unit", klass=Unit,
                                     accept_global_perms=False, with_superuser=False)
            )
        return form

    @transaction.atomic
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if "access_units" in form.cleaned_data:
            wanted = set(form.cleaned_data["access_units"])
            current = set(get_objects_for_user(obj, "accounts.access_unit", klass=Unit,
                                               accept_global_perms=False, with_superuser=False))
            for unit in wanted - current:
                services.unit_access_grant(user=obj, unit=unit)
            for unit in current - wanted:
                services.unit_access_revoke(user=obj, unit=unit)

    @transaction.atomic
    def save_formset(self, request, form, formset, change):
        memberships = formset.save(commit=False)
        for membership in formset.deleted_objects:
            services.membership_remove(membership=membership)
        for membership in memberships:
            services.membership_add(user=form.instance, unit=membership.unit,
                                    is_head=membership.is_head, title=membership.title)
        formset.save_m2m()


@admin.register(Unit)
class UnitAdmin(SuperuserOnlyMixin, StaffModelAdmin):
    list_display = ["indented_name", "code", "kind", "function", "leaders_in_charge", "email", "is_active"]
    list_filter = ["kind", "function", "is_active"]
    search_fields = ["name", "code"]
    autocomplete_fields = ["parent"]
    filter_horizontal = ["leaders"]
    inlines = []
    ordering = ["path"]

    @admin.display(description=_("名称"), ordering="path")
    def indented_name(self, obj):
        depth = max(obj.path.count(".") - 1, 0)
        return "　" * depth + obj.name

    @admin.display(description=_("分管局领导"))
    def leaders_in_charge(self, obj):
        return "、".join(str(u) for u in obj.leaders.all())

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("leaders")

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "leaders":
            kwargs["queryset"] = User.objects.filter(groups__name=roles.LEADER, is_active=True).order_by("username")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        services.unit_save(unit=obj)

    def get_search_results(self, request, queryset, search_term):
        # Autocomplete lists active units only.
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        return queryset.filter(is_active=True), may_have_duplicates

    def has_view_permission(self, request, obj=None):
        # Rule: the unit pages (list, form, history with the units' e-mails) are for superusers only.
        # The one exception is the autocomplete (names of active units, nothing else) for those
        # who pick a unit to dispatch to.
        if request.user.is_active and request.user.is_superuser:
            return True
        match = getattr(request, "resolver_match", None)
        return (obj is None and match is not None and match.url_name == "autocomplete"
                and request.user.is_active and request.user.has_perm("casework.dispatch_case"))


admin_adopt(Group)
# Sign-in throttling records (django-axes): superusers unlock an account by deleting its attempt.
class SignInRecordAdminMixin:
    """Sign-in records are evidence: read and deleted (to unlock) by superusers, never edited."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        # axes' own action "clean up expired attempts" reads the attempt time that axes' middleware
        # sets only on sign-in paths; without it the action was a 500.
        AxesProxyHandler.update_request(request)
        return super().changelist_view(request, extra_context)


for _model in (AccessAttempt, AccessLog, AccessFailureLog):
    admin_adopt(_model, extra=(SignInRecordAdminMixin,))
