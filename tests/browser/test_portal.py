"""The customer portal: one workspace only, read-only, and figures equal to the key's own API."""

from __future__ import annotations

from datetime import timedelta

import httpx

from tests.browser.conftest import Used
from tests.browser.site import Site, nanos_of
from tests.browser.test_console_usage import api, check_record, check_usage_section, choose_period, today
from tests.e2e.conftest import Tollway

# Whatever changes money, keys or limits: none of it is on a portal page.
WRITES = (
    "form#credit",
    "#credit-submit",
    "form#create-key",
    "#create-key-submit",
    "form.revoke",
    "button.revoke",
    "form.limits",
    "button.save-limits",
    "form#create-workspace",
    "#amount",
)


def test_a_key_sees_its_own_workspace_only(site: Site, tollway: Tollway, used: Used) -> None:
    site.sign_in_portal(used.b.key)
    cookie = site.session_cookie("portal")
    assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Strict")
    assert used.b.key not in cookie["value"]
    balance = api(tollway, used.b, "/v1/credits/balance")
    assert site.nanos("#balance") == nanos_of(balance["balance_usd"])
    assert site.nanos("#held") == nanos_of(balance["held_usd"])
    assert [r.get_attribute("data-request-id") for r in site.all("table#requests tr[data-request-id]")] == [
        *reversed(used.b_requests)
    ]
    assert [r.get_attribute("data-key-id") for r in site.all("table#keys tr[data-key-id]")] == [used.b.key_id]
    page = site.driver.page_source
    for theirs in (used.a.workspace_id, used.a.key_id, used.a_second_key, *used.a_requests):
        assert theirs not in page
    # Another workspace's request: 404, however its id was learned. The own one: 200.
    for request_id in used.a_requests:
        assert site.go(f"/portal/requests/{request_id}") == 404
        assert not site.exists("table#record")
    assert site.go(f"/portal/requests/{used.b_requests[0]}") == 200
    check_record(site, api(tollway, used.b, f"/v1/usage/requests/{used.b_requests[0]}"))
    # A portal session is no admin session.
    with site.client("portal") as client:
        assert client.get("/console").status_code == 303
        assert client.get(f"/console/workspaces/{used.b.workspace_id}").status_code == 303


def test_the_portal_is_read_only(site: Site, used: Used) -> None:
    site.sign_in_portal(used.a.key)
    pages = ["/portal", f"/portal/requests/{used.a_requests[0]}"]
    for path in pages:
        assert site.go(path) == 200
        present = [css for css in WRITES if site.exists(css)]
        assert present == [], (path, present)
        forms = {f.get_attribute("id") for f in site.all("form")}
        assert forms <= {"logout", "period"}, (path, forms)
        methods = {(f.get_attribute("method") or "get").lower() for f in site.all("form:not(#logout)")}
        assert methods <= {"get"}, (path, methods)
    # A POST to the console's write routes with a portal cookie goes nowhere either.
    site.go("/portal")
    with site.client("portal") as client:
        for path in (
            f"/console/workspaces/{used.a.workspace_id}/credits",
            f"/console/workspaces/{used.a.workspace_id}/keys",
        ):
            refused = client.post(path, data={"amount_usd": "100"})
            assert refused.status_code in (303, 403, 404, 405), (path, refused.status_code)
    assert (
        site.tollway.balance(used.a)["balance_usd"]
        == api(site.tollway, used.a, "/v1/credits/balance")["balance_usd"]
    )


def test_portal_charts_and_keys_equal_the_api(site: Site, tollway: Tollway, used: Used) -> None:
    day = today(tollway, used)
    first, last = day - timedelta(days=1), day + timedelta(days=1)
    site.sign_in_portal(used.a.key)
    choose_period(site, first, last)
    report = api(tollway, used.a, "/v1/usage", **{"from": first.isoformat(), "to": last.isoformat()})
    check_usage_section(site, report, day)
    listed = {
        k["id"]: k
        for k in tollway.admin("GET", f"/admin/workspaces/{used.a.workspace_id}/keys").json()["data"]
    }
    rows = {r.get_attribute("data-key-id"): r for r in site.all("table#keys tr[data-key-id]")}
    assert set(rows) == set(listed) == {used.a.key_id, used.a_second_key}
    second = rows[used.a_second_key]
    assert site.nanos("td.spend-limit", second) == 3_000_000_000
    second_usage = api(tollway, used.a, "/v1/usage", key_id=used.a_second_key)
    assert site.nanos("td.spend", second) == nanos_of(second_usage["totals"]["cost_usd"])
    assert site.text("td.status", second) == "active"
    ledger = api(tollway, used.a, "/v1/credits/ledger", limit="100")["data"]
    shown = [r.get_attribute("data-entry-id") for r in site.all("table#ledger tr[data-entry-id]")]
    assert shown == [e["id"] for e in ledger][: len(shown)] and shown


def test_a_wrong_or_revoked_key_is_refused_and_revoking_ends_the_session(
    site: Site, tollway: Tollway
) -> None:
    assert site.sign_in("portal", "tw-not-a-key") == 401
    assert site.exists(".error")
    account = tollway.new_account("portal-revoked", credit_usd="1.00")
    site.sign_in_portal(account.key)
    assert tollway.admin("DELETE", f"/admin/keys/{account.key_id}").status_code == 200
    site.go("/portal")
    assert site.path == "/portal/login"
    assert site.sign_in("portal", account.key) == 401
    assert site.exists(".error")


def test_portal_sign_out(site: Site, tollway: Tollway) -> None:
    account = tollway.new_account("portal-out", credit_usd="1.00")
    site.sign_in_portal(account.key)
    with site.client("portal") as client:
        assert site.submit(site.one("#sign-out")) == 200
        assert site.path == "/portal/login"
        assert client.get("/portal").status_code == 303
    assert (
        httpx.get(f"{tollway.url}/v1/models", headers={"authorization": f"Bearer {account.key}"}).status_code
        == 200
    )
