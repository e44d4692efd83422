"""跟踪督办 (issue 13 §4): a referral to 纪检督察 is tracked until its outcome closes it.

The cycle, one service per step (each checks who acts, locks the case row first, writes its audit
event and queues its e-mail through :mod:`casework.outbox` in the same transaction):

1. :func:`rectification_set` — 纪检督察 (``casework.record_referral_outcome``, case in scope) set
   the referred unit a rectification report (整改报告): what to report and a deadline in working
   days, counted on that unit's own calendar (:func:`casework.calendar.work_calendar`).
2. :func:`rectification_answer` — the unit answers on its own page: the same rule as a 督办单
   answer (``casework.answer_supervision`` and the referred unit inside the user's scope; seeing
   the case is not enough).
3. :func:`rectification_reminders_send` — the periodic task (beat, every 30 minutes) e-mails the
   unit once when one working day is left (即将到期提醒) and once when the deadline has passed
   (逾期提醒, the supervisors copied); each reminder is a row under a unique constraint.
4. Further rounds may follow (:func:`rectification_set` again once the previous round is answered).
5. :func:`referral_close` — the outcome (约谈, 通报批评, … :class:`DisciplineReferral.Outcome`) is
   recorded through :func:`casework.escalation.referral_record_outcome`; an unanswered round ends.

:func:`referral_timeline` is the referral page's timeline: the frozen snapshot (labels, not codes),
the rounds, answers, reminders and the outcome, oldest first.
"""

from dataclasses import dataclass
from datetime import datetime
import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts import roles
from accounts.selectors import role_emails, unit_scope_q, unit_staff_emails, user_covers_unit
from casework import calendar, escalation
from casework.models import (
    ACTION_LABELS,
    Clock,
    DisciplineReferral,
    EscalationLevel,
    EscalationRung,
    MessageType,
    RectificationReminder,
    RectificationRound,
    State,
    SupervisionNotice,
)
from casework.outbox import notification_queue
from casework.selectors import notice_awaits_answer, user_can_see_case
from casework.services import TransitionRefused, case_lock, event_append

logger = logging.getLogger("casework")

# A round's deadline: between 1 and 60 working days (a quarter of a year at most).
MIN_WORKING_DAYS, MAX_WORKING_DAYS = 1, 60
# The 即将到期提醒 goes out when at most this many working days are left (DESIGN.md §4's reminder).
REMIND_WORKING_DAYS = 1

# How a referral was triggered, in words (the field stores a code).
TRIGGER_LABELS = {
    "ladder": gettext_lazy("催督办阶梯(超期)"),
    "unit_notices": gettext_lazy("单位督办单逾期未答复"),
    "manual": gettext_lazy("人工移交(办理不力)"),
    "quality": gettext_lazy("质量督办规则"),
}


class TrackingRefused(TransitionRefused):
    """A 跟踪督办 step cannot be taken; ``str(exc)`` says why, in words staff understand."""


def trigger_label(code: str) -> str:
    """Return the referral trigger ``code`` in words (the code itself for one added later)."""
    return str(TRIGGER_LABELS.get(code, code))


# ---------------------------------------------------------------- who may act


def user_may_track(*, user, referral: DisciplineReferral) -> bool:
    """Tell whether ``user`` may set rectification rounds on, or close, ``referral`` (纪检督察).

    Needs ``casework.record_referral_outcome`` (the supervisors' permission) and the referral's
    case inside the user's scope (the one access rule, :func:`casework.selectors.user_can_see_case`).
    """
    return bool(
        user.is_authenticated and user.is_active
        and user.has_perm("casework.record_referral_outcome")
        and user_can_see_case(user=user, case=referral.case)
    )


def user_answers_for_unit(*, user, unit) -> bool:
    """Tell whether ``user`` answers for ``unit`` (``casework.answer_supervision`` and the unit in
    scope): the rule of 督办单 answers and 整改报告 alike, whatever the state of the record."""
    return bool(
        user.is_authenticated and user.is_active
        and user.has_perm("casework.answer_supervision")
        and user_covers_unit(user=user, unit=unit)
    )


def user_may_answer_round(*, user, rnd: RectificationRound) -> bool:
    """Tell whether ``user`` answers for the referred unit (the 督办单 answer rule).

    Needs ``casework.answer_supervision`` and the referred unit inside the user's scope
    (:func:`accounts.selectors.user_covers_unit`); the office, leaders and supervisors see the
    round but do not answer for a district.
    """
    return bool(
        user.is_authenticated and user.is_active
        and user.has_perm("casework.answer_supervision")
        and user_covers_unit(user=user, unit=rnd.referral.unit)
    )


