"""Ids: their shape, uniqueness and order."""

from __future__ import annotations

import os
import re
import threading

import pytest

from tollway import keys
from tollway.keys import new_id

_SHAPE = re.compile(r"req_[0-9a-f]{24}")


def test_an_id_is_the_prefix_and_24_hex_digits() -> None:
    assert _SHAPE.fullmatch(new_id("req"))
    assert re.fullmatch(r"evt_[0-9a-f]{24}", new_id("evt"))


def test_ids_are_unique_across_many_blocks_of_random_digits() -> None:
    made = [new_id("req") for _ in range(100_000)]  # about 300 blocks of 2,048 random bytes
    assert len(set(made)) == len(made)


def test_ids_begin_with_the_millisecond_they_were_made(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([1_700_000_000_123_456_789, 1_700_000_000_124_000_000, 1_700_000_000_124_999_999])
    monkeypatch.setattr(keys.time, "time_ns", lambda: next(clock))
    first, second, third = new_id("req"), new_id("req"), new_id("req")
    assert first[4:15] == f"{1_700_000_000_123:011x}" == "18bcfe5687b"
    assert second[4:15] == third[4:15] == f"{1_700_000_000_124:011x}"
    assert first < second  # a later millisecond sorts later, whatever the random part
    assert second[15:] != third[15:]


def test_threads_draw_different_digits() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def make(into: list[str]) -> None:
        into.extend(new_id("req") for _ in range(5_000))

    threads = [threading.Thread(target=make, args=(into,)) for into in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [made_id for into in made for made_id in into]
    assert len(set(every)) == 20_000


def test_a_forked_child_does_not_repeat_its_parents_digits() -> None:
    new_id("req")  # the parent has a block under way
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write the next id's random part and leave at once
        os.write(write, new_id("req")[15:].encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert len(child) == 13
    assert new_id("req")[15:] != child
