"""The console's forms: CSRF, idempotent credits, keys shown once, revoke, limits, and bad input."""

from __future__ import annotations

import httpx
import pytest

from tests.console.conftest import ADMIN_HEADERS, Browser, Forms, new_workspace, page


async def balance(client: httpx.AsyncClient, workspace_id: str) -> dict[str, str]:
    got = await client.get(f"/admin/workspaces/{workspace_id}", headers=ADMIN_HEADERS)
    figures: dict[str, str] = got.json()["balance"]
    return figures


async def signed_in_workspace(
    browser: Browser, client: httpx.AsyncClient
) -> tuple[str, str, str, httpx.Response]:
    workspace_id, key_id, key = await new_workspace(client)
    await browser.sign_in_admin()
    shown = await browser.get(f"/console/workspaces/{workspace_id}")
    assert shown.status_code == 200, shown.text
    return workspace_id, key_id, key, shown


async def test_credit_then_the_same_form_again_credits_once(
    browser: Browser, client: httpx.AsyncClient
) -> None:
    workspace_id, _, _, shown = await signed_in_workspace(browser, client)
    first = await browser.submit(shown, "#credit", amount_usd="2.50", note="top-up")
    assert first.status_code == 303
    assert first.headers["location"] == f"/console/workspaces/{workspace_id}?flash=credited"
    again = await browser.submit(shown, "#credit", amount_usd="2.50", note="top-up")  # a double click
    assert again.status_code == 303 and again.headers["location"].endswith("flash=replayed")
    assert (await balance(client, workspace_id))["balance_usd"] == "12.500000000"
    after = await browser.get(first.headers["location"])
    root = page(after.text)
    assert "Credit recorded" in root.one(".flash").text
    credits = [r for r in root.select("table#ledger tr[data-entry-id]") if r.one("td.type").text == "credit"]
    assert len(credits) == 2  # the API's initial credit and this one, once
    # A fresh render has a fresh idempotency key: it credits again.
    assert (
        Forms(after.text).find("#credit").fields["idempotency_key"]
        != Forms(shown.text).find("#credit").fields["idempotency_key"]
    )


async def test_refund_needs_a_note(browser: Browser, client: httpx.AsyncClient) -> None:
    workspace_id, _, _, shown = await signed_in_workspace(browser, client)
    refused = await browser.submit(shown, "#credit", amount_usd="-1.00", note="")
    assert refused.status_code == 400
    assert "note" in page(refused.text).one(".error").text
    done = await browser.submit(shown, "#credit", amount_usd="-1.00", note="goodwill reversed")
    assert done.headers["location"].endswith("flash=refunded")
    assert (await balance(client, workspace_id))["balance_usd"] == "9.000000000"


@pytest.mark.parametrize(
    ("form", "changes"),
    [
        ("#credit", {"amount_usd": "lots"}),
        ("#credit", {"amount_usd": "1.0000000001"}),
        ("#credit", {"amount_usd": "0"}),
        ("#credit", {"amount_usd": "1e400"}),
        ("#credit", {"amount_usd": "1", "idempotency_key": ""}),
        ("#create-key", {"rpm": "fast"}),
        ("#create-key", {"tpm": "-1"}),
        ("#create-key", {"max_concurrent": "99999999999999"}),
        ("#create-key", {"spend_limit_usd": "-5"}),
        ("#create-key", {"spend_limit_period": "week"}),
        ("#create-key", {"name": "x" * 201}),
    ],
)
async def test_bad_input_is_a_400_page_and_changes_nothing(
    browser: Browser, client: httpx.AsyncClient, form: str, changes: dict[str, str]
) -> None:
    workspace_id, _, _, shown = await signed_in_workspace(browser, client)
    response = await browser.submit(shown, form, **changes)
    assert response.status_code == 400, response.text
    assert page(response.text).one(".error").text
    assert (await balance(client, workspace_id))["balance_usd"] == "10.000000000"
    keys = (await client.get(f"/admin/workspaces/{workspace_id}/keys", headers=ADMIN_HEADERS)).json()["data"]
    assert len(keys) == 1


