"""The staff application: the case list, the case page with its action panels, and the registers.

The admin is an interface only: every read of cases goes through the access rule in
:mod:`casework.selectors` and every write through :mod:`casework.services`. The case page's buttons
post to ``<id>/act/<action>/``, which re-checks the permission on the server through the service.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.selectors import units_in_scope
from casework import selectors, services
from casework.forms import DispatchForm, DraftForm, FollowUpForm, PublishForm, ReasonForm
from casework.models import (
    Case,
    CaseEvent,
    DeadlinePolicy,
    DisciplineReferral,
    EscalationStep,
    Notification,
    Platform,
    ReplyDraft,
    State,
    SupervisionNotice,
    WorkCalendarDay,
)
from casework.text import mask_contact

admin.site.site_header = _("网民留言办理系统")
admin.site.site_title = _("网民留言办理")
admin.site.index_title = _("工作台")

# Buttons of the case page: action → (label, needs a reason, style).
ACTIONS = {
    "accept": (_("签收"), False, "default"),
    "return_to_office": (_("退回网评办"), True, "danger"),
    "submit_feedback": (_("提交反馈(一审:已核实事实、引用依据、写明整改)"), False, "default"),
    "office_approve": (_("审核通过,报分管局领导"), False, "default"),
    "office_send_back": (_("发回修改"), True, "danger"),
    "leader_approve": (_("审签同意发布"), False, "default"),
    "leader_send_back": (_("发回修改"), True, "danger"),
    "reopen": (_("重办"), True, "danger"),
    "archive": (_("归档"), False, "default"),
    "reject_invalid": (_("不予受理"), True, "danger"),
}


class OverdueFilter(admin.SimpleListFilter):
    title = _("超期")
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", _("已超期")), ("no", _("未超期"))]

    def queryset(self, request, queryset):
        q = selectors.cases_overdue_q(now=timezone.now())
        if self.value() == "yes":
            return queryset.filter(q)
        if self.value() == "no":
            return queryset.exclude(q)
        return queryset


class ScopedUnitFilter(admin.SimpleListFilter):
    title = _("承办单位")
    parameter_name = "unit"

    def lookups(self, request, model_admin):
        return [(u.pk, u.name) for u in units_in_scope(user=request.user).order_by("path")]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(lead_unit_id=self.value())
        return queryset


class ScopedCaseChildAdmin(admin.ModelAdmin):
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
        return obj

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = [
        "reference",
        "subject",
        "state_badge",
        "lead_unit",
        "platform",
        "submitted_at",
        "reply_due_at",
        "overdue_flag",
    ]
    list_display_links = ["reference", "subject"]
    list_select_related = ["lead_unit", "platform"]
    list_filter = ["state", ScopedUnitFilter, "platform", OverdueFilter, "message_type"]
    search_fields = ["reference", "external_id", "subject", "body"]
    date_hierarchy = "submitted_at"
    list_per_page = 50
    show_full_result_count = False
    add_fields = [
        "platform", "external_id", "subject", "body", "submitted_at",
        "citizen_name", "citizen_contact", "message_type", "category",
    ]
    detail_fields = [
        "reference", "state", "platform", "external_id", "message_type", "category",
        "lead_unit", "submitted_at", "citizen_name", "citizen_contact_display",
        "likes", "dislikes", "dispatched_at", "sign_for_due_at", "accepted_at",
        "reply_due_at", "feedback_at", "published_at", "published_where", "archived_at",
    ]
    change_form_template = "admin/casework/case/change_form.html"
    actions = ["bulk_archive"]

    # ---------------------------------------------------------------- access

    def get_queryset(self, request):
        return selectors.cases_visible_to(user=request.user, queryset=super().get_queryset(request))

    def get_object(self, request, object_id, from_field=None):
        # Outside the user's scope (or nonexistent): 404 on every object page, never a redirect
        # or a permission error that would tell the two apart (field cases C01, C17).
        try:
            case = selectors.case_get_for_user(user=request.user, pk=int(object_id))
        except (Case.DoesNotExist, ValueError, TypeError) as exc:
            raise Http404 from exc
        case.may_see_contact = request.user.has_perm("casework.view_citizen_contact")
        return case

    def has_change_permission(self, request, obj=None):
        # Nobody edits a case's fields in a form: changes are the transitions and drafts below.
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return request.user.has_perm("casework.register_case")

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        if not request.user.has_perm("casework.archive_case"):
            actions.pop("bulk_archive", None)
        return actions

    # ---------------------------------------------------------------- list columns

    @admin.display(description=_("状态"), ordering="state")
    def state_badge(self, obj):
        return obj.get_state_display()

    @admin.display(description=_("超期"), boolean=True)
    def overdue_flag(self, obj):
        now = timezone.now()
        if obj.state == State.DISPATCHED and obj.sign_for_due_at and obj.sign_for_due_at < now:
            return True
        if obj.state in (State.DISPATCHED, State.HANDLING, State.OFFICE_REVIEW, State.LEADER_REVIEW,
                         State.APPROVED) and obj.reply_due_at:
            return obj.reply_due_at < now
        return None

    @admin.display(description=_("联系方式"))
    def citizen_contact_display(self, obj):
        if getattr(obj, "may_see_contact", False):
            return obj.citizen_contact
        return mask_contact(obj.citizen_contact)

    # ---------------------------------------------------------------- forms

    def get_fields(self, request, obj=None):
        return self.add_fields if obj is None else self.detail_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.detail_fields

    def save_model(self, request, obj, form, change):
        if change:
            raise PermissionDenied
        data = {f: form.cleaned_data.get(f) for f in self.add_fields}
        case = services.case_register(acting_user=request.user, source="manual", **data)
        obj.pk = case.pk
        obj.reference = case.reference

    def change_view(self, request, object_id, form_url="", extra_context=None):
        case = self.get_object(request, object_id)
        if case is None:
            raise Http404
        extra_context = {**(extra_context or {}), **self._panels(request, case)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _panels(self, request, case: Case) -> dict:
        user = request.user
        buttons = []
        for name, (label, needs_reason, style) in ACTIONS.items():
            method = getattr(case, name)
            meta = method._django_fsm
            if meta.has_transition(case.state) and meta.has_transition_perm(case, case.state, user):
                buttons.append({"name": name, "label": label, "needs_reason": needs_reason, "style": style})
        may = lambda perm, scope="case": selectors.user_may_act(user=user, case=case, perm=perm, scope=scope)  # noqa: E731
        draft = selectors.case_current_draft(case=case)
        context = {
            "case": case,
            "buttons": buttons,
            "timeline": selectors.case_timeline(case=case),
            "drafts": case.drafts.select_related("author").order_by("-version"),
            "follow_ups": case.follow_ups.select_related("recorded_by"),
            "notices": case.supervision_notices.select_related("unit"),
            "reason_form": ReasonForm(),
            "expected_state": case.state,
        }
        if case.state == State.REGISTERED and may("dispatch_case"):
            context["dispatch_form"] = DispatchForm(units=units_in_scope(user=user).filter(is_active=True))
        if case.state == State.HANDLING and may("submit_feedback", "lead"):
            initial = {}
            latest = draft or case.drafts.order_by("-version").first()
            if latest:
                initial = {f: getattr(latest, f) for f in DraftForm.base_fields}
            context["draft_form"] = DraftForm(initial=initial)
        if case.state == State.APPROVED and may("publish_reply"):
            context["publish_form"] = PublishForm(
                initial={"where": case.platform.name, "text": draft.reply_text if draft else ""}
            )
        if case.state == State.REPLIED and may("follow_up_case"):
            context["follow_up_form"] = FollowUpForm()
        return context

    # ---------------------------------------------------------------- actions on one case

    def get_urls(self):
        urls = super().get_urls()
        mine = [
            path("<int:object_id>/act/<str:action>/", self.admin_site.admin_view(self.act_view),
                 name="casework_case_act"),
        ]
        try:
            from casework.importing_admin import import_view

            mine.append(path("import/", self.admin_site.admin_view(import_view),
                             name="casework_case_import"))
        except ImportError:
            pass
        return mine + urls

    def act_view(self, request, object_id: int, action: str):
        """Perform one action on one case through its service; the service checks everything."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        try:
            case = selectors.case_get_for_user(user=request.user, pk=object_id)
        except Case.DoesNotExist as exc:
            raise Http404 from exc
        url = reverse("admin:casework_case_change", args=[case.pk])
        expected = request.POST.get("expected_state") or None
        try:
            message = self._perform(request, case, action, expected)
        except PermissionDenied as exc:
            messages.error(request, str(exc) or _("您没有执行此操作的权限。"))
            return HttpResponseRedirect(url)
        except services.TransitionRefused as exc:
            messages.error(request, str(exc))
            return HttpResponseRedirect(url)
        except _FormInvalid as exc:
            messages.error(request, str(exc))
            return HttpResponseRedirect(url)
        messages.success(request, message)
        return HttpResponseRedirect(url)

    def _perform(self, request, case, action, expected):
        user = request.user
        post = request.POST
        if action == "dispatch":
            form = DispatchForm(post, units=units_in_scope(user=user).filter(is_active=True))
            _require(form)
            services.case_dispatch(case=case, acting_user=user, unit=form.cleaned_data["unit"],
                                   note=form.cleaned_data["note"], expected_state=expected)
            self.log_change(request, case, _("执行:%s") % _("交办"))
            return _("已交办至%s。") % form.cleaned_data["unit"]
        if action == "save_draft":
            form = DraftForm(post)
            _require(form)
            draft = services.draft_save(case=case, acting_user=user, **form.cleaned_data)
            return _("已保存答复草稿第 %s 版。") % draft.version
        if action == "publish_reply":
            form = PublishForm(post)
            _require(form)
            services.case_publish_reply(case=case, acting_user=user, expected_state=expected,
                                        **form.cleaned_data)
            self.log_change(request, case, _("执行:%s") % _("发布答复"))
            return _("答复已发布。")
        if action == "record_follow_up":
            form = FollowUpForm(post)
            _require(form)
            services.case_record_follow_up(case=case, acting_user=user, expected_state=expected,
                                           **form.cleaned_data)
            self.log_change(request, case, _("执行:%s") % _("回访"))
            return _("已记录回访。")
        if action not in services.TRANSITION_SERVICES:
            raise Http404
        service, needs_reason = services.TRANSITION_SERVICES[action]
        kwargs = {"case": case, "acting_user": user, "expected_state": expected}
        if needs_reason:
            kwargs["reason"] = post.get("reason", "")
        result = service(**kwargs)
        self.log_change(request, result, _("执行:%s") % ACTIONS[action][0])
        return _("已执行「%(action)s」,当前状态:%(state)s。") % {
            "action": ACTIONS[action][0], "state": result.get_state_display()}

    # ---------------------------------------------------------------- bulk actions

    @admin.action(description=_("批量归档所选案件(逐件检查权限)"))
    def bulk_archive(self, request, queryset):
        done, refused = 0, []
        for case in queryset:
            try:
                services.case_archive(case=case, acting_user=request.user)
                self.log_change(request, case, _("执行:%s") % _("批量归档"))
                done += 1
            except (PermissionDenied, services.TransitionRefused) as exc:
                refused.append(f"{case.reference}:{exc}")
        if done:
            messages.success(request, _("已归档 %d 件。") % done)
        for line in refused:
            messages.warning(request, _("未归档 %s") % line)


