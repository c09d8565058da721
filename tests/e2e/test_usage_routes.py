"""The usage routes over HTTP: agreement with the ledger, isolation, bad parameters, never a 500."""

from __future__ import annotations

import string
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import Account, Tollway, nanos
from tests.e2e.test_billing import rows

HI = [{"role": "user", "content": "Say hi"}]
ROUTES = ["/v1/usage", "/v1/credits/usage", "/v1/credits/usage/daily", "/v1/credits/usage/log"]


def get(tollway: Tollway, account: Account, path: str, **params: str) -> httpx.Response:
    return httpx.get(
        f"{tollway.url}{path}", params=params, headers={"authorization": f"Bearer {account.key}"}
    )


@pytest.fixture(name="pair", scope="module")
def fixture_pair(tollway: Tollway) -> tuple[Account, Account, str]:
    """Workspace A (two keys, two models, one streamed) and workspace B (one request)."""
    a = tollway.new_account("usage-a", credit_usd="1.00")
    workspace = a.workspace_id
    second = tollway.admin("POST", f"/admin/workspaces/{workspace}/keys", json={"name": "second"}).json()
    for key, model, stream in (
        (a.key, "gpt-4o-mini", False),
        (a.key, "counted", True),
        (second["key"], "gpt-4o-mini", False),
    ):
        response = httpx.post(
            f"{tollway.url}/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={"model": model, "messages": HI, "stream": stream},
        )
        assert response.status_code == 200
    b = tollway.new_account("usage-b", credit_usd="1.00")
    httpx.post(
        f"{tollway.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {b.key}"},
        json={"model": "gpt-4o-mini", "messages": HI},
    )
    return a, b, second["id"]


def test_summary_matches_records_and_debits(tollway: Tollway, pair: tuple[Account, Account, str]) -> None:
    a, _, _ = pair
    report = get(tollway, a, "/v1/usage").json()
    total_cost = 2 * nanos(6, 8) + nanos(9, 8)
    assert report["totals"] == {
        "input_tokens": 21,
        "output_tokens": 24,
        "cached_tokens": 0,
        "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0,
        "reasoning_tokens": 0,
        "calls": 3,
        "cost_usd": f"0.{total_cost:09d}",
    }
    assert [(r["operation_type"], r["model"], r["calls"]) for r in report["breakdown"]] == [
        ("chat.completions", "counted", 1),
        ("chat.completions", "gpt-4o-mini", 2),
    ]
    assert report["links"]["self"].startswith("/v1/usage?from=")
    [(debits,)] = rows(
        tollway,
        "select -sum(amount_nano) from ledger_entries where workspace_id = ? and kind = 'debit'",
        a.workspace_id,
    )
    [(recorded,)] = rows(
        tollway, "select sum(cost_nano) from usage_records where workspace_id = ?", a.workspace_id
    )
    assert debits == recorded == total_cost


def test_filters_by_model_and_key(tollway: Tollway, pair: tuple[Account, Account, str]) -> None:
    a, _, second_key = pair
    assert get(tollway, a, "/v1/usage", model="counted").json()["totals"]["calls"] == 1
    assert get(tollway, a, "/v1/usage", key_id=second_key).json()["totals"]["calls"] == 1
    assert get(tollway, a, "/v1/credits/usage", key_id=a.key_id).json()["stats"][0]["call_count"] == 1
    log = get(tollway, a, "/v1/credits/usage/log", model="gpt-4o-mini").json()["data"]
    assert len(log) == 2 and {row["model"] for row in log} == {"gpt-4o-mini"}
    daily = get(tollway, a, "/v1/credits/usage/daily", days="3", key_id=second_key).json()
    assert [row["call_count"] for row in daily["data"]][-1] == 1 and len(daily["data"]) == 3


def test_stats_daily_and_log_agree(tollway: Tollway, pair: tuple[Account, Account, str]) -> None:
    a, _, _ = pair
    stats = get(tollway, a, "/v1/credits/usage", days="7").json()
    assert stats["period_days"] == 7
    assert {r["model"]: r["call_count"] for r in stats["stats"]} == {"counted": 1, "gpt-4o-mini": 2}
    daily = get(tollway, a, "/v1/credits/usage/daily", days="7").json()["data"]
    assert sum(r["call_count"] for r in daily) == 3
    log = get(tollway, a, "/v1/credits/usage/log", limit="2").json()
    rest = get(tollway, a, "/v1/credits/usage/log", limit="2", cursor=log["next_cursor"]).json()
    ids = [r["id"] for r in log["data"] + rest["data"]]
    assert len(set(ids)) == 3 and rest["has_more"] is False
    response = get(tollway, a, f"/v1/usage/requests/{ids[0]}")
    record = response.json()
    assert record["id"] == ids[0]
    assert record["key"] == {"id": log["data"][0]["key_id"], "name": record["key"]["name"]}
    assert record["key"]["name"] in ("usage-a", "second")
    assert "tw-" not in response.text  # the key's secret is never shown
    assert set(record) >= {
        "tokens",
        "sources",
        "price",
        "cost_usd",
        "end_state",
        "stream",
        "upstream",
        "started_at",
        "finished_at",
    }


