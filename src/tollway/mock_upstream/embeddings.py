"""The mock's `/v1/embeddings`: deterministic vectors, in OpenAI's float or base64 format.

Each vector is a function of its input and its index only: component `j` is
the float32 whose bits are four bytes of SHA-256(`index`, `input`, `j // 8`),
so the same request always gets the same answer.  The bit patterns are
arbitrary finite float32s (subnormals and extreme exponents included; NaN and
infinity patterns have their top exponent bit cleared), which makes any loss
of precision between the mock and a client show.  `encoding_format` "float"
writes each as a JSON number (the float32's exact value, as float64 text);
"base64" (what the OpenAI SDK asks for) writes the little-endian float32
bytes, base64-encoded, as OpenAI does.

`dimensions` (the request field) sets the vector length, default 8.  Knobs:
`usage` present (`prompt_tokens` = the knob, else `estimate_tokens`) / absent,
`usage_override`, `headers_delay_ms`; `fail` is handled before this module.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any

import msgspec

from tollway.mock_upstream.asgi import Receive, Send, send_json_later
from tollway.mock_upstream.behaviour import Behaviour
from tollway.mock_upstream.errors import BadRequest

__all__ = [
    "DEFAULT_DIMENSIONS",
    "MAX_COMPONENTS",
    "answer",
    "embeddings_body",
    "estimate_tokens",
    "text_inputs",
    "vector",
]

DEFAULT_DIMENSIONS = 8
MAX_DIMENSIONS = 65_536
MAX_INPUTS = 100_000
# Bounds one answer's size: inputs x dimensions.
MAX_COMPONENTS = 4_000_000
_EXPONENT_ALL_ONES = 0x7F800000
_TOP_EXPONENT_BIT = 0x40000000


def _key(item: str | list[int]) -> bytes:
    return item.encode("utf-8", "surrogatepass") if isinstance(item, str) else msgspec.json.encode(item)


def vector_bits(index: int, item: str | list[int], dimensions: int) -> list[int]:
    """The float32 bit patterns of input `index`'s vector."""
    key = _key(item)
    bits: list[int] = []
    block = 0
    while len(bits) < dimensions:
        digest = hashlib.sha256(b"%d\x00%d\x00" % (index, block) + key).digest()
        for (pattern,) in struct.iter_unpack("<I", digest):
            if pattern & _EXPONENT_ALL_ONES == _EXPONENT_ALL_ONES:
                pattern &= ~_TOP_EXPONENT_BIT  # NaN or infinity: make it finite
            bits.append(pattern)
        block += 1
    return bits[:dimensions]


def vector(index: int, item: str | list[int], dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """Input `index`'s vector, each component a float32 value (exactly representable as a float)."""
    patterns = vector_bits(index, item, dimensions)
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}I", *patterns)))


def vector_base64(index: int, item: str | list[int], dimensions: int = DEFAULT_DIMENSIONS) -> str:
    """Input `index`'s vector as OpenAI sends it for `encoding_format: "base64"`."""
    raw = struct.pack(f"<{dimensions}I", *vector_bits(index, item, dimensions))
    return base64.b64encode(raw).decode()


def estimate_tokens(text: str) -> int:
    """The mock's own token estimate of a string: one per four characters, rounded up."""
    return (len(text) + 3) // 4


def text_inputs(value: Any, param: str) -> list[str | list[int]]:
    """`value` as a list of inputs: strings or token arrays (a flat token array is one input)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return list(value)
        if all(type(v) is int for v in value):
            return [list(value)]
        if all(isinstance(v, list) and all(type(t) is int for t in v) for v in value):
            return list(value)
    raise BadRequest(
        f"`{param}` must be a string, an array of strings, an array of token ids or an array of "
        "token-id arrays",
        param,
        "invalid_value",
    )


def _prompt_tokens(inputs: list[str | list[int]]) -> int:
    return sum(estimate_tokens(i) if isinstance(i, str) else len(i) for i in inputs)


def _dimensions(body: dict[str, Any]) -> int:
    dimensions = body.get("dimensions")
    if dimensions is None:
        return DEFAULT_DIMENSIONS
    if type(dimensions) is not int or not 1 <= dimensions <= MAX_DIMENSIONS:
        raise BadRequest(
            f"`dimensions` must be an integer between 1 and {MAX_DIMENSIONS}", "dimensions", "invalid_value"
        )
    return dimensions


def embeddings_body(body: dict[str, Any], behaviour: Behaviour) -> dict[str, Any]:
    """The whole answer to an embeddings request (a BadRequest for one the mock cannot serve)."""
    inputs = text_inputs(body.get("input"), "input")
    if any(not i for i in inputs):
        raise BadRequest("`input` must not contain empty strings or arrays", "input", "invalid_value")
    dimensions = _dimensions(body)
    if len(inputs) > MAX_INPUTS or len(inputs) * dimensions > MAX_COMPONENTS:
        raise BadRequest(
            f"inputs x dimensions may be at most {MAX_COMPONENTS}; this request asks for "
            f"{len(inputs)} x {dimensions}",
            "input",
            "invalid_value",
        )
    encoding_format = body.get("encoding_format")
    if encoding_format is None:
        encoding_format = "float"
    if encoding_format not in ("float", "base64"):
        raise BadRequest('`encoding_format` must be "float" or "base64"', "encoding_format", "invalid_value")
    encode = vector_base64 if encoding_format == "base64" else vector
    data = [
        {"object": "embedding", "index": i, "embedding": encode(i, item, dimensions)}
        for i, item in enumerate(inputs)
    ]
    model = body.get("model")
    answer: dict[str, Any] = {
        "object": "list",
        "data": data,
        "model": model if isinstance(model, str) else "",
    }
    if behaviour.usage_override is not msgspec.UNSET:
        answer["usage"] = behaviour.usage_override
    elif behaviour.usage != "absent":
        prompt = behaviour.prompt_tokens
        if prompt is None:
            prompt = _prompt_tokens(inputs)
        answer["usage"] = {"prompt_tokens": prompt, "total_tokens": prompt}
    return answer


async def answer(
    mock: Any, receive: Receive, send: Send, body: dict[str, Any], behaviour: Behaviour, serial: int
) -> None:
    try:
        payload = embeddings_body(body, behaviour)
    except BadRequest as exc:
        await send_json_later(send, receive, 0, 400, exc.body())
        return
    await send_json_later(send, receive, behaviour.headers_delay_ms, 200, payload)
