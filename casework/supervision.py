"""Supervision by hand and referrals for poor handling (办理不力), issue 13 items 1–3.

Services (every write checks the acting user's permission and scope, locks the case rows, writes
the audit event in the same transaction and queues its e-mail in the outbox, sent after commit):

* :func:`supervision_notice_open` — the 网评办 (dispatchers, office reviewers) or a 分管局领导 opens a
  督办单 by hand on an active case in their scope, to its lead unit and, when chosen, its co-units,
  with an answer deadline in working days on each addressed unit's own calendar.
* :func:`referral_poor_handling` — the same people refer a case, or its lead unit with the cases
  concerned, to 纪检督察 for poor handling, with a reason of the configurable list
  (:class:`casework.models.PoorHandlingReason`) and a statement. The referral freezes the same
  snapshot as a ladder referral (:func:`casework.escalation.referral_snapshot`), is never edited, and is
  e-mailed to the supervisors.
* :func:`quality_proposal_decide` — the office confirms (a referral is made) or refuses (reason
  required) a referral proposed by a quality rung (:mod:`casework.quality`).

Who may act (``may_*`` functions, also used by the case page to offer only what the user may do):
the permission ``casework.open_supervision`` / ``casework.refer_poor_handling`` (roles dispatcher,
office_reviewer, leader; :data:`accounts.roles.ROLE_PERMISSIONS`) and the case in the user's scope
(:func:`casework.selectors.user_can_see_case`, the one access rule). Source: issue 13, DESIGN.md §3
("a 督办单 can be opened on any active case, by hand or by the escalation ladder").
"""

from datetime import datetime

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import roles
from accounts.selectors import comment_office_emails, role_emails, unit_staff_emails
from casework import calendar
from casework.escalation import referral_snapshot
from casework.models import (
    ACTIVE_STATES,
    Case,
    CaseClock,
    CoUnitTask,
    DisciplineReferral,
    PoorHandlingReason,
    QualityStep,
    ReferralCase,
    SupervisionNotice,
)
from casework.selectors import cases_visible_to, user_can_see_case
from casework.services import TransitionRefused, case_lock, case_url, event_append, notification_queue
from casework.supervision_rules import notice_answer_due
from casework.text import mask_personal_numbers

# Bounds of a hand-set answer deadline, in working days.
ANSWER_DAYS_MIN, ANSWER_DAYS_MAX = 1, 30
# At most this many other cases may be named in one unit referral.
CASES_CONCERNED_MAX = 50


class SupervisionRefused(TransitionRefused):
    """A 督办单 or referral by hand cannot be made; ``str(exc)`` says why."""


# ---------------------------------------------------------------- who may act


def may_open_notice(*, user, case: Case) -> bool:
    """Tell whether ``user`` may open a 督办单 on ``case`` now (permission, scope, active case)."""
    return (_has(user, "open_supervision") and user_can_see_case(user=user, case=case)
            and case.state in ACTIVE_STATES and case.lead_unit_id is not None)


def may_refer(*, user, case: Case) -> bool:
    """Tell whether ``user`` may refer ``case`` (or its lead unit) for poor handling now."""
    return (_has(user, "refer_poor_handling") and user_can_see_case(user=user, case=case)
            and case.lead_unit_id is not None and case.merged_into_id is None)


def _has(user, perm: str) -> bool:
    return bool(user.is_authenticated and user.is_active
                and (user.is_superuser or user.has_perm(f"casework.{perm}")))


# ---------------------------------------------------------------- 督办单 by hand


