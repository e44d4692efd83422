"""Quality rungs (issue 13 item 3): triggers for poor handling beside the clock rungs of the ladder.

Superusers configure :class:`casework.models.QualityRung` rows (admin → 质量触发规则). Each measures
one thing on a case and handling round and fires when it reaches ``threshold``:

=======================  =====================================================================
kind                     count, on the round the step is recorded for
=======================  =====================================================================
``send_backs``           网评办 and 分管局领导 send-backs (发回修改) since the current round began
                         (the last 重办, else the dispatch); round = the case's current round
``reopened_unsatisfied`` earlier rounds whose last follow-up was 不满意 and that were reopened;
                         round = the case's current round (the one the reopening started)
``reply_untrue``         a follow-up of the round that found the reply untrue (回访发现答复不实);
                         round = that follow-up's round
=======================  =====================================================================

A rung either opens a 督办单 (origin ``quality``, answer deadline ``answer_days`` working days on
the lead unit's calendar; only on an active case) or proposes a referral for the 网评办 to confirm
or refuse (:func:`casework.supervision.quality_proposal_decide`). Each is a
:class:`casework.models.QualityStep` under the unique constraint (rung, case, round), re-checked
under the case row lock, so it happens exactly once per case and round whatever the scheduler
does (two beats, a redelivered task, two sweeps at once). The sweep is called by the Celery
escalation task (:func:`casework.tasks.escalation_sweep`) on the ladder's beat. Each rung's
candidates are selected with one query over the events / follow-ups that can make it due, so its
cost grows with the cases that could fire, not with all cases.
"""

from datetime import datetime
import logging

from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, Subquery
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.selectors import comment_office_emails
from casework.models import (
    ACTIVE_STATES,
    Case,
    CaseEvent,
    FollowUp,
    QualityRung,
    QualityStep,
)
from casework.services import case_lock, event_append, notification_queue
from casework.supervision import _email_context, _notice_create, notice_email_queue

logger = logging.getLogger("casework")

SEND_BACK_ACTIONS = ("office_send_back", "leader_send_back")


def quality_rungs() -> list[QualityRung]:
    """Return the active quality rungs (one query)."""
    return list(QualityRung.objects.filter(is_active=True).select_related("reason").order_by("pk"))


def quality_candidates(*, rung: QualityRung) -> list[tuple[int, int]]:
    """Return ``(case_id, round)`` pairs on which ``rung`` may be due and was not taken. One query.

    A superset for ``send_backs`` and ``reopened_unsatisfied`` (counts over the whole case); the
    exact count is taken under the case lock in :func:`quality_take`.
    """
    taken = QualityStep.objects.filter(rung=rung, case_id=OuterRef("pk"), round=OuterRef("handling_round"))
    if rung.kind == QualityRung.Kind.SEND_BACKS:
        counted = (CaseEvent.objects.filter(action__in=SEND_BACK_ACTIONS).values("case_id")
                   .annotate(n=Count("pk")).filter(n__gte=max(rung.threshold, 1)).values("case_id"))
        qs = Case.objects.filter(pk__in=Subquery(counted), state__in=ACTIVE_STATES)
    elif rung.kind == QualityRung.Kind.REOPENED_UNSATISFIED:
        counted = (FollowUp.objects.filter(result=FollowUp.Result.UNSATISFIED).values("case_id")
                   .annotate(n=Count("round", distinct=True)).filter(n__gte=max(rung.threshold, 1))
                   .values("case_id"))
        qs = Case.objects.filter(pk__in=Subquery(counted), handling_round__gt=1)
        if rung.action == QualityRung.Action.NOTICE:
            qs = qs.filter(state__in=ACTIVE_STATES)
    elif rung.kind == QualityRung.Kind.REPLY_UNTRUE:
        step = QualityStep.objects.filter(rung=rung, case_id=OuterRef("case_id"), round=OuterRef("round"))
        qs = FollowUp.objects.filter(reply_untrue=True, case__lead_unit__isnull=False).filter(~Exists(step))
        if rung.action == QualityRung.Action.NOTICE:
            qs = qs.filter(case__state__in=ACTIVE_STATES)
        return sorted(set(qs.values_list("case_id", "round")))
    else:
        return []
    qs = qs.filter(lead_unit__isnull=False, merged_into__isnull=True).filter(~Exists(taken))
    return list(qs.order_by("pk").values_list("pk", "handling_round"))


