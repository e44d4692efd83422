"""Every write to a case. One service per transition of the closed loop (DESIGN.md §3).

Each transition service: loads the case row with ``select_for_update``, refuses when the case left
the state the user acted on (a clear conflict, field case C12), checks the transition permission of
the acting user on that case (role + unit scope, django-fsm-2 ``has_transition_perm``), applies the
transition, saves only the changed fields, appends one hash-chained audit event in the same
transaction and queues e-mails with ``transaction.on_commit``.
"""

from dataclasses import dataclass
from datetime import datetime
import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django_fsm import can_proceed

from accounts import roles
from accounts.models import Unit, User
from accounts.selectors import (
    comment_office_emails,
    leader_emails_for_unit,
    unit_by_function,
    unit_is_handling,
    unit_leaders_in_charge,
    unit_staff_emails,
)
from casework import audit, calendar, clocks, review
from casework.access import user_can_see_case, user_may_act
from casework.clocks import clocks_on_transition, deadline_policies
from casework.duplicates import duplicates_index_and_flag
from casework.models import (
    ACTIVE_STATES,
    Case,
    CaseEvent,
    FollowUp,
    MessageType,
    Platform,
    PublishedReply,
    ReplyDraft,
    State,
    SupervisionNotice,
)
from casework.outbox import notification_deliver, notification_queue  # noqa: F401 (the outbox's services)
from casework.selectors import case_current_draft
from casework.text import find_personal_numbers, to_half_width

logger = logging.getLogger("casework")

class TransitionRefused(Exception):
    """A transition cannot happen; ``str(exc)`` says why, in words a member of staff understands."""


class CaseConflict(TransitionRefused):
    """The case changed since the user loaded it (someone else acted first)."""


@dataclass(frozen=True)
class Deadlines:
    sign_for_due_at: datetime
    reply_due_at: datetime


# ---------------------------------------------------------------- audit and notifications


def event_append(
    *,
    case: Case,
    action: str,
    actor: User | None,
    from_state: str = "",
    to_state: str = "",
    reason: str = "",
    payload: dict | None = None,
    at: datetime | None = None,
) -> CaseEvent:
    """Append one hash-chained audit event to ``case``.

    Must run inside the transaction that holds the case row lock (the services do), so the
    sequence number and the chain are computed without races. The event is sealed with the keyed
    hash and the case's chain head (count, last hash) is recorded with it (:mod:`casework.audit`).
    """
    last = case.events.order_by("-seq").values("seq", "hash").first()
    event = CaseEvent(
        case=case,
        seq=(last["seq"] + 1) if last else 1,
        action=action,
        from_state=from_state,
        to_state=to_state,
        actor=actor,
        at=at or timezone.now(),
        reason=reason,
        payload=payload or {},
        prev_hash=last["hash"] if last else "",
    )
    event.hash = event.compute_hash()
    event.save()
    audit.chain_head_record(case_id=case.pk, event_count=event.seq, head_hash=event.hash)
    return event


def case_url(case: Case) -> str:
    """Return the absolute admin URL of ``case`` for e-mails."""
    from django.conf import settings
    from django.urls import reverse

    return settings.SITE_URL + reverse("admin:casework_case_change", args=[case.pk])


def _notify_review(*, case: Case, event: CaseEvent, recipients: list[str], subject: str, line: str) -> None:
    """Tell the next tier that a case reached its queue (one e-mail per event, after commit)."""
    notification_queue(
        key=f"event:{event.pk}",
        case=case,
        recipients=recipients,
        subject=subject,
        body="\n".join([line, "", f"{_('案件')}: {case}", case_url(case)]),
    )


def _notify_unit_handlers(*, case: Case, event: CaseEvent, subject: str, lines: list[str]) -> None:
    if case.lead_unit is None:
        return
    body = "\n".join([*lines, "", f"{_('案件')}: {case}", case_url(case)])  # str(case) masks numbers
    notification_queue(
        key=f"event:{event.pk}",
        case=case,
        recipients=unit_staff_emails(unit=case.lead_unit, role=roles.HANDLER),
        subject=subject,
        body=body,
    )


# ---------------------------------------------------------------- deadlines


def case_deadlines(
    *, message_type: str, start: datetime, platform_id: int | None = None, unit: Unit | None = None
) -> Deadlines:
    """Compute the sign-for and reply deadlines of a case dispatched at ``start``.

    Args:
        message_type: a ``MessageType`` value; with ``platform_id`` it selects the
            ``DeadlinePolicy`` rows (working days or working hours), else the defaults of
            :mod:`casework.defaults` (DESIGN.md §4).
        start: aware datetime of dispatch.
        unit: the lead unit, whose own calendar exceptions count; None for the bureau calendar.

    Returns:
        aware Asia/Shanghai deadlines computed on the work calendar. The stored clocks
        (:mod:`casework.clocks`) are computed the same way when the transition starts them.
    """
    policies = deadline_policies(message_type=message_type, platform_id=platform_id)
    cal = calendar.work_calendar(unit=unit)
    sign_for = cal.deadline(start=start, amount=policies["sign_for"][0], unit=policies["sign_for"][1])
    reply = cal.deadline(start=start, amount=policies["reply"][0], unit=policies["reply"][1])
    return Deadlines(sign_for_due_at=sign_for.due_at, reply_due_at=reply.due_at)


# ---------------------------------------------------------------- intake


