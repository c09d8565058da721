"""The console and the portal in process: the app with its lifespan, the built-in demo upstream, httpx.

`Browser` keeps cookies like a browser does (per path) and reads the pages'
forms, so a test signs in, submits what the page rendered and follows the
redirects the way Chromium would.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from tollway.app import create_app
from tollway.config import load_settings

ADMIN = "console-test-admin-token"
BASE = "http://tollway.test"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Building the whole app meets litestar's deprecation of `{model_id:path}` (api/public.py).
    for item in items:
        if "tests/console/" in item.nodeid:
            item.add_marker(
                pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")
            )


@asynccontextmanager
async def running(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    messages: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await messages.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, messages.get, answers.put)
    )
    started = await answers.get()
    assert started["type"] == "lifespan.startup.complete", started
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
            yield client
    finally:
        await messages.put({"type": "lifespan.shutdown"})
        await lifespan


def build_app(database_url: str, folder: Path) -> Any:
    config = folder / "tollway.toml"
    config.write_text(f'[database]\nurl = "{database_url}"\n\n[server]\nauth_cache_seconds = 0\n')
    settings = load_settings(str(config), environ={"TOLLWAY_ADMIN_TOKEN": ADMIN})
    apps: list[Any] = []

    async def itself(scope: Any, receive: Any, send: Any) -> None:
        await apps[0](scope, receive, send)

    apps.append(create_app(settings, upstream_transport=httpx.ASGITransport(app=itself), demo_key="demo-key"))
    return apps[0]


class Form:
    def __init__(self, attrs: dict[str, str]) -> None:
        self.attrs = attrs
        self.fields: dict[str, str] = {}


class Forms(HTMLParser):
    """Every form of a page with its named inputs' values (hidden ones included)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._open: Form | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._open = Form(values)
            self.forms.append(self._open)
        elif tag in ("input", "select") and self._open is not None and "name" in values:
            self._open.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None

    def find(self, selector: str) -> Form:
        """`#id` or `.class` (the first match)."""
        for form in self.forms:
            if selector.startswith("#") and form.attrs.get("id") == selector[1:]:
                return form
            if selector.startswith(".") and selector[1:] in form.attrs.get("class", "").split():
                return form
        raise AssertionError(f"no form {selector}")


class Browser:
    """A client of its own with a cookie jar, like one browser profile."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = httpx.AsyncClient(transport=client._transport, base_url=BASE)

    @property
    def cookies(self) -> httpx.Cookies:
        return self.client.cookies

    async def aclose(self) -> None:
        await self.client.aclose()

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, **kwargs)

    async def post(self, path: str, fields: dict[str, str], **kwargs: Any) -> httpx.Response:
        return await self.client.post(path, data=fields, **kwargs)

    async def submit(self, page: httpx.Response, selector: str, **changes: str) -> httpx.Response:
        form = Forms(page.text).find(selector)
        return await self.post(form.attrs["action"], {**form.fields, **changes})

    async def sign_in_admin(self) -> httpx.Response:
        response = await self.post("/console/login", {"token": ADMIN})
        assert response.status_code == 303, response.text
        return response

    async def sign_in_portal(self, key: str) -> httpx.Response:
        response = await self.post("/portal/login", {"api_key": key})
        assert response.status_code == 303, response.text
        return response


def attr_values(html: str, pattern: str) -> list[str]:
    return re.findall(pattern, html)


@pytest.fixture(name="client")
async def fixture_client(database_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with running(build_app(database_url, tmp_path)) as client:
        yield client


@pytest.fixture(name="browsers")
async def fixture_browsers(client: httpx.AsyncClient) -> AsyncIterator[Callable[[], Browser]]:
    """Make as many independent browsers as a test needs."""
    made: list[Browser] = []

    def make() -> Browser:
        made.append(Browser(client))
        return made[-1]

    yield make
    for browser in made:
        await browser.aclose()


@pytest.fixture(name="browser")
def fixture_browser(browsers: Callable[[], Browser]) -> Browser:
    return browsers()


ADMIN_HEADERS = {"authorization": f"Bearer {ADMIN}"}


async def new_workspace(
    client: httpx.AsyncClient, name: str = "w", credit: str = "10.00"
) -> tuple[str, str, str]:
    """(workspace id, key id, key secret) of a new credited workspace."""
    ws = (await client.post("/admin/workspaces", json={"name": name}, headers=ADMIN_HEADERS)).json()
    key = (
        await client.post(f"/admin/workspaces/{ws['id']}/keys", json={"name": "k"}, headers=ADMIN_HEADERS)
    ).json()
    if credit:
        done = await client.post(
            f"/admin/workspaces/{ws['id']}/credits", json={"amount_usd": credit}, headers=ADMIN_HEADERS
        )
        assert done.status_code == 201, done.text
    return ws["id"], key["id"], key["key"]


async def chat(client: httpx.AsyncClient, key: str, model: str = "demo") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 20}
    response = await client.post(
        "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    return response


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag = tag
        self.attrs = attrs
        self.parent = parent
        self.children: list[Node] = []
        self.parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.parts + [c.text for c in self.children]).strip()

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()

    def matches(self, simple: str) -> bool:
        """`tag`, `#id`, `.class`, `[attr]`, `[attr="v"]`, combined (`tr.total`, `rect[data-model]`)."""
        tokens = re.findall(r"\[[^\]]+\]|[#.]?[\w-]+", simple)
        for token in tokens:
            if token.startswith("#"):
                if self.attrs.get("id") != token[1:]:
                    return False
            elif token.startswith("."):
                if token[1:] not in self.classes:
                    return False
            elif token.startswith("["):
                name, _, value = token[1:-1].partition("=")
                if name not in self.attrs or (value and self.attrs[name] != value.strip('"')):
                    return False
            elif self.tag != token:
                return False
        return True

    def walk(self) -> list[Node]:
        found = []
        for child in self.children:
            found.append(child)
            found.extend(child.walk())
        return found

    def select(self, selector: str) -> list[Node]:
        """Descendant selectors only: `table#keys tr[data-key-id] td.status`."""
        steps = selector.split()
        current = [self]
        for step in steps:
            current = [n for c in current for n in c.walk() if n.matches(step)]
            # de-duplicate while keeping document order
            seen: set[int] = set()
            current = [n for n in current if not (id(n) in seen or seen.add(id(n)))]
        return current

    def one(self, selector: str) -> Node:
        found = self.select(selector)
        assert len(found) == 1, f"{selector}: {len(found)} matches"
        return found[0]


class Tree(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self._at = self.root
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self._at)
        self._at.children.append(node)
        if tag not in VOID:
            self._at = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._at.children.append(Node(tag, {k: v or "" for k, v in attrs}, self._at))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self._at
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self._at = node.parent

    def handle_data(self, data: str) -> None:
        self._at.parts.append(data)


def page(html: str) -> Node:
    return Tree(html).root


def nanos(node: Node) -> int:
    return int(node.attrs["data-nanos"])
