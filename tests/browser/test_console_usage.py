"""The console's usage views against the API, to the nano-dollar: charts, totals, log and drill-down."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

import httpx

from tests.browser.conftest import Used
from tests.browser.site import Site, nanos_of, usd
from tests.e2e.conftest import Account, Tollway


def api(tollway: Tollway, account: Account, path: str, **params: str) -> dict[str, Any]:
    response = httpx.get(
        f"{tollway.url}{path}", params=params, headers={"authorization": f"Bearer {account.key}"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def integer(text: str) -> int:
    """A count as a page shows it: "1,234" or "1 234" is 1234."""
    digits = text.replace(",", "").replace("\u202f", "").replace("\u00a0", "").replace(" ", "").strip()
    assert digits.isdigit(), text
    return int(digits)


def today(tollway: Tollway, used: Used) -> date:
    """The server's UTC day of the traffic (its clock, not this machine's)."""
    record = api(tollway, used.a, f"/v1/usage/requests/{used.a_requests[0]}")
    return date.fromisoformat(record["finished_at"][:10])


def per_model(report: dict[str, Any]) -> dict[str, dict[str, int]]:
    """/v1/usage's breakdown (per surface and model) summed per model, costs in nano-USD."""
    models: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in report["breakdown"]:
        totals = models[row["model"]]
        for name in ("calls", "input_tokens", "output_tokens", "cached_tokens"):
            totals[name] += row[name]
        totals["cost"] += nanos_of(row["cost_usd"])
    return {model: dict(totals) for model, totals in models.items()}


def choose_period(site: Site, first: date, last: date) -> None:
    """Set the period form's two date fields and submit it."""
    for css, day in (("#from", first), ("#to", last)):
        field = site.one(css)
        assert field.get_attribute("type") == "date"
        site.driver.execute_script("arguments[0].value = arguments[1]", field, day.isoformat())
    form = site.one("form#period")
    site.submit(site.one("[type=submit]", form))


def check_usage_section(site: Site, report: dict[str, Any], day: date) -> None:
    """The charts and the totals table of the page in the browser equal the /v1/usage `report`."""
    expected = per_model(report)
    assert len(expected) >= 4, "the traffic spans several models"
    cost: dict[str, int] = defaultdict(int)
    for rect in site.all("svg#cost-chart rect[data-model]"):
        assert rect.get_attribute("data-day") == day.isoformat()
        nanos = int(rect.get_attribute("data-nanos") or "x")
        cost[rect.get_attribute("data-model") or ""] += nanos
        title = site.driver.execute_script("return arguments[0].querySelector('title').textContent", rect)
        assert usd(nanos) in title, title
    assert dict(cost) == {model: totals["cost"] for model, totals in expected.items()}
    tokens: dict[str, int] = defaultdict(int)
    for rect in site.all("svg#tokens-chart rect[data-model]"):
        assert rect.get_attribute("data-day") == day.isoformat()
        tokens[rect.get_attribute("data-model") or ""] += int(rect.get_attribute("data-tokens") or "x")
    assert dict(tokens) == {m: t["input_tokens"] + t["output_tokens"] for m, t in expected.items()}

    shown = {}
    for row in site.all("table#usage-totals tr[data-model]"):
        shown[row.get_attribute("data-model")] = {
            "calls": integer(site.text("td.calls", row)),
            "input_tokens": integer(site.text("td.input-tokens", row)),
            "output_tokens": integer(site.text("td.output-tokens", row)),
            "cached_tokens": integer(site.text("td.cached-tokens", row)),
            "cost": site.nanos("td.cost", row),
        }
    assert shown == expected
    total = site.one("table#usage-totals tr.total")
    totals = report["totals"]
    assert (
        integer(site.text("td.calls", total)),
        integer(site.text("td.input-tokens", total)),
        integer(site.text("td.output-tokens", total)),
        integer(site.text("td.cached-tokens", total)),
        site.nanos("td.cost", total),
    ) == (
        totals["calls"],
        totals["input_tokens"],
        totals["output_tokens"],
        totals["cached_tokens"],
        nanos_of(totals["cost_usd"]),
    )


def test_charts_and_totals_equal_the_usage_api(site: Site, tollway: Tollway, used: Used) -> None:
    day = today(tollway, used)
    first, last = day - timedelta(days=2), day + timedelta(days=1)
    site.sign_in_console()
    assert site.go(f"/console/workspaces/{used.a.workspace_id}") == 200
    choose_period(site, first, last)
    assert site.one("#from").get_attribute("value") == first.isoformat()
    assert site.one("#to").get_attribute("value") == last.isoformat()
    # The same from/to as the API's; every request of the fixture is inside either reading of `to`.
    report = api(tollway, used.a, "/v1/usage", **{"from": first.isoformat(), "to": last.isoformat()})
    assert report["totals"]["calls"] == len(used.a_requests)
    check_usage_section(site, report, day)
    # The records themselves, summed independently of the rollup: the same cost.
    records = [api(tollway, used.a, f"/v1/usage/requests/{rid}") for rid in used.a_requests]
    assert sum(nanos_of(r["cost_usd"]) for r in records) == nanos_of(report["totals"]["cost_usd"])


