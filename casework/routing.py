"""The dispatch catalogue (派单目录), first version: keyword rules kept on the units as data.

Each unit's ``keywords`` (one per line, edited in the admin) are matched against a message's subject
and body. A police-type unit whose keyword matches wins over a district matched only by place
name, because the police type owns the policy question (户口, 驾驶证 …); the dispatcher confirms.
"""

from accounts.models import Unit
from casework.models import Case

_KIND_WEIGHT = {Unit.Kind.POLICE_TYPE: 3, Unit.Kind.STATION: 2, Unit.Kind.DISTRICT: 1}


def unit_suggest(*, case: Case, units: list[Unit] | None = None) -> Unit | None:
    """Return the unit the catalogue suggests as lead unit for ``case``, or None if nothing matches.

    Args:
        units: candidate units (default: all active units with keywords); pass a list to avoid
            re-reading units when suggesting for many cases.

    Score = sum over matched keywords of (the unit kind's weight × occurrences in subject + body,
    with the subject counted twice). Ties go to the unit earlier in the tree.
    """
    if units is None:
        units = list(Unit.objects.filter(is_active=True).exclude(keywords="").order_by("path"))
    text = f"{case.subject}\n{case.subject}\n{case.body}"
    best, best_score = None, 0
    for unit in units:
        weight = _KIND_WEIGHT.get(unit.kind, 1)
        score = sum(text.count(k) * weight for k in unit.keywords.split() if k)
        if score > best_score:
            best, best_score = unit, score
    return best


def unit_suggestion(*, case: Case, units: list[Unit] | None = None) -> tuple[Unit | None, list[str]]:
    """Return the catalogue's suggested lead unit for ``case`` and the keywords that chose it.

    Same rule as :func:`unit_suggest`; the keywords (in the unit's order) are the reason shown to
    the dispatcher. ``(None, [])`` when no keyword matches.
    """
    unit = unit_suggest(case=case, units=units)
    if unit is None:
        return None, []
    text = f"{case.subject}\n{case.body}"
    return unit, [k for k in unit.keywords.split() if k and k in text]
