"""Every figure on the pages equals the API's, to the nano-dollar, over several days and models."""

from __future__ import annotations

import random
from collections import defaultdict

import httpx

from tests.console.conftest import ADMIN_HEADERS, Browser, chat, nanos, new_workspace, page
from tollway.clock import now_us
from tollway.config import load_settings
from tollway.console.demo_data import seed_requests
from tollway.console.display import day_text
from tollway.db import create_engine
from tollway.ledger import Ledger
from tollway.money import parse_usd

DAY = 86_400_000_000


async def seed_days(database_url: str, workspace_id: str, key_id: str, days: int = 5) -> int:
    """Billed requests over the last `days` days (two models), written as billing writes them."""
    prices = [
        p
        for p in load_settings(None, environ={}).prices.in_force(now_us())
        if p.model in ("demo", "demo-claude")
    ]
    engine = create_engine(database_url)
    ledger = Ledger(engine)
    try:
        return await seed_requests(
            ledger,
            workspace_id,
            [key_id],
            prices,
            first_day=now_us() // DAY - days + 1,
            days=days,
            per_day=(2, 4),
            rng=random.Random(3),
        )
    finally:
        ledger.close()
        await engine.dispose()


async def test_balance_figures_equal_the_admin_api(browser: Browser, client: httpx.AsyncClient) -> None:
    workspace_id, _, key = await new_workspace(client, credit="12.345678901")
    await chat(client, key)
    await browser.sign_in_admin()
    api = (await client.get(f"/admin/workspaces/{workspace_id}", headers=ADMIN_HEADERS)).json()["balance"]
    shown = page((await browser.get(f"/console/workspaces/{workspace_id}")).text)
    for name in ("balance", "held", "available"):
        element = shown.one(f"#{name}")
        assert nanos(element) == parse_usd(api[f"{name}_usd"], allow_negative=True)
        assert element.attrs["title"] == f"{api[f'{name}_usd']} USD"
    row = page((await browser.get("/console")).text).one(f'tr[data-workspace-id="{workspace_id}"]')
    assert nanos(row.one("td.balance")) == parse_usd(api["balance_usd"])
    assert nanos(row.one("td.available")) == parse_usd(api["available_usd"])
    assert row.one("td.balance").text.startswith("$")


async def test_usage_totals_and_charts_equal_v1_usage(
    browser: Browser, client: httpx.AsyncClient, database_url: str
) -> None:
    workspace_id, key_id, key = await new_workspace(client, credit="50")
    assert await seed_days(database_url, workspace_id, key_id) > 5
    await chat(client, key)  # and one today, through the proxy
    await browser.sign_in_admin()
    today = now_us() // DAY
    start, end = day_text(today - 6), day_text(today + 1)
    response = await browser.get(f"/console/workspaces/{workspace_id}?from={start}&to={end}")
    root = page(response.text)
    assert root.one("input#from").attrs["value"] == start and root.one("input#to").attrs["value"] == end
    api = (
        await client.get(
            "/v1/usage", params={"from": start, "to": end}, headers={"authorization": f"Bearer {key}"}
        )
    ).json()
    per_model: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in api["breakdown"]:
        for field in ("calls", "input_tokens", "output_tokens", "cached_tokens"):
            per_model[row["model"]][field] += row[field]
        per_model[row["model"]]["cost"] += parse_usd(row["cost_usd"])
    table = root.one("table#usage-totals")
    shown = {tr.attrs["data-model"]: tr for tr in table.select("tr[data-model]")}
    assert set(shown) == set(per_model) and len(shown) == 2
    for model, tr in shown.items():
        assert int(tr.one("td.calls").attrs["data-value"]) == per_model[model]["calls"]
        assert int(tr.one("td.input-tokens").attrs["data-value"]) == per_model[model]["input_tokens"]
        assert int(tr.one("td.output-tokens").attrs["data-value"]) == per_model[model]["output_tokens"]
        assert int(tr.one("td.cached-tokens").attrs["data-value"]) == per_model[model]["cached_tokens"]
        assert nanos(tr.one("td.cost")) == per_model[model]["cost"]
    total = table.one("tr.total")
    assert nanos(total.one("td.cost")) == parse_usd(api["totals"]["cost_usd"])
    assert int(total.one("td.calls").attrs["data-value"]) == api["totals"]["calls"]
    # The charts: segments per day and model whose sums are the totals.
    cost_rects = root.select("svg#cost-chart rect[data-model]")
    token_rects = root.select("svg#tokens-chart rect[data-model]")
    days = {r.attrs["data-day"] for r in cost_rects}
    assert len(days) >= 3 and day_text(today) in days
    for model in per_model:
        assert (
            sum(int(r.attrs["data-nanos"]) for r in cost_rects if r.attrs["data-model"] == model)
            == per_model[model]["cost"]
        )
        assert sum(int(r.attrs["data-tokens"]) for r in token_rects if r.attrs["data-model"] == model) == (
            per_model[model]["input_tokens"] + per_model[model]["output_tokens"]
        )
    assert all(r.one("title").text for r in cost_rects)
    # The daily API agrees day by day.
    daily = (
        await client.get(
            "/v1/credits/usage/daily", params={"days": "7"}, headers={"authorization": f"Bearer {key}"}
        )
    ).json()["data"]
    for row in daily:
        on_day = sum(int(r.attrs["data-nanos"]) for r in cost_rects if r.attrs["data-day"] == row["date"])
        assert on_day == parse_usd(row["total_cost_usd"])


