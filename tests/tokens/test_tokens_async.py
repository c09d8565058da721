"""Async counting: same numbers as the sync methods, large inputs encoded off the loop thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import pytest
import tiktoken

from tollway.tokens import DEFAULT_OFFLOAD_CHARS, ENCODING_NAMES, TokenCounter

SMALL = "The quick brown fox jumps over the lazy dog. "
LARGE = (
    "Ünïcödé text, code `x = f(y) ** 2`, numbers 3.14159 and 2024-06-01; 東京タワー and emoji 🙂. "
) * 2000  # ~190k characters, far above the default threshold


@pytest.fixture
def run_sync_calls(monkeypatch: pytest.MonkeyPatch) -> list[Callable[..., Any]]:
    """Record what is sent to a worker thread, still running it there."""
    calls: list[Callable[..., Any]] = []
    real = anyio.to_thread.run_sync

    async def spy(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        calls.append(func)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", spy)
    return calls


def _messages(text: str) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "name": "amy", "content": [{"type": "text", "text": text}]},
    ]


@pytest.mark.parametrize("encoding", ENCODING_NAMES)
@pytest.mark.parametrize("text", [SMALL, LARGE], ids=["small", "large"])
async def test_async_counts_equal_sync_counts(
    counter: TokenCounter, encoding: str, text: str, run_sync_calls: list[Callable[..., Any]]
) -> None:
    assert await counter.acount_text(encoding, text) == counter.count_text(encoding, text)
    pieces = [text[i : i + 97] for i in range(0, len(text), 97)]
    assert await counter.acount_pieces(encoding, pieces) == counter.count_pieces(encoding, pieces)
    tools = [{"type": "function", "function": {"name": "f", "description": text[:5000]}}]
    assert await counter.acount_prompt(encoding, _messages(text), tools) == counter.count_prompt(
        encoding, _messages(text), tools
    )
    offloaded = len(text) > DEFAULT_OFFLOAD_CHARS
    assert len(run_sync_calls) == (3 if offloaded else 0)


async def test_threshold_is_exclusive(
    encodings: dict[str, tiktoken.Encoding], run_sync_calls: list[Any]
) -> None:
    counter = TokenCounter(encodings.values(), offload_chars=10)
    await counter.acount_text("o200k_base", "x" * 10)
    await counter.acount_prompt("o200k_base", [{"role": "user", "content": "123456"}])  # 4 + 6 chars
    assert run_sync_calls == []
    await counter.acount_text("o200k_base", "x" * 11)
    await counter.acount_prompt("o200k_base", [{"role": "user", "content": "1234567"}])
    assert len(run_sync_calls) == 2


async def test_large_input_is_encoded_while_the_loop_keeps_running(
    counter: TokenCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The encoder blocks until a task on the event loop releases it. If encoding ran on the
    # loop thread that task could never run, and the wait would time out.
    enc = counter.encoding("o200k_base")
    real = enc.encode_ordinary
    loop_thread = threading.get_ident()
    encoder_threads: list[int] = []
    started, released = threading.Event(), threading.Event()

    def blocking_encode(text: str) -> list[int]:
        encoder_threads.append(threading.get_ident())
        started.set()
        if not released.wait(timeout=5):
            raise AssertionError("event loop was blocked while encoding")
        return real(text)

    monkeypatch.setattr(enc, "encode_ordinary", blocking_encode)
    results: list[int] = []

    async def count() -> None:
        results.append(await counter.acount_prompt("o200k_base", _messages(LARGE)))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(count)
            # Waiting in another worker keeps this task on the loop, free to release.
            assert await anyio.to_thread.run_sync(started.wait, 5)
            released.set()

    monkeypatch.undo()
    assert results == [counter.count_prompt("o200k_base", _messages(LARGE))]
    assert encoder_threads
    assert loop_thread not in encoder_threads


async def test_small_input_is_counted_inline(counter: TokenCounter, monkeypatch: pytest.MonkeyPatch) -> None:
    enc = counter.encoding("cl100k_base")
    real = enc.encode_ordinary
    threads: list[int] = []

    def recording_encode(text: str) -> list[int]:
        threads.append(threading.get_ident())
        return real(text)

    monkeypatch.setattr(enc, "encode_ordinary", recording_encode)
    await counter.acount_text("cl100k_base", SMALL)
    await counter.acount_prompt("cl100k_base", _messages(SMALL))
    assert set(threads) == {threading.get_ident()}


async def test_load_builds_in_a_worker_thread(run_sync_calls: list[Any]) -> None:
    counter = await TokenCounter.load(["cl100k_base"], offload_chars=100)
    assert len(run_sync_calls) == 1
    assert counter.encoding_names == ("cl100k_base",)
    assert counter.offload_chars == 100
    assert await counter.acount_text("cl100k_base", "tiktoken is great!") == 6