@pytest.mark.parametrize("token", [None, "", "wrong"])
async def test_csrf_missing_or_wrong_is_403_and_nothing_changes(
    browser: Browser, client: httpx.AsyncClient, token: str | None
) -> None:
    workspace_id, key_id, _, shown = await signed_in_workspace(browser, client)
    forms = Forms(shown.text)
    for selector in ("#credit", "#create-key", ".revoke", ".limits"):
        form = forms.find(selector)
        fields = dict(form.fields)
        if token is None:
            del fields["csrf_token"]
        else:
            fields["csrf_token"] = token
        if selector == "#credit":
            fields["amount_usd"] = "5"
        if selector == ".limits":
            fields["rpm"] = "1"
        response = await browser.post(form.attrs["action"], fields)
        assert response.status_code == 403, selector
    assert (await balance(client, workspace_id))["balance_usd"] == "10.000000000"
    keys = (await client.get(f"/admin/workspaces/{workspace_id}/keys", headers=ADMIN_HEADERS)).json()["data"]
    assert [(k["id"], k["revoked"], k["rate_limits"]["requests_per_minute"]) for k in keys] == [
        (key_id, False, None)
    ]


async def test_a_cross_origin_post_is_refused(browser: Browser, client: httpx.AsyncClient) -> None:
    workspace_id, _, _, shown = await signed_in_workspace(browser, client)
    form = Forms(shown.text).find("#credit")
    fields = {**form.fields, "amount_usd": "5"}
    evil = await browser.post(form.attrs["action"], fields, headers={"origin": "https://evil.example"})
    assert evil.status_code == 403
    site = await browser.post(form.attrs["action"], fields, headers={"sec-fetch-site": "cross-site"})
    assert site.status_code == 403
    own = await browser.post(form.attrs["action"], fields, headers={"origin": "http://tollway.test"})
    assert own.status_code == 303
    assert (await balance(client, workspace_id))["balance_usd"] == "15.000000000"


async def test_a_new_key_is_shown_once_then_only_its_prefix(
    browser: Browser, client: httpx.AsyncClient
) -> None:
    workspace_id, _, _, shown = await signed_in_workspace(browser, client)
    created = await browser.submit(
        shown,
        "#create-key",
        name="ci",
        spend_limit_usd="3.5",
        spend_limit_period="day",
        rpm="60",
        tpm="",
        max_concurrent="2",
    )
    assert created.status_code == 201
    root = page(created.text)
    secret = root.one("code#new-key").text
    assert secret.startswith("tw-") and root.select("button#copy-key")
    assert '<script src="/console/static/console.js"' in created.text
    models = await client.get("/v1/models", headers={"authorization": f"Bearer {secret}"})
    assert models.status_code == 200
    keys = (await client.get(f"/admin/workspaces/{workspace_id}/keys", headers=ADMIN_HEADERS)).json()["data"]
    new = next(k for k in keys if k["name"] == "ci")
    assert new["spend_limit_usd"] == "3.500000000" and new["spend_limit_period"] == "day"
    assert new["rate_limits"] == {"requests_per_minute": 60, "tokens_per_minute": None, "max_concurrent": 2}
    later = await browser.get(f"/console/workspaces/{workspace_id}")
    assert secret not in later.text
    row = page(later.text).one(f'table#keys tr[data-key-id="{new["id"]}"]')
    assert row.one("td.key-prefix").text.startswith(new["key_prefix"])
    assert row.one("td.spend-limit").attrs["data-nanos"] == "3500000000"
    assert row.one("td.status").text == "active"


async def test_revoke_then_the_key_gets_401(browser: Browser, client: httpx.AsyncClient) -> None:
    _, key_id, key, shown = await signed_in_workspace(browser, client)
    form = next(
        f for f in Forms(shown.text).forms if f.attrs.get("action") == f"/console/keys/{key_id}/revoke"
    )
    response = await browser.post(form.attrs["action"], form.fields)
    assert response.status_code == 303 and response.headers["location"].endswith("flash=revoked")
    models = await client.get("/v1/models", headers={"authorization": f"Bearer {key}"})
    assert models.status_code == 401
    row = page((await browser.get(response.headers["location"])).text).one(f'tr[data-key-id="{key_id}"]')
    assert row.one("td.status").text == "revoked"