def rounds_awaiting_for_unit_staff(*, user):
    """Return the rounds still owed by the units in ``user``'s scope (the unit's 整改报告 tile).

    Open rounds (no report, not ended) of open referrals whose referred unit lies in the scope
    (:func:`accounts.selectors.unit_scope_q`); superusers get every open round.
    """
    return RectificationRound.objects.filter(
        unit_scope_q(user=user, prefix="referral__unit__"), answered_at__isnull=True, closed_at__isnull=True,
        referral__outcome_recorded_at__isnull=True,
    )


def referral_is_closed(referral: DisciplineReferral) -> bool:
    """True once the outcome was recorded (the matter is closed and read-only)."""
    return referral.outcome_recorded_at is not None


def referral_open_round(*, referral: DisciplineReferral) -> RectificationRound | None:
    """Return the round the unit still owes, or None. One query."""
    return referral.rectification_rounds.filter(answered_at__isnull=True, closed_at__isnull=True).first()


# ---------------------------------------------------------------- e-mail


def _site(path: str) -> str:
    return settings.SITE_URL + path


def _round_url(rnd: RectificationRound) -> str:
    return _site(reverse("admin:casework_rectificationround_answer", args=[rnd.pk]))


def _referral_url(referral: DisciplineReferral) -> str:
    return _site(reverse("admin:casework_disciplinereferral_change", args=[referral.pk]))


def _unit_emails(unit) -> list[str]:
    return unit_staff_emails(unit=unit, role=roles.HANDLER) + unit_staff_emails(unit=unit, heads_only=True)


def _supervisor_emails(rnd: RectificationRound) -> list[str]:
    return role_emails(role=roles.SUPERVISOR) + ([rnd.set_by.email] if rnd.set_by.email else [])


def _local(value: datetime) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")


def _mail(*, key: str, rnd: RectificationRound, recipients: list[str], subject: str, lead: str):
    referral = rnd.referral
    context = {
        "lead": lead, "round": rnd, "referral": referral, "case": referral.case, "unit": referral.unit,
        "due": _local(rnd.due_at), "round_url": _round_url(rnd), "referral_url": _referral_url(referral),
    }
    return notification_queue(
        key=key, case=referral.case, recipients=recipients, subject=subject,
        body=render_to_string("casework/email/rectification.txt", context),
        html_body=render_to_string("casework/email/rectification.html", context),
    )


# ---------------------------------------------------------------- services


@transaction.atomic
def rectification_set(
    *, referral: DisciplineReferral, acting_user, requirement: str, working_days: int,
    now: datetime | None = None,
) -> RectificationRound:
    """Set the referred unit a rectification report (one new round of 跟踪督办).

    The deadline is ``working_days`` working days from ``now`` on the referred unit's calendar
    (its own days off count, as for its case deadlines). The unit's handlers and heads get an
    e-mail with the link to their answer page; an audit event is appended to the case.

    Args:
        referral: an open ``DisciplineReferral``.
        acting_user: a supervisor (:func:`user_may_track`).
        requirement: what the unit must report (required, text).
        working_days: 1–60 working days.
        now: aware datetime of the action (default: now), Asia/Shanghai or any zone.

    Returns:
        the new ``RectificationRound`` (``number`` = previous rounds + 1).

    Raises:
        PermissionDenied: the user is not a supervisor with the case in scope.
        TrackingRefused: the referral is closed, a round still awaits its report, the text is empty
            or the days are out of range.
    """
    if not user_may_track(user=acting_user, referral=referral):
        raise PermissionDenied(_("只有纪检督察可以下达整改报告要求。"))
    requirement = (requirement or "").strip()
    if not requirement:
        raise TrackingRefused(_("请填写整改要求。"))
    try:
        working_days = int(working_days)
    except (TypeError, ValueError):
        working_days = 0
    if not MIN_WORKING_DAYS <= working_days <= MAX_WORKING_DAYS:
        raise TrackingRefused(_("报告期限须为 %(lo)s 至 %(hi)s 个工作日。") % {
            "lo": MIN_WORKING_DAYS, "hi": MAX_WORKING_DAYS})
    now = now or timezone.now()
    case = case_lock(case=referral.case)
    locked = DisciplineReferral.objects.select_for_update().select_related("unit", "case").get(pk=referral.pk)
    if referral_is_closed(locked):
        raise TrackingRefused(_("该移交已登记处理结果,跟踪督办已结束。"))
    if referral_open_round(referral=locked) is not None:
        raise TrackingRefused(_("上一轮整改报告尚未报送,不能下达新一轮。"))
    number = locked.rectification_rounds.count() + 1
    due_at = calendar.work_calendar(unit=locked.unit).add_working_days(now, working_days)
    try:
        with transaction.atomic():
            rnd = RectificationRound.objects.create(
                referral=locked, number=number, requirement=requirement, working_days=working_days,
                due_at=due_at, set_by=acting_user, set_at=now,
            )
    except IntegrityError as exc:  # the same round set twice at once: the case lock makes it rare
        raise TrackingRefused(_("该轮整改报告要求已由他人下达,请刷新页面。")) from exc
    event_append(
        case=case, action="rectification_set", actor=acting_user, from_state=case.state, to_state=case.state,
        reason=requirement, at=now,
        payload={"referral_id": locked.pk, "round_id": rnd.pk, "number": number,
                 "working_days": working_days, "due_at": due_at.isoformat()},
    )
    _mail(
        key=f"rectification:{rnd.pk}:set", rnd=rnd, recipients=_unit_emails(locked.unit),
        subject=_("【跟踪督办】%(ref)s 请%(unit)s于 %(due)s 前报送第 %(n)s 轮整改报告") % {
            "ref": case.reference, "unit": locked.unit.name, "due": _local(due_at), "n": number},
        lead=_("纪检督察要求贵单位报送整改报告。"),
    )
    return rnd


