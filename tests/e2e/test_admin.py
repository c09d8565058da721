"""The admin API over HTTP and `tollway admin` on the same database."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Tollway


def cli(tollway: Tollway, *args: str) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "tollway", "admin", "--config", str(tollway.config), *args],
        cwd=tollway.workdir,
        env=tollway.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_workspace_and_key_lifecycle(tollway: Tollway) -> None:
    created = tollway.admin("POST", "/admin/workspaces", json={"name": "lifecycle"})
    assert created.status_code == 201
    workspace = created.json()
    assert set(workspace) == {
        "id",
        "name",
        "created_at",
        "balance",
        "object",
        "low_balance_usd",
        "rate_limits",
    }
    assert workspace["low_balance_usd"] is None
    assert workspace["rate_limits"] == {
        "requests_per_minute": None,
        "tokens_per_minute": None,
        "max_concurrent": None,
    }
    assert workspace["balance"] == {
        "balance_usd": "0.000000000",
        "held_usd": "0.000000000",
        "available_usd": "0.000000000",
        "currency": "USD",
    }
    assert workspace["id"].startswith("ws_") and workspace["created_at"].endswith("Z")
    assert tollway.admin("GET", f"/admin/workspaces/{workspace['id']}").json() == workspace
    assert workspace in tollway.admin("GET", "/admin/workspaces").json()["data"]

    key = tollway.admin(
        "POST",
        f"/admin/workspaces/{workspace['id']}/keys",
        json={"name": "ci", "spend_limit_usd": "5.00", "spend_limit_period": "day"},
    )
    assert key.status_code == 201
    body = key.json()
    assert body["key"].startswith("tw-") and len(body["key"]) >= 46
    assert (body["spend_limit_usd"], body["spend_limit_period"], body["revoked"]) == (
        "5.000000000",
        "day",
        False,
    )
    listed = tollway.admin("GET", f"/admin/workspaces/{workspace['id']}/keys").json()["data"]
    assert [k["id"] for k in listed] == [body["id"]]
    assert "key" not in listed[0]  # the secret is shown once


@pytest.mark.parametrize("token", [None, "wrong"])
def test_admin_needs_the_admin_token(tollway: Tollway, token: str | None) -> None:
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    response = httpx.get(f"{tollway.url}/admin/workspaces", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_admin_token"


def test_workspace_keys_are_not_admin_tokens(tollway: Tollway, key: str) -> None:
    response = httpx.get(f"{tollway.url}/admin/workspaces", headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("path", "body", "param", "code"),
    [
        ("/admin/workspaces", {}, "name", "missing_required_parameter"),
        ("/admin/workspaces", {"name": ""}, "name", "invalid_value"),
        ("/admin/workspaces", {"name": 3}, "name", "invalid_type"),
        ("/admin/workspaces", {"name": "x", "extra": 1}, "extra", "unknown_parameter"),
        ("/admin/workspaces", {"name": "nul\x00name"}, "name", "invalid_value"),
    ],
)
def test_bad_admin_bodies(tollway: Tollway, path: str, body: Any, param: str, code: str) -> None:
    response = tollway.admin("POST", path, json=body)
    assert response.status_code == 400
    assert (response.json()["error"]["param"], response.json()["error"]["code"]) == (param, code)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"spend_limit_usd": "abc"}, "spend_limit_usd"),
        ({"spend_limit_usd": 5}, "spend_limit_usd"),
        ({"spend_limit_usd": "-1"}, "spend_limit_usd"),
        ({"spend_limit_usd": "0.0000000001"}, "spend_limit_usd"),
        ({"spend_limit_period": "week"}, "spend_limit_period"),
    ],
)
def test_bad_key_bodies(tollway: Tollway, body: dict[str, Any], param: str) -> None:
    workspace = tollway.admin("POST", "/admin/workspaces", json={"name": "bad-keys"}).json()
    response = tollway.admin("POST", f"/admin/workspaces/{workspace['id']}/keys", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_unknown_ids_are_404(tollway: Tollway) -> None:
    assert tollway.admin("GET", "/admin/workspaces/ws_missing").status_code == 404
    assert tollway.admin("GET", "/admin/workspaces/ws_%00").status_code == 404
    assert tollway.admin("DELETE", "/admin/keys/key%00x").status_code == 404
    assert tollway.admin("POST", "/admin/workspaces/ws_missing/keys", json={"name": "k"}).status_code == 404
    assert tollway.admin("DELETE", "/admin/keys/key_missing").status_code == 404


def test_cli_creates_a_key_the_running_server_accepts(tollway: Tollway) -> None:
    workspace = cli(tollway, "workspace", "create", "from-the-shell")
    assert workspace["name"] == "from-the-shell"
    key = cli(tollway, "key", "create", workspace["id"], "--name", "shell", "--spend-limit", "2.5")
    assert key["spend_limit_usd"] == "2.500000000"
    response = httpx.get(f"{tollway.url}/v1/models", headers={"authorization": f"Bearer {key['key']}"})
    assert response.status_code == 200
    assert workspace in cli(tollway, "workspace", "list")["data"]
    assert cli(tollway, "workspace", "get", workspace["id"]) == workspace
    assert [k["id"] for k in cli(tollway, "key", "list", workspace["id"])["data"]] == [key["id"]]
    revoked = cli(tollway, "key", "revoke", key["id"])
    assert revoked["revoked"] is True


def test_cli_reports_errors_without_a_traceback(tollway: Tollway) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tollway",
            "admin",
            "--config",
            str(tollway.config),
            "workspace",
            "get",
            "ws_nope",
        ],
        cwd=tollway.workdir,
        env=tollway.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "tollway: no workspace with id 'ws_nope'"


def test_cli_sets_and_lifts_limits_the_running_server_enforces(tollway: Tollway) -> None:
    workspace = cli(
        tollway, "workspace", "create", "limits-shell", "--low-balance", "2.50", "--max-concurrent", "9"
    )
    assert workspace["low_balance_usd"] == "2.500000000"
    assert workspace["rate_limits"] == {
        "requests_per_minute": None,
        "tokens_per_minute": None,
        "max_concurrent": 9,
    }
    cli(tollway, "credit", workspace["id"], "5.00")
    key = cli(tollway, "key", "create", workspace["id"], "--requests-per-minute", "1")
    assert key["rate_limits"]["requests_per_minute"] == 1
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    headers = {"authorization": f"Bearer {key['key']}"}
    statuses = [
        httpx.post(f"{tollway.url}/v1/chat/completions", json=body, headers=headers, timeout=30).status_code
        for _ in range(2)
    ]
    assert statuses == [200, 429]
    updated = cli(tollway, "key", "update", key["id"], "--requests-per-minute", "none", "--name", "renamed")
    assert (updated["name"], updated["rate_limits"]["requests_per_minute"]) == ("renamed", None)
    assert (
        httpx.post(f"{tollway.url}/v1/chat/completions", json=body, headers=headers, timeout=30).status_code
        == 200
    )
    lifted = cli(
        tollway, "workspace", "update", workspace["id"], "--low-balance", "none", "--max-concurrent", "none"
    )
    assert lifted["low_balance_usd"] is None and lifted["rate_limits"]["max_concurrent"] is None
    command = [sys.executable, "-m", "tollway", "admin", "--config", str(tollway.config)]
    bad = subprocess.run(
        [*command, "key", "update", key["id"], "--max-concurrent", "lots"],
        cwd=tollway.workdir,
        env=tollway.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode != 0 and "--max-concurrent must be a whole number or none" in bad.stderr
    assert "Traceback" not in bad.stderr
