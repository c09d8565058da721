"""Webhooks end to end: a real receiver on loopback, `tollway serve` with `[[webhooks]]`, kill -9.

The receiver checks every signature itself (HMAC-SHA256 computed here, not
with tollway's code), answers 500 to the first attempt at each event when
asked to, and records what it got.  Nothing waits a fixed time: each test
polls for the outcome with a deadline.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.dbs import drop_database, new_database_url
from tests.e2e.conftest import MODELS, Mock, Tollway, config_text, free_port, launch, price_text, shut

T = TypeVar("T")

SECRET = "whsec_e2e-0123456789abcdef"
SECRET_ENV = "E2E_WEBHOOK_SECRET"  # base_env() passes it on (it drops only TOLLWAY_*)


@dataclass(frozen=True)
class Received:
    body: bytes
    headers: dict[str, str]
    signed: bool  # the signature verified, with a fresh timestamp
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.body)
        return event


def signature_ok(header: str, body: bytes) -> bool:
    parts = dict(part.split("=", 1) for part in header.split(","))
    timestamp = int(parts["t"])
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(time.time() - timestamp) < 300 and hmac.compare_digest(expected, parts["v1"])


class Receiver:
    """A webhook receiver in a thread; `fail_first`: 500 to the first attempt at each event."""

    def __init__(self, port: int, *, fail_first: bool) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/hooks/tollway"
        self.fail_first = fail_first
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                signed = signature_ok(self.headers.get("tollway-signature", ""), body)
                with receiver._lock:
                    first = all(r.event["id"] != json.loads(body)["id"] for r in receiver.received)
                    status = 500 if (receiver.fail_first and first) or not signed else 200
                    receiver.received.append(Received(body, dict(self.headers.items()), signed, status))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def of(self, event_id: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.event["id"] == event_id]


@pytest.fixture(name="receiver")
def fixture_receiver() -> Iterator[Receiver]:
    receiver = Receiver(free_port(), fail_first=True)
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture(autouse=True)
def fixture_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


def webhook_config(mock: Mock, workdir: Path, receiver: Receiver) -> None:
    """Write what `launch` would, plus a webhook for every event; `launch` then uses it as it is."""
    database_url = new_database_url(workdir)
    (workdir / "database_url").write_text(database_url)
    (workdir / "prices").mkdir()
    (workdir / "prices" / "test.toml").write_text(price_text(MODELS))
    (workdir / "tollway.toml").write_text(
        config_text(mock.url, free_port(), database_url)
        + f"""
