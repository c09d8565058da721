"""`GET /metrics` of apps built in this process (no `serve`): each counts its own requests only."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tollway.app import create_app
from tollway.config import load_settings
from tollway.observe import ACCESS_LOGGER, AccessEntry

ADMIN = "in-process-admin-token"


@asynccontextmanager
async def running(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app's lifespan around a client that calls it in process."""
    messages: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await messages.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, messages.get, answers.put)
    )
    started = await answers.get()
    assert started["type"] == "lifespan.startup.complete", started
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
            yield client
    finally:
        await messages.put({"type": "lifespan.shutdown"})
        await lifespan


def app_for(database_url: str, *, public: bool = False, folder: Path) -> Any:
    config = folder / f"tollway-{public}.toml"
    config.write_text(
        f'[database]\nurl = "{database_url}"\n\n[metrics]\npublic = {"true" if public else "false"}\n'
    )
    settings = load_settings(str(config), environ={"TOLLWAY_ADMIN_TOKEN": ADMIN})
    apps: list[Any] = []

    async def itself(scope: Any, receive: Any, send: Any) -> None:  # the built-in demo, mounted in the app
        await apps[0](scope, receive, send)

    apps.append(create_app(settings, upstream_transport=httpx.ASGITransport(app=itself), demo_key="demo-key"))
    return apps[0]


async def new_key(client: httpx.AsyncClient) -> str:
    admin = {"authorization": f"Bearer {ADMIN}"}
    workspace = (await client.post("/admin/workspaces", json={"name": "m"}, headers=admin)).json()
    await client.post(
        f"/admin/workspaces/{workspace['id']}/credits", json={"amount_usd": "1.00"}, headers=admin
    )
    key: str = (
        await client.post(f"/admin/workspaces/{workspace['id']}/keys", json={"name": "m"}, headers=admin)
    ).json()["key"]
    return key


def requests_by_status(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tollway_requests_total":
                found[sample.labels["status"]] = found.get(sample.labels["status"], 0) + sample.value
    return found


@pytest.fixture(name="second_database_url")
def fixture_second_database_url(tmp_path: Path) -> Any:
    from tests.dbs import drop_database, new_database_url

    url = new_database_url(tmp_path)
    yield url
    drop_database(url)


# Building the whole app in process meets litestar's deprecation of `{model_id:path}` without
# `FromPath` (api/public.py, not this feature's): not an error here.
@pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")
async def test_two_apps_in_one_process_count_apart(
    database_url: str, second_database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    async with (
        running(app_for(database_url, folder=tmp_path)) as one,
        running(app_for(second_database_url, public=True, folder=tmp_path)) as two,
    ):
        key = await new_key(one)
        body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(2):
            answer = await one.post(
                "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
            )
            assert answer.status_code == 200, answer.text
        assert (await two.post("/v1/chat/completions", json=body)).status_code == 401

        denied = await one.get("/metrics")
        assert denied.status_code == 401
        assert denied.json()["error"]["code"] == "invalid_admin_token"
        scraped = await one.get("/metrics", headers={"authorization": f"Bearer {ADMIN}"})
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert requests_by_status(scraped.text) == {"200": 2}
        public = await two.get("/metrics")  # [metrics] public = true: no token needed
        assert public.status_code == 200
        assert requests_by_status(public.text) == {"401": 1}
    entries = [r.msg for r in caplog.records if r.name == ACCESS_LOGGER]
    assert all(isinstance(e, AccessEntry) for e in entries)
    assert sorted(e.status for e in entries if isinstance(e, AccessEntry)) == [200, 200, 401]