def quality_count(*, rung: QualityRung, case: Case, round: int) -> int:
    """Return what ``rung`` measures on ``case`` for ``round`` (see the module's table)."""
    if rung.kind == QualityRung.Kind.SEND_BACKS:
        if round != case.handling_round:
            return 0
        last_reopen = (CaseEvent.objects.filter(case=case, action="reopen").order_by("-seq")
                       .values_list("seq", flat=True).first()) or 0
        return CaseEvent.objects.filter(case=case, action__in=SEND_BACK_ACTIONS, seq__gt=last_reopen).count()
    if rung.kind == QualityRung.Kind.REOPENED_UNSATISFIED:
        last_by_round: dict[int, str] = {}
        for r, result in (FollowUp.objects.filter(case=case, round__lt=round)
                          .order_by("round", "recorded_at", "pk").values_list("round", "result")):
            last_by_round[r] = result
        return sum(1 for result in last_by_round.values() if result == FollowUp.Result.UNSATISFIED)
    if rung.kind == QualityRung.Kind.REPLY_UNTRUE:
        return FollowUp.objects.filter(case=case, round=round, reply_untrue=True).count()
    return 0


@transaction.atomic
def quality_take(*, rung: QualityRung, case_id: int, round: int, now: datetime) -> QualityStep | None:
    """Take ``rung`` on one case and round, once; return the new step or None when not due.

    Under the case row lock: re-checks that the step does not exist, that the count still reaches
    the threshold, and (for a 督办单) that the case is active with a lead unit; then writes the
    step, the 督办单 or the proposal, the ``quality_rung`` audit event and the e-mail in this one
    transaction (e-mail sent after commit). A concurrent sweep that got here first wins through
    the unique constraint (rung, case, round).

    Args:
        rung: an active ``QualityRung``.
        case_id, round: from :func:`quality_candidates`.
        now: aware datetime of the sweep.
    """
    case = case_lock(case=Case(pk=case_id))
    if case.lead_unit_id is None or QualityStep.objects.filter(rung=rung, case=case, round=round).exists():
        return None
    is_notice = rung.action == QualityRung.Action.NOTICE
    if is_notice and case.state not in ACTIVE_STATES:
        return None
    count = quality_count(rung=rung, case=case, round=round)
    if count < max(rung.threshold, 1):
        return None
    try:
        with transaction.atomic():
            step = QualityStep.objects.create(
                rung=rung, case=case, round=round, unit=case.lead_unit, count=count, happened_at=now,
                status=QualityStep.Status.NOTICE if is_notice else QualityStep.Status.PROPOSED,
            )
    except IntegrityError:
        return None
    unit = case.lead_unit
    payload = {"rung": rung.name, "kind": rung.kind, "count": count, "round": round, "quality_step_id": step.pk}
    if is_notice:
        content = _("%(rung)s:本案第 %(round)s 轮已达 %(n)s 次,请%(unit)s认真整改并答复督办单。") % {
            "rung": rung.name, "round": round, "n": count, "unit": unit.name}
        notice = _notice_create(case=case, unit=unit, content=content, days=max(rung.answer_days, 1), now=now,
                                origin="quality")
        step.notice = notice
        step.save(update_fields=["notice"])
        payload["notice_id"] = notice.pk
    event_append(case=case, action="quality_rung", actor=None, from_state=case.state, to_state=case.state,
                 payload=payload, at=now)
    if is_notice:
        notice_email_queue(notice=step.notice, now=now)
    else:
        context = _email_context(case=case, unit=unit, now=now, kind="proposal", step=step)
        notification_queue(
            key=f"quality:{step.pk}", case=case, recipients=comment_office_emails(),
            subject=_("【质量触发·提请移交】%(ref)s %(unit)s %(rung)s") % {
                "ref": case.reference, "unit": unit.name, "rung": rung.name},
            body=render_to_string("casework/email/supervision.txt", context),
            html_body=render_to_string("casework/email/supervision.html", context),
        )
    logger.info("quality rung %s %s round %s count %s", rung.pk, case.reference, round, count)
    return step


def quality_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Take every quality rung that is due; return ``{"quality_<kind>": steps taken}``.

    Safe to run twice or concurrently (see :func:`quality_take`). Called from the Celery
    escalation task, so it runs on the ladder's beat (every 5 minutes and the 09:00 scan).

    Args:
        now: aware datetime of the sweep; defaults to the current time.
    """
    now = now or timezone.now()
    taken: dict[str, int] = {}
    for rung in quality_rungs():
        for case_id, round in quality_candidates(rung=rung):
            if quality_take(rung=rung, case_id=case_id, round=round, now=now):
                key = f"quality_{rung.kind}"
                taken[key] = taken.get(key, 0) + 1
    return taken
