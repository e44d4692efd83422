"""The escalation ladder, as data (DESIGN.md §4).

The rungs are ``EscalationRung`` rows, editable by superusers; the defaults
(:data:`casework.defaults.DEFAULT_LADDER`) are:

=========  =========  ====================================================  =====================
level      threshold  what happens                                          needs level first
=========  =========  ====================================================  =====================
remind     -1         reminder e-mail to the lead unit's handlers            —
urge        0         督办单 opened; e-mail to unit head, handlers, 网评办      —
escalate   +3         e-mail to the 分管局领导 and 网评办                       urge
refer      +5         纪检督察 referral record; e-mail to the supervisors     escalate
=========  =========  ====================================================  =====================

A threshold is in working days relative to a stored clock deadline (``CaseClock.due_at``, see
:mod:`casework.clocks`). A rung with ``k >= 0`` is due when the deadline lies at least ``k``
working days before now (``due_at <= subtract_working_days(now, k)``; ``k = 0`` means the deadline
has passed). A rung with ``k < 0`` is due while the deadline is still ahead but at most ``-k``
working days away (``now < due_at <= add_working_days(now, -k)``), so a case first seen already
overdue gets the 督办单, not a "due soon" reminder. A referral rung with
``unit_open_notices_limit`` also fires on every case of a unit that has that many 督办单 left
unanswered for ``notice_answer_days`` working days.

Every step is an ``EscalationStep`` row under a unique constraint (case, clock, round, level), so it
happens at most once whatever the scheduler does (two beats, a redelivered task, two sweeps at
once); its e-mail is queued in the outbox in the same transaction and handed to Celery after
commit. A rung that needs another fires only once that one exists, so a case climbs one step per
sweep. The sweep computes the cut-offs once and selects due clocks with one indexed query per
rung on the running clocks' deadlines, so with nothing due it runs a fixed number of queries and
its cost grows with the clocks that are due, not with all cases.
"""

import contextlib
from datetime import datetime
import logging

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import roles
from accounts.selectors import (
    comment_office_emails,
    leader_emails_for_unit,
    role_emails,
    unit_staff_emails,
    user_covers_unit,
)
from casework import calendar
from casework.access import user_can_see_case
from casework.clocks import UNIT_CLOCKS
from casework.models import (
    Case,
    CaseClock,
    Clock,
    DisciplineReferral,
    EscalationRung,
    EscalationStep,
    SupervisionNotice,
)
from casework.selectors import notices_awaiting_answer
from casework.services import TransitionRefused, case_lock, case_url, event_append, notification_queue
from casework.text import mask_personal_numbers

logger = logging.getLogger("casework")

TRIGGER_LADDER = "ladder"
TRIGGER_UNIT_NOTICES = "unit_notices"


def ladder_rungs() -> list[EscalationRung]:
    """Return the active rungs, highest threshold first (the order the sweep takes them). One query."""
    return list(
        EscalationRung.objects.filter(is_active=True)
        .select_related("requires")
        .order_by("-threshold_days", "level")
    )


def _cutoff(cal: calendar.WorkCalendar, now: datetime, threshold_days: int) -> datetime:
    """Return the latest deadline on which a rung with ``threshold_days`` is due at ``now``."""
    if threshold_days >= 0:
        return cal.subtract_working_days(now, threshold_days)
    return cal.add_working_days(now, -threshold_days)


def _is_due(*, due_at: datetime, now: datetime, rung: EscalationRung, cutoff: datetime) -> bool:
    if due_at > cutoff:
        return False
    return rung.threshold_days >= 0 or due_at > now


def _step_exists(level: str):
    return EscalationStep.objects.filter(
        case=OuterRef("case_id"), clock=OuterRef("clock"), round=OuterRef("round"), level=level
    )


def _clock_calendar(clock: CaseClock, cal: calendar.WorkCalendar, unit_cals: dict | None) -> calendar.WorkCalendar:
    """Return the calendar ``clock`` counts on: its unit's for a unit clock, else the bureau's."""
    if clock.clock not in UNIT_CLOCKS or not clock.unit_id:
        return cal
    if unit_cals is None:
        return calendar.work_calendar(unit=clock.unit)
    return unit_cals.get(clock.unit_id, cal)


