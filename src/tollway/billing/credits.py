"""Crediting a workspace: idempotent, exact, never into a negative available balance."""

from __future__ import annotations

from msgspec import Struct

from tollway.billing import alerts
from tollway.errors import Conflict, InvalidRequest
from tollway.events import Outbox
from tollway.ledger import Balance, Draft, Entry, Ledger, LedgerWriter
from tollway.money import MAX_BALANCE_NANOS, format_usd

__all__ = ["CreditResult", "credit"]


class CreditResult(Struct, frozen=True):
    entry: Entry
    # False when the idempotency key was seen before: nothing was credited this time.
    created: bool

    @property
    def entry_balance(self) -> Balance:
        """The balance right after the credit (the same figures on a replay)."""
        return Balance(self.entry.balance_nano, self.entry.held_nano)


async def credit(
    ledger: Ledger,
    workspace_id: str,
    amount_nano: int,
    idempotency_key: str | None,
    note: str | None,
    outbox: Outbox | None = None,
) -> CreditResult:
    """Credit (or, negative, adjust) a workspace; `credit.added` and `balance.low` go to `outbox`.

    Without one, the events are still recorded (with no webhook deliveries).
    """
    events = outbox or Outbox()
    if amount_nano == 0:
        raise InvalidRequest("amount_usd must not be zero.", param="amount_usd")
    if amount_nano < 0 and not (note and note.strip()):
        raise InvalidRequest("A negative amount (refund or adjustment) needs a note.", param="note")

    async def apply(writer: LedgerWriter) -> CreditResult:
        if idempotency_key is not None:
            first = await writer.credit_by_key(idempotency_key)
            if first is not None:
                if first.amount_nano != amount_nano:
                    raise Conflict(
                        "This idempotency_key was already used for a different amount.",
                        code="idempotency_key_reused",
                        param="idempotency_key",
                    )
                return CreditResult(first, created=False)
        head = await writer.head()
        if head.balance_nano + amount_nano > MAX_BALANCE_NANOS:
            raise InvalidRequest(
                f"This credit would take the balance past the maximum of ${format_usd(MAX_BALANCE_NANOS)} "
                f"(balance now ${format_usd(head.balance_nano)}).",
                code="balance_too_large",
                param="amount_usd",
            )
        if amount_nano < 0 and head.available_nano + amount_nano < 0:
            raise Conflict(
                "This adjustment would take the available balance below zero "
                "(funds are held by requests in flight or already spent).",
                code="insufficient_credit",
                param="amount_usd",
            )
        entry = await writer.append(
            Draft(
                workspace_id=workspace_id,
                kind="credit" if amount_nano > 0 else "adjustment",
                amount_nano=amount_nano,
                idempotency_key=idempotency_key,
                note=note,
            )
        )
        if amount_nano > 0:
            await alerts.after_credit(writer.sql, events, entry)
        else:
            await alerts.after_adjustment(writer.sql, events, entry)
        return CreditResult(entry, created=True)

    return await ledger.transact(workspace_id, apply, operation="credit")