@transaction.atomic
def case_register(
    *,
    acting_user: User | None,
    platform: Platform,
    subject: str,
    body: str,
    submitted_at: datetime,
    external_id: str = "",
    citizen_name: str = "",
    citizen_contact: str = "",
    likes: int | None = None,
    dislikes: int | None = None,
    message_type: str = MessageType.CONSULT,
    category: str = "",
    source: str = "manual",
) -> Case:
    """Register a citizen message as a new case in state ``registered``.

    Args:
        acting_user: the member of staff entering it, or None for an import/platform push.
        submitted_at: aware datetime the citizen posted it (naive values are taken as Beijing time).
        external_id: the platform's id; stored half-width; unique per platform.
        source: where it came from (``manual``, ``import``, ``api``), kept in the audit event.

    Raises:
        PermissionDenied: when ``acting_user`` lacks ``casework.register_case``.
        TransitionRefused: when subject or body is empty, or the platform id already exists.
    """
    if acting_user is not None and not acting_user.has_perm("casework.register_case"):
        raise PermissionDenied(_("您没有登记留言的权限。"))
    subject = (subject or "").strip()
    if not subject:
        raise TransitionRefused(_("留言主题不能为空。"))
    if not (body or "").strip():
        raise TransitionRefused(_("留言详情不能为空。"))
    if timezone.is_naive(submitted_at):
        submitted_at = submitted_at.replace(tzinfo=calendar.SHANGHAI)
    external_id = to_half_width(external_id or "")
    if external_id and Case.objects.filter(platform=platform, external_id=external_id).exists():
        raise TransitionRefused(_("该平台留言编号已存在:%(id)s") % {"id": external_id})
    case = Case(
        platform=platform,
        external_id=external_id,
        subject=subject,
        body=body,
        submitted_at=submitted_at,
        citizen_name=citizen_name or "",
        citizen_contact=to_half_width(citizen_contact or ""),
        likes=likes,
        dislikes=dislikes,
        message_type=message_type,
        category=category or "",
    )
    case.save()
    from django.conf import settings

    local_year = timezone.localtime(case.created_at).year
    case.reference = f"{settings.CASEWORK_REFERENCE_PREFIX}-{local_year}-{case.pk:06d}"
    case.save(update_fields=["reference"])
    event_append(
        case=case,
        action="register",
        actor=acting_user,
        to_state=case.state,
        payload={"source": source, "platform": platform.code, "external_id": external_id},
    )
    duplicates_index_and_flag(case=case)  # 重复留言提示 (casework.duplicates)
    return case


# ---------------------------------------------------------------- transitions


def case_lock(*, case: Case) -> Case:
    """Reload ``case`` with its row locked until the transaction ends (lead unit joined, not locked).

    Must run inside ``transaction.atomic``. Every write to a case starts here, so two writers
    serialise on the row instead of acting on what they read earlier.
    """
    return Case.objects.select_for_update(of=("self",)).select_related("lead_unit").get(pk=case.pk)


def case_touch(*, case: Case, fields: tuple[str, ...] = ()) -> None:
    """Save ``fields`` of a locked case and bump ``lock_version`` so stale edit forms are refused."""
    case.lock_version += 1
    case.save(update_fields=[*fields, "lock_version", "updated_at"])


def _changed_fields(case: Case, before: dict) -> list[str]:
    return [
        f.attname
        for f in case._meta.concrete_fields
        if getattr(case, f.attname) != before[f.attname]
    ] + ["updated_at"]


def _transition(
    *,
    case: Case,
    acting_user: User,
    name: str,
    reason: str = "",
    reason_required: bool = False,
    expected_state: str | None = None,
    kwargs: dict | None = None,
    payload: dict | None = None,
    condition_message: str = "",
    prepare=None,
) -> tuple[Case, CaseEvent]:
    """Run transition ``name`` on ``case`` for ``acting_user``; see the module docstring.

    ``prepare``, when given, is called with the locked case once every check passed and before
    the transition applies; it may refuse (raise), write rows and complete ``kwargs`` (the same
    dict), and returns more event payload.
    """
    reason = (reason or "").strip()
    if reason_required and not reason:
        raise TransitionRefused(_("必须填写理由。"))
    locked = case_lock(case=case)
    method = getattr(locked, name)
    if not user_can_see_case(user=acting_user, case=locked):
        # Someone outside the case's scope learns nothing about it, not even its state.
        raise PermissionDenied(_("您没有对该案件执行此操作的权限。"))
    if expected_state is not None and locked.state != expected_state:
        raise CaseConflict(
            _("案件已被他人处理,当前状态为「%(state)s」,请刷新页面后再操作。")
            % {"state": locked.get_state_display()}
        )
    if not can_proceed(method, check_conditions=False):
        raise TransitionRefused(
            _("案件当前状态为「%(state)s」,不能执行此操作。") % {"state": locked.get_state_display()}
        )
    meta = method._django_fsm
    if not meta.has_transition_perm(locked, locked.state, acting_user):
        raise PermissionDenied(_("您没有对该案件执行此操作的权限。"))
    if name in LEADER_TIER_TRANSITIONS:
        _require_leader_in_charge(case=locked, acting_user=acting_user)
    if not meta.conditions_met(locked, locked.state):
        raise TransitionRefused(condition_message or _("办理条件尚未满足。"))
    if prepare is not None:
        payload = {**(payload or {}), **prepare(locked)}
    from_state = locked.state
    before = {f.attname: getattr(locked, f.attname) for f in locked._meta.concrete_fields}
    method(**(kwargs or {}))
    at = (kwargs or {}).get("at") or timezone.now()
    locked.lock_version += 1  # a stale edit form of this case is refused (draft_save)
    locked.save(update_fields=_changed_fields(locked, before))
    clocks_on_transition(case=locked, name=name, at=at)  # stored deadlines (casework.clocks)
    event = event_append(
        case=locked,
        action=name,
        actor=acting_user,
        from_state=from_state,
        to_state=locked.state,
        reason=reason,
        payload=payload,
    )
    return locked, event