async def test_requests_and_drill_down_equal_the_api(browser: Browser, client: httpx.AsyncClient) -> None:
    workspace_id, _, key = await new_workspace(client)
    for model in ("demo", "demo-no-usage", "demo"):
        await chat(client, key, model)
    await browser.sign_in_admin()
    root = page((await browser.get(f"/console/workspaces/{workspace_id}")).text)
    rows = root.select("table#requests tr[data-request-id]")
    log = (await client.get("/v1/credits/usage/log", headers={"authorization": f"Bearer {key}"})).json()[
        "data"
    ]
    assert [r.attrs["data-request-id"] for r in rows] == [entry["id"] for entry in log]  # newest first
    for tr, entry in zip(rows, log, strict=True):
        assert nanos(tr.one("td.cost")) == parse_usd(entry["cost_usd"])
    first = rows[0].one("a.request")
    assert first.attrs["href"] == f"/console/requests/{log[0]['id']}"
    detail = await browser.get(first.attrs["href"])
    assert detail.status_code == 200
    record = (
        await client.get(f"/v1/usage/requests/{log[0]['id']}", headers={"authorization": f"Bearer {key}"})
    ).json()
    d = page(detail.text)
    assert nanos(d.one("#cost")) == parse_usd(record["cost_usd"])
    assert d.one("#end-state").text == record["end_state"]
    table = d.one("table#record")
    for name, value in (
        ("prompt", record["tokens"]["prompt"]),
        ("completion", record["tokens"]["completion"]),
        ("cached", record["tokens"]["cached"]),
        ("cache_write", record["tokens"]["cache_write"]),
        ("cache_write_1h", record["tokens"]["cache_write_1h"]),
        ("reasoning", record["tokens"]["reasoning"]),
    ):
        tr = table.one(f'tr[data-class="{name}"]')
        assert int(tr.one("td.tokens").attrs["data-value"]) == value
        assert tr.one("td.source").text in ("reported", "counted", "estimated")
    rates = d.one("#rates")
    assert record["price"]["id"] in rates.text and record["price"]["input"] in rates.text


