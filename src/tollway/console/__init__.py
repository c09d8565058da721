"""The web console (/console, for admins) and the usage portal (/portal, for customers).

Server-rendered HTML from autoescaped templates, charts drawn as SVG on the
server, one small script (the copy button), every asset shipped in this
package and served from /console/static.  Sessions live in the database
(`sessions.py`); forms are CSRF-checked (`guard.py`); the figures come from the
same queries as the API (`data.py`).
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

from tollway.console.views import Console, error_handlers
from tollway.console.views_admin import AdminConsole
from tollway.console.views_portal import Portal

__all__ = ["Console", "console_routes"]

STATIC = Path(__file__).parent / "static"


def console_routes() -> list[Router]:
    """The console's and the portal's routers, and the static files they use (kept out of the OpenAPI)."""
    console = Console()

    return [
        Router(
            path="/",
            route_handlers=[AdminConsole],
            opt={"console": console},
            exception_handlers=error_handlers("console", console),
            include_in_schema=False,
        ),
        Router(
            path="/",
            route_handlers=[Portal],
            opt={"console": console},
            exception_handlers=error_handlers("portal", console),
            include_in_schema=False,
        ),
        create_static_files_router(
            path="/console/static",
            directories=[STATIC],
            name="console-static",
            cache_control=CacheControlHeader(max_age=3600, public=True),
            include_in_schema=False,
        ),
    ]
