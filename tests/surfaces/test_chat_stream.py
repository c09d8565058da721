"""A streamed chat completion's events as relayed: the served name in place of the upstream's."""

from __future__ import annotations

import json

from tollway.surfaces.chat_stream import ChatStream
from tollway.upstream.sse import SSEEvent, frame


def chunk(model: str, text: str, *, spaced: bool = False) -> bytes:
    value = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": model}
    value["choices"] = [{"index": 0, "delta": {"content": text}, "finish_reason": None}]
    if spaced:
        return json.dumps(value, indent=1).encode()
    return json.dumps(value, separators=(",", ":")).encode()


def relayed(stream: ChatStream, payload: bytes) -> bytes:
    out, done = stream.observe(SSEEvent(payload))
    assert out is not None
    assert not done
    return out


def test_every_chunk_shows_the_served_name_byte_for_byte_otherwise() -> None:
    stream = ChatStream("served")
    for text in ("a", "b", '"model":"demo"'):  # the upstream's name in the text is left alone
        out = relayed(stream, chunk("demo", text))
        assert out == b"data: " + chunk("served", text) + b"\n\n"
    assert stream.text == ["a", "b", '"model":"demo"']


def test_an_upstream_that_changes_its_model_name_mid_stream_is_renamed_too() -> None:
    stream = ChatStream("served")
    outs = [relayed(stream, chunk(model, "x")) for model in ("demo", "demo-2", "demo")]
    assert outs == [b"data: " + chunk("served", "x") + b"\n\n"] * 3


def test_spaced_json_is_renamed_the_slow_way() -> None:
    out = relayed(ChatStream("served"), chunk("demo", "x", spaced=True))
    assert out.startswith(b"data: ") and out.endswith(b"\n\n")
    assert b"\n" not in out[:-2]  # re-encoded on one line
    assert json.loads(out[6:]) == json.loads(chunk("served", "x"))


def test_without_an_alias_the_payload_is_relayed_as_it_came() -> None:
    assert relayed(ChatStream(), chunk("demo", "x")) == b"data: " + chunk("demo", "x") + b"\n\n"


def test_frames_keep_a_multi_line_payload_multi_line_and_name_the_event() -> None:
    assert frame(b"", b'{"a":1}') == b'data: {"a":1}\n\n'
    assert frame(b"delta", b"one\ntwo") == b"event: delta\ndata: one\ndata: two\n\n"
    assert frame(b"", b"one\n") == b"data: one\ndata: \n\n"
