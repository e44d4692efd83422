"""The escalation ladder, first version (DESIGN.md §4).

Levels and thresholds, in working days relative to a clock's deadline:

=========  =========  ====================================================  =====================
level      threshold  what happens                                          needs level first
=========  =========  ====================================================  =====================
remind     -1         reminder e-mail to the lead unit's handlers            —
urge        0         督办单 opened; e-mail to unit head, handlers, 网评办      —
escalate   +3         e-mail to the 分管局领导                                 urge
refer      +5         纪检督察 referral record; e-mail to the supervisors     escalate
=========  =========  ====================================================  =====================

Every step is an ``EscalationStep`` row under a unique constraint (case, clock, round, level), so it
happens at most once whatever the scheduler does; its e-mail is queued in the outbox in the same
transaction and sent after commit. A level that needs another fires only once that one exists, so
a case climbs one step per sweep. The sweep selects due cases with one indexed query per clock and
level, so its cost grows with the cases that are due, not with all cases.
"""

from dataclasses import dataclass
from datetime import datetime
import logging

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import roles
from accounts.selectors import comment_office_emails, unit_staff_emails
from casework import calendar
from casework.models import (
    ACTIVE_STATES,
    Case,
    Clock,
    DisciplineReferral,
    EscalationLevel,
    EscalationStep,
    State,
    SupervisionNotice,
)
from casework.services import case_url, event_append, notification_queue

logger = logging.getLogger("casework")


@dataclass(frozen=True)
class Rung:
    level: str
    threshold_days: int
    requires: str | None
    clocks: tuple[str, ...]


LADDER = (
    Rung(EscalationLevel.REFER, 5, EscalationLevel.ESCALATE, (Clock.SIGN_FOR, Clock.REPLY)),
    Rung(EscalationLevel.ESCALATE, 3, EscalationLevel.URGE, (Clock.SIGN_FOR, Clock.REPLY)),
    Rung(EscalationLevel.URGE, 0, None, (Clock.SIGN_FOR, Clock.REPLY)),
    Rung(EscalationLevel.REMIND, -1, None, (Clock.REPLY,)),
)

CLOCK_FIELD = {Clock.SIGN_FOR: "sign_for_due_at", Clock.REPLY: "reply_due_at"}
CLOCK_STATES = {Clock.SIGN_FOR: [State.DISPATCHED], Clock.REPLY: ACTIVE_STATES}


def _cutoff(now: datetime, threshold_days: int) -> datetime:
    if threshold_days >= 0:
        return calendar.subtract_working_days(now, threshold_days)
    return calendar.add_working_days(now, -threshold_days)


def escalation_due_cases(*, now: datetime, clock: str, rung: Rung) -> list[int]:
    """Return ids of cases on which ``rung`` of ``clock`` is due at ``now`` and not yet taken.

    Args:
        now: aware datetime (Asia/Shanghai semantics).
    """
    field = CLOCK_FIELD[clock]
    taken = EscalationStep.objects.filter(
        case=OuterRef("pk"), clock=clock, round=OuterRef("handling_round"), level=rung.level
    )
    qs = Case.objects.filter(
        state__in=CLOCK_STATES[clock], **{f"{field}__lte": _cutoff(now, rung.threshold_days)}
    ).filter(~Exists(taken))
    if rung.requires:
        qs = qs.filter(
            Exists(
                EscalationStep.objects.filter(
                    case=OuterRef("pk"),
                    clock=clock,
                    round=OuterRef("handling_round"),
                    level=rung.requires,
                )
            )
        )
    return list(qs.order_by(field).values_list("pk", flat=True))


