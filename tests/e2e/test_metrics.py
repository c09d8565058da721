"""`GET /metrics` of real servers: sums over two workers equal to the ledger's, auth, dead workers."""

from __future__ import annotations

import os
import signal
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.e2e.conftest import ADMIN_TOKEN, Account, Mock, Tollway
from tests.e2e.observed import METERED, Observed, Samples, observed_server, parse, wait_until

HI = [{"role": "user", "content": "Say hi"}]
CHAT = "chat.completions"
CLASSES = ("prompt", "cached", "cache_write", "completion", "reasoning")


def requests(samples: Samples, surface: str, model: str, status: int) -> float:
    labels = (("model", model), ("status", str(status)), ("surface", surface))
    return samples.get(("tollway_requests_total", labels), 0.0)


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def billed(server: Tollway, account: Account, request_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{server.url}/v1/usage/requests/{request_id}", headers={"authorization": f"Bearer {account.key}"}
    )
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()
    return record


def nanos(usd: str) -> int:
    return int(Decimal(usd) * 1_000_000_000)


def test_two_workers_sum_to_what_the_ledger_billed(observed: Observed) -> None:
    server = observed.server
    account = server.new_account("metrics")
    broke = server.new_account("metrics-broke", credit_usd=None)
    before = observed.scrape()
    ids: list[str] = []
    knobs = {"mock": {"cached_tokens": 2, "reasoning_tokens": 3}}
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=account.key, max_retries=0) as client:
        for _ in range(3):
            raw = client.chat.completions.with_raw_response.create(
                model=METERED,
                messages=HI,  # type: ignore[arg-type]
                extra_body=knobs,
            )
            raw.parse()
            ids.append(raw.headers["x-request-id"])
        for _ in range(2):
            raw_stream = client.chat.completions.with_raw_response.create(
                model=METERED,
                messages=HI,  # type: ignore[arg-type]
                stream=True,
            )
            assert "".join(c.choices[0].delta.content or "" for c in raw_stream.parse() if c.choices)
            ids.append(raw_stream.headers["x-request-id"])
        raw_embedding = client.embeddings.with_raw_response.create(model=METERED, input="hello there")
        raw_embedding.parse()
        ids.append(raw_embedding.headers["x-request-id"])
        # An upstream that breaks off mid-stream: billed for what it delivered.
        with pytest.raises(openai.APIError):
            for _ in client.chat.completions.create(
                model=METERED,
                messages=HI,  # type: ignore[arg-type]
                stream=True,
                extra_body={"mock": {"cut_after": 2}},
            ):
                pass
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="no-such-model", messages=HI)  # type: ignore[arg-type]
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=broke.key, max_retries=0) as client:
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(model=METERED, messages=HI)  # type: ignore[arg-type]
        assert refused.value.status_code == 402
    with (
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="tw-not-a-key", max_retries=0) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.chat.completions.create(model=METERED, messages=HI)  # type: ignore[arg-type]

    # Each scrape is a new connection, taken by either worker: every one must show the sums.
    scrapes = [observed.scrape() for _ in range(8)]
    after = scrapes[0]
    counted = ("tollway_requests_total", "tollway_tokens_total", "tollway_cost_nanodollars_total")
    for other in scrapes[1:]:
        assert {k: v for k, v in other.items() if k[0] in counted} == {
            k: v for k, v in after.items() if k[0] in counted
        }

    def requests_delta(surface: str, model: str, status: int) -> float:
        return requests(after, surface, model, status) - requests(before, surface, model, status)

    assert requests_delta(CHAT, METERED, 200) == 6  # three answers, three streams (one broken off)
    assert requests_delta("embeddings", METERED, 200) == 1
    assert requests_delta(CHAT, METERED, 402) == 1
    assert requests_delta(CHAT, "", 404) == 1  # an unknown model is no label
    assert requests_delta(CHAT, "", 401) == 1

    # Tokens and cost: exactly the ledger's records of this workspace (the broken stream's too).
    records = [billed(server, account, request_id) for request_id in ids]
    log = httpx.get(
        f"{server.url}/v1/credits/usage/log", headers={"authorization": f"Bearer {account.key}"}
    ).json()
    all_ids = {r["id"] for r in log["data"]}
    assert set(ids) < all_ids and len(all_ids) == 7
    records += [billed(server, account, i) for i in all_ids - set(ids)]
    assert {r["end_state"] for r in records} == {"completed", "upstream_broke_off"}
    for kind in CLASSES:
        counted_tokens = delta(after, before, "tollway_tokens_total", model=METERED, **{"class": kind})
        assert counted_tokens == sum(r["tokens"][kind] for r in records), kind
    assert (
        sum(r["tokens"]["cached"] for r in records) == 6
        and sum(r["tokens"]["reasoning"] for r in records) == 9
    )
    cost = delta(after, before, "tollway_cost_nanodollars_total", model=METERED)
    assert cost == sum(nanos(r["cost_usd"]) for r in records) > 0

    duration = "tollway_request_duration_seconds_count"
    assert delta(after, before, duration, surface=CHAT) == 9
    assert delta(after, before, duration, surface="embeddings") == 1
    assert delta(after, before, "tollway_time_to_first_byte_seconds_count", surface=CHAT) == 3
    assert delta(after, before, "tollway_upstream_errors_total", upstream="mock", kind="stream_broken") == 1
    assert after[("tollway_reservations_held", ())] == 0
    assert after[("tollway_open_streams", (("surface", CHAT),))] == 0
    commits = "tollway_ledger_commit_seconds_count"
    assert delta(after, before, commits, operation="settle") == len(records)  # one per billed request
    assert delta(after, before, commits, operation="reserve") >= len(records)


