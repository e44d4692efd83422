"""The staff application: the case list, the case page with its action panels, and the registers.

The admin is an interface only: every read of cases goes through the access rule in
:mod:`casework.selectors` and every write through :mod:`casework.services`. The case page's buttons
post to ``<id>/act/<action>/``, which re-checks the permission on the server through the service.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F
from django.http import FileResponse, Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from accounts.admin_base import StaffModelAdmin
from accounts.admin_versioning import VersionedForm
from accounts.selectors import handling_units_q, units_in_scope
from accounts.versioning import Change
from casework import (
    attachments,
    escalation,
    export,
    joint,
    privacy,
    review,
    routing,
    selectors,
    services,
    spreadsheets,
    tracking,
)
from casework.admin_case_versions import case_forms_stamp, refused_input_keep
from casework.admin_common import ScopedCaseChildAdmin, SuperuserConfigAdmin
from casework.case_versions import CASE_VERSION_FIELD, case_version_check
from casework.forms import (
    CaseRegisterForm,
    DispatchForm,
    FollowUpForm,
    MessageTypeForm,
    PublishForm,
    ReasonForm,
    ReviseForm,
)
from casework.importing_admin import import_view
from casework.kept_input import form_refill, input_keep, input_restore
from casework.learning_panels import case_learning_panels, suggestion_from_post, suggestion_seen_form
from casework.models import (
    Attachment,
    Case,
    CaseEvent,
    CoUnitTask,
    Extension,
    Platform,
    PublishedReply,
    ReplyDraft,
    State,
    SupervisionNotice,
)
from casework.printing import PrintableMixin
from casework.review_forms import (
    CoUnitForm,
    CoUnitReportForm,
    ExtensionDecisionForm,
    ExtensionRequestForm,
    KeyCaseForm,
    MergeForm,
    ReturnRulingForm,
    VersionedDraftForm,
)
from casework.router_service import dispatch_suggestion
from casework.supervision_panels import (
    SUPERVISION_ACTIONS,
    SUPERVISION_FORMS,
    case_supervision_panels,
    supervision_perform,
)
from casework.templatetags.casework_marks import clock_mark_html
from casework.templatetags.casework_when import when_short
from casework.text import mask_contact, mask_personal_numbers, to_half_width

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
# Buttons that carry an input other than a required reason: action → (input name, its label).
ACTION_INPUTS = {
    "office_approve": ("opinion", _("审核意见(选填)")),
    "leader_approve": ("opinion", _("审签意见(选填)")),
    "archive": ("reason", _("归档说明(未回访时必填)")),
}
# Destructive actions ask before they are sent (static/casework/case_page.js reads data-confirm).
CONFIRM_ACTIONS = {
    "archive": _("确认归档该案件?归档后案件只读。"),
    "reject_invalid": _("确认不予受理?该留言将关闭归档。"),
    "merge": _("确认将本留言并入主案件?本留言将关闭,并随主案件答复。"),
    "bulk_archive": _("确认归档所选案件?归档后案件只读。"),
}


class OverdueFilter(admin.SimpleListFilter):
    title = _("超期")
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", _("已超期")), ("no", _("未超期"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(selectors.cases_overdue_in_scope_q(user=request.user, now=timezone.now()))
        if self.value() == "no":
            return queryset.exclude(selectors.cases_overdue_q(now=timezone.now()))
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


class DigestFilter(admin.SimpleListFilter):
    """The cases of one escalation digest e-mail (``?digest=<its key>``, the link the e-mail carries).

    A digest lists its longest-overdue cases line by line and links here for all of them; the
    list is the user's own (the admin's queryset), so a link forwarded to someone else shows
    only what they may see. Shown in the sidebar only while it is in use.
    """

    title = _("催办通知")
    parameter_name = "digest"

    def lookups(self, request, model_admin):
        value = self.value()
        return [(value, _("该通知所列案件"))] if value else []

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(pk__in=selectors.digest_case_ids(key=self.value()))
        return queryset


class QueueFilter(admin.SimpleListFilter):
    """The work queues of the user's roles ("my work"); a queue lists what is due first."""

    title = _("我的待办")
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [(q.key, q.label) for q in selectors.queues_for_user(user=request.user)]

    def queryset(self, request, queryset):
        if self.value() in selectors.QUEUES_BY_KEY:
            # The changelist's queryset is the admin's get_queryset: visible to the user already.
            return selectors.case_queue(user=request.user, key=self.value(), queryset=queryset, visible=True)
        return queryset


def _notices_with_status(case: Case, user) -> list:
    """The case's 督办单, each with ``awaits`` set by the one rule (selectors.notice_awaits_answer),
    its answer deadline, and ``may_answer`` (the answer is offered only to who may give it)."""
    notices = list(case.supervision_notices.select_related("unit", "case"))
    dues = tracking.notices_answer_due(notices)
    for n in notices:
        n.awaits = selectors.notice_awaits_answer(notice=n)
        n.answer_due_at = dues.get(n.pk)
        n.may_answer = tracking.user_may_answer_notice(user=user, notice=n)
    return notices


