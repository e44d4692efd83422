"""Template filters that show times as people read them: local Asia/Shanghai, in the page language.

``{{ value|when }}`` → 2026年3月10日 09:00 (zh-hans) / March 10, 2026, 9 a.m. (en); ``{{ value|when_date }}``
→ the date only. An ISO 8601 string (a frozen snapshot's times) is parsed first; empty values give "—".
Never an ISO timestamp or a UTC time on a page (issue 10 §7).
"""

from datetime import date, datetime

from django import template
from django.utils import formats, timezone
from django.utils.dateparse import parse_datetime

register = template.Library()


def _aware(value):
    if isinstance(value, str):
        value = parse_datetime(value) if value else None
    if isinstance(value, datetime):
        if timezone.is_naive(value):
            value = timezone.make_aware(value)
        return timezone.localtime(value)
    return value


@register.filter
def when(value) -> str:
    """Return ``value`` (aware datetime or ISO string) as a local date and time in the page language."""
    value = _aware(value)
    if isinstance(value, datetime):
        return formats.date_format(value, "DATETIME_FORMAT")
    if isinstance(value, date):
        return formats.date_format(value, "DATE_FORMAT")
    return "—"


@register.filter
def when_date(value) -> str:
    """Return ``value`` (aware datetime, date or ISO string) as a local date in the page language."""
    value = _aware(value)
    if isinstance(value, (datetime, date)):
        return formats.date_format(value, "DATE_FORMAT")
    return "—"


@register.filter
def when_short(value) -> str:
    """Return ``value`` as a compact local date and time for list columns (2026年3月10日 09:00 / 03/10/2026 9 a.m.)."""
    value = _aware(value)
    if isinstance(value, datetime):
        return formats.date_format(value, "SHORT_DATETIME_FORMAT")
    if isinstance(value, date):
        return formats.date_format(value, "SHORT_DATE_FORMAT")
    return "—"
