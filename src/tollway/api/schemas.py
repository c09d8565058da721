"""Admin wire types: separate Create and Read shapes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from tollway.accounts import ApiKey, Workspace
from tollway.clock import iso
from tollway.errors import InvalidRequest
from tollway.ledger import Balance, Entry
from tollway.limits import LIMIT_FIELDS, RateLimits
from tollway.money import MoneyError, format_usd, parse_usd

__all__ = [
    "KEY_MONEY",
    "WORKSPACE_MONEY",
    "BalanceRead",
    "CreditCreate",
    "EntryRead",
    "KeyCreate",
    "KeyRead",
    "KeyUpdate",
    "RateLimitsRead",
    "WorkspaceCreate",
    "WorkspaceRead",
    "WorkspaceUpdate",
    "patch_columns",
    "usd_nanos",
]

Name = Annotated[str, Meta(min_length=1, max_length=200)]

# A PATCH body's money fields and the nano-dollar columns they set.
KEY_MONEY = {"spend_limit_usd": "spend_limit_nano"}
WORKSPACE_MONEY = {"low_balance_usd": "low_balance_nano"}


def usd_nanos(value: str | None, param: str) -> int | None:
    """A non-negative USD decimal string as nanos; None stays None (no limit)."""
    if value is None:
        return None
    try:
        return parse_usd(value)
    except MoneyError as exc:
        raise InvalidRequest(f"{param} {exc}.", param=param) from exc


def patch_columns(given: dict[str, Any], money: dict[str, str]) -> dict[str, Any]:
    """A PATCH body's fields as the columns they change (`*_usd` become nano-dollar columns)."""
    columns = dict(given)
    for field, column in money.items():
        if field in columns:
            columns[column] = usd_nanos(columns.pop(field), field)
    return columns


Period = Literal["total", "day", "month"]
# Requests (per minute, or in flight) and tokens per minute; 0 refuses every request (a paused key).
Count = Annotated[int, Meta(ge=0, le=1_000_000_000)]
Tokens = Annotated[int, Meta(ge=0, le=2**53 - 1)]


class WorkspaceCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    low_balance_usd: str | None = None
    requests_per_minute: Count | None = None
    tokens_per_minute: Tokens | None = None
    max_concurrent: Count | None = None

    def limits(self) -> RateLimits:
        return RateLimits(**{name: getattr(self, name) for name in LIMIT_FIELDS})


class KeyCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name = "default"
    spend_limit_usd: str | None = None
    spend_limit_period: Period = "total"
    requests_per_minute: Count | None = None
    tokens_per_minute: Tokens | None = None
    max_concurrent: Count | None = None

    def limits(self) -> RateLimits:
        return RateLimits(**{name: getattr(self, name) for name in LIMIT_FIELDS})


class KeyUpdate(Struct, forbid_unknown_fields=True, kw_only=True):
    """PATCH: a field left out stays as it is; `null` lifts a limit."""

    name: Name | UnsetType = UNSET
    spend_limit_usd: str | UnsetType | None = UNSET
    spend_limit_period: Period | UnsetType = UNSET
    requests_per_minute: Count | UnsetType | None = UNSET
    tokens_per_minute: Tokens | UnsetType | None = UNSET
    max_concurrent: Count | UnsetType | None = UNSET

    def given(self) -> dict[str, Any]:
        return {
            name: getattr(self, name) for name in self.__struct_fields__ if getattr(self, name) is not UNSET
        }


class WorkspaceUpdate(Struct, forbid_unknown_fields=True, kw_only=True):
    """PATCH: a field left out stays as it is; `null` lifts a limit or the low-balance threshold."""

    name: Name | UnsetType = UNSET
    low_balance_usd: str | UnsetType | None = UNSET
    requests_per_minute: Count | UnsetType | None = UNSET
    tokens_per_minute: Tokens | UnsetType | None = UNSET
    max_concurrent: Count | UnsetType | None = UNSET

    def given(self) -> dict[str, Any]:
        return {
            name: getattr(self, name) for name in self.__struct_fields__ if getattr(self, name) is not UNSET
        }


class RateLimitsRead(Struct, kw_only=True):
    """null: no limit of that kind."""

    requests_per_minute: int | None
    tokens_per_minute: int | None
    max_concurrent: int | None

    @classmethod
    def of(cls, limits: RateLimits) -> RateLimitsRead:
        return cls(**limits.columns())


class WorkspaceRead(Struct, kw_only=True, tag_field="object", tag="workspace"):
    id: str
    name: str
    created_at: str
    balance: BalanceRead
    low_balance_usd: str | None
    rate_limits: RateLimitsRead

    @classmethod
    def of(cls, workspace: Workspace, balance: Balance) -> WorkspaceRead:
        low = workspace.low_balance_nano
        return cls(
            id=workspace.id,
            name=workspace.name,
            created_at=iso(workspace.created_at),
            balance=BalanceRead.of(balance),
            low_balance_usd=None if low is None else format_usd(low),
            rate_limits=RateLimitsRead.of(workspace.limits),
        )


class KeyRead(Struct, kw_only=True, omit_defaults=True, tag_field="object", tag="api_key"):
    id: str
    workspace_id: str
    name: str
    key_prefix: str
    spend_limit_usd: str | None
    spend_limit_period: str
    rate_limits: RateLimitsRead
    created_at: str
    revoked: bool
    revoked_at: str | None = None
    key: str | None = None  # the secret, present only in the creation response

    @classmethod
    def of(cls, key: ApiKey, secret: str | None = None) -> KeyRead:
        return cls(
            id=key.id,
            workspace_id=key.workspace_id,
            name=key.name,
            key_prefix=key.key_prefix,
            spend_limit_usd=None if key.spend_limit_nano is None else format_usd(key.spend_limit_nano),
            spend_limit_period=key.spend_limit_period,
            rate_limits=RateLimitsRead.of(key.limits),
            created_at=iso(key.created_at),
            revoked=key.revoked_at is not None,
            revoked_at=None if key.revoked_at is None else iso(key.revoked_at),
            key=secret,
        )


class CreditCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    amount_usd: str
    idempotency_key: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    note: Annotated[str, Meta(max_length=500)] | None = None


class EntryRead(Struct, kw_only=True, tag_field="object", tag="ledger.entry"):
    id: str
    type: str
    amount_usd: str
    held_change_usd: str
    balance_usd: str
    held_usd: str
    created_at: str
    request_id: str | None = None
    key_id: str | None = None
    idempotency_key: str | None = None
    note: str | None = None

    @classmethod
    def of(cls, entry: Entry) -> EntryRead:
        return cls(
            id=f"le_{entry.workspace_id.removeprefix('ws_')}_{entry.ws_seq}",
            type=entry.kind,
            amount_usd=format_usd(entry.amount_nano),
            held_change_usd=format_usd(entry.hold_nano),
            balance_usd=format_usd(entry.balance_nano),
            held_usd=format_usd(entry.held_nano),
            created_at=iso(entry.created_at),
            request_id=entry.reservation_id,
            key_id=entry.key_id,
            idempotency_key=entry.idempotency_key,
            note=entry.note,
        )


class BalanceRead(Struct, kw_only=True):
    balance_usd: str
    held_usd: str
    available_usd: str
    currency: str = "USD"

    @classmethod
    def of(cls, balance: Balance) -> BalanceRead:
        return cls(
            balance_usd=format_usd(balance.balance_nano),
            held_usd=format_usd(balance.held_nano),
            available_usd=format_usd(balance.available_nano),
        )
