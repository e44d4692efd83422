"""The rules of a 督办单's answer deadline (issue 13), below the ladder and the services.

A 督办单 is answered by the unit it was addressed to within a number of working days counted on
*that unit's* calendar (the bureau's calendar with the unit's own exceptions,
:func:`casework.calendar.work_calendar`), so a unit's own day off gives it that day back, as it
does for its deadlines. The deadline is computed once, when the notice is opened, and stored
(``SupervisionNotice.answer_due_at``).

A notice opened by hand or by a quality rung (``origin`` ``manual``/``quality``) that is still
awaiting its answer (:func:`casework.selectors.notices_awaiting_answer_q`) once ``answer_due_at``
has passed counts as an unanswered notice of its unit for the ladder's unit-notices rung
(:func:`casework.escalation.unit_notice_referrals_due`). Ladder notices keep the rung's own rule
(opened at least ``notice_answer_days`` working days ago).
"""

from datetime import datetime

from django.db.models import Q

from casework import calendar

# Origins of a 督办单 whose lateness is judged by its stored answer deadline.
DEADLINE_ORIGINS = ("manual", "quality")


def notice_answer_due(*, unit, opened_at: datetime, days: int,
                      cal: calendar.WorkCalendar | None = None) -> datetime:
    """Return the answer deadline of a 督办单 opened at ``opened_at`` for ``unit``.

    Args:
        unit: the addressed ``accounts.Unit``.
        opened_at: aware datetime the notice is opened.
        days: working days the unit has to answer (≥ 1).
        cal: the unit's calendar when the caller has it; else loaded (three queries).

    Raises:
        ValueError: ``days`` is negative or ``opened_at`` naive (from the calendar).
    """
    cal = cal or calendar.work_calendar(unit=unit)
    return cal.add_working_days(opened_at, days)


def notices_past_answer_due_q(*, now: datetime, prefix: str = "") -> Q:
    """Return the ``Q`` on ``SupervisionNotice`` of the manual and quality notices past their deadline.

    Combine with :func:`casework.selectors.notices_awaiting_answer_q` for the ones still unanswered.
    """
    return Q(**{f"{prefix}origin__in": DEADLINE_ORIGINS, f"{prefix}answer_due_at__lte": now})