@transaction.atomic
def rectification_answer(*, rnd: RectificationRound, acting_user, answer: str,
                         now: datetime | None = None) -> RectificationRound:
    """Record the referred unit's rectification report for one round, once.

    Args:
        rnd: the open ``RectificationRound``.
        acting_user: a handler (with ``casework.answer_supervision``) of the referred unit or a
            unit above it (:func:`user_may_answer_round`).
        answer: the report, in words (required).
        now: aware datetime of the answer (default: now).

    Returns:
        the round with ``answer``, ``answered_by`` and ``answered_at`` set; the supervisors who
        set it get an e-mail, and an audit event is appended to the case.

    Raises:
        PermissionDenied: the user does not answer for the referred unit.
        TrackingRefused: the report is empty, was sent already, or the matter is closed.
    """
    if not user_may_answer_round(user=acting_user, rnd=rnd):
        raise PermissionDenied(_("只有被移交单位可以报送整改报告。"))
    answer = (answer or "").strip()
    if not answer:
        raise TrackingRefused(_("请填写整改报告。"))
    now = now or timezone.now()
    case = case_lock(case=rnd.referral.case)
    locked = RectificationRound.objects.select_for_update().select_related(
        "referral__unit", "referral__case", "set_by").get(pk=rnd.pk)
    if locked.answered_at is not None:
        raise TrackingRefused(_("该轮整改报告已报送,不能修改。"))
    if locked.closed_at is not None or referral_is_closed(locked.referral):
        raise TrackingRefused(_("该移交已登记处理结果,无需再报送。"))
    locked.answer, locked.answered_by, locked.answered_at = answer, acting_user, now
    locked.save(update_fields=["answer", "answered_by", "answered_at"])
    event_append(
        case=case, action="rectification_answered", actor=acting_user, from_state=case.state,
        to_state=case.state, reason=answer, at=now,
        payload={"referral_id": locked.referral_id, "round_id": locked.pk, "number": locked.number},
    )
    _mail(
        key=f"rectification:{locked.pk}:answered", rnd=locked, recipients=_supervisor_emails(locked),
        subject=_("【跟踪督办】%(ref)s %(unit)s已报送第 %(n)s 轮整改报告") % {
            "ref": case.reference, "unit": locked.referral.unit.name, "n": locked.number},
        lead=_("被移交单位已报送整改报告,请审阅,并决定下一轮整改或登记处理结果。"),
    )
    return locked


def _reminder_kind(rnd: RectificationRound, now: datetime, cal) -> str | None:
    if now >= rnd.due_at:
        return RectificationReminder.Kind.OVERDUE
    if rnd.due_at <= cal.add_working_days(now, REMIND_WORKING_DAYS):
        return RectificationReminder.Kind.DUE_SOON
    return None


