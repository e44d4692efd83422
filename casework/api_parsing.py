"""Reading the push API's JSON body message by message (issue 9 §3).

A bad message never fails the others: the body is split into its messages by a scan at C speed
(strings and brackets only) before any of them is parsed, so a message nested too deep, with a
duplicate key, with invalid JSON inside, or with a value of the wrong type is reported on its own
with its index while the other messages are registered. Only a body that is not UTF-8, not a
JSON object or array, or whose brackets do not close, is refused whole.

Types are strict: text fields must be JSON strings (a number is not silently turned into text or
a date, e.g. ``46000``), ``likes``/``dislikes`` JSON integers, and no string may hold a lone
surrogate (``"\\ud800"``), which is valid JSON but not text.
"""

import json
import re

from django.utils.translation import gettext as _

from casework.importing import RowError, value_echo

STRING_FIELDS = ("message_id", "user_id", "subject", "body", "submitted_at", "category", "reply", "replied_at", "source")
INTEGER_FIELDS = ("likes", "dislikes")

# A JSON string (unrolled loop, fast on long bodies) or a structural character.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]')
_KEY = re.compile(r'\s*("[^"\\]*(?:\\.[^"\\]*)*")\s*:')
_SURROGATE = re.compile("[\ud800-\udfff]")


class PushBodyError(Exception):
    """The body as a whole is unusable; ``status`` is the HTTP status and ``str`` says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _elements(text: str, start: int, max_depth: int) -> tuple[int, list[tuple[int, int, bool]]]:
    """Split the array or object opening at ``text[start]`` into its direct elements.

    Returns the index after its closing bracket and ``(start, end, too_deep)`` per element, where
    ``too_deep`` says the element nests more than ``max_depth`` levels.
    """
    depth = 0
    elements: list[tuple[int, int, bool]] = []
    element_start, element_depth = start + 1, 0
    for match in _TOKEN.finditer(text, start):
        char = match.group()[0]
        if char == '"':
            continue
        if char in "[{":
            depth += 1
            if depth > 1:
                element_depth = max(element_depth, depth - 1)
        elif char in "]}":
            depth -= 1
            if depth == 0:
                if text[element_start : match.start()].strip():
                    elements.append((element_start, match.start(), element_depth > max_depth))
                return match.end(), elements
        elif char == "," and depth == 1:
            elements.append((element_start, match.start(), element_depth > max_depth))
            element_start, element_depth = match.end(), 0
    raise PushBodyError(400, _("请求体不是完整的 JSON(括号未闭合)。"))


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(_("键「%(key)s」出现了两次。") % {"key": value_echo(key)})
        result[key] = value
    return result


def _kind(value) -> str:
    if isinstance(value, bool):
        return _("布尔值")
    if isinstance(value, int | float):
        return _("数字")
    if isinstance(value, dict):
        return _("对象")
    if isinstance(value, list):
        return _("数组")
    return _("字符串")


def message_validate(index: int, value) -> dict | RowError:
    """Check one parsed message's types; return it, or a RowError (row number ``index + 1``)."""
    number = index + 1
    if not isinstance(value, dict):
        return RowError(number, "", _("每条留言必须是一个 JSON 对象。"))
    message_id = value.get("message_id")
    shown_id = value_echo(message_id)[:64] if isinstance(message_id, str) else ""
    problems = []
    for key in value:
        if _SURROGATE.search(key):
            problems.append(_("键「%(key)s」含有不成对的代理字符,不是有效的 Unicode 文本。") % {"key": value_echo(key)})
    for name in STRING_FIELDS:
        item = value.get(name)
        if item is None:
            continue
        if not isinstance(item, str):
            problems.append(_("「%(name)s」必须是字符串,收到的是%(kind)s。") % {"name": name, "kind": _kind(item)})
        elif _SURROGATE.search(item):
            problems.append(
                _("「%(name)s」含有不成对的代理字符(如 \\ud800),不是有效的 Unicode 文本。") % {"name": name}
            )
    for name in INTEGER_FIELDS:
        item = value.get(name)
        if item is None:
            continue
        if isinstance(item, bool) or not (isinstance(item, int) or (isinstance(item, float) and item.is_integer())):
            problems.append(_("「%(name)s」必须是整数,收到的是%(kind)s。") % {"name": name, "kind": _kind(item)})
        elif isinstance(item, float):
            value[name] = int(item)
    if problems:
        return RowError(number, shown_id, "".join(problems))
    return value


