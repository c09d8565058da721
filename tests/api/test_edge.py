"""`Edge` on canned ASGI exchanges: request ids, HEAD, CORS, and start-up failures in tollway's words."""

from __future__ import annotations

from typing import Any

from tollway.api.edge import REQUEST_ID, Edge, request_id


class App:
    """A stand-in app that records the scope it saw and answers 200 with a body."""

    def __init__(self) -> None:
        self.scopes: list[Any] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        if scope["type"] == "lifespan":
            await receive()
            await send(
                {"type": "lifespan.startup.failed", "message": "Traceback (most recent call last): ..."}
            )
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


async def exchange(
    edge: Edge, method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None
) -> list[Any]:
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/v1/models", "headers": headers or []}
    await edge(scope, receive, send)
    return sent


def headers_of(sent: list[Any]) -> dict[bytes, bytes]:
    return dict(sent[0]["headers"])


async def test_every_response_gets_the_request_id_the_route_saw() -> None:
    app = App()
    sent = await exchange(Edge(app))
    rid = headers_of(sent)[b"x-request-id"].decode()
    assert rid.startswith("req_") and len(rid) == 28
    assert request_id(app.scopes[0]) == rid == app.scopes[0][REQUEST_ID]
    assert headers_of(await exchange(Edge(app)))[b"x-request-id"].decode() != rid


async def test_head_reaches_the_app_as_get() -> None:
    app = App()
    sent = await exchange(Edge(app), "HEAD")
    assert app.scopes[0]["method"] == "GET"
    assert sent[0]["status"] == 200  # uvicorn, which knows it was a HEAD, drops the body itself


async def test_cors_for_listed_origins_only() -> None:
    edge = Edge(App(), cors_origins=["https://a.example"])
    allowed = headers_of(await exchange(edge, headers=[(b"origin", b"https://a.example")]))
    assert allowed[b"access-control-allow-origin"] == b"https://a.example"
    assert b"x-request-cost" in allowed[b"access-control-expose-headers"]
    other = headers_of(await exchange(edge, headers=[(b"origin", b"https://b.example")]))
    assert not any(name.startswith(b"access-control-") for name in other)
    preflight = await exchange(
        edge,
        "OPTIONS",
        [
            (b"origin", b"https://a.example"),
            (b"access-control-request-method", b"POST"),
            (b"access-control-request-headers", b"Authorization, X-Evil\r\nInjected: 1, content-type"),
        ],
    )
    assert preflight[0]["status"] == 204
    # Only header-name tokens are echoed back, never the client's raw text.
    assert headers_of(preflight)[b"access-control-allow-headers"] == b"Authorization, content-type"


async def test_a_wildcard_never_reflects_the_origin() -> None:
    sent = await exchange(Edge(App(), cors_origins=["*"]), headers=[(b"origin", b"https://x.example")])
    assert headers_of(sent)[b"access-control-allow-origin"] == b"*"
    assert not any(
        name.startswith(b"access-control-")
        for name in headers_of(
            await exchange(Edge(App(), cors_origins=[]), headers=[(b"origin", b"https://x.example")])
        )
    )


async def test_a_startup_failure_is_reported_in_tollways_words() -> None:
    edge = Edge(App())
    edge.startup_failures.append("cannot open the database /x.db: unable to open database file")
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        sent.append(message)

    await edge({"type": "lifespan"}, receive, send)
    assert sent == [
        {
            "type": "lifespan.startup.failed",
            "message": "tollway: cannot open the database /x.db: unable to open database file",
        }
    ]
