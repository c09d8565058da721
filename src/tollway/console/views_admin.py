"""The admin console, /console: every workspace, signed in with the admin token."""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Controller, Request, Response, get, post

from tollway.api.schemas import WorkspaceCreate
from tollway.billing.credits import credit
from tollway.clock import now_us
from tollway.console import data
from tollway.console.forms import credit_form, key_form, limits_form, parse_form
from tollway.console.guard import check_csrf, check_origin, current_session, end_cookie, session_cookie
from tollway.console.render import redirect
from tollway.console.sessions import Session, SessionStore, token_digest
from tollway.console.views import base_context, console_of, runtime_of, workspace_page
from tollway.errors import NotFound
from tollway.validation import convert, is_id

__all__ = ["AdminConsole"]

_TOKEN_CLASSES = (
    ("prompt", "Prompt (input)", "prompt_tokens", "prompt"),
    ("cached", "Cached (read from cache)", "cached_tokens", "prompt"),
    ("cache_write", "Cache write", "cache_write_tokens", "prompt"),
    ("cache_write_1h", "Cache write, 1-hour", "cache_write_1h_tokens", "prompt"),
    ("completion", "Completion (output)", "completion_tokens", "completion"),
    ("reasoning", "Reasoning (part of completion)", "reasoning_tokens", "completion"),
)
RATE_NAMES = (
    ("input", "Input"),
    ("cached_input", "Cached input"),
    ("cache_write", "Cache write"),
    ("cache_write_1h", "Cache write, 1-hour"),
    ("output", "Output"),
    ("reasoning", "Reasoning"),
    ("request", "Request fee (USD per request)"),
)


async def _signed_in_post(request: Request[Any, Any, Any]) -> tuple[Session, dict[str, str]]:
    """A console form: signed in, from our origin, with the session's CSRF token."""
    session = await current_session(request, "console")
    check_origin(request)
    fields = parse_form(await request.body())
    check_csrf(session, fields)
    return session, fields


def record_context(record: Any, view: dict[str, Any]) -> dict[str, Any]:
    def source(kind: str) -> str:
        raw = record.prompt_source if kind == "prompt" else record.completion_source
        if raw == "upstream":
            return "reported"
        return "estimated" if record.estimated else "counted"

    rows = [
        (name, label, getattr(record, field), source(kind)) for name, label, field, kind in _TOKEN_CLASSES
    ]
    return {"record": record, "view": view, "token_rows": rows, "rate_names": RATE_NAMES}


