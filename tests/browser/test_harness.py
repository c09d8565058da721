"""The harness itself: the system's Chromium loads tollway's pages over loopback, offline."""

from __future__ import annotations

import json

from tests.browser.site import Site


def test_the_browser_reads_a_tollway_page(site: Site) -> None:
    assert site.go("/schema") == 200
    assert site.driver.title
    assert site.one("html").get_attribute("lang") == "en"
    references = site.references()
    assert references, "the docs page links to its own sections"
    assert {r["origin"] for r in references if r["protocol"] in ("http:", "https:")} == {site.origin()}
    assert site.errors() == []


def test_statuses_and_cookies_start_fresh(site: Site) -> None:
    assert site.go("/health") == 200
    assert json.loads(site.one("body").text)["status"] == "ok"
    assert site.go("/no-such-page") == 404
    assert site.driver.get_cookies() == []
