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

Thresholds are compared with the clock's deadline on the work calendar (:mod:`casework.calendar`):
a level with threshold ``k >= 0`` is due when the deadline lies at least ``k`` working days before
now (``due_at <= subtract_working_days(now, k)``; ``k = 0`` means the deadline has passed). The
reminder is due while the deadline is still ahead but at most one working day away
(``now < due_at <= add_working_days(now, 1)``); a case first seen already overdue gets the 督办单,
not a "due soon" reminder. The sign-for clock runs while the case is ``dispatched`` (签收 stops it);
the reply clock runs while the case is active (publishing the reply stops it).

Every step is an ``EscalationStep`` row under a unique constraint (case, clock, round, level), so it
happens at most once whatever the scheduler does (two beats, a redelivered task, two sweeps at
once); its e-mail is queued in the outbox in the same transaction and sent after commit. A level
that needs another fires only once that one exists, so a case climbs one step per sweep. The sweep
computes the cut-offs once and selects due cases with one indexed query per clock and level, so a
sweep with nothing due runs a fixed number of queries, and its cost grows with the cases that are
due, not with all cases. The referral stores a snapshot of the case: its clock, the timeline, the
escalation steps, the 督办单 and the e-mails sent.
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
    """Return the latest deadline on which a level with ``threshold_days`` is due at ``now``."""
    if threshold_days >= 0:
        return calendar.subtract_working_days(now, threshold_days)
    return calendar.add_working_days(now, -threshold_days)


def _is_due(*, due_at: datetime, now: datetime, rung: Rung, cutoff: datetime) -> bool:
    """Tell whether a deadline ``due_at`` makes ``rung`` due at ``now`` (see the module docstring)."""
    if due_at > cutoff:
        return False
    return rung.threshold_days >= 0 or due_at > now


def escalation_due_cases(
    *, now: datetime, clock: str, rung: Rung, cutoff: datetime | None = None
) -> list[int]:
    """Return ids of cases on which ``rung`` of ``clock`` is due at ``now`` and not yet taken.

    One query. Cases whose clock does not run, whose deadline is not far enough past, or whose
    level (or required level) is already recorded are left out by the database.

    Args:
        now: aware datetime (Asia/Shanghai semantics).
        clock: a ``Clock`` value; rung: one entry of ``LADDER``.
        cutoff: ``_cutoff(now, rung.threshold_days)`` when the caller computed it already.
    """
    field = CLOCK_FIELD[clock]
    if cutoff is None:
        cutoff = _cutoff(now, rung.threshold_days)
    taken = EscalationStep.objects.filter(
        case=OuterRef("pk"), clock=clock, round=OuterRef("handling_round"), level=rung.level
    )
    qs = Case.objects.filter(
        state__in=CLOCK_STATES[clock], lead_unit__isnull=False, **{f"{field}__lte": cutoff}
    ).filter(~Exists(taken))
    if rung.threshold_days < 0:
        qs = qs.filter(**{f"{field}__gt": now})
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
    local_due = timezone.localtime(due_at).strftime("%Y-%m-%d %H:%M")
    if now <= due_at:
        return _("期限 %(due)s,尚未到期。") % {"due": local_due}
    days = calendar.working_days_between(due_at, now)
    if days == 0:
        return _("期限 %(due)s,已超期。") % {"due": local_due}
    return _("期限 %(due)s,已超期 %(days)s 个工作日。") % {"due": local_due, "days": days}


def _iso(value: datetime | None) -> str | None:
    return timezone.localtime(value).isoformat() if value else None


