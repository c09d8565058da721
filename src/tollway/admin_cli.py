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
from tollway.db import create_engine, upgrade
from tollway.errors import APIError, TollwayError
from tollway.ledger import Balance, Ledger
from tollway.money import MoneyError, parse_usd

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

    balance = nouns.add_parser("balance", help="a workspace's balance, held and available USD")
    balance.set_defaults(verb="show")
    balance.add_argument("workspace_id")


async def run_admin(settings: Settings, args: argparse.Namespace) -> Any:
    engine = create_engine(settings.config.database.url)
    try:
        await upgrade(engine)
        return msgspec.to_builtins(await _dispatch(AccountStore(engine), Ledger(engine), args))
    finally:
        await engine.dispose()


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
