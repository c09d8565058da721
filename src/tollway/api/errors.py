"""The one place domain errors become HTTP responses, always in OpenAI's error shape."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap

from tollway.errors import APIError, UpstreamStatus, error_body

__all__ = ["api_error_response", "exception_handlers"]

log = logging.getLogger("tollway")

_HTTP_CODES = {
    400: ("invalid_request_error", "invalid_request"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "request_too_large"),
}


def api_error_response(exc: APIError) -> Response[bytes]:
    media_type = exc.content_type if isinstance(exc, UpstreamStatus) else "application/json"
    return Response(exc.body(), status_code=exc.status, media_type=media_type, headers=exc.headers)


def _from_api_error(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, APIError)
    return api_error_response(exc)


def _from_http_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    type_, code = _HTTP_CODES.get(status, ("invalid_request_error", "invalid_request"))
    if status == 404:
        message = f"Unknown route: {request.method} {request.url.path}"
    elif status == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
    elif status == 413:
        message = "The request body is larger than this server accepts."
    else:
        message = exc.detail
    return Response(
        error_body(message, type_, code),
        status_code=status,
        media_type="application/json",
        headers=exc.headers or None,
    )


def _from_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unexpected error", exc_info=exc)
    return Response(
        error_body(
            "The server had an error while processing your request.", "server_error", "internal_error"
        ),
        status_code=500,
        media_type="application/json",
    )


def exception_handlers() -> ExceptionHandlersMap:
    return {APIError: _from_api_error, HTTPException: _from_http_exception, Exception: _from_unexpected}
