"""Property-based fuzzing of every route of a real tollway server (SPEC §3: no input gets a 5xx).

For every response: the status is below 500; every non-2xx body is exactly OpenAI's error
shape; and a request that did not succeed left the watched workspace's ledger as it was (its
balance, what it holds, and how many debit and credit entries it has).

Bodies are mostly valid with a few fields broken, so that examples get past validation into
reservation, forwarding and billing too; the rest is deep nesting, huge numbers, wrong types,
unknown fields, duplicate keys, bytes that are not JSON or not UTF-8.

Replaying: the run's seed is printed once at the start (and noted with any failure); set
TOLLWAY_FUZZ_SEED to it to run the same examples again.  A failing example also comes with
Hypothesis's `@reproduce_failure` blob.  TOLLWAY_FUZZ_SCALE multiplies every example count.
"""

from __future__ import annotations

import base64
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, example, given, note, seed, settings
from hypothesis import strategies as st

from tests.e2e.conftest import ADMIN_TOKEN, Account, Tollway

SEED = int(os.environ.get("TOLLWAY_FUZZ_SEED") or random.randrange(2**32))
SCALE = float(os.environ.get("TOLLWAY_FUZZ_SCALE") or 1.0)
SEED_LINE = f"tollway fuzz seed: {SEED} (replay with TOLLWAY_FUZZ_SEED={SEED})"


def fuzz(examples: int) -> Callable[[Any], Any]:
    """The settings every test here shares: seeded, blob printed, no deadline, bounded examples."""
    chosen = settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )

    def apply(test: Any) -> Any:
        return seed(SEED)(chosen(test))

    return apply


ADMIN = f"Bearer {ADMIN_TOKEN}"
# Served models that answer without a timeout or a dead upstream in the way: an upstream that is
# down is a 502 by design (SPEC §3), not a client input getting a 5xx.
MODELS = ("gpt-4o-mini", "counted", "gpt-4-counted", "mystery-model", "no-stream-options", "fallback-model")
# `mock` steers the mock upstream, which can be asked for a 5xx (passed through by design).
RESERVED_KEYS = frozenset({"mock"})


# --- the server, one client, watched ledgers ----------------------------------------------------