@transaction.atomic
def supervision_notice_open(
    *, case: Case, acting_user, content: str, answer_days: int, co_unit_ids=(), now: datetime | None = None,
) -> list[SupervisionNotice]:
    """Open a 督办单 by hand on ``case``: one to its lead unit and one to each chosen co-unit.

    Each notice's answer deadline is ``answer_days`` working days after ``now`` on the addressed
    unit's own calendar (:func:`casework.supervision_rules.notice_answer_due`). One audit event
    ``supervision_opened`` on the case; one e-mail per notice to the unit's handlers and head with
    a copy to the 网评办 (as the ladder's 督办单), sent after commit. The notices are answered on
    the same answer page and shown on the same unit tile as the ladder's.

    Args:
        case: an active case with a lead unit.
        acting_user: holds ``casework.open_supervision`` and sees the case.
        content: what the unit must do (required; personal numbers are masked in the e-mail).
        answer_days: working days to answer, 1–30.
        co_unit_ids: ids of the case's co-units (``CoUnitTask.unit``) to address as well.
        now: aware datetime of opening (default: now).

    Raises:
        PermissionDenied: without the permission or outside the user's scope.
        SupervisionRefused: empty content, days out of range, the case not active, or a unit
            that is not a co-unit of the case.
    """
    if not (_has(acting_user, "open_supervision") and user_can_see_case(user=acting_user, case=case)):
        raise PermissionDenied(_("您没有对该案件开具督办单的权限。"))
    content = (content or "").strip()
    if not content:
        raise SupervisionRefused(_("请填写督办内容。"))
    try:
        answer_days = int(answer_days)
    except (TypeError, ValueError):
        raise SupervisionRefused(_("答复时限须为 %(a)s 至 %(b)s 个工作日。") % {
            "a": ANSWER_DAYS_MIN, "b": ANSWER_DAYS_MAX}) from None
    if not ANSWER_DAYS_MIN <= answer_days <= ANSWER_DAYS_MAX:
        raise SupervisionRefused(_("答复时限须为 %(a)s 至 %(b)s 个工作日。") % {
            "a": ANSWER_DAYS_MIN, "b": ANSWER_DAYS_MAX})
    locked = case_lock(case=case)
    if locked.state not in ACTIVE_STATES or locked.lead_unit_id is None:
        raise SupervisionRefused(_("只能对办理中的案件开具督办单(当前状态:%(state)s)。") % {
            "state": locked.get_state_display()})
    wanted = {int(u) for u in co_unit_ids}
    co_units = {t.unit_id: t.unit for t in CoUnitTask.objects.filter(case=locked, unit_id__in=wanted)
                .select_related("unit")}
    if wanted - set(co_units) - {locked.lead_unit_id}:
        raise SupervisionRefused(_("所选单位不是本案的协办单位。"))
    now = now or timezone.now()
    notices = [_notice_create(case=locked, unit=locked.lead_unit, content=content, days=answer_days,
                              now=now, origin="manual", opened_by=acting_user)]
    for unit_id in sorted(set(co_units) - {locked.lead_unit_id}):
        notices.append(_notice_create(case=locked, unit=co_units[unit_id], content=content, days=answer_days,
                                      now=now, origin="manual", opened_by=acting_user, to_co_unit=True))
    event_append(
        case=locked, action="supervision_opened", actor=acting_user, from_state=locked.state,
        to_state=locked.state, reason=content, at=now,
        payload={"origin": "manual", "notice_ids": [n.pk for n in notices],
                 "units": [n.unit.name for n in notices], "answer_days": answer_days,
                 "answer_due_at": [n.answer_due_at.isoformat() for n in notices]},
    )
    for notice in notices:
        notice_email_queue(notice=notice, now=now)
    return notices


def _notice_create(*, case, unit, content, days, now, origin, opened_by=None, to_co_unit=False):
    return SupervisionNotice.objects.create(
        case=case, unit=unit, content=content, opened_at=now, opened_by=opened_by, origin=origin,
        to_co_unit=to_co_unit, answer_due_at=notice_answer_due(unit=unit, opened_at=now, days=days),
    )


def notice_email_queue(*, notice: SupervisionNotice, now: datetime) -> None:
    """Queue the e-mail of a 督办单 opened by hand or by a quality rung (outbox key ``notice:<id>``).

    To the addressed unit's handlers and head, with a copy to the 网评办, like the ladder's 督办单.
    """
    case, unit = notice.case, notice.unit
    recipients = (unit_staff_emails(unit=unit, role=roles.HANDLER) + unit_staff_emails(unit=unit, heads_only=True)
                  + comment_office_emails())
    context = _email_context(case=case, unit=unit, now=now, kind="notice", notice=notice)
    notification_queue(
        key=f"notice:{notice.pk}", case=case, recipients=recipients,
        subject=_("【督办单】%(ref)s 请%(unit)s于 %(due)s 前答复") % {
            "ref": case.reference, "unit": unit.name, "due": context["answer_due"]},
        body=render_to_string("casework/email/supervision.txt", context),
        html_body=render_to_string("casework/email/supervision.html", context),
    )


def _email_context(*, case, unit, now, kind, notice=None, referral=None, step=None) -> dict:
    history = [
        {"at": timezone.localtime(e.at).strftime("%Y-%m-%d %H:%M"), "action": e.action_label,
         "actor": str(e.actor) if e.actor else _("系统"), "reason": mask_personal_numbers(e.reason)}
        for e in case.events.select_related("actor").order_by("seq")
    ]
    return {
        "kind": kind,
        "case": case,
        "unit": unit,
        "notice": notice,
        "referral": referral,
        "step": step,
        "answer_due": (timezone.localtime(notice.answer_due_at).strftime("%Y-%m-%d %H:%M")
                       if notice and notice.answer_due_at else ""),
        "referral_url": (settings.SITE_URL + reverse("admin:casework_disciplinereferral_change", args=[referral.pk])
                         if referral else ""),
        "answer_url": (settings.SITE_URL + reverse("admin:casework_supervisionnotice_answer", args=[notice.pk])
                       if notice else ""),
        "history": history,
        "case_url": case_url(case),
        "now": timezone.localtime(now).strftime("%Y-%m-%d %H:%M"),
        "subject": mask_personal_numbers(case.subject),
        "excerpt": mask_personal_numbers(case.body)[:300],
    }


