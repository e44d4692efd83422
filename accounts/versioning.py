"""What the user saw, as a version token, and who changed a row since (optimistic locking).

A *version* of a row is the digest of each of its concrete fields (and of whatever else a form
shows and saves: many-to-many sets, inline rows, extra state an admin names). A page puts the
token of the version it shows into the form; the submit is compared with the row as it is now,
read under ``select_for_update``, and refused when it differs. No version column is needed, so the
same rule covers third-party models (auth groups, beat schedules) and catches a change made by any
path (service, task, shell), not only those that remember to bump a counter.

The refusal names what changed (field names) and who changed it and when, from the newest of: the
admin log (``LogEntry``), the row's own author fields (``updated_by``/``updated_at``,
``reviewed_by``/``reviewed_at``, …), and an extra source an admin
supplies (e.g. the case's audit events).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
import hashlib
import json

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext as _

# Bookkeeping fields that change without anyone editing the row (a login, a beat run); a form
# that does not edit them is not stale because of them.
IGNORED_FIELDS = frozenset({"last_login", "last_run_at", "total_run_count", "date_changed"})


# (who, when) pairs a row may keep about its own last change.
ROW_AUTHOR_FIELDS = (
    ("updated_by", "updated_at"),
    ("reviewed_by", "reviewed_at"),
    ("confirmed_by", "confirmed_at"),
    ("decided_by", "decided_at"),
    ("outcome_by", "outcome_recorded_at"),
)


def _digest(value) -> str:
    return hashlib.blake2b(repr(value).encode(), digest_size=5).hexdigest()


def row_state(obj: models.Model, *, ignore=()) -> dict[str, str]:
    """Digest of each concrete field of ``obj`` as loaded: ``{attname: 10 hex digits}``."""
    skip = IGNORED_FIELDS.union(ignore)
    return {
        f.attname: _digest(getattr(obj, f.attname))
        for f in obj._meta.concrete_fields
        if f.attname not in skip
    }


def m2m_state(obj: models.Model, *, names=None) -> dict[str, str]:
    """Digest of the sorted primary keys of each many-to-many field of ``obj`` (read now)."""
    state = {}
    for field in obj._meta.many_to_many:
        if names is not None and field.name not in names:
            continue
        pks = sorted(getattr(obj, field.name).values_list("pk", flat=True))
        state[field.name] = _digest(pks)
    return state


def digest(value) -> str:
    """Digest of any value by its ``repr`` (for the extra state an admin adds to a version)."""
    return _digest(value)


def token_encode(state: dict[str, str], *, at: datetime | None = None) -> str:
    """The token a page carries: the state and the time it was read (epoch seconds), base64."""
    moment = (at or timezone.now()).timestamp()
    raw = json.dumps({"t": round(moment, 3), "s": state}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@dataclass(frozen=True)
class SeenVersion:
    state: dict[str, str] | None  # None: the token is unreadable (tampered or truncated)
    at: datetime | None


def token_decode(token: str) -> SeenVersion:
    """Read a token back; an unreadable token gives ``state=None`` (treated as stale)."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        state = {str(k): str(v) for k, v in data["s"].items()}
        at = datetime.fromtimestamp(float(data["t"]), tz=timezone.get_current_timezone())
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError, OverflowError):
        return SeenVersion(state=None, at=None)
    return SeenVersion(state=state, at=at)


def changed_keys(seen: SeenVersion, state: dict[str, str]) -> list[str]:
    """Keys whose digest differs between the seen version and ``state`` (all when unreadable)."""
    if seen.state is None:
        return sorted(state)
    return sorted(k for k in set(seen.state) | set(state) if seen.state.get(k) != state.get(k))


@dataclass(frozen=True)
class Change:
    """Who made a change, when, and what they did (each may be unknown)."""

    who: str
    at: datetime | None
    what: str = ""


def _user_label(user) -> str:
    if user is None:
        return ""
    return getattr(user, "full_name", "") or user.get_username()


def last_change(obj: models.Model, *, since: datetime | None, extra: list[Change] = ()) -> Change | None:
    """The newest recorded change of ``obj`` after ``since``: admin log, the row's own author fields, ``extra``.

    Args:
        obj: the row as it is now.
        since: when the user's page was rendered (from the token); ``None``: any time.
        extra: changes another source knows (e.g. the case's audit events after ``since``).

    Returns:
        The newest :class:`Change`, or ``None`` when nothing recorded the change (a task, the shell).
    """
    found: list[Change] = list(extra)
    entries = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(obj, for_concrete_model=False),
        object_id=str(obj.pk),
    ).select_related("user")
    if since is not None:
        entries = entries.filter(action_time__gt=since)
    entry = entries.order_by("-action_time", "-pk").first()
    if entry is not None:
        found.append(Change(who=_user_label(entry.user), at=entry.action_time, what=entry.get_change_message()))
    for by_field, at_field in ROW_AUTHOR_FIELDS:
        at = getattr(obj, at_field, None)
        if isinstance(at, datetime) and (since is None or at > since):
            who = _user_label(getattr(obj, by_field, None)) if hasattr(obj, f"{by_field}_id") else ""
            found.append(Change(who=who, at=at))
    found = [c for c in found if c.at is not None]
    if not found:
        return None
    # Prefer a change that names its author when two sources record the same moment.
    return max(found, key=lambda c: (c.at, bool(c.who)))


def field_labels(model, keys, extra_labels=None) -> list[str]:
    """Verbose names of the changed keys (attnames, m2m names, ``<inline model>#pk`` entries)."""
    labels = []
    extra_labels = extra_labels or {}
    by_attname = {f.attname: f for f in model._meta.concrete_fields}
    by_name = {f.name: f for f in model._meta.get_fields() if hasattr(f, "verbose_name")}
    for key in keys:
        field = by_attname.get(key) or by_name.get(key)
        if key in extra_labels:
            label = str(extra_labels[key])
        elif field is not None:
            label = str(field.verbose_name)
        elif "#" in key:
            label = key.split("#", 1)[0]
        else:
            label = key
        if label not in labels:
            labels.append(label)
    return labels


def stale_message(*, obj, keys, change: Change | None, kept: bool = True, extra_labels=None) -> str:
    """The refusal: what changed on ``obj``, who changed it and when, and that nothing was saved."""
    fields = "、".join(field_labels(type(obj), keys, extra_labels)) or _("内容")
    if change is not None:
        who = change.who or _("其他用户或系统任务")
        when = timezone.localtime(change.at).strftime("%Y-%m-%d %H:%M:%S")
        head = _("「%(obj)s」在您打开页面后已被%(who)s于 %(when)s 修改(%(fields)s)") % {
            "obj": obj, "who": who, "when": when, "fields": fields}
        if change.what:
            head += _(":%s") % change.what.rstrip("。. ")
    else:
        head = _("「%(obj)s」在您打开页面后已被其他用户或系统任务修改(%(fields)s)") % {
            "obj": obj, "fields": fields}
    tail = (_("。您的提交没有保存,填写的内容保留在下方;请核对当前内容后再提交。") if kept
            else _("。未对其执行操作。"))
    return head + tail
