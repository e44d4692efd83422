"""Template tags of every changelist at scale: the date drill-down and the pagination of a capped count."""

from django import template
from django.contrib.admin.templatetags.admin_list import pagination

from accounts.admin_lists import date_hierarchy_context

register = template.Library()


@register.inclusion_tag("admin/date_hierarchy.html")
def list_date_hierarchy(cl) -> dict:
    """Render the date drill-down of ``cl`` from index probes (see :mod:`accounts.admin_lists`)."""
    return date_hierarchy_context(cl) or {"show": False}


@register.inclusion_tag("admin/pagination_capped.html")
def list_pagination(cl) -> dict:
    """Render the pagination of ``cl``; past the count's cap, 上一页/下一页 links and "1000+"."""
    context = pagination(cl)
    capped = getattr(cl.result_count, "capped", False)
    context["capped"] = capped
    context["cap"] = getattr(cl.result_count, "cap", None)
    if capped:
        context["pagination_required"] = False
        context["previous_url"] = cl.get_query_string({"p": cl.page_num - 1}) if cl.page_num > 1 else ""
        full = len(cl.result_list) >= cl.list_per_page
        context["next_url"] = cl.get_query_string({"p": cl.page_num + 1}) if full else ""
    return context