@admin.register(Case)
class CaseAdmin(StaffModelAdmin):
    # Fewer, better columns (issue: the case list must read at a glance at 1366 px): the subject
    # wide enough to read, the clock that matters with its name, working time left and a red/amber
    # mark, the lead unit and the state. The platform, type and contact are on the case page.
    list_display = ["reference", "subject", "state_badge", "lead_unit", "clock_cell", "submitted_date"]
    list_display_links = ["reference", "subject"]
    list_select_related = ["lead_unit"]  # the platform is not shown in a row (a join per row read, issue 11 §3)
    # The digest filter first: shown only while a 催办 e-mail's link is followed, it says at the top
    # why the list holds those cases.
    list_filter = [DigestFilter, QueueFilter, "state", ScopedUnitFilter, "platform", OverdueFilter, "message_type"]
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
    form = CaseRegisterForm
    actions = ["bulk_dispatch", "bulk_archive", "export_csv", "export_xlsx"]

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

    def get_ordering(self, request):
        # A queue shows what is due first: its clock's deadline, cases without one last; a queue
        # without a clock, oldest first. Each order ends on the primary key and matches an index
        # (migration 0010), so a page is read from the index, never sorted from every case.
        spec = selectors.QUEUES_BY_KEY.get(request.GET.get("queue"))
        if spec is not None:
            if spec.clock:
                return [F("queue_due").asc(nulls_last=True), "submitted_at", "pk"]
            return ["submitted_at", "pk"]
        return super().get_ordering(request)

    def get_search_fields(self, request):
        # A phone fragment finds its message (C21), but only for those who may read contacts:
        # for anyone else the search box must not become an oracle on the masked number.
        fields = list(super().get_search_fields(request))
        if request.user.has_perm("casework.view_citizen_contact"):
            fields.append("citizen_contact")
        return fields

    def get_search_results(self, request, queryset, search_term):
        # Numbers typed full-width with a Chinese IME find the same case (field case C23); the
        # term as typed is searched too, since free text (the body) is stored exactly as written.
        search_term = search_term or ""
        folded = to_half_width(search_term)
        by_reference = selectors.cases_by_reference_q(term=folded)
        if by_reference is not None:
            # A case or platform number finds its case through the unique index, never a scan of
            # every subject and body (issue 11 §3); these ids are not personal numbers.
            return queryset.filter(by_reference), False
        if (sum(ch.isdigit() for ch in folded) >= 4
                and not privacy.user_may_see_personal_numbers(user=request.user)):
            # Digits would probe the masked numbers of subjects and bodies (an oracle on the mask):
            # for readers without the permission they search only the case and platform ids.
            return privacy.cases_search_ids(queryset=queryset, term=folded), False
        qs, dupes = super().get_search_results(request, queryset, folded)
        if folded != search_term.strip():
            typed, typed_dupes = super().get_search_results(request, queryset, search_term)
            qs, dupes = qs | typed, dupes or typed_dupes
        return qs, dupes

    def get_changelist_instance(self, request):
        cl = super().get_changelist_instance(request)
        rows = list(cl.result_list)
        now = timezone.now()
        spec = selectors.QUEUES_BY_KEY.get(request.GET.get("queue"))
        # A queue of a few rows of open work (pending extensions, …): its dates are read once.
        cl.date_hierarchy_few = spec is not None and spec.key in selectors.QUEUES_OF_OPEN_ROWS
        dues = {case.pk: self._due_of(case, spec) for case in rows}
        exceptions = selectors.calendar_exceptions_around(
            dates=[timezone.localtime(now).date()]
            + [timezone.localtime(d).date() for _label, d in dues.values() if d]
        )
        may_see_numbers = privacy.user_may_see_personal_numbers(user=request.user)
        for case in rows:
            if not may_see_numbers:  # shown only, never saved: the list's rows are not written
                case.subject = mask_personal_numbers(case.subject)
            label, due = dues[case.pk]
            case.clock_label = label
            case.clock_mark = selectors.clock_mark(due=due, now=now, exceptions=exceptions)
        return cl

    def version_extra_changes(self, obj, since):
        # A case changes through its services, which write audit events rather than admin log.
        events = obj.events.select_related("actor").order_by("-seq")
        event = (events.filter(at__gt=since) if since is not None else events).first()
        if event is None:
            return []
        who = (event.actor.full_name or event.actor.get_username()) if event.actor else ""
        return [Change(who=who, at=event.at, what=event.action_label)]

    # The clock a queue runs on, by name; a referral's date is not a deadline, so it has no mark.
    QUEUE_CLOCK_LABELS = {"sign_for": _("签收"), "reply": _("答复"), "co_unit": _("协办"), "extension": _("延期")}

    @classmethod
    def _due_of(cls, case, spec):
        if spec is not None and spec.clock:
            if spec.clock not in cls.QUEUE_CLOCK_LABELS:
                return "", None
            return cls.QUEUE_CLOCK_LABELS[spec.clock], getattr(case, "queue_due", None)
        return selectors.case_clock_due(case=case)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        if not request.user.has_perm("casework.archive_case"):
            actions.pop("bulk_archive", None)
        return actions

    @admin.display(description=_("时限"))
    def clock_cell(self, obj):
        mark = getattr(obj, "clock_mark", None)
        if mark is None:
            return ""
        return clock_mark_html(label=getattr(obj, "clock_label", ""), mark=mark)

    @admin.display(description=_("留言时间"), ordering="submitted_at")
    def submitted_date(self, obj):
        return timezone.localtime(obj.submitted_at).strftime("%Y-%m-%d") if obj.submitted_at else ""

    # ---------------------------------------------------------------- list columns

    # The state's label by value, read once: ``get_state_display`` rebuilds and hashes the whole
    # list of (lazily translated) choices for every row, a tenth of the list's rendering (issue 11 §3).
    STATE_LABELS = dict(State.choices)

    @admin.display(description=_("状态"), ordering="state")
    def state_badge(self, obj):
        label = self.STATE_LABELS.get(obj.state)
        return obj.state if label is None else str(label)

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
                input_name, input_label = ACTION_INPUTS.get(name, ("reason", "") if needs_reason else ("", ""))
                buttons.append({"name": name, "label": label, "needs_reason": needs_reason, "style": style,
                                "input": input_name, "input_label": input_label,
                                "confirm": CONFIRM_ACTIONS.get(name, "")})
        may = lambda perm, scope="case": selectors.user_may_act(user=user, case=case, perm=perm, scope=scope)  # noqa: E731
        draft = selectors.case_current_draft(case=case)
        context = {
            "case": case,
            "buttons": buttons,
            "timeline": selectors.case_timeline(case=case),
            "drafts": case.drafts.select_related("author").order_by("-version"),
            "follow_ups": case.follow_ups.select_related("recorded_by"),
            "notices": _notices_with_status(case, user),
            "attachments": list(case.attachments.select_related("uploaded_by", "draft")),
            "attachment_accept": attachments.ACCEPT,
            "contact_display": self.citizen_contact_display(case),
            "attachment_max_mb": attachments.max_bytes() // (1024 * 1024),
            "reason_form": ReasonForm(),
            "expected_state": case.state,
            "may_see_numbers": privacy.user_may_see_personal_numbers(user=user),
        }
        if case.state == State.REGISTERED and may("dispatch_case"):
            context["dispatch_form"] = DispatchForm(units=units_in_scope(user=user).filter(handling_units_q()),
                                                    initial={"message_type": case.message_type})
        if case.state in services.TYPE_CORRECTABLE_STATES and case.state != State.REGISTERED and may("dispatch_case"):
            context["type_form"] = MessageTypeForm(initial={"message_type": case.message_type,
                                                            "lock_version": case.lock_version})
        if case.state == State.DISPATCHED and may("accept_case", "lead") and may("submit_feedback", "lead"):
            # 签收并提交反馈: a unit that can answer at once signs for the case and answers in one step.
            context["draft_form"] = VersionedDraftForm(initial={"lock_version": case.lock_version})
            context["draft_accept_submit"] = True
        if case.state == State.HANDLING and may("submit_feedback", "lead"):
            initial = {}
            latest = draft or case.drafts.order_by("-version").first()
            if latest:
                initial = {f: getattr(latest, f) for f in VersionedDraftForm.base_fields if f != "lock_version"}
            initial["lock_version"] = case.lock_version
            context["draft_form"] = VersionedDraftForm(initial=initial)
        if case.state == State.REPLIED and may("follow_up_case"):
            context["follow_up_form"] = FollowUpForm()
        context.update(self._joint_panels(request, case, draft))
        context.update(self._publish_panels(request, case, draft, may))
        self._refill(request, case, context)
        context.update(case_learning_panels(user=user, case=case, context=context,  # issue 12
                                            units=units_in_scope(user=user).filter(handling_units_q())))
        context.update(case_supervision_panels(user=user, case=case))  # issue 13: 督办与问责
        case_forms_stamp(request, context, case=case)  # every form carries the case's version
        return context

    def _publish_panels(self, request, case: Case, draft, may) -> dict:
        """Context of the signed reply to publish, 发布前修改, the published versions and ratings."""
        publications = list(case.published_replies.select_related("draft", "published_by", "follows__case"))
        follow_ups = list(case.follow_ups.select_related("recorded_by"))
        context = {
            "publications": publications,
            "latest_opinion": review.case_latest_opinion(case=case),
            "latest_follow_up": follow_ups[-1] if follow_ups else None,
            "merge_confirm": CONFIRM_ACTIONS["merge"],
            "archive_confirm": CONFIRM_ACTIONS["archive"],
            "may_archive": case.state == State.REPLIED and may("archive_case"),
        }
        if case.state == State.APPROVED and may("publish_reply"):
            signed_id = review.case_signed_draft_id(case=case)
            context["publish_draft"] = draft
            context["publish_signed"] = draft is not None and draft.pk == signed_id
            context["publish_form"] = PublishForm(
                initial={"where": case.platform.name, "draft_id": draft.pk if draft else None}
            )
            context["revise_form"] = ReviseForm(
                initial={"reply_text": draft.reply_text if draft else "", "lock_version": case.lock_version}
            )
        return context

    def _refill(self, request, case: Case, context: dict) -> None:
        """Put back what the user typed into the form of a refused action (casework.kept_input)."""
        if "draft_form" in context and case.state == State.HANDLING:
            # Saving and submitting are one form: 提交反馈 sends the typed draft with it.
            context["buttons"] = [b for b in context["buttons"] if b["name"] != "submit_feedback"]
            context["draft_submit"] = ACTIONS["submit_feedback"][0]
        action, data = input_restore(request=request, case_id=case.pk)
        if not action:
            return
        context["kept_action"] = action
        forms_of = {
            "dispatch": "dispatch_form", "save_draft": "draft_form", "submit_feedback": "draft_form",
            "accept_and_submit": "draft_form",
            "publish_reply": "publish_form", "revise_after_sign_off": "revise_form",
            "record_follow_up": "follow_up_form", "assign_co_unit": "co_unit_form",
            "co_unit_report": "co_unit_report_form", "request_extension": "extension_form",
            "arbitrate_return": "ruling_form", "merge": "merge_form", "mark_key_case": "key_case_form",
            "set_type": "type_form", **SUPERVISION_FORMS,
        }
        form_refill(context.get(forms_of.get(action, "")), data)
        for extension, form in context.get("extension_decisions", []):
            if action == "decide_extension" and str(extension.pk) == str(data.get("extension_id")):
                form_refill(form, data)
        for button in context["buttons"]:
            if button["name"] == action and button["input"]:
                button["kept"] = data.get(button["input"], "")

    def _joint_panels(self, request, case: Case, draft) -> dict:
        """Context of the review, joint-handling, extension, arbitration, merge and key-case panels."""
        user = request.user
        may = lambda perm, scope="case": selectors.user_may_act(user=user, case=case, perm=perm, scope=scope)  # noqa: E731
        shown = draft or case.drafts.order_by("-version").first()
        tasks = list(case.co_unit_tasks.select_related("unit", "reported_by"))
        extensions = list(case.extensions.select_related("unit", "requested_by", "decided_by"))
        clock_label, clock_due = selectors.case_clock_due(case=case)
        context = {
            "review": review.draft_changes(draft=shown),
            "review_draft": shown,
            "signatures": review.case_signatures(case=case),
            "co_unit_tasks": tasks,
            "extensions": extensions,
            "clock_label": clock_label,
            "clock_left": selectors.working_time_left(due=clock_due),
            **selectors.case_merge_links(user=user, case=case),
        }
        active_units = units_in_scope(user=user).filter(handling_units_q())
        if case.state in joint.CO_UNIT_STATES and may("assign_co_unit"):
            context["co_unit_form"] = CoUnitForm(units=active_units.exclude(pk=case.lead_unit_id))
        own_task = selectors.case_co_unit_task_for(user=user, case=case)
        if (own_task and own_task.reported_at is None and case.state in joint.CO_UNIT_STATES
                and user.has_perm("casework.submit_feedback")):
            context["co_unit_report_form"] = CoUnitReportForm(initial={"task_id": own_task.pk})
            context["own_task"] = own_task
        if case.state in joint.CLOCK_STATES["reply"] and may("request_extension", "lead"):
            context["extension_form"] = ExtensionRequestForm()
        if may("decide_extension"):
            context["extension_decisions"] = [
                (e, ExtensionDecisionForm(initial={"extension_id": e.pk}))
                for e in extensions if e.decision == Extension.Decision.PENDING
            ]
        returned_by = joint.case_returned_by(case=case)
        if returned_by is not None and may("dispatch_case"):
            context["returned_by"] = returned_by
            context["ruling_form"] = ReturnRulingForm(units=active_units.exclude(pk=returned_by.pk))
            context.pop("dispatch_form", None)
        if case.state == State.REGISTERED and may("merge_case"):
            context["merge_form"] = MergeForm()
        if case.state not in (State.APPROVED, State.REPLIED, State.ARCHIVED) and may("mark_key_case"):
            context["key_case_form"] = KeyCaseForm(initial={"leader": case.key_case_leader_id})
        return context

    # ---------------------------------------------------------------- actions on one case

    def get_urls(self):
        urls = super().get_urls()
        mine = [
            path("<int:object_id>/act/<str:action>/", self.admin_site.admin_view(self.act_view),
                 name="casework_case_act"),
            path("attachment/<int:pk>/", self.admin_site.admin_view(self.attachment_view),
                 name="casework_attachment_download"),
        ]
        try:
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
            try:
                with transaction.atomic():
                    # The page's version is checked under the case lock the services take again.
                    case_version_check(case=services.case_lock(case=case), seen=request.POST.get(CASE_VERSION_FIELD))
                    message = self._perform(request, case, action, expected)
            except BaseException:
                attachments.attachments_discard(paths=getattr(request, "cw_stored_attachments", []))
                raise
        except PermissionDenied as exc:
            refused_input_keep(request, case=case, action=action)
            messages.error(request, str(exc) or _("您没有执行此操作的权限。"))
            input_keep(request=request, case_id=case.pk, action=action)
            return HttpResponseRedirect(url)
        except (services.TransitionRefused, _FormInvalid) as exc:
            # A refusal says why and keeps what was typed (casework.kept_input).
            refused_input_keep(request, case=case, action=action)
            messages.error(request, str(exc))
            input_keep(request=request, case_id=case.pk, action=action)
            return HttpResponseRedirect(url)
        messages.success(request, message)
        return HttpResponseRedirect(url)

    def _perform(self, request, case, action, expected):
        user = request.user
        post = request.POST
        if action == "dispatch":
            form = DispatchForm(post, units=units_in_scope(user=user).filter(handling_units_q()))
            _require(form)
            with transaction.atomic():  # a corrected type and the dispatch land together or not at all
                if form.cleaned_data["message_type"] and form.cleaned_data["message_type"] != case.message_type:
                    case = services.case_message_type_set(
                        case=case, acting_user=user, message_type=form.cleaned_data["message_type"],
                        reason=form.cleaned_data["note"] or _("交办时更正"),
                    )
                services.case_dispatch(case=case, acting_user=user, unit=form.cleaned_data["unit"],
                                       note=form.cleaned_data["note"], expected_state=expected,
                                       suggestion=suggestion_from_post(post))
            self.log_change(request, case, _("执行:%s") % _("交办"))
            return _("已交办至%s。") % form.cleaned_data["unit"]
        if action == "set_type":
            form = MessageTypeForm(post)
            _require(form)
            case = services.case_message_type_set(
                case=case, acting_user=user, message_type=form.cleaned_data["message_type"],
                reason=form.cleaned_data["reason"], expected_lock_version=form.cleaned_data["lock_version"],
            )
            self.log_change(request, case, _("执行:%s") % _("更正留言类型"))
            return _("留言类型已更正为「%(type)s」,期限已重新计算。") % {"type": case.get_message_type_display()}
        if action == "save_draft":
            form = VersionedDraftForm(post)
            _require(form)
            data = dict(form.cleaned_data)
            added = self._attach(request, case)
            draft = services.draft_save(case=case, acting_user=user,
                                        expected_lock_version=data.pop("lock_version"), **data)
            Attachment.objects.filter(pk__in=[a.pk for a in added]).update(draft=draft)
            if added:
                return _("已保存答复草稿第 %(v)s 版,附件 %(n)d 个。") % {"v": draft.version, "n": len(added)}
            return _("已保存答复草稿第 %s 版。") % draft.version
        if action == "accept_and_submit":
            # 签收并提交反馈: sign for, save the typed draft (and its attachments) and submit, one step.
            form = VersionedDraftForm(post)
            _require(form)
            data = dict(form.cleaned_data)
            lock_version = data.pop("lock_version")
            accepted = services.case_accept(case=case, acting_user=user, expected_state=expected)
            added = self._attach(request, accepted)
            result = services.case_submit_feedback(case=accepted, acting_user=user, expected_state=State.HANDLING,
                                                   draft=data, expected_lock_version=accepted.lock_version
                                                   if lock_version is not None else None)
            Attachment.objects.filter(pk__in=[a.pk for a in added]).update(
                draft=selectors.case_current_draft(case=result))
            self.log_change(request, result, _("执行:%s") % _("签收并提交反馈"))
            return _("已签收并提交反馈,当前状态:%(state)s。") % {"state": result.get_state_display()}
        if action == "submit_feedback" and "reply_text" in post:
            # One step: the typed draft is saved as a new version when it differs, then submitted.
            form = VersionedDraftForm(post)
            _require(form)
            data = dict(form.cleaned_data)
            lock_version = data.pop("lock_version")
            added = self._attach(request, case)
            result = services.case_submit_feedback(case=case, acting_user=user, expected_state=expected,
                                                   draft=data, expected_lock_version=lock_version)
            Attachment.objects.filter(pk__in=[a.pk for a in added]).update(
                draft=selectors.case_current_draft(case=result))
            self.log_change(request, result, _("执行:%s") % ACTIONS[action][0])
            return _("已执行「%(action)s」,当前状态:%(state)s。") % {
                "action": ACTIONS[action][0], "state": result.get_state_display()}
        if action == "revise_after_sign_off":
            form = ReviseForm(post)
            _require(form)
            draft = services.case_revise_after_sign_off(
                case=case, acting_user=user, expected_state=expected,
                reply_text=form.cleaned_data["reply_text"], reason=form.cleaned_data["reason"],
                expected_lock_version=form.cleaned_data["lock_version"])
            self.log_change(request, case, _("执行:%s") % _("发布前修改"))
            return _("已保存答复第 %s 版,送网评办重新审核。") % draft.version
        if action in SUPERVISION_ACTIONS:  # issue 13: 督办单 by hand, 办理不力 referral, proposals
            message = supervision_perform(user=user, case=case, action=action, post=post)
            self.log_change(request, case, _("执行:%s") % SUPERVISION_ACTIONS[action])
            return message
        if action in JOINT_ACTIONS:
            message = getattr(self, f"_do_{action}")(request, case, post, expected)
            self.log_change(request, case, _("执行:%s") % JOINT_ACTIONS[action])
            return message
        if action == "publish_reply":
            form = PublishForm(post)
            _require(form)
            services.case_publish_reply(case=case, acting_user=user, expected_state=expected,
                                        where=form.cleaned_data["where"],
                                        expected_draft_id=form.cleaned_data["draft_id"])
            self.log_change(request, case, _("执行:%s") % _("发布答复"))
            return _("答复已发布。")
        if action == "record_follow_up":
            form = FollowUpForm(post)
            _require(form)
            services.case_record_follow_up(case=case, acting_user=user, expected_state=expected,
                                           **form.cleaned_data)
            self.log_change(request, case, _("执行:%s") % _("回访"))
            if "_archive" in post:  # 记录回访并归档: the loop closes with its follow-up, one step
                services.case_archive(case=case, acting_user=user, expected_state=State.REPLIED)
                self.log_change(request, case, _("执行:%s") % ACTIONS["archive"][0])
                return _("已记录回访并归档。")
            return _("已记录回访。")
        if action not in services.TRANSITION_SERVICES:
            raise Http404
        service, needs_reason = services.TRANSITION_SERVICES[action]
        kwargs = {"case": case, "acting_user": user, "expected_state": expected}
        if needs_reason:
            kwargs["reason"] = post.get("reason", "")
        if action in ACTION_INPUTS:
            kwargs[ACTION_INPUTS[action][0]] = post.get(ACTION_INPUTS[action][0], "")
        result = service(**kwargs)
        self.log_change(request, result, _("执行:%s") % ACTIONS[action][0])
        return _("已执行「%(action)s」,当前状态:%(state)s。") % {
            "action": ACTIONS[action][0], "state": result.get_state_display()}

    def _attach(self, request, case) -> list:
        """Check and store the files sent with the draft form (all refused if one is refused).

        The stored files are removed again when the rest of the action fails (the transaction
        around the action rolls back their rows; see ``casework.attachments``).
        """
        uploads = request.FILES.getlist("attachments")
        if not uploads:
            return []
        try:
            checked = attachments.attachments_check(files=uploads)
            added = attachments.attachments_add(case=services.case_lock(case=case), acting_user=request.user,
                                                files=checked)
        except attachments.AttachmentRefused as exc:
            raise _FormInvalid(_("%(why)s 您填写的内容已保留,请重新选择附件。") % {"why": exc}) from exc
        # Should the rest of the action fail, act_view removes these files with the rolled-back rows.
        request.cw_stored_attachments = [attachments.attachment_path(a) for a in added]
        return added

    def attachment_view(self, request, pk: int):
        """Serve one attachment as a download to those who may see its case (else a readable 404).

        A member of staff without a role that reads cases gets 403, as on the case page.
        """
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            attachment = selectors.attachment_get_for_user(user=request.user, pk=pk)
        except Attachment.DoesNotExist:
            return TemplateResponse(request, "admin/casework/attachment_missing.html",
                                    {**self.admin_site.each_context(request), "title": _("附件不存在或无权查看")},
                                    status=404)
        path = attachments.attachment_path(attachment)
        if not path.is_file():
            return TemplateResponse(request, "admin/casework/attachment_missing.html",
                                    {**self.admin_site.each_context(request), "title": _("附件文件已不存在")},
                                    status=404)
        response = FileResponse(path.open("rb"), as_attachment=True, filename=attachment.original_name,
                                content_type=attachment.content_type)
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        response["Cache-Control"] = "private, no-store"
        return response

    # ---------------------------------------------------------------- joint handling and friends

    def _do_assign_co_unit(self, request, case, post, expected):
        form = CoUnitForm(post, units=units_in_scope(user=request.user).filter(handling_units_q()))
        _require(form)
        task = joint.co_unit_assign(case=case, acting_user=request.user, **form.cleaned_data)
        return _("已指定协办单位:%s。") % task.unit

    def _do_co_unit_report(self, request, case, post, expected):
        form = CoUnitReportForm(post)
        _require(form)
        task = case.co_unit_tasks.filter(pk=form.cleaned_data["task_id"]).first()
        if task is None:
            raise Http404
        joint.co_unit_report(task=task, acting_user=request.user, report=form.cleaned_data["report"])
        return _("已报告协办情况。")

    def _do_request_extension(self, request, case, post, expected):
        form = ExtensionRequestForm(post)
        _require(form)
        joint.extension_request(case=case, acting_user=request.user, **form.cleaned_data)
        return _("延期申请已提交,等待网评办审批。")

    def _do_decide_extension(self, request, case, post, expected):
        form = ExtensionDecisionForm(post)
        _require(form)
        extension = case.extensions.filter(pk=form.cleaned_data["extension_id"]).first()
        if extension is None:
            raise Http404
        result = joint.extension_decide(extension=extension, acting_user=request.user,
                                        approve=form.cleaned_data["decision"] == "approve",
                                        note=form.cleaned_data["note"])
        return _("延期申请:%s。") % result.get_decision_display()

    def _do_arbitrate_return(self, request, case, post, expected):
        form = ReturnRulingForm(post, units=units_in_scope(user=request.user).filter(handling_units_q()))
        _require(form)
        data = form.cleaned_data
        result = joint.case_return_arbitrate(case=case, acting_user=request.user,
                                             send_back=data["decision"] == "send_back",
                                             ruling=data["ruling"], unit=data["unit"],
                                             expected_state=expected or State.REGISTERED)
        return _("已裁定,案件交办至%s。") % result.lead_unit

    def _do_merge(self, request, case, post, expected):
        form = MergeForm(post)
        _require(form)
        main = selectors.cases_visible_to(user=request.user).filter(
            reference=form.cleaned_data["main_reference"]).first()
        if main is None:
            raise services.TransitionRefused(_("找不到该编号的主案件。"))
        joint.case_merge(case=case, into=main, acting_user=request.user, reason=form.cleaned_data["reason"])
        return _("已并入主案件 %s。") % main.reference

    def _do_mark_key_case(self, request, case, post, expected):
        form = KeyCaseForm(post)
        _require(form)
        leader = form.cleaned_data["leader"]
        joint.case_mark_key(case=case, acting_user=request.user, leader=leader)
        return _("已标记为重点难点案件,由 %s 挂帅。") % leader if leader else _("已取消重点难点标记。")

    # ---------------------------------------------------------------- exports

    @admin.action(description=_("导出所选案件(CSV)"))
    def export_csv(self, request, queryset):
        content = export.cases_export_csv(user=request.user, queryset=queryset)
        return spreadsheets.download(content, content_type=spreadsheets.CSV,
                                     filename=spreadsheets.export_filename(_("网民留言案件"), "csv"),
                                     ascii_filename=spreadsheets.export_filename("cases", "csv"))

    @admin.action(description=_("导出所选案件(Excel)"))
    def export_xlsx(self, request, queryset):
        content = export.cases_export_xlsx(user=request.user, queryset=queryset)
        return spreadsheets.download(content, content_type=spreadsheets.XLSX,
                                     filename=spreadsheets.export_filename(_("网民留言案件"), "xlsx"),
                                     ascii_filename=spreadsheets.export_filename("cases", "xlsx"))

    # ---------------------------------------------------------------- bulk actions

    @admin.action(description=_("批量交办所选留言"), permissions=["dispatch"])
    def bulk_dispatch(self, request, queryset):
        """交办 many registered messages in one step, each to the unit chosen on its row.

        The first post shows the selected messages still waiting for dispatch, each with the
        suggestion of the case page (:func:`casework.router_service.dispatch_suggestion`: the
        learned model's top three with confidence and words, or the keyword catalogue's unit,
        labelled as such) preselected; the second (``apply``) dispatches each row through
        :func:`casework.services.case_dispatch` with ``expected_state`` registered, so a message
        dispatched or merged meanwhile is refused, not dispatched twice, and records with each
        dispatch the suggestion shown and whether it was taken. Rows left without a unit are
        skipped; a refused row keeps the dispatcher's choices on the page.
        """
        cases = list(queryset.filter(state=State.REGISTERED).select_related("platform").order_by("pk"))
        skipped = queryset.exclude(state=State.REGISTERED).count()
        units = list(units_in_scope(user=request.user).filter(handling_units_q()).order_by("path"))
        by_pk = {u.pk: u for u in units}
        rows = []
        for case in cases:
            suggestion = dispatch_suggestion(case=case, units=units)
            keywords = (routing.unit_suggestion(case=case, units=[suggestion.unit])[1]
                        if suggestion.source == "catalogue" else [])
            chosen = request.POST.get(f"unit_{case.pk}") if "apply" in request.POST else (
                str(suggestion.unit.pk) if suggestion.unit and suggestion.unit.pk in by_pk else "")
            rows.append({"case": case, "suggestion": suggestion, "keywords": keywords, "chosen": chosen or "",
                         "seen": suggestion_seen_form(suggestion, prefix=f"s{case.pk}")})
        if "apply" in request.POST:
            note = (request.POST.get("note") or "").strip()
            done, refused = [], []
            for row in rows:
                unit = by_pk.get(int(row["chosen"])) if row["chosen"].isdigit() else None
                if unit is None:
                    refused.append((row, _("未选择承办单位")))
                    continue
                try:
                    services.case_dispatch(case=row["case"], acting_user=request.user, unit=unit, note=note,
                                           expected_state=State.REGISTERED,
                                           suggestion=suggestion_from_post(request.POST,
                                                                           prefix=f"s{row['case'].pk}"))
                except (PermissionDenied, services.TransitionRefused) as exc:
                    refused.append((row, str(exc)))
                    continue
                self.log_change(request, row["case"], _("执行:%s") % _("批量交办"))
                done.append(row)
            if done:
                messages.success(request, _("已交办 %d 件。") % len(done))
            if skipped:
                messages.warning(request, _("另有 %d 件已不是待交办状态(已被他人处理),未交办。") % skipped)
            if not refused:
                return None
            for row, why in refused:
                row["error"] = why
            rows = [row for row, _why in refused]
        context = {
            **self.admin_site.each_context(request),
            "title": _("批量交办"),
            "opts": self.model._meta,
            "rows": rows,
            "units": units,
            "skipped": skipped,
            "note": request.POST.get("note", ""),
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/casework/case/bulk_dispatch.html", context)

    def has_dispatch_permission(self, request):
        return request.user.has_perm("casework.dispatch_case")

    @admin.action(description=_("批量归档所选案件(逐件检查权限)"))
    def bulk_archive(self, request, queryset):
        """Archive the selected cases after a confirmation page (like Django's bulk delete).

        The page lists the cases and marks those without a follow-up in their current round; their
        archiving needs the reason typed there (the service refuses them otherwise). Only cases
        still 已回复 are archived; each goes through :func:`casework.services.case_archive`.
        """
        cases = list(queryset.select_related("lead_unit").order_by("pk"))
        if request.POST.get("confirm") != "yes":
            followed = set(
                selectors.cases_followed_up(case_ids=[c.pk for c in cases])
            )
            rows = [(c, c.pk in followed) for c in cases]
            context = {
                **self.admin_site.each_context(request),
                "title": _("确认批量归档"),
                "opts": self.model._meta,
                "rows": rows,
                "missing": sum(1 for _c, ok in rows if not ok and _c.state == State.REPLIED),
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                "confirm_text": CONFIRM_ACTIONS["bulk_archive"],
                "reason": request.POST.get("reason", ""),
            }
            return TemplateResponse(request, "admin/casework/case/bulk_archive_confirm.html", context)
        reason = request.POST.get("reason", "")
        done, refused = 0, []
        for case in cases:
            try:
                services.case_archive(case=case, acting_user=request.user, expected_state=State.REPLIED,
                                      reason=reason)
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


# Actions of the joint-handling panels: action → words for the admin log.
JOINT_ACTIONS = {
    "assign_co_unit": _("指定协办单位"),
    "co_unit_report": _("协办报告"),
    "request_extension": _("申请延期"),
    "decide_extension": _("延期审批"),
    "arbitrate_return": _("退回裁定"),
    "merge": _("并入主案件"),
    "mark_key_case": _("标记重点难点"),
}


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


@admin.register(PublishedReply)
class PublishedReplyAdmin(ScopedCaseChildAdmin):
    """Every published version of every reply in scope, read-only (published text is never edited)."""

    list_display = ["case", "version", "round", "where", "published_at", "published_by", "draft", "follows"]
    list_select_related = ["case", "published_by", "draft", "follows"]
    search_fields = ["case__reference", "text"]


@admin.register(CoUnitTask)
class CoUnitTaskAdmin(ScopedCaseChildAdmin):
    list_display = ["case", "unit", "due_at", "reported_at"]
    list_select_related = ["case", "unit"]
    list_filter = [("reported_at", admin.EmptyFieldListFilter)]


@admin.register(Extension)
class ExtensionAdmin(ScopedCaseChildAdmin):
    list_display = ["case", "clock", "unit", "requested_days", "requested_at", "decision", "new_due_at"]
    list_select_related = ["case", "unit"]
    list_filter = ["decision"]


@admin.register(CaseEvent)
class CaseEventAdmin(ScopedCaseChildAdmin):
    list_display = ["case", "seq", "action", "from_state", "to_state", "actor", "at"]
    list_select_related = ["case", "actor"]
    list_filter = ["action"]
    search_fields = ["case__reference"]


class NoticeAnswerForm(VersionedForm):
    answer = forms.CharField(label=_("单位答复"), widget=forms.Textarea(attrs={"rows": 4}))


class NoticeStatusFilter(admin.SimpleListFilter):
    """待答复 / 已答复 / 已终止, by the one rule of ``selectors.notices_awaiting_answer_q``."""

    title = _("状态")
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("awaiting", _("待答复")), ("answered", _("已答复")), ("closed", _("已终止或无需答复"))]

    def queryset(self, request, queryset):
        awaiting = selectors.notices_awaiting_answer_q()
        if self.value() == "awaiting":
            return queryset.filter(awaiting)
        if self.value() == "answered":
            return queryset.filter(answered_at__isnull=False)
        if self.value() == "closed":
            return queryset.filter(answered_at__isnull=True).exclude(awaiting)
        return queryset


