"""The portal: one workspace, read-only; its session ends with its key."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.console.conftest import ADMIN_HEADERS, Browser, Forms, chat, nanos, new_workspace, page
from tollway.money import parse_usd


async def test_portal_shows_its_own_workspace_read_only(browser: Browser, client: httpx.AsyncClient) -> None:
    _, key_id, key = await new_workspace(client, credit="7.5")
    other_id, _, other_key = await new_workspace(client, name="other")
    await chat(client, key)
    await chat(client, other_key)
    await browser.sign_in_portal(key)
    response = await browser.get("/portal")
    root = page(response.text)
    api = (await client.get("/v1/credits/balance", headers={"authorization": f"Bearer {key}"})).json()
    assert nanos(root.one("#balance")) == parse_usd(api["balance_usd"])
    assert nanos(root.one("#available")) == parse_usd(api["available_usd"])
    assert other_id not in response.text
    for part in (
        "form#period",
        "svg#cost-chart",
        "svg#tokens-chart",
        "table#usage-totals",
        "table#requests",
        "table#ledger",
        "table#keys",
    ):
        assert root.select(part), part
    # Read-only: the only POST form is sign-out.
    posts = [f.attrs.get("id") for f in Forms(response.text).forms if f.attrs.get("method") == "post"]
    assert posts == ["logout"]
    assert (
        not root.select("form#credit") and not root.select("form.revoke") and not root.select("form.limits")
    )
    keys = root.select("table#keys tr[data-key-id]")
    assert [tr.attrs["data-key-id"] for tr in keys] == [key_id]
    link = root.one("table#requests a.request").attrs["href"]
    assert link.startswith("/portal/requests/req_")
    assert (await browser.get(link)).status_code == 200


async def test_portal_request_of_another_workspace_is_404(
    browser: Browser, client: httpx.AsyncClient
) -> None:
    _, _, key = await new_workspace(client)
    _, _, other_key = await new_workspace(client, name="other")
    theirs = (await chat(client, other_key)).headers["x-request-id"]
    await browser.sign_in_portal(key)
    response = await browser.get(f"/portal/requests/{theirs}")
    assert response.status_code == 404
    assert theirs in response.text or "No usage record" in response.text


async def test_portal_session_ends_when_its_key_is_revoked(
    browsers: Callable[[], Browser], client: httpx.AsyncClient
) -> None:
    workspace_id, key_id, key = await new_workspace(client)
    second = (
        await client.post(f"/admin/workspaces/{workspace_id}/keys", json={"name": "b"}, headers=ADMIN_HEADERS)
    ).json()
    by_api, by_console, other = browsers(), browsers(), browsers()
    await by_api.sign_in_portal(key)
    await other.sign_in_portal(second["key"])
    assert (await by_api.get("/portal")).status_code == 200
    await client.delete(f"/admin/keys/{key_id}", headers=ADMIN_HEADERS)  # revoked through the admin API
    gone = await by_api.get("/portal")
    assert gone.status_code == 303 and gone.headers["location"] == "/portal/login"
    assert (await other.get("/portal")).status_code == 200  # another key's session lives on
    # Revoked from the console: the same.
    await by_console.sign_in_admin()
    shown = await by_console.get(f"/console/workspaces/{workspace_id}")
    form = next(
        f for f in Forms(shown.text).forms if f.attrs.get("action") == f"/console/keys/{second['id']}/revoke"
    )
    await by_console.post(form.attrs["action"], form.fields)
    assert (await other.get("/portal")).status_code == 303


async def test_portal_cookie_cannot_post_console_forms(browser: Browser, client: httpx.AsyncClient) -> None:
    workspace_id, _, key = await new_workspace(client)
    await browser.sign_in_portal(key)
    home = await browser.get("/portal")
    csrf = Forms(home.text).find("#logout").fields["csrf_token"]
    response = await browser.post(
        f"/console/workspaces/{workspace_id}/credit",
        {"csrf_token": csrf, "amount_usd": "5", "idempotency_key": "x"},
    )
    assert response.status_code == 303 and response.headers["location"] == "/console/login"
    balance = (await client.get("/v1/credits/balance", headers={"authorization": f"Bearer {key}"})).json()
    assert balance["balance_usd"] == "10.000000000"
