"""Admin of the assessment app: weights (superusers), topics, knowledge base, improvement actions.

The office (users allowed to change topics: 网评办) reviews suggested topics, confirms, dismisses
or splits them, marks common issues, attaches standard answers and assigns improvement actions.
Topic pages show the topic's weekly volume before and after its action as a chart.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _

from accounts.admin_base import StaffModelAdmin, StaffTabularInline
from accounts.admin_versioning import VERSION_FIELD
from accounts.models import Unit
from assessment import services
from assessment.admin_scope import OfficeAdmin, TopicRelatedScopeMixin, TopicScopeAdminMixin
from assessment.models import AssessmentWeights, ImprovementAction, KnowledgeArticle, Topic, TopicMembership
from assessment.rules import user_reads_assessment
from assessment.selectors import topic_weekly_volume
from casework.selectors import cases_visible_to
from casework.text import mask_personal_numbers


@admin.register(AssessmentWeights)
class AssessmentWeightsAdmin(StaffModelAdmin):
    list_display = ("name", "sign_for_on_time", "handled_on_time", "return_rate", "send_back_rate",
                    "satisfaction", "per_supervision_notice", "per_referral", "per_extension", "updated_at")
    readonly_fields = ("updated_at", "updated_by")

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    has_view_permission = has_add_permission = has_change_permission = (
        lambda self, request, obj=None: request.user.is_active and request.user.is_superuser
    )

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)


class MembershipInline(StaffTabularInline):
    model = TopicMembership
    fields = ("case", "case_subject", "similarity")
    readonly_fields = ("case", "case_subject", "similarity")
    extra = 0
    can_delete = False

    @admin.display(description=_("留言主题"))
    def case_subject(self, obj):
        return mask_personal_numbers(obj.case.subject)  # the case column beside it is masked too

    def get_queryset(self, request):
        return super().get_queryset(request).filter(
            case__in=cases_visible_to(user=request.user).values("id")).select_related("case")

    def has_add_permission(self, request, obj=None):
        return False


class ActionInline(StaffTabularInline):
    model = ImprovementAction
    fields = ("unit", "description", "due_date", "started_on", "status")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Topic)
class TopicAdmin(TopicScopeAdminMixin, OfficeAdmin):
    list_display = ("title", "heat_display", "message_count", "citizen_count", "likes", "status",
                    "is_common_issue", "last_at")
    list_filter = ("status", "is_common_issue")
    search_fields = ("title", "keywords")
    fields = ("title", "keywords", "status", "is_common_issue", "article", "heat", "message_count",
              "citizen_count", "likes", "dislikes", "first_at", "last_at", "reviewed_by", "reviewed_at")
    readonly_fields = ("keywords", "heat", "message_count", "citizen_count", "likes", "dislikes", "first_at",
                       "last_at", "reviewed_by", "reviewed_at")
    inlines = [MembershipInline, ActionInline]
    actions = ["confirm", "dismiss", "mark_common"]
    change_form_template = "assessment/topic_change_form.html"

    @admin.display(description=_("热度指数"), ordering="heat")
    def heat_display(self, obj):
        return f"{obj.heat:.1f}"

    def save_model(self, request, obj, form, change):
        services.topic_review(topic=obj, acting_user=request.user, status=obj.status,
                              is_common_issue=obj.is_common_issue, title=obj.title)
        if "article" in form.changed_data:
            services.topic_article_attach(topic=obj, acting_user=request.user, article=obj.article)

    def _bulk(self, request, queryset, **kw):
        for topic in queryset:
            try:
                services.topic_review(topic=topic, acting_user=request.user, **kw)
            except ValidationError as exc:
                self.message_user(request, f"{topic}: {'; '.join(exc.messages)}", messages.ERROR)
            else:
                self.log_change(request, topic, _("批量审核:%s") % topic.get_status_display())

    @admin.action(description=_("确认所选主题"))
    def confirm(self, request, queryset):
        self._bulk(request, queryset, status=Topic.Status.CONFIRMED)

    @admin.action(description=_("所选主题不成立"))
    def dismiss(self, request, queryset):
        self._bulk(request, queryset, status=Topic.Status.DISMISSED, is_common_issue=False)

    @admin.action(description=_("确认并标记为共性问题"))
    def mark_common(self, request, queryset):
        self._bulk(request, queryset, status=Topic.Status.CONFIRMED, is_common_issue=True)

    def get_urls(self):
        return [
            path("<int:object_id>/split/", self.admin_site.admin_view(self.split_view),
                 name="assessment_topic_split"),
            path("<int:object_id>/assign/", self.admin_site.admin_view(self.assign_view),
                 name="assessment_topic_assign"),
        ] + super().get_urls()

    def _topic_for_change(self, request, object_id):
        topic = get_object_or_404(self.get_queryset(request), pk=object_id)
        if request.method != "POST" or not self.has_change_permission(request, topic):
            raise PermissionDenied
        return topic

    _KEPT = "assessment_topic_kept_input"

    def _topic_fresh(self, request, topic, form: str) -> bool:
        """The topic page's version still holds (under lock); else refuse and keep the input typed."""
        if self.version_posted_fresh(request, topic, request.POST.get(VERSION_FIELD), row=False,
                                     on_stale=lambda m: self.message_user(request, m, messages.ERROR)):
            return True
        self._keep_input(request, topic, form)
        return False

    def _keep_input(self, request, topic, form: str) -> None:
        request.session[self._KEPT] = {
            "topic": topic.pk, "form": form, "case_ids": request.POST.getlist("case_ids"),
            **{k: request.POST.get(k, "") for k in ("title", "unit", "description", "due_date", "started_on")},
        }

    @transaction.atomic
    def split_view(self, request, object_id):
        topic = self._topic_for_change(request, object_id)
        if not self._topic_fresh(request, topic, "split"):
            return redirect("admin:assessment_topic_change", topic.pk)
        try:
            ids = [int(x) for x in request.POST.getlist("case_ids")]
            new = services.topic_split(topic=topic, acting_user=request.user, case_ids=ids,
                                       title=request.POST.get("title", ""))
        except (ValueError, ValidationError) as exc:
            transaction.set_rollback(True)
            self._keep_input(request, topic, "split")
            self.message_user(request, "; ".join(getattr(exc, "messages", [str(exc)])), messages.ERROR)
            return redirect("admin:assessment_topic_change", topic.pk)
        self.message_user(request, _("已拆分为新主题。"), messages.SUCCESS)
        return redirect("admin:assessment_topic_change", new.pk)

    def assign_view(self, request, object_id):
        from datetime import date

        topic = self._topic_for_change(request, object_id)
        with transaction.atomic():
            if not self._topic_fresh(request, topic, "assign"):
                return redirect("admin:assessment_topic_change", topic.pk)
            return self._assign(request, topic, Unit, date)

    def _assign(self, request, topic, Unit, date):
        try:
            unit = Unit.objects.get(pk=request.POST.get("unit"))
            services.improvement_action_assign(
                topic=topic, acting_user=request.user, unit=unit,
                description=request.POST.get("description", ""),
                due_date=date.fromisoformat(request.POST.get("due_date", "")),
                started_on=date.fromisoformat(request.POST["started_on"]) if request.POST.get("started_on") else None,
            )
        except (ValueError, Unit.DoesNotExist, ValidationError) as exc:
            self._keep_input(request, topic, "assign")
            self.message_user(request, "; ".join(getattr(exc, "messages", [str(exc)])), messages.ERROR)
        else:
            self.message_user(request, _("已交办整改措施。"), messages.SUCCESS)
        return redirect("admin:assessment_topic_change", topic.pk)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        topic = self.get_object(request, object_id)
        extra = extra_context or {}
        if topic is not None:
            scope = None if request.user.is_superuser else cases_visible_to(user=request.user)
            extra["weekly"] = topic_weekly_volume(topic=topic, cases=scope)
            extra["members"] = list(
                TopicMembership.objects.filter(topic=topic, case__in=cases_visible_to(user=request.user)
                                               .values("id")).select_related("case")
            )
            extra["units"] = Unit.objects.filter(is_active=True).order_by("path")
            extra["can_review"] = self.has_change_permission(request, topic)
            kept = request.session.pop(self._KEPT, None)
            if kept and kept.get("topic") == topic.pk:
                kept["case_ids"] = [int(x) for x in kept.get("case_ids", []) if str(x).isdigit()]
                extra["kept"] = kept
        return super().change_view(request, object_id, form_url, extra_context=extra)


@admin.register(KnowledgeArticle)
class KnowledgeArticleAdmin(OfficeAdmin):
    """Rule: read by every role that reads cases (handlers insert standard answers), edited by the 网评办."""

    list_display = ("title", "keywords", "is_active", "updated_at")
    search_fields = ("title", "body", "keywords")
    list_filter = ("is_active",)

    def has_module_permission(self, request):
        return user_reads_assessment(user=request.user)

    def has_view_permission(self, request, obj=None):
        return user_reads_assessment(user=request.user)


@admin.register(ImprovementAction)
class ImprovementActionAdmin(TopicRelatedScopeMixin, OfficeAdmin):
    list_display = ("topic", "unit", "due_date", "started_on", "status")
    list_filter = ("status",)
    fields = ("topic", "unit", "description", "due_date", "started_on", "status", "completed_at")
    autocomplete_fields = ("topic",)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.assigned_by = request.user
        super().save_model(request, obj, form, change)

    def get_view_on_site_url(self, obj=None):
        return reverse("admin:assessment_topic_change", args=[obj.topic_id]) if obj else None


from assessment import alert_admin  # noqa: E402,F401  (未诉先办 topic alerts)
