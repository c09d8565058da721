"""The seam between the one billing path and the wire formats it serves.

A surface (chat completions, responses, embeddings, …) is one module that
supplies what differs between formats, and nothing else:

- `Surface.parse` validates a body into a `Call` (a 400 naming the field otherwise);
- a `Call` knows its reservation bounds, its tiktoken prompt count (the
  fallback when the upstream reports no usage), and the bytes to forward;
- `Surface.read_body` / `render_body`: where usage and text are in a
  non-stream answer, and where the cost goes back in;
- `Surface.stream_meter`: one `EventMeter` per stream, which looks at each SSE
  event once (what to relay, what text and usage it carries, whether the
  upstream is done) and writes the stream's ending, good or bad.

Authentication, reservation, forwarding, settlement, the ledger and the
reports live above this seam (`tollway.pipeline`) and never ask which
surface they hold — as httpx's client never asks which transport it has.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar, Literal, Protocol

import msgspec
from msgspec import Struct

from tollway.errors import APIError
from tollway.tokens import TokenCounter
from tollway.upstream.sse import SSEEvent
from tollway.usage import ReportedUsage, Usage, read_reported

__all__ = [
    "BodyCall",
    "Call",
    "EndState",
    "EventMeter",
    "OpenAIFamily",
    "Reading",
    "Surface",
    "forward_body",
    "with_usage",
]

_encode_json = msgspec.json.Encoder().encode
_encode_out = msgspec.json.Encoder(decimal_format="number").encode

# How a request that reached an upstream ended.
EndState = Literal[
    "completed", "client_disconnected", "upstream_broke_off", "upstream_timeout", "server_shutdown"
]


class Reading(Struct, frozen=True):
    """What metering needs from a non-stream answer."""

    text: list[str]
    reasoning: list[str]
    reported: ReportedUsage | None
    model: str | None

    @classmethod
    def of(cls, payload: Mapping[str, Any], text: list[str], reasoning: list[str]) -> Reading:
        """The reading of an answer whose `usage` and `model` sit at the top level."""
        model = payload.get("model")
        return cls(
            text, reasoning, read_reported(payload.get("usage")), model if isinstance(model, str) else None
        )


class BodyCall:
    """What every surface's `Call` shares (a mixin for its Struct, which holds `request` and `body`).

    The model and stream flag come from the validated request; the client's body is forwarded
    with only the model renamed, and, where `injects_usage` (OpenAI's chunk streams), with
    `stream_options.include_usage` asked for.
    """

    __slots__ = ()
    injects_usage: ClassVar[bool] = False
    request: Any
    body: dict[str, Any]

    @property
    def model(self) -> str:
        model: str = self.request.model
        return model

    @property
    def stream(self) -> bool:
        return bool(self.request.stream)

    def upstream_body(self, upstream_model: str, *, include_usage: bool) -> bytes:
        ask = self.injects_usage and self.stream and include_usage
        return forward_body(self.body, upstream_model, ask_usage=ask)


def forward_body(body: Mapping[str, Any], upstream_model: str, *, ask_usage: bool = False) -> bytes:
    """The client's body with `model` renamed; `ask_usage` adds `stream_options.include_usage`."""
    out = dict(body)
    out["model"] = upstream_model
    if ask_usage:
        options = out.get("stream_options")
        out["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return _encode_json(out)


def with_usage(payload: dict[str, Any], usage: dict[str, Any], served: str | None) -> bytes:
    """An answer with its `usage` replaced, under the served name when it is an alias (SPEC §3)."""
    if served is not None:
        payload["model"] = served  # clients see the name they asked for
    payload["usage"] = usage
    return _encode_out(payload)


class Call(Protocol):
    """One validated request on a surface."""

    @property
    def model(self) -> str: ...

    @property
    def stream(self) -> bool: ...

    @property
    def body(self) -> dict[str, Any]: ...

    def upstream_body(self, upstream_model: str, *, include_usage: bool) -> bytes:
        """The bytes to forward: the client's body, the model renamed (and usage asked for)."""
        ...

    def prompt_bound(self) -> int:
        """Most prompt tokens the request can be billed for, without a tokenizer."""
        ...

    def output_bound(self, model_cap: int | None) -> int:
        """Most output tokens the request can produce (0 where it produces none)."""
        ...

    async def count_prompt(self, counter: TokenCounter, encoding: str) -> int:
        """The prompt's tokens by the surface's counting rule (billed when the upstream is silent)."""
        ...

    async def tight_prompt_bound(self, counter: TokenCounter, encoding: str) -> int:
        """A tighter bound than `prompt_bound` from the tiktoken count, when the loose one does not fit."""
        ...


class EventMeter(Protocol):
    """One stream's metering: sees each SSE event once and writes the ending."""

    text: list[str]
    reasoning: list[str]
    reported: ReportedUsage | None
    error: Any
    finished: bool
    model: Any

    # `finished`: the answer is whole (a finish reason, a closing usage report, a terminal event),
    # so a stream that ends after it without the surface's end marker still ended well.

    def observe(self, event: SSEEvent) -> tuple[bytes | None, bool]:
        """(the bytes to relay or None to hold the event back, whether the upstream is done)."""
        ...

    def ending(self, state: EndState, usage: Usage, cost: Decimal | None, scrub: Any) -> bytes:
        """What the client gets after the relayed events: the usage, then the good or bad end."""
        ...


class Surface(Protocol):
    operation: str  # the usage record's operation_type, e.g. "chat.completions"
    path: str  # the route under /v1 and the upstream's path, e.g. "/chat/completions"
    protocol: str  # the API family of its upstreams: "openai" | "anthropic" (config `protocol`)

    def parse(self, raw: bytes) -> Call: ...

    def upstream_request(self, headers: Mapping[str, str], query: str) -> tuple[str, dict[str, str]]:
        """The upstream path (and the client's query, where it matters) and client headers to pass on."""
        ...

    def error_body(self, exc: APIError) -> bytes:
        """A refusal in this surface's own error shape (an upstream's own error passes through as it is)."""
        ...

    def read_body(self, call: Any, payload: Mapping[str, Any]) -> Reading: ...

    def render_body(
        self,
        call: Any,
        payload: dict[str, Any],
        usage: Usage,
        cost: Decimal | None,
        served: str | None,
        raw: bytes,
    ) -> bytes:
        """The answer with complete usage and cost; `served` is the alias name to show, if any.

        `payload` is the decoded upstream body, `raw` its bytes (for a surface that must hand
        back parts of it byte for byte).
        """
        ...

    def stream_meter(self, call: Any, served: str | None, *, usage_with_choice: bool) -> EventMeter: ...


class OpenAIFamily:
    """What every OpenAI-protocol surface shares: OpenAI's error shape, nothing extra to forward."""

    protocol = "openai"
    path: str

    def upstream_request(self, headers: Mapping[str, str], query: str) -> tuple[str, dict[str, str]]:
        return self.path, {}

    def error_body(self, exc: APIError) -> bytes:
        return exc.body()