async def test_request_log_and_ledger_pages_follow_the_cursor(
    browser: Browser, client: httpx.AsyncClient, database_url: str
) -> None:
    workspace_id, key_id, key = await new_workspace(client, credit="50")
    count = await seed_days(database_url, workspace_id, key_id, days=8)
    assert count > 20
    await browser.sign_in_admin()
    seen: list[str] = []
    path = f"/console/workspaces/{workspace_id}"
    while True:
        root = page((await browser.get(path)).text)
        seen += [tr.attrs["data-request-id"] for tr in root.select("table#requests tr[data-request-id]")]
        nxt = root.select("a#requests-next")
        if not nxt:
            break
        path = nxt[0].attrs["href"].split("#")[0]
    assert len(seen) == count == len(set(seen))
    # The ledger: newest first, each balance-after the running balance the API reports.
    api = (
        await client.get(
            "/v1/credits/ledger", params={"limit": "20"}, headers={"authorization": f"Bearer {key}"}
        )
    ).json()
    root = page((await browser.get(f"/console/workspaces/{workspace_id}")).text)
    rows = root.select("table#ledger tr[data-entry-id]")
    assert [r.attrs["data-entry-id"] for r in rows] == [e["id"] for e in api["data"]]
    for tr, entry in zip(rows, api["data"], strict=True):
        assert nanos(tr.one("td.amount")) == parse_usd(entry["amount_usd"], allow_negative=True)
        assert nanos(tr.one("td.balance-after")) == parse_usd(entry["balance_usd"], allow_negative=True)
        assert tr.one("td.type").text == entry["type"]
    assert root.select("a#ledger-next")
    second = page((await browser.get(root.one("a#ledger-next").attrs["href"].split("#")[0])).text)
    api2 = (
        await client.get(
            "/v1/credits/ledger",
            params={"limit": "20", "cursor": api["next_cursor"]},
            headers={"authorization": f"Bearer {key}"},
        )
    ).json()
    assert [r.attrs["data-entry-id"] for r in second.select("table#ledger tr[data-entry-id]")] == [
        e["id"] for e in api2["data"]
    ]


async def test_key_spend_against_its_limit(browser: Browser, client: httpx.AsyncClient) -> None:
    workspace_id, key_id, key = await new_workspace(client)
    await client.patch(
        f"/admin/keys/{key_id}",
        json={"spend_limit_usd": "1.00", "spend_limit_period": "day"},
        headers=ADMIN_HEADERS,
    )
    await chat(client, key)
    await chat(client, key)
    await browser.sign_in_admin()
    row = page((await browser.get(f"/console/workspaces/{workspace_id}")).text).one(
        f'tr[data-key-id="{key_id}"]'
    )
    log = (await client.get("/v1/credits/usage/log", headers={"authorization": f"Bearer {key}"})).json()[
        "data"
    ]
    assert nanos(row.one("td.spend")) == sum(parse_usd(e["cost_usd"]) for e in log) > 0
    assert nanos(row.one("td.spend-limit")) == 1_000_000_000


async def test_prices_page_lists_what_v1_pricing_lists(browser: Browser, client: httpx.AsyncClient) -> None:
    _, _, key = await new_workspace(client)
    api = (await client.get("/v1/pricing", headers={"authorization": f"Bearer {key}"})).json()["data"]
    await browser.sign_in_admin()
    root = page((await browser.get("/console/prices")).text)
    rows = {tr.attrs["data-model"]: tr for tr in root.select("table#prices tr[data-model]")}
    assert set(rows) == {p["model"] for p in api}
    for price in api:
        tr = rows[price["model"]]
        assert tr.one("td.input").text == price["input"] and tr.one("td.output").text == price["output"]
        assert tr.one("td.effective-from time").attrs["datetime"] == price["effective_from"]


async def test_verify_page(browser: Browser, client: httpx.AsyncClient, database_url: str) -> None:
    workspace_id, key_id, key = await new_workspace(client, credit="50")
    await seed_days(database_url, workspace_id, key_id, days=2)
    await chat(client, key)
    await browser.sign_in_admin()
    root = page((await browser.get("/console/verify")).text)
    result = root.one("#verify-result")
    assert result.attrs["data-ok"] == "true" and "Ledger consistent" in result.text
