"""`GET /schema/openapi.json` and `GET /schema` (SPEC §7), as Litestar's OpenAPI config.

Two render plugins share one `Document`: the finished document is built on the first request
for either and kept (the routes are fixed once the app is built), as are its JSON and its page.
Neither route needs a key: they describe the API, they hold no data.  The page is tollway's own
(`page.render`): Litestar's bundled UIs load their scripts from a CDN, and nothing may.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.openapi.spec import Tag
from litestar.types import Method

from tollway.api.openapi.document import finish
from tollway.api.openapi.page import render

__all__ = ["SCHEMA_PATH", "Document", "openapi_config"]

SCHEMA_PATH = "/schema"

_DESCRIPTION = """\
An OpenAI- and Anthropic-compatible gateway that sells model access on prepaid credit.

Errors are in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}` (Anthropic's, \
`{"type": "error", "error": {"type", "message"}}`, on `/v1/messages*`); every response carries \
`X-Request-Id`.  Money is a decimal string in fields ending `_usd` (`usage.cost` in model \
answers is a number, USD).  `HEAD` is answered wherever `GET` is.  Only successful requests \
are billed."""

_TAGS = [
    Tag(
        name="surfaces", description="The model APIs: authenticated, reserved, forwarded, metered and billed."
    ),
    Tag(name="client", description="A workspace's own prices, balance, ledger and usage, with its API key."),
    Tag(name="admin", description="Workspaces, credits, keys and usage, with the admin token."),
]


class Document:
    """The finished document of one app, and its two renderings, each made once."""

    def __init__(self) -> None:
        self._source: dict[str, Any] | None = None
        self._doc: dict[str, Any] = {}
        self._rendered: dict[str, bytes] = {}

    def get(self, app: Litestar, generated: dict[str, Any]) -> dict[str, Any]:
        if generated is not self._source:
            self._doc = finish(app, generated)
            self._source = generated
            self._rendered = {}
        return self._doc

    def rendered(self, request: Request[Any, Any, Any], generated: dict[str, Any], kind: str) -> bytes:
        doc = self.get(request.app, generated)
        if kind not in self._rendered:
            self._rendered[kind] = msgspec.json.encode(doc) if kind == "json" else render(doc).encode()
        return self._rendered[kind]


class _Json(OpenAPIRenderPlugin):
    def __init__(self, document: Document) -> None:
        super().__init__(path="/openapi.json", media_type="application/json")  # type: ignore[arg-type]
        self._document = document

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return self._document.rendered(request, openapi_schema, "json")


class _Page(OpenAPIRenderPlugin):
    def __init__(self, document: Document) -> None:
        super().__init__(path="/")
        self._document = document

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return self._document.rendered(request, openapi_schema, "html")


def _operation_id(handler: HTTPRouteHandler, method: Method, _: list[str | Any]) -> str:
    return handler.name or handler.handler_name


def _version() -> str:
    try:
        return version("tollway")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0"


def openapi_config() -> OpenAPIConfig:
    document = Document()
    return OpenAPIConfig(
        title="tollway",
        version=_version(),
        description=_DESCRIPTION,
        tags=_TAGS,
        path=SCHEMA_PATH,
        render_plugins=[_Page(document), _Json(document)],
        use_handler_docstrings=True,
        operation_id_creator=_operation_id,
    )
