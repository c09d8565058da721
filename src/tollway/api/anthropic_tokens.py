"""`POST /v1/messages/count_tokens` (SPEC §6): forwarded, authenticated, not billed.

No reservation and no ledger row: the key is checked, the model resolved (it must be served over
the anthropic protocol), the body forwarded with the model renamed, and the upstream's answer
returned as it is.  Every refusal is in Anthropic's error shape.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from tollway.api.openapi.surfaces import COUNT_TOKENS
from tollway.api.proxy import in_surface_shape
from tollway.errors import (
    APIError,
    InvalidRequest,
    UpstreamStatus,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tollway.runtime import Runtime
from tollway.surfaces import check_protocol
from tollway.surfaces.anthropic_messages import ANTHROPIC_MESSAGES
from tollway.surfaces.base import forward_body
from tollway.validation import decode_object

__all__ = ["count_tokens"]

_PATH = "/messages/count_tokens"


@post(f"/v1{_PATH}", status_code=200, name="messages.count_tokens", **COUNT_TOKENS)
async def count_tokens(request: Request[Any, Any, Any]) -> Response[Any]:
    return await in_surface_shape(ANTHROPIC_MESSAGES, _count_tokens(request))


async def _count_tokens(request: Request[Any, Any, Any]) -> Response[Any]:
    runtime: Runtime = request.app.state.runtime
    headers = request.headers
    await runtime.auth.authenticate(headers.get("authorization"), headers.get("x-api-key"))
    body = decode_object(await request.body())
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: Field required (a non-empty string).", param="model")
    route = runtime.router.resolve(model)
    check_protocol(route.model.name, route.protocol, ANTHROPIC_MESSAGES.protocol, f"/v1{_PATH}")
    _, passed = ANTHROPIC_MESSAGES.upstream_request(headers, "")
    forwarded = forward_body(body, route.model.target)
    failure: APIError | None = None
    for upstream in route.upstreams:
        try:
            response = await runtime.upstream.open(upstream, _PATH, forwarded, stream=False, headers=passed)
        except (UpstreamStatus, UpstreamUnavailable, UpstreamTimeout) as exc:
            if isinstance(exc, UpstreamStatus) and exc.status != 429 and exc.status < 500:
                raise
            failure = exc
            continue
        return Response(
            runtime.upstream.scrub(response.content),
            status_code=200,
            media_type=response.headers.get("content-type", "application/json"),
        )
    assert failure is not None
    raise failure
