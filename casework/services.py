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

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from django_fsm import can_proceed

from accounts import roles
from accounts.models import Unit, User
from accounts.selectors import comment_office_emails, role_emails, unit_by_function, unit_staff_emails
from casework import calendar
from casework.duplicates import duplicates_index_and_flag
from casework.models import (
    Case,
    CaseEvent,
    FollowUp,
    MessageType,
    Notification,
    Platform,
    ReplyDraft,
    State,
)
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
    sequence number and the chain are computed without races.
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
    return event


def notification_queue(
    *,
    key: str,
    recipients: list[str],
    subject: str,
    body: str,
    case: Case | None = None,
    html_body: str = "",
) -> Notification | None:
    """Put an e-mail in the outbox once per ``key`` and send it after the transaction commits.

    ``html_body``, when given, is sent as the HTML alternative of the text ``body``.
    Returns the notification, or None when it has no recipients or ``key`` was queued before.
    """
    recipients = sorted({r for r in recipients if r})
    if not recipients:
        return None
    try:
        with transaction.atomic():
            notification = Notification.objects.create(
                key=key, case=case, recipients=recipients, subject=subject, body=body,
                html_body=html_body,
            )
    except IntegrityError:
        return None

    def _send() -> None:
        from casework.tasks import notification_send

        notification_send.delay(notification.pk)

    transaction.on_commit(_send)
    return notification


def notification_deliver(*, notification_id: int) -> bool:
    """Send one queued e-mail unless it was sent already; True when this call sent it.

    The row is locked while sending so two workers never both send it. A failed send is
    recorded (attempts, last error) after the sending transaction rolled back, then the mail
    backend's error is raised again so the Celery task retries.
    """
    from django.core.mail import EmailMultiAlternatives

    try:
        with transaction.atomic():
            notification = Notification.objects.select_for_update().get(pk=notification_id)
            if notification.sent_at is not None:
                return False
            message = EmailMultiAlternatives(
                subject=notification.subject,
                body=notification.body,
                to=notification.recipients,
                # One Message-ID per outbox row: a resend after a crash is recognisable as such.
                headers={"Message-ID": f"<notification-{notification.pk}@casework.invalid>"},
            )
            if notification.html_body:
                message.attach_alternative(notification.html_body, "text/html")
            message.send()
            notification.attempts += 1
            notification.sent_at = timezone.now()
            notification.save(update_fields=["sent_at", "attempts"])
            return True
    except Notification.DoesNotExist:
        raise
    except Exception as exc:  # recorded outside the rolled-back block, then re-raised for a retry
        Notification.objects.filter(pk=notification_id).update(
            attempts=F("attempts") + 1, last_error=str(exc)[:2000]
        )
        raise


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
        body="\n".join([line, "", f"{_('案件')}: {case.reference} {case.subject}", case_url(case)]),
    )


def _notify_unit_handlers(*, case: Case, event: CaseEvent, subject: str, lines: list[str]) -> None:
    if case.lead_unit is None:
        return
    body = "\n".join([*lines, "", f"{_('案件')}: {case.reference} {case.subject}", case_url(case)])
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
    from casework.clocks import deadline_policies

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
) -> tuple[Case, CaseEvent]:
    """Run transition ``name`` on ``case`` for ``acting_user``; see the module docstring."""
    reason = (reason or "").strip()
    if reason_required and not reason:
        raise TransitionRefused(_("必须填写理由。"))
    locked = case_lock(case=case)
    method = getattr(locked, name)
    from casework.selectors import user_can_see_case

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
    if not meta.conditions_met(locked, locked.state):
        raise TransitionRefused(condition_message or _("办理条件尚未满足。"))
    from_state = locked.state
    before = {f.attname: getattr(locked, f.attname) for f in locked._meta.concrete_fields}
    method(**(kwargs or {}))
    from casework.clocks import clocks_on_transition

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
    notification_queue(
        key=f"event:{event.pk}",
        case=case,
        recipients=comment_office_emails(),
        subject=_("【退回】%(ref)s 被 %(unit)s 退回") % {"ref": case.reference, "unit": unit},
        body="\n".join([_("退回理由:%s") % event.reason, case_url(case)]),
    )
    return case


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
    from casework.selectors import user_may_act

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


@transaction.atomic
def case_submit_feedback(
    *, case: Case, acting_user: User, expected_state: str | None = None
) -> Case:
    """反馈: submit the current draft for review (tier 1 is the handler's own check)."""
    from casework.selectors import case_current_draft

    draft = case_current_draft(case=case)
    waiting = list(
        case.co_unit_tasks.filter(reported_at__isnull=True).values_list("unit__name", flat=True)
    )
    message = (
        _("协办单位尚未全部报告,暂不能反馈:%s") % "、".join(waiting)
        if waiting and draft
        else _("请先保存本轮的办理情况和答复草稿。")
    )
    case, _event = _transition(
        case=case,
        acting_user=acting_user,
        name="submit_feedback",
        expected_state=expected_state,
        kwargs={"at": timezone.now()},
        payload={"draft_id": draft.pk, "version": draft.version} if draft else {},
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
def case_office_approve(*, case: Case, acting_user: User, expected_state: str | None = None) -> Case:
    """网评办审核通过: tier 2 passes the draft to the 分管局领导."""
    case, event = _transition(
        case=case, acting_user=acting_user, name="office_approve", expected_state=expected_state
    )
    leader = case.key_case_leader
    _notify_review(
        case=case,
        event=event,
        recipients=[leader.email] if leader and leader.email else role_emails(role=roles.LEADER),
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


@transaction.atomic
def case_leader_approve(*, case: Case, acting_user: User, expected_state: str | None = None) -> Case:
    """分管局领导审签: tier 3 signs the reply off for publication."""
    case, event = _transition(
        case=case, acting_user=acting_user, name="leader_approve", expected_state=expected_state
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


@transaction.atomic
def case_publish_reply(
    *,
    case: Case,
    acting_user: User,
    where: str,
    text: str | None = None,
    at: datetime | None = None,
    expected_state: str | None = None,
) -> Case:
    """回复: publish the approved reply; the published text is frozen on the case.

    Args:
        where: where it was published (platform and page).
        text: the text as published; defaults to the approved draft's reply.
        at: publication time (aware); defaults to now. The demo passes the platform's real time.

    Raises:
        TransitionRefused: no approved draft, an empty text, or the text contains a phone or ID
            number (DESIGN.md §8).
    """
    from casework.selectors import case_current_draft

    draft = case_current_draft(case=case)
    if text is None:
        text = draft.reply_text if draft else ""
    if not text.strip():
        raise TransitionRefused(_("答复内容不能为空。"))
    numbers = find_personal_numbers(text)
    if numbers:
        raise TransitionRefused(
            _("答复中含有电话或身份证号码,请删除后再发布:%s") % "、".join(numbers)
        )
    case, _event = _transition(
        case=case,
        acting_user=acting_user,
        name="publish_reply",
        expected_state=expected_state,
        kwargs={"text": text, "where": (where or "").strip(), "at": at or timezone.now()},
        payload={"where": (where or "").strip(), "draft_id": draft.pk if draft else None, "text": text},
    )
    from casework.joint import merged_cases_follow_reply

    merged_cases_follow_reply(case=case, acting_user=acting_user)
    return case


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
def case_archive(*, case: Case, acting_user: User, expected_state: str | None = None) -> Case:
    """归档: close a replied case; it becomes read-only."""
    case, _event = _transition(
        case=case,
        acting_user=acting_user,
        name="archive",
        expected_state=expected_state,
        kwargs={"at": timezone.now()},
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
