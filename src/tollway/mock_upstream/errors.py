"""OpenAI-shaped error bodies."""

from __future__ import annotations

from typing import Any

Headers = list[tuple[bytes, bytes]]


class BadRequest(ValueError):
    """The request cannot be served; reported as a 400 whose message is safe to show the client."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, "invalid_request_error", self.param, self.code)


# Retry-After on 429 mirrors OpenAI so a proxy's backoff handling can be exercised.
_RETRY_AFTER = ((b"retry-after", b"1"),)


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def bad_api_key(token: str | None, *, echo: bool = True) -> dict[str, Any]:
    """OpenAI's 401 body. With `echo` it repeats the key it received, as OpenAI does.

    Tests rely on the echo to check a proxy scrubs keys; a mock that strangers can reach (the demo
    embedded in a server) must not repeat anything it was sent, so it passes echo=False.
    """
    if not token:
        return error_body(
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            "invalid_request_error",
        )
    provided = f"Incorrect API key provided: {token}." if echo else "Incorrect API key provided."
    return error_body(
        f"{provided} You can find your API key at https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        code="invalid_api_key",
    )


def failure(
    status: int, token: str | None, model: str, *, echo_key: bool = True
) -> tuple[dict[str, Any], Headers]:
    """Body and extra headers for the `fail` knob."""
    if status == 401:
        return bad_api_key(token, echo=echo_key), []
    if status == 429:
        body = error_body(
            f"Rate limit reached for {model} on requests per min (RPM): Limit 3, Used 3, Requested 1. "
            "Please try again in 1s.",
            "requests",
            code="rate_limit_exceeded",
        )
        return body, list(_RETRY_AFTER)
    if status == 403:
        return error_body("You are not allowed to sample from this model", "permission_error"), []
    if status == 404:
        message = f"The model `{model}` does not exist or you do not have access to it."
        return error_body(message, "invalid_request_error", code="model_not_found"), []
    if status < 500:
        return error_body(f"mock upstream refused the request ({status})", "invalid_request_error"), []
    if status == 503:
        return error_body("The engine is currently overloaded, please try again later.", "server_error"), []
    return error_body(
        "The server had an error while processing your request. Sorry about that!", "server_error"
    ), []
