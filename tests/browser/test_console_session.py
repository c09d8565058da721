"""Signing in to /console and out again, by mouse and by keyboard; what a session cookie is worth."""

from __future__ import annotations

import httpx
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from tests.browser.site import Site
from tests.e2e.conftest import ADMIN_TOKEN, Tollway


def test_sign_in_and_out(site: Site) -> None:
    site.sign_in_console()
    assert site.exists("table#workspaces")
    cookie = site.session_cookie("console")
    assert (cookie["httpOnly"], cookie["sameSite"], cookie.get("secure", False)) == (True, "Strict", False)
    assert ADMIN_TOKEN not in cookie["value"]
    with site.client("console") as client:
        assert client.get("/console").status_code == 200
        assert site.submit(site.one("#sign-out")) == 200
        assert site.path == "/console/login"
        # The old cookie is worth nothing now, in the browser or anywhere else.
        refused = client.get("/console")
        assert (refused.status_code, refused.headers["location"]) == (303, "/console/login")
    site.go("/console")
    assert site.path == "/console/login"
    assert site.exists("form#login")


def test_a_wrong_admin_token_is_refused(site: Site) -> None:
    assert site.sign_in("console", "not-the-admin-token") == 401
    assert site.path == "/console/login"
    assert "Invalid admin token" in site.text(".error")
    assert [c for c in site.driver.get_cookies() if c.get("path") == "/console"] == []
    site.go("/console")
    assert site.path == "/console/login"


def test_sign_in_by_keyboard_alone(site: Site) -> None:
    assert site.go("/console/login") == 200
    label = site.one("label[for=token]")
    assert label.text.strip() == "Admin token"
    assert site.one("#token").get_attribute("type") == "password"
    assert site.one("button#sign-in").get_attribute("type") == "submit"
    # From nothing focused, Tab reaches the token field; typing and Enter sign in.
    site.driver.execute_script("document.activeElement && document.activeElement.blur()")
    for _ in range(30):
        if site.driver.switch_to.active_element.get_attribute("id") == "token":
            break
        ActionChains(site.driver).send_keys(Keys.TAB).perform()
    focused = site.driver.switch_to.active_element
    assert focused.get_attribute("id") == "token"
    focused.send_keys(ADMIN_TOKEN)
    assert site.press_enter(focused) == 200
    assert site.path == "/console"


def test_clicking_the_label_focuses_the_field(site: Site) -> None:
    site.go("/portal/login")
    assert site.one("label[for=api-key]").text.strip() == "API key"
    site.one("label[for=api-key]").click()
    assert site.driver.switch_to.active_element.get_attribute("id") == "api-key"


def test_pages_need_a_session(tollway: Tollway, site: Site) -> None:
    for path in ("/console", "/console/workspaces/ws_nope", "/console/prices", "/console/verify"):
        response = httpx.get(f"{tollway.url}{path}")
        assert (response.status_code, response.headers["location"]) == (303, "/console/login"), path
        site.go(path)
        assert site.path == "/console/login", path
    portal = httpx.get(f"{tollway.url}/portal")
    assert (portal.status_code, portal.headers["location"]) == (303, "/portal/login")


def test_forms_refuse_a_missing_csrf_token_and_other_origins(site: Site) -> None:
    site.sign_in_console()
    action = site.one("form#create-workspace").get_attribute("action")
    assert action is not None
    fields = site.fields("form#create-workspace")
    assert fields.get("csrf_token")
    name_field = site.one("#workspace-name").get_attribute("name")
    assert name_field is not None
    with site.client("console") as client:
        without = {k: v for k, v in fields.items() if k != "csrf_token"} | {name_field: "csrf-less"}
        assert client.post(action, data=without).status_code == 403
        wrong = fields | {"csrf_token": "0" * len(fields["csrf_token"]), name_field: "wrong-csrf"}
        assert client.post(action, data=wrong).status_code == 403
        elsewhere = {"origin": "https://evil.example"}
        assert (
            client.post(action, data=fields | {name_field: "cross-origin"}, headers=elsewhere).status_code
            == 403
        )
    workspaces = site.tollway.admin("GET", "/admin/workspaces").json()["data"]
    assert {"csrf-less", "wrong-csrf", "cross-origin"}.isdisjoint({w["name"] for w in workspaces})


def test_security_headers(site: Site) -> None:
    site.sign_in_console()
    with site.client("console") as client:
        pages = [client.get(path) for path in ("/console/login", "/console", "/console/prices")]
    pages.append(httpx.get(f"{site.tollway.url}/portal/login"))
    for page in pages:
        assert page.status_code == 200, page.url
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "same-origin"
        assert "no-store" in page.headers["cache-control"]
        assert page.headers["content-type"].startswith("text/html")
