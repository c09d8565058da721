"""Decoding JSON request bodies into typed structs, with OpenAI-shaped 400s naming the field."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from tollway.errors import InvalidRequest

__all__ = ["convert", "decode_object", "is_id", "plain_text"]

_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")


def is_id(value: str) -> bool:
    """Could this be one of tollway's ids?  Anything else cannot name a stored row."""
    return _ID.fullmatch(value) is not None


def plain_text(value: str, param: str) -> str:
    """Text bound for the database: PostgreSQL cannot store NUL characters, so none are accepted."""
    if "\x00" in value:
        raise InvalidRequest(f"{param} must not contain NUL characters.", param=param)
    return value


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
    """A JSON object from the body, or a 400."""
    try:
        body = _decode_json(raw)
    except msgspec.DecodeError as exc:
        raise InvalidRequest(
            f"We could not parse the JSON body of your request: {exc}", code="invalid_json"
        ) from exc
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_request_body")
    return body


def convert(body: dict[str, Any], type_: type[T]) -> T:
    """Check a decoded object against `type_`; a mismatch is a 400 naming the field."""
    try:
        value = msgspec.convert(body, type_)
    except msgspec.ValidationError as exc:
        text, param, code = _split(str(exc))
        where = f" for '{param}'" if param else ""
        raise InvalidRequest(f"Invalid value{where}: {text}.", code=code, param=param) from exc
    if isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            field = getattr(value, name)
            if isinstance(field, str):
                plain_text(field, name)
    return value
