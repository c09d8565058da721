"""How one ledger entry follows the previous one: running figures and the hash link.

Pure functions, shared by the writer (to append) and `tollway ledger verify`
(to recompute), so both agree by construction.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import msgspec
from msgspec import Struct

__all__ = ["GENESIS", "Draft", "Entry", "Head", "KeyHead", "Kind", "chain", "entry_hash"]

GENESIS = "0" * 64
_encode = msgspec.json.Encoder().encode

Kind = Literal["credit", "adjustment", "reserve", "debit", "release"]


class Head(Struct, frozen=True):
    """A workspace's figures after its latest entry."""

    ws_seq: int = 0
    balance_nano: int = 0
    held_nano: int = 0
    hash: str = GENESIS

    @property
    def available_nano(self) -> int:
        return self.balance_nano - self.held_nano


class KeyHead(Struct, frozen=True):
    """A key's running totals after its latest entry."""

    spent_nano: int = 0
    held_nano: int = 0


class Draft(Struct, frozen=True, kw_only=True):
    """What a caller wants to append; `chain` adds the derived figures."""

    workspace_id: str
    kind: Kind
    amount_nano: int = 0  # moves the balance (credits +, debits -)
    hold_nano: int = 0  # moves what is reserved (reserve +, settle/release -)
    key_id: str | None = None
    reservation_id: str | None = None
    owner: str | None = None
    idempotency_key: str | None = None
    note: str | None = None
    # Stamped by the writer inside the workspace's lock, so time follows append order.
    created_at: int = 0


class Entry(Struct, frozen=True, kw_only=True):
    workspace_id: str
    ws_seq: int
    kind: str
    amount_nano: int
    hold_nano: int
    balance_nano: int
    held_nano: int
    key_id: str | None
    key_spent_nano: int | None
    key_held_nano: int | None
    reservation_id: str | None
    owner: str | None
    idempotency_key: str | None
    note: str | None
    created_at: int
    prev_hash: str
    hash: str
    id: int | None = None

    def head(self) -> Head:
        return Head(self.ws_seq, self.balance_nano, self.held_nano, self.hash)

    def key_head(self) -> KeyHead:
        return KeyHead(self.key_spent_nano or 0, self.key_held_nano or 0)


def entry_hash(entry: Entry) -> str:
    fields = (
        entry.prev_hash,
        entry.workspace_id,
        entry.ws_seq,
        entry.kind,
        entry.amount_nano,
        entry.hold_nano,
        entry.balance_nano,
        entry.held_nano,
        entry.key_id,
        entry.key_spent_nano,
        entry.key_held_nano,
        entry.reservation_id,
        entry.owner,
        entry.idempotency_key,
        entry.note,
        entry.created_at,
    )
    # JSON keeps the encoding unambiguous: None is not "", and no field can borrow another's text.
    return hashlib.sha256(_encode(fields)).hexdigest()


def chain(head: Head, key_head: KeyHead | None, draft: Draft, created_at: int | None = None) -> Entry:
    """The entry `draft` becomes when appended after `head` (and `key_head` for its key), stamped
    `created_at` if given (else the draft's)."""
    spent = held = None
    if draft.key_id is not None:
        base = key_head or KeyHead()
        # A debit is spending by the key; credits and adjustments carry no key.
        spent = base.spent_nano - draft.amount_nano if draft.kind == "debit" else base.spent_nano
        held = base.held_nano + draft.hold_nano
    entry = Entry(
        workspace_id=draft.workspace_id,
        ws_seq=head.ws_seq + 1,
        kind=draft.kind,
        amount_nano=draft.amount_nano,
        hold_nano=draft.hold_nano,
        balance_nano=head.balance_nano + draft.amount_nano,
        held_nano=head.held_nano + draft.hold_nano,
        key_id=draft.key_id,
        key_spent_nano=spent,
        key_held_nano=held,
        reservation_id=draft.reservation_id,
        owner=draft.owner,
        idempotency_key=draft.idempotency_key,
        note=draft.note,
        created_at=draft.created_at if created_at is None else created_at,
        prev_hash=head.hash,
        hash="",
    )
    return msgspec.structs.replace(entry, hash=entry_hash(entry))
