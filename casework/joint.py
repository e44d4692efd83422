"""Writes for the cases that need more than the plain loop (DESIGN.md §3, "orthogonal to the state").

- Joint handling (多警种联动): the dispatcher gives co-units a sub-task with a deadline; each co-unit
  reports; the lead unit's feedback waits for every report (a condition of ``Case.submit_feedback``).
- Key cases (重点难点): a case carries the leader who leads it (局领导挂帅).
- Extension (延期): a unit asks before its deadline; the dispatcher approves (the clock moves, see
  :func:`case_clock_extend`) or refuses.
- Return arbitration (退回裁定): a returned case is re-dispatched to another unit, or sent back to the
  unit that returned it with a ruling.
- Merge: a duplicate registered message is archived into its main case and follows its reply.

Every function locks the case row, checks the acting user's role permission and unit scope through
:func:`casework.selectors.user_may_act`, writes one hash-chained audit event in the same transaction
and queues e-mails after commit, like the transition services in :mod:`casework.services`.
"""

from datetime import datetime

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import roles
from accounts.models import Unit, User
from accounts.selectors import comment_office_emails, unit_is_handling, unit_staff_emails, user_covers_unit
from casework import calendar
from casework.access import user_can_see_case, user_may_act
from casework.clocks import clock_extend
from casework.models import Case, CoUnitTask, Extension, State
from casework.services import (
    CaseConflict,
    TransitionRefused,
    case_dispatch,
    case_lock,
    case_touch,
    case_url,
    event_append,
    merged_cases_follow_reply,  # noqa: F401 (lives with the publication it follows)
    notification_queue,
)

# Longest extension one request may ask for, in working days (a bureau's rule of thumb: an
# extension doubles a complaint's 15 days at most).
MAX_EXTENSION_DAYS = 15

# The clocks a unit may ask to extend, the case field holding each and the states it runs in.
CLOCK_FIELDS = {"sign_for": "sign_for_due_at", "reply": "reply_due_at"}
CLOCK_STATES = {
    "sign_for": [State.DISPATCHED],
    "reply": [State.DISPATCHED, State.HANDLING],
}
CO_UNIT_STATES = [State.DISPATCHED, State.HANDLING]


def _require(user: User, case: Case, perm: str, scope: str = "case") -> None:
    if not user_can_see_case(user=user, case=case):
        raise PermissionDenied(_("您没有对该案件执行此操作的权限。"))
    if not user_may_act(user=user, case=case, perm=perm, scope=scope):
        raise PermissionDenied(_("您没有对该案件执行此操作的权限。"))


# ---------------------------------------------------------------- joint handling


