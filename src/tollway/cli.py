"""The `tollway` command: serve, mock-upstream, admin, db."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
from sqlalchemy.exc import SQLAlchemyError

from tollway.config import Settings, load_settings
from tollway.errors import ConfigError, TollwayError

__all__ = ["main"]

_encode = msgspec.json.Encoder()


def _print_json(value: Any) -> None:
    sys.stdout.write(msgspec.json.format(_encode.encode(value), indent=2).decode() + "\n")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None))


def _serve(args: argparse.Namespace) -> int:
    from tollway.serving.run import serve

    settings = _settings(args)
    server = settings.config.server
    return serve(
        settings,
        host=args.host or server.host,
        port=server.port if args.port is None else args.port,
        workers=args.workers or server.workers,
        access_log=args.access_log,
        log_format=args.log_format,
    )


async def _migrate(settings: Settings) -> None:
    from tollway.db import create_engine, prepare

    engine = create_engine(settings.config.database.url, pool_size=1)
    try:
        await prepare(engine, migrate=True)
    finally:
        await engine.dispose()


def _mock_upstream(args: argparse.Namespace) -> int:
    from tollway.mock_upstream import run

    run(host=args.host, port=args.port)
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    settings = _settings(args)
    asyncio.run(_migrate(settings))
    _print_json({"database": _redact_url(settings.config.database.url), "revision": "head"})
    return 0


def _redact_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest


def _ledger_verify(args: argparse.Namespace) -> int:
    from tollway.db import open_existing
    from tollway.ledger.verify import verify_ledger

    settings = _settings(args)

    async def run() -> int:
        engine = await open_existing(settings.config.database.url)
        try:
            report = await verify_ledger(engine)
        finally:
            await engine.dispose()
        summary = (
            f"{report.workspaces} workspace(s), {report.entries} entries, {report.usage_records} usage "
            f"record(s), {report.open_reservations} open reservation(s)"
        )
        if report.ok:
            print(
                f"ledger verify: consistent: {summary}; balances, running totals, hash chains, "
                "reservations and debit/usage pairs all check out"
            )
            return 0
        print(f"ledger verify: {len(report.mismatches)} mismatch(es) in {summary}:")
        for mismatch in report.mismatches:
            print(f"  {mismatch}")
        return 1

    return asyncio.run(run())


def _rebuild_rollup(args: argparse.Namespace) -> int:
    from tollway.db import open_existing
    from tollway.ledger.rebuild import rebuild_rollup

    settings = _settings(args)

    async def run() -> int:
        engine = await open_existing(settings.config.database.url)
        try:
            return await rebuild_rollup(engine)
        finally:
            await engine.dispose()

    _print_json({"usage_daily_rows": asyncio.run(run())})
    return 0


def _admin(args: argparse.Namespace) -> int:
    from tollway.admin_cli import run_admin

    settings = _settings(args)
    result = asyncio.run(run_admin(settings, args))
    if getattr(args, "format", "json") == "table":
        from tollway.admin_cli import usage_table

        sys.stdout.write(usage_table(result))
    else:
        _print_json(result)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tollway", description="OpenAI-compatible chat proxy on prepaid credit"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the proxy")
    serve.add_argument("--config", help="TOML configuration file (default: $TOLLWAY_CONFIG or built-in demo)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument("--access-log", action="store_true", help="uvicorn's own access log too (slower)")
    serve.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="log lines as text or JSON objects (default: [server] log_format, else text)",
    )
    serve.set_defaults(run=_serve)

    mock = commands.add_parser("mock-upstream", help="run the deterministic fake upstream model")
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=8001)
    mock.set_defaults(run=_mock_upstream)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_upgrade = db_commands.add_parser("upgrade", help="apply schema migrations")
    db_upgrade.add_argument("--config")
    db_upgrade.set_defaults(run=_db_upgrade)

    ledger = commands.add_parser("ledger", help="ledger maintenance")
    ledger_commands = ledger.add_subparsers(dest="ledger_command", required=True)
    verify = ledger_commands.add_parser("verify", help="recompute and check every derived figure")
    verify.add_argument("--config")
    verify.set_defaults(run=_ledger_verify)
    rebuild = ledger_commands.add_parser(
        "rebuild-rollup", help="recompute the daily usage rollup from the records"
    )
    rebuild.add_argument("--config")
    rebuild.set_defaults(run=_rebuild_rollup)

    from tollway.admin_cli import add_admin_parser

    add_admin_parser(commands, _admin)
    return parser


def _database_url(args: argparse.Namespace) -> str:
    try:
        return _settings(args).config.database.url
    except TollwayError:
        return "<the configured database>"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int | Awaitable[int]] = args.run
    try:
        result = run(args)
    except ConfigError as exc:
        print(f"tollway: configuration error: {exc}", file=sys.stderr)
        return 2
    except TollwayError as exc:
        print(f"tollway: {exc}", file=sys.stderr)
        return 1
    except (SQLAlchemyError, OSError) as exc:  # the database failed under a command: say so, briefly
        from tollway.db import unavailable

        print(f"tollway: {unavailable(_database_url(args), exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
