"""Template tags of every changelist at scale: the date drill-down and the pagination of a capped count."""

from django import template
from django.contrib.admin.templatetags.admin_list import pagination, result_headers, result_hidden_fields
from django.contrib.admin.templatetags.base import InclusionAdminNode

from accounts.admin_lists import date_hierarchy_context, result_rows

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


def list_results(cl) -> dict:
    """The context of ``change_list_results.html``: Django's ``result_list`` with the rows of
    :func:`accounts.admin_lists.result_rows` (the same HTML, built once per column)."""
    headers = list(result_headers(cl))
    return {
        "cl": cl,
        "result_hidden_fields": list(result_hidden_fields(cl)),
        "result_headers": headers,
        "num_sorted_fields": sum(1 for h in headers if h["sortable"] and h["sorted"]),
        "results": result_rows(cl),
    }


@register.tag(name="list_results")
def list_results_tag(parser, token):
    """``{% list_results cl %}``: Django's ``{% result_list cl %}`` (same templates, per-model overrides too)."""
    return InclusionAdminNode(parser, token, func=list_results, template_name="change_list_results.html",
                              takes_context=False)