@transaction.atomic
def _reminder_take(*, round_id: int, kind: str, now: datetime) -> RectificationReminder | None:
    rnd = RectificationRound.objects.select_related("referral").filter(pk=round_id).first()
    if rnd is None:
        return None
    case = case_lock(case=rnd.referral.case)
    rnd = RectificationRound.objects.select_for_update().select_related(
        "referral__unit", "referral__case", "set_by").get(pk=round_id)
    if not rnd.is_open or referral_is_closed(rnd.referral) or rnd.reminders.filter(kind=kind).exists():
        return None
    overdue = kind == RectificationReminder.Kind.OVERDUE
    recipients = _unit_emails(rnd.referral.unit) + (_supervisor_emails(rnd) if overdue else [])
    recipients = sorted(set(recipients))
    try:
        with transaction.atomic():
            reminder = RectificationReminder.objects.create(round=rnd, kind=kind, sent_at=now,
                                                            recipients=recipients)
    except IntegrityError:
        return None
    event_append(
        case=case, action="rectification_reminder", actor=None, from_state=case.state, to_state=case.state,
        at=now, payload={"referral_id": rnd.referral_id, "round_id": rnd.pk, "kind": kind},
    )
    values = {"ref": case.reference, "unit": rnd.referral.unit.name, "n": rnd.number, "due": _local(rnd.due_at)}
    if overdue:
        subject = _("【跟踪督办·逾期】%(ref)s %(unit)s第 %(n)s 轮整改报告已逾期(期限 %(due)s)") % values
        lead = _("整改报告期限已过,贵单位尚未报送。纪检督察已同时收到本提醒。")
    else:
        subject = _("【跟踪督办·提醒】%(ref)s %(unit)s第 %(n)s 轮整改报告将于 %(due)s 到期") % values
        lead = _("整改报告期限将至,请按时报送。")
    _mail(key=f"rectification:{rnd.pk}:{kind}", rnd=rnd, recipients=recipients, subject=subject, lead=lead)
    return reminder


def rectification_reminders_send(*, now: datetime | None = None) -> dict[str, int]:
    """Send the reminders due now for every round still awaiting its report (beat task).

    A round is reminded once when at most one working day is left on the referred unit's calendar
    (即将到期提醒, to the unit's handlers and heads), and once when its deadline has passed
    (逾期提醒, to the unit and the supervisors); a round first seen overdue gets only the latter.
    Each reminder is a ``RectificationReminder`` row under a unique (round, kind) constraint,
    taken under the case lock, with its e-mail in the outbox in the same transaction, so two
    overlapping runs or a redelivered task send each reminder once. The cost grows with the open
    rounds (rounds of open referrals without a report), not with all cases.

    Args:
        now: aware datetime of the run (default: now).

    Returns:
        ``{"due_soon": n, "overdue": n}``: the reminders taken by this run.
    """
    now = now or timezone.now()
    taken = {RectificationReminder.Kind.DUE_SOON.value: 0, RectificationReminder.Kind.OVERDUE.value: 0}
    rounds = list(
        RectificationRound.objects.filter(
            answered_at__isnull=True, closed_at__isnull=True, referral__outcome_recorded_at__isnull=True,
        ).select_related("referral__unit").order_by("due_at")
    )
    base = calendar.work_calendar()
    unit_cals = calendar.unit_calendars(base=base)
    for rnd in rounds:
        cal = unit_cals.get(rnd.referral.unit_id, base)
        kind = _reminder_kind(rnd, now, cal)
        if kind is None:
            continue
        if _reminder_take(round_id=rnd.pk, kind=kind, now=now):
            taken[kind] += 1
    return taken


@transaction.atomic
def referral_close(*, referral: DisciplineReferral, acting_user, kind: str, note: str,
                   now: datetime | None = None) -> DisciplineReferral:
    """Close a referral with 纪检督察's outcome; a round still awaiting its report ends with it.

    The outcome is recorded once by :func:`casework.escalation.referral_record_outcome` (its rules
    and audit event); in the same transaction every open round gets ``closed_at``.

    Args:
        referral: the ``DisciplineReferral``.
        acting_user: a supervisor (:func:`user_may_track`).
        kind: a ``DisciplineReferral.Outcome`` value (no default: the supervisor chooses).
        note: the decision in words (required).
        now: aware datetime (default: now) at which open rounds end.

    Raises:
        PermissionDenied: the user is not a supervisor with the case in scope.
        escalation.ReferralOutcomeRefused: the outcome was recorded already, the kind is unknown
            or the note is empty.
    """
    if not user_may_track(user=acting_user, referral=referral):
        raise PermissionDenied(_("只有纪检督察可以登记处理结果。"))
    closed = escalation.referral_record_outcome(referral=referral, acting_user=acting_user, kind=kind, note=note)
    RectificationRound.objects.filter(referral=closed, answered_at__isnull=True, closed_at__isnull=True).update(
        closed_at=now or timezone.now())
    return closed