def test_a_key_never_sees_another_workspace(tollway: Tollway, pair: tuple[Account, Account, str]) -> None:
    a, b, second_key = pair
    theirs = get(tollway, a, "/v1/credits/usage/log").json()["data"][0]["id"]
    assert get(tollway, b, f"/v1/usage/requests/{theirs}").status_code == 404
    assert get(tollway, b, "/v1/usage/requests/req_does_not_exist").status_code == 404
    assert get(tollway, b, "/v1/usage", key_id=second_key).json()["totals"]["calls"] == 0
    assert get(tollway, b, "/v1/usage").json()["totals"]["calls"] == 1
    assert {r["id"] for r in get(tollway, b, "/v1/credits/usage/log").json()["data"]}.isdisjoint({theirs})
    for path in ("/admin/usage", f"/admin/workspaces/{a.workspace_id}/usage"):
        assert get(tollway, b, path).status_code == 401


def test_admin_views(tollway: Tollway, pair: tuple[Account, Account, str]) -> None:
    a, b, _ = pair
    one = tollway.admin("GET", f"/admin/workspaces/{a.workspace_id}/usage").json()
    assert one["totals"]["calls"] == 3
    every = tollway.admin("GET", "/admin/usage").json()
    mine = [r for r in every["breakdown"] if r["workspace_id"] in (a.workspace_id, b.workspace_id)]
    assert {(r["workspace_name"], r["model"], r["calls"]) for r in mine} == {
        ("usage-a", "counted", 1),
        ("usage-a", "gpt-4o-mini", 2),
        ("usage-b", "gpt-4o-mini", 1),
    }
    assert tollway.admin("GET", "/admin/workspaces/ws_nope/usage").status_code == 404
    table = tollway.cli(
        "admin", "--config", str(tollway.config), "usage", "--workspace", a.workspace_id, "--format", "table"
    )
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[-1].split()[:2] == ["TOTAL", "3"]


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/v1/usage", {"from": "not-a-date"}, "from"),
        ("/v1/usage", {"from": "2026-05-02", "to": "2026-05-01"}, "from"),
        ("/v1/usage", {"from": "2000-01-01", "to": "2026-01-01"}, "from"),
        ("/v1/credits/usage", {"days": "0"}, "days"),
        ("/v1/credits/usage/daily", {"days": "x"}, "days"),
        ("/v1/credits/usage/log", {"limit": "-1"}, "limit"),
        ("/v1/credits/usage/log", {"cursor": "!!"}, "cursor"),
        ("/v1/usage", {"model": "gpt\x00"}, "model"),
        ("/v1/credits/usage/log", {"key_id": "\x00"}, "key_id"),
    ],
)
def test_bad_parameters_are_400(
    tollway: Tollway, key: str, path: str, params: dict[str, str], param: str
) -> None:
    response = httpx.get(f"{tollway.url}{path}", params=params, headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)


VALUES = st.one_of(
    st.text(alphabet=string.printable, max_size=30),
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "1e9",
            "9" * 30,
            "2026-11-01",
            "2026-11-01T00:00:00Z",
            "2026-11-01T25:00",
            "NaN",
            "null",
            "\x00",
            "%",
            "2026-11-01T00:00:00+14:00",
            "99999-01-01",
        ]
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(ROUTES),
    params=st.dictionaries(
        st.sampled_from(["from", "to", "days", "limit", "cursor", "model", "key_id", "other"]),
        VALUES,
        max_size=4,
    ),
)
def test_no_query_string_gives_a_500(tollway: Tollway, key: str, route: str, params: dict[str, Any]) -> None:
    response = httpx.get(f"{tollway.url}{route}", params=params, headers={"authorization": f"Bearer {key}"})
    assert response.status_code in (200, 400), (response.status_code, response.text)


@pytest.mark.parametrize("request_id", ["req_%00x", "x" * 300, "req_1'; drop table usage_records; --"])
def test_odd_request_ids_are_plain_404s(tollway: Tollway, key: str, request_id: str) -> None:
    response = httpx.get(
        f"{tollway.url}/v1/usage/requests/{request_id}", headers={"authorization": f"Bearer {key}"}
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
