"""Admin of 跟踪督办 (issue 13 §4): the referred unit's page for its rectification reports.

A round is readable by whoever sees its referral's case and by the staff of the referred unit (who
answer it: :func:`casework.tracking.user_may_answer_round`); the answer form is offered only to
them. Rounds are set and the matter closed on the referral's page (``admin_config``). Every write
goes through :mod:`casework.tracking`. Imported at the bottom of :mod:`casework.admin`.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from accounts.admin_base import StaffModelAdmin
from accounts.admin_versioning import VersionedForm
from accounts.selectors import unit_scope_q
from casework import privacy, selectors, tracking
from casework.models import RectificationRound
from casework.templatetags.casework_when import when_short


class RectificationAnswerForm(VersionedForm):
    answer = forms.CharField(label=_("整改报告"), widget=forms.Textarea(attrs={"rows": 8}))


class RoundStatusFilter(admin.SimpleListFilter):
    title = _("状态")
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("open", _("待报送")), ("answered", _("已报送")), ("closed", _("已结案"))]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(answered_at__isnull=True, closed_at__isnull=True)
        if self.value() == "answered":
            return queryset.filter(answered_at__isnull=False)
        if self.value() == "closed":
            return queryset.filter(answered_at__isnull=True, closed_at__isnull=False)
        return queryset


@admin.register(RectificationRound)
class RectificationRoundAdmin(StaffModelAdmin):
    """整改报告: the referred unit's list of rounds (deadline red when passed) and its answer page."""

    list_display = ["round_no", "case_cell", "unit_cell", "set_local", "due_cell", "status"]
    list_display_links = ["round_no"]
    list_select_related = ["referral__case", "referral__unit"]
    list_filter = [RoundStatusFilter]
    ordering = ["answered_at", "due_at"]

    def get_queryset(self, request):
        qs = super().get_queryset(request).select_related("referral__case", "referral__unit")
        user = request.user
        return qs.filter(
            Q(referral__case__in=selectors.cases_visible_to(user=user)) | unit_scope_q(user=user, prefix="referral__unit__")
        )

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("整改报告"), ordering="number")
    def round_no(self, obj):
        return _("第 %(n)s 轮") % {"n": obj.number}

    @admin.display(description=_("案件"), ordering="referral__case__reference")
    def case_cell(self, obj):
        return obj.referral.case.reference

    @admin.display(description=_("被移交单位"))
    def unit_cell(self, obj):
        return obj.referral.unit.name

    @admin.display(description=_("下达时间"), ordering="set_at")
    def set_local(self, obj):
        return when_short(obj.set_at)

    @admin.display(description=_("报告期限"), ordering="due_at")
    def due_cell(self, obj):
        if obj.is_open and obj.due_at <= timezone.now():
            return format_html('<span class="cw-late" style="color:#ba2121;font-weight:bold">{} · {}</span>',
                               when_short(obj.due_at), _("已逾期"))
        return when_short(obj.due_at)

    @admin.display(description=_("状态"))
    def status(self, obj):
        if obj.answered_at:
            return _("已报送")
        if obj.closed_at:
            return _("已结案(未报送)")
        return _("待报送")

    def get_urls(self):
        return [
            path("<int:pk>/answer/", self.admin_site.admin_view(self.answer_view),
                 name="casework_rectificationround_answer"),
            *super().get_urls(),
        ]

    def _round(self, request, pk, *, mask=True):
        rnd = self.get_queryset(request).select_related("set_by", "answered_by").filter(pk=pk).first()
        if rnd is None:
            raise Http404
        if not self.has_view_permission(request, rnd):
            raise PermissionDenied
        if mask and not privacy.user_may_see_personal_numbers(user=request.user):
            privacy.mask_instance_text(rnd)  # shown only, never saved
        return rnd

    def _context(self, request, rnd, **extra) -> dict:
        referral = rnd.referral
        may_answer = tracking.user_may_answer_round(user=request.user, rnd=rnd)
        return {
            **self.admin_site.each_context(request),
            "round": rnd,
            "referral": referral,
            "late": rnd.is_open and rnd.due_at <= timezone.now(),
            "may_answer": may_answer and rnd.is_open and not tracking.referral_is_closed(referral),
            "referral_visible": selectors.user_can_see_case(user=request.user, case=referral.case)
            and request.user.has_perm("casework.view_disciplinereferral"),
            "previous": list(referral.rectification_rounds.filter(number__lt=rnd.number).select_related("answered_by")),
            "may_see_numbers": privacy.user_may_see_personal_numbers(user=request.user),
            "opts": self.model._meta,
            **extra,
        }

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method != "GET":
            raise PermissionDenied  # a read-only page: nothing to save (as Django answers)
        try:
            pk = int(object_id)
        except (TypeError, ValueError) as exc:
            raise Http404 from exc
        rnd = self._round(request, pk)
        return TemplateResponse(request, "admin/casework/rectification/detail.html", self._context(
            request, rnd, title=str(rnd)))

    def answer_view(self, request, pk):
        rnd = self._round(request, pk, mask=False)  # acted on and versioned: never masked
        back = reverse("admin:casework_rectificationround_change", args=[rnd.pk])
        context = self._context(request, rnd, title=_("报送整改报告:%s") % rnd, back_url=back)
        unit_may = tracking.user_may_answer_round(user=request.user, rnd=rnd)
        # A POST of the unit on a round answered since its page was opened goes on to the version
        # check, which says who changed it and keeps the report typed.
        if not context["may_answer"] and not (unit_may and request.method == "POST"):
            if not unit_may:
                reason = _("只有被移交单位(%(unit)s)的办理员可以报送整改报告。") % {"unit": rnd.referral.unit.name}
            elif rnd.answered_at:
                reason = _("该轮整改报告已报送,不能修改。")
            else:
                reason = _("该移交已登记处理结果,无需再报送。")
            return TemplateResponse(request, "admin/casework/refused.html", {
                **context, "reason": reason, "typed": request.POST.get("answer", ""),
            }, status=403 if request.method == "POST" else 200)
        form = RectificationAnswerForm(request.POST or None, initial=self.version_initial(request, rnd))
        if request.method == "POST" and form.is_valid():
            with transaction.atomic():
                if self.version_form_fresh(request, form, rnd):
                    try:
                        tracking.rectification_answer(rnd=rnd, acting_user=request.user,
                                                      answer=form.cleaned_data["answer"])
                    except (tracking.TrackingRefused, PermissionDenied) as exc:
                        form.add_error(None, str(exc))
                    else:
                        self.log_change(request, rnd, _("报送整改报告"))
                        messages.success(request, _("整改报告已报送。"))
                        return HttpResponseRedirect(back)
        context["form"] = form
        return TemplateResponse(request, "admin/casework/rectification/answer.html", context)