# ---------------------------------------------------------------- the referral's page


@dataclass
class TimelineEntry:
    """One line of a referral's timeline: when (aware), what (words), who, detail text, its kind."""

    at: datetime | None
    what: str
    who: str
    text: str
    kind: str  # "snapshot", "referral", "round", "answer", "reminder", "outcome"


def _parse(value) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    parsed = parse_datetime(str(value))
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


def _label(choices, code) -> str:
    return str(choices(code).label) if code in choices.values else (code or "")


def _state_label(code) -> str:
    return _label(State, code)


def snapshot_material(*, referral: DisciplineReferral) -> dict:
    """Return the frozen snapshot in words: codes as labels, ISO strings as aware datetimes.

    Keys: ``facts`` (list of (label, value) pairs: reference, message type, state, unit, clock,
    deadline, working days overdue, submitted/dispatched/accepted, taken), ``clocks`` (label,
    round, started, due, stopped), ``events`` (action label, states in words, actor, at, reason),
    ``steps``, ``notices`` and ``notifications``. Personal numbers are not masked here: the page
    masks them for readers without the permission. A snapshot written by an older version with
    fewer keys gives fewer lines, never an error.
    """
    snap = referral.snapshot or {}
    facts = [
        (_("案件编号"), snap.get("reference", referral.case.reference)),
        (_("留言标题"), snap.get("subject", "")),
        (_("留言类型"), _label(MessageType, snap.get("message_type"))),
        (_("移交时状态"), _state_label(snap.get("state"))),
        (_("承办单位"), snap.get("lead_unit", "")),
        (_("办理轮次"), snap.get("handling_round", "")),
        (_("超期时限"), _label(Clock, snap.get("clock"))),
        (_("期限"), _parse(snap.get("due_at"))),
        (_("超期工作日"), snap.get("working_days_overdue", "")),
        (_("留言时间"), _parse(snap.get("submitted_at"))),
        (_("交办时间"), _parse(snap.get("dispatched_at"))),
        (_("签收时间"), _parse(snap.get("accepted_at"))),
        (_("冻结时间"), _parse(snap.get("taken_at"))),
    ]
    facts = [(k, v) for k, v in facts if v not in ("", None)]
    return {
        "facts": facts,
        "clocks": [
            {"clock": _label(Clock, c.get("clock")), "round": c.get("round"), "started_at": _parse(c.get("started_at")),
             "due_at": _parse(c.get("due_at")), "stopped_at": _parse(c.get("stopped_at"))}
            for c in snap.get("clocks", [])
        ],
        "events": [
            {"seq": e.get("seq"), "action": str(ACTION_LABELS.get(e.get("action"), e.get("action", ""))),
             "from": _state_label(e.get("from")), "to": _state_label(e.get("to")), "actor": e.get("actor") or _("系统"),
             "at": _parse(e.get("at")), "reason": e.get("reason", "")}
            for e in snap.get("timeline", [])
        ],
        "steps": [
            {"clock": _label(Clock, s.get("clock")), "round": s.get("round"),
             "level": _label(EscalationLevel, s.get("level")), "due_at": _parse(s.get("due_at")),
             "happened_at": _parse(s.get("happened_at"))}
            for s in snap.get("escalation_steps", [])
        ],
        "notices": [
            {"unit": n.get("unit", ""), "opened_at": _parse(n.get("opened_at")), "content": n.get("content", ""),
             "answer": n.get("answer", ""), "answered_at": _parse(n.get("answered_at"))}
            for n in snap.get("notices", [])
        ],
        "notifications": [
            {"subject": n.get("subject", ""), "recipients": n.get("recipients", []),
             "created_at": _parse(n.get("created_at")), "sent_at": _parse(n.get("sent_at"))}
            for n in snap.get("notifications", [])
        ],
    }


def _who(user) -> str:
    if user is None:
        return _("系统")
    return user.full_name or user.get_username()


