"""What each model surface's route declares for the document (`surface_route` spreads it in).

One entry per surface, keyed by its `operation`; a surface without one gets a route that is
documented only by the generic rules, which the OpenAPI test refuses.
"""

from __future__ import annotations

from typing import Any

from tollway.api.openapi import anthropic_types as anthropic
from tollway.api.openapi import openai_types as openai
from tollway.api.openapi.declare import ErrorStatus, documented
from tollway.surfaces.base import Surface

__all__ = ["COUNT_TOKENS", "surface_docs"]

BILLED = (
    "X-Request-Cost",
    "X-Tokens-Used",
    "X-Balance-Remaining",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)
_OPENAI_ERRORS: dict[ErrorStatus, str] = {
    400: "Invalid request; `param` names the field.  A model served over the other protocol is "
    "`wrong_surface`, naming the route to call.",
    402: "Not enough credit for the request's worst case (`insufficient_credit`); the message says "
    "what was needed and what is available.",
    404: "The model is not served (`model_not_found`).",
    429: "The key's spend limit is reached (`spend_limit_exceeded`, with `x-should-retry: false`) or "
    "a rate limit (`rate_limit_exceeded`, with `Retry-After`).",
    502: "The upstream is unreachable (`upstream_error`).",
    504: "The upstream is too slow (`upstream_timeout`).",
    "default": "An upstream's own 4xx/5xx, its body passed through (its secrets not).",
}
_ANTHROPIC_ERRORS: dict[ErrorStatus, str] = {
    400: "Invalid request (`invalid_request_error`); a model served over the other protocol names "
    "the route to call.",
    401: "Missing, unknown or revoked API key (`authentication_error`).",
    402: "Not enough credit for the request's worst case (`billing_error`).",
    404: "The model is not served (`not_found_error`).",
    413: "The body is over `[server] max_request_bytes` (`request_too_large`).",
    429: "A spend limit (named in the message, with `x-should-retry: false`) or a rate limit "
    "(with `Retry-After`) is reached (`rate_limit_error`).",
    502: "The upstream is unreachable (`api_error`).",
    504: "The upstream is too slow (`timeout_error`).",
    "default": "An upstream's own error (e.g. 529 `overloaded_error`), passed through.",
}
_CHUNKS = (
    "Server-sent events, relayed as they arrive: `data: {chunk}` lines, then exactly one usage chunk "
    '(`"choices": []`, `usage` complete with `cost`) and `data: [DONE]`, whether or not the request '
    "set `stream_options.include_usage`."
)
_ANSWER = (
    'The upstream\'s answer with `usage` complete and its `cost` (JSON); with `"stream": true`, '
    "the event stream."
)
_ROUTES: dict[str, dict[str, Any]] = {
    "chat.completions": {
        "summary": "Create a chat completion",
        "response_description": _ANSWER,
        "description": "OpenAI's chat completions, non-streaming and streaming; tools, `n`, "
        "`response_format` and images included, unknown fields passed to the upstream.  Billed "
        "at the model's prices; the answer's `usage` is always complete, with `cost`.",
        "opt": documented(
            body=openai.ChatCompletionRequest,
            ok=openai.ChatCompletion,
            events=openai.ChatCompletionChunk,
            stream=_CHUNKS,
            headers=BILLED,
            errors=_OPENAI_ERRORS,
        ),
    },
    "responses": {
        "summary": "Create a response (Responses API)",
        "response_description": _ANSWER,
        "description": "OpenAI's Responses API, non-streaming and streaming; fields pass through.  "
        "Non-streaming answers get `usage.cost`.",
        "opt": documented(
            body=openai.ResponsesRequest,
            ok=openai.ResponseObject,
            events=openai.ResponseStreamEvent,
            stream="Server-sent events with their `event:` names, no `[DONE]`: the terminal event "
            "(`response.completed`, `response.incomplete` or `response.failed`) carries "
            "`response.usage` complete, with `cost`.  An upstream that breaks off gets the stream "
            "ended with `response.failed`.",
            headers=BILLED,
            errors=_OPENAI_ERRORS,
        ),
    },
    "embeddings": {
        "summary": "Create embeddings",
        "response_description": "The upstream's answer, `usage.cost` added.",
        "description": "OpenAI's embeddings; input tokens only.  `encoding_format` and `dimensions` "
        "pass through, the vectors are relayed untouched; `usage` gains `cost`.",
        "opt": documented(
            body=openai.EmbeddingRequest, ok=openai.EmbeddingList, headers=BILLED, errors=_OPENAI_ERRORS
        ),
    },
    "completions": {
        "summary": "Create a completion (legacy)",
        "response_description": _ANSWER,
        "description": "OpenAI's legacy completions, non-streaming and streaming, with the chat rules "
        "for streams.",
        "opt": documented(
            body=openai.CompletionRequest,
            ok=openai.Completion,
            events=openai.CompletionChunk,
            stream=_CHUNKS,
            headers=BILLED,
            errors=_OPENAI_ERRORS,
        ),
    },
    "messages": {
        "summary": "Create a message (Anthropic)",
        "response_description": _ANSWER,
        "description": "Anthropic's Messages API, non-streaming and streaming, for models served over "
        "the anthropic protocol.  `anthropic-version` and `anthropic-beta` are passed on.",
        "opt": documented(
            body=anthropic.MessagesRequest,
            ok=anthropic.AnthropicMessage,
            events=anthropic.MessageStreamEvent,
            stream="Server-sent events with their `event:` names: input usage in `message_start`, "
            "the last `message_delta` carries the complete usage with `cost`, then `message_stop`.",
            auth="api_key_or_x_api_key",
            headers=BILLED,
            errors=_ANTHROPIC_ERRORS,
            error_shape="anthropic",
            request_headers=("anthropic-version", "anthropic-beta"),
        ),
    },
}
COUNT_TOKENS: dict[str, Any] = {
    "summary": "Count a message's tokens (Anthropic)",
    "response_description": "The upstream's count, as it is.",
    "description": "Forwarded to the upstream, authenticated, not billed.",
    "tags": ["surfaces"],
    "opt": documented(
        body=anthropic.CountTokensRequest,
        ok=anthropic.TokenCount,
        auth="api_key_or_x_api_key",
        errors={key: _ANTHROPIC_ERRORS[key] for key in (400, 401, 404, 413, 502, 504, "default")},
        error_shape="anthropic",
        request_headers=("anthropic-version", "anthropic-beta"),
    ),
}


def surface_docs(surface: Surface) -> dict[str, Any]:
    """The route decorator's documentation arguments for `surface` (none for one not listed)."""
    return {"tags": ["surfaces"], **_ROUTES.get(surface.operation, {})}
