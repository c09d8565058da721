"""Properties that hold for any text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.tokens import ENCODING_NAMES, TokenCounter

pieces_strategy = st.lists(st.text(max_size=40), max_size=20)
valid_utf8 = st.characters(exclude_categories=["Cs"])  # lone surrogates are not UTF-8


@settings(max_examples=200, deadline=None)
@given(encoding=st.sampled_from(ENCODING_NAMES), pieces=pieces_strategy)
def test_count_pieces_is_count_of_join(counter: TokenCounter, encoding: str, pieces: list[str]) -> None:
    assert counter.count_pieces(encoding, pieces) == counter.count_text(encoding, "".join(pieces))


@settings(max_examples=200, deadline=None)
@given(encoding=st.sampled_from(ENCODING_NAMES), text=st.text(valid_utf8, max_size=200))
def test_tokens_round_trip_to_the_text(counter: TokenCounter, encoding: str, text: str) -> None:
    # Exercises the parsed ranks: every token must decode back to the bytes it came from.
    enc = counter.encoding(encoding)
    tokens = enc.encode_ordinary(text)
    assert enc.decode_bytes(tokens) == text.encode()
    assert len(tokens) == counter.count_text(encoding, text)
    assert len(tokens) <= len(text.encode())


@settings(max_examples=100, deadline=None)
@given(
    encoding=st.sampled_from(ENCODING_NAMES),
    contents=st.lists(st.text(max_size=50), max_size=6),
)
def test_prompt_is_frames_plus_fields(counter: TokenCounter, encoding: str, contents: list[str]) -> None:
    messages = [{"role": "user", "content": c} for c in contents]
    role = counter.count_text(encoding, "user")
    expected = 3 + sum(3 + role + counter.count_text(encoding, c) for c in contents)
    assert counter.count_prompt(encoding, messages) == expected
