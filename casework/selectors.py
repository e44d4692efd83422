"""Reads for casework, starting with the one access rule that every path uses.

The rule (DESIGN.md §1, §8): a superuser sees every case; anyone else sees a case when the case's
lead unit lies inside one of the units they were granted ``accounts.access_unit`` on (a grant
covers the unit's descendants), and users whose grant includes a root unit also see cases not yet
dispatched. Model-wide permissions never widen this scope. Acting on a case additionally needs the
role permission of the action; acting as the lead unit needs the lead unit in scope.
"""

from datetime import datetime

from django.db.models import Q, QuerySet

from accounts.models import User
from accounts.selectors import unit_scope_q, user_covers_unit, user_is_city_wide
from casework.models import ACTIVE_STATES, Case, CaseEvent, ReplyDraft, State


def case_scope_q(*, user: User) -> Q:
    """Return the ``Q`` on ``Case`` that selects exactly the cases ``user`` may see."""
    if not user.is_authenticated or not user.is_active:
        return Q(pk__in=[])
    if user.is_superuser:
        return Q()
    q = unit_scope_q(user=user, prefix="lead_unit__")
    if user_is_city_wide(user=user):
        q |= Q(lead_unit__isnull=True)
    return q


def cases_visible_to(*, user: User, queryset: QuerySet[Case] | None = None) -> QuerySet[Case]:
    """Return the cases ``user`` may see, narrowing ``queryset`` (default: all cases)."""
    qs = queryset if queryset is not None else Case.objects.all()
    return qs.filter(case_scope_q(user=user))


def user_can_see_case(*, user: User, case: Case) -> bool:
    """Tell whether ``user`` may see ``case`` (same rule as :func:`cases_visible_to`, in memory)."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    if case.lead_unit_id is None:
        return user_is_city_wide(user=user)
    return user_covers_unit(user=user, unit=case.lead_unit)


def user_may_act(*, user: User, case: Case, perm: str, scope: str) -> bool:
    """Tell whether ``user`` may perform an action needing ``casework.<perm>`` on ``case``.

    Args:
        perm: codename of the role permission (e.g. ``"accept_case"``).
        scope: ``"lead"`` to act as the lead unit, ``"case"`` to act on any case one can see.
    """
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    if not user.has_perm(f"casework.{perm}"):
        return False
    if scope == "lead":
        return case.lead_unit_id is not None and user_covers_unit(user=user, unit=case.lead_unit)
    return user_can_see_case(user=user, case=case)


def case_get_for_user(*, user: User, pk: int) -> Case:
    """Return case ``pk`` if ``user`` may see it.

    Raises:
        Case.DoesNotExist: when the case does not exist *or* is outside the user's scope (the two
        are indistinguishable on purpose: callers answer 404).
    """
    return cases_visible_to(user=user).select_related("lead_unit", "platform").get(pk=pk)


def case_timeline(*, case: Case) -> QuerySet[CaseEvent]:
    """Return the audit events of ``case`` in order, with their actors."""
    return case.events.select_related("actor").order_by("seq")


def case_current_draft(*, case: Case) -> ReplyDraft | None:
    """Return the newest draft of the case's current handling round, or None."""
    return case.drafts.filter(round=case.handling_round).order_by("-version").first()


def case_audit_verify(*, case: Case) -> bool:
    """Recompute the hash chain of ``case``'s events; False if any event was altered or removed."""
    prev = ""
    for expected_seq, event in enumerate(case.events.order_by("seq"), start=1):
        if event.seq != expected_seq or event.prev_hash != prev or event.compute_hash() != event.hash:
            return False
        prev = event.hash
    return True


def cases_overdue_q(*, now: datetime) -> Q:
    """Return the ``Q`` of cases past a running clock at ``now`` (an aware datetime).

    The sign-for clock runs while a case waits to be signed for; the reply clock runs from
    dispatch until the reply is published.
    """
    return Q(state=State.DISPATCHED, sign_for_due_at__lt=now) | Q(
        state__in=ACTIVE_STATES, reply_due_at__lt=now
    )
