"""Every page: offline (nothing outside the server), well-formed, error-free, and usable on a phone."""

from __future__ import annotations

from collections.abc import Iterator

from tests.browser.chromium import PHONE
from tests.browser.conftest import Used
from tests.browser.site import Site


def console_pages(used: Used) -> list[str]:
    return [
        "/console",
        f"/console/workspaces/{used.a.workspace_id}",
        f"/console/requests/{used.a_requests[1]}",
        "/console/prices",
        "/console/verify",
    ]


def portal_pages(used: Used) -> list[str]:
    return ["/portal", f"/portal/requests/{used.a_requests[1]}"]


def visits(site: Site, used: Used) -> Iterator[str]:
    """Each page, signed out and signed in, loaded in turn; yields its path once it is showing."""
    for area in ("console", "portal"):
        assert site.go(f"/{area}/login") == 200
        yield f"/{area}/login"
    site.sign_in_console()
    for path in console_pages(used):
        assert site.go(path) == 200, path
        yield path
    site.sign_in_portal(used.a.key)
    for path in portal_pages(used):
        assert site.go(path) == 200, path
        yield path


def test_no_page_references_anything_outside_the_server(site: Site, used: Used) -> None:
    outside: list[tuple[str, dict[str, object]]] = []
    fetched = set()
    for path in visits(site, used):
        origin = site.origin()
        for reference in site.references():
            if reference["where"] == "fetched":
                fetched.add(reference["value"])
            value = str(reference["value"])
            if value.startswith("#") or reference["protocol"] == "data:":
                continue
            if reference["origin"] != origin:
                outside.append((path, reference))
        assert site.one("html").get_attribute("lang") == "en", path
        assert len(site.all("main")) == 1, path
        assert site.errors() == [], path  # no CSP refusal, no failed load, no script error
    assert outside == []
    assert fetched, "the pages load their own stylesheet (or other assets) from the server"


def test_signed_in_pages_have_a_nav_and_a_sign_out(site: Site, used: Used) -> None:
    for path in visits(site, used):
        if path.endswith("/login"):
            continue
        assert site.exists("nav"), path
        assert site.exists("form#logout button#sign-out"), path


def test_usable_at_phone_width(site: Site, used: Used) -> None:
    size = PHONE
    site.reset(size)
    wide = []
    for path in visits(site, used):
        assert site.driver.execute_script("return window.innerWidth") == size[0]
        scroll, inner = site.driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]"
        )
        if scroll > inner:
            wide.append((path, scroll))
        viewport = site.one('meta[name="viewport"]').get_attribute("content") or ""
        assert "width=device-width" in viewport, path
    assert wide == [], f"pages wider than {size[0]}px"
    # The sign-in button and the amount field can still be reached and used at this width.
    site.sign_in_console()
    site.go(f"/console/workspaces/{used.a.workspace_id}")
    assert site.one("#credit-submit").is_displayed()
    assert site.one("#amount").size["width"] > 100