def _suggestion_payload(suggestion: dict | None, unit: Unit) -> dict:
    """The dispatch event's ``suggestion`` entry: what was suggested and whether it was taken."""
    if not suggestion or not suggestion.get("unit_id"):
        return {}
    keys = ("unit_id", "source", "confidence", "model_id")
    entry = {k: suggestion.get(k) for k in keys}
    entry["taken"] = entry["unit_id"] == unit.pk
    return {"suggestion": entry}


@transaction.atomic
def case_dispatch(
    *,
    case: Case,
    acting_user: User,
    unit: Unit,
    expected_state: str | None = None,
    note: str = "",
    at: datetime | None = None,
    suggestion: dict | None = None,
) -> Case:
    """交办: assign ``case`` to lead ``unit`` and start its sign-for and reply clocks.

    Args:
        at: aware datetime the dispatch took effect; defaults to now. A past value is for
            recording a dispatch made earlier (e.g. carried over from another system); the clocks
            start from it. The audit event is always stamped with the real time.
        suggestion: the dispatch suggestion the dispatcher saw (``unit_id``, ``source``,
            ``confidence``, ``model_id``; :mod:`casework.router_service`); recorded in the event
            with ``taken`` (the chosen unit is the suggested one) for the acceptance rate.

    Raises:
        TransitionRefused: case not registered, the unit is inactive, or ``at`` is in the future.
        PermissionDenied: user lacks ``casework.dispatch_case`` or cannot see the case.
    """
    if not unit.is_active:
        raise TransitionRefused(_("所选单位已停用。"))
    if not unit_is_handling(unit=unit):
        raise TransitionRefused(_("%s 不是承办单位,不能交办给它(网评办、纪检督察和局领导不承办留言)。") % unit.name)
    now = at or timezone.now()
    if now > timezone.now():
        raise TransitionRefused(_("交办时间不能晚于当前时间。"))
    deadlines = case_deadlines(
        message_type=case.message_type, start=now, platform_id=case.platform_id, unit=unit
    )
    case, event = _transition(
        case=case,
        acting_user=acting_user,
        name="dispatch",
        reason=note,
        expected_state=expected_state,
        kwargs={
            "unit": unit,
            "at": now,
            "sign_for_due_at": deadlines.sign_for_due_at,
            "reply_due_at": deadlines.reply_due_at,
        },
        payload={
            "unit_id": unit.pk,
            "unit": unit.name,
            "dispatched_at": now.isoformat(),
            "sign_for_due_at": deadlines.sign_for_due_at.isoformat(),
            "reply_due_at": deadlines.reply_due_at.isoformat(),
            **_suggestion_payload(suggestion, unit),
        },
    )
    _notify_unit_handlers(
        case=case,
        event=event,
        subject=_("【新交办】%(ref)s 请于 %(due)s 前签收")
        % {"ref": case.reference, "due": timezone.localtime(case.sign_for_due_at).strftime("%Y-%m-%d %H:%M")},
        lines=[
            _("网评办向贵单位交办网民留言一件。"),
            _("签收期限:%s") % timezone.localtime(case.sign_for_due_at).strftime("%Y-%m-%d %H:%M"),
            _("答复期限:%s") % timezone.localtime(case.reply_due_at).strftime("%Y-%m-%d %H:%M"),
        ],
    )
    return case


@transaction.atomic
def case_reject_invalid(
    *, case: Case, acting_user: User, reason: str, expected_state: str | None = None
) -> Case:
    """不予受理: close a registered message that is a duplicate, spam or out of scope (reason required)."""
    case, _event = _transition(
        case=case,
        acting_user=acting_user,
        name="reject_invalid",
        reason=reason,
        reason_required=True,
        expected_state=expected_state,
        kwargs={"reason": (reason or "").strip()[:500], "at": timezone.now()},
    )
    return case


@transaction.atomic
def case_accept(*, case: Case, acting_user: User, expected_state: str | None = None) -> Case:
    """签收: the lead unit's handler signs for a dispatched case; the sign-for clock stops."""
    case, _event = _transition(
        case=case,
        acting_user=acting_user,
        name="accept",
        expected_state=expected_state,
        kwargs={"at": timezone.now()},
    )
    return case


@transaction.atomic
def case_return_to_office(
    *, case: Case, acting_user: User, reason: str, expected_state: str | None = None
) -> Case:
    """退回: the lead unit returns a mis-dispatched case to the 网评办 (reason required)."""
    unit = case.lead_unit
    case, event = _transition(
        case=case,
        acting_user=acting_user,
        name="return_to_office",
        reason=reason,
        reason_required=True,
        expected_state=expected_state,
        payload={"unit_id": unit.pk if unit else None, "unit": unit.name if unit else ""},
    )
    if unit is not None:
        supervision_notices_close(case=case, unit=unit, reason=_("案件已退回网评办"), at=event.at)
    notification_queue(
        key=f"event:{event.pk}",
        case=case,
        recipients=comment_office_emails(),
        subject=_("【退回】%(ref)s 被 %(unit)s 退回") % {"ref": case.reference, "unit": unit},
        body="\n".join([_("退回理由:%s") % event.reason, case_url(case)]),
    )
    return case


