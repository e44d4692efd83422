"""Admin mixins that show topics within the reader's scope (rules in :mod:`assessment.topic_scope`).

:class:`TopicScopeAdminMixin` (the topic admin): a scoped reader lists only topics with a case they
can see, with titles, keywords and figures computed on those cases; sorting and searching use the
same visible figures (``?o=`` on a column never orders by a hidden stored value, the search never
probes hidden titles). Titles are shown with personal numbers masked to readers without
``casework.view_citizen_contact``. :class:`TopicRelatedScopeMixin` does the same for admins of rows
that hang off a topic (improvement actions).
"""

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import Count, F, Max, Q, Sum
from django.utils.formats import localize
from django.utils.timezone import localtime
from django.utils.translation import gettext_lazy as _

from accounts.admin_base import StaffModelAdmin
from assessment.rules import user_reads_topics, user_reviews_topics
from assessment.topic_scope import (
    TopicFigures,
    topics_figures_for,
    topics_reader_is_city_wide,
    topics_search_for,
    topics_visible_to,
)
from casework.privacy import user_may_see_personal_numbers
from casework.selectors import cases_visible_to
from casework.text import find_personal_numbers, mask_personal_numbers


class ShownHeatChangeList(ChangeList):
    """The topic list's default order: the heat the reader may see, hottest first."""

    def _get_default_ordering(self):
        return ["-shown_heat", "-id"]


# Stored column or field → the column showing the reader's figure instead.
SHOWN = {
    "title": "title_shown", "keywords": "keywords_shown", "heat": "heat_shown", "heat_display": "heat_shown",
    "message_count": "message_count_shown", "citizen_count": "citizen_count_shown",
    "likes": "likes_shown", "dislikes": "dislikes_shown", "first_at": "first_at_shown",
    "last_at": "last_at_shown",
}


def _when(value) -> str:
    return localize(localtime(value)) if value else "-"