@transaction.atomic
def co_unit_assign(
    *,
    case: Case,
    acting_user: User,
    unit: Unit,
    task: str,
    working_days: int | None = None,
    due_at: datetime | None = None,
) -> CoUnitTask:
    """Give ``unit`` a co-unit sub-task on ``case`` (多警种联动), with its own deadline.

    Args:
        task: what the co-unit is to do (required).
        working_days: deadline as working days from now on the work calendar, or
        due_at: an aware deadline; one of the two is required and it must lie in the future.

    Raises:
        PermissionDenied: the user lacks ``casework.assign_co_unit``, cannot see the case, or
            ``unit`` lies outside the user's scope.
        TransitionRefused: the case is not dispatched or in handling, the unit is the lead unit,
            inactive or already a co-unit, the task is empty or the deadline is not in the future.
    """
    locked = case_lock(case=case)
    _require(acting_user, locked, "assign_co_unit")
    if not user_covers_unit(user=acting_user, unit=unit):
        raise PermissionDenied(_("只能指定您管辖范围内的单位协办。"))
    if locked.state not in CO_UNIT_STATES:
        raise TransitionRefused(_("只有已交办或承办中的案件可以指定协办单位。"))
    if not unit.is_active:
        raise TransitionRefused(_("所选单位已停用。"))
    if not unit_is_handling(unit=unit):
        raise TransitionRefused(_("%s 不是承办单位,不能协办(网评办、纪检督察和局领导不承办留言)。") % unit.name)
    if unit.pk == locked.lead_unit_id:
        raise TransitionRefused(_("协办单位不能是承办单位本身。"))
    task = (task or "").strip()
    if not task:
        raise TransitionRefused(_("请填写协办任务。"))
    now = timezone.now()
    if due_at is None:
        if not working_days or working_days < 1:
            raise TransitionRefused(_("请填写协办期限(工作日)。"))
        due_at = calendar.add_working_days(now, working_days)
    if due_at <= now:
        raise TransitionRefused(_("协办期限必须晚于当前时间。"))
    try:
        with transaction.atomic():
            item = CoUnitTask.objects.create(case=locked, unit=unit, task=task, due_at=due_at)
    except IntegrityError as exc:
        raise TransitionRefused(_("%s 已是该案件的协办单位。") % unit.name) from exc
    event = event_append(
        case=locked,
        action="co_unit_assign",
        actor=acting_user,
        from_state=locked.state,
        to_state=locked.state,
        reason=task,
        payload={"task_id": item.pk, "unit_id": unit.pk, "unit": unit.name, "due_at": due_at.isoformat()},
    )
    case_touch(case=locked)
    notification_queue(
        key=f"event:{event.pk}",
        case=locked,
        recipients=unit_staff_emails(unit=unit, role=roles.HANDLER),
        subject=_("【协办】%(ref)s 请于 %(due)s 前报告")
        % {"ref": locked.reference, "due": timezone.localtime(due_at).strftime("%Y-%m-%d %H:%M")},
        body="\n".join([_("协办任务:%s") % task, case_url(locked)]),
    )
    return item


@transaction.atomic
def co_unit_report(*, task: CoUnitTask, acting_user: User, report: str) -> CoUnitTask:
    """Record a co-unit's report on its sub-task (once).

    Args:
        report: what the co-unit found and did (required).

    Raises:
        PermissionDenied: the user lacks ``casework.submit_feedback`` or is not of the co-unit.
        TransitionRefused: the report is empty, was given already, or the case is no longer with
            the units (not dispatched or in handling).
    """
    locked = case_lock(case=task.case)
    item = CoUnitTask.objects.select_for_update().select_related("unit").get(pk=task.pk)
    if not (acting_user.has_perm("casework.submit_feedback") and user_covers_unit(user=acting_user, unit=item.unit)):
        raise PermissionDenied(_("只有协办单位的办理员可以报告协办情况。"))
    if item.reported_at is not None:
        raise TransitionRefused(_("协办情况已报告,不能重复报告。"))
    if locked.state not in CO_UNIT_STATES:
        raise TransitionRefused(_("案件当前状态为「%(state)s」,不能报告协办情况。") % {"state": locked.get_state_display()})
    report = (report or "").strip()
    if not report:
        raise TransitionRefused(_("请填写协办情况。"))
    item.report = report
    item.reported_at = timezone.now()
    item.reported_by = acting_user
    item.save(update_fields=["report", "reported_at", "reported_by"])
    event = event_append(
        case=locked,
        action="co_unit_report",
        actor=acting_user,
        from_state=locked.state,
        to_state=locked.state,
        reason=report,
        payload={"task_id": item.pk, "unit_id": item.unit_id, "unit": item.unit.name},
    )
    case_touch(case=locked)
    if locked.lead_unit is not None:
        notification_queue(
            key=f"event:{event.pk}",
            case=locked,
            recipients=unit_staff_emails(unit=locked.lead_unit, role=roles.HANDLER),
            subject=_("【协办报告】%(ref)s %(unit)s 已报告") % {"ref": locked.reference, "unit": item.unit.name},
            body=case_url(locked),
        )
    return item


# ---------------------------------------------------------------- key cases