def supervision_notices_close(*, case: Case, unit: Unit, reason: str, at: datetime) -> int:
    """Close ``unit``'s unanswered 督办单 on ``case``, which the unit no longer answers for.

    Called inside the transaction of the transition that takes the case away from the unit (its
    return to the 网评办), with the case row locked. A closed notice keeps its unit and opening
    time, so it still counts in that unit's 督办单 figure for the period it was opened in; it no
    longer awaits an answer, so the ladder's unit-notices rung does not count it
    (:func:`casework.selectors.notices_awaiting_answer_q`). One audit event per closed notice.

    Args:
        case: the locked case; unit: the unit the notices were addressed to.
        reason: why (shown in the notice list); at: aware datetime of the closing.

    Returns:
        how many notices were closed.
    """
    closed = 0
    for notice in (SupervisionNotice.objects.select_for_update()
                   .filter(case=case, unit=unit, answered_at__isnull=True, closed_at__isnull=True)
                   .order_by("pk")):
        notice.closed_at = at
        notice.closed_reason = reason[:200]
        notice.save(update_fields=["closed_at", "closed_reason"])
        event_append(case=case, action="supervision_closed", actor=None, from_state=case.state,
                     to_state=case.state, reason=reason,
                     payload={"notice_id": notice.pk, "unit_id": unit.pk, "unit": unit.name}, at=at)
        closed += 1
    return closed


@transaction.atomic
def draft_save(
    *,
    case: Case,
    acting_user: User,
    handling_report: str,
    reply_text: str,
    policy_basis: str = "",
    measures: str = "",
    expected_lock_version: int | None = None,
) -> ReplyDraft:
    """Save a new version of the lead unit's feedback and draft reply (older versions are kept).

    Args:
        expected_lock_version: the case's ``lock_version`` when the edit form was loaded; when
            given and the case changed since (another draft or a transition), nothing is saved.

    Raises:
        CaseConflict: the edit form is stale (``expected_lock_version`` differs).
        TransitionRefused: the case is not in handling, or the report or reply is empty.
        PermissionDenied: the user may not submit feedback for the case's lead unit.
    """
    locked = case_lock(case=case)
    if not user_may_act(user=acting_user, case=locked, perm="submit_feedback", scope="lead"):
        raise PermissionDenied(_("您没有为该案件撰写反馈的权限。"))
    if expected_lock_version is not None and locked.lock_version != expected_lock_version:
        raise CaseConflict(_("案件或答复草稿已被他人修改,请刷新页面后再操作(您的内容未保存)。"))
    if locked.state != State.HANDLING:
        raise TransitionRefused(_("只有承办中的案件可以修改答复草稿。"))
    if not (handling_report or "").strip() or not (reply_text or "").strip():
        raise TransitionRefused(_("办理情况和答复草稿都不能为空。"))
    last = locked.drafts.order_by("-version").values_list("version", flat=True).first() or 0
    draft = ReplyDraft.objects.create(
        case=locked,
        round=locked.handling_round,
        version=last + 1,
        handling_report=handling_report,
        policy_basis=policy_basis or "",
        measures=measures or "",
        reply_text=reply_text,
        author=acting_user,
    )
    case_touch(case=locked)
    event_append(
        case=locked,
        action="draft_saved",
        actor=acting_user,
        from_state=locked.state,
        to_state=locked.state,
        payload={"draft_id": draft.pk, "version": draft.version},
    )
    return draft


DRAFT_FIELDS = ("handling_report", "policy_basis", "measures", "reply_text")


@transaction.atomic
def case_submit_feedback(
    *,
    case: Case,
    acting_user: User,
    expected_state: str | None = None,
    draft: dict | None = None,
    expected_lock_version: int | None = None,
) -> Case:
    """反馈: submit the current draft for review (tier 1 is the handler's own check).

    Saving and submitting are one step: ``draft`` is what the handler has in the form
    (``handling_report``, ``reply_text``, optionally ``policy_basis`` and ``measures``); when it
    differs from the round's current draft it is saved as a new version (:func:`draft_save`, with
    ``expected_lock_version``) and that version is submitted, in the same transaction.

    Raises:
        TransitionRefused: the typed draft is empty, co-units have not all reported, no draft yet,
            or the case is not in handling; nothing is saved.
        CaseConflict: the case or its draft changed since the form was loaded.
        PermissionDenied: the user may not submit feedback for the case's lead unit.
    """
    locked = case_lock(case=case)  # the round and its draft are read under the row lock
    if draft is not None:
        if expected_state is not None and locked.state != expected_state:
            raise CaseConflict(
                _("案件已被他人处理,当前状态为「%(state)s」,请刷新页面后再操作。")
                % {"state": locked.get_state_display()}
            )
        typed = {f: draft.get(f) or "" for f in DRAFT_FIELDS}
        current = case_current_draft(case=locked)
        if current is None or any(getattr(current, f) != typed[f] for f in DRAFT_FIELDS):
            draft_save(case=locked, acting_user=acting_user, expected_lock_version=expected_lock_version,
                       **typed)
    current = case_current_draft(case=locked)
    waiting = list(
        locked.co_unit_tasks.filter(reported_at__isnull=True).values_list("unit__name", flat=True)
    )
    message = (
        _("协办单位尚未全部报告,暂不能反馈:%s") % "、".join(waiting)
        if waiting and current
        else _("请先保存本轮的办理情况和答复草稿。")
    )
    case, _event = _transition(
        case=case,
        acting_user=acting_user,
        name="submit_feedback",
        expected_state=expected_state,
        kwargs={"at": timezone.now()},
        payload={"draft_id": current.pk, "version": current.version} if current else {},
        condition_message=message,
    )
    office = unit_by_function(function=Unit.Function.COMMENT_OFFICE)
    _notify_review(
        case=case,
        event=_event,
        recipients=unit_staff_emails(unit=office, role=roles.OFFICE_REVIEWER) if office else [],
        subject=_("【待审核】%(ref)s %(unit)s 已反馈") % {"ref": case.reference, "unit": case.lead_unit},
        line=_("承办单位已提交办理情况和答复草稿,请网评办审核。"),
    )
    return case


