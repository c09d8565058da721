"""Wire types of the client routes and the admin lists: what the handlers return, and their errors.

Money is a nine-place decimal string in fields ending `_usd`.  Field order is the order on the
wire.  `ErrorResponse` and `AnthropicErrorResponse` document the two error shapes
(`tollway.errors.error_body`, `surfaces.anthropic_messages.anthropic_error` write them).
"""

from __future__ import annotations

from typing import Literal

from msgspec import Struct

from tollway.api.schemas import BalanceRead, EntryRead, KeyRead, WorkspaceRead
from tollway.clock import iso
from tollway.pricing import Price

__all__ = [
    "AnthropicErrorDetail",
    "AnthropicErrorResponse",
    "CreditRead",
    "EntryPage",
    "ErrorDetail",
    "ErrorResponse",
    "Health",
    "KeyList",
    "ModelList",
    "ModelRead",
    "PriceList",
    "PriceRead",
    "WorkspaceList",
]


class Health(Struct, kw_only=True):
    status: Literal["ok"]


class ModelRead(Struct, kw_only=True):
    """A served model, in OpenAI's model format."""

    id: str
    object: Literal["model"]
    created: int
    owned_by: str

    @classmethod
    def of(cls, name: str) -> ModelRead:
        return cls(id=name, object="model", created=0, owned_by="tollway")


class ModelList(Struct, kw_only=True, tag_field="object", tag="list"):
    data: list[ModelRead]


class PriceRead(Struct, kw_only=True):
    """The rates in force for a model, USD per million tokens (decimal strings), and a per-request fee."""

    model: str
    currency: Literal["USD"]
    unit: Literal["per_million_tokens"]
    input: str
    cached_input: str
    cache_write: str
    cache_write_1h: str
    output: str
    reasoning: str
    request: str
    effective_from: str
    price_id: str

    @classmethod
    def of(cls, price: Price) -> PriceRead:
        return cls(
            model=price.model,
            currency="USD",
            unit="per_million_tokens",
            input=str(price.input),
            cached_input=str(price.cached_input),
            cache_write=str(price.cache_write),
            cache_write_1h=str(price.cache_write_1h),
            output=str(price.output),
            reasoning=str(price.reasoning),
            request=str(price.request),
            effective_from=iso(price.effective_from_us),
            price_id=price.id,
        )


class PriceList(Struct, kw_only=True, tag_field="object", tag="list"):
    data: list[PriceRead]


class EntryPage(Struct, kw_only=True, tag_field="object", tag="list"):
    """Ledger entries newest first; pass `next_cursor` as `cursor` for the next page."""

    data: list[EntryRead]
    has_more: bool
    next_cursor: str | None


class WorkspaceList(Struct, kw_only=True, tag_field="object", tag="list"):
    data: list[WorkspaceRead]


class KeyList(Struct, kw_only=True, tag_field="object", tag="list"):
    data: list[KeyRead]


class CreditRead(Struct, kw_only=True):
    """The ledger entry the credit wrote (for a replayed idempotency key, the first one), and the balance."""

    entry: EntryRead
    balance: BalanceRead


class ErrorDetail(Struct, kw_only=True):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(Struct, kw_only=True):
    """OpenAI's error shape; `code` says what happened, `param` names the field or parameter at fault."""

    error: ErrorDetail


class AnthropicErrorDetail(Struct, kw_only=True):
    type: str
    message: str


class AnthropicErrorResponse(Struct, kw_only=True, tag_field="type", tag="error"):
    """Anthropic's error shape, on `/v1/messages` and `/v1/messages/count_tokens`."""

    error: AnthropicErrorDetail