def test_failed_upstreams_are_counted_by_upstream_and_kind(observed: Observed) -> None:
    server = observed.server
    account = server.new_account("metrics-upstreams")
    before = observed.scrape()
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=account.key, max_retries=0) as client:
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model="dead-model", messages=HI)  # type: ignore[arg-type]
        assert failed.value.status_code == 502
        client.chat.completions.create(model="fallback-model", messages=HI)  # type: ignore[arg-type]
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model=METERED, messages=HI, extra_body={"mock": {"fail": 503}})  # type: ignore[arg-type]
    after = observed.scrape()
    errors = "tollway_upstream_errors_total"
    assert (
        delta(after, before, errors, upstream="dead", kind="connect") == 2
    )  # alone, and before the fallback
    assert delta(after, before, errors, upstream="mock", kind="status") == 1
    assert requests(after, CHAT, "dead-model", 502) - requests(before, CHAT, "dead-model", 502) == 1
    assert requests(after, CHAT, "fallback-model", 200) - requests(before, CHAT, "fallback-model", 200) == 1


def test_metrics_need_the_admin_token(tollway: Tollway) -> None:
    url = f"{tollway.url}/metrics"
    for headers in (
        {},
        {"authorization": "Bearer wrong"},
        {"authorization": f"Bearer {tollway.new_key('m')}"},
    ):
        response = httpx.get(url, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "invalid_request_error"
        assert response.json()["error"]["code"] == "invalid_admin_token"
    response = httpx.get(url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert ("tollway_reservations_held", ()) in parse(response.text)


def test_public_metrics_need_no_token(observed: Observed) -> None:
    assert ("tollway_reservations_held", ()) in observed.scrape()


def _live_value(path: Path, name: str) -> float:
    """A value of one worker's live-gauge file."""
    for metric in MultiProcessCollector.merge([str(path)], accumulate=False):  # type: ignore[no-untyped-call]
        for sample in metric.samples:
            if sample.name == name:
                return float(sample.value)
    return 0.0


def test_a_dead_worker_stops_counting_in_the_gauges_and_the_directory_goes_at_exit(
    mock: Mock, tmp_path: Path
) -> None:
    with observed_server(mock, tmp_path) as observed:
        server = observed.server
        account = server.new_account("metrics-dead-worker")
        pids = [int(row[0]) for row in server.db.rows("select pid from instances")]
        assert len(pids) == 2
        directory = Path(
            next(
                entry.split("=", 1)[1]
                for entry in Path(f"/proc/{pids[0]}/environ").read_text().split("\0")
                if entry.startswith("PROMETHEUS_MULTIPROC_DIR=")
            )
        )
        assert directory.is_dir() and directory.name.startswith("tollway-metrics-")
        body = {
            "model": METERED,
            "messages": HI,
            "stream": True,
            "mock": {"chunks": 200, "chunk_delay_ms": 100},  # twenty seconds
        }
        reading = threading.Event()
        stop = threading.Event()

        def slow_stream() -> None:
            try:
                with httpx.stream(
                    "POST",
                    f"{server.url}/v1/chat/completions",
                    json=body,
                    headers={"authorization": f"Bearer {account.key}"},
                    timeout=60,
                ) as response:
                    for _ in response.iter_bytes():
                        reading.set()
                        if stop.is_set():
                            return
            except httpx.HTTPError:
                pass  # its worker was killed

        client = threading.Thread(target=slow_stream)
        client.start()
        try:
            assert reading.wait(30)
            wait_until(
                lambda: observed.scrape()[("tollway_open_streams", (("surface", CHAT),))] == 1,
                "a stream open",
            )
            assert observed.scrape()[("tollway_reservations_held", ())] == 1
            holder = next(
                pid
                for pid in pids
                if _live_value(directory / f"gauge_livesum_{pid}.db", "tollway_open_streams") == 1
            )
            os.kill(holder, signal.SIGKILL)

            def forgotten() -> bool:
                samples = observed.scrape()
                streams = samples.get(("tollway_open_streams", (("surface", CHAT),)), 0.0)
                return streams == 0 and samples[("tollway_reservations_held", ())] == 0

            wait_until(forgotten, "the dead worker's gauges forgotten")
            assert not (directory / f"gauge_livesum_{holder}.db").exists()
        finally:
            stop.set()
            client.join(60)
    assert not directory.exists()  # serve made it, serve removed it
