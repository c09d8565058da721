"""Which upstream(s) serve a model, and forwarding with fallback."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from msgspec import Struct

from tollway.config import ModelConfig, Settings, UpstreamConfig
from tollway.errors import NotFound, UpstreamStatus, UpstreamTimeout, UpstreamUnavailable
from tollway.surfaces.base import Call
from tollway.tokens import encoding_for_model
from tollway.upstream.answer import Answer
from tollway.upstream.client import UpstreamClient

__all__ = ["Route", "Router", "forward"]


class Route(Struct, frozen=True):
    model: ModelConfig
    upstreams: tuple[UpstreamConfig, ...]
    encoding: str
    # The encoding is a guess for a model tiktoken does not know: counts are estimates.
    estimated: bool

    @property
    def protocol(self) -> str:
        """The API family its upstreams speak (config validation makes them all speak one)."""
        return self.upstreams[0].protocol

    @property
    def alias(self) -> bool:
        """Served under another name than the upstream's: responses show the served name (SPEC §3)."""
        return self.model.name != self.model.target


# Protocols whose models have no public tokenizer: counted in this encoding, marked estimated (SPEC §6).
_NO_PUBLIC_TOKENIZER = {"anthropic": "o200k_base"}


class Router:
    def __init__(self, settings: Settings) -> None:
        self._routes: dict[str, Route] = {}
        for model in settings.config.models:
            upstreams = tuple(settings.upstream(name) for name in model.upstreams)
            if (guess := _NO_PUBLIC_TOKENIZER.get(upstreams[0].protocol)) is not None:
                encoding, estimated = guess, True
            elif model.encoding is not None:
                encoding, estimated = model.encoding, False
            else:
                encoding, estimated = encoding_for_model(model.target)
            self._routes[model.name] = Route(
                model=model,
                upstreams=upstreams,
                encoding=encoding,
                estimated=estimated,
            )

    def resolve(self, model: str) -> Route:
        route = self._routes.get(model)
        if route is None:
            raise NotFound(
                f"The model '{model[:200]}' does not exist or is not served here.",
                code="model_not_found",
                param="model",
            )
        return route

    @property
    def models(self) -> list[str]:
        return list(self._routes)


def _worth_retrying(exc: Exception) -> bool:
    if isinstance(exc, UpstreamStatus):
        return exc.status == 429 or exc.status >= 500
    return isinstance(exc, UpstreamUnavailable | UpstreamTimeout)


async def forward(
    client: UpstreamClient,
    route: Route,
    call: Call,
    path: str,
    headers: Mapping[str, str] | None = None,
    *,
    failed: Callable[[UpstreamConfig, Exception], None] | None = None,
) -> tuple[UpstreamConfig, Answer]:
    """Open the request on the first upstream that answers; later ones are fallbacks.

    Another upstream is tried only when nothing has reached the client yet and
    the failure is the upstream's (unreachable, timed out, 429, 5xx); a 4xx
    about the request itself is passed straight back.  `failed` hears of every
    failed attempt (the metrics count them by upstream).
    """
    failure: Exception | None = None
    for upstream in route.upstreams:
        body = call.upstream_body(route.model.target, include_usage=upstream.include_usage)
        try:
            return upstream, await client.open(upstream, path, body, stream=call.stream, headers=headers)
        except (UpstreamStatus, UpstreamUnavailable, UpstreamTimeout) as exc:
            if failed is not None:
                failed(upstream, exc)
            if not _worth_retrying(exc):
                raise
            failure = exc
    assert failure is not None
    raise failure
