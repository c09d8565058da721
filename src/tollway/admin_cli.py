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

from tollway.accounts import AccountStore
from tollway.api.schemas import KeyRead, WorkspaceRead
from tollway.config import Settings
from tollway.db import create_engine, upgrade
from tollway.errors import TollwayError
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


async def run_admin(settings: Settings, args: argparse.Namespace) -> Any:
    engine = create_engine(settings.config.database.url)
    try:
        await upgrade(engine)
        return msgspec.to_builtins(await _dispatch(AccountStore(engine), args))
    finally:
        await engine.dispose()


async def _dispatch(store: AccountStore, args: argparse.Namespace) -> Any:
    match args.noun, args.verb:
        case "workspace", "create":
            return WorkspaceRead.of(await store.create_workspace(args.name))
        case "workspace", "list":
            return {"object": "list", "data": [WorkspaceRead.of(w) for w in await store.list_workspaces()]}
        case "workspace", "get":
            workspace = await store.get_workspace(args.workspace_id)
            if workspace is None:
                raise TollwayError(f"no workspace with id {args.workspace_id!r}")
            return WorkspaceRead.of(workspace)
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