@pytest.fixture(name="seed_printed", scope="module", autouse=True)
def fixture_seed_printed(request: pytest.FixtureRequest) -> None:
    """Print the seed once, past pytest's output capture, whatever the verbosity."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(SEED_LINE)
    else:
        print(SEED_LINE)


@pytest.fixture(name="http", scope="module")
def fixture_http(tollway: Tollway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tollway.url, timeout=60) as client:
        yield client


@dataclass(frozen=True)
class Watched:
    """A workspace whose ledger must not move when a request fails."""

    tollway: Tollway = field(repr=False)  # its repr holds the server's whole environment
    account: Account

    def snapshot(self) -> tuple[int | None, ...]:
        """(debit entries, credit entries, balance, held) of the workspace."""
        [row] = self.tollway.db.rows(
            "select"
            " (select count(*) from ledger_entries where workspace_id = ? and kind = 'debit'),"
            " (select count(*) from ledger_entries where workspace_id = ? and kind = 'credit'),"
            " (select balance_nano from ledger_entries where workspace_id = ?"
            "  order by ws_seq desc limit 1),"
            " (select held_nano from ledger_entries where workspace_id = ? order by ws_seq desc limit 1)",
            *([self.account.workspace_id] * 4),
        )
        return tuple(None if v is None else int(v) for v in row)

    def settled(self) -> tuple[int | None, ...]:
        """The snapshot once nothing is held (an earlier stream settles as it ends)."""
        deadline = time.monotonic() + 10
        while True:
            now = self.snapshot()
            if now[3] in (0, None) or time.monotonic() > deadline:
                return now
            time.sleep(0.02)

    def unchanged_unless_2xx(self, before: tuple[int | None, ...], response: httpx.Response) -> None:
        if 200 <= response.status_code < 300:
            return
        after = self.snapshot()
        assert after == before, (
            f"a {response.status_code} moved the ledger of {self.account.workspace_id}: "
            f"(debits, credits, balance, held) {before} -> {after}"
        )


@dataclass(frozen=True)
class Ids:
    """Real ids, so that path fuzzing also hits rows that exist (and rows of another workspace)."""

    values: tuple[str, ...]


@pytest.fixture(name="payer", scope="module")
def fixture_payer(tollway: Tollway) -> Watched:
    """The workspace every client-route example calls as, with credit for far more than it spends."""
    return Watched(tollway, tollway.new_account("fuzz-payer", credit_usd="50.00"))


@pytest.fixture(name="target", scope="module")
def fixture_target(tollway: Tollway) -> Watched:
    """The workspace the admin examples credit, add keys to and revoke keys of."""
    return Watched(tollway, tollway.new_account("fuzz-target", credit_usd="5.00"))


@pytest.fixture(name="patched", scope="module")
def fixture_patched(tollway: Tollway) -> Account:
    """The account whose key and workspace the PATCH examples change (no example calls with it)."""
    return tollway.new_account("fuzz-patched", credit_usd=None)


@pytest.fixture(name="ids", scope="module")
def fixture_ids(http: httpx.Client, tollway: Tollway, payer: Watched, target: Watched) -> Ids:
    found = [payer.account.workspace_id, target.account.workspace_id, target.account.key_id, "gpt-4o-mini"]
    for watched in (payer, target):
        response = http.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {watched.account.key}"},
        )
        assert response.status_code == 200, response.text
        auth = {"authorization": f"Bearer {watched.account.key}"}
        found.append(http.get("/v1/credits/usage/log?limit=1", headers=auth).json()["data"][0]["id"])
    spare = tollway.admin(
        "POST", f"/admin/workspaces/{target.account.workspace_id}/keys", json={"name": "spare"}
    )
    found.append(spare.json()["id"])
    return Ids(tuple(found))


def check_response(response: httpx.Response) -> None:
    """Below 500, an X-Request-Id, and a non-2xx body exactly `{"error": {message, type, param, code}}`."""
    note(SEED_LINE)
    status = response.status_code
    event(f"status {status}")
    assert status < 500, f"{status}: {response.text[:2000]}"
    assert response.headers.get("x-request-id", "").startswith("req_"), response.headers
    if 200 <= status < 300 or response.request.method == "HEAD":
        return
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(f"{status} with a body that is not JSON: {response.content[:500]!r}") from exc
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}, body
    assert isinstance(error["message"], str), body
    assert isinstance(error["type"], str), body
    assert error["param"] is None or isinstance(error["param"], str), body
    assert error["code"] is None or isinstance(error["code"], str), body


# --- strategies: query strings, paths, headers --------------------------------------------------

# Digits `str.isdigit` (or `int`) accepts beyond ASCII: superscripts, circled, Arabic-Indic,
# Extended Arabic-Indic, NKo, Devanagari, Bengali, Thai, fullwidth, mathematical.
UNICODE_DIGITS = (
    "\u00b2\u00b3\u00b9\u2460\u2461\u2468\u0660\u0661\u0663\u0669\u06f0\u06f9\u07c0"
    "\u0966\u096f\u09e6\u0e59\uff10\uff11\uff19\U0001d7ce\U0001d7d7"
)


def percent(raw: bytes) -> str:
    """Every byte percent-encoded except unreserved ASCII: any bytes arrive as they are."""
    keep = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    return "".join(chr(b) if b in keep else f"%{b:02X}" for b in raw)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


big_digits = st.integers(1, 6000).map(lambda n: "9" * n)
numberish = st.one_of(
    st.integers(0, 200).map(str),
    st.integers(-(10**30), 10**30).map(str),
    big_digits,
    st.text(alphabet=UNICODE_DIGITS + "0123456789", min_size=1, max_size=12),
    st.sampled_from(["", "0", "-1", "+5", " 5", "5 ", "1.5", "1e3", "0x10", "2" * 19, "9" * 20, "00010"]),
    st.sampled_from([str(2**63 - 1), str(2**63), str(2**64)]),
)
cursor_text = st.one_of(
    st.binary(max_size=80).map(b64),
    st.tuples(st.sampled_from(["seq", "", "x\x00", "req_1", "seq\x00"]), numberish).map(
        lambda p: b64(utf8(":".join(p)))
    ),
    st.tuples(numberish, st.text(max_size=20)).map(lambda p: b64(utf8(":".join(p)))),
    st.text(max_size=40),
    st.binary(max_size=40).map(lambda raw: base64.b64encode(raw).decode()),  # the other alphabet, padded
)
iso_text = st.one_of(
    st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "9999-12-31T23:59:59.999999Z",
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+23:59",
            "1970-01-01T00:00:00+00:01",
            "2026-02-30",
            "2026-01-01T24:00",
            "2026-W01-1",
            "\uff12\uff10\uff12\uff16-01-01",  # fullwidth digits
        ]
    ),
)
query_text = st.one_of(
    numberish,
    cursor_text,
    iso_text,
    st.text(max_size=30),
    st.sampled_from(["\x00", "a\x00b", "\ufffd", "gpt-4o-mini", "%", "%zz"]),
)
# A query value as bytes: text as UTF-8 (lone surrogates too), or bytes that are not UTF-8 at all.
query_value = st.one_of(query_text.map(utf8), st.binary(max_size=40))
QUERY_NAMES = ("limit", "cursor", "days", "from", "to", "model", "key_id")
query_name = st.one_of(st.sampled_from(QUERY_NAMES), st.text(max_size=8)).map(utf8)
query_string = st.lists(st.tuples(query_name, query_value), max_size=5).map(
    lambda pairs: "&".join(f"{percent(k)}={percent(v)}" for k, v in pairs)
)
segment = st.one_of(
    st.binary(max_size=70).map(percent),
    st.text(max_size=70).map(lambda t: percent(utf8(t))),
    st.sampled_from(["%00", "%FF", "%C0%AF", "%ED%A0%80", "..", ".", "%2F", "%2E%2E", "a" * 5000, "ws_%00"]),
)

# A header value h11 lets a client send: visible ASCII and obs-text, with spaces only inside.
header_value = st.one_of(
    st.binary(min_size=1, max_size=300).map(
        lambda raw: bytes(b if (0x21 <= b <= 0x7E or b >= 0x80) else 0x41 for b in raw)
    ),
    st.tuples(
        st.sampled_from([b"Bearer", b"bearer", b"BEARER", b"Basic", b"Bearer\t", b"Bearer "]),
        st.sampled_from([b"tw-", b"", b"sk-", b"tw"]),
        st.binary(max_size=250).map(lambda raw: bytes(b if b >= 0x21 and b != 0x7F else 0x2D for b in raw)),
    ).map(lambda p: (p[0] + b" " + p[1] + p[2]).strip() or b"x"),
)
# Headers a client may add to any request, none of which may change what a request costs.
extra_headers = st.dictionaries(
    st.sampled_from(
        [
            "origin",
            "x-request-id",
            "accept",
            "accept-encoding",
            "x-api-key",
            "anthropic-version",
            "openai-beta",
        ]
    ),
    header_value,
    max_size=2,
)


# --- strategies: JSON ---------------------------------------------------------------------------


def key_text() -> st.SearchStrategy[str]:
    return st.text(max_size=10).map(lambda k: f"{k}_" if k in RESERVED_KEYS else k)


json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(key_text(), inner, max_size=4),
    max_leaves=10,
)


def dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# JSON text json.dumps never writes: numbers out of range, lone surrogate escapes, NaN.
odd_json = st.sampled_from(
    [
        "1e400",
        "-1e400",
        "1" + "0" * 400 + ".0",
        "9" * 4300,
        "9" * 4301,
        "-" + "9" * 5000,
        "99999999999999999999999",
        "18446744073709551616",
        "NaN",
        "Infinity",
        "-0",
        "1.5e-400",
        "0.1e1",
        '"\\ud800"',
        '"\\udc00x"',
        '"\\ud800\\u0041"',
        '"\\\\ud800"',
        '"\\ud83d\\ude00"',
        '"\\u0000"',
        '"a\\u0000b"',
    ]
)


@st.composite
def deep_json(draw: st.DrawFn, inner: str = "1") -> str:
    depth = draw(st.one_of(st.integers(1, 140), st.sampled_from([126, 127, 128, 999, 1000, 1001, 5000])))
    shape = draw(st.sampled_from(["list", "object", "mixed"]))
    if shape == "list":
        return "[" * depth + inner + "]" * depth
    if shape == "object":
        return '{"k":' * depth + inner + "}" * depth
    opens = ["[" if i % 2 else '{"t":' for i in range(depth)]
    closes = ["]" if i % 2 else "}" for i in reversed(range(depth))]
    return "".join(opens) + inner + "".join(closes)


junk_json = st.one_of(
    json_value.map(dump), json_value.map(dump), odd_json, deep_json(), odd_json.flatmap(deep_json)
)


def mostly(valid: st.SearchStrategy[str], ratio: int = 4) -> st.SearchStrategy[str]:
    """`valid` about `ratio` times in `ratio + 1`, arbitrary JSON otherwise."""
    return st.one_of(*([valid] * ratio), junk_json)


def obj(pairs: list[tuple[str, str]]) -> str:
    """A JSON object from (key, JSON text) pairs; a repeated key stays repeated."""
    return "{" + ",".join(f"{dump(k)}:{v}" for k, v in pairs) + "}"


def array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


# Text, including what tokenizers trip over: special tokens, long runs of one character.
text_json = st.one_of(
    st.text(max_size=40),
    st.text(max_size=40),
    st.sampled_from(["<|endoftext|>", "<|im_start|>user", "<|fim_prefix|>", "\ufeff\u200b", "a" * 20_000]),
).map(dump)


def pick(draw: st.DrawFn, valid: st.SearchStrategy[str], wild: bool, ratio: int = 4) -> str:
    """In a wild body, `mostly(valid)`; in a tame one, always `valid`."""
    return draw(mostly(valid, ratio) if wild else valid)


@st.composite
def content_part(draw: st.DrawFn, wild: bool) -> str:
    kind = draw(st.sampled_from(["text", "text", "refusal", "image_url", "input_audio", "file", "other"]))
    pairs = [("type", dump(kind) if kind != "other" else pick(draw, text_json, wild))]
    if kind in ("text", "refusal", "other"):
        pairs.append((kind, pick(draw, text_json, wild)))
    elif kind == "image_url":
        pairs.append(("image_url", pick(draw, st.just('{"url": "data:image/png;base64,AAAA"}'), wild)))
    if draw(st.integers(0, 4)) == 0:
        pairs.append((draw(key_text()), pick(draw, json_value.map(dump), wild, 1)))
    return obj(pairs)


@st.composite
def message(draw: st.DrawFn, wild: bool) -> str:
    if wild and draw(st.integers(0, 12)) == 0:
        return draw(junk_json)  # not a message object at all
    role = pick(draw, st.sampled_from(['"user"', '"system"', '"assistant"', '"developer"']), wild, 8)
    parts = st.lists(content_part(wild), max_size=3).map(array)
    content = pick(draw, st.one_of(text_json, text_json, parts), wild, 8)
    pairs = [("role", role), ("content", content)]
    if draw(st.integers(0, 3)) == 0:
        pairs.append(("name", pick(draw, st.text(min_size=1, max_size=10).map(dump), wild)))
    if draw(st.integers(0, 5)) == 0:
        call = '[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]'
        pairs.append(("tool_calls", pick(draw, st.just(call), wild)))
    if wild and draw(st.integers(0, 8)) == 0:
        pairs.append(("function_call", draw(junk_json)))
    if draw(st.integers(0, 4)) == 0:
        pairs.append((draw(key_text()), pick(draw, json_value.map(dump), wild, 1)))
    return obj(pairs)


@st.composite
def tool(draw: st.DrawFn, wild: bool) -> str:
    parameters = pick(draw, st.just('{"type":"object","properties":{"a":{"type":"string"}}}'), wild)
    function = obj([("name", pick(draw, st.just('"f"'), wild)), ("parameters", parameters)])
    return obj([("type", pick(draw, st.just('"function"'), wild)), ("function", function)])


# Valid values of the optional fields tollway reads or passes on.
CHAT_FIELDS: dict[str, Callable[[bool], st.SearchStrategy[str]]] = {
    "stream": lambda wild: st.sampled_from(["true", "false", "null"]),
    "stream_options": lambda wild: st.sampled_from(
        ['{"include_usage": true}', '{"include_usage": false}', "null"]
    ),
    # Small, or large enough that the reservation cannot be covered (a 402).
    "max_tokens": lambda wild: st.one_of(st.integers(1, 40), st.integers(10**7, 10**13)).map(str),
    "max_completion_tokens": lambda wild: st.integers(1, 40).map(str),
    "n": lambda wild: st.integers(1, 4).map(str),
    "tools": lambda wild: st.lists(tool(wild), max_size=2).map(array),
    "temperature": lambda wild: st.floats(0, 2).map(dump),
    "response_format": lambda wild: st.just('{"type": "json_object"}'),
    "tool_choice": lambda wild: st.sampled_from(['"auto"', '"none"']),
    "user": lambda wild: text_json,
    "seed": lambda wild: st.integers(-(2**63), 2**63 - 1).map(str),
}


def break_one(draw: st.DrawFn, pairs: list[tuple[str, str]]) -> None:
    """Spoil a tame body in one place: a field's value, an unknown field, or a repeated key."""
    how = draw(st.sampled_from(["value", "value", "extra", "repeat"]))
    if how == "value" and pairs:
        at = draw(st.integers(0, len(pairs) - 1))
        pairs[at] = (pairs[at][0], draw(junk_json))
    elif how == "repeat" and pairs:
        name, _ = draw(st.sampled_from(pairs))
        pairs.append((name, draw(st.one_of(junk_json, st.sampled_from([v for n, v in pairs if n == name])))))
    else:
        pairs.append((draw(key_text()), draw(junk_json)))


