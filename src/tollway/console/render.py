"""Pages from autoescaped Jinja2 templates, and the headers every console response carries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar import Response
from litestar.datastructures import Cookie
from markupsafe import Markup, escape

from tollway.clock import iso
from tollway.console.display import day_text, exact_usd, rounded_usd, time_text, tokens_text

__all__ = ["SECURITY_HEADERS", "Pages", "redirect"]

# No script but the shipped files, no inline style, nothing from elsewhere, never in a frame.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
}


def money(nanos: int) -> Markup:
    """The attributes of a money element: the exact integer and the exact USD on hover."""
    return Markup(f'data-nanos="{int(nanos)}" title="{escape(exact_usd(nanos))}"')


class Pages:
    """The template environment, built once per app."""

    def __init__(self) -> None:
        self._env = Environment(
            loader=FileSystemLoader(Path(__file__).parent / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=["jinja2.ext.do"],
        )
        self._env.globals.update(
            money=money,
            usd=rounded_usd,
            exact=exact_usd,
            tokens=tokens_text,
            day_text=day_text,
            time_text=time_text,
            iso=iso,
        )

    def render(self, template: str, **context: Any) -> str:
        return self._env.get_template(template).render(**context)

    def page(
        self, template: str, *, status: int = 200, cookies: list[Cookie] | None = None, **context: Any
    ) -> Response[str]:
        return Response(
            self.render(template, **context),
            status_code=status,
            media_type="text/html; charset=utf-8",
            headers=SECURITY_HEADERS,
            cookies=cookies,
        )


def redirect(location: str, cookies: list[Cookie] | None = None) -> Response[str]:
    """303 See Other: after a POST the browser GETs `location` (no resubmission on reload)."""
    return Response(
        "",
        status_code=303,
        media_type="text/plain",
        headers={**SECURITY_HEADERS, "location": location},
        cookies=cookies,
    )
