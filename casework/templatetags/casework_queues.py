"""Template tags of the admin index: the user's work queues with their counts ("my work")."""

from urllib.parse import urlencode

from django import template
from django.urls import reverse

from casework.selectors import queue_counts

register = template.Library()


@register.simple_tag(takes_context=True)
def work_queues(context) -> list[dict]:
    """Return the current user's queues as ``{key, label, count, url}`` (url: the filtered case list)."""
    request = context.get("request")
    if request is None or not request.user.is_authenticated:
        return []
    base = reverse("admin:casework_case_changelist")
    return [
        {"key": spec.key, "label": spec.label, "count": count, "url": f"{base}?{urlencode({'queue': spec.key})}"}
        for spec, count in queue_counts(user=request.user)
    ]