@st.composite
def chat_body(draw: st.DrawFn) -> bytes:
    """A chat completion body as JSON text: a third wild, the rest tame with at most one spot spoilt."""
    wild = draw(st.integers(0, 2)) == 0
    pairs: list[tuple[str, str]] = []
    if not wild or draw(st.integers(0, 15)):
        model = st.one_of(*[st.sampled_from(MODELS).map(dump)] * 6, st.text(max_size=20).map(dump))
        pairs.append(("model", pick(draw, model, wild, 8)))
    if not wild or draw(st.integers(0, 15)):
        messages = st.lists(message(wild), min_size=1, max_size=3).map(array)
        pairs.append(("messages", pick(draw, messages, wild, 8)))
    for name in draw(st.lists(st.sampled_from(sorted(CHAT_FIELDS)), max_size=4, unique=True)):
        pairs.append((name, pick(draw, CHAT_FIELDS[name](wild), wild, 2)))
    for _ in range(draw(st.integers(0, 2))):
        pairs.append((draw(key_text()), pick(draw, json_value.map(dump), wild, 1)))
    if wild and pairs and draw(st.integers(0, 5)) == 0:  # a repeated key
        pairs.append(draw(st.sampled_from(pairs)))
    if not wild and draw(st.booleans()):
        break_one(draw, pairs)
    draw(st.randoms(use_true_random=False)).shuffle(pairs)
    return utf8(obj(pairs))