def _draft_payload(case: Case, tier: str) -> dict:
    """The payload of an approval: the tier and the draft version it signs."""
    current = case_current_draft(case=case)
    return {"tier": tier, "draft_id": current.pk if current else None,
            "version": current.version if current else None}


def _send_back(*, case, acting_user, name, reason, expected_state, tier):
    case, event = _transition(
        case=case,
        acting_user=acting_user,
        name=name,
        reason=reason,
        reason_required=True,
        expected_state=expected_state,
        payload={"tier": tier},
    )
    _notify_unit_handlers(
        case=case,
        event=event,
        subject=_("【发回修改】%s") % case.reference,
        lines=[_("%(tier)s发回修改,理由:%(reason)s") % {"tier": tier, "reason": event.reason}],
    )
    return case


@transaction.atomic
def case_office_approve(
    *, case: Case, acting_user: User, expected_state: str | None = None, opinion: str = ""
) -> Case:
    """网评办审核通过: tier 2 passes the draft to the 分管局领导.

    Args:
        opinion: the reviewer's opinion (审核意见, optional), kept as the event's reason and shown
            in the signature panel and at the top of the case page. The event's payload names the
            draft version signed (``draft_id``, ``version``).
    """
    case, event = _transition(
        case=case, acting_user=acting_user, name="office_approve", expected_state=expected_state,
        reason=opinion, prepare=lambda locked: _draft_payload(locked, "office"),
    )
    # Tier 3 goes to the key case's leader, else the lead unit's 分管局领导 (all leaders when none is set).
    leader = case.key_case_leader
    _notify_review(
        case=case,
        event=event,
        recipients=[leader.email] if leader and leader.email else leader_emails_for_unit(unit=case.lead_unit),
        subject=_("【待审签】%s") % case.reference,
        line=_("网评办已审核通过,请分管局领导审签答复。"),
    )
    return case


@transaction.atomic
def case_office_send_back(
    *, case: Case, acting_user: User, reason: str, expected_state: str | None = None
) -> Case:
    """网评办发回: tier 2 sends the draft back to the unit with a reason (required)."""
    return _send_back(
        case=case,
        acting_user=acting_user,
        name="office_send_back",
        reason=reason,
        expected_state=expected_state,
        tier=_("网评办"),
    )


LEADER_TIER_TRANSITIONS = ("leader_approve", "leader_send_back")


def _require_leader_in_charge(*, case: Case, acting_user: User) -> None:
    """Refuse tier 3 by a leader not in charge of the case, when the bureau configured it so.

    ``settings.CASEWORK_LEADER_REVIEW``: ``"any"`` (default) lets every leader sign off, while the
    queue and the e-mail go to the leader in charge; ``"in_charge"`` lets only the case's key-case
    leader or the lead unit's 分管局领导 sign off (all leaders when the unit has none set).
    """
    if getattr(settings, "CASEWORK_LEADER_REVIEW", "any") != "in_charge" or acting_user.is_superuser:
        return
    leaders = unit_leaders_in_charge(unit=case.lead_unit)
    if not leaders or acting_user.pk == case.key_case_leader_id or acting_user in leaders:
        return
    raise PermissionDenied(_("本案由%(who)s分管审签,您不是本单位的分管局领导。") % {
        "who": "、".join(str(u) for u in leaders)})


@transaction.atomic
def case_leader_approve(
    *, case: Case, acting_user: User, expected_state: str | None = None, opinion: str = ""
) -> Case:
    """分管局领导审签: tier 3 signs the reply off for publication.

    Args:
        opinion: the leader's opinion (审签意见, optional), kept as the event's reason. The
            event's payload names the draft version signed: the only version
            :func:`case_publish_reply` will publish.
    """
    case, event = _transition(
        case=case, acting_user=acting_user, name="leader_approve", expected_state=expected_state,
        reason=opinion, prepare=lambda locked: _draft_payload(locked, "leader"),
    )
    office = unit_by_function(function=Unit.Function.COMMENT_OFFICE)
    _notify_review(
        case=case,
        event=event,
        recipients=unit_staff_emails(unit=office, role=roles.DISPATCHER) if office else [],
        subject=_("【待发布】%s") % case.reference,
        line=_("分管局领导已审签,请网评办发布答复。"),
    )
    return case