def _users_emails(role: str) -> list[str]:
    return list(
        get_user_model()
        .objects.filter(groups__name=role, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )


def _late_text(case: Case, due_at: datetime, now: datetime) -> str:
    days = calendar.working_days_between(due_at, now) if now > due_at else 0
    local_due = timezone.localtime(due_at).strftime("%Y-%m-%d %H:%M")
    if now <= due_at:
        return _("期限 %(due)s,尚未到期。") % {"due": local_due}
    return _("期限 %(due)s,已超期 %(days)s 个工作日。") % {"due": local_due, "days": days}


def _snapshot(case: Case) -> dict:
    return {
        "reference": case.reference,
        "subject": case.subject,
        "state": case.state,
        "lead_unit": case.lead_unit.name if case.lead_unit else "",
        "timeline": [
            {
                "seq": e.seq,
                "action": e.action,
                "from": e.from_state,
                "to": e.to_state,
                "actor": str(e.actor) if e.actor else "",
                "at": e.at.isoformat(),
                "reason": e.reason,
                "hash": e.hash,
            }
            for e in case.events.select_related("actor").order_by("seq")
        ],
        "notices": [
            {
                "opened_at": n.opened_at.isoformat(),
                "content": n.content,
                "answered_at": n.answered_at.isoformat() if n.answered_at else None,
            }
            for n in case.supervision_notices.order_by("opened_at")
        ],
        "notifications": [
            {"subject": n.subject, "recipients": n.recipients, "sent_at": n.sent_at.isoformat() if n.sent_at else None}
            for n in case.notification_set.order_by("created_at")
        ],
    }


@transaction.atomic
def case_escalate(*, case_id: int, clock: str, level: str, now: datetime) -> EscalationStep | None:
    """Take one ladder step on one case, once; return the new step or None if nothing was due.

    Re-checks under the case row lock that the clock still runs, the deadline is still past the
    threshold and the required level exists, so a case that moved on meanwhile is left alone.

    Args:
        case_id: the case's primary key.
        clock: a ``Clock`` value; level: an ``EscalationLevel`` value.
        now: aware datetime of the sweep.
    """
    rung = next(r for r in LADDER if r.level == level)
    case = Case.objects.select_for_update().select_related("lead_unit").filter(pk=case_id).first()
    if case is None or case.state not in CLOCK_STATES[clock] or case.lead_unit is None:
        return None
    due_at = getattr(case, CLOCK_FIELD[clock])
    if due_at is None or due_at > _cutoff(now, rung.threshold_days):
        return None
    steps = EscalationStep.objects.filter(case=case, clock=clock, round=case.handling_round)
    if steps.filter(level=level).exists():
        return None
    if rung.requires and not steps.filter(level=rung.requires).exists():
        return None
    try:
        with transaction.atomic():
            step = EscalationStep.objects.create(
                case=case, clock=clock, round=case.handling_round, level=level, due_at=due_at, happened_at=now
            )
    except IntegrityError:
        return None

    unit = case.lead_unit
    clock_label = Clock(clock).label
    late = _late_text(case, due_at, now)
    head = f"{case.reference} {case.subject}\n{_('承办单位')}: {unit.name}\n{clock_label}{late}"
    payload = {"clock": clock, "level": level, "step_id": step.pk, "due_at": due_at.isoformat()}

    if level == EscalationLevel.REMIND:
        recipients = unit_staff_emails(unit=unit, role=roles.HANDLER)
        subject = _("【到期提醒】%(ref)s %(clock)s即将到期") % {"ref": case.reference, "clock": clock_label}
        body = f"{head}\n\n{_('请抓紧办理。')}"
    elif level == EscalationLevel.URGE:
        content = _("案件%(clock)s已超期,请%(unit)s立即办理并答复督办单。") % {
            "clock": clock_label,
            "unit": unit.name,
        }
        notice = SupervisionNotice.objects.create(
            case=case, unit=unit, step=step, content=content, opened_at=now
        )
        payload["notice_id"] = notice.pk
        recipients = (
            unit_staff_emails(unit=unit, heads_only=True)
            + unit_staff_emails(unit=unit, role=roles.HANDLER)
            + comment_office_emails()
        )
        subject = _("【催办·督办单】%(ref)s %(clock)s已超期") % {"ref": case.reference, "clock": clock_label}
        body = f"{head}\n\n{content}"
    elif level == EscalationLevel.ESCALATE:
        recipients = _users_emails(roles.LEADER) + comment_office_emails()
        subject = _("【报分管局领导】%(ref)s 超期未办结") % {"ref": case.reference}
        body = f"{head}\n\n{_('该案件已开具督办单仍未办结,报请分管局领导督促。')}"
    else:
        reason = _("%(clock)s超期,经催办、报分管局领导后仍未办结。") % {"clock": clock_label}
        referral = DisciplineReferral.objects.create(
            case=case, unit=unit, step=step, reason=reason, snapshot=_snapshot(case), created_at=now
        )
        payload["referral_id"] = referral.pk
        recipients = _users_emails(roles.SUPERVISOR)
        subject = _("【移交纪检督察】%(ref)s %(unit)s 超期未办") % {"ref": case.reference, "unit": unit.name}
        timeline = "\n".join(
            f"  {timezone.localtime(e.at).strftime('%Y-%m-%d %H:%M')} {e.action} {e.reason}".rstrip()
            for e in case.events.order_by("seq")
        )
        body = f"{head}\n\n{reason}\n\n{_('办理经过')}:\n{timeline}"

    event = event_append(
        case=case,
        action=f"escalation_{level}",
        actor=None,
        from_state=case.state,
        to_state=case.state,
        payload=payload,
        at=now,
    )
    notification_queue(
        key=f"step:{step.pk}",
        case=case,
        recipients=recipients,
        subject=subject,
        body=f"{body}\n\n{case_url(case)}",
    )
    logger.info("escalation %s %s %s event=%s", case.reference, clock, level, event.seq)
    return step


def escalation_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Take every ladder step that is due at ``now``; return how many steps of each level were taken.

    Safe to run twice or concurrently: each step is re-checked under the case lock and protected by
    the unique constraint. Highest levels are handled first so a case climbs one step per sweep.
    """
    now = now or timezone.now()
    taken: dict[str, int] = {}
    for rung in LADDER:
        for clock in rung.clocks:
            for case_id in escalation_due_cases(now=now, clock=clock, rung=rung):
                if case_escalate(case_id=case_id, clock=clock, level=rung.level, now=now):
                    taken[rung.level] = taken.get(rung.level, 0) + 1
    return taken
