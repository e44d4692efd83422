"""Text rules for citizen data: half-width identifiers, personal-number detection, masking.

Personal numbers (DESIGN.md §8: a citizen's phone and ID numbers reach only readers holding
``casework.view_citizen_contact`` and never a published reply) are found with maintained parsers
rather than home-made patterns:

- phone numbers with ``phonenumbers.PhoneNumberMatcher`` (region CN, leniency ``VALID``): mobiles
  with or without ``+86``/``0086``, with hyphens, spaces or dots between the groups, and landlines
  with their area code (``0731-88886666``, ``(0731)88886666``, ``0731 8888 6666``). A match counts
  when it is a mobile or starts with a trunk ``0``/international prefix, so that case references
  (``CW-2026-000012``) and other codes are not taken for landlines; 400/800 business numbers
  (toll-free, shared cost) are public and stay;
- ID numbers (居民身份证) with ``stdnum.cn.ric``: 18 characters, spaces or hyphens allowed between
  the groups, with a valid birth date and birth place; a wrong check digit still counts (a mistyped
  ID number still names a person). Old 15-digit numbers count when their birth date is valid;
- local landlines without area code: a free-standing run of 7 or 8 digits (``8888666``,
  ``8888-6666``) is a personal landline, unless it reads as a date (``20260302``) or an amount
  (followed by 元/万/米/…). Public service numbers (110, 119, 120, 122, 12345, 95588…) are 3–6 digits
  and stay as written.

Before searching, the text is folded for the parsers: full-width digits and punctuation become
half-width (NFKC) and zero-width and other format characters (Unicode category Cf, e.g. U+200B)
are dropped, so ``１３８\u200b0013 8000`` is found too. Masking works on the original text: only the
digits of a found number are replaced by ``*`` (the first three and last four of a long number, the
last two of a short one stay), everything else is kept as written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
import functools
import re
import unicodedata

import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher, PhoneNumberType
from stdnum.cn import ric
from stdnum.exceptions import InvalidChecksum, ValidationError

_ID_CANDIDATE = re.compile(r"(?<![0-9A-Za-z])\d(?:[ \-]?\d){16}[ \-]?[0-9Xx](?![0-9A-Za-z])")
_OLD_ID = re.compile(r"(?<![0-9A-Za-z])\d{15}(?![0-9A-Za-z])")
_AREA_LANDLINE = re.compile(r"(?<![0-9A-Za-z])0\d{2,3}[- ]?\d{7,8}(?![0-9A-Za-z])")
# Not inside a word, a decimal, a path or a query (``/case/1234567/``, ``?id=12345678``).
_LOCAL_LANDLINE = re.compile(r"(?<![0-9A-Za-z.,*\-/=_#%&])(\d{7,8}|\d{3,4}-\d{4})(?![0-9A-Za-z*\-/=_#%&]|[.,]\d)")
_AMOUNT_AFTER = re.compile(r"\s*(?:元|万|亿|米|平|公里|公斤|千克|吨|件|个|次|人|户|天|%|％)")
_PERSONAL_PHONE_TYPES = {
    PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.VOIP, PhoneNumberType.PERSONAL_NUMBER, PhoneNumberType.UNKNOWN,
}


def to_half_width(value: str) -> str:
    """Return ``value`` with full-width letters, digits and punctuation folded to half width (NFKC).

    Used for identifiers (phone numbers, external ids, case references) only; free text such as a
    message body is kept exactly as written (field case C23).
    """
    if value.isascii():  # NFKC leaves ASCII as it is (ids, times and counts of a CSV mostly are)
        return value.strip()
    return unicodedata.normalize("NFKC", value).replace("\u3000", " ").strip()


@dataclass(frozen=True)
class PersonalNumber:
    """One personal number found in a text: its kind, its span in the original text, as found."""

    kind: str  # "phone", "id" or "landline" (7–8 digits without area code)
    start: int  # index in the original text
    end: int  # index after the last character, in the original text
    text: str  # the number as found, folded (half-width, without zero-width characters)


def _fold(text: str) -> tuple[str, list[int]]:
    """Return ``text`` folded for the parsers and, per folded character, its index in ``text``."""
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        if unicodedata.category(ch) == "Cf":
            continue
        folded = unicodedata.normalize("NFKC", ch)
        for f in folded:
            out.append(f)
            index.append(i)
    return "".join(out), index


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit() or ch in "Xx")


def _is_id_number(compact: str) -> bool:
    try:
        ric.validate(compact)
        return True
    except InvalidChecksum:
        try:  # only the check digit is wrong: still a person's number when date and place exist
            ric.get_birth_date(compact)
            ric.get_birth_place(compact)
            return True
        except ValidationError:
            return False
    except ValidationError:
        return False


def _is_old_id_number(compact: str) -> bool:
    try:
        year, month, day = 1900 + int(compact[6:8]), int(compact[8:10]), int(compact[10:12])
        date(year, month, day)
    except ValueError:
        return False
    return compact[0] in "12345678"


def _is_date(digits: str) -> bool:
    if len(digits) != 8 or digits[:2] not in ("19", "20"):
        return False
    try:
        date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return False
    return True


def _is_personal_phone(match) -> bool:
    raw = match.raw_string.lstrip("(").lstrip()
    if phonenumbers.number_type(match.number) not in _PERSONAL_PHONE_TYPES:
        return False
    if raw.startswith(("+", "00", "0")):
        return True
    return phonenumbers.number_type(match.number) == PhoneNumberType.MOBILE


def personal_numbers(text: str) -> list[PersonalNumber]:
    """Return the phone, ID-card and local landline numbers in ``text``, in order of appearance.

    Args:
        text: any citizen or staff text (full-width digits, separators and zero-width characters
            allowed, see the module docstring for what counts).

    Returns:
        one :class:`PersonalNumber` per number, with its span in ``text`` (spans never overlap).
        Masked numbers such as ``138****8000`` are not found.
    """
    if not text:
        return []
    folded, index = _fold(text)
    if sum(ch.isdigit() for ch in folded) < 5:
        # No personal number has fewer than five digits (the shortest valid Chinese number is
        # longer): the list masks fifty subjects per page without calling the phone matcher.
        return []
    spans: list[tuple[int, int, str]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e, _k in spans)

    for m in _ID_CANDIDATE.finditer(folded):
        compact = _digits(m.group(0)).upper()
        if len(compact) == 18 and _is_id_number(compact):
            spans.append((m.start(), m.end(), "id"))
    for m in _OLD_ID.finditer(folded):
        if free(m.start(), m.end()) and _is_old_id_number(m.group(0)):
            spans.append((m.start(), m.end(), "id"))
    for m in PhoneNumberMatcher(folded, "CN", leniency=Leniency.VALID):
        if free(m.start, m.end) and _is_personal_phone(m):
            spans.append((m.start, m.end, "phone"))
    for m in _AREA_LANDLINE.finditer(folded):  # area code + 7 digits, which the metadata rejects
        if free(m.start(), m.end()):
            spans.append((m.start(), m.end(), "phone"))
    for m in _LOCAL_LANDLINE.finditer(folded):
        if not free(m.start(), m.end()) or _is_date(m.group(0)):
            continue
        if _AMOUNT_AFTER.match(folded, m.end()) or folded[max(0, m.start() - 1):m.start()] in ("¥", "$"):
            continue
        spans.append((m.start(), m.end(), "landline"))
    spans.sort()
    return [
        PersonalNumber(kind=kind, start=index[a], end=index[b - 1] + 1, text=folded[a:b])
        for a, b, kind in spans
    ]


def find_personal_numbers(text: str) -> list[str]:
    """Return the personal numbers found in ``text`` as folded strings, each once, in order.

    The check before a reply is published (DESIGN.md §8: "a reply is checked for phone and ID
    numbers before publication"); see :func:`personal_numbers` for what is found.
    """
    found: list[str] = []
    for number in personal_numbers(text or ""):
        if number.text not in found:
            found.append(number.text)
    return found


def mask_personal_numbers(text: str) -> str:
    """Return ``text`` with the digits of every personal number in it replaced by ``*``.

    A number of 11 or more digits keeps its first three and last four digits (``138****8000``), a
    shorter one its last two; the rest of the text is kept exactly as written.
    """
    if not text:
        return text or ""
    if len(text) <= _MASK_MEMO_LENGTH:
        # A list masks each subject twice (the column and the row's label): short texts are memoised.
        return _mask_short(text)
    return _mask(text)


# Texts up to this length (subjects, titles) are masked once per process: the mask is a pure
# function of the text, and the case list masks fifty subjects, each twice, on every page.
_MASK_MEMO_LENGTH = 200


@functools.lru_cache(maxsize=8192)
def _mask_short(text: str) -> str:
    return _mask(text)


def _mask(text: str) -> str:
    chars = list(text)
    for number in personal_numbers(text):
        positions = [i for i in range(number.start, number.end)
                     if unicodedata.normalize("NFKC", chars[i]) in "0123456789Xx" and chars[i].strip()]
        n = len(positions)
        keep = set(positions[:3] + positions[-4:]) if n >= 11 else set(positions[-2:])
        for i in positions:
            if i not in keep:
                chars[i] = "*"
    return "".join(chars)


def mask_contact(value: str) -> str:
    """Return a contact detail masked for readers without the right permission (138****8000)."""
    value = to_half_width(value or "")
    if not value:
        return ""
    if len(value) <= 4:
        return "*" * len(value)
    keep = 3 if len(value) >= 7 else 1
    return value[:keep] + "*" * (len(value) - keep - 4) + value[-4:]
