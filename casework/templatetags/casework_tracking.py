"""Template tag of the admin index: the unit's tile of rectification reports still owed (跟踪督办)."""

from urllib.parse import urlencode

from django import template
from django.urls import reverse

from casework.tracking import rounds_awaiting_for_unit_staff

register = template.Library()


@register.simple_tag(takes_context=True)
def unit_rounds_tile(context) -> dict | None:
    """Return ``{count, url}`` of the 整改报告 the user's units still owe, or None.

    Shown to those who answer for a unit (``casework.answer_supervision``), and only when the unit
    owes one or has been set one (a tile at 0 for every handler would be noise); the url opens the
    list filtered to the rounds awaiting a report.
    """
    request = context.get("request")
    if request is None or not request.user.is_authenticated:
        return None
    user = request.user
    if not user.is_superuser and not user.has_perm("casework.answer_supervision"):
        return None
    count = rounds_awaiting_for_unit_staff(user=user).count()
    if not count:
        return None
    base = reverse("admin:casework_rectificationround_changelist")
    return {"count": count, "url": f"{base}?{urlencode({'status': 'open'})}"}
