"""The `chat.completion.chunk` objects of a streamed completion, grouped into paced steps."""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum
from typing import Any, NamedTuple

from tollway.mock_upstream.chat import CREATED, Plan, tool_call_start


class Kind(Enum):
    HEAD = "head"  # role announcement, sent right after the time-to-first-token delay
    WORD = "word"  # reasoning text or the tool call's opening; paced but not counted as content
    CONTENT = "content"  # counted by cut_after / error_after
    TAIL = "tail"  # finish_reason chunks, then the usage chunk


class Step(NamedTuple):
    kind: Kind
    # Sleep chunk_delay_ms before this step; the first word goes out with the head.
    delayed: bool
    # One chunk per choice (n > 1 interleaves choices the way OpenAI does).
    chunks: list[dict[str, Any]]


def stream_steps(plan: Plan, include_usage: bool, usage_mode: str) -> Iterator[Step]:
    """Steps in order. `usage_mode` is the Behaviour's `usage` knob."""
    with_usage_chunk = usage_mode == "present" and include_usage and plan.has_usage
    # OpenAI puts `"usage": null` on every chunk but the usage chunk once include_usage is on.
    null_usage = include_usage and usage_mode != "absent"
    base: dict[str, Any] = {"id": plan.id, "object": "chat.completion.chunk", "created": CREATED}
    base["model"] = plan.model

    def step(kind: Kind, delayed: bool, delta: dict[str, Any], finish: str | None = None) -> Step:
        chunks = []
        for index in range(plan.n):
            chunk = dict(base)
            chunk["choices"] = [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]
            if null_usage:
                chunk["usage"] = None
            chunks.append(chunk)
        return Step(kind, delayed, chunks)

    opening: dict[str, Any] = {"role": "assistant", "content": None if plan.tool_call else ""}
    start_call = plan.tool_call
    if start_call and not plan.reasoning:
        # With nothing before it, the tool call opens in the role chunk, as OpenAI streams it.
        opening["tool_calls"] = [tool_call_start()]
        start_call = False
    yield step(Kind.HEAD, False, opening)
    paced = False
    for word in plan.reasoning:
        yield step(Kind.WORD, paced, {"reasoning_content": word})
        paced = True
    if start_call:
        yield step(Kind.WORD, paced, {"tool_calls": [tool_call_start()]})
        paced = True
    for piece in plan.pieces:
        if plan.tool_call:
            delta: dict[str, Any] = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
        else:
            delta = {"content": piece}
        yield step(Kind.CONTENT, paced, delta)
        paced = True
    tail = step(Kind.TAIL, False, {}, plan.finish_reason)
    if usage_mode == "with_choices" and plan.has_usage:
        # Some providers skip the separate usage chunk and attach usage to the final chunk instead.
        tail.chunks[-1]["usage"] = plan.usage
    if with_usage_chunk:
        usage_chunk = dict(base)
        usage_chunk["choices"] = []
        usage_chunk["usage"] = plan.usage
        tail.chunks.append(usage_chunk)
    yield tail
