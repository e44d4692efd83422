"""Reads for the review screens of tiers 2 and 3: the draft's changes and who signed each tier.

Citizen and handler text is never marked safe: the diff markup is built with ``format_html``, which
escapes every piece of text it is given.
"""

import difflib

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from casework.models import Case, ReplyDraft

# Tier → (the audit action that signs it, label).
TIER_ACTIONS = [
    ("submit_feedback", _("一审 · 办理员")),
    ("office_approve", _("二审 · 网评办")),
    ("leader_approve", _("三审 · 分管局领导")),
]


def text_diff_html(old: str, new: str) -> SafeString:
    """Return ``new`` as escaped HTML with the changes against ``old`` marked (<del>, <ins>).

    The comparison is by character, which suits Chinese text (no spaces between words).
    """
    matcher = difflib.SequenceMatcher(a=old or "", b=new or "", autojunk=False)
    parts = []
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            parts.append(("", new[b1:b2]))
        if op in ("delete", "replace"):
            parts.append(("del", old[a1:a2]))
        if op in ("insert", "replace"):
            parts.append(("ins", new[b1:b2]))
    return format_html_join(
        "",
        "{}",
        (
            (format_html('<{} class="cw-{}">{}</{}>', tag, tag, text, tag) if tag else format_html("{}", text),)
            for tag, text in parts
        ),
    )


def draft_previous(*, draft: ReplyDraft) -> ReplyDraft | None:
    """Return the version of the same case saved just before ``draft``, or None."""
    return (
        ReplyDraft.objects.filter(case_id=draft.case_id, version__lt=draft.version).order_by("-version").first()
    )


def draft_changes(*, draft: ReplyDraft | None) -> dict:
    """Return the diff of ``draft`` against the previous version, field by field, as escaped HTML.

    Keys: ``previous`` (the older draft or None) and ``fields``: a list of ``(label, html,
    changed)`` for the handling report, policy basis, measures and reply text.
    """
    if draft is None:
        return {"previous": None, "fields": []}
    previous = draft_previous(draft=draft)
    fields = []
    for name in ("handling_report", "policy_basis", "measures", "reply_text"):
        old = getattr(previous, name) if previous else ""
        new = getattr(draft, name)
        label = ReplyDraft._meta.get_field(name).verbose_name
        html = text_diff_html(old, new) if previous else format_html("{}", new)
        fields.append((label, html, previous is not None and old != new))
    return {"previous": previous, "fields": fields}


def case_signatures(*, case: Case) -> list[dict]:
    """Return who signed each review tier of the case's current round, from the audit events.

    Each item: ``tier`` (label), ``actor``, ``at`` — the latest signing event of that tier after
    the round's last send-back or reopening; ``actor``/``at`` are None for a tier not yet signed.
    """
    events = list(
        case.events.filter(
            action__in=[a for a, _label in TIER_ACTIONS]
            + ["office_send_back", "leader_send_back", "reopen", "return_to_office"]
        )
        .select_related("actor")
        .order_by("seq")
    )
    signed: dict[str, object] = {}
    for event in events:
        if event.action in ("office_send_back", "leader_send_back", "reopen", "return_to_office"):
            signed.clear()
        else:
            signed[event.action] = event
    return [
        {"tier": label, "actor": signed[a].actor if a in signed else None, "at": signed[a].at if a in signed else None}
        for a, label in TIER_ACTIONS
    ]
