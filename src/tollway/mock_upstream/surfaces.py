"""The mock's other API surfaces (responses, embeddings, legacy completions), each in its own module.

Every one answers with the same signature: the parsed body and knobs of an
accepted request (authorised, JSON, knobs valid, no `fail` knob), and a
serial number for its ids.  Streams go through `mock.run_stream(receive, work)`,
which counts them and notices a client that went away.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tollway.mock_upstream import completions, embeddings, responses
from tollway.mock_upstream.asgi import Receive, Send
from tollway.mock_upstream.behaviour import Behaviour

__all__ = ["SURFACE_ANSWERS", "SurfaceAnswer"]

SurfaceAnswer = Callable[[Any, Receive, Send, dict[str, Any], Behaviour, int], Awaitable[None]]

# Path suffix -> answer.  Chat completions is routed before these (its path ends in /completions too).
SURFACE_ANSWERS: dict[str, SurfaceAnswer] = {
    "/responses": responses.answer,
    "/embeddings": embeddings.answer,
    "/completions": completions.answer,
}