@st.composite
def mangled(draw: st.DrawFn, body: st.SearchStrategy[bytes]) -> bytes:
    """Bytes that are not (quite) JSON: cut short, with bytes put in or replaced, or just noise."""
    raw = draw(body)
    how = draw(st.sampled_from(["cut", "insert", "replace", "noise", "bom", "empty", "utf16", "latin1"]))
    if how == "noise":
        return draw(st.binary(max_size=200))
    if how == "empty":
        return draw(st.sampled_from([b"", b" ", b"\n", b"null", b"[]", b'"x"', b"0", b"{}"]))
    if how == "bom":
        return b"\xef\xbb\xbf" + raw
    if how == "utf16":
        return raw.decode("utf-8", "replace").encode("utf-16")
    if how == "latin1":
        return raw.decode("utf-8", "replace").encode("latin-1", "replace") + b'"\xe9"'
    at = draw(st.integers(0, len(raw)))
    if how == "cut":
        return raw[:at]
    junk = draw(
        st.one_of(
            st.binary(min_size=1, max_size=4),
            st.sampled_from(
                [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\x00", b"\\ud800", b'"', b"\\", b"\\u"]
            ),
        )
    )
    if how == "insert":
        return raw[:at] + junk + raw[at:]
    return raw[:at] + junk + raw[at + len(junk) :]


CONTENT_TYPES = (
    "application/json",
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json; charset=latin-1",
    "",
    None,
)


def post(
    http: httpx.Client,
    path: str,
    body: bytes,
    authorization: str,
    content_type: str | None,
    headers: dict[str, bytes] | None = None,
) -> httpx.Response:
    sent: dict[str, str | bytes] = {**(headers or {}), "authorization": authorization}
    if content_type is not None:
        sent["content-type"] = content_type
    return http.post(path, content=body, headers=sent)


# --- the client routes --------------------------------------------------------------------------

HI = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]'
DEEP = b"[" * 1000 + b"]" * 1000


