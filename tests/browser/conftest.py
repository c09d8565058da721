"""Fixtures of the browser tests: one headless Chromium and one `tollway serve` per session.

Each test gets the browser with no cookies, at 1280x900, and makes its own workspace
and keys, so tests stay independent while sharing the slow-to-start processes.
See tests/browser/chromium.py for how the browser is started (nothing downloaded).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver

from tests.browser.chromium import chromium, missing
from tests.browser.site import Site
from tests.e2e.conftest import Account, Tollway, fixture_mock, fixture_tollway

__all__ = ["fixture_mock", "fixture_tollway"]  # the e2e suite's servers, started anew for this folder


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = missing()
    for item in items:
        if item.nodeid.startswith("tests/browser/"):
            item.add_marker(pytest.mark.browser)
            if reason is not None:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(name="browser", scope="session")
def fixture_browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


@pytest.fixture(name="site")
def fixture_site(browser: WebDriver, tollway: Tollway) -> Site:
    site = Site(browser, tollway)
    site.reset()
    return site


@dataclass(frozen=True)
class Used:
    """Two workspaces with real traffic through the mock upstream, made once per session.

    `a` has two keys, several models (a stream, cached and reasoning tokens, an embedding,
    an Anthropic Messages call) and so several ledger entries; `b` has one request of its own.
    """

    a: Account
    a_second_key: str
    b: Account
    a_requests: tuple[str, ...]  # request ids, oldest first
    b_requests: tuple[str, ...]


HI = [{"role": "user", "content": "Say hi"}]


def _call(tollway: Tollway, key: str, path: str, body: dict[str, Any]) -> str:
    headers = {"authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"}
    response = httpx.post(f"{tollway.url}{path}", headers=headers, json=body, timeout=30)
    assert response.status_code == 200, response.text
    request_id = response.headers["x-request-id"]
    return request_id


@pytest.fixture(name="used", scope="session")
def fixture_used(tollway: Tollway) -> Used:
    a = tollway.new_account("browser-usage-a", credit_usd="25.00")
    second = tollway.admin(
        "POST", f"/admin/workspaces/{a.workspace_id}/keys", json={"name": "second", "spend_limit_usd": "3.00"}
    ).json()
    b = tollway.new_account("browser-usage-b", credit_usd="5.00")
    chat = "/v1/chat/completions"
    claude = {"prompt_tokens": 300, "cache_write_tokens": 50, "cache_write_1h_tokens": 20}
    knobs = {"prompt_tokens": 1200, "cached_tokens": 400, "completion_tokens": 90, "reasoning_tokens": 30}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        (a.key, chat, {"model": "gpt-4o-mini", "messages": HI}),
        (a.key, chat, {"model": "gpt-4o-mini", "messages": HI, "mock": knobs}),
        (a.key, chat, {"model": "counted", "messages": HI, "stream": True}),
        (second["key"], chat, {"model": "demo", "messages": HI, "mock": {"completion_tokens": 1234}}),
        (a.key, "/v1/embeddings", {"model": "text-embedding-3-small", "input": ["one", "two"]}),
        (a.key, "/v1/messages", {"model": "claude-test", "max_tokens": 64, "messages": HI, "mock": claude}),
    ]
    a_requests = tuple(_call(tollway, key, path, body) for key, path, body in calls)
    b_requests = (_call(tollway, b.key, chat, {"model": "gpt-4o-mini", "messages": HI}),)
    return Used(a, second["id"], b, a_requests, b_requests)
