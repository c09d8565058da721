"""Decoding JSON request bodies into typed structs, with OpenAI-shaped 400s naming the field.

No body gets further than `decode_object` unless it is a JSON object nested at most
`MAX_DEPTH` levels deep, so everything downstream (validation, the reservation's bounds,
token counting, re-encoding for the upstream) works on values of bounded depth and cannot
recurse out of stack.  When a body does not decode, the error path works out what is wrong
(an empty body, invalid UTF-8, a lone UTF-16 surrogate escape, an out-of-range number) and
where; a body that decodes pays for none of that.
"""

from __future__ import annotations

import math
import re
from typing import Any, TypeVar

import msgspec

from tollway.errors import InvalidRequest

__all__ = ["MAX_DEPTH", "ascii_int", "convert", "decode_object", "is_id", "plain_text"]

# Arrays and objects a request body may nest (the body object itself is level 1).  Deep enough for
# any real tool schema; shallow enough that no recursive walk of a body comes near Python's stack.
MAX_DEPTH = 128

_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")


def is_id(value: str) -> bool:
    """Could this be one of tollway's ids?  Anything else cannot name a stored row."""
    return _ID.fullmatch(value) is not None


def plain_text(value: str, param: str) -> str:
    """Text bound for the database: PostgreSQL cannot store NUL characters, so none are accepted.

    Nor lone surrogates, which have no UTF-8 form at all.
    """
    if "\x00" in value:
        raise InvalidRequest(f"{param} must not contain NUL characters.", param=param)
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            raise InvalidRequest(f"{param} must be valid Unicode text.", param=param) from exc
    return value


def ascii_int(raw: str, max_digits: int) -> int | None:
    """`raw` as a non-negative integer if it is 1 to `max_digits` ASCII digits, else None.

    `str.isdigit` alone accepts superscripts and other digits `int` refuses ("²", "①"), and `int`
    accepts digits of other scripts ("٣") and refuses more than 4,300 of them: neither is a check.
    """
    if not 1 <= len(raw) <= max_digits or not raw.isascii() or not raw.isdigit():
        return None
    return int(raw)


T = TypeVar("T")

