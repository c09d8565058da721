"""What a browser test does on a tollway page: navigate, read statuses, sign in, submit, read money."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.chromium import DESKTOP
from tests.e2e.conftest import ADMIN_TOKEN, Tollway

__all__ = ["REFERENCES", "Site"]

# Every URL a page names or loaded: attributes, srcset candidates, url() and @import in styles
# (inline, <style> and the stylesheets' rules), and what the browser actually fetched.
REFERENCES = r"""
const found = [];
const add = (where, value) => { if (value) found.push([where, value.trim()]); };
const css = (where, text) => {
  for (const m of text.matchAll(/url\(\s*['"]?([^'")]+)['"]?\s*\)/g)) add(where, m[1]);
  for (const m of text.matchAll(/@import\s+['"]([^'"]+)['"]/g)) add(where, m[1]);
};
for (const el of document.querySelectorAll('*')) {
  for (const name of ['src', 'href', 'xlink:href', 'action', 'formaction', 'poster', 'data', 'background',
                      'manifest', 'ping']) {
    add(el.tagName + '@' + name, el.getAttribute(name));
  }
  for (const name of ['srcset', 'imagesrcset']) {
    const set = el.getAttribute(name);
    if (set) for (const part of set.split(',')) add(el.tagName + '@' + name, part.trim().split(/\s+/)[0]);
  }
  const style = el.getAttribute('style');
  if (style) css(el.tagName + '@style', style);
  if (el.tagName === 'STYLE') css('style', el.textContent);
  if (el.tagName === 'META' && /refresh/i.test(el.getAttribute('http-equiv') || '')) {
    add('meta-refresh', (el.getAttribute('content') || '').replace(/^[^;]*;\s*url=/i, ''));
  }
}
for (const sheet of document.styleSheets) {
  add('stylesheet', sheet.href);
  try { for (const rule of sheet.cssRules) css('stylesheet rule', rule.cssText); }
  catch (e) { add('unreadable stylesheet', sheet.href || 'inline'); }
}
for (const entry of performance.getEntriesByType('resource')) add('fetched', entry.name);
return found.map(([where, value]) => {
  let origin = null, protocol = null;
  try { const url = new URL(value, document.baseURI); origin = url.origin; protocol = url.protocol; }
  catch (e) {}
  return {where, value, origin, protocol};
});
"""


class Site:
    """One shared browser, used by one test at a time, and the server it talks to."""

    def __init__(self, driver: WebDriver, tollway: Tollway) -> None:
        self.driver = driver
        self.tollway = tollway

    def reset(self, size: tuple[int, int] = DESKTOP) -> None:
        """No cookies, no page, the window at `size`."""
        self.driver.get("about:blank")
        self.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
        self.driver.delete_all_cookies()
        self.driver.set_window_size(*size)
        self.driver.get_log("browser")  # drop what earlier tests logged

    # --- navigation ---------------------------------------------------------------------------

    def go(self, path: str) -> int:
        """Load `path` of the server; the final response's HTTP status (after redirects)."""
        self.driver.get(self.tollway.url + path)
        return self.status()

    def status(self) -> int:
        status: int = self.driver.execute_script(
            "return performance.getEntriesByType('navigation')[0].responseStatus"
        )
        return status

    @property
    def path(self) -> str:
        return urlsplit(self.driver.current_url).path

    def submit(self, button: WebElement) -> int:
        """Click a submit button and wait for the page it leads to; its status."""
        page = self.driver.find_element(By.TAG_NAME, "html")
        button.click()
        self.wait_for_new_page(page)
        return self.status()

    def wait_for_new_page(self, old: WebElement) -> None:
        def gone(_: object) -> bool:
            try:
                old.is_enabled()
            except StaleElementReferenceException:
                return True
            except WebDriverException as exc:
                # chromedriver sometimes reports a node of the page being replaced this way instead.
                if "does not belong to the document" in str(exc):
                    return True
                raise
            return False

        WebDriverWait(self.driver, 15).until(gone)
        WebDriverWait(self.driver, 15).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )

    # --- reading ------------------------------------------------------------------------------

    def one(self, css: str, within: WebElement | None = None) -> WebElement:
        return (within or self.driver).find_element(By.CSS_SELECTOR, css)

    def all(self, css: str, within: WebElement | None = None) -> list[WebElement]:
        return (within or self.driver).find_elements(By.CSS_SELECTOR, css)

    def exists(self, css: str) -> bool:
        return bool(self.all(css))

    def text(self, css: str, within: WebElement | None = None) -> str:
        return self.one(css, within).text.strip()

    def nanos(self, css: str, within: WebElement | None = None) -> int:
        """The exact amount of a money element (its data-nanos), checked against its title."""
        element = self.one(css, within)
        return money(element)

    def fields(self, form_css: str) -> dict[str, str]:
        """A form's fields as the browser would submit them now."""
        fields: dict[str, str] = self.driver.execute_script(
            "return Object.fromEntries(new FormData(document.querySelector(arguments[0])))", form_css
        )
        return fields

    def references(self) -> list[dict[str, Any]]:
        references: list[dict[str, Any]] = self.driver.execute_script(REFERENCES)
        return references

    def origin(self) -> str:
        origin: str = self.driver.execute_script("return location.origin")
        return origin

    def errors(self) -> list[str]:
        """What the page logged as errors (CSP refusals, failed loads, script errors) since the last call."""
        return [
            entry["message"]
            for entry in self.driver.get_log("browser")
            if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]
        ]

    # --- signing in ---------------------------------------------------------------------------

    def sign_in(self, area: str, secret: str) -> int:
        """Sign in to /console (with the admin token) or /portal (with an API key); the final status."""
        assert self.go(f"/{area}/login") == 200
        field = self.one("#token" if area == "console" else "#api-key")
        field.send_keys(secret)
        return self.submit(self.one("#sign-in"))

    def sign_in_console(self, token: str = ADMIN_TOKEN) -> None:
        assert self.sign_in("console", token) == 200
        assert self.path == "/console"

    def sign_in_portal(self, key: str) -> None:
        assert self.sign_in("portal", key) == 200
        assert self.path == "/portal"

    def press_enter(self, element: WebElement) -> int:
        page = self.driver.find_element(By.TAG_NAME, "html")
        element.send_keys(Keys.ENTER)
        self.wait_for_new_page(page)
        return self.status()

    def session_cookie(self, area: str) -> dict[str, Any]:
        """The one cookie the browser holds for /{area} (read while on one of its pages)."""
        cookies = [c for c in self.driver.get_cookies() if c.get("path") == f"/{area}"]
        assert len(cookies) == 1, self.driver.get_cookies()
        return cookies[0]

    def client(self, area: str) -> httpx.Client:
        """An HTTP client holding the browser's session cookie for /{area}, not following redirects."""
        cookie = self.session_cookie(area)
        return httpx.Client(
            base_url=self.tollway.url,
            cookies={cookie["name"]: cookie["value"]},
            headers={"origin": self.tollway.url},
            timeout=10,
        )


def money(element: WebElement) -> int:
    """A money element's exact nano-USD; its title must say the same to nine places."""
    raw = element.get_attribute("data-nanos")
    assert raw is not None and raw.lstrip("-").isdigit(), element.get_attribute("outerHTML")
    nanos = int(raw)
    title = element.get_attribute("title")
    assert title == f"{usd(nanos)} USD", (title, nanos)
    return nanos


def usd(nanos: int) -> str:
    sign = "-" if nanos < 0 else ""
    whole, frac = divmod(abs(nanos), 1_000_000_000)
    return f"{sign}{whole}.{frac:09d}"


def nanos_of(usd_text: str) -> int:
    """ "1.250000000" -> 1250000000 (the API's nine-place decimal strings)."""
    sign = -1 if usd_text.startswith("-") else 1
    whole, _, frac = usd_text.lstrip("-").partition(".")
    return sign * (int(whole) * 1_000_000_000 + int(frac.ljust(9, "0")))
