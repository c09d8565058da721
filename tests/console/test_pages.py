"""Every page: security headers, nothing fetched from elsewhere, the shipped assets, no OpenAPI entry."""

from __future__ import annotations

import re

import httpx

from tests.console.conftest import Browser, chat, new_workspace, page

EXTERNAL = re.compile(
    r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//""", re.I
)


async def every_page(browser: Browser, client: httpx.AsyncClient) -> dict[str, httpx.Response]:
    workspace_id, _, key = await new_workspace(client)
    request_id = (await chat(client, key)).headers["x-request-id"]
    pages = {
        "/console/login": await browser.get("/console/login"),
        "/portal/login": await browser.get("/portal/login"),
    }
    await browser.sign_in_admin()
    for path in (
        "/console",
        f"/console/workspaces/{workspace_id}",
        f"/console/requests/{request_id}",
        "/console/prices",
        "/console/verify",
    ):
        pages[path] = await browser.get(path)
    shown = pages[f"/console/workspaces/{workspace_id}"]
    pages["new key"] = await browser.submit(shown, "#create-key", name="x")
    pages["404"] = await browser.get("/console/workspaces/ws_missing")
    await browser.sign_in_portal(key)
    for path in ("/portal", f"/portal/requests/{request_id}"):
        pages[path] = await browser.get(path)
    return pages


async def test_security_headers_and_no_external_references(
    browser: Browser, client: httpx.AsyncClient
) -> None:
    pages = await every_page(browser, client)
    for name, response in pages.items():
        assert response.status_code in (200, 201, 404), name
        headers = response.headers
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, name
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "same-origin"
        assert headers["cache-control"] == "no-store"
        assert headers["content-type"].startswith("text/html")
        html = response.text
        assert not EXTERNAL.search(html), (name, EXTERNAL.search(html))
        assert "http://" not in html and "https://" not in html, name
        assert "<script>" not in html and " style=" not in html and "<style" not in html, name
        root = page(html)
        assert root.select("html[lang=en]") and root.select("main") and root.select("nav"), name
        for tag in root.select("script") + root.select("link"):
            target = tag.attrs.get("src") or tag.attrs.get("href") or ""
            assert target.startswith("/console/static/"), target


async def test_redirects_carry_the_headers_too(browser: Browser) -> None:
    response = await browser.get("/console")
    assert response.status_code == 303
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_the_assets_are_served_from_the_package(browser: Browser) -> None:
    for path, kind in (
        ("/console/static/console.css", "text/css"),
        ("/console/static/console.js", "javascript"),
        ("/console/static/favicon.svg", "image/svg+xml"),
    ):
        response = await browser.get(path)
        assert response.status_code == 200, path
        assert kind in response.headers["content-type"]
        assert "http://" not in response.text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert (await browser.get("/console/static/../sessions.py")).status_code == 404


async def test_pages_are_not_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    assert not [p for p in doc["paths"] if p.startswith(("/console", "/portal"))]


async def test_forms_have_labels_for_every_visible_field(browser: Browser, client: httpx.AsyncClient) -> None:
    pages = await every_page(browser, client)
    for name, response in pages.items():
        root = page(response.text)
        labels = {label.attrs.get("for") for label in root.select("label")}
        for field in root.select("input") + root.select("select"):
            if field.attrs.get("type") == "hidden":
                continue
            assert field.attrs.get("id") in labels, (name, field.attrs)