class AdminConsole(Controller):
    path = "/console"
    include_in_schema = False

    @get("/login", name="console-login")
    async def login_page(self, request: Request[Any, Any, Any]) -> Response[str]:
        console = console_of(request)
        context = base_context("console", None, "Sign in to the console")
        return console.pages.page("login.html", error=None, **context)

    @post("/login", status_code=303)
    async def login(self, request: Request[Any, Any, Any]) -> Response[str]:
        console = console_of(request)
        check_origin(request)
        fields = parse_form(await request.body())
        runtime = runtime_of(request)
        expected = runtime.settings.admin_token
        given = fields.get("token", "").strip()
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            message = (
                "Invalid admin token."
                if expected
                else "The console is disabled: start tollway with TOLLWAY_ADMIN_TOKEN set."
            )
            context = base_context("console", None, "Sign in to the console")
            return console.pages.page("login.html", status=401, error=message, **context)
        cookie, _ = await SessionStore(runtime.engine).open("admin", now_us(), digest=token_digest(expected))
        return redirect("/console", [session_cookie(request, "console", cookie)])

    @post("/logout", status_code=303)
    async def logout(self, request: Request[Any, Any, Any]) -> Response[str]:
        await _signed_in_post(request)
        await SessionStore(runtime_of(request).engine).close(request.cookies.get("tollway_console", ""))
        return redirect("/console/login", [end_cookie(request, "console")])

    @get("/")
    async def index(self, request: Request[Any, Any, Any]) -> Response[str]:
        console = console_of(request)
        session = await current_session(request, "console")
        rows = await data.workspaces(runtime_of(request))
        flash = {"created": "Workspace created."}.get(request.query_params.get("flash", ""), "")
        context = base_context("console", session, "Workspaces")
        return console.pages.page("index.html", rows=rows, flash=flash, **context)

    @post("/workspaces", status_code=303)
    async def create_workspace(self, request: Request[Any, Any, Any]) -> Response[str]:
        _, fields = await _signed_in_post(request)
        body = convert({"name": fields.get("name", "").strip()}, WorkspaceCreate)
        workspace = await runtime_of(request).accounts.create_workspace(body.name)
        return redirect(f"/console/workspaces/{workspace.id}?flash=created")

    @get("/workspaces/{workspace_id:str}")
    async def workspace(self, request: Request[Any, Any, Any]) -> Response[str]:
        console = console_of(request)
        session = await current_session(request, "console")
        return await workspace_page(request, console, "console", session, request.path_params["workspace_id"])

    @post("/workspaces/{workspace_id:str}/credit", status_code=303)
    async def credit(self, request: Request[Any, Any, Any]) -> Response[str]:
        _, fields = await _signed_in_post(request)
        runtime = runtime_of(request)
        workspace, _ = await data.workspace(runtime, request.path_params["workspace_id"])
        form = credit_form(fields)
        result = await credit(
            runtime.ledger, workspace.id, form.amount_nano, form.idempotency_key, form.note, runtime.outbox
        )
        flash = "replayed" if not result.created else "credited" if form.amount_nano > 0 else "refunded"
        return redirect(f"/console/workspaces/{workspace.id}?flash={flash}")

    @post("/workspaces/{workspace_id:str}/keys", status_code=201)
    async def create_key(self, request: Request[Any, Any, Any]) -> Response[str]:
        console = console_of(request)
        session, fields = await _signed_in_post(request)
        runtime = runtime_of(request)
        workspace, _ = await data.workspace(runtime, request.path_params["workspace_id"])
        body, limit = key_form(fields)
        created = await runtime.accounts.create_key(
            workspace.id, body.name, limit, body.spend_limit_period, body.limits()
        )
        return await workspace_page(
            request, console, "console", session, workspace.id, new_key=created, status=201
        )

    @post("/keys/{key_id:str}/revoke", status_code=303)
    async def revoke_key(self, request: Request[Any, Any, Any]) -> Response[str]:
        await _signed_in_post(request)
        runtime = runtime_of(request)
        key_id = request.path_params["key_id"]
        key = await runtime.accounts.revoke_key(key_id) if is_id(key_id) else None
        if key is None:
            raise NotFound(f"No API key with id '{key_id[:100]}'.", param="key_id")
        runtime.auth.forget(key.id)
        await SessionStore(runtime.engine).close_for_key(key.id)
        return redirect(f"/console/workspaces/{key.workspace_id}?flash=revoked")

    @post("/keys/{key_id:str}/limits", status_code=303)
    async def key_limits(self, request: Request[Any, Any, Any]) -> Response[str]:
        _, fields = await _signed_in_post(request)
        runtime = runtime_of(request)
        key_id = request.path_params["key_id"]
        columns = limits_form(fields)
        key = await runtime.accounts.update_key(key_id, columns) if is_id(key_id) else None
        if key is None:
            raise NotFound(f"No API key with id '{key_id[:100]}'.", param="key_id")
        runtime.auth.forget(key.id)
        return redirect(f"/console/workspaces/{key.workspace_id}?flash=limits")

    @get("/requests/{request_id:str}")
    async def request_record(self, request: Request[Any, Any, Any]) -> Response[str]:
        console = console_of(request)
        session = await current_session(request, "console")
        record, view = await runtime_of(request).reports.record(None, request.path_params["request_id"])
        context = base_context("console", session, f"Request {record.id}")
        context.update(record_context(record, view))
        back = f"/console/workspaces/{record.workspace_id}"
        return console.pages.page("request.html", back=back, back_label="Workspace", **context)

    @get("/prices")
    async def prices(self, request: Request[Any, Any, Any]) -> Response[str]:
        console = console_of(request)
        session = await current_session(request, "console")
        prices = data.prices_in_force(runtime_of(request), now_us())
        context = base_context("console", session, "Prices")
        return console.pages.page("prices.html", prices=prices, **context)

    @get("/verify")
    async def verify(self, request: Request[Any, Any, Any]) -> Response[str]:
        console = console_of(request)
        session = await current_session(request, "console")
        report = await data.run_verify(runtime_of(request), console.verify_lock)
        context = base_context("console", session, "Ledger verify")
        return console.pages.page("verify.html", report=report, **context)
