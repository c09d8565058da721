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
from tollway.api.schemas import (
    KEY_MONEY,
    WORKSPACE_MONEY,
    BalanceRead,
    EntryRead,
    KeyCreate,
    KeyRead,
    KeyUpdate,
    WorkspaceCreate,
    WorkspaceRead,
    WorkspaceUpdate,
    patch_columns,
    usd_nanos,
)
from tollway.billing.credits import credit
from tollway.config import Settings
from tollway.db import open_existing
from tollway.errors import APIError, TollwayError
from tollway.events import Outbox
from tollway.events.delivery import subscriptions
from tollway.events.listing import EventLog
from tollway.ledger import Balance, Ledger
from tollway.limits import LIMIT_FIELDS
from tollway.money import MoneyError, parse_usd
from tollway.reports.service import Reports
from tollway.validation import ascii_int, convert

__all__ = ["add_admin_parser", "run_admin"]


def add_admin_parser(commands: Any, handler: Callable[[argparse.Namespace], int]) -> None:
    admin = commands.add_parser("admin", help="manage workspaces and keys (prints JSON)")
    admin.add_argument("--config")
    admin.set_defaults(run=handler)
    nouns = admin.add_subparsers(dest="noun", required=True)

    workspace = nouns.add_parser("workspace", help="workspaces").add_subparsers(dest="verb", required=True)
    ws_create = workspace.add_parser("create")
    ws_create.add_argument("name")
    _limit_options(ws_create, low_balance=True)
    workspace.add_parser("list")
    workspace.add_parser("get").add_argument("workspace_id")
    ws_update = workspace.add_parser("update", help="change a workspace (PATCH); 'none' lifts a limit")
    ws_update.add_argument("workspace_id")
    ws_update.add_argument("--name")
    _limit_options(ws_update, low_balance=True, lift=True)

    key = nouns.add_parser("key", help="API keys").add_subparsers(dest="verb", required=True)
    create = key.add_parser("create")
    create.add_argument("workspace_id")
    create.add_argument("--name", default="default")
    create.add_argument("--spend-limit", dest="spend_limit", help="USD, decimal string")
    create.add_argument("--period", choices=("total", "day", "month"), default="total")
    _limit_options(create)
    key.add_parser("list").add_argument("workspace_id")
    key_update = key.add_parser("update", help="change a key (PATCH); 'none' lifts a limit")
    key_update.add_argument("key_id")
    key_update.add_argument("--name")
    key_update.add_argument("--spend-limit", dest="spend_limit_usd", help="USD, decimal string, or none")
    key_update.add_argument("--period", dest="spend_limit_period", choices=("total", "day", "month"))
    _limit_options(key_update, lift=True)
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

    events = nouns.add_parser("events", help="webhook events, newest first, with their delivery state")
    events.set_defaults(verb="list")
    events.add_argument("--limit", help="1 to 100 (default 20)")
    events.add_argument("--cursor", help="next_cursor of the previous page")
    events.add_argument("--type", help="one event type, e.g. credit.added")
    events.add_argument("--workspace", dest="workspace_id", help="one workspace's events")


def _limit_options(parser: argparse.ArgumentParser, *, low_balance: bool = False, lift: bool = False) -> None:
    """--requests-per-minute, --tokens-per-minute, --max-concurrent (and --low-balance for workspaces)."""
    none = " or none" if lift else ""
    for name in LIMIT_FIELDS:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"a whole number{none}")
    if low_balance:
        parser.add_argument(
            "--low-balance", dest="low_balance_usd", help=f"USD: balance.low below this{none}"
        )


def _body(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    """The given options as a JSON-like body: numbers for limits, 'none' for null."""
    body: dict[str, Any] = {}
    for name in names:
        value = getattr(args, name, None)
        if value is None:
            continue
        if value.lower() in ("none", "null"):
            body[name] = None
        elif name in LIMIT_FIELDS:
            number = ascii_int(value, 19)
            if number is None:
                raise TollwayError(
                    f"--{name.replace('_', '-')} must be a whole number or none, not {value!r}"
                )
            body[name] = number
        else:
            body[name] = value
    return body


def _admin_error(exc: APIError) -> TollwayError:
    return TollwayError(exc.message)


async def run_admin(settings: Settings, args: argparse.Namespace) -> Any:
    engine = await open_existing(settings.config.database.url)
    try:
        args.reports = Reports(engine, settings.config.reports.max_range_days)
        args.events = EventLog(engine)
        # Events caused here are delivered by the running servers, to the webhooks configured.
        args.outbox = Outbox(subscriptions(settings.config.webhooks))
        return msgspec.to_builtins(await _dispatch(AccountStore(engine, args.outbox), Ledger(engine), args))
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
            try:
                body = convert(
                    {"name": args.name, **_body(args, (*LIMIT_FIELDS, "low_balance_usd"))}, WorkspaceCreate
                )
                low = usd_nanos(body.low_balance_usd, "low_balance_usd")
            except APIError as exc:
                raise _admin_error(exc) from exc
            workspace = await store.create_workspace(body.name, limits=body.limits(), low_balance_nano=low)
            return WorkspaceRead.of(workspace, Balance(0, 0))
        case "workspace", "update":
            await _workspace(store, args.workspace_id)
            try:
                fields = ("name", *LIMIT_FIELDS, "low_balance_usd")
                columns = patch_columns(
                    convert(_body(args, fields), WorkspaceUpdate).given(), WORKSPACE_MONEY
                )
            except APIError as exc:
                raise _admin_error(exc) from exc
            updated = await store.update_workspace(args.workspace_id, columns)
            assert updated is not None
            return WorkspaceRead.of(updated, await ledger.balance(updated.id))
        case "key", "update":
            try:
                options = ("name", "spend_limit_usd", "spend_limit_period", *LIMIT_FIELDS)
                columns = patch_columns(convert(_body(args, options), KeyUpdate).given(), KEY_MONEY)
            except APIError as exc:
                raise _admin_error(exc) from exc
            key = await store.update_key(args.key_id, columns)
            if key is None:
                raise TollwayError(f"no API key with id {args.key_id!r}")
            return KeyRead.of(key)
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
                result = await credit(
                    ledger, args.workspace_id, amount, args.idempotency_key, args.note, args.outbox
                )
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
            try:
                limits = convert(_body(args, LIMIT_FIELDS), KeyCreate).limits()
            except APIError as exc:
                raise _admin_error(exc) from exc
            created = await store.create_key(args.workspace_id, args.name, limit, args.period, limits)
            return KeyRead.of(created.key, created.secret)
        case "key", "list":
            return {
                "object": "list",
                "data": [KeyRead.of(k) for k in await store.list_keys(args.workspace_id)],
            }
        case "events", "list":
            names = ("limit", "cursor", "type", "workspace_id")
            query = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
            try:
                return await args.events.page(query)
            except APIError as exc:
                raise TollwayError(exc.message) from exc
        case "key", "revoke":
            key = await store.revoke_key(args.key_id)
            if key is None:
                raise TollwayError(f"no API key with id {args.key_id!r}")
            return KeyRead.of(key)
    raise TollwayError(f"unknown admin command {args.noun} {args.verb}")