def _snapshot(case: Case, *, clock: str, due_at: datetime, now: datetime) -> dict:
    """Return the referral's frozen material: the case, its clock, timeline, steps, notices, e-mails.

    Times are ISO 8601 in Beijing time. Taken inside the transaction that holds the case lock.
    """
    return {
        "reference": case.reference,
        "subject": case.subject,
        "message_type": case.message_type,
        "state": case.state,
        "lead_unit": case.lead_unit.name if case.lead_unit else "",
        "handling_round": case.handling_round,
        "clock": clock,
        "due_at": _iso(due_at),
        "working_days_overdue": calendar.working_days_between(due_at, now),
        "dispatched_at": _iso(case.dispatched_at),
        "accepted_at": _iso(case.accepted_at),
        "taken_at": _iso(now),
        "timeline": [
            {
                "seq": e.seq,
                "action": e.action,
                "from": e.from_state,
                "to": e.to_state,
                "actor": str(e.actor) if e.actor else "",
                "at": _iso(e.at),
                "reason": e.reason,
                "payload": e.payload,
                "hash": e.hash,
            }
            for e in case.events.select_related("actor").order_by("seq")
        ],
        "escalation_steps": [
            {
                "clock": s.clock,
                "round": s.round,
                "level": s.level,
                "due_at": _iso(s.due_at),
                "happened_at": _iso(s.happened_at),
            }
            for s in case.escalation_steps.order_by("happened_at", "pk")
        ],
        "notices": [
            {
                "unit": n.unit.name,
                "opened_at": _iso(n.opened_at),
                "content": n.content,
                "answer": n.answer,
                "answered_at": _iso(n.answered_at),
            }
            for n in case.supervision_notices.select_related("unit").order_by("opened_at", "pk")
        ],
        "notifications": [
            {
                "subject": n.subject,
                "recipients": n.recipients,
                "created_at": _iso(n.created_at),
                "sent_at": _iso(n.sent_at),
            }
            for n in case.notification_set.order_by("created_at", "pk")
        ],
    }


@transaction.atomic
def case_escalate(*, case_id: int, clock: str, level: str, now: datetime) -> EscalationStep | None:
    """Take one ladder step on one case, once; return the new step or None if nothing was due.

    Re-checks under the case row lock that the clock still runs, the deadline is still past the
    threshold and the required level exists, so a case that moved on meanwhile is left alone. The
    step row, the 督办单 or referral, the audit event and the outbox e-mail are written in this
    one transaction; the e-mail is handed to Celery after commit.

    Args:
        case_id: the case's primary key.
        clock: a ``Clock`` value; level: an ``EscalationLevel`` value.
        now: aware datetime of the sweep.
    """
    rung = next(r for r in LADDER if r.level == level)
    # of=("self",): lock only the case row; the unit is joined through a nullable FK (outer
    # join), which PostgreSQL refuses to lock.
    case = (
        Case.objects.select_for_update(of=("self",))
        .select_related("lead_unit")
        .filter(pk=case_id)
        .first()
    )
    if case is None or case.state not in CLOCK_STATES[clock] or case.lead_unit is None:
        return None
    due_at = getattr(case, CLOCK_FIELD[clock])
    if due_at is None or not _is_due(
        due_at=due_at, now=now, rung=rung, cutoff=_cutoff(now, rung.threshold_days)
    ):
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
            case=case,
            unit=unit,
            step=step,
            reason=reason,
            snapshot=_snapshot(case, clock=clock, due_at=due_at, now=now),
            created_at=now,
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
    With nothing due it runs a fixed number of queries (the calendar look-ups for the cut-offs and
    one selection per clock and level), whatever the number of open cases.

    Args:
        now: aware datetime of the sweep; defaults to the current time.
    """
    now = now or timezone.now()
    cutoffs = {rung.threshold_days: _cutoff(now, rung.threshold_days) for rung in LADDER}
    taken: dict[str, int] = {}
    for rung in LADDER:
        for clock in rung.clocks:
            due = escalation_due_cases(
                now=now, clock=clock, rung=rung, cutoff=cutoffs[rung.threshold_days]
            )
            for case_id in due:
                if case_escalate(case_id=case_id, clock=clock, level=rung.level, now=now):
                    taken[rung.level] = taken.get(rung.level, 0) + 1
    return taken
