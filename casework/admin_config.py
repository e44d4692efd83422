"""Admin of the deadline configuration and the ladder's records (DESIGN.md §4).

The work calendar, calendar years, unit calendar exceptions, deadline policies and the escalation
ladder are superuser configuration; stored clocks, escalation steps, referrals to 纪检督察 and the
e-mail outbox are records. Every write goes through a service (:mod:`casework.clocks`,
:mod:`casework.escalation`). Imported at the bottom of :mod:`casework.admin`.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Subquery
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from accounts.admin_base import StaffModelAdmin, StaffTabularInline, SuperuserRecordAdminMixin, admin_adopt
from accounts.admin_versioning import VersionedForm
from casework import clocks, escalation, outbox, privacy, selectors, tracking
from casework.admin_common import ScopedCaseChildAdmin, SuperuserConfigAdmin
from casework.models import (
    AuditVerificationRun,
    CalendarYear,
    CaseClock,
    Clock,
    DeadlinePolicy,
    DisciplineReferral,
    EscalationRung,
    EscalationStep,
    Notification,
    NotificationRecipient,
    UnitCalendarDay,
    WorkCalendarDay,
)
from casework.printing import PrintableMixin
from casework.templatetags.casework_when import when, when_short
from casework.text import mask_personal_numbers


def calendar_warning_message(request, *, case=None) -> None:
    """Add an admin warning when deadlines depend on a calendar year that is not confirmed.

    With ``case``: that case's running clocks; without: any running clock. Another admin (the
    case page and list) calls this; one query.
    """
    years = (
        clocks.unconfirmed_calendar_warnings(case=case)
        if case is not None
        else clocks.calendar_unconfirmed_years_in_use()
    )
    if years:
        messages.warning(
            request,
            _(
                "注意:期限涉及 %(years)s 年,该年度工作日历尚未确认(节假日和调休未录入),"
                "期限暂按周一至周五计算。请系统管理员录入国务院公布的安排并确认该年度。"
            )
            % {"years": "、".join(years)},
        )


# ---------------------------------------------------------------- calendar


@admin.register(WorkCalendarDay)
class WorkCalendarDayAdmin(SuperuserConfigAdmin):
    list_display = ["date", "weekday", "is_workday", "note"]
    list_filter = ["is_workday"]
    date_hierarchy = "date"
    search_fields = ["note"]

    @admin.display(description=_("星期"))
    def weekday(self, obj):
        return "一二三四五六日"[obj.date.weekday()]

    def changelist_view(self, request, extra_context=None):
        calendar_warning_message(request)
        return super().changelist_view(request, extra_context)


@admin.register(CalendarYear)
class CalendarYearAdmin(SuperuserConfigAdmin):
    list_display = ["year", "confirmed", "source", "confirmed_by", "confirmed_at"]
    readonly_fields = ["confirmed", "confirmed_by", "confirmed_at"]
    actions = ["confirm_years"]

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return request.user.is_superuser

    def changelist_view(self, request, extra_context=None):
        calendar_warning_message(request)
        return super().changelist_view(request, extra_context)

    @admin.action(description=_("确认所选年度的工作日历(已录入国务院公布的节假日安排)"))
    def confirm_years(self, request, queryset):
        for item in queryset:
            try:
                count = clocks.calendar_year_confirm(year=item.year, acting_user=request.user)
            except PermissionDenied as exc:
                messages.error(request, str(exc))
                return
            self.log_change(request, item, _("确认年度工作日历"))
            messages.success(
                request,
                _("%(year)s 年工作日历已确认,重新计算了 %(n)s 个期限。") % {"year": item.year, "n": count},
            )


@admin.register(UnitCalendarDay)
class UnitCalendarDayAdmin(SuperuserConfigAdmin):
    list_display = ["unit", "date", "is_workday", "note"]
    list_filter = ["is_workday", "unit"]
    date_hierarchy = "date"


# ---------------------------------------------------------------- policies and ladder


@admin.register(DeadlinePolicy)
class DeadlinePolicyAdmin(SuperuserConfigAdmin):
    list_display = ["message_type", "platform", "clock", "amount", "unit", "source"]
    list_editable = ["amount", "unit"]
    list_filter = ["message_type", "clock", "platform"]


class EscalationRungForm(forms.ModelForm):
    clocks = forms.MultipleChoiceField(
        label=_("适用时限"), choices=Clock.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = EscalationRung
        fields = "__all__"


@admin.register(EscalationRung)
class EscalationRungAdmin(SuperuserConfigAdmin):
    form = EscalationRungForm
    list_display = [
        "name", "level", "threshold_days", "clock_labels", "requires", "opens_notice",
        "opens_referral", "unit_open_notices_limit", "is_active",
    ]
    ordering = ["threshold_days"]

    @admin.display(description=_("适用时限"))
    def clock_labels(self, obj):
        return "、".join(str(Clock(c).label) for c in obj.clocks if c in Clock.values)

    def has_delete_permission(self, request, obj=None):
        # A rung that steps refer to stays; deactivate it instead.
        return False


@admin.register(CaseClock)
class CaseClockAdmin(ScopedCaseChildAdmin):
    list_display = [
        "case", "clock", "round", "started_at", "due_at", "stopped_at", "extended_days",
        "calendar_flag",
    ]
    list_select_related = ["case"]
    list_filter = ["clock", ("stopped_at", admin.EmptyFieldListFilter)]
    date_hierarchy = "due_at"
    ordering = ["due_at"]

    @admin.display(description=_("日历"))
    def calendar_flag(self, obj):
        if obj.calendar_unconfirmed:
            return format_html(
                '<span style="color:#b00">⚠ {}</span>', _("%s 年日历未确认") % obj.calendar_unconfirmed
            )
        return ""

    def changelist_view(self, request, extra_context=None):
        calendar_warning_message(request)
        return super().changelist_view(request, extra_context)


# ---------------------------------------------------------------- records


@admin.register(EscalationStep)
class EscalationStepAdmin(ScopedCaseChildAdmin):
    list_display = ["case", "clock", "level", "round", "due_at", "happened_at"]
    list_select_related = ["case"]
    list_filter = ["clock", "level"]


class OpenReferralFilter(admin.SimpleListFilter):
    title = _("处理状态")
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("yes", _("待处理")), ("no", _("已登记结果"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(outcome_recorded_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(outcome_recorded_at__isnull=False)
        return queryset


OUTCOME_BLANK = [("", _("——请选择处理方式——"))]


class ReferralOutcomeForm(VersionedForm):
    # No preset: the supervisor chooses (issue 10 §7; the form is refused without a choice).
    kind = forms.ChoiceField(label=_("处理方式"), choices=OUTCOME_BLANK + list(DisciplineReferral.Outcome.choices))
    note = forms.CharField(label=_("处理结果说明"), widget=forms.Textarea(attrs={"rows": 4}))


class RectificationSetForm(VersionedForm):
    requirement = forms.CharField(label=_("整改要求"), widget=forms.Textarea(attrs={"rows": 4}))
    working_days = forms.IntegerField(
        label=_("报告期限(工作日)"), min_value=tracking.MIN_WORKING_DAYS, max_value=tracking.MAX_WORKING_DAYS,
        initial=5, help_text=_("按被移交单位的工作日历计算。"),
    )


@admin.register(DisciplineReferral)
class DisciplineReferralAdmin(PrintableMixin, ScopedCaseChildAdmin):
    """The supervisors' view: open referrals first; the referral's page shows its whole timeline
    (frozen material, 跟踪督办 rounds, reports, reminders, outcome) and offers each supervisor action
    only to those who may take it (:func:`casework.tracking.user_may_track`)."""

    list_display = ["referral_no", "case_cell", "unit", "kind", "trigger_label", "created_local", "tracking_status",
                    "outcome_kind"]
    list_display_links = ["referral_no"]
    list_select_related = ["case", "unit"]
    list_filter = [OpenReferralFilter, "kind", "origin", "outcome_kind", "unit"]
    ordering = ["outcome_recorded_at", "created_at"]
    print_template = "admin/casework/referral/print.html"
    print_name = "referral"

    @admin.display(description=_("移交"), ordering="pk")
    def referral_no(self, obj):
        return _("移交 #%(pk)s") % {"pk": obj.pk}

    @admin.display(description=_("案件"), ordering="case__reference")
    def case_cell(self, obj):
        return format_html("{} {}", obj.case.reference, mask_personal_numbers(obj.case.subject)[:40])

    @admin.display(description=_("触发方式"), ordering="trigger")
    def trigger_label(self, obj):
        return tracking.trigger_label(obj.trigger)

    @admin.display(description=_("移交时间"), ordering="created_at")
    def created_local(self, obj):
        return when_short(obj.created_at)

    @admin.display(description=_("跟踪督办"))
    def tracking_status(self, obj):
        if obj.outcome_recorded_at:
            return _("已结案")
        rnd = tracking.referral_open_round(referral=obj)
        if rnd is None:
            return _("待下达整改要求")
        late = rnd.due_at <= timezone.now()
        text = _("第 %(n)s 轮整改报告待报送,期限 %(due)s") % {"n": rnd.number, "due": when_short(rnd.due_at)}
        return format_html('<span class="{}">{}</span>', "cw-late" if late else "", text)

    def get_urls(self):
        return [
            path("<int:pk>/outcome/", self.admin_site.admin_view(self.outcome_view),
                 name="casework_disciplinereferral_outcome"),
            path("<int:pk>/rectify/", self.admin_site.admin_view(self.rectify_view),
                 name="casework_disciplinereferral_rectify"),
            *self.print_urls(),
            *super().get_urls(),
        ]

    def _referral(self, request, pk, *, mask=True):
        referral = self.get_queryset(request).select_related("unit", "outcome_by").filter(pk=pk).first()
        if referral is None:
            raise Http404
        if not self.has_view_permission(request, referral):
            raise PermissionDenied
        if mask and not privacy.user_may_see_personal_numbers(user=request.user):
            privacy.mask_instance_text(referral)  # shown only, never saved
        return referral

    def _print_object(self, request, pk):
        return self._referral(request, pk)

    def page_context(self, request, referral) -> dict:
        """What the referral page, its print view and its PDF show (one place)."""
        closed = tracking.referral_is_closed(referral)
        open_round = tracking.referral_open_round(referral=referral)
        may_track = tracking.user_may_track(user=request.user, referral=referral) and not closed
        return {
            "referral": referral,
            "trigger": tracking.trigger_label(referral.trigger),
            "material": tracking.snapshot_material(referral=referral),
            "timeline": tracking.referral_timeline(referral=referral),
            "rounds": list(referral.rectification_rounds.select_related("set_by", "answered_by")),
            "open_round": open_round,
            "closed": closed,
            "may_set_round": may_track and open_round is None,
            "may_close": may_track,
            "case_visible": selectors.user_can_see_case(user=request.user, case=referral.case),
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
        referral = self._referral(request, pk)
        context = {
            **self.admin_site.each_context(request),
            **self.page_context(request, referral),
            "title": _("纪检督察移交:%(ref)s") % {"ref": referral.case.reference},
            "opts": self.model._meta,
            "print_url": reverse("admin:casework_disciplinereferral_print", args=[referral.pk]),
            "pdf_url": reverse("admin:casework_disciplinereferral_pdf", args=[referral.pk]),
        }
        return TemplateResponse(request, "admin/casework/referral/detail.html", context)

    def _action_page(self, request, referral, *, form, title, template_name, refusal="", status=200):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "referral": referral,
            "form": form,
            "refusal": refusal,
            "may_see_numbers": privacy.user_may_see_personal_numbers(user=request.user),
            "opts": self.model._meta,
            "back_url": reverse("admin:casework_disciplinereferral_change", args=[referral.pk]),
        }
        return TemplateResponse(request, template_name, context, status=status)

    def _refused_page(self, request, referral, *, title, reason, typed=""):
        """A refused action: the page says why and shows what was typed; never a bare 403."""
        context = {
            **self.admin_site.each_context(request),
            "title": title, "reason": reason, "typed": typed, "opts": self.model._meta,
            "back_url": reverse("admin:casework_disciplinereferral_change", args=[referral.pk]),
        }
        return TemplateResponse(request, "admin/casework/refused.html", context, status=403)

    def outcome_view(self, request, pk):
        referral = self._referral(request, pk, mask=False)  # acted on and versioned: never masked
        title = _("登记处理结果:%s") % referral.case.reference
        if not tracking.user_may_track(user=request.user, referral=referral):
            return self._refused_page(request, referral, title=title,
                                      reason=_("只有纪检督察可以登记处理结果。"),
                                      typed=request.POST.get("note", ""))
        if tracking.referral_is_closed(referral) and request.method != "POST":
            # (a POST goes on to the version check, which says who recorded it and keeps the note)
            return self._refused_page(request, referral, title=title,
                                      reason=_("该移交已登记处理结果,不能修改。"), typed=request.POST.get("note", ""))
        form = ReferralOutcomeForm(request.POST or None, initial=self.version_initial(request, referral))
        if request.method == "POST" and form.is_valid():
            # A refusal (stale page, recorded meanwhile) re-renders the page with the note typed.
            with transaction.atomic():
                if self.version_form_fresh(request, form, referral):
                    try:
                        tracking.referral_close(
                            referral=referral, acting_user=request.user,
                            kind=form.cleaned_data["kind"], note=form.cleaned_data["note"],
                        )
                    except (escalation.ReferralOutcomeRefused, PermissionDenied) as exc:
                        form.add_error(None, str(exc))
                    else:
                        self.log_change(request, referral, _("登记处理结果"))
                        messages.success(request, _("处理结果已登记,跟踪督办结束。"))
                        return HttpResponseRedirect(
                            reverse("admin:casework_disciplinereferral_change", args=[referral.pk])
                        )
        return self._action_page(request, referral, form=form, title=title,
                                 template_name="admin/casework/referral_outcome.html")

    def rectify_view(self, request, pk):
        referral = self._referral(request, pk, mask=False)  # acted on and versioned: never masked
        title = _("下达整改报告要求:%s") % referral.case.reference
        typed = request.POST.get("requirement", "")
        if not tracking.user_may_track(user=request.user, referral=referral):
            return self._refused_page(request, referral, title=title,
                                      reason=_("只有纪检督察可以下达整改报告要求。"), typed=typed)
        form = RectificationSetForm(request.POST or None, initial=self.version_initial(request, referral))
        if request.method == "POST" and form.is_valid():
            with transaction.atomic():
                if self.version_form_fresh(request, form, referral):
                    try:
                        rnd = tracking.rectification_set(
                            referral=referral, acting_user=request.user,
                            requirement=form.cleaned_data["requirement"],
                            working_days=form.cleaned_data["working_days"],
                        )
                    except (tracking.TrackingRefused, PermissionDenied) as exc:
                        form.add_error(None, str(exc))
                    else:
                        self.log_change(request, referral, _("下达整改报告要求"))
                        messages.success(request, _("已下达第 %(n)s 轮整改报告要求,期限 %(due)s。") % {
                            "n": rnd.number, "due": when(rnd.due_at)})
                        return HttpResponseRedirect(
                            reverse("admin:casework_disciplinereferral_change", args=[referral.pk]))
        return self._action_page(request, referral, form=form, title=title,
                                 template_name="admin/casework/referral/rectify.html")


class NotificationStateFilter(admin.SimpleListFilter):
    """What is stuck in the outbox: unsent, partially delivered, failing, waiting for a superuser."""

    title = _("投递情况")
    parameter_name = "delivery"

    def lookups(self, request, model_admin):
        return [
            ("unsent", _("未发送完毕")),
            ("partial", _("部分送达")),
            ("failing", _("发送失败中")),
            ("stuck", _("待管理员处理(永久拒收)")),
            ("sent", _("已全部送达")),
        ]

    def queryset(self, request, queryset):
        unsent = queryset.filter(sent_at__isnull=True)
        delivered = NotificationRecipient.objects.filter(
            notification=OuterRef("pk"), status=NotificationRecipient.Status.SENT
        )
        return {
            "unsent": lambda: unsent,
            "partial": lambda: unsent.filter(Exists(delivered)),
            "failing": lambda: unsent.filter(attempts__gt=0).exclude(last_error=""),
            "stuck": lambda: unsent.filter(next_attempt_at__isnull=True),
            "sent": lambda: queryset.filter(sent_at__isnull=False),
        }.get(self.value(), lambda: queryset)()


class NotificationRecipientInline(StaffTabularInline):
    model = NotificationRecipient
    fields = ["address", "status", "attempts", "last_code", "last_error", "sent_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(Notification)
class NotificationAdmin(SuperuserRecordAdminMixin, StaffModelAdmin):
    """The outbox (superusers): what was sent, what is stuck and why, per recipient; retry."""

    list_display = ["subject", "created_at", "delivery_state", "recipients_delivered", "attempts",
                    "next_attempt_at", "last_error_short"]
    list_filter = [NotificationStateFilter, ("sent_at", admin.EmptyFieldListFilter)]
    search_fields = ["subject", "key"]
    fields = ["key", "case", "recipients", "subject", "body", "created_at", "sent_at", "attempts",
              "next_attempt_at", "last_error"]
    readonly_fields = fields
    inlines = [NotificationRecipientInline]
    actions = ["retry_selected"]

    def get_queryset(self, request):
        sent = NotificationRecipient.objects.filter(
            notification=OuterRef("pk"), status=NotificationRecipient.Status.SENT
        ).order_by().values("notification").annotate(n=Count("pk")).values("n")
        return super().get_queryset(request).annotate(delivered_n=Subquery(sent))

    @admin.display(description=_("状态"))
    def delivery_state(self, obj):
        if obj.sent_at is not None:
            return _("已全部送达")
        if obj.attempts == 0:
            return _("待发送")
        if obj.next_attempt_at is None:
            return _("待管理员处理")
        return _("部分送达,重试中") if obj.delivered_n else _("发送失败,重试中")

    @admin.display(description=_("已送达/收件人"))
    def recipients_delivered(self, obj):
        return f"{obj.delivered_n or 0}/{len(obj.recipients or [])}"

    @admin.display(description=_("最近错误"))
    def last_error_short(self, obj):
        return (obj.last_error or "")[:120]

    @admin.action(description=_("立即重新发送所选邮件(含被拒收的收件人)"), permissions=["retry"])
    def retry_selected(self, request, queryset):
        done = sum(
            outbox.notification_retry(notification=n, acting_user=request.user)
            for n in queryset.filter(sent_at__isnull=True)
        )
        self.message_user(request, _("已安排重新发送 %(n)s 封邮件。") % {"n": done}, messages.SUCCESS)

    def has_retry_permission(self, request):
        return request.user.is_superuser



class VerificationResultFilter(admin.SimpleListFilter):
    title = _("核验结果")
    parameter_name = "result"

    def lookups(self, request, model_admin):
        return [("failed", _("有异常")), ("ok", _("全部通过"))]

    def queryset(self, request, queryset):
        if self.value() == "failed":
            return queryset.filter(failure_count__gt=0)
        if self.value() == "ok":
            return queryset.filter(failure_count=0, finished_at__isnull=False)
        return queryset


@admin.register(AuditVerificationRun)
class AuditVerificationRunAdmin(SuperuserRecordAdminMixin, StaffModelAdmin):
    """Runs of the scheduled audit chain check (superusers): when, how many cases, what failed."""

    list_display = ["started_at", "finished_at", "cases_checked", "events_checked", "failure_count",
                    "passed"]
    list_filter = [VerificationResultFilter]
    fields = ["started_at", "finished_at", "cases_checked", "events_checked", "failure_count",
              "failure_table", "anchor"]
    readonly_fields = fields

    @admin.display(description=_("通过"), boolean=True)
    def passed(self, obj):
        return obj.ok

    @admin.display(description=_("异常明细"))
    def failure_table(self, obj):
        if not obj.failures:
            return "—"
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td></tr>",
            ((f.get("reference") or f.get("case_id") or "—", f.get("reason", "")) for f in obj.failures),
        )
        return format_html("<table><tr><th>{}</th><th>{}</th></tr>{}</table>", _("案件"), _("原因"), rows)



for _model in (PeriodicTask, ClockedSchedule, CrontabSchedule, SolarSchedule, IntervalSchedule):
    admin_adopt(_model)
