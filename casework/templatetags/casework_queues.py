"""Template tags of the admin index: the user's work queues with their counts ("my work")."""

from urllib.parse import urlencode

from django import template
from django.urls import reverse

from casework.selectors import notices_for_unit_staff, queue_counts

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


@register.simple_tag(takes_context=True)
def unit_notices_tile(context) -> dict | None:
    """Return the tile of the 督办单 awaiting an answer from the user's units, or None.

    Shown to those who answer 督办单 (``casework.answer_supervision``); the count follows the one
    rule :func:`casework.selectors.notices_awaiting_answer_q`, so it equals what the ladder counts.
    """
    request = context.get("request")
    if request is None or not request.user.is_authenticated:
        return None
    user = request.user
    if not user.is_superuser and not user.has_perm("casework.answer_supervision"):
        return None
    base = reverse("admin:casework_supervisionnotice_changelist")
    return {"count": notices_for_unit_staff(user=user).count(), "url": f"{base}?{urlencode({'status': 'awaiting'})}"}