class _FormInvalid(Exception):
    pass


def _require(form) -> None:
    if not form.is_valid():
        errors = "; ".join(f"{form.fields[f].label if f in form.fields else f}: {' '.join(e)}"
                           for f, e in form.errors.items())
        raise _FormInvalid(_("请检查填写内容:%s") % errors)


@admin.register(ReplyDraft)
class ReplyDraftAdmin(ScopedCaseChildAdmin):
    list_display = ["case", "version", "round", "author", "created_at"]
    list_select_related = ["case", "author"]
    search_fields = ["case__reference", "reply_text"]


@admin.register(CaseEvent)
class CaseEventAdmin(ScopedCaseChildAdmin):
    list_display = ["case", "seq", "action", "from_state", "to_state", "actor", "at"]
    list_select_related = ["case", "actor"]
    list_filter = ["action"]
    search_fields = ["case__reference"]


@admin.register(SupervisionNotice)
class SupervisionNoticeAdmin(ScopedCaseChildAdmin):
    list_display = ["case", "unit", "opened_at", "answered_at"]
    list_select_related = ["case", "unit"]
    list_filter = [("answered_at", admin.EmptyFieldListFilter)]


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


class SuperuserConfigAdmin(admin.ModelAdmin):
    def has_module_permission(self, request):
        return request.user.is_superuser


@admin.register(Platform)
class PlatformAdmin(SuperuserConfigAdmin):
    list_display = ["name", "code", "url"]


@admin.register(DeadlinePolicy)
class DeadlinePolicyAdmin(SuperuserConfigAdmin):
    list_display = ["message_type", "sign_for_days", "reply_days"]


@admin.register(WorkCalendarDay)
class WorkCalendarDayAdmin(SuperuserConfigAdmin):
    list_display = ["date", "is_workday", "note"]
    list_filter = ["is_workday"]
    date_hierarchy = "date"


