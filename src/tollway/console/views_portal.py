"""The customer portal, /portal: one workspace, read-only, signed in with one of its API keys."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post

from tollway.clock import now_us
from tollway.console.forms import parse_form
from tollway.console.guard import check_csrf, check_origin, current_session, end_cookie, session_cookie
from tollway.console.render import redirect
from tollway.console.sessions import SessionStore
from tollway.console.views import base_context, console_of, runtime_of, workspace_page
from tollway.console.views_admin import record_context
from tollway.errors import AuthenticationFailed

__all__ = ["Portal"]


class Portal(Controller):
    path = "/portal"
    include_in_schema = False

    @get("/login")
    async def login_page(self, request: Request[Any, Any, Any]) -> Response[str]:
        console = console_of(request)
        context = base_context("portal", None, "Sign in to the usage portal")
        return console.pages.page("login.html", error=None, **context)

    @post("/login", status_code=303)
    async def login(self, request: Request[Any, Any, Any]) -> Response[str]:
        console = console_of(request)
        check_origin(request)
        fields = parse_form(await request.body())
        runtime = runtime_of(request)
        try:
            principal = await runtime.auth.authenticate(None, api_key=fields.get("api_key", ""))
        except AuthenticationFailed as exc:
            context = base_context("portal", None, "Sign in to the usage portal")
            return console.pages.page("login.html", status=401, error=exc.message, **context)
        cookie, _ = await SessionStore(runtime.engine).open(
            "portal", now_us(), workspace_id=principal.workspace_id, key_id=principal.key_id
        )
        return redirect("/portal", [session_cookie(request, "portal", cookie)])

    @post("/logout", status_code=303)
    async def logout(self, request: Request[Any, Any, Any]) -> Response[str]:
        session = await current_session(request, "portal")
        check_origin(request)
        check_csrf(session, parse_form(await request.body()))
        await SessionStore(runtime_of(request).engine).close(request.cookies.get("tollway_portal", ""))
        return redirect("/portal/login", [end_cookie(request, "portal")])

    @get("/")
    async def overview(self, request: Request[Any, Any, Any]) -> Response[str]:
        console = console_of(request)
        session = await current_session(request, "portal")
        assert session.workspace_id is not None
        return await workspace_page(request, console, "portal", session, session.workspace_id)

    @get("/requests/{request_id:str}")
    async def request_record(self, request: Request[Any, Any, Any]) -> Response[str]:
        console = console_of(request)
        session = await current_session(request, "portal")
        record, view = await runtime_of(request).reports.record(
            session.workspace_id, request.path_params["request_id"]
        )
        context = base_context("portal", session, f"Request {record.id}")
        context.update(record_context(record, view))
        return console.pages.page("request.html", back="/portal", back_label="Overview", **context)
