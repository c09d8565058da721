"""The console's forms, read into the admin API's own types (so both validate alike).

Every field a person can get wrong becomes an `InvalidRequest` naming it: the
page says what to fix, with status 400, never a 5xx.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import parse_qsl

from msgspec import Struct

from tollway.api.schemas import KEY_MONEY, KeyCreate, KeyUpdate, patch_columns, usd_nanos
from tollway.errors import InvalidRequest
from tollway.money import MoneyError, parse_usd
from tollway.reports.params import US_PER_DAY
from tollway.validation import ascii_int, convert, plain_text

__all__ = [
    "CreditForm",
    "DayRange",
    "credit_form",
    "key_form",
    "limits_form",
    "parse_day_range",
    "parse_form",
]

_MAX_FIELDS = 40
# The form fields and the admin API's names for them.
_LIMITS = {"rpm": "requests_per_minute", "tpm": "tokens_per_minute", "max_concurrent": "max_concurrent"}
_LABELS = {
    "requests_per_minute": "Requests per minute",
    "tokens_per_minute": "Tokens per minute",
    "max_concurrent": "Max concurrent",
    "spend_limit_usd": "Spend limit",
    "spend_limit_period": "Spend period",
    "name": "Name",
}


def parse_form(body: bytes) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body: the first value of each field."""
    try:
        pairs = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=_MAX_FIELDS,
        )
    except (UnicodeError, ValueError) as exc:
        raise InvalidRequest("The form could not be read: submit it from the page.") from exc
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, plain_text(value, name))
    return fields


class CreditForm(Struct, frozen=True):
    amount_nano: int
    idempotency_key: str
    note: str | None


def credit_form(fields: dict[str, str]) -> CreditForm:
    try:
        amount = parse_usd(fields.get("amount_usd", ""), allow_negative=True)
    except MoneyError as exc:
        raise InvalidRequest(f"Amount (USD) {exc}.", param="amount_usd") from exc
    key = fields.get("idempotency_key", "").strip()
    if not 1 <= len(key) <= 200:
        raise InvalidRequest("The form has no idempotency key: reload the page.", param="idempotency_key")
    note = fields.get("note", "").strip() or None
    if note is not None and len(note) > 500:
        raise InvalidRequest("The note may be at most 500 characters.", param="note")
    return CreditForm(amount, key, note)


def _count(fields: dict[str, str], name: str) -> int | None:
    raw = fields.get(name, "").strip()
    if raw == "":
        return None
    value = ascii_int(raw, 16)
    if value is None:
        raise InvalidRequest(
            f"{_LABELS[_LIMITS[name]]} must be a whole number (or empty for no limit).", param=name
        )
    return value


def _limit_values(fields: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {api: _count(fields, name) for name, api in _LIMITS.items()}
    spend = fields.get("spend_limit_usd", "").strip()
    values["spend_limit_usd"] = spend or None
    values["spend_limit_period"] = fields.get("spend_limit_period", "").strip() or "total"
    return values


def _checked(body: dict[str, Any], type_: type[Any]) -> Any:
    try:
        return convert(body, type_)
    except InvalidRequest as exc:
        label = _LABELS.get(exc.param or "", exc.param or "a field")
        raise InvalidRequest(f"{label}: {exc.message}", param=exc.param) from exc


def key_form(fields: dict[str, str]) -> tuple[KeyCreate, int | None]:
    """The create-key form as the admin API's `KeyCreate`, and the spend limit in nano-USD."""
    body = {"name": fields.get("name", "").strip() or "default", **_limit_values(fields)}
    created: KeyCreate = _checked(body, KeyCreate)
    return created, usd_nanos(created.spend_limit_usd, "spend_limit_usd")


def limits_form(fields: dict[str, str]) -> dict[str, Any]:
    """A key's limits form as the columns a PATCH of all of them sets (empty: no limit)."""
    update: KeyUpdate = _checked(_limit_values(fields), KeyUpdate)
    return patch_columns(update.given(), KEY_MONEY)


class DayRange(Struct, frozen=True):
    """Whole UTC days [first_day, end_day): `from` and `to` as GET /v1/usage reads them (to excluded)."""

    first_day: int
    end_day: int

    @property
    def days(self) -> range:
        return range(self.first_day, self.end_day)

    @property
    def from_us(self) -> int:
        return self.first_day * US_PER_DAY

    @property
    def to_us(self) -> int:
        return self.end_day * US_PER_DAY


def _day(raw: str, param: str) -> int:
    text = raw.strip()
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text).toordinal() - date(1970, 1, 1).toordinal()
    except ValueError as exc:
        raise InvalidRequest(f"{param} must be a date such as 2026-01-31.", param=param) from exc


def parse_day_range(query: dict[str, str], today: int, max_days: int, default_days: int = 30) -> DayRange:
    """`from`/`to` (YYYY-MM-DD, UTC); by default the last `default_days` days, today included."""
    end = _day(query["to"], "to") if query.get("to") else today + 1
    first = _day(query["from"], "from") if query.get("from") else end - default_days
    if first >= end:
        raise InvalidRequest("from must be before to (to is the first day not shown).", param="from")
    if end - first > max_days:
        raise InvalidRequest(f"The period may span at most {max_days} days.", param="from")
    return DayRange(first, end)