@fuzz(700)
@given(body=chat_body(), content_type=st.sampled_from(CONTENT_TYPES), headers=extra_headers)
@example(body=HI + b',"x":' + DEEP + b"}", content_type="application/json", headers={})
@example(body=HI + b',"tools":[{"type":"function","function":{"name":"f","parameters":' + DEEP + b"}}]}",
         content_type=None, headers={})  # fmt: skip
@example(body=b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"type":"text","text":"x","d":'
         + DEEP + b"}]}]}", content_type=None, headers={})  # fmt: skip
@example(
    body=b'{"model":"x","messages":[{"role":"user","content":"\\ud800"}]}', content_type=None, headers={}
)
@example(body=b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"type":[]}]}]}',
         content_type=None, headers={})  # fmt: skip
@example(body=HI + b',"n":128,"max_tokens":' + b"9" * 4300 + b"}", content_type=None, headers={})
@example(body=HI + b',"max_tokens":1e400}', content_type=None, headers={})
@example(body=HI + b',"max_tokens":1000000000000}', content_type=None, headers={})  # a 402
@example(body=HI + b',"n":99999999999999999999999}', content_type=None, headers={})
@example(body=HI + b',"n":true,"max_tokens":false}', content_type=None, headers={})
@example(body=b'{"model":"nope","model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}',
         content_type=None, headers={})  # fmt: skip
def test_chat_bodies(
    http: httpx.Client, payer: Watched, body: bytes, content_type: str | None, headers: dict[str, bytes]
) -> None:
    before = payer.settled()
    response = post(http, "/v1/chat/completions", body, f"Bearer {payer.account.key}", content_type, headers)
    check_response(response)
    payer.unchanged_unless_2xx(before, response)


@fuzz(300)
@given(body=mangled(chat_body()), content_type=st.sampled_from(CONTENT_TYPES))
@example(body=b"", content_type=None)
@example(body=b'{"model":"x","messages":[{"role":"user","content":"\xff"}]}', content_type=None)
@example(body=b"\xef\xbb\xbf" + HI + b"}", content_type=None)
def test_chat_bytes(http: httpx.Client, payer: Watched, body: bytes, content_type: str | None) -> None:
    before = payer.settled()
    response = post(http, "/v1/chat/completions", body, f"Bearer {payer.account.key}", content_type)
    check_response(response)
    payer.unchanged_unless_2xx(before, response)


CLIENT_GETS = (
    "/v1/credits/ledger",
    "/v1/credits/usage/log",
    "/v1/credits/usage",
    "/v1/credits/usage/daily",
    "/v1/usage",
    "/v1/models",
    "/v1/pricing",
    "/v1/credits/balance",
    "/health",
)


@fuzz(500)
@given(
    path=st.sampled_from(CLIENT_GETS),
    query=query_string,
    method=st.sampled_from(["GET"] * 9 + ["HEAD"]),
    headers=extra_headers,
)
@example(path="/v1/credits/ledger", query="limit=%C2%B2", method="GET", headers={})
@example(path="/v1/credits/usage", query="days=%E2%91%A0", method="GET", headers={})
@example(path="/v1/credits/usage/daily", query="days=%D9%A3", method="GET", headers={})
@example(path="/v1/credits/usage/log", query="limit=" + "9" * 5000, method="GET", headers={})
@example(path="/v1/credits/ledger", query="cursor=" + b64(b"seq:" + b"9" * 30), method="GET", headers={})
@example(path="/v1/credits/usage/log", query="cursor=" + b64(b"9" * 30 + b":req_1"), method="GET", headers={})
@example(path="/v1/credits/usage/log", query="cursor=" + b64(b"1:a\x00b"), method="GET", headers={})
@example(path="/v1/credits/ledger", query="cursor=" + b64(b"a\x00:1"), method="GET", headers={})
@example(path="/v1/usage", query="to=9999-12-31T23%3A59%3A59-23%3A59", method="GET", headers={})
@example(path="/v1/usage", query="model=%00&key_id=%FF", method="GET", headers={})
def test_client_queries(
    http: httpx.Client, payer: Watched, path: str, query: str, method: str, headers: dict[str, bytes]
) -> None:
    before = payer.settled()
    sent: dict[str, str | bytes] = {**headers, "authorization": f"Bearer {payer.account.key}"}
    response = http.request(method, f"{path}?{query}", headers=sent)
    check_response(response)
    payer.unchanged_unless_2xx(before, response)


def test_cursors_round_trip(http: httpx.Client, payer: Watched) -> None:
    """The cursors the API hands out are accepted back."""
    auth = {"authorization": f"Bearer {payer.account.key}"}
    for _ in range(3):
        assert http.post("/v1/chat/completions", content=HI + b"}", headers=auth).status_code == 200
    for path in ("/v1/credits/ledger", "/v1/credits/usage/log"):
        page = http.get(f"{path}?limit=1", headers=auth).json()
        assert page["has_more"], page
        following = http.get(path, params={"limit": "1", "cursor": page["next_cursor"]}, headers=auth)
        assert following.status_code == 200, following.text
        assert following.json()["data"] != page["data"]