# ---------------------------------------------------------------- 办理不力 referral


def referral_candidate_cases(*, user, case: Case):
    """Return the other cases ``user`` may name in a unit referral from ``case``: same lead unit, in scope.

    Newest first, at most :data:`CASES_CONCERNED_MAX`. Empty without a lead unit.
    """
    if case.lead_unit_id is None:
        return Case.objects.none()
    return (cases_visible_to(user=user).filter(lead_unit_id=case.lead_unit_id, merged_into__isnull=True)
            .exclude(pk=case.pk).order_by("-submitted_at", "-pk")[:CASES_CONCERNED_MAX])


@transaction.atomic
def referral_poor_handling(
    *, case: Case, acting_user, reason: PoorHandlingReason | int | None, statement: str,
    other_case_ids=(), now: datetime | None = None,
) -> DisciplineReferral:
    """Refer ``case`` (and, for a unit referral, the other cases concerned) to 纪检督察 for 办理不力.

    The referral names the case's lead unit; its material is the frozen snapshot of ``case``
    (as a ladder referral's: case, clocks, timeline, steps, notices, e-mails) with the snapshots
    of the other cases under ``cases_concerned``. Every case concerned gets a
    ``referral_poor_handling`` audit event and a :class:`casework.models.ReferralCase` row; the
    supervisors get one e-mail (outbox key ``referral:<id>``). The referral is immutable: no page
    edits it, and 纪检督察 record their outcome on it once.

    Args:
        case: the case the referral is made from; it must have a lead unit.
        acting_user: holds ``casework.refer_poor_handling`` and sees every case named.
        reason: an active ``PoorHandlingReason`` (or its id).
        statement: the referring person's statement (required).
        other_case_ids: ids of further cases of the same lead unit (a unit referral), ≤ 50.
        now: aware datetime of the referral (default: now).

    Raises:
        PermissionDenied: without the permission or a case outside the user's scope.
        SupervisionRefused: no or inactive reason, empty statement, no lead unit, or another case
            not led by the same unit.
    """
    return _referral_make(case=case, acting_user=acting_user, reason=reason, statement=statement,
                          other_case_ids=other_case_ids, now=now, origin="manual")


def _referral_make(*, case, acting_user, reason, statement, other_case_ids, now, origin, step=None):
    if not (_has(acting_user, "refer_poor_handling") and user_can_see_case(user=acting_user, case=case)):
        raise PermissionDenied(_("您没有将该案件移交纪检督察的权限。"))
    if isinstance(reason, int | str) and str(reason).isdigit():
        reason = PoorHandlingReason.objects.filter(pk=int(reason)).first()
    if not isinstance(reason, PoorHandlingReason) or not reason.is_active:
        raise SupervisionRefused(_("请选择办理不力事由。"))
    statement = (statement or "").strip()
    if not statement:
        raise SupervisionRefused(_("请填写移交说明。"))
    other_ids = sorted({int(i) for i in other_case_ids} - {case.pk})
    if len(other_ids) > CASES_CONCERNED_MAX:
        raise SupervisionRefused(_("一次最多列入 %(n)s 件案件。") % {"n": CASES_CONCERNED_MAX})
    # Lock order: ascending ids, so two referrals over the same cases never deadlock.
    locked = {c.pk: case_lock(case=c) for c in sorted([case, *[Case(pk=i) for i in other_ids]],
                                                        key=lambda c: c.pk)}
    main = locked[case.pk]
    if main.lead_unit_id is None:
        raise SupervisionRefused(_("该案件尚未交办,没有可移交的承办单位。"))
    for other in (locked[i] for i in other_ids):
        if not user_can_see_case(user=acting_user, case=other):
            raise PermissionDenied(_("您没有将该案件移交纪检督察的权限。"))
        if other.lead_unit_id != main.lead_unit_id:
            raise SupervisionRefused(_("案件 %(ref)s 不由%(unit)s承办,不能一并移交。") % {
                "ref": other.reference, "unit": main.lead_unit.name})
    now = now or timezone.now()
    snapshot = _case_snapshot(main, now)
    if other_ids:
        snapshot["cases_concerned"] = [_case_snapshot(locked[i], now) for i in other_ids]
    snapshot["poor_handling"] = {"reason": reason.name, "statement": statement, "origin": origin,
                                 "referred_by": str(acting_user)}
    referral = DisciplineReferral.objects.create(
        case=main, unit=main.lead_unit, reason=_("办理不力:%(reason)s") % {"reason": reason.name},
        kind="poor_handling", poor_reason=reason, statement=statement, origin=origin,
        referred_by=acting_user, trigger=origin, created_at=now, snapshot=snapshot,
    )
    ReferralCase.objects.bulk_create([ReferralCase(referral=referral, case_id=i) for i in [main.pk, *other_ids]])
    for c in [main, *(locked[i] for i in other_ids)]:
        event_append(
            case=c, action="referral_poor_handling", actor=acting_user, from_state=c.state, to_state=c.state,
            reason=statement, at=now,
            payload={"referral_id": referral.pk, "reason": reason.name, "origin": origin,
                     "unit": main.lead_unit.name, "main_case": main.reference,
                     **({"quality_step_id": step.pk} if step else {})},
        )
    context = _email_context(case=main, unit=main.lead_unit, now=now, kind="referral", referral=referral)
    context["others"] = [locked[i] for i in other_ids]
    notification_queue(
        key=f"referral:{referral.pk}", case=main, recipients=role_emails(role=roles.SUPERVISOR),
        subject=_("【移交纪检督察】%(ref)s %(unit)s 办理不力:%(reason)s") % {
            "ref": main.reference, "unit": main.lead_unit.name, "reason": reason.name},
        body=render_to_string("casework/email/supervision.txt", context),
        html_body=render_to_string("casework/email/supervision.html", context),
    )
    return referral


