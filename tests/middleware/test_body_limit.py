"""RequestBodyLimitMiddleware: counting, Content-Length, nesting, and the 413 it sends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from starling.applications import Starling
from starling.exceptions import HTTPException
from starling.middleware import Middleware
from starling.middleware.body_limit import (
    _BODY_LIMIT_RESPONDER_SCOPE_KEY,
    _MISSING,
    MAX_BODY_SIZE_SCOPE_KEY,
    RequestBodyLimitMiddleware,
    RequestBodyLimitResponder,
    _get_content_length,
    _Missing,
    _RequestBodyLimitResponseSent,
    _RequestBodyTooLarge,
)
from starling.requests import Request
from starling.responses import JSONResponse, PlainTextResponse, Response
from starling.routing import Mount, Route, Router
from starling.types import ASGIApp, Message, Receive, Scope, Send
from tests.types import TestClientFactory

TOO_LARGE_START: Message = {
    "type": "http.response.start",
    "status": 413,
    "headers": [(b"content-length", b"17"), (b"content-type", b"text/plain; charset=utf-8")],
}
TOO_LARGE_BODY: Message = {"type": "http.response.body", "body": b"Content Too Large"}


class Server:
    """Drives an ASGI app with body chunks and records what it receives and sends."""

    def __init__(self, chunks: list[bytes], headers: list[tuple[bytes, bytes]] | None = None):
        self.messages: list[Message] = [
            {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
            for i, chunk in enumerate(chunks)
        ]
        self.receive_calls = 0
        self.sent: list[Message] = []
        self.scope: Scope = {
            "type": "http",
            "method": "POST",
            "path": "/",
            "headers": headers or [],
        }

    async def receive(self) -> Message:
        self.receive_calls += 1
        if self.messages:
            return self.messages.pop(0)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    async def run(self, app: ASGIApp) -> None:
        await app(self.scope, self.receive, self.send)


async def read_all(scope: Scope, receive: Receive, send: Send) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await PlainTextResponse(body)(scope, receive, send)


async def respond_without_reading(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("ignored the body")(scope, receive, send)


def content_length(value: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-length", value)]


def test_private_names_kept_for_fastapi() -> None:
    assert MAX_BODY_SIZE_SCOPE_KEY == "starlette.max_body_size"
    assert _BODY_LIMIT_RESPONDER_SCOPE_KEY == "starlette._body_limit_responder"
    assert isinstance(_MISSING, _Missing)
    exc = _RequestBodyTooLarge()
    assert isinstance(exc, HTTPException)
    assert (exc.status_code, exc.detail, exc.headers) == (413, "Content Too Large", None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"6", 6),
        (b" 6 ", 6),
        (b"+6", 6),
        (b"-6", -6),
        (b"6.0", None),
        (b"6,6", None),
        (b"", None),
        ("٦".encode(), None),  # a non-ASCII digit is not a number on the wire
        (b"9" * 5000, None),  # more digits than int() takes
    ],
)
def test_get_content_length(value: bytes, expected: int | None) -> None:
    assert _get_content_length({"headers": content_length(value)}) == expected


def test_get_content_length_first_header_and_absent() -> None:
    headers = [(b"host", b"x"), (b"content-length", b"2"), (b"content-length", b"9")]
    assert _get_content_length({"headers": headers}) == 2
    assert _get_content_length({"headers": [(b"Content-Length", b"2")]}) is None
    assert _get_content_length({"headers": []}) is None


@pytest.mark.anyio
@pytest.mark.parametrize("limit", [6, 100])
async def test_body_within_limit(limit: int) -> None:
    server = Server([b"abc", b"def"])
    await server.run(RequestBodyLimitMiddleware(read_all, limit))
    assert server.sent[1] == {"type": "http.response.body", "body": b"abcdef"}


@pytest.mark.anyio
async def test_body_over_limit_without_content_length() -> None:
    server = Server([b"abc", b"def", b"ghi"])
    await server.run(RequestBodyLimitMiddleware(read_all, 4))
    assert server.sent == [TOO_LARGE_START, TOO_LARGE_BODY]
    assert server.receive_calls == 2  # stopped at the chunk that crossed the limit


@pytest.mark.anyio
async def test_declared_content_length_over_limit_fails_without_reading() -> None:
    server = Server([b"abc", b"def"], content_length(b"6"))
    await server.run(RequestBodyLimitMiddleware(read_all, 4))
    assert server.sent == [TOO_LARGE_START, TOO_LARGE_BODY]
    assert server.receive_calls == 0


@pytest.mark.anyio
async def test_declared_content_length_over_limit_replaces_any_response() -> None:
    server = Server([b"abc", b"def"], content_length(b"6"))
    await server.run(RequestBodyLimitMiddleware(respond_without_reading, 4))
    assert server.sent == [TOO_LARGE_START, TOO_LARGE_BODY]


@pytest.mark.anyio
async def test_declared_content_length_over_limit_and_app_sends_nothing() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        pass

    server = Server([b"abcdef"], content_length(b"6"))
    await server.run(RequestBodyLimitMiddleware(app, 4))
    assert server.sent == []


@pytest.mark.anyio
async def test_content_length_understating_the_body_is_still_counted() -> None:
    server = Server([b"abc", b"def"], content_length(b"2"))
    await server.run(RequestBodyLimitMiddleware(read_all, 4))
    assert server.sent == [TOO_LARGE_START, TOO_LARGE_BODY]


@pytest.mark.anyio
async def test_every_receive_after_the_limit_raises() -> None:
    errors: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for _ in range(4):
            try:
                message = await receive()
            except _RequestBodyTooLarge:
                errors.append("too large")
            else:
                errors.append(message["type"])
        await PlainTextResponse("mine", status_code=400)(scope, receive, send)

    server = Server([b"abc", b"def", b"g"])
    await server.run(RequestBodyLimitMiddleware(app, 4))
    assert errors == ["http.request", "too large", "too large", "http.disconnect"]
    # The app handled the error itself: its response goes out.
    assert server.sent[0]["status"] == 400


@pytest.mark.anyio
async def test_messages_without_body_and_other_types() -> None:
    received: list[Message] = []
    messages: list[Message] = [
        {"type": "http.request"},
        {"type": "other", "body": b"not counted"},
        {"type": "http.request", "body": b"x"},
    ]

    async def receive() -> Message:
        return messages.pop(0)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(await receive())
        received.append(await receive())
        await receive()

    server = Server([])
    await RequestBodyLimitMiddleware(app, 0)(server.scope, receive, server.send)
    assert [m["type"] for m in received] == ["http.request", "other"]
    assert server.sent == [TOO_LARGE_START, TOO_LARGE_BODY]


@pytest.mark.anyio
async def test_limit_crossed_after_response_started_propagates() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            await receive()

    server = Server([b"abc", b"def"])
    with pytest.raises(_RequestBodyTooLarge):
        await server.run(RequestBodyLimitMiddleware(app, 4))
    assert server.sent == [{"type": "http.response.start", "status": 200, "headers": []}]


@pytest.mark.anyio
async def test_nothing_follows_the_413() -> None:
    """Starlette sends a second 413 and then the app's body; starling stops after the first."""
    outcomes: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for message in (
            {"type": "http.response.start", "status": 200, "headers": []},
            {"type": "http.response.start", "status": 200, "headers": []},
            {"type": "http.response.body", "body": b"zz"},
        ):
            try:
                await send(message)
            except _RequestBodyLimitResponseSent:
                outcomes.append("blocked")
        raise _RequestBodyTooLarge()

    server = Server([b"abcdef"], content_length(b"6"))
    await server.run(RequestBodyLimitMiddleware(app, 4))
    assert outcomes == ["blocked", "blocked", "blocked"]
    assert server.sent == [TOO_LARGE_START, TOO_LARGE_BODY]


