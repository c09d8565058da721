"""Screenshots of the console and the portal, for the README: docs/screenshots/*.png.

    scripts/screenshots [--out docs/screenshots] [--keep]

Starts `tollway mock-upstream` and `tollway serve` (SQLite in a temporary folder) on
loopback, fills them with demo data (two weeks of history from tollway.console.demo_data,
and real requests on several models through the mock upstream today) and photographs the pages with the
same headless Debian Chromium the browser tests use (tests/browser/chromium.py: nothing
is downloaded). `--keep` leaves the servers running and prints their address.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from loopback import free_port, wait

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser.chromium import DESKTOP, PHONE, chromium  # noqa: E402

ADMIN_TOKEN = "screenshots-admin-token"
UPSTREAM_KEY = "sk-mock-screenshots"
MAX_HEIGHT = 1500  # px: a long page is cut there, to keep each PNG under ~300 KB
HI = [{"role": "user", "content": "Summarise our Q3 numbers in two sentences."}]

# name, upstream model, rates (USD per million tokens: input, cached input, cache write, output, request fee)
MODELS = (
    ("gpt-4o", "demo", ("2.50", "1.25", "2.50", "10.00", "0")),
    ("gpt-4o-mini", "demo", ("0.15", "0.075", "0.15", "0.60", "0")),
    ("claude-sonnet-4", "claude-mock", ("3.00", "0.30", "3.75", "15.00", "0")),
    ("text-embedding-3-small", "demo-embed", ("0.02", "0.02", "0.02", "0", "0")),
)


def config(mock_url: str, folder: Path) -> Path:
    def model(name: str, upstream_model: str) -> str:
        upstream = "mock-anthropic" if name.startswith("claude") else "mock"
        encoding = 'encoding = "cl100k_base"\n' if "embedding" in name else ""
        return f'[[models]]\nname = "{name}"\nupstream = "{upstream}"\n' + (
            f'upstream_model = "{upstream_model}"\n{encoding}'
        )

    models = "\n".join(model(name, upstream_model) for name, upstream_model, _ in MODELS)
    (folder / "tollway.toml").write_text(
        f"""
[database]
url = "sqlite+aiosqlite:///{folder / "tollway.db"}"
migrate_on_start = true

[pricing]
dir = "prices"

[[upstreams]]
name = "mock"
base_url = "{mock_url}/v1"
api_key_env = "MOCK_KEY"

[[upstreams]]
name = "mock-anthropic"
base_url = "{mock_url}/v1"
api_key_env = "MOCK_KEY"
protocol = "anthropic"

{models}
"""
    )
    (folder / "prices").mkdir()
    prices = []
    for name, _, (inp, cached, write, out, fee) in MODELS:
        prices.append(
            f'[[prices]]\nmodel = "{name}"\neffective_from = 2025-01-01T00:00:00Z\ninput = "{inp}"\n'
            f'cached_input = "{cached}"\ncache_write = "{write}"\noutput = "{out}"\nrequest = "{fee}"\n'
        )
    (folder / "prices" / "demo.toml").write_text("\n".join(prices))
    return folder / "tollway.toml"


@contextmanager
def process(args: list[str], env: dict[str, str], ready: str, log: Path, cwd: Path) -> Iterator[None]:
    with log.open("wb") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "tollway", *args], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        try:
            wait(ready)
        except RuntimeError:
            sys.exit(f"{args[0]} did not start:\n{log.read_text()}")
        yield
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


class Admin:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(path, json=body)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def workspace(self, name: str, credit: str) -> str:
        workspace_id: str = self.post("/admin/workspaces", {"name": name})["id"]
        self.post(
            f"/admin/workspaces/{workspace_id}/credits", {"amount_usd": credit, "note": "Prepaid top-up"}
        )
        return workspace_id

    def key(self, workspace_id: str, name: str, **limits: Any) -> str:
        secret: str = self.post(f"/admin/workspaces/{workspace_id}/keys", {"name": name, **limits})["key"]
        return secret

    def call(self, key: str, model: str, **knobs: Any) -> None:
        headers = {"authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"}
        if model.startswith("text-embedding"):
            path, body = "/v1/embeddings", {"model": model, "input": ["quarterly report", "sales deck"]}
        elif model.startswith("claude"):
            path, body = "/v1/messages", {"model": model, "max_tokens": 512, "messages": HI}
        else:
            path, body = (
                "/v1/chat/completions",
                {"model": model, "messages": HI, "stream": knobs.pop("stream", False)},
            )
        response = httpx.post(f"{self.url}{path}", headers=headers, json={**body, "mock": knobs}, timeout=30)
        response.raise_for_status()


def seed(admin: Admin, toml: Path, env: dict[str, str], cwd: Path) -> dict[str, str]:
    """Two weeks of demo history (tollway.console.demo_data) and real traffic today through the mock."""
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "tollway.console.demo_data",
            "--config",
            str(toml),
            "--workspaces",
            "4",
            "--days",
            "30",
        ],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    demo = json.loads(made.stdout)["workspaces"][0]
    live = admin.workspace("Wayne Enterprises", "50.00")
    production = admin.key(
        live,
        "production",
        spend_limit_usd="40.00",
        spend_limit_period="month",
        requests_per_minute=600,
        tokens_per_minute=400000,
    )
    staging = admin.key(live, "staging", spend_limit_usd="2.00", spend_limit_period="day", max_concurrent=4)
    for prompt, completion, cached in ((1800, 420, 600), (2400, 900, 1200), (950, 300, 0)):
        admin.call(
            production, "gpt-4o", prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached
        )
    for prompt, completion in ((12000, 2200), (8000, 1200)):
        admin.call(production, "gpt-4o-mini", prompt_tokens=prompt, completion_tokens=completion)
    admin.call(production, "gpt-4o-mini", stream=True)
    admin.call(staging, "claude-sonnet-4", prompt_tokens=5200, completion_tokens=800, cache_write_tokens=2000)
    admin.call(staging, "text-embedding-3-small", prompt_tokens=40000)
    admin.post(f"/admin/workspaces/{live}/credits", {"amount_usd": "-5.00", "note": "Goodwill refund"})
    return {"workspace": demo["id"], "key": demo["keys"][0]["key"], "live": live}


def screenshot(driver: Any, path: Path, max_height: int = MAX_HEIGHT) -> None:
    """The whole page (up to `max_height`), at the window's width."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    width = driver.execute_script("return window.innerWidth")
    height = min(int(metrics["cssContentSize"]["height"]), max_height)
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        },
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    print(f"{path}  {width}x{height}  {path.stat().st_size // 1024} KB")