@admin.register(SupervisionNotice)
class SupervisionNoticeAdmin(PrintableMixin, ScopedCaseChildAdmin):
    """督办单 of the cases in scope, one row each (the case, the answer deadline — red when passed —
    and the status); the supervised unit answers one on its page, and only it is offered the answer."""

    list_display = ["notice_no", "case_cell", "unit", "origin", "opened_local", "due_cell", "status"]
    list_display_links = ["notice_no"]
    list_select_related = ["case", "unit"]
    list_filter = [NoticeStatusFilter, "origin", ("answered_at", admin.EmptyFieldListFilter)]
    print_template = "admin/casework/notice/print.html"
    print_name = "notice"

    def get_changelist_instance(self, request):
        cl = super().get_changelist_instance(request)
        rows = list(cl.result_list)
        dues = tracking.notices_answer_due(rows)
        for notice in rows:
            notice.answer_due_at = dues.get(notice.pk)
        return cl

    @admin.display(description=_("督办单"), ordering="pk")
    def notice_no(self, obj):
        return _("督办单 #%(pk)s") % {"pk": obj.pk}

    @admin.display(description=_("案件"), ordering="case__reference")
    def case_cell(self, obj):
        return format_html("{} {}", obj.case.reference, mask_personal_numbers(obj.case.subject)[:40])

    @admin.display(description=_("督办时间"), ordering="opened_at")
    def opened_local(self, obj):
        return when_short(obj.opened_at)

    @admin.display(description=pgettext_lazy("督办单", "答复期限"))
    def due_cell(self, obj):
        due = getattr(obj, "answer_due_at", None)
        if due is None:
            return "—"
        late = obj.answered_at is None and selectors.notice_awaits_answer(notice=obj) and due <= timezone.now()
        if late:
            return format_html('<span class="cw-late" style="color:#ba2121;font-weight:bold">{} · {}</span>',
                               when_short(due), _("已逾期"))
        return when_short(due)

    @admin.display(description=_("状态"))
    def status(self, obj):
        if obj.answered_at:
            return _("已答复")
        if obj.closed_at:
            return _("已终止:%(reason)s") % {"reason": obj.closed_reason}
        if selectors.notice_awaits_answer(notice=obj):
            return _("待答复")
        return _("无需答复(案件已办结或改由其他单位承办)")

    def get_urls(self):
        return [
            path("<int:pk>/answer/", self.admin_site.admin_view(self.answer_view),
                 name="casework_supervisionnotice_answer"),
            *self.print_urls(),
            *super().get_urls(),
        ]

    def _notice(self, request, pk, *, mask=True):
        notice = self.get_queryset(request).select_related("case", "unit", "opened_by").filter(pk=pk).first()
        if notice is None:
            raise Http404
        if not self.has_view_permission(request, notice):  # staff without a role read no notice
            raise PermissionDenied
        if mask and not privacy.user_may_see_personal_numbers(user=request.user):
            privacy.mask_instance_text(notice)  # shown only, never saved
        return notice

    def _print_object(self, request, pk):
        return self._notice(request, pk)

    def page_context(self, request, notice) -> dict:
        """What the notice page, its print view and its PDF show (one place)."""
        due = tracking.notices_answer_due([notice]).get(notice.pk)
        awaits = selectors.notice_awaits_answer(notice=notice)
        return {
            "notice": notice,
            "status": self.status(notice),
            "answer_due_at": due,
            "late": awaits and due is not None and due <= timezone.now(),
            "may_answer": tracking.user_may_answer_notice(user=request.user, notice=notice),
            "may_see_numbers": privacy.user_may_see_personal_numbers(user=request.user),
            "now": timezone.now(),
        }

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method != "GET":
            raise PermissionDenied  # a read-only page: nothing to save (as Django answers)
        try:
            pk = int(object_id)
        except (TypeError, ValueError) as exc:
            raise Http404 from exc
        notice = self._notice(request, pk)
        context = {
            **self.admin_site.each_context(request),
            **self.page_context(request, notice),
            "title": _("督办单:%(ref)s → %(unit)s") % {"ref": notice.case.reference, "unit": notice.unit.name},
            "opts": self.model._meta,
            "case_visible": selectors.user_can_see_case(user=request.user, case=notice.case),
            "print_url": reverse("admin:casework_supervisionnotice_print", args=[notice.pk]),
            "pdf_url": reverse("admin:casework_supervisionnotice_pdf", args=[notice.pk]),
        }
        return TemplateResponse(request, "admin/casework/notice/detail.html", context)

    def answer_view(self, request, pk):
        # Outside the scope the notice does not exist (404). Someone who may not answer it (the
        # office, another unit, a notice no longer awaiting) is told why on the page, and what he
        # typed is shown back; the form is offered only to the supervised unit.
        notice = self._notice(request, pk, mask=False)  # acted on and versioned: never masked
        title = _("答复督办单:%(ref)s") % {"ref": notice.case.reference}
        back = reverse("admin:casework_supervisionnotice_change", args=[notice.pk])
        # A POST of the unit on a notice answered or ended since its page was opened goes on to the
        # version check, which says who changed it and keeps the answer typed.
        may_post = request.method == "POST" and tracking.user_answers_for_unit(user=request.user, unit=notice.unit)
        if not may_post and not tracking.user_may_answer_notice(user=request.user, notice=notice):
            if notice.answered_at:
                reason = _("该督办单已答复,不能修改。")
            elif not selectors.notice_awaits_answer(notice=notice):
                reason = _("该督办单已无需答复(案件已办结、已终止或改由其他单位承办)。")
            else:
                reason = _("只有被督办单位(%(unit)s)的办理员可以答复督办单。") % {"unit": notice.unit.name}
            return TemplateResponse(request, "admin/casework/refused.html", {
                **self.admin_site.each_context(request), "title": title, "reason": reason,
                "typed": request.POST.get("answer", ""), "opts": self.model._meta, "back_url": back,
            }, status=403 if request.method == "POST" else 200)
        form = NoticeAnswerForm(request.POST or None, initial=self.version_initial(request, notice))
        if request.method == "POST" and form.is_valid():
            # A refusal (stale page, answered meanwhile) re-renders the page with the answer typed.
            with transaction.atomic():
                if self.version_form_fresh(request, form, notice):
                    try:
                        escalation.supervision_notice_answer(notice=notice, acting_user=request.user,
                                                             answer=form.cleaned_data["answer"])
                    except (escalation.NoticeAnswerRefused, PermissionDenied) as exc:
                        form.add_error(None, str(exc))
                    else:
                        self.log_change(request, notice, _("答复督办单"))
                        messages.success(request, _("督办单已答复。"))
                        return HttpResponseRedirect(back)
        context = {
            **self.admin_site.each_context(request),
            **self.page_context(request, notice),
            "title": title,
            "form": form,
            "opts": self.model._meta,
            "back_url": back,
        }
        return TemplateResponse(request, "admin/casework/notice_answer.html", context)


@admin.register(Platform)
class PlatformAdmin(SuperuserConfigAdmin):
    list_display = ["name", "code", "url"]


# calendar, policies, ladder, referrals; what is learned from the archive (issue 12)
from casework import admin_config, importing_admin, learning_admin, supervision_admin, tracking_admin  # noqa: E402,F401  (and the upload page, import jobs)
