"""The signature scheme against a vector computed elsewhere (openssl), and what `verify` refuses."""

from __future__ import annotations

from tollway.events.signing import sign, signature, verify

SECRET = "whsec_test-secret"
BODY = b'{"id":"evt_0123","type":"credit.added"}'
T = 1_700_000_000
# Computed with openssl:
#   printf '%s' '1700000000.{"id":"evt_0123","type":"credit.added"}' \
#     | openssl dgst -sha256 -hmac 'whsec_test-secret'
VECTOR = "255359aee6c7babe3d478dcc8048525b6504dc31c521f7dc2f5acd3189fdafcc"


def test_the_known_vector() -> None:
    assert signature(SECRET, T, BODY) == VECTOR
    assert sign(SECRET, T, BODY) == f"t={T},v1={VECTOR}"


def test_verify_accepts_the_header_it_made_within_the_tolerance() -> None:
    header = sign(SECRET, T, BODY)
    assert verify(SECRET, header, BODY, now=T)
    assert verify(SECRET, header, BODY, now=T + 299)
    # Spaces after commas, unknown schemes and a second v1 (a secret being rotated) are fine.
    assert verify(SECRET, f"t={T}, v0=abc, v1={'0' * 64}, v1={VECTOR}", BODY, now=T)


def test_verify_refuses_tampering_staleness_and_nonsense() -> None:
    header = sign(SECRET, T, BODY)
    assert not verify(SECRET, header, BODY + b" ", now=T)
    assert not verify("another-secret", header, BODY, now=T)
    assert not verify(SECRET, header, BODY, now=T + 301)  # a replay, five minutes late
    assert not verify(SECRET, header, BODY, now=T - 301)
    assert not verify(SECRET, f"t={T + 1},v1={VECTOR}", BODY, now=T)  # the timestamp is signed
    for bad in ("", "garbage", f"v1={VECTOR}", f"t={T}", f"t=x,v1={VECTOR}", f"t={T},v1=é"):
        assert not verify(SECRET, bad, BODY, now=T)