@pytest.mark.anyio
async def test_response_sent_signal_is_swallowed() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise _RequestBodyLimitResponseSent()

    server = Server([b""])
    await server.run(RequestBodyLimitMiddleware(app, 4))
    assert server.sent == []


@pytest.mark.anyio
async def test_other_exceptions_propagate() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise HTTPException(413)

    server = Server([b""])
    with pytest.raises(HTTPException) as info:
        await server.run(RequestBodyLimitMiddleware(app, 4))
    assert type(info.value) is HTTPException


@pytest.mark.anyio
async def test_scope_is_copied_and_carries_the_limit() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    server = Server([b""])
    server.scope[MAX_BODY_SIZE_SCOPE_KEY] = 1
    await server.run(RequestBodyLimitMiddleware(app, 7))
    assert server.scope[MAX_BODY_SIZE_SCOPE_KEY] == 1
    assert _BODY_LIMIT_RESPONDER_SCOPE_KEY not in server.scope
    (inner,) = seen
    assert inner[MAX_BODY_SIZE_SCOPE_KEY] == 7
    assert isinstance(inner[_BODY_LIMIT_RESPONDER_SCOPE_KEY], RequestBodyLimitResponder)


@pytest.mark.anyio
@pytest.mark.parametrize(("outer", "inner", "status"), [(4, 100, 200), (100, 4, 413)])
async def test_nested_limits_innermost_wins(outer: int, inner: int, status: int) -> None:
    responders: list[object] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        responders.append(scope[_BODY_LIMIT_RESPONDER_SCOPE_KEY])
        assert scope[MAX_BODY_SIZE_SCOPE_KEY] == inner
        await read_all(scope, receive, send)

    server = Server([b"abc", b"def"], content_length(b"6"))
    await server.run(RequestBodyLimitMiddleware(RequestBodyLimitMiddleware(app, inner), outer))
    assert server.sent[0]["status"] == status
    (responder,) = responders
    assert isinstance(responder, RequestBodyLimitResponder)
    assert responder.max_body_size == inner