_decode_json = msgspec.json.Decoder().decode
_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<field>[^`]+)`")


def _split(message: str) -> tuple[str, str | None, str]:
    """msgspec's message -> (text, param, code); `$.messages[0].role` becomes `messages[0].role`."""
    match = _AT.search(message)
    path = match.group("path").lstrip(".") if match else ""
    text = message[: match.start()] if match else message
    code = "invalid_type"
    for pattern, kind in ((_MISSING, "missing_required_parameter"), (_UNKNOWN, "unknown_parameter")):
        found = pattern.match(text)
        if found:
            path = f"{path}.{found.group('field')}" if path else found.group("field")
            code = kind
    if re.search(r"(>=|<=|>|<) ?-?\d|length (>=|<=)|Invalid enum value", text):
        code = "invalid_value"
    return text, path or None, code


def decode_object(raw: bytes) -> dict[str, Any]:
    """A JSON object from the body, nested at most `MAX_DEPTH` levels deep, or a 400."""
    try:
        body = _decode_json(raw)
    except RecursionError:  # nested deeper than msgspec goes from here: find where, without recursing
        offset, key = _deep_point(raw)
        raise _too_deep(key, offset) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(
            f"We could not parse the JSON body of your request: {_explain(raw, exc)}", code="invalid_json"
        ) from exc
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_request_body")
    # Depth is at most the number of opening brackets: most bodies have too few to need a walk.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        for key, value in body.items():
            if _deeper_than(value, MAX_DEPTH - 1):
                raise _too_deep(key, _deep_point(raw)[0])
    return body


def convert(body: dict[str, Any], type_: type[T]) -> T:
    """Check a decoded object against `type_`; a mismatch is a 400 naming the field."""
    try:
        value = msgspec.convert(body, type_)
    except msgspec.ValidationError as exc:
        text, param, code = _split(str(exc))
        where = f" for '{param}'" if param else ""
        raise InvalidRequest(f"Invalid value{where}: {text}.", code=code, param=param) from exc
    except RecursionError:  # only for a body that did not come through decode_object
        raise _too_deep(None, None) from None
    if isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            field = getattr(value, name)
            if isinstance(field, str):
                plain_text(field, name)
    return value


# --- nesting depth ------------------------------------------------------------------------------


def _deeper_than(value: object, limit: int) -> bool:
    """Does `value` nest arrays and objects more than `limit` levels?  Iterative: no recursion."""
    if type(value) is not dict and type(value) is not list:
        return False
    level: list[Any] = [value]
    depth = 1
    while level:
        if depth > limit:
            return True
        below: list[Any] = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                if type(child) is dict or type(child) is list:
                    below.append(child)
        level = below
        depth += 1
    return False


def _too_deep(key: str | None, offset: int | None) -> InvalidRequest:
    where = f" at byte {offset}" if offset is not None else ""
    inside = f" (inside '{key[:100]}')" if key is not None else ""
    return InvalidRequest(
        f"We could not parse the JSON body of your request: arrays and objects are nested more than "
        f"{MAX_DEPTH} levels deep{where}{inside}.",
        code="invalid_json",
        param=key,
    )


# A JSON string (escapes and all) or one bracket: enough to follow nesting without a parser.
_NESTING_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def _deep_point(raw: bytes) -> tuple[int | None, str | None]:
    """Where `raw` first goes deeper than `MAX_DEPTH`, and the top-level key it is under."""
    depth = 0
    is_object = raw.lstrip()[:1] == b"{"
    last: bytes | None = None  # the latest string at the top level of the body object
    key: bytes | None = None
    for match in _NESTING_TOKEN.finditer(raw):
        token = match.group()
        first = token[0]
        if first == 0x22:  # '"'
            if depth == 1:
                last = token
        elif first in b"[{":
            if depth == 1:
                key = last if is_object else None
            depth += 1
            if depth > MAX_DEPTH:
                return match.start(), _key_text(key)
        else:
            depth -= 1
    return None, None


def _key_text(token: bytes | None) -> str | None:
    if token is None:
        return None
    try:
        text = msgspec.json.decode(token)
    except msgspec.DecodeError:
        return None
    return text if isinstance(text, str) else None


# --- explaining a body that does not decode (the error path only) ------------------------------

_ESCAPE = re.compile(rb"\\(?:u([0-9a-fA-F]{4})|.)", re.DOTALL)
_STRING_OR_NUMBER = re.compile(rb'"(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+\-]*', re.DOTALL)
_INT_DIGITS = 4300  # msgspec, like Python's int(), refuses integers with more digits


def _explain(raw: bytes, exc: msgspec.DecodeError) -> str:
    """What is wrong with a body msgspec refused, and where, in words a client can act on."""
    message = str(exc)
    if not raw.strip():
        return "the body is empty; send a JSON object."
    if raw.startswith(b"\xef\xbb\xbf"):
        return "the body starts with a UTF-8 byte order mark; send the JSON text without it."
    if "UTF-8" in message:
        try:
            raw.decode()
        except UnicodeDecodeError as bad:
            return f"contains bytes that are not valid UTF-8 at byte {bad.start}; JSON text must be UTF-8."
    if "truncated" in message or "surrogate" in message:
        lone = _lone_surrogate(raw)
        if lone is not None:
            escape = raw[lone : lone + 6].decode("ascii")
            return (
                f"contains a lone UTF-16 surrogate escape ({escape}) at byte {lone}; "
                "JSON strings must be valid Unicode."
            )
    if "out of range" in message:
        offset = _huge_number(raw)
        if offset is not None:
            return (
                f"contains a number out of range at byte {offset} (integers may have at most "
                f"{_INT_DIGITS} digits; other numbers must fit a 64-bit float)."
            )
        return _AT.sub("", message)
    return message


def _lone_surrogate(raw: bytes) -> int | None:
    """Byte offset of the first \\uD800-\\uDFFF escape that is not half of a proper pair."""
    high: int | None = None  # offset of a high surrogate escape waiting for its low half
    high_end = -1
    for match in _ESCAPE.finditer(raw):  # left to right, so "\\\\" is consumed as one escape
        digits = match.group(1)
        code = int(digits, 16) if digits is not None else -1
        if high is not None:
            if match.start() == high_end and 0xDC00 <= code <= 0xDFFF:
                high = None
                continue
            return high
        if 0xD800 <= code <= 0xDBFF:
            high, high_end = match.start(), match.end()
        elif 0xDC00 <= code <= 0xDFFF:
            return match.start()
    return high


def _huge_number(raw: bytes) -> int | None:
    """Byte offset of the first number msgspec cannot hold (strings are skipped whole)."""
    for match in _STRING_OR_NUMBER.finditer(raw):
        token = match.group()
        if token[0] == 0x22:
            continue
        if any(c in token for c in b".eE"):
            try:
                out_of_range = math.isinf(float(token))
            except ValueError:
                continue
        else:
            out_of_range = len(token.lstrip(b"-")) > _INT_DIGITS
        if out_of_range:
            return match.start()
    return None