def _per_unit_q(field: str, bureau_cutoff: datetime, unit_cutoffs: dict[int, datetime] | None,
                unit_field: str, only_clocks: bool) -> Q:
    """``field <= cutoff`` with each unit of ``unit_cutoffs`` on its own cut-off (its calendar)."""
    if not unit_cutoffs:
        return Q(**{f"{field}__lte": bureau_cutoff})
    own = Q(**{f"{unit_field}__in": list(unit_cutoffs)})
    if only_clocks:
        own &= Q(clock__in=list(UNIT_CLOCKS))
    q = Q(**{f"{field}__lte": bureau_cutoff}) & ~own
    for unit_id, cut in unit_cutoffs.items():
        unit_q = Q(**{unit_field: unit_id, f"{field}__lte": cut})
        if only_clocks:
            unit_q &= Q(clock__in=list(UNIT_CLOCKS))
        q |= unit_q
    return q


def escalation_due_clocks(
    *, now: datetime, rung: EscalationRung, cutoff: datetime,
    unit_cutoffs: dict[int, datetime] | None = None,
) -> list[int]:
    """Return ids of running clocks on which ``rung`` is due at ``now`` and not yet taken.

    One query on the partial index of running clocks' deadlines, without a join to the cases; the
    taken and required steps are checked by the database through the (case, clock, round, level)
    unique index. (A running clock always has a lead unit: a return stops every clock; the lock
    in :func:`case_escalate` re-checks it.)

    Args:
        now: aware datetime of the sweep.
        rung: an active ``EscalationRung``.
        cutoff: ``_cutoff(calendar, now, rung.threshold_days)`` on the bureau calendar.
        unit_cutoffs: ``{unit_id: cutoff}`` on the calendar of each unit with its own exceptions
            (:func:`casework.calendar.unit_calendars`); that unit's clocks (签收, 承办反馈, 答复)
            count on it, so its own day off moves its escalation as it moved its deadline.
    """
    if not rung.clocks:
        return []
    qs = CaseClock.objects.filter(
        _per_unit_q("due_at", cutoff, unit_cutoffs, "unit_id", only_clocks=True),
        stopped_at__isnull=True,
        clock__in=rung.clocks,
    ).filter(~Exists(_step_exists(rung.level)))
    if rung.threshold_days < 0:
        qs = qs.filter(due_at__gt=now)
    if rung.requires_id:
        qs = qs.filter(Exists(_step_exists(rung.requires.level)))
    return list(qs.order_by("due_at").values_list("pk", flat=True))


def unit_notice_referrals_due(
    *, now: datetime, rung: EscalationRung, cal: calendar.WorkCalendar, unit_cals: dict | None = None,
) -> list[int]:
    """Return ids of clocks to refer because their unit has too many unanswered 督办单.

    A 督办单 counts once it has been awaiting its unit's answer
    (:func:`casework.selectors.notices_awaiting_answer_q`: not answered, not closed, the case
    active and still led by the unit it was addressed to) for ``rung.notice_answer_days`` working
    days, counted on that unit's calendar (``unit_cals``, default the bureau's ``cal``). Every such
    notice of a unit with at least ``rung.unit_open_notices_limit`` of them names the clock (of its
    ladder step) to refer, unless that clock's ``rung`` step exists; so only cases the unit still
    holds are referred, and a notice left behind on a case it returned never counts. Two queries
    (one when no unit is over the limit).
    """
    if not (rung.opens_referral and rung.unit_open_notices_limit):
        return []
    overdue_since = cal.subtract_working_days(now, rung.notice_answer_days)
    unit_since = {uid: c.subtract_working_days(now, rung.notice_answer_days) for uid, c in (unit_cals or {}).items()}
    unanswered = notices_awaiting_answer().filter(
        _per_unit_q("opened_at", overdue_since, unit_since, "unit_id", only_clocks=False),
        step__isnull=False,
    )
    units = list(
        unanswered.values("unit_id")
        .annotate(n=Count("pk"))
        .filter(n__gte=rung.unit_open_notices_limit)
        .values_list("unit_id", flat=True)
    )
    if not units:
        return []
    notices = unanswered.filter(
        unit_id__in=units,
        case_id=OuterRef("case_id"),
        step__clock=OuterRef("clock"),
        step__round=OuterRef("round"),
    )
    return list(
        CaseClock.objects.filter(
            stopped_at__isnull=True,
            case_id__in=unanswered.filter(unit_id__in=units).values("case_id"),
        )
        .filter(Exists(notices))
        .filter(~Exists(_step_exists(rung.level)))
        .order_by("due_at")
        .values_list("pk", flat=True)
    )


