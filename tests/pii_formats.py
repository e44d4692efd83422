"""The personal-number formats the PII tests use (issue 9 §1), and how to tell one leaked."""

import re
import unicodedata

# name → the number as a citizen (or a careless reply) writes it.
FORMATS = {
    "mobile": "13800138000",
    "mobile_plus86": "+8613800138000",
    "mobile_0086": "0086 138 0013 8000",
    "mobile_hyphens": "138-0013-8000",
    "mobile_spaces": "138 0013 8000",
    "mobile_full_width": "１３８００１３８０００",
    "mobile_zero_width": "138\u200b0013\u200b8000",
    "mobile_mixed_format_chars": "1\u200c38\u2060001\ufeff38000",
    "landline_hyphen": "0731-88886666",
    "landline_parenthesis": "(0731)88886666",
    "landline_spaces": "0731 8888 6666",
    "landline_full_width": "０７３１－８８８８６６６６",
    "landline_area_7_digits": "0731-8888666",
    "landline_local_7": "8888666",
    "landline_local_8": "88886666",
    "landline_local_hyphen": "8888-6666",
    "id_card": "430102199001011238",
    "id_card_x": "11010519491231002X",
    "id_card_spaces": "430102 19900101 1238",
    "id_card_hyphens": "430102-19900101-1238",
    "id_card_wrong_check_digit": "430102199001011234",
    "id_card_full_width": "４３０１０２１９９００１０１１２３８",
    "id_card_15_digits": "430102900101123",
}

# Numbers that are not personal and stay as written (public service and business numbers, dates,
# amounts, case references).
NOT_PERSONAL = ["110", "119", "12345", "95588", "400-820-8820", "20260302", "12000000元", "CW-2026-000012",
                "138****8000", "3.1415926", "第2026-000012号"]

_SEPARATORS = re.compile(r"[\s\-()\u200b-\u200f\u2060\ufeff]")


def digits_of(text: str) -> str:
    """The text folded (NFKC) with separators and format characters removed: digits stay adjacent."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", text))


def leaked(raw: str, output: str) -> bool:
    """Tell whether the number ``raw`` can be read in ``output`` (as written or with its digits joined)."""
    number = digits_of(raw)
    return raw in output or number in digits_of(output)


def body_with_every_format() -> str:
    """A message body quoting every format once, with public numbers between them."""
    parts = [f"号码{i}:{raw}。" for i, raw in enumerate(FORMATS.values())]
    return "网民反映情况,报警110、热线12345均已拨打。" + "".join(parts)