def sign_in(driver: Any, url: str, area: str, secret: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{url}/{area}/login")
    field = driver.find_element(By.CSS_SELECTOR, "#token" if area == "console" else "#api-key")
    field.send_keys(secret, Keys.ENTER)
    WebDriverWait(driver, 15).until(lambda d: urlsplit(d.current_url).path == f"/{area}")


def photograph(url: str, demo: dict[str, str], out: Path) -> None:
    from selenium.webdriver.common.by import By

    out.mkdir(parents=True, exist_ok=True)
    with chromium(DESKTOP) as driver:
        sign_in(driver, url, "console", ADMIN_TOKEN)
        screenshot(driver, out / "console-workspaces.png")
        driver.get(f"{url}/console/workspaces/{demo['workspace']}")
        screenshot(driver, out / "console-workspace.png")
        first = driver.find_element(By.CSS_SELECTOR, "table#requests a.request").get_attribute("href")
        driver.get(first)
        screenshot(driver, out / "console-request.png")
        sign_in(driver, url, "portal", demo["key"])
        screenshot(driver, out / "portal.png")
        driver.set_window_size(*PHONE)
        driver.get(f"{url}/portal")
        screenshot(driver, out / "portal-phone.png", max_height=2400)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--keep", action="store_true", help="leave the servers running (Ctrl-C stops them)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLWAY_")}
    env |= {"PYTHONUNBUFFERED": "1", "MOCK_KEY": UPSTREAM_KEY, "MOCK_UPSTREAM_API_KEY": UPSTREAM_KEY}
    env["TOLLWAY_ADMIN_TOKEN"] = ADMIN_TOKEN
    with tempfile.TemporaryDirectory(prefix="tollway-screenshots-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        mock_port, port = free_port(), free_port()
        mock_url, url = f"http://127.0.0.1:{mock_port}", f"http://127.0.0.1:{port}"
        stack.enter_context(
            process(
                ["mock-upstream", "--port", str(mock_port)],
                env,
                f"{mock_url}/mock/stats",
                folder / "mock.log",
                folder,
            )
        )
        toml = config(mock_url, folder)
        stack.enter_context(
            process(
                ["serve", "--config", str(toml), "--port", str(port)],
                env,
                f"{url}/health",
                folder / "serve.log",
                folder,
            )
        )
        demo = seed(Admin(url), toml, env, folder)
        photograph(url, demo, args.out)
        if args.keep:
            print(f"console: {url}/console (admin token {ADMIN_TOKEN}); portal key {demo['key']}")
            try:
                input("Enter stops the servers ")
            except (EOFError, KeyboardInterrupt):
                pass


if __name__ == "__main__":
    main()
