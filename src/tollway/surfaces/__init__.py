"""The API surfaces tollway serves, one module each, over one billing path (see `base`)."""

from tollway.errors import InvalidRequest
from tollway.surfaces.anthropic_messages import ANTHROPIC_MESSAGES
from tollway.surfaces.base import Call, EndState, EventMeter, Reading, Surface
from tollway.surfaces.chat_completions import CHAT_COMPLETIONS
from tollway.surfaces.completions import COMPLETIONS
from tollway.surfaces.embeddings import EMBEDDINGS
from tollway.surfaces.responses import RESPONSES

__all__ = [
    "SURFACES",
    "Call",
    "EndState",
    "EventMeter",
    "Reading",
    "Surface",
    "check_protocol",
    "surfaces_for",
]

# Every surface served, in the order their routes are registered.
SURFACES: tuple[Surface, ...] = (CHAT_COMPLETIONS, RESPONSES, EMBEDDINGS, COMPLETIONS, ANTHROPIC_MESSAGES)


def surfaces_for(protocol: str) -> str:
    """The routes that serve models of `protocol`, for a message naming where to call."""
    return " or ".join(f"POST /v1{s.path}" for s in SURFACES if s.protocol == protocol) or "no route here"


def check_protocol(model: str, protocol: str, expected: str, route: str) -> None:
    """A 400 `wrong_surface` naming where to call, if `model` (served over `protocol`) is not `route`'s."""
    if protocol != expected:
        raise InvalidRequest(
            f"The model '{model}' is served over the {protocol} protocol, not on "
            f"POST {route}: call {surfaces_for(protocol)}.",
            code="wrong_surface",
            param="model",
        )
