"""The console's workspace pages: the list, credits (once on a double submit), keys and their limits."""

from __future__ import annotations

from typing import Any

import httpx
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from tests.browser.site import Site, nanos_of
from tests.e2e.conftest import Account, Tollway

USD = 1_000_000_000


def fill(element: WebElement, value: str) -> None:
    """Type into an input, or choose an option of a select, as a person would."""
    if element.tag_name == "select":
        Select(element).select_by_value(value)
    else:
        element.clear()
        element.send_keys(value)


def ledger(tollway: Tollway, account: Account) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{tollway.url}/v1/credits/ledger",
        params={"limit": "100"},
        headers={"authorization": f"Bearer {account.key}"},
    )
    assert response.status_code == 200
    entries: list[dict[str, Any]] = response.json()["data"]
    return entries


def keys(tollway: Tollway, workspace_id: str) -> dict[str, dict[str, Any]]:
    listed = tollway.admin("GET", f"/admin/workspaces/{workspace_id}/keys").json()["data"]
    return {key["id"]: key for key in listed}


def open_workspace(site: Site, workspace_id: str) -> None:
    assert site.go(f"/console/workspaces/{workspace_id}") == 200
    assert site.exists("form#credit")


def test_the_workspace_list(site: Site, tollway: Tollway) -> None:
    account = tollway.new_account("listed", credit_usd="12.345678901")
    site.sign_in_console()
    row = site.one(f'table#workspaces tr[data-workspace-id="{account.workspace_id}"]')
    assert site.text("td.name", row) == "listed"
    balance = tollway.balance(account)
    assert site.nanos("td.balance", row) == nanos_of(balance["balance_usd"]) == 12_345_678_901
    assert site.nanos("td.held", row) == 0
    assert site.nanos("td.available", row) == 12_345_678_901
    assert "$12.35" in site.text("td.balance", row)
    site.one("td.name a.workspace", row).click()
    assert site.path == f"/console/workspaces/{account.workspace_id}"
    assert site.nanos("#balance") == 12_345_678_901
    assert site.nanos("#available") == 12_345_678_901


def test_a_workspace_created_in_the_form(site: Site, tollway: Tollway) -> None:
    site.sign_in_console()
    site.one("#workspace-name").send_keys("made in the browser")
    form = site.one("form#create-workspace")
    site.submit(site.one("[type=submit]", form))
    made = [
        w
        for w in tollway.admin("GET", "/admin/workspaces").json()["data"]
        if w["name"] == "made in the browser"
    ]
    assert len(made) == 1
    site.go("/console")
    row = site.one(f'table#workspaces tr[data-workspace-id="{made[0]["id"]}"]')
    assert site.nanos("td.balance", row) == 0


def test_a_double_submit_credits_once(site: Site, tollway: Tollway) -> None:
    account = tollway.new_account("double-submit", credit_usd=None)
    site.sign_in_console()
    open_workspace(site, account.workspace_id)
    assert site.nanos("#balance") == 0
    assert site.one("label[for=amount]").text.strip() == "Amount (USD)"
    fill(site.one("#amount"), "2.50")
    fill(site.one("#note"), "top-up by card")
    form = site.one("form#credit")
    action = form.get_attribute("action")
    assert action is not None
    submitted = site.fields("form#credit")
    assert submitted["idempotency_key"] and submitted["csrf_token"]
    # Two clicks in a row, as an impatient person makes them ...
    page = site.one("html")
    site.driver.execute_script("arguments[0].click(); arguments[0].click();", site.one("#credit-submit"))
    site.wait_for_new_page(page)
    assert site.path == f"/console/workspaces/{account.workspace_id}"
    assert site.exists(".flash")
    # ... and the very same rendered form posted again (a resubmit, a retry after a lost answer).
    with site.client("console") as client:
        again = client.post(action, data=submitted)
    assert again.status_code == 303, again.text
    credits = [e for e in ledger(tollway, account) if e["type"] == "credit"]
    assert [(e["amount_usd"], e["note"]) for e in credits] == [("2.500000000", "top-up by card")]
    assert tollway.balance(account)["balance_usd"] == "2.500000000"
    open_workspace(site, account.workspace_id)
    assert site.nanos("#balance") == 2_500_000_000
    [row] = site.all("table#ledger tr[data-entry-id]")
    assert site.text("td.type", row) == "credit"
    assert site.nanos("td.amount", row) == site.nanos("td.balance-after", row) == 2_500_000_000
    assert site.text("td.note", row) == "top-up by card"
    # A fresh render carries a fresh idempotency key: a second, deliberate credit goes through.
    assert site.fields("form#credit")["idempotency_key"] != submitted["idempotency_key"]


def test_a_refund_and_the_running_balance(site: Site, tollway: Tollway) -> None:
    account = tollway.new_account("refunded", credit_usd="3.00")
    site.sign_in_console()
    open_workspace(site, account.workspace_id)
    fill(site.one("#amount"), "-1.25")
    site.submit(site.one("#credit-submit"))  # no note: refused, nothing moves
    assert tollway.balance(account)["balance_usd"] == "3.000000000"
    assert site.exists(".error") or site.exists(".flash")
    open_workspace(site, account.workspace_id)
    fill(site.one("#amount"), "-1.25")
    fill(site.one("#note"), "goodwill refund")
    site.submit(site.one("#credit-submit"))
    assert tollway.balance(account)["balance_usd"] == "1.750000000"
    open_workspace(site, account.workspace_id)
    rows = site.all("table#ledger tr[data-entry-id]")
    entries = ledger(tollway, account)
    assert [r.get_attribute("data-entry-id") for r in rows] == [e["id"] for e in entries]
    assert [(site.nanos("td.amount", r), site.nanos("td.balance-after", r)) for r in rows] == [
        (-1_250_000_000, 1_750_000_000),
        (3_000_000_000, 3_000_000_000),
    ]
    assert site.text("td.note", rows[0]) == "goodwill refund"
    assert site.nanos("#balance") == 1_750_000_000


