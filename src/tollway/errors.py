"""tollway's exceptions, one tree rooted in `TollwayError`.

    TollwayError
     ├── ConfigError            start-up refuses a bad configuration
     ├── StartupError           start-up cannot go on (one message, no traceback)
     │    ├── DatabaseUnavailable   the database cannot be opened or read
     │    └── SchemaOutdated        the schema is older than this tollway (run `tollway db upgrade`)
     └── APIError               anything a client sees, in OpenAI's error shape
          ├── InvalidRequest        400 invalid_request_error (param names the field)
          ├── AuthenticationFailed  401 invalid_api_key
          ├── InsufficientCredit    402 insufficient_credit
          ├── NotFound              404 (model_not_found, not_found)
          ├── Conflict              409 (an idempotency key reused for another amount)
          ├── RequestTimeout        408 request_timeout (a request body stalled)
          ├── RequestTooLarge       413 request_too_large
          ├── SpendLimitExceeded    429 spend_limit_exceeded
          ├── RateLimitExceeded     429 rate_limit_exceeded (with Retry-After)
          ├── UpstreamStatus        the upstream's own 4xx/5xx, body passed through
          ├── UpstreamUnavailable   502 upstream_error
          └── UpstreamTimeout       504 upstream_timeout

Lower-level errors (httpx, msgspec, SQLAlchemy) are translated once, at the
boundary where they occur, with ``raise … from exc``.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "APIError",
    "AuthenticationFailed",
    "ConfigError",
    "Conflict",
    "DatabaseUnavailable",
    "InsufficientCredit",
    "InvalidRequest",
    "NotFound",
    "RateLimitExceeded",
    "RequestTimeout",
    "RequestTooLarge",
    "SchemaOutdated",
    "SpendLimitExceeded",
    "StartupError",
    "TollwayError",
    "UpstreamStatus",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "error_body",
]

_encode = msgspec.json.Encoder().encode


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> bytes:
    """OpenAI's error envelope, encoded."""
    return _encode({"error": {"message": message, "type": type_, "param": param, "code": code}})


class TollwayError(Exception):
    """Base of every error tollway raises on purpose."""


class ConfigError(TollwayError):
    """The configuration cannot be served; the message names file, entry and problem."""


class StartupError(TollwayError):
    """Start-up cannot go on; the message names what (the database, the address) and why."""


class DatabaseUnavailable(StartupError):
    pass


class SchemaOutdated(StartupError):
    pass


class APIError(TollwayError):
    status: int = 500
    type: str = "server_error"
    code: str | None = "internal_error"
    # Headers every response of this class carries.
    fixed_headers: dict[str, str] = {}

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.param = param
        self.headers = {**self.fixed_headers, **headers} if headers else dict(self.fixed_headers)

    def body(self) -> bytes:
        return error_body(self.message, self.type, self.code, self.param)


class InvalidRequest(APIError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_value"


class AuthenticationFailed(APIError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class NotFound(APIError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class RequestTooLarge(APIError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UpstreamUnavailable(APIError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"


class UpstreamTimeout(APIError):
    status = 504
    type = "upstream_error"
    code = "upstream_timeout"


class UpstreamStatus(APIError):
    """The upstream answered 4xx/5xx: its status and (scrubbed) body go to the client as they are."""

    type = "upstream_error"
    code = "upstream_error"

    def __init__(self, status: int, raw_body: bytes, content_type: str, headers: dict[str, str]) -> None:
        super().__init__(f"upstream answered {status}", status=status, headers=headers)
        self.raw_body = raw_body
        self.content_type = content_type

    def body(self) -> bytes:
        return self.raw_body


# Retrying cannot succeed: the OpenAI and Anthropic SDKs honour `x-should-retry: false`.
_NO_RETRY = {"x-should-retry": "false"}


class InsufficientCredit(APIError):
    status = 402
    type = "insufficient_quota"
    code = "insufficient_credit"
    fixed_headers = _NO_RETRY


class SpendLimitExceeded(APIError):
    status = 429
    type = "insufficient_quota"
    code = "spend_limit_exceeded"
    fixed_headers = _NO_RETRY


class RateLimitExceeded(APIError):
    """A request, token or concurrency limit is reached: waiting `Retry-After` seconds can succeed."""

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"


class RequestTimeout(APIError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"
    fixed_headers = {"connection": "close"}


class Conflict(APIError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"