@pytest.mark.anyio
async def test_nested_limit_passes_receive_through() -> None:
    """A nested limit counts through the outer responder, not on a receive replaced between."""
    got: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        got.append(len((await receive())["body"]))

    async def replayed() -> Message:
        return {"type": "http.request", "body": b"y" * 50}

    inner = RequestBodyLimitMiddleware(app, 10)

    async def replace_receive(scope: Scope, receive: Receive, send: Send) -> None:
        await inner(scope, replayed, send)

    server = Server([b"x"])
    await server.run(RequestBodyLimitMiddleware(replace_receive, 100))
    assert got == [50]


@pytest.mark.anyio
@pytest.mark.parametrize("scope_type", ["websocket", "lifespan"])
async def test_middleware_ignores_other_scope_types(scope_type: str) -> None:
    seen: list[tuple[Scope, Receive]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope, receive))

    server = Server([b"abcdef"])
    server.scope["type"] = scope_type
    await server.run(RequestBodyLimitMiddleware(app, 1))
    assert seen == [(server.scope, server.receive)]


@pytest.mark.anyio
async def test_responder_used_directly() -> None:
    responder = RequestBodyLimitResponder(read_all, 4)
    for prop in ("scope", "receive", "send"):
        with pytest.raises(AssertionError):
            getattr(responder, prop)
    server = Server([b"abc", b"def"])
    await server.run(responder)
    assert server.sent == [TOO_LARGE_START, TOO_LARGE_BODY]
    assert responder.scope[MAX_BODY_SIZE_SCOPE_KEY] == 4
    assert responder.receive == server.receive
    assert responder.send == server.send
    assert (responder.total_size, responder.response_started) == (6, False)


@pytest.mark.anyio
async def test_413_messages_are_fresh_objects() -> None:
    """A middleware may edit the headers it is sent; the next 413 must not see that."""

    async def send(message: Message) -> None:
        message.setdefault("headers", []).append((b"x-edited", b"1"))

    for _ in range(2):
        server = Server([b"abcdef"])
        await RequestBodyLimitMiddleware(read_all, 1)(server.scope, server.receive, send)
    assert TOO_LARGE_START["headers"] == [
        (b"content-length", b"17"),
        (b"content-type", b"text/plain; charset=utf-8"),
    ]


def chunks(body: bytes) -> Iterator[bytes]:
    """A streamed body: no Content-Length header."""
    for i in range(0, len(body), 2):
        yield body[i : i + 2]


async def echo(request: Request) -> Response:
    return PlainTextResponse(await request.body())


async def no_read(request: Request) -> Response:
    return PlainTextResponse("no read")


def handled(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"handled": exc.detail}, status_code=exc.status_code)