def referral_timeline(*, referral: DisciplineReferral) -> list[TimelineEntry]:
    """Return the referral's whole story, oldest first: the frozen case history, the referral, each
    round set, its reminders and report, and the outcome. Four queries.

    The snapshot's events keep their frozen times and words (they are material, not live data);
    everything after the referral is read from the tracking rows.
    """
    material = snapshot_material(referral=referral)
    entries = [
        TimelineEntry(at=e["at"], what=e["action"], who=str(e["actor"]), text=e["reason"], kind="snapshot")
        for e in material["events"]
    ]
    entries.append(TimelineEntry(at=referral.created_at, what=_("移交纪检督察"), who=_("系统"),
                                 text=referral.reason, kind="referral"))
    rounds = list(referral.rectification_rounds.select_related("set_by", "answered_by").prefetch_related("reminders"))
    for rnd in rounds:
        entries.append(TimelineEntry(
            at=rnd.set_at, what=_("下达第 %(n)s 轮整改报告要求(%(days)s 个工作日)") % {
                "n": rnd.number, "days": rnd.working_days},
            who=_who(rnd.set_by), text=rnd.requirement, kind="round"))
        for reminder in rnd.reminders.all():
            entries.append(TimelineEntry(at=reminder.sent_at, what=f"{reminder.get_kind_display()}"
                                         + _("(第 %(n)s 轮)") % {"n": rnd.number},
                                         who=_("系统"), text="、".join(reminder.recipients), kind="reminder"))
        if rnd.answered_at:
            entries.append(TimelineEntry(at=rnd.answered_at, what=_("报送第 %(n)s 轮整改报告") % {"n": rnd.number},
                                         who=_who(rnd.answered_by), text=rnd.answer, kind="answer"))
    if referral.outcome_recorded_at:
        entries.append(TimelineEntry(
            at=referral.outcome_recorded_at, what=_("登记处理结果:%(kind)s") % {
                "kind": referral.get_outcome_kind_display()},
            who=_who(referral.outcome_by), text=referral.outcome, kind="outcome"))
    floor = datetime.min.replace(tzinfo=timezone.get_current_timezone())
    return sorted(entries, key=lambda e: e.at or floor)


# ---------------------------------------------------------------- 督办单: answer deadline and who answers


def notice_answer_days() -> int | None:
    """Return the working days a 督办单 has for its answer, or None when no rule sets one.

    The rule is the ladder's: an unanswered 督办单 counts toward the unit-notices referral once it
    has waited ``notice_answer_days`` working days (the active referral rung with
    ``unit_open_notices_limit``, default 2; :func:`casework.escalation.unit_notice_referrals_due`),
    so that is the deadline the unit is shown. One query.
    """
    rung = (EscalationRung.objects.filter(is_active=True, opens_referral=True, unit_open_notices_limit__isnull=False)
            .order_by("threshold_days").first())
    return rung.notice_answer_days if rung else None


def notices_answer_due(notices: list[SupervisionNotice]) -> dict[int, datetime | None]:
    """Return ``{notice_id: answer deadline}`` of ``notices`` (aware Asia/Shanghai datetimes or None).

    A notice's stored deadline (``answer_due_at``: set when it was opened, by the ladder, by hand
    or by a quality rung, on the addressed unit's own calendar; issue 13 §1) is its deadline. A
    notice from before deadlines were stored gets opened + :func:`notice_answer_days` working
    days on its unit's calendar (its own days off count). A constant number of queries.
    """
    out = {n.pk: n.answer_due_at for n in notices if n.answer_due_at is not None}
    rest = [n for n in notices if n.answer_due_at is None]
    if not rest:
        return out
    days = notice_answer_days()
    if days is None:
        return {**out, **{n.pk: None for n in rest}}
    base = calendar.work_calendar()
    unit_cals = calendar.unit_calendars(base=base)
    out.update({n.pk: unit_cals.get(n.unit_id, base).add_working_days(n.opened_at, days) for n in rest})
    return out


def user_may_answer_notice(*, user, notice: SupervisionNotice) -> bool:
    """Tell whether ``user`` may answer ``notice`` now (the rule of
    :func:`casework.escalation.supervision_notice_answer`: ``casework.answer_supervision``, the
    notice's unit in scope, and the notice still awaiting its answer). Used to offer the action
    only to those who may take it.
    """
    return bool(
        user.is_authenticated and user.is_active and user.has_perm("casework.answer_supervision")
        and user_covers_unit(user=user, unit=notice.unit) and notice_awaits_answer(notice=notice)
    )