def test_a_period_without_traffic_is_empty(site: Site, tollway: Tollway, used: Used) -> None:
    day = today(tollway, used)
    site.sign_in_console()
    site.go(f"/console/workspaces/{used.a.workspace_id}")
    choose_period(site, day - timedelta(days=9), day - timedelta(days=3))
    assert site.all("svg#cost-chart rect[data-model]") == []
    assert site.all("table#usage-totals tr[data-model]") == []
    assert integer(site.text("table#usage-totals tr.total td.calls")) == 0


def test_the_request_log_drills_down_to_each_record(site: Site, tollway: Tollway, used: Used) -> None:
    site.sign_in_console()
    site.go(f"/console/workspaces/{used.a.workspace_id}")
    log = api(tollway, used.a, "/v1/credits/usage/log", limit="100")["data"]
    rows = site.all("table#requests tr[data-request-id]")
    assert [r.get_attribute("data-request-id") for r in rows] == [e["id"] for e in log]
    assert [e["id"] for e in log] == list(reversed(used.a_requests))  # newest first
    for entry, row in zip(log, rows, strict=True):
        assert site.nanos("td.cost", row) == nanos_of(entry["cost_usd"])
        assert entry["model"] in row.text
    links = [a.get_attribute("href") for a in site.all("table#requests a.request")]
    assert links == [f"{tollway.url}/console/requests/{e['id']}" for e in log]
    site.all("table#requests a.request")[0].click()
    assert site.path == f"/console/requests/{log[0]['id']}"
    for request_id in used.a_requests:
        assert site.go(f"/console/requests/{request_id}") == 200
        check_record(site, api(tollway, used.a, f"/v1/usage/requests/{request_id}"))
    assert site.go("/console/requests/req_does_not_exist") == 404


TOKEN_CLASSES = ("prompt", "cached", "cache_write", "cache_write_1h", "completion", "reasoning")
# The API names a number's source by where it came from; the page says what that means.
SOURCE_WORDS = {"upstream": "reported", "counted": "counted", "estimated": "estimated"}


def check_record(site: Site, record: dict[str, Any]) -> None:
    """A drill-down page (console or portal) against GET /v1/usage/requests/{id}."""
    rows = {row.get_attribute("data-class"): row for row in site.all("table#record tr[data-class]")}
    assert set(rows) == set(TOKEN_CLASSES), list(rows)
    for name, row in rows.items():
        count = record["tokens"][name]
        assert integer(site.text("td.tokens", row)) == count, (name, row.text, count)
        assert site.one("td.tokens", row).get_attribute("data-value") == str(count)
        assert site.text("th", row)  # a label a person can read
    for name in ("prompt", "completion"):
        source = record["sources"][name]
        words = {SOURCE_WORDS.get(source, source)}
        if record["sources"]["estimated"]:
            words.add("estimated")
        assert site.text("td.source", rows[name]) in words, (name, rows[name].text, record["sources"])
    assert site.nanos("#cost") == nanos_of(record["cost_usd"])
    assert site.text("#end-state") == record["end_state"]
    assert site.text("#model").split()[0] == record["model"]
    assert site.text("#upstream") == record["upstream"]
    assert site.text("#stream") == ("yes" if record["stream"] else "no")
    rates = {row.get_attribute("data-rate"): site.text("td", row) for row in site.all("#rates tr[data-rate]")}
    price = {k: v for k, v in record["price"].items() if k not in ("id", "currency", "unit")}
    assert rates == price, (rates, price)
    assert site.text("#price-id") == record["price"]["id"]


def test_prices_in_force(site: Site, tollway: Tollway, used: Used) -> None:
    prices = api(tollway, used.a, "/v1/pricing")
    site.sign_in_console()
    assert site.go("/console/prices") == 200
    rows = site.all("table#prices tr[data-model]")
    assert {r.get_attribute("data-model") for r in rows} >= {p["model"] for p in prices["data"]}
    for row in rows:
        assert "2024-01-01" in row.text


def test_ledger_verify(site: Site) -> None:
    site.sign_in_console()
    assert site.go("/console/verify") == 200
    result = site.one("#verify-result")
    assert result.get_attribute("data-ok") == "true"
    assert "Ledger consistent" in result.text
