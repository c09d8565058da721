"""Signing in and out of the console and the portal: cookies, sessions, redirects."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from sqlalchemy import text

from tests.console.conftest import ADMIN, Browser, new_workspace, page
from tollway.db import create_engine


async def session_rows(database_url: str) -> list[tuple[str, str]]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            return [
                tuple(r) for r in (await conn.execute(text("SELECT id_hash, kind FROM console_sessions")))
            ]
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    "path", ["/console", "/console/prices", "/console/verify", "/console/workspaces/ws_x"]
)
async def test_signed_out_pages_redirect_to_login(browser: Browser, path: str) -> None:
    response = await browser.get(path)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"


async def test_login_page_has_the_contract_form(browser: Browser) -> None:
    response = await browser.get("/console/login")
    assert response.status_code == 200
    root = page(response.text)
    form = root.one("form#login")
    assert form.attrs["method"] == "post" and form.attrs["action"] == "/console/login"
    assert root.one("label[for=token]").text == "Admin token"
    field = root.one("input#token")
    assert field.attrs["name"] == "token" and field.attrs["type"] == "password"
    button = root.one("button#sign-in")
    assert button.attrs["type"] == "submit" and button.text == "Sign in"
    assert root.select("html[lang=en]") and root.select("main") and root.select("nav")


async def test_wrong_token_is_401_with_an_error(browser: Browser) -> None:
    response = await browser.post("/console/login", {"token": "not-it"})
    assert response.status_code == 401
    assert "Invalid admin token" in page(response.text).one(".error").text
    assert "set-cookie" not in response.headers


async def test_sign_in_sets_a_strict_http_only_cookie_and_stores_only_its_hash(
    browser: Browser, database_url: str
) -> None:
    response = await browser.sign_in_admin()
    assert response.headers["location"] == "/console"
    cookie = response.headers["set-cookie"]
    parts = [p.strip().lower() for p in cookie.split(";")]
    assert "httponly" in parts and "samesite=strict" in parts and "path=/console" in parts
    assert "secure" not in parts  # plain http here; https requests get Secure
    value = cookie.split(";")[0].split("=", 1)[1]
    rows = await session_rows(database_url)
    assert rows == [(hashlib.sha256(value.encode()).hexdigest(), "admin")]
    home = await browser.get("/console")
    assert home.status_code == 200
    assert "Signed in as admin" in page(home.text).one("#role").text


async def test_https_requests_get_a_secure_cookie(client: httpx.AsyncClient) -> None:
    response = await client.post("https://tollway.test/console/login", data={"token": ADMIN})
    assert response.status_code == 303
    assert "secure" in [p.strip().lower() for p in response.headers["set-cookie"].split(";")]


async def test_sign_out_ends_the_session_everywhere(browser: Browser, database_url: str) -> None:
    await browser.sign_in_admin()
    old = dict(browser.cookies.items())
    home = await browser.get("/console")
    out = await browser.submit(home, "#logout")
    assert out.status_code == 303 and out.headers["location"] == "/console/login"
    assert (await browser.get("/console")).status_code == 303
    assert await session_rows(database_url) == []
    browser.cookies.clear()
    for name, value in old.items():  # the cookie a copy kept
        browser.cookies.set(name, value, domain="tollway.test", path="/console")
    replay = await browser.get("/console")
    assert replay.status_code == 303 and replay.headers["location"] == "/console/login"


async def test_sign_out_without_the_csrf_token_is_refused(browser: Browser) -> None:
    await browser.sign_in_admin()
    assert (await browser.post("/console/logout", {})).status_code == 403
    assert (await browser.get("/console")).status_code == 200


async def test_a_forged_cookie_gets_nothing(browser: Browser) -> None:
    browser.cookies.set("tollway_console", "made-up", domain="tollway.test", path="/console")
    response = await browser.get("/console")
    assert response.status_code == 303


async def test_portal_sign_in_and_out(browser: Browser, client: httpx.AsyncClient) -> None:
    workspace_id, _, key = await new_workspace(client)
    assert (await browser.get("/portal")).status_code == 303
    login = await browser.get("/portal/login")
    root = page(login.text)
    assert root.one("label[for=api-key]").text == "API key"
    assert root.one("input#api-key").attrs["name"] == "api_key"
    wrong = await browser.post("/portal/login", {"api_key": "tw-not-a-key"})
    assert wrong.status_code == 401 and page(wrong.text).select(".error")
    response = await browser.sign_in_portal(key)
    assert "path=/portal" in response.headers["set-cookie"].lower()
    home = await browser.get("/portal")
    assert home.status_code == 200 and workspace_id in home.text
    # The portal's cookie is no console session.
    assert (await browser.get("/console")).status_code == 303
    out = await browser.submit(home, "#logout")
    assert out.headers["location"] == "/portal/login"
    assert (await browser.get("/portal")).status_code == 303


async def test_a_revoked_key_cannot_sign_in(browser: Browser, client: httpx.AsyncClient) -> None:
    _, key_id, key = await new_workspace(client)
    await client.delete(f"/admin/keys/{key_id}", headers={"authorization": f"Bearer {ADMIN}"})
    response = await browser.post("/portal/login", {"api_key": key})
    assert response.status_code == 401
    assert page(response.text).select(".error")
