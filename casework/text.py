"""Text rules for citizen data: half-width identifiers, personal-number detection, masking."""

import re
import unicodedata

_MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
_ID_CARD = re.compile(r"(?<![0-9])\d{17}[0-9Xx](?![0-9A-Za-z])|(?<!\d)\d{15}(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)0\d{2,3}-?\d{7,8}(?!\d)")


def to_half_width(value: str) -> str:
    """Return ``value`` with full-width letters, digits and punctuation folded to half width (NFKC).

    Used for identifiers (phone numbers, external ids, case references) only; free text such as a
    message body is kept exactly as written (field case C23).
    """
    return unicodedata.normalize("NFKC", value).replace("\u3000", " ").strip()


def find_personal_numbers(text: str) -> list[str]:
    """Return the mobile, landline and ID-card numbers found in ``text`` (full-width digits included).

    Source of the rule: DESIGN.md §8 ("a reply is checked for phone and ID numbers before
    publication"). Masked numbers such as ``138****8000`` are not matched.
    """
    folded = unicodedata.normalize("NFKC", text)
    found = []
    for pattern in (_ID_CARD, _MOBILE, _LANDLINE):
        for match in pattern.finditer(folded):
            if match.group(0) not in found:
                found.append(match.group(0))
    return found


def mask_contact(value: str) -> str:
    """Return a contact detail masked for readers without the right permission (138****8000)."""
    value = to_half_width(value or "")
    if not value:
        return ""
    if len(value) <= 4:
        return "*" * len(value)
    keep = 3 if len(value) >= 7 else 1
    return value[:keep] + "*" * (len(value) - keep - 4) + value[-4:]