def _parse_message(text: str, index: int, span: tuple[int, int, bool], max_depth: int) -> dict | RowError:
    start, end, too_deep = span
    if too_deep:
        return RowError(index + 1, "", _("留言嵌套超过 %(n)d 层。") % {"n": max_depth})
    try:
        value = json.loads(text[start:end], object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        return RowError(index + 1, "", _("不是有效的 JSON:%(error)s") % {"error": value_echo(exc.msg)})
    except (ValueError, RecursionError) as exc:
        return RowError(index + 1, "", str(exc) or _("不是有效的 JSON。"))
    return message_validate(index, value)


def push_body_parse(body: bytes, *, max_messages: int, max_depth: int) -> tuple[str | None, list[dict | RowError]]:
    """Split a push body into its messages, each parsed and type-checked on its own.

    Args:
        body: the request body, UTF-8 JSON: a message object, an array of them, or an envelope
            ``{"platform": "...", "messages": [...]}``.
        max_messages: the most messages one request may carry.
        max_depth: the deepest nesting a message may have.

    Returns:
        ``(platform code from the envelope or None, [message dict or RowError per message])``.

    Raises:
        PushBodyError: 400 when the body is not UTF-8, not an object or array, does not close,
            has more than ``max_messages`` messages, or has an unusable envelope.
    """
    try:
        text = body.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise PushBodyError(400, _("请求体不是有效的 UTF-8 JSON。")) from exc
    start = len(text) - len(text.lstrip())
    if start == len(text) or text[start] not in "[{":
        raise PushBodyError(400, _("请求体必须是一个留言对象、留言数组或 {\"platform\", \"messages\"} 信封。"))
    end, spans = _elements(text, start, max_depth)
    if text[end:].strip():
        raise PushBodyError(400, _("请求体在 JSON 之后还有多余内容。"))
    platform = None
    if text[start] == "{":
        members = {}
        for member_start, member_end, _deep in spans:
            key = _KEY.match(text, member_start, member_end)
            if key is None:
                raise PushBodyError(400, _("请求体不是有效的 JSON 对象。"))
            try:
                name = json.loads(key.group(1))
            except json.JSONDecodeError as exc:
                raise PushBodyError(400, _("请求体不是有效的 JSON 对象。")) from exc
            members.setdefault(name, (key.end(), member_end))
        value_start, value_end = members.get("messages", (0, 0))
        array_start = value_start + len(text[value_start:value_end]) - len(text[value_start:value_end].lstrip())
        if value_end and text[array_start] == "[":
            if "platform" in members:
                try:
                    platform = json.loads(text[slice(*members["platform"])])
                except (json.JSONDecodeError, RecursionError) as exc:
                    raise PushBodyError(400, _("信封中的 platform 必须是字符串。")) from exc
                if platform is not None and (not isinstance(platform, str) or _SURROGATE.search(platform)):
                    raise PushBodyError(400, _("信封中的 platform 必须是字符串。"))
            _end, spans = _elements(text, array_start, max_depth)
        else:  # one message object; its members' nesting counts from the object itself
            spans = [(start, end, any(deep for *_span, deep in _elements(text, start, max_depth - 1)[1]))]
    if len(spans) > max_messages:
        raise PushBodyError(400, _("一次最多推送 %(n)d 条留言。") % {"n": max_messages})
    return platform, [_parse_message(text, index, span, max_depth) for index, span in enumerate(spans)]