def test_a_key_is_shown_once_works_and_is_revoked(site: Site, tollway: Tollway) -> None:
    account = tollway.new_account("keys", credit_usd="1.00")
    site.sign_in_console()
    open_workspace(site, account.workspace_id)
    for css, value in (
        ("#key-name", "made in the console"),
        ("#spend-limit", "5.00"),
        ("#spend-period", "month"),
        ("#rpm", "60"),
        ("#tpm", "100000"),
        ("#max-concurrent", "4"),
    ):
        fill(site.one(css), value)
    assert site.submit(site.one("#create-key-submit")) in (200, 201)  # the page that shows the secret
    secret = site.text("code#new-key")
    assert secret.startswith("tw-")
    assert site.exists("button#copy-key")
    assert secret not in site.driver.current_url
    # It works at once against the API.
    models = httpx.get(f"{tollway.url}/v1/models", headers={"authorization": f"Bearer {secret}"})
    assert models.status_code == 200
    [made] = [k for k in keys(tollway, account.workspace_id).values() if k["name"] == "made in the console"]
    assert (made["spend_limit_usd"], made["spend_limit_period"], made["rate_limits"]) == (
        "5.000000000",
        "month",
        {"requests_per_minute": 60, "tokens_per_minute": 100000, "max_concurrent": 4},
    )
    assert secret.startswith(made["key_prefix"])
    # Shown once: the page loaded again no longer has it anywhere.
    open_workspace(site, account.workspace_id)
    assert not site.exists("code#new-key")
    assert secret not in site.driver.page_source
    row = site.one(f'table#keys tr[data-key-id="{made["id"]}"]')
    assert site.text("td.key-name", row) == "made in the console"
    assert made["key_prefix"] in site.text("td.key-prefix", row)
    assert site.nanos("td.spend-limit", row) == 5 * USD
    assert site.nanos("td.spend", row) == 0
    assert site.text("td.status", row) == "active"
    # Revoked from its row: 401 from then on.
    site.submit(site.one("form.revoke button.revoke", row))
    row = site.one(f'table#keys tr[data-key-id="{made["id"]}"]')
    assert site.text("td.status", row) == "revoked"
    assert not site.all("form.revoke", row)
    assert keys(tollway, account.workspace_id)[made["id"]]["revoked"] is True
    refused = httpx.get(f"{tollway.url}/v1/models", headers={"authorization": f"Bearer {secret}"})
    assert refused.status_code == 401
    # The workspace's other key is untouched.
    other = site.one(f'table#keys tr[data-key-id="{account.key_id}"]')
    assert site.text("td.status", other) == "active"


def test_limits_set_in_the_form_are_what_the_api_says(site: Site, tollway: Tollway) -> None:
    account = tollway.new_account("limited", credit_usd="1.00")
    site.sign_in_console()
    open_workspace(site, account.workspace_id)

    def save(values: dict[str, str]) -> None:
        row = site.one(f'table#keys tr[data-key-id="{account.key_id}"]')
        details = site.one("details", row)  # the form folds away in the row
        if details.get_attribute("open") is None:
            site.one("summary", details).click()
        form = site.one("form.limits", row)
        for name, value in values.items():
            fill(site.one(f'[name="{name}"]', form), value)
        site.submit(site.one("button.save-limits", form))

    save(
        {
            "rpm": "7",
            "tpm": "7000",
            "max_concurrent": "3",
            "spend_limit_usd": "4.25",
            "spend_limit_period": "day",
        }
    )
    key = keys(tollway, account.workspace_id)[account.key_id]
    assert (key["spend_limit_usd"], key["spend_limit_period"], key["rate_limits"]) == (
        "4.250000000",
        "day",
        {"requests_per_minute": 7, "tokens_per_minute": 7000, "max_concurrent": 3},
    )
    row = site.one(f'table#keys tr[data-key-id="{account.key_id}"]')
    assert site.nanos("td.spend-limit", row) == 4_250_000_000
    assert "7" in site.text("td.rate-limits", row)
    # Empty fields lift a limit.
    save({"rpm": "", "spend_limit_usd": ""})
    key = keys(tollway, account.workspace_id)[account.key_id]
    assert (key["spend_limit_usd"], key["rate_limits"]) == (
        None,
        {"requests_per_minute": None, "tokens_per_minute": 7000, "max_concurrent": 3},
    )
    row = site.one(f'table#keys tr[data-key-id="{account.key_id}"]')
    assert site.text("td.spend-limit", row) == "none"
    # The limit is in force for the API at once: 3 in flight at most is not observable here, but a
    # paused key (0 requests per minute) is.
    save({"rpm": "0"})
    paused = httpx.post(
        f"{tollway.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {account.key}"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert paused.status_code == 429