def _recipients(rung: EscalationRung, unit, cache: dict | None = None) -> list[str]:
    if cache is not None:
        key = (rung.pk, unit.pk)
        if key not in cache:
            cache[key] = _recipients(rung, unit)
        return cache[key]
    emails: list[str] = []
    if rung.notify_handlers:
        emails += unit_staff_emails(unit=unit, role=roles.HANDLER)
    if rung.notify_unit_head:
        emails += unit_staff_emails(unit=unit, heads_only=True)
    if rung.notify_comment_office:
        emails += comment_office_emails()
    if rung.notify_leaders:
        emails += leader_emails_for_unit(unit=unit)  # the unit's 分管局领导, else every leader
    if rung.notify_supervisors:
        emails += role_emails(role=roles.SUPERVISOR)
    return emails


def _late_text(cal: calendar.WorkCalendar, due_at: datetime, now: datetime) -> str:
    local_due = timezone.localtime(due_at).strftime("%Y-%m-%d %H:%M")
    if now <= due_at:
        return _("期限 %(due)s,尚未到期。") % {"due": local_due}
    days = cal.working_days_between(due_at, now)
    if days == 0:
        return _("期限 %(due)s,已超期。") % {"due": local_due}
    return _("期限 %(due)s,已超期 %(days)s 个工作日。") % {"due": local_due, "days": days}


def _iso(value: datetime | None) -> str | None:
    return timezone.localtime(value).isoformat() if value else None


