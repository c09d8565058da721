"""The entry `chain` makes carries its own hash: the hash must be `entry_hash`'s, whatever
the draft (verify recomputes entries with `chain`, and old ledgers were hashed field by field)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.ledger.chain import GENESIS, Draft, Head, KeyHead, chain, entry_hash

_nanos = st.integers(min_value=-(2**62), max_value=2**62)
_text = st.none() | st.text(max_size=12)
_heads = st.builds(
    Head,
    ws_seq=st.integers(min_value=0, max_value=2**40),
    balance_nano=_nanos,
    held_nano=_nanos,
    hash=st.just(GENESIS) | st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
)
_drafts = st.builds(
    Draft,
    workspace_id=st.text(min_size=1, max_size=12),
    kind=st.sampled_from(["credit", "adjustment", "reserve", "debit", "release"]),
    amount_nano=_nanos,
    hold_nano=_nanos,
    key_id=_text,
    reservation_id=_text,
    owner=_text,
    idempotency_key=_text,
    note=_text,
    created_at=st.integers(min_value=0, max_value=2**62),
)


@settings(max_examples=300)
@given(
    head=_heads,
    key_head=st.none() | st.builds(KeyHead, spent_nano=_nanos, held_nano=_nanos),
    draft=_drafts,
    stamp=st.none() | st.integers(min_value=0, max_value=2**62),
)
def test_an_entry_carries_the_hash_of_its_own_fields(
    head: Head, key_head: KeyHead | None, draft: Draft, stamp: int | None
) -> None:
    entry = chain(head, key_head, draft, stamp)
    assert entry.hash == entry_hash(entry)
    assert entry.created_at == (draft.created_at if stamp is None else stamp)
    assert entry.prev_hash == head.hash
    assert (entry.ws_seq, entry.balance_nano, entry.held_nano) == (
        head.ws_seq + 1,
        head.balance_nano + draft.amount_nano,
        head.held_nano + draft.hold_nano,
    )


def test_the_hash_of_a_known_entry_is_unchanged() -> None:
    """Pinned: the encoding every existing ledger was hashed with."""
    entry = chain(
        Head(),
        KeyHead(),
        Draft(workspace_id="ws_a", kind="reserve", hold_nano=5, key_id="key_b", reservation_id="req_c"),
        1_700_000_000_000_000,
    )
    assert entry.hash == entry_hash(entry) == GOLDEN


# What the code of commit 3069be8 computed for it.
GOLDEN = "d6d77485cddf3465da997395ca9db635d1b65210c8aca47ae25321db5131f9ad"
