"""Who is signed in, and whether a form really comes from our page.

- The session cookie is HttpOnly, SameSite=Strict, scoped to its area's path
  (/console or /portal), and Secure when the request came over https.
- Every POST of a signed-in page carries the session's CSRF token in the
  hidden field `csrf_token`, compared in constant time; a missing or wrong
  one is a 403 and nothing changes.  Any POST whose `Origin` names another
  origin, or that the browser marks `Sec-Fetch-Site: cross-site`, is refused
  the same way (sign-in included, which has no session yet).
"""

from __future__ import annotations

import hmac
from typing import Any, Literal

from litestar import Request
from litestar.datastructures import Cookie

from tollway.clock import now_us
from tollway.console.sessions import IDLE_US, Session, SessionStore, token_digest
from tollway.errors import APIError
from tollway.runtime import Runtime

__all__ = [
    "COOKIES",
    "Forbidden",
    "SignInRequired",
    "check_csrf",
    "check_origin",
    "current_session",
    "end_cookie",
    "session_cookie",
]

Area = Literal["console", "portal"]
COOKIES: dict[Area, str] = {"console": "tollway_console", "portal": "tollway_portal"}


class Forbidden(APIError):
    status = 403
    type = "invalid_request_error"
    code = "forbidden"


class SignInRequired(Exception):
    """No live session: the browser is sent to the area's sign-in page."""

    def __init__(self, area: Area) -> None:
        super().__init__(area)
        self.area: Area = area


def _secure(request: Request[Any, Any, Any]) -> bool:
    return request.url.scheme == "https"


def session_cookie(request: Request[Any, Any, Any], area: Area, value: str) -> Cookie:
    return Cookie(
        key=COOKIES[area],
        value=value,
        path=f"/{area}",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        max_age=IDLE_US // 1_000_000,
    )


def end_cookie(request: Request[Any, Any, Any], area: Area) -> Cookie:
    return Cookie(
        key=COOKIES[area],
        value="",
        path=f"/{area}",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        max_age=0,
        expires=0,
    )


def _digest(runtime: Runtime, area: Area) -> str | None:
    token = runtime.settings.admin_token
    return token_digest(token) if area == "console" and token else None


async def current_session(request: Request[Any, Any, Any], area: Area) -> Session:
    """The live session of this area, or `SignInRequired`."""
    runtime: Runtime = request.app.state.runtime
    kind: Literal["admin", "portal"] = "admin" if area == "console" else "portal"
    session = await SessionStore(runtime.engine).find(
        request.cookies.get(COOKIES[area]), kind, now_us(), _digest(runtime, area)
    )
    if session is None:
        raise SignInRequired(area)
    return session


def check_origin(request: Request[Any, Any, Any]) -> None:
    """Refuse a POST another site made the browser send."""
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise Forbidden("This form was sent from another site: refused.")
    origin = request.headers.get("origin")
    if origin is None:
        return
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if not hmac.compare_digest(origin.lower().encode(), own.lower().encode()):
        raise Forbidden("This form was sent from another origin: refused.")


def check_csrf(session: Session, fields: dict[str, str]) -> None:
    sent = fields.get("csrf_token", "")
    if not sent or not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        raise Forbidden("The form's security token is missing or out of date: reload the page and try again.")
