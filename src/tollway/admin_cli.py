"""`tollway admin …`: the admin API's operations for the shell, straight on the database.

It needs no running server and no admin token: whoever can read the
configuration and reach the database is an administrator already.  Output is
the same JSON the HTTP admin API returns.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import msgspec

from tollway.accounts import AccountStore, Workspace
from tollway.api.schemas import BalanceRead, EntryRead, KeyRead, WorkspaceRead
from tollway.billing.credits import credit
from tollway.config import Settings
from tollway.db import open_existing
from tollway.errors import APIError, TollwayError
from tollway.ledger import Balance, Ledger
from tollway.money import MoneyError, parse_usd
from tollway.reports.service import Reports

__all__ = ["add_admin_parser", "run_admin"]


def add_admin_parser(commands: Any, handler: Callable[[argparse.Namespace], int]) -> None:
    admin = commands.add_parser("admin", help="manage workspaces and keys (prints JSON)")
    admin.add_argument("--config")
    admin.set_defaults(run=handler)
    nouns = admin.add_subparsers(dest="noun", required=True)

    workspace = nouns.add_parser("workspace", help="workspaces").add_subparsers(dest="verb", required=True)
    workspace.add_parser("create").add_argument("name")
    workspace.add_parser("list")
    workspace.add_parser("get").add_argument("workspace_id")

    key = nouns.add_parser("key", help="API keys").add_subparsers(dest="verb", required=True)
    create = key.add_parser("create")
    create.add_argument("workspace_id")
    create.add_argument("--name", default="default")
    create.add_argument("--spend-limit", dest="spend_limit", help="USD, decimal string")
    create.add_argument("--period", choices=("total", "day", "month"), default="total")
    key.add_parser("list").add_argument("workspace_id")
    key.add_parser("revoke").add_argument("key_id")

    credit_parser = nouns.add_parser("credit", help="credit a workspace (negative: refund/adjustment)")
    credit_parser.set_defaults(verb="add")
    credit_parser.add_argument("workspace_id")
    credit_parser.add_argument("amount_usd", help="decimal string, e.g. 25.00 or -3.50")
    credit_parser.add_argument("--idempotency-key", dest="idempotency_key")
    credit_parser.add_argument("--note")

    usage = nouns.add_parser("usage", help="usage report for one workspace or all of them")
    usage.set_defaults(verb="report")
    usage.add_argument("--workspace", dest="workspace_id", help="one workspace (default: all, per workspace)")
    usage.add_argument("--from", dest="from_", metavar="FROM", help="ISO 8601 start (default: 30 days ago)")
    usage.add_argument("--to", help="ISO 8601 end, exclusive (default: now)")
    usage.add_argument("--model")
    usage.add_argument("--key-id", dest="key_id")
    usage.add_argument("--format", choices=("json", "table"), default="json")

    balance = nouns.add_parser("balance", help="a workspace's balance, held and available USD")
    balance.set_defaults(verb="show")
    balance.add_argument("workspace_id")


async def run_admin(settings: Settings, args: argparse.Namespace) -> Any:
    engine = await open_existing(settings.config.database.url)
    try:
        args.reports = Reports(engine, settings.config.reports.max_range_days)
        return msgspec.to_builtins(await _dispatch(AccountStore(engine), Ledger(engine), args))
    finally:
        await engine.dispose()


async def _usage(store: AccountStore, args: argparse.Namespace) -> Any:
    reports: Reports = args.reports
    query = {
        k: v
        for k, v in (("from", args.from_), ("to", args.to), ("model", args.model), ("key_id", args.key_id))
        if v is not None
    }
    try:
        if args.workspace_id is not None:
            await _workspace(store, args.workspace_id)
            return await reports.summary(
                args.workspace_id, query, f"/admin/workspaces/{args.workspace_id}/usage"
            )
        report = await reports.summary(None, query, "/admin/usage")
    except APIError as exc:
        raise TollwayError(exc.message) from exc
    names = await reports.workspace_names()
    for row in report["breakdown"]:
        row["workspace_name"] = names.get(row["workspace_id"])
    return report


def usage_table(report: Any) -> str:
    """A usage report as aligned text columns, for people."""
    columns = [
        "workspace_name",
        "operation_type",
        "model",
        "calls",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "cost_usd",
    ]
    rows = [[str(row.get(c, "")) for c in columns] for row in report["breakdown"]]
    total = report["totals"]
    rows.append(["TOTAL", "", "", *(str(total[c]) for c in columns[3:])])
    if not any(row.get("workspace_name") for row in report["breakdown"]):
        columns, rows = columns[1:], [r[1:] for r in rows]
        rows[-1][0] = "TOTAL"
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(columns)]
    period = report["period"]
    lines = [f"usage from {period['from']} to {period['to']}"]
    lines.append("  ".join(h.ljust(w) for h, w in zip(columns, widths, strict=True)))
    for row in rows:
        lines.append(
            "  ".join(
                cell.rjust(w) if i > 0 else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(lines) + "\n"


async def _workspace(store: AccountStore, workspace_id: str) -> Workspace:
    workspace = await store.get_workspace(workspace_id)
    if workspace is None:
        raise TollwayError(f"no workspace with id {workspace_id!r}")
    return workspace


async def _dispatch(store: AccountStore, ledger: Ledger, args: argparse.Namespace) -> Any:
    match args.noun, args.verb:
        case "workspace", "create":
            return WorkspaceRead.of(await store.create_workspace(args.name), Balance(0, 0))
        case "workspace", "list":
            workspaces = await store.list_workspaces()
            data = [WorkspaceRead.of(w, await ledger.balance(w.id)) for w in workspaces]
            return {"object": "list", "data": data}
        case "workspace", "get":
            workspace = await _workspace(store, args.workspace_id)
            return WorkspaceRead.of(workspace, await ledger.balance(workspace.id))
        case "usage", "report":
            return await _usage(store, args)
        case "balance", "show":
            workspace = await _workspace(store, args.workspace_id)
            return BalanceRead.of(await ledger.balance(workspace.id))
        case "credit", "add":
            await _workspace(store, args.workspace_id)
            try:
                amount = parse_usd(args.amount_usd, allow_negative=True)
            except MoneyError as exc:
                raise TollwayError(f"amount {exc}") from exc
            try:
                result = await credit(ledger, args.workspace_id, amount, args.idempotency_key, args.note)
            except APIError as exc:
                raise TollwayError(exc.message) from exc
            return {
                "entry": EntryRead.of(result.entry),
                "balance": BalanceRead.of(result.entry_balance),
                "replayed": not result.created,
            }
        case "key", "create":
            if await store.get_workspace(args.workspace_id) is None:
                raise TollwayError(f"no workspace with id {args.workspace_id!r}")
            try:
                limit = None if args.spend_limit is None else parse_usd(args.spend_limit)
            except MoneyError as exc:
                raise TollwayError(f"--spend-limit {exc}") from exc
            created = await store.create_key(args.workspace_id, args.name, limit, args.period)
            return KeyRead.of(created.key, created.secret)
        case "key", "list":
            return {
                "object": "list",
                "data": [KeyRead.of(k) for k in await store.list_keys(args.workspace_id)],
            }
        case "key", "revoke":
            key = await store.revoke_key(args.key_id)
            if key is None:
                raise TollwayError(f"no API key with id {args.key_id!r}")
            return KeyRead.of(key)
    raise TollwayError(f"unknown admin command {args.noun} {args.verb}")
