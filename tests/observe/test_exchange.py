"""`Exchange`: one request's facts, recorded once, as metrics and one access line."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

import pytest
from litestar.exceptions import HTTPException
from prometheus_client.parser import text_string_to_metric_families

from tollway.auth import Principal
from tollway.config import UpstreamConfig
from tollway.errors import InsufficientCredit, UpstreamStatus, UpstreamTimeout, UpstreamUnavailable
from tollway.observe import AccessEntry, Metrics, Observer
from tollway.observe.exchange import failure_kind
from tollway.usage import Usage

PRINCIPAL = Principal("key_1", "k", "ws_1", None, "total")


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.entries: list[AccessEntry] = []

    def emit(self, record: logging.LogRecord) -> None:
        assert isinstance(record.msg, AccessEntry)
        self.entries.append(record.msg)


@pytest.fixture(name="lines")
def fixture_lines() -> Lines:
    return Lines()


@pytest.fixture(name="observer")
def fixture_observer(lines: Lines) -> Observer:
    log = logging.Logger("test.access", logging.INFO)
    log.addHandler(lines)
    return Observer(Metrics(), log)


def values(observer: Observer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(observer.metrics.render().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_a_billed_request_is_recorded_once(observer: Observer, lines: Lines) -> None:
    exchange = observer.begin("req_1", "chat.completions")
    exchange.principal = PRINCIPAL
    exchange.model, exchange.served, exchange.stream = "gpt", "gpt", False
    exchange.reserved()
    assert values(observer)[("tollway_reservations_held", ())] == 1
    exchange.upstream = "up"
    exchange.settled(Usage(prompt=10, completion=4), 1_500)
    exchange.finish(200)
    exchange.finish(500)  # a second end changes nothing
    found = values(observer)
    assert (
        found[
            ("tollway_requests_total", (("model", "gpt"), ("status", "200"), ("surface", "chat.completions")))
        ]
        == 1
    )
    assert (
        "tollway_requests_total",
        (("model", "gpt"), ("status", "500"), ("surface", "chat.completions")),
    ) not in found
    assert found[("tollway_reservations_held", ())] == 0
    assert found[("tollway_cost_nanodollars_total", (("model", "gpt"),))] == 1_500
    [line] = lines.entries
    assert (line.request_id, line.workspace_id, line.key_id, line.model, line.upstream) == (
        "req_1",
        "ws_1",
        "key_1",
        "gpt",
        "up",
    )
    assert (line.status, line.end_state, line.error) == (200, "completed", None)
    assert (line.prompt_tokens, line.completion_tokens, line.total_tokens, line.cost_usd) == (
        10,
        4,
        14,
        "0.000001500",
    )
    assert line.duration_ms >= 0 and line.ttfb_ms is None


async def test_a_refusal_notes_its_code_and_bills_nothing(observer: Observer, lines: Lines) -> None:
    exchange = observer.begin("req_2", "embeddings")
    exchange.model = "x" * 500  # the client's text: bounded in the line, not a label

    async def refuse() -> None:
        raise InsufficientCredit("no")

    with pytest.raises(InsufficientCredit):
        await exchange.noting_refusals(refuse())
    exchange.finish(402)
    [line] = lines.entries
    assert (line.status, line.end_state, line.error, line.cost_usd, line.total_tokens) == (
        402,
        "error",
        "insufficient_credit",
        None,
        None,
    )
    assert line.model == "x" * 200 and line.workspace_id is None
    assert (
        values(observer)[
            ("tollway_requests_total", (("model", ""), ("status", "402"), ("surface", "embeddings")))
        ]
        == 1
    )


async def test_a_body_too_large_is_noted(observer: Observer, lines: Lines) -> None:
    exchange = observer.begin("req_3", "responses")

    async def too_large() -> None:
        raise HTTPException(status_code=413)

    with pytest.raises(HTTPException):
        await exchange.noting_refusals(too_large())
    exchange.finish(413)
    assert lines.entries[0].error == "request_too_large"


async def test_a_stream_ends_through_its_on_end(observer: Observer, lines: Lines) -> None:
    exchange = observer.begin("req_4", "chat.completions")
    exchange.served = exchange.model = "gpt"
    exchange.stream = True
    exchange.upstream = "up"
    exchange.reserved()
    exchange.stream_started()
    assert values(observer)[("tollway_open_streams", (("surface", "chat.completions"),))] == 1

    class Ctx:
        first_byte_at = exchange.started + 0.25

    async def on_end(ctx: Any, state: Any, usage: Usage) -> Decimal | None:
        exchange.settled(usage, 42)
        return Decimal("0.000000042")

    ended = exchange.ending(on_end)
    assert await ended(Ctx(), "upstream_broke_off", Usage(prompt=3, completion=2)) == Decimal("0.000000042")  # type: ignore[arg-type]
    found = values(observer)
    assert found[("tollway_open_streams", (("surface", "chat.completions"),))] == 0
    assert found[("tollway_reservations_held", ())] == 0
    assert found[("tollway_upstream_errors_total", (("kind", "stream_broken"), ("upstream", "up")))] == 1
    assert found[("tollway_time_to_first_byte_seconds_count", (("surface", "chat.completions"),))] == 1
    [line] = lines.entries
    assert (line.status, line.end_state, line.stream, line.cost_usd) == (
        200,
        "upstream_broke_off",
        True,
        "0.000000042",
    )
    assert line.ttfb_ms == 250.0


def test_failures_of_the_request_itself(observer: Observer, lines: Lines) -> None:
    observer.begin("req_5", "completions").crashed(asyncio.CancelledError())
    observer.begin("req_6", "completions").crashed(RuntimeError("bug"))
    assert [(e.status, e.end_state, e.error) for e in lines.entries] == [
        (499, "cancelled", None),
        (500, "error", "internal_error"),
    ]


async def test_upstream_failures_by_kind(observer: Observer) -> None:
    upstream = UpstreamConfig(name="up", base_url="http://x")
    exchange = observer.begin("req_7", "chat.completions")
    for failure in (
        UpstreamUnavailable("down"),
        UpstreamTimeout("slow"),
        UpstreamStatus(503, b"", "application/json", {}),
    ):
        exchange.upstream_failed(upstream, failure)
    assert failure_kind(UpstreamTimeout("slow")) == "timeout"
    # An answer that is not JSON, after the upstream was opened.
    exchange.upstream = "up"

    async def bad_answer() -> None:
        raise UpstreamUnavailable("not json")

    with pytest.raises(UpstreamUnavailable):
        await exchange.noting_refusals(bad_answer())
    exchange.finish(502)
    found = values(observer)
    kinds = {
        labels[0][1]: value
        for (name, labels), value in found.items()
        if name == "tollway_upstream_errors_total"
    }
    assert kinds == {"connect": 1, "timeout": 1, "status": 1, "bad_answer": 1}
