"""The admin API (SPEC §4), behind the admin bearer token."""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from tollway.accounts import Workspace
from tollway.api.openapi import documented, responds
from tollway.api.schemas import (
    KEY_MONEY,
    WORKSPACE_MONEY,
    BalanceRead,
    CreditCreate,
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
from tollway.api.wire import CreditRead, KeyList, WorkspaceList
from tollway.api.wire_reports import AllUsageSummary, PeriodQuery, UsageSummary
from tollway.billing.credits import credit
from tollway.errors import AuthenticationFailed, InvalidRequest, NotFound
from tollway.ledger import Balance
from tollway.money import MoneyError, parse_usd
from tollway.runtime import Runtime
from tollway.validation import convert, decode_object, is_id

__all__ = ["AdminController"]


def require_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    runtime: Runtime = connection.app.state.runtime
    expected = runtime.settings.admin_token
    if not expected:
        raise AuthenticationFailed(
            "The admin API is disabled: start tollway with TOLLWAY_ADMIN_TOKEN set.", code="admin_disabled"
        )
    scheme, _sep, token = (connection.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise AuthenticationFailed("Invalid admin token.", code="invalid_admin_token")


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def _workspace(runtime: Runtime, workspace_id: str) -> Workspace:
    workspace = await runtime.accounts.get_workspace(workspace_id) if is_id(workspace_id) else None
    if workspace is None:
        raise NotFound(f"No workspace with id '{workspace_id[:100]}'.", param="workspace_id")
    return workspace


class AdminController(Controller):
    path = "/admin"
    guards = [require_admin]
    tags = ["admin"]

    @post("/workspaces", status_code=201, summary="Create a workspace", opt=documented(body=WorkspaceCreate))
    async def create_workspace(self, request: Request[Any, Any, Any]) -> WorkspaceRead:
        body = convert(decode_object(await request.body()), WorkspaceCreate)
        workspace = await _runtime(request).accounts.create_workspace(
            body.name,
            limits=body.limits(),
            low_balance_nano=usd_nanos(body.low_balance_usd, "low_balance_usd"),
        )
        return WorkspaceRead.of(workspace, Balance(0, 0))

    @get("/workspaces", summary="List workspaces")
    async def list_workspaces(self, request: Request[Any, Any, Any]) -> WorkspaceList:
        runtime = _runtime(request)
        workspaces = await runtime.accounts.list_workspaces()
        data = [WorkspaceRead.of(w, await runtime.ledger.balance(w.id)) for w in workspaces]
        return WorkspaceList(data=data)

    @get("/workspaces/{workspace_id:str}", summary="Get a workspace with its balance")
    async def get_workspace(self, request: Request[Any, Any, Any], workspace_id: str) -> WorkspaceRead:
        runtime = _runtime(request)
        workspace = await _workspace(runtime, workspace_id)
        return WorkspaceRead.of(workspace, await runtime.ledger.balance(workspace.id))

    @post(
        "/workspaces/{workspace_id:str}/credits",
        status_code=201,
        summary="Credit (or refund) a workspace",
        opt=documented(
            body=CreditCreate,
            headers=("idempotent-replayed",),
            errors={
                409: "The idempotency key was used for a different amount (`idempotency_key_reused`), "
                "or an adjustment would take the available balance below zero (`insufficient_credit`)."
            },
        ),
    )
    async def add_credit(self, request: Request[Any, Any, Any], workspace_id: str) -> Response[CreditRead]:
        """Negative amounts are refunds or adjustments and need a `note`; the same `idempotency_key` again
        returns the first result and credits nothing."""
        runtime = _runtime(request)
        body = convert(decode_object(await request.body()), CreditCreate)
        try:
            amount = parse_usd(body.amount_usd, allow_negative=True)
        except MoneyError as exc:
            raise InvalidRequest(f"amount_usd {exc}.", param="amount_usd") from exc
        await _workspace(runtime, workspace_id)
        result = await credit(
            runtime.ledger, workspace_id, amount, body.idempotency_key, body.note, runtime.outbox
        )
        payload = CreditRead(entry=EntryRead.of(result.entry), balance=BalanceRead.of(result.entry_balance))
        headers = {} if result.created else {"idempotent-replayed": "true"}
        return Response(payload, status_code=201, headers=headers)

    @post(
        "/workspaces/{workspace_id:str}/keys",
        status_code=201,
        summary="Create an API key",
        opt=documented(body=KeyCreate),
    )
    async def create_key(self, request: Request[Any, Any, Any], workspace_id: str) -> KeyRead:
        runtime = _runtime(request)
        body = convert(decode_object(await request.body()), KeyCreate)
        limit = usd_nanos(body.spend_limit_usd, "spend_limit_usd")
        await _workspace(runtime, workspace_id)
        created = await runtime.accounts.create_key(
            workspace_id, body.name, limit, body.spend_limit_period, body.limits()
        )
        return KeyRead.of(created.key, created.secret)

    @patch(
        "/workspaces/{workspace_id:str}", summary="Update a workspace", opt=documented(body=WorkspaceUpdate)
    )
    async def update_workspace(self, request: Request[Any, Any, Any], workspace_id: str) -> WorkspaceRead:
        """Change a workspace's name, low-balance threshold or rate limits (null lifts one)."""
        runtime = _runtime(request)
        body = convert(decode_object(await request.body()), WorkspaceUpdate)
        columns = patch_columns(body.given(), WORKSPACE_MONEY)
        await _workspace(runtime, workspace_id)
        workspace = await runtime.accounts.update_workspace(workspace_id, columns)
        assert workspace is not None  # workspaces are never deleted
        return WorkspaceRead.of(workspace, await runtime.ledger.balance(workspace.id))

    @get("/workspaces/{workspace_id:str}/keys", summary="List a workspace's API keys")
    async def list_keys(self, request: Request[Any, Any, Any], workspace_id: str) -> KeyList:
        runtime = _runtime(request)
        await _workspace(runtime, workspace_id)
        keys = await runtime.accounts.list_keys(workspace_id)
        return KeyList(data=[KeyRead.of(k) for k in keys])

    @get(
        "/workspaces/{workspace_id:str}/usage",
        summary="Summarize a workspace's usage",
        opt=documented(query=PeriodQuery),
        responses=responds(UsageSummary, "The report."),
    )
    async def workspace_usage(self, request: Request[Any, Any, Any], workspace_id: str) -> dict[str, Any]:
        runtime = _runtime(request)
        await _workspace(runtime, workspace_id)
        query = dict(request.query_params.items())
        return await runtime.reports.summary(workspace_id, query, f"/admin/workspaces/{workspace_id}/usage")

    @get(
        "/usage",
        summary="Summarize every workspace's usage",
        opt=documented(query=PeriodQuery),
        responses=responds(AllUsageSummary, "The report, broken down per workspace, surface and model."),
    )
    async def all_usage(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        runtime = _runtime(request)
        report = await runtime.reports.summary(None, dict(request.query_params.items()), "/admin/usage")
        names = await runtime.reports.workspace_names()
        for row in report["breakdown"]:
            row["workspace_name"] = names.get(row["workspace_id"])
        return report

    @patch("/keys/{key_id:str}", summary="Update an API key", opt=documented(body=KeyUpdate))
    async def update_key(self, request: Request[Any, Any, Any], key_id: str) -> KeyRead:
        """Change a key's name, spend limit or rate limits (null lifts one); effective at once."""
        runtime = _runtime(request)
        body = convert(decode_object(await request.body()), KeyUpdate)
        columns = patch_columns(body.given(), KEY_MONEY)
        key = await runtime.accounts.update_key(key_id, columns) if is_id(key_id) else None
        if key is None:
            raise NotFound(f"No API key with id '{key_id[:100]}'.", param="key_id")
        runtime.auth.forget(key.id)
        return KeyRead.of(key)

    @delete("/keys/{key_id:str}", status_code=200, summary="Revoke an API key")
    async def revoke_key(self, request: Request[Any, Any, Any], key_id: str) -> KeyRead:
        """The key gets 401 from then on."""
        runtime = _runtime(request)
        key = await runtime.accounts.revoke_key(key_id) if is_id(key_id) else None
        if key is None:
            raise NotFound(f"No API key with id '{key_id[:100]}'.", param="key_id")
        runtime.auth.forget(key.id)
        return KeyRead.of(key)
