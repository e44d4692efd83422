"""Who reads a citizen's personal numbers: the one rule for pages, lists, exports, e-mails and JSON.

Phone and ID numbers inside citizen text (subject, body, topic titles drawn from subjects) reach only
readers holding ``casework.view_citizen_contact`` (DESIGN.md §8, issue 9 §1); everyone else, and every
e-mail (its recipients are mixed and it leaves the system), gets the text with the numbers masked by
:func:`casework.text.mask_personal_numbers`. Nothing is changed in the database: masking happens when
text is shown.
"""

from django.db.models import Q

from casework.text import mask_personal_numbers

CONTACT_PERMISSION = "casework.view_citizen_contact"


def user_may_see_personal_numbers(*, user) -> bool:
    """Tell whether ``user`` may read citizens' phone and ID numbers unmasked."""
    return bool(user and user.is_authenticated and user.is_active and user.has_perm(CONTACT_PERMISSION))


def citizen_text_for(*, user, text: str | None) -> str:
    """Return ``text`` as ``user`` may read it: unchanged with the permission, numbers masked without.

    Args:
        user: the reader; ``None`` stands for a reader without the permission (e.g. an e-mail).
        text: citizen text or any text that may quote it.
    """
    if user is not None and user_may_see_personal_numbers(user=user):
        return text or ""
    return mask_personal_numbers(text or "")


def cases_search_ids(*, queryset, term: str):
    """Return the cases of ``queryset`` whose reference or platform id contains every word of ``term``.

    The search of readers without the permission when their term holds digits (four or more), so
    that the search box cannot probe the personal numbers masked in subjects and bodies.
    """
    for bit in term.split():
        queryset = queryset.filter(Q(reference__icontains=bit) | Q(external_id__icontains=bit))
    return queryset


def mask_instance_text(obj) -> None:
    """Mask, in memory only, the personal numbers in every text field of ``obj`` (JSON strings too).

    For read-only admin pages of rows hanging off a case (drafts, events, notices, referrals…)
    shown to a reader without the permission; the caller guarantees the instance is never saved.
    """
    for field in obj._meta.concrete_fields:
        value = getattr(obj, field.attname, None)
        if isinstance(value, str):
            setattr(obj, field.attname, mask_personal_numbers(value))
        elif isinstance(value, (dict, list)):
            setattr(obj, field.attname, _mask_json(value))


def _mask_json(value):
    if isinstance(value, str):
        return mask_personal_numbers(value)
    if isinstance(value, list):
        return [_mask_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _mask_json(v) for k, v in value.items()}
    return value