CLIENT_PATHS = ("/v1/usage/requests/{}", "/v1/models/{}", "/v1/{}", "/{}", "/v1/credits/{}", "/v1/chat/{}")
METHODS = ("GET", "GET", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


@fuzz(250)
@given(
    template=st.sampled_from(CLIENT_PATHS),
    value=segment,
    real=st.integers(0, 12),
    method=st.sampled_from(METHODS),
)
@example(template="/v1/usage/requests/{}", value="%00", real=99, method="GET")
def test_client_paths(
    http: httpx.Client, payer: Watched, ids: Ids, template: str, value: str, real: int, method: str
) -> None:
    if real < len(ids.values):
        value = ids.values[real]
    before = payer.settled()
    response = http.request(
        method, template.format(value), headers={"authorization": f"Bearer {payer.account.key}"}
    )
    check_response(response)
    payer.unchanged_unless_2xx(before, response)


@fuzz(120)
@given(
    authorization=header_value,
    path=st.sampled_from(("/v1/credits/balance", "/v1/chat/completions", "/v1/credits/ledger", "/v1/usage")),
)
@example(authorization=b"Bearer tw-\xff\xfe", path="/v1/credits/balance")
@example(authorization=b"Bearer \x80", path="/v1/chat/completions")
def test_client_authorization(http: httpx.Client, payer: Watched, authorization: bytes, path: str) -> None:
    method = "POST" if path == "/v1/chat/completions" else "GET"
    before = payer.settled()
    response = http.request(
        method,
        path,
        headers={"authorization": authorization},
        content=HI + b"}" if method == "POST" else None,
    )
    check_response(response)
    assert response.status_code == 401, response.text
    payer.unchanged_unless_2xx(before, response)


# --- the admin routes ---------------------------------------------------------------------------


def admin_body(fields: dict[str, tuple[st.SearchStrategy[str], bool]]) -> st.SearchStrategy[bytes]:
    """Like `chat_body`: wild, or tame (required fields present and valid) with one spot spoilt."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        wild = draw(st.integers(0, 2)) == 0
        pairs = [
            (name, pick(draw, valid, wild))
            for name, (valid, required) in fields.items()
            if (required and not wild) or draw(st.integers(0, 2))
        ]
        if wild and draw(st.integers(0, 3)) == 0:
            pairs.append((draw(key_text()), draw(junk_json)))
        if wild and pairs and draw(st.integers(0, 5)) == 0:
            pairs.append(draw(st.sampled_from(pairs)))
        if not wild and draw(st.booleans()):
            break_one(draw, pairs)
        return utf8(obj(pairs))

    return st.one_of(build(), build(), build(), build(), mangled(build()), junk_json.map(utf8))


money = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-1, max_value=5).map(
        lambda d: dump(str(d))
    ),
    st.one_of(
        st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-1, max_value=5).map(
            lambda d: dump(str(d))
        ),
        st.sampled_from(
            ['"1e3"', '"NaN"', '"-Infinity"', '"\u0661\u0662"', '"0.0000000001"', '"9' + "9" * 50 + '"']
        ),
        st.sampled_from(['"-0"', '"+1"', "1", '" 2.5 "', '"1,000"', '"0x10"', '"1_000"', '"1000000000.01"']),
    ),
)
name_json = st.one_of(st.text(min_size=1, max_size=60), st.text(min_size=195, max_size=205)).map(dump)
# A rate limit: counts near the bounds, and what is not a count at all.
limit_json = st.one_of(
    st.just("null"),
    st.integers(-5, 1000).map(str),
    st.sampled_from(["0", "1000000000", "1000000001", str(2**53 - 1), str(2**53), str(2**64), "1e3", "2.5"]),
    st.sampled_from(['"10"', "true", "[]", "{}", "-0", "1" + "0" * 400]),
)
LIMIT_FIELDS = {
    "requests_per_minute": (limit_json, False),
    "tokens_per_minute": (limit_json, False),
    "max_concurrent": (limit_json, False),
}
WORKSPACE_BODY = admin_body(
    {"name": (name_json, True), "low_balance_usd": (st.one_of(money, st.just("null")), False), **LIMIT_FIELDS}
)
WORKSPACE_PATCH = admin_body(
    {
        "name": (name_json, False),
        "low_balance_usd": (st.one_of(money, st.just("null")), False),
        **LIMIT_FIELDS,
    }
)
CREDIT_BODY = admin_body(
    {
        "amount_usd": (money, True),
        "idempotency_key": (st.text(min_size=1, max_size=210).map(dump), False),
        "note": (st.text(max_size=510).map(dump), False),
    }
)
KEY_BODY = admin_body(
    {
        "name": (name_json, False),
        "spend_limit_usd": (st.one_of(money, st.just("null")), False),
        "spend_limit_period": (st.sampled_from(['"total"', '"day"', '"month"', '"week"']), False),
        **LIMIT_FIELDS,
    }
)
ADMIN_BODIES = st.one_of(
    st.tuples(st.just("workspaces"), WORKSPACE_BODY),
    st.tuples(st.just("credits"), CREDIT_BODY),
    st.tuples(st.just("keys"), KEY_BODY),
    st.tuples(st.just("key_patch"), KEY_BODY),
    st.tuples(st.just("workspace_patch"), WORKSPACE_PATCH),
)


@fuzz(500)
@given(case=ADMIN_BODIES, content_type=st.sampled_from(CONTENT_TYPES))
@example(case=("workspaces", DEEP), content_type=None)
@example(case=("workspaces", b'{"name": "x", "z": ' + DEEP + b"}"), content_type=None)
@example(case=("credits", b'{"amount_usd": "1.00", "note": {"x":' + DEEP + b"}}"), content_type=None)
@example(case=("keys", b'{"name": "\\\\ud800 is text, \\ud800 is not"}'), content_type=None)
@example(case=("keys", b'{"name": "k", "spend_limit_usd": "1", "spend_limit_usd": 1e400}'), content_type=None)
@example(case=("credits", b'{"amount_usd": "1.00", "idempotency_key": "a\\u0000"}'), content_type=None)
@example(case=("key_patch", b'{"requests_per_minute": 1e400}'), content_type=None)
@example(case=("workspace_patch", b'{"max_concurrent": 18446744073709551616}'), content_type=None)
def test_admin_bodies(
    http: httpx.Client, target: Watched, patched: Account, case: tuple[str, bytes], content_type: str | None
) -> None:
    route, body = case
    path = {
        "workspaces": "/admin/workspaces",
        "credits": f"/admin/workspaces/{target.account.workspace_id}/credits",
        "keys": f"/admin/workspaces/{target.account.workspace_id}/keys",
        # PATCHes go to an account of their own: a limit they set must not refuse other examples.
        "key_patch": f"/admin/keys/{patched.key_id}",
        "workspace_patch": f"/admin/workspaces/{patched.workspace_id}",
    }[route]
    before = target.settled()
    if route.endswith("_patch"):
        headers = {"authorization": ADMIN, **({} if content_type is None else {"content-type": content_type})}
        response = http.patch(path, content=body, headers=headers)
    else:
        response = post(http, path, body, ADMIN, content_type)
    check_response(response)
    target.unchanged_unless_2xx(before, response)


ADMIN_PATHS = (
    ("GET", "/admin/workspaces/{}"),
    ("GET", "/admin/workspaces/{}/keys"),
    ("POST", "/admin/workspaces/{}/keys"),
    ("GET", "/admin/workspaces/{}/usage"),
    ("POST", "/admin/workspaces/{}/credits"),
    ("DELETE", "/admin/keys/{}"),
    ("GET", "/admin/{}"),
    ("PUT", "/admin/workspaces/{}"),
    ("PATCH", "/admin/keys/{}"),
    ("PATCH", "/admin/workspaces/{}"),
    ("GET", "/admin/events?workspace_id={}"),
    ("GET", "/admin/events?cursor={}"),
)


@fuzz(250)
@given(route=st.sampled_from(ADMIN_PATHS), value=segment, real=st.integers(0, 12))
@example(route=("DELETE", "/admin/keys/{}"), value="%00", real=99)
@example(route=("GET", "/admin/workspaces/{}/usage"), value="%FF", real=99)
def test_admin_paths(
    http: httpx.Client,
    target: Watched,
    payer: Watched,
    ids: Ids,
    route: tuple[str, str],
    value: str,
    real: int,
) -> None:
    method, template = route
    if real < len(ids.values) and ids.values[real] not in (payer.account.workspace_id, payer.account.key_id):
        value = ids.values[real]  # the payer's own ledger and key are left alone
    body = b'{"amount_usd": "0.01", "name": "fuzz"}' if method == "POST" else None
    before = target.settled()
    response = http.request(method, template.format(value), headers={"authorization": ADMIN}, content=body)
    check_response(response)
    target.unchanged_unless_2xx(before, response)


@fuzz(250)
@given(
    path=st.sampled_from(
        [
            "/admin/usage",
            "/admin/workspaces/{}/usage",
            "/admin/workspaces",
            "/admin/workspaces/{}",
            "/admin/events",
        ]
    ),
    query=query_string,
)
@example(path="/admin/usage", query="to=9999-12-31T23%3A59%3A59.999999Z")
@example(path="/admin/workspaces/{}/usage", query="from=0001-01-01T00%3A00%3A00%2B23%3A59")
def test_admin_queries(http: httpx.Client, target: Watched, path: str, query: str) -> None:
    before = target.settled()
    response = http.get(
        path.format(target.account.workspace_id) + "?" + query, headers={"authorization": ADMIN}
    )
    check_response(response)
    target.unchanged_unless_2xx(before, response)


@fuzz(80)
@given(
    authorization=header_value,
    route=st.sampled_from(
        [
            ("GET", "/admin/workspaces"),
            ("POST", "/admin/workspaces"),
            ("GET", "/admin/usage"),
            ("GET", "/admin/events"),
            ("GET", "/metrics"),
            ("PATCH", "/admin/workspaces/ws_x"),
        ]
    ),
)
@example(authorization=b"Bearer \xff" + ADMIN_TOKEN.encode(), route=("GET", "/admin/workspaces"))
def test_admin_authorization(
    http: httpx.Client, target: Watched, authorization: bytes, route: tuple[str, str]
) -> None:
    method, path = route
    body = b'{"name": "fuzz-auth"}' if method == "POST" else None
    before = target.settled()
    response = http.request(method, path, headers={"authorization": authorization}, content=body)
    check_response(response)
    assert response.status_code == 401, response.text
    target.unchanged_unless_2xx(before, response)


# --- the other surfaces: responses, embeddings, completions, Anthropic's messages ---------------

SURFACE_ROUTES = (
    "/v1/responses",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/messages",
    "/v1/messages/count_tokens",
)
SURFACE_MODELS = ("gpt-4o-mini", "counted", "text-embedding-3-small", "claude-test", "claude-counted")
# Each surface's own fields, valid values first; `pick` spoils some of them.
SURFACE_FIELDS: dict[str, Callable[[bool], st.SearchStrategy[str]]] = {
    "input": lambda wild: st.one_of(
        text_json,
        st.lists(text_json, min_size=1, max_size=3).map(array),
        st.lists(st.integers(0, 100_000).map(str), min_size=1, max_size=5).map(array),
        st.lists(message(wild), min_size=1, max_size=2).map(array),
    ),
    "prompt": lambda wild: st.one_of(text_json, st.lists(text_json, min_size=1, max_size=3).map(array)),
    "instructions": lambda wild: text_json,
    "system": lambda wild: text_json,
    "messages": lambda wild: st.lists(message(wild), min_size=1, max_size=3).map(array),
    "max_tokens": lambda wild: st.one_of(st.integers(1, 40), st.integers(10**7, 10**13)).map(str),
    "max_output_tokens": lambda wild: st.integers(1, 40).map(str),
    "stream": lambda wild: st.sampled_from(["true", "false"]),
    "encoding_format": lambda wild: st.sampled_from(['"float"', '"base64"']),
    "dimensions": lambda wild: st.integers(1, 16).map(str),
    "n": lambda wild: st.integers(1, 3).map(str),
    "echo": lambda wild: st.sampled_from(["true", "false"]),
}


# What each route needs and what it may take (models of its own protocol mostly, the others sometimes).
SURFACE_SHAPES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "/v1/responses": (
        ("input",),
        ("instructions", "max_output_tokens", "stream"),
        ("gpt-4o-mini", "counted"),
    ),
    "/v1/embeddings": (("input",), ("encoding_format", "dimensions"), ("text-embedding-3-small",)),
    "/v1/completions": (("prompt",), ("max_tokens", "n", "echo", "stream"), ("gpt-4o-mini", "counted")),
    "/v1/messages": (("messages", "max_tokens"), ("system", "stream"), ("claude-test", "claude-counted")),
    "/v1/messages/count_tokens": (("messages",), ("system",), ("claude-test",)),
}


@st.composite
def surface_body(draw: st.DrawFn, path: str) -> bytes:
    """A body for `path`'s surface: a third wild, the rest tame with at most one spot spoilt."""
    required, optional, models = SURFACE_SHAPES[path]
    wild = draw(st.integers(0, 2)) == 0
    pairs: list[tuple[str, str]] = []
    own = st.sampled_from(models).map(dump)
    model = st.one_of(
        own, own, own, own, st.sampled_from(SURFACE_MODELS).map(dump), st.text(max_size=20).map(dump)
    )
    pairs.append(("model", pick(draw, model, wild, 8)))
    for name in required:
        if not wild or draw(st.integers(0, 6)):
            pairs.append((name, pick(draw, SURFACE_FIELDS[name](wild), wild, 8)))
    for name in draw(st.lists(st.sampled_from(sorted(optional)), max_size=3, unique=True)):
        pairs.append((name, pick(draw, SURFACE_FIELDS[name](wild), wild, 2)))
    if wild:
        for name in draw(st.lists(st.sampled_from(sorted(SURFACE_FIELDS)), max_size=2, unique=True)):
            pairs.append((name, pick(draw, SURFACE_FIELDS[name](wild), wild, 2)))
    elif draw(st.integers(0, 2)) == 0:
        break_one(draw, pairs)
    return utf8(obj(pairs))


def check_anthropic_shape(response: httpx.Response) -> None:
    """Below 500 with an X-Request-Id, and a non-2xx in Anthropic's shape (its own or the upstream's)."""
    note(SEED_LINE)
    event(f"status {response.status_code}")
    assert response.status_code < 500, f"{response.status_code}: {response.text[:2000]}"
    assert response.headers.get("x-request-id", "").startswith("req_"), response.headers
    if 200 <= response.status_code < 300:
        return
    body = json.loads(response.content)
    assert body["type"] == "error" and set(body["error"]) >= {"type", "message"}, body
    assert isinstance(body["error"]["type"], str) and isinstance(body["error"]["message"], str), body


@fuzz(400)
@given(
    path_and_body=st.sampled_from(SURFACE_ROUTES).flatmap(
        lambda path: st.tuples(
            st.just(path),
            st.one_of(
                surface_body(path), surface_body(path), surface_body(path), mangled(surface_body(path))
            ),
        )
    ),
    auth=st.sampled_from(["bearer", "bearer", "bearer", "x-api-key", "none"]),
)
@example(
    path_and_body=("/v1/messages", b'{"model":"claude-test","messages":[{"role":"user","content":"hi"}]}'),
    auth="x-api-key",
)
@example(path_and_body=("/v1/embeddings", b'{"model":"text-embedding-3-small","input":[]}'), auth="bearer")
@example(path_and_body=("/v1/responses", b'{"model":"claude-test","input":"hi"}'), auth="bearer")
def test_surface_bodies(
    http: httpx.Client, payer: Watched, path_and_body: tuple[str, bytes], auth: str
) -> None:
    path, body = path_and_body
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    if auth == "bearer":
        headers["authorization"] = f"Bearer {payer.account.key}"
    elif auth == "x-api-key":
        headers["x-api-key"] = payer.account.key
    before = payer.settled()
    if b'"stream":true' in body:  # read a stream to its end, so it settles before the next example
        with http.stream("POST", path, content=body, headers=headers) as response:
            response.read()
    else:
        response = http.post(path, content=body, headers=headers)
    if path.startswith("/v1/messages"):
        check_anthropic_shape(response)
    else:
        check_response(response)
    payer.unchanged_unless_2xx(before, response)
