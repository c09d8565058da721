"""Admin wire types: separate Create and Read shapes."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct

from tollway.accounts import ApiKey, Workspace
from tollway.clock import iso
from tollway.ledger import Balance, Entry
from tollway.money import format_usd

__all__ = [
    "BalanceRead",
    "CreditCreate",
    "EntryRead",
    "KeyCreate",
    "KeyRead",
    "WorkspaceCreate",
    "WorkspaceRead",
]

Name = Annotated[str, Meta(min_length=1, max_length=200)]


class WorkspaceCreate(Struct, forbid_unknown_fields=True):
    name: Name


class KeyCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name = "default"
    spend_limit_usd: str | None = None
    spend_limit_period: Literal["total", "day", "month"] = "total"


class WorkspaceRead(Struct, kw_only=True, tag_field="object", tag="workspace"):
    id: str
    name: str
    created_at: str
    balance: BalanceRead

    @classmethod
    def of(cls, workspace: Workspace, balance: Balance) -> WorkspaceRead:
        return cls(
            id=workspace.id,
            name=workspace.name,
            created_at=iso(workspace.created_at),
            balance=BalanceRead.of(balance),
        )


class KeyRead(Struct, kw_only=True, omit_defaults=True, tag_field="object", tag="api_key"):
    id: str
    workspace_id: str
    name: str
    key_prefix: str
    spend_limit_usd: str | None
    spend_limit_period: str
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