[[webhooks]]
url = "{receiver.url}"
secret_env = "{SECRET_ENV}"
events = ["*"]
timeout_seconds = 1.0
max_attempts = 100
# Small for the tests only: retries within a fraction of a second.
retry_base_seconds = 0.05
retry_max_seconds = 0.3
"""
    )


def eventually(probe: Callable[[], T | None], what: str, seconds: float = 30) -> T:
    deadline = time.monotonic() + seconds
    while (value := probe()) is None or value is False:
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def listed(server: Tollway, event_id: str) -> dict[str, Any] | None:
    page = server.admin("GET", "/admin/events", params={"limit": "100"}).json()
    return next((e for e in page["data"] if e["id"] == event_id), None)


def delivered(server: Tollway, event_id: str) -> dict[str, Any] | None:
    event = listed(server, event_id)
    if event is None or [d["state"] for d in event["deliveries"]] != ["delivered"]:
        return None
    return event


def event_of(server: Tollway, workspace_id: str, type: str) -> dict[str, Any] | None:
    query = {"workspace_id": workspace_id, "type": type}
    page = server.admin("GET", "/admin/events", params=query).json()
    return page["data"][0] if page["data"] else None


def check_logs(workdir: Path) -> None:
    for log in workdir.glob("serve-*.log"):
        text = log.read_text()
        assert SECRET not in text
        assert "Traceback" not in text, text


def test_events_are_signed_retried_delivered_and_listed(
    mock: Mock, receiver: Receiver, tmp_path: Path
) -> None:
    webhook_config(mock, tmp_path, receiver)
    server, process = launch(mock, tmp_path)
    try:
        workspace = server.admin("POST", "/admin/workspaces", json={"name": "hooks"}).json()
        credit = {"amount_usd": "5.00", "idempotency_key": "hook-credit-1", "note": "top-up"}
        credited = server.admin("POST", f"/admin/workspaces/{workspace['id']}/credits", json=credit).json()
        key = server.admin("POST", f"/admin/workspaces/{workspace['id']}/keys", json={"name": "k"}).json()
        revoked = server.admin("DELETE", f"/admin/keys/{key['id']}").json()

        expected = {
            "credit.added": {
                "workspace_id": workspace["id"],
                "entry_id": credited["entry"]["id"],
                "amount_usd": credited["entry"]["amount_usd"],
                "idempotency_key": "hook-credit-1",
                "note": "top-up",
                "balance_usd": credited["balance"]["balance_usd"],
                "held_usd": credited["balance"]["held_usd"],
                "available_usd": credited["balance"]["available_usd"],
            },
            "key.revoked": {
                "workspace_id": workspace["id"],
                "key_id": key["id"],
                "name": "k",
                "key_prefix": key["key_prefix"],
                "revoked_at": revoked["revoked_at"],
            },
        }
        for type, data in expected.items():
            event = eventually(lambda type=type: event_of(server, workspace["id"], type), type)
            shown = eventually(lambda event=event: delivered(server, event["id"]), f"{type} delivered")
            first, second = receiver.of(event["id"])  # exactly two attempts
            assert (first.answered, second.answered) == (500, 200)
            assert first.signed and second.signed
            assert first.body == second.body
            assert second.event == {
                "id": event["id"],
                "type": type,
                "created_at": event["created_at"],
                "data": data,
            }
            assert second.headers["tollway-event-id"] == event["id"]
            assert second.headers["tollway-event-type"] == type
            assert second.headers["content-type"] == "application/json"
            assert [
                first.headers["tollway-delivery-attempt"],
                second.headers["tollway-delivery-attempt"],
            ] == [
                "1",
                "2",
            ]
            assert shown["data"] == data and shown["workspace_id"] == workspace["id"]
            (delivery,) = shown["deliveries"]
            assert delivery["webhook"] == receiver.url
            assert (delivery["attempts"], delivery["last_status"], delivery["last_error"]) == (2, 200, None)
            assert delivery["next_attempt_at"] is None and delivery["delivered_at"].endswith("Z")

        # The listing's parameters: filters, paging, a 400 naming what is wrong, the admin token.
        page = server.admin("GET", "/admin/events", params={"workspace_id": workspace["id"], "limit": "1"})
        body = page.json()
        assert (page.status_code, body["object"], len(body["data"]), body["has_more"]) == (
            200,
            "list",
            1,
            True,
        )
        rest = server.admin(
            "GET", "/admin/events", params={"workspace_id": workspace["id"], "cursor": body["next_cursor"]}
        ).json()
        assert {e["type"] for e in body["data"] + rest["data"]} == set(expected)
        for bad in ({"limit": "0"}, {"cursor": "not-ours"}, {"type": "nope"}, {"workspace_id": "a b"}):
            refused = server.admin("GET", "/admin/events", params=bad)
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["param"] == next(iter(bad))
        assert httpx.get(f"{server.url}/admin/events").status_code == 401

        shown_by_cli = server.cli("admin", "--config", str(server.config), "events", "--type", "key.revoked")
        assert shown_by_cli.returncode == 0, shown_by_cli.stderr
        listing = json.loads(shown_by_cli.stdout)
        assert [e["data"]["key_id"] for e in listing["data"]] == [key["id"]]
    finally:
        shut(server, process)
        drop_database(server.database_url)
    check_logs(tmp_path)


def test_a_pending_delivery_survives_kill_9(mock: Mock, tmp_path: Path) -> None:
    receiver = Receiver(free_port(), fail_first=False)  # not started: connections are refused
    webhook_config(mock, tmp_path, receiver)
    server, process = launch(mock, tmp_path)
    try:
        workspace = server.admin("POST", "/admin/workspaces", json={"name": "restart"}).json()
        credit = {"amount_usd": "1.00"}
        assert (
            server.admin("POST", f"/admin/workspaces/{workspace['id']}/credits", json=credit).status_code
            == 201
        )
        event = eventually(lambda: event_of(server, workspace["id"], "credit.added"), "the event")

        def failing() -> dict[str, Any] | None:
            shown = listed(server, event["id"])
            return shown if shown and shown["deliveries"][0]["attempts"] >= 2 else None

        (delivery,) = eventually(failing, "failed attempts")["deliveries"]
        assert delivery["state"] == "pending" and delivery["last_status"] is None
        assert delivery["last_error"] and delivery["next_attempt_at"] is not None

        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        server.db.close()
        receiver.start()
        try:
            server, process = launch(mock, tmp_path)
            shown = eventually(lambda: delivered(server, event["id"]), "delivery after the restart")
            (got,) = receiver.of(event["id"])  # once, with the id it had before the restart
            assert got.signed and got.event["id"] == event["id"] == shown["id"]
            assert got.event["data"]["workspace_id"] == workspace["id"]
            assert shown["deliveries"][0]["attempts"] > delivery["attempts"]
        finally:
            receiver.stop()
    finally:
        shut(server, process)
        drop_database(server.database_url)


def test_two_workers_deliver_each_event_once(mock: Mock, tmp_path: Path) -> None:
    receiver = Receiver(free_port(), fail_first=False)
    receiver.start()
    webhook_config(mock, tmp_path, receiver)
    server, process = launch(mock, tmp_path, extra=("--workers", "2"))
    try:
        # Ready means one worker answers; on a loaded machine the other may still be starting.  Both
        # deliver from the first event on only once both have registered.
        instances = "select count(*) from instances"
        eventually(lambda: server.db.rows(instances) == [(2,)], "both workers registered")
        workspace = server.admin("POST", "/admin/workspaces", json={"name": "workers"}).json()
        for i in range(12):
            credit = {"amount_usd": f"{i + 1}.00"}
            url = f"/admin/workspaces/{workspace['id']}/credits"
            assert server.admin("POST", url, json=credit).status_code == 201
        key = server.admin("POST", f"/admin/workspaces/{workspace['id']}/keys", json={"name": "k"}).json()
        assert server.admin("DELETE", f"/admin/keys/{key['id']}").status_code == 200

        def all_delivered() -> list[dict[str, Any]] | None:
            query = {"workspace_id": workspace["id"], "limit": "100"}
            events: list[dict[str, Any]] = server.admin("GET", "/admin/events", params=query).json()["data"]
            done = len(events) == 13 and all(e["deliveries"][0]["state"] == "delivered" for e in events)
            return events if done else None

        events = eventually(all_delivered, "13 deliveries")
        assert server.db.rows(instances) == [(2,)]  # two deliverers polled, neither replaced
        for event in events:
            (got,) = receiver.of(event["id"])  # exactly once: the leases kept the workers apart
            assert got.signed and got.answered == 200
            assert event["deliveries"][0]["attempts"] == 1
    finally:
        shut(server, process)
        drop_database(server.database_url)
        receiver.stop()
    check_logs(tmp_path)
