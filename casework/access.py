"""The one access rule for a single case, below the models so that transitions can use it.

The rule (DESIGN.md §1, §8): a superuser sees every case; anyone else sees a case when the case's
lead unit lies inside one of the units they were granted ``accounts.access_unit`` on (a grant
covers the unit's descendants), and users whose grant includes a root unit also see cases not yet
dispatched. A co-unit of a jointly handled case (a ``CoUnitTask`` for a unit in scope) sees that
case too. Acting on a case additionally needs the role permission of the action; acting as the
lead unit needs the lead unit in scope.

This module imports nothing of :mod:`casework.models`: it reads the case through its own fields
and relations, so :mod:`casework.models` builds its django-fsm-2 permission callables on it and the
arrows point one way (models → access → accounts). The set form of the rule, for querysets, is
:func:`casework.selectors.case_scope_q`; the two are tested against each other.
"""

from accounts.models import User
from accounts.selectors import unit_scope_q, user_covers_unit, user_is_city_wide


def case_co_unit_task_for(*, user: User, case):
    """Return the co-unit sub-task (``CoUnitTask``) of ``case`` whose unit lies in ``user``'s scope.

    Args:
        user: any user (anonymous and inactive users have none).
        case: a saved or unsaved ``Case``; an unsaved one has no sub-tasks.

    Returns:
        the first matching ``CoUnitTask`` with its unit loaded, or None (one query at most).
    """
    if not user.is_authenticated or not user.is_active or case.pk is None:
        return None
    return (
        case.co_unit_tasks.all()
        .filter(unit_scope_q(user=user, prefix="unit__"))
        .select_related("unit")
        .first()
    )


def user_can_see_case(*, user: User, case) -> bool:
    """Tell whether ``user`` may see ``case`` (the rule of :func:`casework.selectors.cases_visible_to`, in memory)."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    if case.lead_unit_id is None:
        if user_is_city_wide(user=user):
            return True
    elif user_covers_unit(user=user, unit=case.lead_unit):
        return True
    return case_co_unit_task_for(user=user, case=case) is not None


def user_may_act(*, user: User, case, perm: str, scope: str) -> bool:
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