@transaction.atomic
def case_mark_key(*, case: Case, acting_user: User, leader: User | None) -> Case:
    """Mark ``case`` as a key hard case led by ``leader`` (局领导挂帅); ``leader=None`` unmarks it.

    Raises:
        PermissionDenied: the user lacks ``casework.mark_key_case`` or cannot see the case.
        TransitionRefused: ``leader`` does not hold the leader role, or the case is archived.
    """
    locked = case_lock(case=case)
    _require(acting_user, locked, "mark_key_case")
    if locked.state == State.ARCHIVED:
        raise TransitionRefused(_("已归档的案件不能再标记。"))
    if leader is not None and not (leader.is_active and leader.groups.filter(name=roles.LEADER).exists()):
        raise TransitionRefused(_("挂帅人必须是分管局领导。"))
    locked.is_key_case = leader is not None
    locked.key_case_leader = leader
    event_append(
        case=locked,
        action="mark_key_case",
        actor=acting_user,
        from_state=locked.state,
        to_state=locked.state,
        payload={"leader_id": leader.pk if leader else None, "leader": str(leader) if leader else ""},
    )
    case_touch(case=locked, fields=("is_key_case", "key_case_leader"))
    return locked


# ---------------------------------------------------------------- extension


def case_clock_extend(*, case: Case, clock: str, working_days: int) -> datetime:
    """Move ``clock`` of ``case`` ``working_days`` working days later and return the new deadline.

    The one place that moves a clock: the stored ``CaseClock`` of the current round is moved
    (:func:`casework.clocks.clock_extend`, so the sweep sees the new deadline) and the case's copy
    follows; the deadline is recomputed on the work calendar from the old deadline. The caller holds the row lock and
    writes the audit event.

    Args:
        clock: ``"sign_for"`` or ``"reply"``.
        working_days: whole working days, >= 1.
    """
    field = CLOCK_FIELDS[clock]
    moved = clock_extend(case=case, clock=clock, working_days=working_days)  # the stored clock
    new_due = moved.due_at if moved else calendar.add_working_days(getattr(case, field), working_days)
    setattr(case, field, new_due)
    case.save(update_fields=[field, "updated_at"])
    return new_due


@transaction.atomic
def extension_request(
    *, case: Case, acting_user: User, reason: str, working_days: int, clock: str = "reply"
) -> Extension:
    """延期申请: the lead unit asks to move one clock of ``case``, before that clock runs out.

    Args:
        reason: why (required).
        working_days: how many working days longer (1 to ``MAX_EXTENSION_DAYS``).
        clock: ``"reply"`` (default) or ``"sign_for"``.

    Raises:
        PermissionDenied: the user lacks ``casework.request_extension`` or is not of the lead unit.
        TransitionRefused: the clock is not running, its deadline has passed, the reason is empty,
            the number of days is out of range, or a request for that clock is pending already.
    """
    if clock not in CLOCK_FIELDS:
        raise TransitionRefused(_("未知的时限。"))
    locked = case_lock(case=case)
    _require(acting_user, locked, "request_extension", scope="lead")
    if locked.state not in CLOCK_STATES[clock]:
        raise TransitionRefused(
            _("案件当前状态为「%(state)s」,该时限未在计时,不能申请延期。") % {"state": locked.get_state_display()}
        )
    due = getattr(locked, CLOCK_FIELDS[clock])
    now = timezone.now()
    if due is None or due <= now:
        raise TransitionRefused(_("期限已过,不能再申请延期;请尽快办理。"))
    reason = (reason or "").strip()
    if not reason:
        raise TransitionRefused(_("必须填写延期理由。"))
    if not isinstance(working_days, int) or not 1 <= working_days <= MAX_EXTENSION_DAYS:
        raise TransitionRefused(_("延长天数须在 1 至 %d 个工作日之间。") % MAX_EXTENSION_DAYS)
    try:
        with transaction.atomic():
            extension = Extension.objects.create(
                case=locked,
                clock=clock,
                round=locked.handling_round,
                unit=locked.lead_unit,
                requested_by=acting_user,
                requested_at=now,
                reason=reason,
                requested_days=working_days,
                old_due_at=due,
            )
    except IntegrityError as exc:
        raise TransitionRefused(_("该时限已有一份待审批的延期申请。")) from exc
    event = event_append(
        case=locked,
        action="extension_request",
        actor=acting_user,
        from_state=locked.state,
        to_state=locked.state,
        reason=reason,
        payload={"extension_id": extension.pk, "clock": clock, "days": working_days, "due_at": due.isoformat()},
    )
    case_touch(case=locked)
    notification_queue(
        key=f"event:{event.pk}",
        case=locked,
        recipients=comment_office_emails(),
        subject=_("【延期申请】%(ref)s 申请延长 %(days)d 个工作日") % {"ref": locked.reference, "days": working_days},
        body="\n".join([_("延期理由:%s") % reason, case_url(locked)]),
    )
    return extension