@transaction.atomic
def case_leader_send_back(
    *, case: Case, acting_user: User, reason: str, expected_state: str | None = None
) -> Case:
    """分管局领导发回: tier 3 sends the draft back to the unit with a reason (required)."""
    return _send_back(
        case=case,
        acting_user=acting_user,
        name="leader_send_back",
        reason=reason,
        expected_state=expected_state,
        tier=_("分管局领导"),
    )


def _signed_draft(case: Case) -> ReplyDraft:
    """Return the draft version tier 3 signed, if it is the round's current draft; else refuse."""
    current = case_current_draft(case=case)
    signed_id = review.case_signed_draft_id(case=case)
    if current is None or signed_id is None:
        raise TransitionRefused(_("答复尚未经分管局领导审签,不能发布。"))
    if current.pk != signed_id:
        signed = ReplyDraft.objects.filter(pk=signed_id).values_list("version", flat=True).first()
        raise TransitionRefused(
            _("当前答复草稿第 %(current)s 版不是分管局领导审签的第 %(signed)s 版,不能发布;"
              "请走「发布前修改」重新审核。") % {"current": current.version, "signed": signed}
        )
    return current


@transaction.atomic
def case_publish_reply(
    *,
    case: Case,
    acting_user: User,
    where: str,
    text: str | None = None,
    at: datetime | None = None,
    expected_state: str | None = None,
    expected_draft_id: int | None = None,
) -> Case:
    """回复: publish exactly the draft version the 分管局领导 signed, as a new published version.

    The published text is the signed draft's ``reply_text`` byte for byte; there is no free text.
    A change after sign-off goes through :func:`case_revise_after_sign_off` (a new draft version,
    reviewed again). Each publication is a new immutable ``PublishedReply`` row (a reopened case's
    second reply stands beside the first); ``Case.published_*`` show the latest. The publish
    event names the published version, the draft version and the version each tier signed.

    Args:
        where: where it was published (platform and page).
        text: optional check, for callers holding the text they expect: refused unless it equals
            the signed text exactly.
        at: publication time (aware); defaults to now. The demo passes the platform's real time.
        expected_draft_id: the draft the publisher saw on the page; refused when it is no longer
            the signed current draft.

    Raises:
        TransitionRefused: tier 3 has not signed the current draft version (or signed an older
            one), ``text`` differs from the signed text, the page showed another draft, the text
            is empty, or it contains a phone or ID number (DESIGN.md §8).
    """
    where = (where or "").strip()
    recorded_later = at is not None
    at = at or timezone.now()
    kwargs = {"where": where, "at": at}
    made: dict = {}

    def signed_text(locked: Case) -> dict:
        # Runs under the row lock once state, scope and permission were checked.
        draft = _signed_draft(locked)
        if expected_draft_id is not None and expected_draft_id != draft.pk:
            raise CaseConflict(_("答复草稿已变更,请刷新页面后再发布。"))
        if text is not None and text != draft.reply_text:
            raise TransitionRefused(
                _("发布文本必须与分管局领导审签的答复第 %s 版完全一致;如需修改,请使用「发布前修改」重新送审。")
                % draft.version
            )
        if not draft.reply_text.strip():
            raise TransitionRefused(_("答复内容不能为空。"))
        # Every field that goes public is checked, not only the reply text (DESIGN.md §8).
        numbers = [n for published in (draft.reply_text, where) for n in find_personal_numbers(published)]
        if numbers:
            raise TransitionRefused(
                _("答复中含有电话或身份证号码,请删除后再发布:%s") % "、".join(numbers)
            )
        version = (locked.published_replies.order_by("-version").values_list("version", flat=True)
                   .first() or 0) + 1
        kwargs["text"] = draft.reply_text  # byte for byte what tier 3 signed
        made.update(draft=draft, version=version)
        return {"where": where, "draft_id": draft.pk, "draft_version": draft.version,
                "text": draft.reply_text, "published_version": version,
                "signed_versions": review.case_signed_versions(case=locked),
                # The effective publication time when recorded later (the event's own time is the
                # recording time); the assessment counts reply days to it.
                **({"published_at": at.isoformat()} if recorded_later else {})}

    case, event = _transition(
        case=case,
        acting_user=acting_user,
        name="publish_reply",
        expected_state=expected_state,
        kwargs=kwargs,
        prepare=signed_text,
    )
    publication = PublishedReply.objects.create(
        case=case, version=made["version"], round=case.handling_round, draft=made["draft"],
        text=made["draft"].reply_text, where=where, published_at=at, published_by=acting_user,
        event=event,
    )
    merged_cases_follow_reply(case=case, acting_user=acting_user, publication=publication)
    return case


TYPE_CORRECTABLE_STATES = (State.REGISTERED, *ACTIVE_STATES)