class TopicScopeAdminMixin:
    """Put before the topic admin's base: scoped queryset, shown columns and fields, scoped search."""

    # ---------------------------------------------------------------- rows and their figures

    def get_queryset(self, request):
        # ModelAdmin.get_queryset would order by the annotations before they exist: built here.
        qs = topics_visible_to(user=request.user, queryset=self.model._default_manager.get_queryset())
        if topics_reader_is_city_wide(user=request.user):
            qs = qs.annotate(shown_heat=F("heat"), shown_count=F("message_count"), shown_likes=F("likes"),
                             shown_last=F("last_at"))
        else:
            seen = Q(memberships__case__in=cases_visible_to(user=request.user).values("id"))
            # A scoped reader's heat column sorts by his number of messages in the topic (the
            # exact heat of his cases is computed per row for display, not in SQL).
            qs = qs.annotate(shown_heat=Count("memberships", filter=seen),
                             shown_count=Count("memberships", filter=seen),
                             shown_likes=Sum("memberships__case__likes", filter=seen),
                             shown_last=Max("memberships__case__submitted_at", filter=seen))
        return qs

    def get_ordering(self, request):
        # Empty: the changelist orders by the shown heat (below); querysets built without the
        # annotations (autocomplete, foreign-key choices of other admins) keep the model's order.
        return []

    def get_changelist(self, request, **kwargs):
        return ShownHeatChangeList

    def _attach(self, request, topics) -> None:
        topics = [t for t in topics if not hasattr(t, "figures")]
        figures = topics_figures_for(user=request.user, topics=topics)
        may_see = user_may_see_personal_numbers(user=request.user)
        for topic in topics:
            topic.figures = figures.get(topic.pk) or TopicFigures(
                topic_id=topic.pk, title="", keywords="", heat=0.0, message_count=0, citizen_count=0,
                likes=0, dislikes=0, first_at=None, last_at=None, complete=False)
            topic.may_see_numbers = may_see
            topic.shown_label = self.shown_title(topic)  # str(topic): checkboxes, breadcrumbs, titles

    def get_changelist_instance(self, request):
        cl = super().get_changelist_instance(request)
        self._attach(request, cl.result_list)
        return cl

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            self._attach(request, [obj])
        return obj

    def get_search_results(self, request, queryset, search_term):
        if topics_reader_is_city_wide(user=request.user):
            return super().get_search_results(request, queryset, search_term)
        return topics_search_for(user=request.user, queryset=queryset, term=search_term), False

    # ---------------------------------------------------------------- columns and fields

    def get_list_display(self, request):
        return [SHOWN.get(c, c) if isinstance(c, str) else c for c in super().get_list_display(request)]

    def get_list_display_links(self, request, list_display):
        links = super().get_list_display_links(request, list_display)
        return [SHOWN.get(c, c) for c in links] if links else links

    def _replaces(self, request, obj) -> bool:
        figures = getattr(obj, "figures", None)
        if figures is None:
            return False
        if not figures.complete:
            return True
        return not obj.may_see_numbers and bool(find_personal_numbers(f"{obj.title}\n{obj.keywords}"))

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if obj is not None and self._replaces(request, obj):
            fields = [SHOWN.get(f, f) for f in fields]
        return fields

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None and self._replaces(request, obj):
            readonly = [SHOWN.get(f, f) for f in readonly]
            readonly += [f for f in self.get_fields(request, obj) if f in SHOWN.values() and f not in readonly]
        return readonly

    def shown_title(self, obj) -> str:
        title = obj.figures.title if getattr(obj, "figures", None) else obj.title
        return title if getattr(obj, "may_see_numbers", False) else mask_personal_numbers(title)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if obj is not None:
            extra.setdefault("subtitle", self.shown_title(obj))
            extra["shown_title"] = self.shown_title(obj)
            extra["may_see_numbers"] = obj.may_see_numbers
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def history_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if obj is not None:
            extra["title"] = _("变更历史:%s") % self.shown_title(obj)
        return super().history_view(request, object_id, extra_context=extra)

    @admin.display(description=_("主题"))
    def title_shown(self, obj):
        return self.shown_title(obj)

    @admin.display(description=_("关键词"))
    def keywords_shown(self, obj):
        words = obj.figures.keywords
        return words if obj.may_see_numbers else mask_personal_numbers(words)

    @admin.display(description=_("热度指数"), ordering="shown_heat")
    def heat_shown(self, obj):
        return f"{obj.figures.heat:.1f}"

    @admin.display(description=_("留言数"), ordering="shown_count")
    def message_count_shown(self, obj):
        return obj.figures.message_count

    @admin.display(description=_("网民数"))
    def citizen_count_shown(self, obj):
        return obj.figures.citizen_count

    @admin.display(description=_("点赞数"), ordering="shown_likes")
    def likes_shown(self, obj):
        return obj.figures.likes

    @admin.display(description=_("反对数"))
    def dislikes_shown(self, obj):
        return obj.figures.dislikes

    @admin.display(description=_("最早留言"))
    def first_at_shown(self, obj):
        return _when(obj.figures.first_at)

    @admin.display(description=_("最近留言"), ordering="shown_last")
    def last_at_shown(self, obj):
        return _when(obj.figures.last_at)


class TopicRelatedScopeMixin:
    """For admins of rows with a ``topic`` foreign key: rows of visible topics, titles as shown."""

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return qs.filter(topic__in=topics_visible_to(user=request.user).values("id"))

    def get_list_display(self, request):
        return ["topic_shown" if c == "topic" else c for c in super().get_list_display(request)]

    def get_list_display_links(self, request, list_display):
        links = super().get_list_display_links(request, list_display)
        return ["topic_shown" if c == "topic" else c for c in links] if links else links

    def get_changelist_instance(self, request):
        cl = super().get_changelist_instance(request)
        rows = list(cl.result_list)
        figures = topics_figures_for(user=request.user, topics={r.topic_id: r.topic for r in rows}.values())
        may_see = user_may_see_personal_numbers(user=request.user)
        for row in rows:
            f = figures.get(row.topic_id)
            title = f.title if f else ""
            row.topic_title_shown = title if may_see else mask_personal_numbers(title)
        return cl

    @admin.display(description=_("主题"))
    def topic_shown(self, obj):
        return getattr(obj, "topic_title_shown", "")


class OfficeAdmin(StaffModelAdmin):
    """Rule (assessment/rules.py): read by the 网评办 and the 分管局领导, changed by the 网评办,
    deleted by superusers only."""

    def has_module_permission(self, request):
        return user_reads_topics(user=request.user)

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_add_permission(self, request):
        return user_reviews_topics(user=request.user)

    def has_change_permission(self, request, obj=None):
        return user_reviews_topics(user=request.user)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser
