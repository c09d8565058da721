"""The money events of SPEC §7, decided inside the ledger transaction that causes them.

Each is sent once per crossing, remembered on the workspace or key row in
the same transaction as the event itself:

- `balance.low`: a debit or an adjustment leaves the available balance below
  the workspace's `low_balance_usd`; re-armed when a credit lifts it back to
  the threshold or above, or the threshold is changed.
- `balance.exhausted`: a request was refused with 402; re-armed by any credit.
- `spend_limit.reached`: a key's spend limit refused a request; once per
  limit period (day, month, or ever for `total`), re-armed when the limit is
  changed.
- `credit.added`: every new credit (not an idempotent replay).
"""

from __future__ import annotations

from tollway.events import Outbox
from tollway.ledger.chain import Entry
from tollway.ledger.driver import Sql
from tollway.ledger.sql import statement
from tollway.money import format_usd

__all__ = ["after_adjustment", "after_credit", "after_debit", "exhausted", "spend_limit_reached"]

_LOW = statement("SELECT low_balance_nano, low_balance_notified FROM workspaces WHERE id = $1")
_MARK_LOW = statement("UPDATE workspaces SET low_balance_notified = true WHERE id = $1")
_MARK_EXHAUSTED = statement("UPDATE workspaces SET exhausted_notified = true WHERE id = $1")
_MARK_SPEND = statement("UPDATE api_keys SET spend_notified_period = $2 WHERE id = $1")
# A credit re-arms balance.exhausted always, and balance.low once the balance is back at the threshold.
_REARM = statement(
    "UPDATE workspaces SET exhausted_notified = false,"
    " low_balance_notified ="
    " (low_balance_notified AND low_balance_nano IS NOT NULL AND $2 < low_balance_nano)"
    " WHERE id = $1 AND (exhausted_notified OR low_balance_notified)"
)


def entry_id(entry: Entry) -> str:
    """The id the API gives a ledger entry."""
    return f"le_{entry.workspace_id.removeprefix('ws_')}_{entry.ws_seq}"


def _balances(entry: Entry) -> dict[str, str]:
    return {
        "balance_usd": format_usd(entry.balance_nano),
        "held_usd": format_usd(entry.held_nano),
        "available_usd": format_usd(entry.balance_nano - entry.held_nano),
    }


async def _low(sql: Sql, outbox: Outbox, entry: Entry, request_id: str | None) -> None:
    row = await sql.one(_LOW, entry.workspace_id)
    if row is None or row[0] is None or row[1]:
        return
    threshold = int(row[0])
    if entry.balance_nano - entry.held_nano >= threshold:
        return
    await sql.run(_MARK_LOW, entry.workspace_id)
    data: dict[str, object] = {"workspace_id": entry.workspace_id, "low_balance_usd": format_usd(threshold)}
    data.update(_balances(entry))
    if request_id is not None:
        data["request_id"] = request_id
    await outbox.emit(sql, "balance.low", entry.workspace_id, data)


async def after_debit(sql: Sql, outbox: Outbox, entry: Entry, threshold: int | None, request_id: str) -> None:
    """After a settlement: `threshold` is the one read at reservation, a cheap first test."""
    if threshold is not None and entry.balance_nano - entry.held_nano < threshold:
        await _low(sql, outbox, entry, request_id)


async def after_adjustment(sql: Sql, outbox: Outbox, entry: Entry) -> None:
    await _low(sql, outbox, entry, None)


async def after_credit(sql: Sql, outbox: Outbox, entry: Entry) -> None:
    await sql.run(_REARM, entry.workspace_id, entry.balance_nano - entry.held_nano)
    data: dict[str, object] = {
        "workspace_id": entry.workspace_id,
        "entry_id": entry_id(entry),
        "amount_usd": format_usd(entry.amount_nano),
        "idempotency_key": entry.idempotency_key,
        "note": entry.note,
    }
    data.update(_balances(entry))
    await outbox.emit(sql, "credit.added", entry.workspace_id, data)


async def exhausted(
    sql: Sql, outbox: Outbox, workspace_id: str, key_id: str, request_id: str, needed: int, available: int
) -> None:
    """A request got 402 (the caller checked the workspace was not already notified)."""
    await sql.run(_MARK_EXHAUSTED, workspace_id)
    await outbox.emit(
        sql,
        "balance.exhausted",
        workspace_id,
        {
            "workspace_id": workspace_id,
            "key_id": key_id,
            "request_id": request_id,
            "needed_usd": format_usd(needed),
            "available_usd": format_usd(available),
        },
    )


async def spend_limit_reached(
    sql: Sql,
    outbox: Outbox,
    *,
    workspace_id: str,
    key_id: str,
    request_id: str,
    limit: int,
    period: str,
    period_mark: int,
    spent: int,
) -> None:
    """A key's spend limit refused a request, the first time in period `period_mark`."""
    await sql.run(_MARK_SPEND, key_id, period_mark)
    await outbox.emit(
        sql,
        "spend_limit.reached",
        workspace_id,
        {
            "workspace_id": workspace_id,
            "key_id": key_id,
            "request_id": request_id,
            "spend_limit_usd": format_usd(limit),
            "spend_limit_period": period,
            "spent_usd": format_usd(spent),
        },
    )