@transaction.atomic
def case_message_type_set(
    *,
    case: Case,
    acting_user: User,
    message_type: str,
    reason: str = "",
    expected_lock_version: int | None = None,
) -> Case:
    """更正留言类型: correct ``case``'s message type and recompute its running clocks.

    The importer guesses the type from the text; the dispatcher corrects it (a complaint that came
    in as 咨询 has 15 working days to reply, not 3). Running clocks keep their start and extensions
    and take the new type's policy (:func:`casework.clocks.clocks_recompute_policy`). Audited as
    ``message_type_set`` with the old and new type and the new deadlines.

    Args:
        message_type: a ``MessageType`` value.
        reason: why (required once the case is dispatched, since deadlines move).
        expected_lock_version: the case's ``lock_version`` when the form was loaded.

    Raises:
        PermissionDenied: the user lacks ``casework.dispatch_case`` or cannot see the case.
        TransitionRefused: unknown type, a closed case, the same type, or no reason after dispatch.
        CaseConflict: the form is stale.
    """
    locked = case_lock(case=case)
    if not user_can_see_case(user=acting_user, case=locked) or not acting_user.has_perm("casework.dispatch_case"):
        raise PermissionDenied(_("您没有对该案件执行此操作的权限。"))
    if expected_lock_version is not None and locked.lock_version != expected_lock_version:
        raise CaseConflict(_("案件已被他人修改,请刷新页面后再操作(您的内容未保存)。"))
    if message_type not in MessageType.values:
        raise TransitionRefused(_("未知的留言类型。"))
    if locked.state not in TYPE_CORRECTABLE_STATES:
        raise TransitionRefused(_("案件当前状态为「%(state)s」,不能更正留言类型。") % {"state": locked.get_state_display()})
    if message_type == locked.message_type:
        raise TransitionRefused(_("留言类型没有变化。"))
    reason = (reason or "").strip()
    if locked.state != State.REGISTERED and not reason:
        raise TransitionRefused(_("案件已交办,更正留言类型会改变期限,必须填写理由。"))
    old = locked.message_type
    locked.message_type = message_type
    case_touch(case=locked, fields=("message_type",))
    rows = clocks.clocks_recompute_policy(case=locked)
    event_append(
        case=locked, action="message_type_set", actor=acting_user, from_state=locked.state,
        to_state=locked.state, reason=reason,
        payload={"from": old, "to": message_type,
                 "due": {row.clock: row.due_at.isoformat() for row in rows}},
    )
    locked.refresh_from_db()
    return locked


@transaction.atomic
def case_revise_after_sign_off(
    *,
    case: Case,
    acting_user: User,
    reply_text: str,
    reason: str,
    expected_state: str | None = None,
    expected_lock_version: int | None = None,
) -> ReplyDraft:
    """发布前修改: change a signed reply before publication; it goes back to the 网评办 for review.

    Saves ``reply_text`` as a new draft version (the unit's report, basis and measures carried
    over from the signed version) authored by ``acting_user``, and moves the case approved →
    网评办审核 (``revise_after_sign_off``): tiers 2 and 3 sign the new version again before it can
    be published. Returns the new draft.

    Args:
        reply_text: the changed reply (required, must differ from the signed text).
        reason: why the signed text is changed (required, kept in the audit event).
        expected_lock_version: the case's ``lock_version`` when the form was loaded.

    Raises:
        TransitionRefused: no reason, an empty or unchanged text, or the case is not approved.
        CaseConflict: the case changed since the form was loaded.
        PermissionDenied: the user lacks ``casework.publish_reply`` on the case.
    """
    reason = (reason or "").strip()
    if not reason:
        raise TransitionRefused(_("必须填写理由。"))
    if not (reply_text or "").strip():
        raise TransitionRefused(_("答复内容不能为空。"))
    made: dict = {}

    def new_version(locked: Case) -> dict:
        # Runs once state, scope and permission were checked, before the transition applies.
        if expected_lock_version is not None and locked.lock_version != expected_lock_version:
            raise CaseConflict(_("案件或答复草稿已被他人修改,请刷新页面后再操作(您的内容未保存)。"))
        signed = case_current_draft(case=locked)
        if signed is None:
            raise TransitionRefused(_("本轮尚无答复草稿。"))
        if signed.reply_text == reply_text:
            raise TransitionRefused(_("答复内容与已审签的版本相同,无需修改。"))
        last = locked.drafts.order_by("-version").values_list("version", flat=True).first() or 0
        made["signed"] = signed
        made["draft"] = ReplyDraft.objects.create(
            case=locked,
            round=locked.handling_round,
            version=last + 1,
            handling_report=signed.handling_report,
            policy_basis=signed.policy_basis,
            measures=signed.measures,
            reply_text=reply_text,
            author=acting_user,
        )
        # The event names the new version: what tiers 2 and 3 now have to sign.
        return {"draft_id": made["draft"].pk, "version": made["draft"].version,
                "replaces_draft_id": signed.pk, "replaces_version": signed.version}

    case, event = _transition(
        case=case,
        acting_user=acting_user,
        name="revise_after_sign_off",
        reason=reason,
        reason_required=True,
        expected_state=expected_state,
        condition_message=_("本轮尚无答复草稿。"),
        prepare=new_version,
    )
    signed, draft = made["signed"], made["draft"]
    office = unit_by_function(function=Unit.Function.COMMENT_OFFICE)
    _notify_review(
        case=case,
        event=event,
        recipients=unit_staff_emails(unit=office, role=roles.OFFICE_REVIEWER) if office else [],
        subject=_("【发布前修改·待审核】%s") % case.reference,
        line=_("已审签的答复在发布前被修改(第 %(old)s 版 → 第 %(new)s 版),理由:%(reason)s。请重新审核。")
        % {"old": signed.version, "new": draft.version, "reason": reason},
    )
    return draft


