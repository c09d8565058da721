"""What the console's and the portal's handlers share: state, page context, and error pages."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap
from markupsafe import Markup

from tollway.accounts import NewKey
from tollway.api.schemas import EntryRead
from tollway.clock import now_us
from tollway.console import data
from tollway.console.charts import Chart, stacked_bars
from tollway.console.display import exact_usd, rounded_usd, tokens_text
from tollway.console.forms import parse_day_range
from tollway.console.guard import Area, SignInRequired
from tollway.console.render import Pages, redirect
from tollway.console.sessions import Session
from tollway.errors import APIError, AuthenticationFailed
from tollway.ledger import Entry
from tollway.money import format_usd
from tollway.reports.params import US_PER_DAY
from tollway.runtime import Runtime

__all__ = [
    "FLASHES",
    "Console",
    "base_context",
    "console_of",
    "error_handlers",
    "runtime_of",
    "workspace_page",
]

log = logging.getLogger("tollway.console")

# What a redirect after a form may say (a code in the URL, never text from it).
FLASHES = {
    "created": "Workspace created.",
    "credited": "Credit recorded.",
    "refunded": "Refund recorded.",
    "replayed": "This form was already submitted: the amount was recorded once, not again.",
    "revoked": "Key revoked: it is refused (401) from now on.",
    "limits": "Limits saved: in force at once.",
}


class Console:
    """Per-app state of the console: the templates, and one `ledger verify` at a time."""

    def __init__(self) -> None:
        self.pages = Pages()
        self.verify_lock = asyncio.Lock()


def console_of(request: Request[Any, Any, Any]) -> Console:
    """The console state its router put in the handlers' `opt` (see `console_routes`)."""
    console: Console = request.route_handler.opt["console"]
    return console


def runtime_of(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _entry_id(entry: Entry) -> str:
    return EntryRead.of(entry).id


def _plain_usd(nanos: int) -> str:
    """Exact USD without trailing zeros past the cents, for a form's value ("5.00", "0.125")."""
    text = format_usd(nanos)
    whole, frac = text.split(".")
    frac = frac.rstrip("0").ljust(2, "0")
    return f"{whole}.{frac}"


def base_context(area: Area, session: Session | None, title: str) -> dict[str, Any]:
    if session is None:
        who = "Not signed in"
    elif session.kind == "admin":
        who = "Signed in as admin"
    else:
        who = f"Signed in to workspace {session.workspace_id} (read-only)"
    return {
        "area": area,
        "title": title,
        "signed_in": session is not None,
        "csrf": session.csrf_token if session else "",
        "who": who,
        "script": False,
        "entry_id": _entry_id,
        "usd_plain": _plain_usd,
    }


async def workspace_page(
    request: Request[Any, Any, Any],
    console: Console,
    area: Area,
    session: Session,
    workspace_id: str,
    *,
    new_key: NewKey | None = None,
    status: int = 200,
) -> Response[str]:
    """The workspace page: figures, keys, usage over the chosen days, the request log and the ledger."""
    runtime = runtime_of(request)
    query = dict(request.query_params.items())
    now = now_us()
    period = parse_day_range(query, now // US_PER_DAY, runtime.settings.config.reports.max_range_days)
    workspace, balance = await data.workspace(runtime, workspace_id)
    usage = await data.usage(runtime, workspace.id, period.first_day, period.end_day)
    requests = await data.request_page(runtime, workspace.id, query.get("requests"))
    ledger = await data.ledger_page(runtime, workspace.id, query.get("ledger"))
    keys = await data.key_rows(runtime, workspace.id, now)
    here = f"/console/workspaces/{workspace.id}" if area == "console" else "/portal"
    dates = {"from": query.get("from", ""), "to": query.get("to", "")}

    def link(**cursor: str) -> str:
        return f"{here}?{urlencode({**{k: v for k, v in dates.items() if v}, **cursor})}"

    charts = {
        "cost_chart": Markup(
            stacked_bars(
                Chart(
                    svg_id="cost-chart",
                    label="Daily cost per model, stacked",
                    days=usage.days,
                    models=usage.models,
                    values=usage.cost,
                    attribute="nanos",
                    short=rounded_usd,
                    exact=exact_usd,
                )
            )
        ),
        "tokens_chart": Markup(
            stacked_bars(
                Chart(
                    svg_id="tokens-chart",
                    label="Daily tokens (input + output) per model, stacked",
                    days=usage.days,
                    models=usage.models,
                    values=usage.tokens,
                    attribute="tokens",
                    short=tokens_text,
                    exact=lambda n: f"{tokens_text(n)} tokens",
                )
            )
        ),
    }
    context = base_context(area, session, workspace.name)
    context.update(
        admin=area == "console",
        workspace=workspace,
        balance=balance,
        keys=keys,
        usage_view=usage,
        requests=requests,
        ledger=ledger,
        period=period,
        here=here,
        link=link,
        new_key=new_key,
        script=new_key is not None,
        flash=FLASHES.get(query.get("flash", ""), ""),
        idempotency_key="console-" + secrets.token_urlsafe(18),
        **charts,
    )
    return console.pages.page("workspace.html", status=status, **context)


def error_handlers(area: Area, console: Console) -> ExceptionHandlersMap:
    """Errors as pages of this area: a redirect to sign in, or the message with its status."""
    back = f"/{area}"

    def page(status: int, message: str) -> Response[str]:
        context = base_context(area, None, "Sign-in needed" if status == 401 else "Something is wrong")
        return console.pages.page("error.html", status=status, message=message, back=back, **context)

    def sign_in(_: Request[Any, Any, Any], exc: Exception) -> Response[str]:
        assert isinstance(exc, SignInRequired)
        return redirect(f"/{exc.area}/login")

    def api_error(_: Request[Any, Any, Any], exc: Exception) -> Response[str]:
        assert isinstance(exc, APIError)
        if isinstance(exc, AuthenticationFailed):
            return redirect(f"/{area}/login")
        return page(exc.status, exc.message)

    def http_error(request: Request[Any, Any, Any], exc: Exception) -> Response[str]:
        assert isinstance(exc, HTTPException)
        status = exc.status_code
        if status == 404:
            return page(404, f"There is no page at {request.url.path[:200]}.")
        if status == 405:
            return page(405, f"{request.method} is not allowed here.")
        if status == 413:
            return page(413, "The form is larger than this server accepts.")
        return page(status if 400 <= status < 500 else 400, str(exc.detail)[:500])

    def unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[str]:
        log.exception("console page failed", exc_info=exc)
        return page(500, "The server had an error while building this page.")

    return {
        SignInRequired: sign_in,
        APIError: api_error,
        HTTPException: http_error,
        Exception: unexpected,
    }