def _snapshot(case: Case, *, clock: str, due_at: datetime, now: datetime, cal) -> dict:
    """Return the referral's frozen material: the case, its clock, timeline, steps, notices, e-mails.

    Times are ISO 8601 in Beijing time. Taken inside the transaction that holds the case lock.
    """
    return {
        "reference": case.reference,
        "subject": case.subject,
        "body": case.body,
        "message_type": case.message_type,
        "state": case.state,
        "lead_unit": case.lead_unit.name if case.lead_unit else "",
        "handling_round": case.handling_round,
        "clock": clock,
        "due_at": _iso(due_at),
        "working_days_overdue": cal.working_days_between(due_at, now),
        "submitted_at": _iso(case.submitted_at),
        "dispatched_at": _iso(case.dispatched_at),
        "accepted_at": _iso(case.accepted_at),
        "taken_at": _iso(now),
        "clocks": [
            {
                "clock": c.clock,
                "round": c.round,
                "started_at": _iso(c.started_at),
                "due_at": _iso(c.due_at),
                "stopped_at": _iso(c.stopped_at),
            }
            for c in case.clocks.order_by("round", "started_at", "pk")
        ],
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


def _subject(rung: EscalationRung, case: Case, clock_label: str) -> str:
    if rung.opens_referral:
        return _("【移交纪检督察】%(ref)s %(unit)s 超期未办") % {
            "ref": case.reference, "unit": case.lead_unit.name,
        }
    if rung.opens_notice:
        return _("【催办·督办单】%(ref)s %(clock)s已超期") % {"ref": case.reference, "clock": clock_label}
    if rung.threshold_days < 0:
        return _("【到期提醒】%(ref)s %(clock)s即将到期") % {"ref": case.reference, "clock": clock_label}
    return _("【%(name)s】%(ref)s 超期未办结") % {"name": rung.name, "ref": case.reference}


@transaction.atomic
def case_escalate(
    *, clock_id: int, rung: EscalationRung, now: datetime, trigger: str = TRIGGER_LADDER,
    cal: calendar.WorkCalendar | None = None, recipients_cache: dict | None = None,
    unit_cals: dict | None = None,
) -> EscalationStep | None:
    """Take one ladder step on one running clock, once; return the new step or None if not due.

    Re-checks under the case row lock that the clock still runs, that the step is still due (for
    the ladder trigger: the deadline past the threshold and the required step taken) and not yet
    taken, so a case that moved on meanwhile is left alone. The step row, the 督办单 or referral,
    the audit event and the outbox e-mail (text and HTML) are written in this one transaction;
    the e-mail is handed to Celery after commit.

    Args:
        clock_id: primary key of a ``CaseClock``.
        rung: the ``EscalationRung`` to take.
        now: aware datetime of the sweep.
        trigger: ``"ladder"`` (deadline threshold) or ``"unit_notices"`` (the unit has too many
            unanswered 督办单; the threshold and required step are not checked).
        cal: the bureau calendar when the caller loaded it.
        unit_cals: ``{unit_id: calendar}`` of the units with their own exceptions
            (:func:`casework.calendar.unit_calendars`) when the caller loaded them; else the
            clock's unit calendar is loaded. A unit clock's threshold and late text count on it.
        recipients_cache: a dict the sweep shares across cases, so the addresses of one rung for
            one unit are read once per sweep.
    """
    cal = cal or calendar.work_calendar()
    # order_by(): no default ordering, which would join the case table.
    row = CaseClock.objects.filter(pk=clock_id).order_by().values("case_id").first()
    if row is None:
        return None
    case = case_lock(case=Case(pk=row["case_id"]))  # a clock's case always exists (PROTECT)
    clock = CaseClock.objects.filter(pk=clock_id, stopped_at__isnull=True).order_by().first()
    if case is None or clock is None or case.lead_unit is None:
        return None
    cal = _clock_calendar(clock, cal, unit_cals)
    steps = EscalationStep.objects.filter(case=case, clock=clock.clock, round=clock.round)
    if trigger == TRIGGER_LADDER:
        if not _is_due(due_at=clock.due_at, now=now, rung=rung,
                       cutoff=_cutoff(cal, now, rung.threshold_days)):
            return None
        if rung.requires_id and not steps.filter(level=rung.requires.level).exists():
            return None
    if steps.filter(level=rung.level).exists():
        return None
    try:
        with transaction.atomic():
            step = EscalationStep.objects.create(
                case=case, clock=clock.clock, round=clock.round, level=rung.level,
                due_at=clock.due_at, happened_at=now,
            )
    except IntegrityError:
        return None

    unit = case.lead_unit
    clock_label = Clock(clock.clock).label if clock.clock in Clock.values else clock.clock
    late = _late_text(cal, clock.due_at, now)
    payload = {
        "clock": clock.clock, "level": rung.level, "step_id": step.pk,
        "due_at": clock.due_at.isoformat(), "trigger": trigger,
    }
    notice = referral = None
    if rung.opens_notice:
        content = _("案件%(clock)s已超期,请%(unit)s立即办理并答复督办单。") % {
            "clock": clock_label, "unit": unit.name,
        }
        notice = SupervisionNotice.objects.create(
            case=case, unit=unit, step=step, content=content, opened_at=now
        )
        payload["notice_id"] = notice.pk
    if rung.opens_referral:
        if trigger == TRIGGER_UNIT_NOTICES:
            reason = _("%(unit)s有 %(n)s 件以上督办单逾期未答复,本案%(clock)s超期。") % {
                "unit": unit.name, "n": rung.unit_open_notices_limit, "clock": clock_label,
            }
        else:
            reason = _("%(clock)s超期,经催办、报分管局领导后仍未办结。") % {"clock": clock_label}
        referral = DisciplineReferral.objects.create(
            case=case, unit=unit, step=step, reason=reason, trigger=trigger, created_at=now,
            snapshot=_snapshot(case, clock=clock.clock, due_at=clock.due_at, now=now, cal=cal),
        )
        payload["referral_id"] = referral.pk

    event = event_append(
        case=case, action=f"escalation_{rung.level}", actor=None, from_state=case.state,
        to_state=case.state, payload=payload, at=now,
    )
    context = _email_context(
        case=case, rung=rung, clock_label=clock_label, due_at=clock.due_at, late=late,
        notice=notice, referral=referral, now=now,
    )
    notification_queue(
        key=f"step:{step.pk}",
        case=case,
        recipients=_recipients(rung, unit, cache=recipients_cache),
        subject=_subject(rung, case, clock_label),
        body=render_to_string("casework/email/escalation.txt", context),
        html_body=render_to_string("casework/email/escalation.html", context),
    )
    logger.info("escalation %s %s %s event=%s", case.reference, clock.clock, rung.level, event.seq)
    return step


def _email_context(*, case, rung, clock_label, due_at, late, notice, referral, now) -> dict:
    from django.conf import settings
    from django.urls import reverse

    history = [
        {"at": timezone.localtime(e.at).strftime("%Y-%m-%d %H:%M"), "action": e.action_label,
         "actor": str(e.actor) if e.actor else _("系统"), "reason": mask_personal_numbers(e.reason)}
        for e in case.events.select_related("actor").order_by("seq")
    ]
    referral_url = (
        settings.SITE_URL + reverse("admin:casework_disciplinereferral_change", args=[referral.pk])
        if referral else ""
    )
    return {
        "case": case,
        "unit": case.lead_unit,
        "rung": rung,
        "clock_label": clock_label,
        "due": timezone.localtime(due_at).strftime("%Y-%m-%d %H:%M"),
        "late": late,
        "notice": notice,
        "referral": referral,
        "referral_url": referral_url,
        "history": history,
        "case_url": case_url(case),
        "now": timezone.localtime(now).strftime("%Y-%m-%d %H:%M"),
        # An e-mail leaves the system for mixed recipients: personal numbers always masked.
        "subject": mask_personal_numbers(case.subject),
        "excerpt": mask_personal_numbers(case.body)[:300],
    }


def escalation_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Take every ladder step that is due at ``now``; return how many steps of each level were taken.

    Safe to run twice or concurrently: each step is re-checked under the case lock and protected by
    the unique constraint. Highest rungs are handled first so a case climbs one step per sweep.
    Working days are counted on the bureau calendar, and a unit clock (签收, 承办反馈, 答复) on its
    unit's own calendar when that unit has exceptions (:func:`casework.calendar.unit_calendars`).
    With nothing due it runs a fixed number of queries (the rungs, the calendar and the units'
    own rows, one selection per rung and the unit 督办单 count), whatever the number of open cases.

    Args:
        now: aware datetime of the sweep; defaults to the current time.
    """
    now = now or timezone.now()
    cal = calendar.work_calendar()
    unit_cals = calendar.unit_calendars(base=cal)
    rungs = ladder_rungs()
    taken: dict[str, int] = {}
    recipients: dict = {}

    def take(ids, rung, trigger):
        for clock_id in ids:
            if case_escalate(clock_id=clock_id, rung=rung, now=now, trigger=trigger, cal=cal,
                             recipients_cache=recipients, unit_cals=unit_cals):
                taken[rung.level] = taken.get(rung.level, 0) + 1

    for rung in rungs:
        cutoff = _cutoff(cal, now, rung.threshold_days)
        unit_cutoffs = {uid: _cutoff(c, now, rung.threshold_days) for uid, c in unit_cals.items()}
        take(escalation_due_clocks(now=now, rung=rung, cutoff=cutoff, unit_cutoffs=unit_cutoffs),
             rung, TRIGGER_LADDER)
        take(unit_notice_referrals_due(now=now, rung=rung, cal=cal, unit_cals=unit_cals), rung,
             TRIGGER_UNIT_NOTICES)
    return taken


# Key of the PostgreSQL advisory lock held while a sweep runs (any constant unique to this use).
SWEEP_LOCK_KEY = 0x63775377  # "cwSw"


@contextlib.contextmanager
def sweep_lock():
    """Hold the sweep lock for the duration of the block; yield False when another sweep holds it.

    On PostgreSQL this is a session advisory lock, so a beat that fires while a long sweep is still
    running skips instead of doing the same work twice (it would be safe, only wasted). On SQLite,
    which lets one writer at a time anyway, the block always runs.
    """
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [SWEEP_LOCK_KEY])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [SWEEP_LOCK_KEY])


class ReferralOutcomeRefused(TransitionRefused):
    """An outcome cannot be recorded; ``str(exc)`` says why."""


@transaction.atomic
def referral_record_outcome(
    *, referral: DisciplineReferral, acting_user, kind: str, note: str
) -> DisciplineReferral:
    """Record 纪检督察's outcome of a referral (约谈, 通报批评, 诫勉谈话, 不予追责 …), once.

    The referral's material (case snapshot, reason) never changes; the outcome is written once
    and is then final, with an audit event on the case.

    Args:
        referral: the ``DisciplineReferral``.
        acting_user: a user with ``casework.record_referral_outcome``.
        kind: a ``DisciplineReferral.Outcome`` value.
        note: the decision in words (required).

    Raises:
        PermissionDenied: the user lacks ``casework.record_referral_outcome`` or cannot see the
            referral's case (the one access rule; a model-wide permission never widens it, C17).
        ReferralOutcomeRefused: an outcome was recorded already, the kind is unknown or the note
            is empty.
    """
    from django.core.exceptions import PermissionDenied

    if not acting_user.has_perm("casework.record_referral_outcome") or not user_can_see_case(
        user=acting_user, case=referral.case
    ):
        raise PermissionDenied(_("您没有登记移交处理结果的权限。"))
    note = (note or "").strip()
    if kind not in DisciplineReferral.Outcome.values:
        raise ReferralOutcomeRefused(_("请选择处理方式。"))
    if not note:
        raise ReferralOutcomeRefused(_("请填写处理结果说明。"))
    # Lock order as everywhere else: the case first, then its child row.
    case = case_lock(case=referral.case)
    locked = DisciplineReferral.objects.select_for_update().get(pk=referral.pk)
    if locked.outcome_recorded_at is not None:
        raise ReferralOutcomeRefused(_("该移交已登记处理结果,不能修改。"))
    now = timezone.now()
    locked.outcome_kind = kind
    locked.outcome = note
    locked.outcome_recorded_at = now
    locked.outcome_by = acting_user
    locked.save(update_fields=["outcome_kind", "outcome", "outcome_recorded_at", "outcome_by"])
    event_append(
        case=case, action="referral_outcome", actor=acting_user, from_state=case.state,
        to_state=case.state, reason=note,
        payload={"referral_id": locked.pk, "kind": kind}, at=now,
    )
    return locked


class NoticeAnswerRefused(TransitionRefused):
    """A 督办单 cannot be answered; ``str(exc)`` says why."""


@transaction.atomic
def supervision_notice_answer(*, notice: SupervisionNotice, acting_user, answer: str) -> SupervisionNotice:
    """Record the supervised unit's answer to a 督办单 (DESIGN.md §3: tracked until the unit answers).

    Only the unit the notice was sent to answers it: the user needs ``casework.answer_supervision``
    and the notice's unit in his scope (seeing the case is not enough: the office sees every case
    but does not answer for a district). The answer is written once, with an audit event on the
    case; an answered notice no longer counts towards the ladder's unanswered-notice referral.

    Args:
        notice: the ``SupervisionNotice``.
        acting_user: a handler (or head) of the supervised unit.
        answer: what the unit did, in words (required).

    Raises:
        PermissionDenied: without the permission, or when the notice's unit is outside the scope.
        NoticeAnswerRefused: the answer is empty or the notice was answered already.
    """
    from django.core.exceptions import PermissionDenied

    if not acting_user.has_perm("casework.answer_supervision") or not user_covers_unit(
        user=acting_user, unit=notice.unit
    ):
        raise PermissionDenied(_("只有被督办单位可以答复督办单。"))
    answer = (answer or "").strip()
    if not answer:
        raise NoticeAnswerRefused(_("请填写答复内容。"))
    case = case_lock(case=notice.case)
    locked = SupervisionNotice.objects.select_for_update().get(pk=notice.pk)
    if locked.answered_at is not None:
        raise NoticeAnswerRefused(_("该督办单已答复,不能修改。"))
    if locked.closed_at is not None:
        raise NoticeAnswerRefused(_("该督办单已终止(%(reason)s),无需答复。") % {"reason": locked.closed_reason})
    if case.lead_unit_id != locked.unit_id:
        raise NoticeAnswerRefused(_("该案件已改由其他单位承办,本督办单无需再答复。"))
    now = timezone.now()
    locked.answer = answer
    locked.answered_at = now
    locked.save(update_fields=["answer", "answered_at"])
    event_append(
        case=case, action="supervision_answered", actor=acting_user, from_state=case.state,
        to_state=case.state, reason=answer, payload={"notice_id": locked.pk}, at=now,
    )
    return locked


def referrals_open():
    """Return the referrals without an outcome, oldest first (the supervisors' work list)."""
    return DisciplineReferral.objects.filter(outcome_recorded_at__isnull=True).order_by("created_at")