@transaction.atomic
def extension_decide(
    *, extension: Extension, acting_user: User, approve: bool, note: str = ""
) -> Extension:
    """延期审批: the dispatcher approves (the clock moves) or refuses (note required) a pending request.

    Raises:
        PermissionDenied: the user lacks ``casework.decide_extension`` or cannot see the case.
        CaseConflict: the request was decided already (by someone else, or a double submit).
        TransitionRefused: a refusal without a note, or the case left the state the clock runs in.
    """
    locked = case_lock(case=extension.case)
    _require(acting_user, locked, "decide_extension")
    item = Extension.objects.select_for_update().get(pk=extension.pk)
    if item.decision != Extension.Decision.PENDING:
        raise CaseConflict(
            _("该延期申请已审批(%(d)s),请刷新页面后再操作。") % {"d": item.get_decision_display()}
        )
    note = (note or "").strip()
    if not approve and not note:
        raise TransitionRefused(_("不批准延期时必须填写理由。"))
    if approve and (locked.state not in CLOCK_STATES[item.clock] or item.round != locked.handling_round):
        raise TransitionRefused(_("案件已进入下一环节,该延期申请不能再批准。"))
    item.decision = Extension.Decision.APPROVED if approve else Extension.Decision.REFUSED
    item.decided_by = acting_user
    item.decided_at = timezone.now()
    item.decision_note = note
    if approve:
        item.new_due_at = case_clock_extend(case=locked, clock=item.clock, working_days=item.requested_days)
    item.save(update_fields=["decision", "decided_by", "decided_at", "decision_note", "new_due_at"])
    event = event_append(
        case=locked,
        action="extension_decide",
        actor=acting_user,
        from_state=locked.state,
        to_state=locked.state,
        reason=note,
        payload={
            "extension_id": item.pk,
            "clock": item.clock,
            "decision": item.decision,
            "days": item.requested_days,
            "old_due_at": item.old_due_at.isoformat(),
            "new_due_at": item.new_due_at.isoformat() if item.new_due_at else None,
        },
    )
    case_touch(case=locked)
    if locked.lead_unit is not None:
        notification_queue(
            key=f"event:{event.pk}",
            case=locked,
            recipients=unit_staff_emails(unit=locked.lead_unit, role=roles.HANDLER),
            subject=_("【延期%(d)s】%(ref)s") % {"d": item.get_decision_display(), "ref": locked.reference},
            body=case_url(locked),
        )
    return item


# ---------------------------------------------------------------- return arbitration


def case_returned_by(*, case: Case) -> Unit | None:
    """Return the unit whose return is waiting for the dispatcher's ruling, or None.

    A registered case in a round after the first came back by 退回 (the only way back to
    ``registered``); the unit is the one named in the last return event.
    """
    if case.state != State.REGISTERED or case.handling_round <= 1:
        return None
    event = case.events.filter(action="return_to_office").order_by("-seq").first()
    if event is None or not event.payload.get("unit_id"):
        return None
    return Unit.objects.filter(pk=event.payload["unit_id"]).first()


