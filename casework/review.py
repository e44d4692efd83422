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


# Events after which no tier's earlier signature counts any more, and those after which only
# tiers 2 and 3 must sign again (a change after sign-off, 发布前修改).
RESET_ALL = ("office_send_back", "leader_send_back", "reopen", "return_to_office")
RESET_REVIEW = ("revise_after_sign_off",)
# Events whose payload names a draft version (``draft_id``, ``version``).
DRAFT_EVENTS = ("draft_saved", "submit_feedback", "office_approve", "leader_approve",
                "revise_after_sign_off")


def _signed_events(*, case: Case) -> dict:
    """Return {tier action: event} of the signatures in force, each with ``draft_id``/``version``.

    An event written before approvals recorded their draft (older data) is given the draft named
    by the last draft-bearing event before it, which is the draft that was current when it signed.
    """
    events = list(
        case.events.filter(action__in={a for a, _label in TIER_ACTIONS} | set(RESET_ALL)
                           | set(RESET_REVIEW) | set(DRAFT_EVENTS))
        .select_related("actor")
        .order_by("seq")
    )
    signed: dict[str, object] = {}
    current = (None, None)
    for event in events:
        payload = event.payload or {}
        if payload.get("draft_id"):
            current = (payload["draft_id"], payload.get("version"))
        event.signed_draft_id, event.signed_version = (
            (payload["draft_id"], payload.get("version")) if payload.get("draft_id") else current
        )
        if event.action in RESET_ALL:
            signed.clear()
        elif event.action in RESET_REVIEW:
            signed.pop("office_approve", None)
            signed.pop("leader_approve", None)
        elif event.action in {a for a, _label in TIER_ACTIONS}:
            signed[event.action] = event
    return signed


def case_signed_draft_id(*, case: Case) -> int | None:
    """Return the id of the draft version the 分管局领导 signed (tier 3) and that still stands, or None.

    None when tier 3 has not signed in the current round, or a send-back, reopening or a change
    after sign-off came after the signature. :func:`casework.services.case_publish_reply`
    publishes only this version.
    """
    event = _signed_events(case=case).get("leader_approve")
    return event.signed_draft_id if event is not None else None


def case_signed_versions(*, case: Case) -> dict[str, int | None]:
    """Return {tier action: draft version signed} of the signatures in force (for the publish event)."""
    return {action: event.signed_version for action, event in _signed_events(case=case).items()}


def case_signatures(*, case: Case) -> list[dict]:
    """Return who signed each review tier of the case's current round, from the audit events.

    Each item: ``tier`` (label), ``actor``, ``at``, ``version`` (the draft version that tier
    signed), ``opinion`` (the opinion written when signing) — from the latest signing event of
    that tier after the round's last send-back or reopening (for tiers 2 and 3, also after the
    last change after sign-off); all None for a tier not yet signed.
    """
    signed = _signed_events(case=case)
    rows = []
    for action, label in TIER_ACTIONS:
        event = signed.get(action)
        rows.append({
            "tier": label,
            "actor": event.actor if event else None,
            "at": event.at if event else None,
            "version": event.signed_version if event else None,
            "opinion": event.reason if event else "",
        })
    return rows


# Events whose reason is a reviewer's word to the unit, newest shown at the top of the case page.
OPINION_ACTIONS = ("office_approve", "office_send_back", "leader_approve", "leader_send_back",
                   "revise_after_sign_off", "reopen")


def case_latest_opinion(*, case: Case):
    """Return the newest review event of ``case`` carrying an opinion or send-back reason, or None.

    One of :data:`OPINION_ACTIONS` with a non-empty ``reason``: what the handler must read first.
    """
    return (
        case.events.filter(action__in=OPINION_ACTIONS).exclude(reason="")
        .select_related("actor").order_by("-seq").first()
    )