def _case_snapshot(case: Case, now: datetime) -> dict:
    """The ladder's snapshot of ``case``, on the clock that matters (the latest reply clock, else any)."""
    clock = (CaseClock.objects.filter(case=case).order_by("-round", "-started_at", "-pk")
             .filter(clock="reply").first()
             or CaseClock.objects.filter(case=case).order_by("-round", "-started_at", "-pk").first())
    unit = case.lead_unit
    cal = calendar.work_calendar(unit=unit)
    if clock is None:
        return referral_snapshot(case, clock="", due_at=now, now=now, cal=cal)
    return referral_snapshot(case, clock=clock.clock, due_at=clock.due_at, now=now, cal=cal)


# ---------------------------------------------------------------- proposals of the quality rungs


@transaction.atomic
def quality_proposal_decide(*, step: QualityStep, acting_user, confirm: bool, note: str,
                            now: datetime | None = None) -> QualityStep:
    """Confirm or refuse a referral proposed by a quality rung, once.

    Confirming makes a 办理不力 referral (origin ``quality``) with the rung's reason (else
    群众不满意 / the first active reason) and ``note`` as its statement, exactly as
    :func:`referral_poor_handling`; refusing records the reason. Either writes an audit event
    ``quality_proposal_decided`` on the case.

    Args:
        step: a ``QualityStep`` with status ``proposed``.
        acting_user: holds ``casework.refer_poor_handling`` and sees the case.
        confirm: True to refer, False to refuse.
        note: the statement (confirming) or the reason for refusing (required either way).

    Raises:
        PermissionDenied: without the permission or outside the user's scope.
        SupervisionRefused: the proposal was decided already, or the note is empty.
    """
    if not (_has(acting_user, "refer_poor_handling") and user_can_see_case(user=acting_user, case=step.case)):
        raise PermissionDenied(_("您没有确认移交的权限。"))
    note = (note or "").strip()
    if not note:
        raise SupervisionRefused(_("请填写移交说明。") if confirm else _("请填写不予移交的理由。"))
    case = case_lock(case=step.case)
    locked = QualityStep.objects.select_for_update(of=("self",)).select_related("rung__reason").get(pk=step.pk)
    if locked.status != QualityStep.Status.PROPOSED:
        raise SupervisionRefused(_("该提请已处理(%(status)s),不能再次确认。") % {
            "status": locked.get_status_display()})
    now = now or timezone.now()
    if confirm:
        reason = (locked.rung.reason if locked.rung.reason and locked.rung.reason.is_active
                  else PoorHandlingReason.objects.filter(is_active=True).order_by("order", "pk").first())
        locked.referral = _referral_make(case=case, acting_user=acting_user, reason=reason, statement=note,
                                         other_case_ids=(), now=now, origin="quality", step=locked)
        locked.status = QualityStep.Status.CONFIRMED
    else:
        locked.status = QualityStep.Status.REFUSED
    locked.decided_by, locked.decided_at, locked.decision_note = acting_user, now, note
    locked.save(update_fields=["status", "referral", "decided_by", "decided_at", "decision_note"])
    event_append(
        case=case, action="quality_proposal_decided", actor=acting_user, from_state=case.state,
        to_state=case.state, reason=note, at=now,
        payload={"quality_step_id": locked.pk, "confirmed": bool(confirm),
                 "referral_id": locked.referral_id},
    )
    return locked