@transaction.atomic
def case_return_arbitrate(
    *,
    case: Case,
    acting_user: User,
    send_back: bool,
    ruling: str = "",
    unit: Unit | None = None,
    expected_state: str | None = State.REGISTERED,
) -> Case:
    """退回裁定: decide a unit's return: re-dispatch to ``unit``, or send back to the same unit.

    Args:
        send_back: True to overrule the return and dispatch the case again to the unit that
            returned it (``ruling`` required); False to re-dispatch to another ``unit``.
        ruling: the dispatcher's ruling, kept in the audit trail and sent to the unit.

    Raises:
        PermissionDenied: the user lacks ``casework.dispatch_case`` or cannot see the case.
        TransitionRefused: the case is not a returned one, the ruling is missing for a send-back,
            or a re-dispatch names no unit or the unit that returned it.
        CaseConflict: the case was already dispatched by someone else.
    """
    locked = case_lock(case=case)
    _require(acting_user, locked, "dispatch_case")
    if expected_state is not None and locked.state != expected_state:
        raise CaseConflict(
            _("案件已被他人处理,当前状态为「%(state)s」,请刷新页面后再操作。") % {"state": locked.get_state_display()}
        )
    returned_by = case_returned_by(case=locked)
    if returned_by is None:
        raise TransitionRefused(_("该案件不是退回待裁定的案件。"))
    ruling = (ruling or "").strip()
    if send_back:
        if not ruling:
            raise TransitionRefused(_("发回原单位必须填写裁定意见。"))
        target = returned_by
    else:
        if unit is None:
            raise TransitionRefused(_("请选择改派的承办单位。"))
        if unit.pk == returned_by.pk:
            raise TransitionRefused(_("改派须选择其他单位;如需原单位继续办理,请选择「发回原单位」并填写裁定意见。"))
        target = unit
    event_append(
        case=locked,
        action="return_ruling",
        actor=acting_user,
        from_state=locked.state,
        to_state=locked.state,
        reason=ruling,
        payload={
            "decision": "send_back" if send_back else "redispatch",
            "returned_by_id": returned_by.pk,
            "returned_by": returned_by.name,
            "unit_id": target.pk,
            "unit": target.name,
        },
    )
    return case_dispatch(case=locked, acting_user=acting_user, unit=target, note=ruling,
                         expected_state=State.REGISTERED)


# ---------------------------------------------------------------- merge


@transaction.atomic
def case_merge(*, case: Case, into: Case, acting_user: User, reason: str = "") -> Case:
    """Merge the duplicate registered message ``case`` into its main case ``into``.

    The duplicate is archived (不予受理, closing reason "并入主案件 …") and linked by
    ``merged_into``; when the main case's reply is published, the duplicate receives the same
    text (:func:`casework.services.merged_cases_follow_reply`), to be posted on its own channel.

    Raises:
        PermissionDenied: the user lacks ``casework.merge_case`` or cannot see either case.
        TransitionRefused: the duplicate is not registered, is the main case itself, or the main
            case is archived or itself merged.
    """
    first, second = sorted([case.pk, into.pk])
    locked_all = {c.pk: c for c in Case.objects.select_for_update(of=("self",))
                  .select_related("lead_unit").filter(pk__in=[first, second]).order_by("pk")}
    locked, main = locked_all[case.pk], locked_all.get(into.pk)
    _require(acting_user, locked, "merge_case")
    if main is None or not user_can_see_case(user=acting_user, case=main):
        raise PermissionDenied(_("您没有对该案件执行此操作的权限。"))
    if locked.pk == main.pk:
        raise TransitionRefused(_("不能把案件并入它自己。"))
    if locked.state != State.REGISTERED:
        raise TransitionRefused(
            _("只有待交办的留言可以并入主案件,当前状态为「%(state)s」。") % {"state": locked.get_state_display()}
        )
    if main.state == State.ARCHIVED or main.merged_into_id:
        raise TransitionRefused(_("主案件已归档或本身已被合并,不能作为主案件。"))
    now = timezone.now()
    reason = (reason or "").strip()
    closing = _("重复留言,并入主案件 %s") % main.reference
    from_state = locked.state
    locked.reject_invalid(reason=(closing + (f";{reason}" if reason else ""))[:500], at=now)
    locked.merged_into = main
    case_touch(case=locked, fields=("state", "closing_reason", "archived_at", "merged_into"))
    event_append(
        case=locked, action="merge", actor=acting_user, from_state=from_state, to_state=locked.state,
        reason=reason, payload={"main_id": main.pk, "main": main.reference},
    )
    event_append(
        case=main, action="merge_in", actor=acting_user, from_state=main.state, to_state=main.state,
        reason=reason, payload={"merged_id": locked.pk, "merged": locked.reference},
    )
    case_touch(case=main)
    return locked