@transaction.atomic
def case_record_follow_up(
    *,
    case: Case,
    acting_user: User,
    result: str,
    rectification: str = FollowUp.Rectification.NOT_NEEDED,
    note: str = "",
    expected_state: str | None = None,
) -> FollowUp:
    """回访: record the citizen's rating and the rectification status of a replied case."""
    if result not in FollowUp.Result.values:
        raise TransitionRefused(_("请选择回访结果。"))
    if rectification not in FollowUp.Rectification.values:
        raise TransitionRefused(_("请选择整改情况。"))
    case, _event = _transition(
        case=case,
        acting_user=acting_user,
        name="record_follow_up",
        reason=note,
        expected_state=expected_state,
        payload={"result": result, "rectification": rectification},
    )
    return FollowUp.objects.create(
        case=case,
        round=case.handling_round,
        result=result,
        rectification=rectification,
        note=note or "",
        recorded_by=acting_user,
        recorded_at=timezone.now(),
    )


@transaction.atomic
def case_reopen(
    *, case: Case, acting_user: User, reason: str, expected_state: str | None = None
) -> Case:
    """重办: send a replied case back to its unit for another round (reason required).

    A new reply clock starts now with the case's policy length.
    """
    deadlines = case_deadlines(
        message_type=case.message_type,
        start=timezone.now(),
        platform_id=case.platform_id,
        unit=case.lead_unit,
    )
    case, event = _transition(
        case=case,
        acting_user=acting_user,
        name="reopen",
        reason=reason,
        reason_required=True,
        expected_state=expected_state,
        kwargs={"reply_due_at": deadlines.reply_due_at},
        payload={"reply_due_at": deadlines.reply_due_at.isoformat()},
    )
    _notify_unit_handlers(
        case=case,
        event=event,
        subject=_("【重办】%s") % case.reference,
        lines=[_("案件需重新办理,理由:%s") % event.reason],
    )
    return case


@transaction.atomic
def case_archive(
    *, case: Case, acting_user: User, expected_state: str | None = None, reason: str = ""
) -> Case:
    """归档: close a replied case; it becomes read-only.

    Args:
        reason: required when the current round has no 回访 record (DESIGN.md §3: the loop closes
            with the follow-up); kept in the audit event with ``without_follow_up`` in its payload.

    Raises:
        TransitionRefused: no follow-up in this round and no reason, or the case is not replied.
    """
    reason = (reason or "").strip()
    locked = case_lock(case=case)
    followed = locked.follow_ups.filter(round=locked.handling_round).exists()
    if locked.state == State.REPLIED and not followed and not reason:
        raise TransitionRefused(_("该案件本轮尚未回访,归档须填写理由。"))
    case, _event = _transition(
        case=case,
        acting_user=acting_user,
        name="archive",
        reason=reason,
        expected_state=expected_state,
        kwargs={"at": timezone.now()},
        payload={} if followed else {"without_follow_up": True},
    )
    return case


# Transition name → (service, needs a reason). The admin's buttons use this table.
TRANSITION_SERVICES = {
    "accept": (case_accept, False),
    "return_to_office": (case_return_to_office, True),
    "submit_feedback": (case_submit_feedback, False),
    "office_approve": (case_office_approve, False),
    "office_send_back": (case_office_send_back, True),
    "leader_approve": (case_leader_approve, False),
    "leader_send_back": (case_leader_send_back, True),
    "reopen": (case_reopen, True),
    "archive": (case_archive, False),
    "reject_invalid": (case_reject_invalid, True),
}


def merged_cases_follow_reply(
    *, case: Case, acting_user: User, publication: PublishedReply | None = None
) -> int:
    """Give the cases merged into ``case`` its just-published reply; return how many were updated.

    Called by :func:`case_publish_reply` inside its transaction with the
    ``publication`` it just made (default: the case's latest). Each merged case gets a new
    published version of its own that ``follows`` that publication, beside its earlier ones
    (never over them), on its own channel: its ``where`` is its own platform, and its timeline
    records the reply it follows. Cases merged into a case that was later merged itself (A into
    B, then B into ``case``) follow too: the whole tree of duplicates under ``case`` gets the reply.
    """
    if publication is None:
        publication = case.published_replies.order_by("-version").first()
    if publication is None:
        return 0
    count = 0
    parents, seen = [case.pk], {case.pk}
    while parents:
        batch = list(Case.objects.select_for_update(of=("self",)).select_related("platform")
                     .filter(merged_into_id__in=parents).exclude(pk__in=seen).order_by("pk"))
        parents = [m.pk for m in batch]
        seen.update(parents)
        count += _follow_reply(case=case, duplicates=batch, acting_user=acting_user,
                               publication=publication)
    return count


def _follow_reply(*, case: Case, duplicates: list[Case], acting_user: User,
                  publication: PublishedReply) -> int:
    count = 0
    for merged in duplicates:
        version = (merged.published_replies.order_by("-version").values_list("version", flat=True)
                   .first() or 0) + 1
        merged.published_reply = publication.text
        merged.published_at = publication.published_at
        merged.published_where = merged.platform.name
        case_touch(case=merged, fields=("published_reply", "published_at", "published_where"))
        event = event_append(
            case=merged, action="merged_reply", actor=acting_user, from_state=merged.state,
            to_state=merged.state, payload={"main_id": case.pk, "main": case.reference,
                                            "text": publication.text, "published_version": version,
                                            "follows_version": publication.version,
                                            "draft_id": publication.draft_id},
        )
        PublishedReply.objects.create(
            case=merged, version=version, round=merged.handling_round, draft=publication.draft,
            follows=publication, text=publication.text, where=merged.platform.name,
            published_at=publication.published_at, published_by=acting_user, event=event,
        )
        count += 1
    return count