async def test_the_limits_form_sets_and_lifts_limits(browser: Browser, client: httpx.AsyncClient) -> None:
    workspace_id, key_id, _, shown = await signed_in_workspace(browser, client)
    done = await browser.submit(
        shown,
        ".limits",
        rpm="120",
        tpm="50000",
        max_concurrent="3",
        spend_limit_usd="7.25",
        spend_limit_period="month",
    )
    assert done.status_code == 303 and done.headers["location"].endswith("flash=limits")
    key = (await client.get(f"/admin/workspaces/{workspace_id}/keys", headers=ADMIN_HEADERS)).json()["data"][
        0
    ]
    assert key["rate_limits"] == {"requests_per_minute": 120, "tokens_per_minute": 50000, "max_concurrent": 3}
    assert key["spend_limit_usd"] == "7.250000000" and key["spend_limit_period"] == "month"
    again = await browser.get(done.headers["location"])
    form = Forms(again.text).find(".limits")
    assert form.fields["rpm"] == "120" and form.fields["spend_limit_usd"] == "7.25"
    row = page(again.text).one(f'tr[data-key-id="{key_id}"]')
    assert "120" in row.one("td.rate-limits").text
    lifted = await browser.submit(again, ".limits", rpm="", tpm="", max_concurrent="", spend_limit_usd="")
    assert lifted.status_code == 303
    key = (await client.get(f"/admin/workspaces/{workspace_id}/keys", headers=ADMIN_HEADERS)).json()["data"][
        0
    ]
    assert key["rate_limits"] == {
        "requests_per_minute": None,
        "tokens_per_minute": None,
        "max_concurrent": None,
    }
    assert key["spend_limit_usd"] is None


async def test_a_zero_rpm_limit_pauses_the_key(browser: Browser, client: httpx.AsyncClient) -> None:
    _, _, key, shown = await signed_in_workspace(browser, client)
    await browser.submit(shown, ".limits", rpm="0")
    body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    refused = await client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})
    assert refused.status_code == 429


async def test_create_workspace(browser: Browser) -> None:
    await browser.sign_in_admin()
    home = await browser.get("/console")
    created = await browser.submit(home, "#create-workspace", name="Fresh one")
    assert created.status_code == 303
    shown = await browser.get(created.headers["location"])
    assert shown.status_code == 200 and "Workspace created" in shown.text
    listed = page((await browser.get("/console")).text)
    names = [a.text for a in listed.select("table#workspaces td.name a.workspace")]
    assert "Fresh one" in names
    empty = await browser.submit(home, "#create-workspace", name="  ")
    assert empty.status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/console/workspaces/ws_nope",
        "/console/workspaces/..%2f",
        "/console/requests/req_nope",
        "/console/requests/%00",
    ],
)
async def test_unknown_ids_are_404_pages(browser: Browser, path: str) -> None:
    await browser.sign_in_admin()
    response = await browser.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("action", ["revoke", "limits"])
async def test_unknown_key_is_404(browser: Browser, client: httpx.AsyncClient, action: str) -> None:
    _, _, _, shown = await signed_in_workspace(browser, client)
    csrf = Forms(shown.text).find("#credit").fields["csrf_token"]
    response = await browser.post(f"/console/keys/key_nope/{action}", {"csrf_token": csrf})
    assert response.status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "from=2026-13-01",
        "to=yesterday",
        "from=2026-02-01&to=2026-01-01",
        "from=1990-01-01&to=2026-01-01",
        "requests=%%%",
        "ledger=bm9wZQ",
        "from=2026-01-01%00",
    ],
)
async def test_bad_query_is_a_400_page(browser: Browser, client: httpx.AsyncClient, query: str) -> None:
    workspace_id, _, _, _ = await signed_in_workspace(browser, client)
    response = await browser.get(f"/console/workspaces/{workspace_id}?{query}")
    assert response.status_code == 400, response.text
    assert page(response.text).one(".error").text


async def test_garbage_form_bodies_are_4xx_not_5xx(browser: Browser, client: httpx.AsyncClient) -> None:
    workspace_id, _, _, _ = await signed_in_workspace(browser, client)
    for body in (b"\xff\xfe", b"amount_usd=%ff%fe", b"a=" + b"%00", b"&" * 500, b"x" * 10000):
        response = await browser.client.post(
            f"/console/workspaces/{workspace_id}/credit",
            content=body,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert 400 <= response.status_code < 500, (body[:20], response.status_code)