def test_route_mount_router_limits(test_client_factory: TestClientFactory) -> None:
    router = Router(
        [
            Route("/route", echo, methods=["POST"], max_body_size=10),
            Mount("/mount", routes=[Route("/x", echo, methods=["POST"])], max_body_size=5),
            Mount("/both", routes=[Route("/x", echo, methods=["POST"], max_body_size=3)]),
        ],
        max_body_size=2,
    )
    client = test_client_factory(router)
    assert client.post("/route", content=b"1234567890").text == "1234567890"
    assert client.post("/route", content=b"12345678901").status_code == 413
    assert client.post("/mount/x", content=b"12345").text == "12345"
    assert client.post("/mount/x", content=chunks(b"123456")).status_code == 413
    assert client.post("/both/x", content=b"1234").status_code == 413
    # The router's own limit covers what no route accepts.
    response = client.post("/nowhere", content=b"123")
    assert (response.status_code, response.text) == (413, "Content Too Large")
    assert client.post("/nowhere", content=b"1").status_code == 404


def test_limit_is_outside_route_middleware(test_client_factory: TestClientFactory) -> None:
    limits: list[int] = []

    class Spy:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            limits.append(scope[MAX_BODY_SIZE_SCOPE_KEY])
            await self.app(scope, receive, send)

    router = Router(
        [Route("/", echo, methods=["POST"], middleware=[Middleware(Spy)], max_body_size=10)],
        middleware=[Middleware(Spy)],
        max_body_size=2,
    )
    client = test_client_factory(router)
    assert client.post("/", content=b"12345").status_code == 200
    assert limits == [2, 10]


def test_413_reaches_the_app_exception_handlers(test_client_factory: TestClientFactory) -> None:
    app = Starling(
        routes=[
            Route("/echo", echo, methods=["POST"], max_body_size=4),
            Route("/no-read", no_read, methods=["POST"], max_body_size=4),
        ],
        exception_handlers={HTTPException: handled},
    )
    client = test_client_factory(app)
    # Streamed: the endpoint's read raises, and the app's handler answers.
    response = client.post("/echo", content=chunks(b"123456"))
    assert (response.status_code, response.json()) == (413, {"handled": "Content Too Large"})
    # Declared too large: whatever response starts is replaced by the plain 413.
    response = client.post("/echo", content=b"123456")
    assert (response.status_code, response.text) == (413, "Content Too Large")
    response = client.post("/no-read", content=b"123456")
    assert (response.status_code, response.text) == (413, "Content Too Large")
    # Streamed to an endpoint that does not read: nothing to reject.
    assert client.post("/no-read", content=chunks(b"123456")).text == "no read"


def test_method_not_allowed_ignores_the_route_limit(
    test_client_factory: TestClientFactory,
) -> None:
    router = Router([Route("/", echo, methods=["POST"], max_body_size=1)])
    client = test_client_factory(router)
    assert client.request("PUT", "/", content=b"123").status_code == 405


class _ReadsTheBody:
    """A middleware that reads (and so caches) the whole body before routing."""

    def __init__(self, app: ASGIApp) -> None:
        from starling.middleware.base import BaseHTTPMiddleware

        async def dispatch(request: Request, call_next: Any) -> Any:
            await request.body()
            return await call_next(request)

        self.app = BaseHTTPMiddleware(app, dispatch=dispatch)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


@pytest.mark.parametrize(
    ("app_limit", "mount_limit", "route_limit", "expected"),
    [
        (5, None, 10, 413),  # the middleware reads under the app's limit
        (10, None, 5, 413),  # the route still rejects the body the middleware cached
        # the mount's limit took over once the body was already read, as in Starlette
        (10, 5, 10, 413),
        (10, 5, None, 413),  # a route without a limit of its own inherits the mount's
        (10, None, None, 200),
    ],
)
def test_limits_when_a_middleware_reads_the_body_first(
    test_client_factory: TestClientFactory,
    app_limit: int,
    mount_limit: int | None,
    route_limit: int | None,
    expected: int,
) -> None:
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"got {len(await request.body())}")

    route = Route("/", echo, methods=["POST"], max_body_size=route_limit)
    app = Starling(
        routes=[Mount("/m", routes=[route], max_body_size=mount_limit)],
        middleware=[Middleware(_ReadsTheBody)],
        max_body_size=app_limit,
    )
    client = test_client_factory(app)
    # an iterator: no Content-Length, so only the bytes counted decide
    response = client.post("/m/", content=iter([b"123", b"456"]))
    assert response.status_code == expected
    assert response.text == ("got 6" if expected == 200 else "Content Too Large")
