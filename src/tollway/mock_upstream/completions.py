"""The mock's `/v1/completions`: OpenAI's legacy completions, streamed or not.

The answer is chat's: `chunks` words from the same cycle (each one token),
cut short by `max_tokens` (finish reason "length"), or the request body as
JSON with the `echo` knob.  Each prompt gets `n` choices (index
`prompt * n + j`), each `{"text", "index", "logprobs": null, "finish_reason"}`;
with the request's `echo: true` a choice's text starts with its prompt (a
token-array prompt echoes as nothing: the mock has no detokenizer).  Usage:
`prompt_tokens` = the knob, else one token per four characters of each prompt
string (token arrays their length); `completion_tokens` = the knob, else the
words generated over all choices.

Streams are `text_completion` chunks: (the echoed prompts,) one chunk per word
per choice, a finish-reason chunk per choice, then, with
`stream_options.include_usage`, a `"choices": []` usage chunk, and `[DONE]`;
the chat knobs apply: `usage` present / absent / with_choices, `usage_override`,
pacing, `cut_after`, `error_after`, `sse_style`.  `tool_call` and
`reasoning_text` mean nothing here and are ignored.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from tollway.mock_upstream.asgi import Receive, Send, encode, send_json_later
from tollway.mock_upstream.behaviour import Behaviour
from tollway.mock_upstream.chat import CREATED, MAX_CHOICE_CHUNKS, MAX_OUTPUT_CHARS, build_usage, choice_count
from tollway.mock_upstream.chunks import Kind, Step
from tollway.mock_upstream.embeddings import estimate_tokens, text_inputs
from tollway.mock_upstream.errors import BadRequest
from tollway.mock_upstream.stream import write_steps
from tollway.mock_upstream.text import words

__all__ = ["TextPlan", "answer", "build_text_plan", "completion_body", "text_steps"]

OBJECT = "text_completion"


class TextPlan(msgspec.Struct, frozen=True):
    """Everything one legacy completion will contain, whether it is streamed or not."""

    id: str
    model: str
    n: int
    # Per prompt, the text its choices start with ("" without the request's `echo`).
    echoes: list[str]
    # One element per streamed content chunk; joined, every choice's generated text.
    pieces: list[str]
    finish_reason: str
    has_usage: bool
    usage: Any

    @property
    def choices(self) -> int:
        return len(self.echoes) * self.n


def build_text_plan(body: dict[str, Any], behaviour: Behaviour, completion_id: str) -> TextPlan:
    prompts = text_inputs(body.get("prompt"), "prompt")
    n = choice_count(body)
    echo = body.get("echo") is True
    echoes = [p if echo and isinstance(p, str) else "" for p in prompts]
    finish_reason = "stop"
    if behaviour.echo:
        pieces = [encode(body).decode()]
        generated = max(1, len(pieces[0]) // 4)
    else:
        count = behaviour.chunks
        limit = body.get("max_tokens")
        if type(limit) is int and limit < count:
            count = max(limit, 0)
            finish_reason = "length"
        pieces = words(count)
        generated = count
    choices = len(prompts) * n
    if choices * (len(pieces) + 1) > MAX_CHOICE_CHUNKS:
        raise BadRequest(
            f"prompts x `n` x chunks may be at most {MAX_CHOICE_CHUNKS}; this request asks for "
            f"{len(prompts)} x {n} x {len(pieces)}",
            "n",
            "invalid_value",
        )
    chars = n * (sum(map(len, echoes)) + len(prompts) * sum(map(len, pieces)))
    if chars > MAX_OUTPUT_CHARS:
        raise BadRequest(
            f"the answer may be at most {MAX_OUTPUT_CHARS} characters; this request asks for {chars}",
            "n",
            "invalid_value",
        )
    usage: Any = None
    has_usage = behaviour.usage != "absent"
    if behaviour.usage_override is not msgspec.UNSET:
        usage = behaviour.usage_override
    elif has_usage:
        prompt = behaviour.prompt_tokens
        if prompt is None:
            prompt = sum(estimate_tokens(p) if isinstance(p, str) else len(p) for p in prompts)
        completion = behaviour.completion_tokens
        if completion is None:
            completion = generated * choices
        usage = build_usage(behaviour, prompt, completion, behaviour.reasoning_tokens or 0)
    model = body.get("model")
    return TextPlan(
        id=completion_id,
        model=model if isinstance(model, str) else "",
        n=n,
        echoes=echoes,
        pieces=pieces,
        finish_reason=finish_reason,
        has_usage=has_usage,
        usage=usage,
    )


def completion_body(plan: TextPlan) -> dict[str, Any]:
    generated = "".join(plan.pieces)
    choices = [
        {
            "text": plan.echoes[i // plan.n] + generated,
            "index": i,
            "logprobs": None,
            "finish_reason": plan.finish_reason,
        }
        for i in range(plan.choices)
    ]
    body: dict[str, Any] = {
        "id": plan.id,
        "object": OBJECT,
        "created": CREATED,
        "model": plan.model,
        "choices": choices,
    }
    if plan.has_usage:
        body["usage"] = plan.usage
    return body


def text_steps(plan: TextPlan, include_usage: bool, usage_mode: str) -> Iterator[Step]:
    """The stream's chunks in paced steps, as `chunks.stream_steps` does for chat."""
    with_usage_chunk = usage_mode == "present" and include_usage and plan.has_usage
    null_usage = include_usage and usage_mode != "absent"
    base: dict[str, Any] = {"id": plan.id, "object": OBJECT, "created": CREATED, "model": plan.model}

    def step(kind: Kind, delayed: bool, texts: list[str], finish: str | None = None) -> Step:
        chunks = []
        for index, text in enumerate(texts):
            chunk = dict(base)
            chunk["choices"] = [{"text": text, "index": index, "logprobs": None, "finish_reason": finish}]
            if null_usage:
                chunk["usage"] = None
            chunks.append(chunk)
        return Step(kind, delayed, chunks)

    count = plan.choices
    if any(plan.echoes):
        yield step(Kind.HEAD, False, [plan.echoes[i // plan.n] for i in range(count)])
    paced = False
    for piece in plan.pieces:
        yield step(Kind.CONTENT, paced, [piece] * count)
        paced = True
    tail = step(Kind.TAIL, False, [""] * count, plan.finish_reason)
    if usage_mode == "with_choices" and plan.has_usage:
        tail.chunks[-1]["usage"] = plan.usage
    if with_usage_chunk:
        usage_chunk = dict(base)
        usage_chunk["choices"] = []
        usage_chunk["usage"] = plan.usage
        tail.chunks.append(usage_chunk)
    yield tail


async def answer(
    mock: Any, receive: Receive, send: Send, body: dict[str, Any], behaviour: Behaviour, serial: int
) -> None:
    try:
        plan = build_text_plan(body, behaviour, f"cmpl-mock-{serial}")
    except BadRequest as exc:
        await send_json_later(send, receive, 0, 400, exc.body())
        return
    if body.get("stream") is True:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        steps = text_steps(plan, include_usage, behaviour.usage)
        await mock.run_stream(receive, write_steps(send, steps, behaviour))
        return
    # A non-streamed answer arrives when the streamed one would have finished.
    delay = (
        behaviour.headers_delay_ms
        + behaviour.ttft_ms
        + behaviour.chunk_delay_ms * max(len(plan.pieces) - 1, 0)
    )
    await send_json_later(send, receive, delay, 200, completion_body(plan))
