"""BaseHTTPMiddleware: call_next, bodies both ways, errors, background tasks, disconnects."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from starling.applications import Starling
from starling.background import BackgroundTask
from starling.middleware import Middleware
from starling.middleware.base import (
    BaseHTTPMiddleware,
    RequestResponseEndpoint,
    _StreamingResponse,
)
from starling.requests import ClientDisconnect, Request
from starling.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starling.routing import Route, WebSocketRoute
from starling.types import ASGIApp, Message, Receive, Scope, Send
from starling.websockets import WebSocket
from tests.types import TestClientFactory

DISCONNECT: Message = {"type": "http.disconnect"}


class CustomHeader(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["Custom-Header"] = "Example"
        return response


async def homepage(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Homepage")


async def crash(request: Request) -> Response:
    raise ValueError("boom")


async def websocket_endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("Hello, world!")
    await websocket.close()


async def echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse(await request.body())


def make_app(middleware: Middleware, *routes: Route | WebSocketRoute) -> Starling:
    defaults = [
        Route("/", homepage),
        Route("/crash", crash),
        Route("/echo", echo, methods=["POST"]),
        WebSocketRoute("/ws", websocket_endpoint),
    ]
    return Starling(routes=[*routes, *defaults], middleware=[middleware])


def test_custom_middleware(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app(Middleware(CustomHeader)))
    response = client.get("/")
    assert response.headers["Custom-Header"] == "Example"
    assert response.text == "Homepage"
    with client.websocket_connect("/ws") as session:  # websockets pass through untouched
        assert session.receive_text() == "Hello, world!"


def test_dispatch_argument(test_client_factory: TestClientFactory) -> None:
    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["X-Dispatch"] = "function"
        return response

    client = test_client_factory(make_app(Middleware(BaseHTTPMiddleware, dispatch=dispatch)))
    assert client.get("/").headers["X-Dispatch"] == "function"


@pytest.mark.anyio
async def test_default_dispatch_is_abstract() -> None:
    with pytest.raises(NotImplementedError):
        await BaseHTTPMiddleware(homepage_app).dispatch(make_request(), call_next_unused)


async def call_next_unused(request: Request) -> Response:
    raise AssertionError("not called")  # pragma: no cover (dispatch raises first)


async def homepage_app(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("Homepage")(scope, receive, send)


def make_request() -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": []})


def test_short_circuit(test_client_factory: TestClientFactory) -> None:
    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        return PlainTextResponse("short", status_code=418)

    client = test_client_factory(make_app(Middleware(BaseHTTPMiddleware, dispatch=dispatch)))
    response = client.get("/")
    assert (response.status_code, response.text) == (418, "short")


# Exceptions


def test_app_exception_is_reraised_as_itself(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app(Middleware(CustomHeader)))
    with pytest.raises(ValueError, match="boom"):
        client.get("/crash")
    client = test_client_factory(make_app(Middleware(CustomHeader)), raise_server_exceptions=False)
    response = client.get("/crash")
    assert (response.status_code, response.text) == (500, "Internal Server Error")


def test_dispatch_exception_is_reraised_as_itself(test_client_factory: TestClientFactory) -> None:
    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        await call_next(request)
        raise KeyError("dispatch")

    client = test_client_factory(make_app(Middleware(BaseHTTPMiddleware, dispatch=dispatch)))
    with pytest.raises(KeyError, match="dispatch"):
        client.get("/")


def test_caught_app_exception_is_not_raised_again(test_client_factory: TestClientFactory) -> None:
    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        try:
            return await call_next(request)
        except ValueError as exc:
            return PlainTextResponse(f"handled {exc}", status_code=502)

    client = test_client_factory(make_app(Middleware(BaseHTTPMiddleware, dispatch=dispatch)))
    response = client.get("/crash")
    assert (response.status_code, response.text) == (502, "handled boom")


@pytest.mark.anyio
async def test_no_response_returned() -> None:
    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        pass

    with pytest.raises(RuntimeError, match=r"^No response returned\.$"):
        await drive(BaseHTTPMiddleware(silent, passthrough))


@pytest.mark.anyio
async def test_body_before_start_is_an_error() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.body", "body": b"a"})

    with pytest.raises(AssertionError, match="http.response.start"):
        await drive(BaseHTTPMiddleware(broken, passthrough))


@pytest.mark.anyio
async def test_exception_after_start_aborts_the_body() -> None:
    async def half(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        raise ValueError("after")

    server = Server()
    with pytest.raises(ValueError, match="after"):
        await server.run(BaseHTTPMiddleware(half, passthrough))
    # The body is not closed with more_body=False: the client must not take it as complete.
    assert server.sent[-1] == {"type": "http.response.body", "body": b"x", "more_body": True}


# Harness for direct ASGI tests


async def passthrough(request: Request, call_next: RequestResponseEndpoint) -> Response:
    return await call_next(request)


class Server:
    """Feeds request messages, then a disconnect once ``disconnect`` is set; records sends."""

    def __init__(
        self, incoming: list[Message] | None = None, spec_version: str = "2.3", **scope: Any
    ) -> None:
        self.incoming = list(incoming or [{"type": "http.request", "body": b"hello"}])
        self.disconnect = anyio.Event()
        self.sent: list[Message] = []
        self.fail_send_after: int | None = None
        self.scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": spec_version},
            "method": "POST",
            "path": "/",
            "query_string": b"",
            "headers": [],
            **scope,
        }

    async def receive(self) -> Message:
        if self.incoming:
            return self.incoming.pop(0)
        await self.disconnect.wait()
        return dict(DISCONNECT)

    async def send(self, message: Message) -> None:
        if self.fail_send_after is not None and len(self.sent) >= self.fail_send_after:
            raise OSError("client gone")
        self.sent.append(message)

    async def run(self, app: ASGIApp) -> list[Message]:
        with anyio.fail_after(5):
            await app(self.scope, self.receive, self.send)
        return self.sent


async def drive(app: ASGIApp, **kwargs: Any) -> list[Message]:
    return await Server(**kwargs).run(app)


# The request body, in the middleware and in the app


def body_reader(mode: str) -> BaseHTTPMiddleware:
    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        if mode == "body":
            assert await request.body() == b'{"a": 1}'
        elif mode == "json":
            assert await request.json() == {"a": 1}
        elif mode == "stream":
            assert [chunk async for chunk in request.stream()] == [b'{"a": 1}', b""]
        return await call_next(request)

    return BaseHTTPMiddleware(echo_app, dispatch)


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    response = await echo(Request(scope, receive))
    await response(scope, receive, send)


@pytest.mark.parametrize(
    ("mode", "endpoint_sees"),
    [("none", '{"a": 1}'), ("body", '{"a": 1}'), ("json", '{"a": 1}'), ("stream", "")],
)
def test_body_readable_in_middleware_and_endpoint(
    test_client_factory: TestClientFactory, mode: str, endpoint_sees: str
) -> None:
    middleware = body_reader(mode)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await middleware(scope, receive, send)

    client = test_client_factory(app)
    assert client.post("/", content=b'{"a": 1}').text == endpoint_sees


@pytest.mark.anyio
async def test_body_read_in_chunks_is_replayed_whole() -> None:
    received: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(await receive())
        received.append(await receive())  # after the body: the server's own messages
        await PlainTextResponse("ok")(scope, receive, send)

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        assert await request.body() == b"ab"
        return await call_next(request)

    server = Server(
        [
            {"type": "http.request", "body": b"a", "more_body": True},
            {"type": "http.request", "body": b"b"},
        ]
    )
    server.disconnect.set()
    await server.run(BaseHTTPMiddleware(app, dispatch))
    assert received == [{"type": "http.request", "body": b"ab", "more_body": False}, DISCONNECT]


@pytest.mark.anyio
async def test_untouched_body_passes_through_normalised() -> None:
    received: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(await receive())
        received.append(await receive())
        await PlainTextResponse("ok")(scope, receive, send)

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        with pytest.raises(RuntimeError, match="Stream consumed"):
            await request.body()  # the app read it; nobody kept it
        return response

    server = Server(
        [
            {"type": "http.request", "body": b"a", "more_body": True},
            {"type": "http.request", "body": b"b"},
        ]
    )
    server.disconnect.set()
    await server.run(BaseHTTPMiddleware(app, dispatch))
    assert received == [
        {"type": "http.request", "body": b"a", "more_body": True},
        {"type": "http.request", "body": b"b", "more_body": False},
    ]


@pytest.mark.anyio
async def test_disconnect_while_middleware_reads() -> None:
    received: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(await receive())
        await PlainTextResponse("late")(scope, receive, send)

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        with pytest.raises(ClientDisconnect):
            await request.body()
        return await call_next(request)

    server = Server([DISCONNECT])
    await server.run(BaseHTTPMiddleware(app, dispatch))
    assert received == [DISCONNECT]


# Responses: streaming, headers, extensions


@pytest.mark.anyio
async def test_streaming_body_is_not_buffered() -> None:
    """The app runs at most one chunk ahead of what the server has been sent."""
    log: list[str] = []

    async def numbers() -> AsyncIterator[bytes]:
        for number in range(5):
            log.append(f"produced {number}")
            yield str(number).encode()

    server = Server()
    original_send = server.send

    async def logging_send(message: Message) -> None:
        if message.get("body"):
            log.append(f"sent {message['body'].decode()}")
        await original_send(message)

    server.send = logging_send  # type: ignore[method-assign]
    await server.run(BaseHTTPMiddleware(StreamingResponse(numbers()), passthrough))
    for number in range(3):
        assert log.index(f"sent {number}") < log.index(f"produced {number + 2}")
    assert server.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


def test_streaming_through_test_client(test_client_factory: TestClientFactory) -> None:
    async def stream(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[str]:
            yield "a"
            yield "b"

        return StreamingResponse(chunks(), media_type="text/x")

    client = test_client_factory(make_app(Middleware(CustomHeader), Route("/stream", stream)))
    response = client.get("/stream")
    assert response.text == "ab"
    assert response.headers["custom-header"] == "Example"


@pytest.mark.anyio
async def test_call_next_response_attributes() -> None:
    seen: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"a", b"1"), (b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": True})
        await send({"type": "http.response.body", "body": b"ab"})
        await send({"type": "http.response.trailers", "headers": []})  # not passed on

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        assert isinstance(response, _StreamingResponse)
        seen.append((response.status_code, response.raw_headers, response.media_type))
        seen.append((response.background, response.info))
        return response

    sent = await drive(BaseHTTPMiddleware(app, dispatch))
    assert seen == [(201, [(b"a", b"1"), (b"content-length", b"2")], None), (None, None)]
    assert sent == [
        {"type": "http.response.start", "status": 201, "headers": seen[0][1]},
        {"type": "http.response.body", "body": b"ab", "more_body": True},
        {"type": "http.response.body", "body": b"", "more_body": False},
    ]


@pytest.mark.anyio
async def test_consumed_body_replaced_and_background_added() -> None:
    log: list[str] = []

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        assert isinstance(response, _StreamingResponse)
        body = b"".join([chunk async for chunk in response.body_iterator])

        async def again() -> AsyncIterator[bytes]:
            yield body + b"!"

        response.body_iterator = again()
        response.background = BackgroundTask(log.append, "middleware task")
        return response

    sent = await drive(BaseHTTPMiddleware(homepage_app, dispatch))
    assert sent[1] == {"type": "http.response.body", "body": b"Homepage!", "more_body": True}
    assert log == ["middleware task"]


@pytest.mark.anyio
async def test_debug_info_is_forwarded() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.debug", "info": {"template": "t.html"}})
        await PlainTextResponse("x")(scope, receive, send)

    sent = await drive(BaseHTTPMiddleware(app, passthrough))
    assert sent[0] == {"type": "http.response.debug", "info": {"template": "t.html"}}
    assert sent[1]["type"] == "http.response.start"


@pytest.mark.anyio
async def test_pathsend_is_forwarded() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": "/some/file"})

    sent = await drive(BaseHTTPMiddleware(app, passthrough))
    assert sent == [
        {"type": "http.response.start", "status": 200, "headers": []},
        {"type": "http.response.pathsend", "path": "/some/file"},
    ]


# Background tasks and context variables


def test_background_task_completes_after_response(test_client_factory: TestClientFactory) -> None:
    log: list[str] = []

    async def slow_task() -> None:
        await anyio.sleep(0.05)
        log.append("task done")

    async def endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok", background=BackgroundTask(slow_task))

    inner = make_app(Middleware(CustomHeader), Route("/task", endpoint))

    async def outer(scope: Scope, receive: Receive, send: Send) -> None:
        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                log.append("response sent")
            await send(message)

        await inner(scope, receive, logged_send)

    response = test_client_factory(outer).get("/task")
    assert response.text == "ok"
    assert log == ["response sent", "task done"]


def test_background_task_of_replaced_response_still_runs(
    test_client_factory: TestClientFactory,
) -> None:
    log: list[str] = []

    async def endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok", background=BackgroundTask(log.append, "task"))

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        await call_next(request)
        return PlainTextResponse("replaced")

    app = make_app(Middleware(BaseHTTPMiddleware, dispatch=dispatch), Route("/task", endpoint))
    assert test_client_factory(app).get("/task").text == "replaced"
    assert log == ["task"]


@pytest.mark.anyio
async def test_background_task_error_is_raised_after_the_response() -> None:
    async def failing() -> None:
        raise KeyError("task")

    server = Server()
    app = PlainTextResponse("ok", background=BackgroundTask(failing))
    with pytest.raises(KeyError, match="task"):
        await server.run(BaseHTTPMiddleware(app, passthrough))
    assert server.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


ctxvar: contextvars.ContextVar[str] = contextvars.ContextVar("ctxvar", default="unset")


def test_contextvars(test_client_factory: TestClientFactory) -> None:
    seen: list[str] = []

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        ctxvar.set("set by middleware")
        response = await call_next(request)
        seen.append(ctxvar.get())
        return response

    async def endpoint(request: Request) -> JSONResponse:
        seen.append(ctxvar.get())
        ctxvar.set("set by endpoint")
        return JSONResponse({})

    app = make_app(Middleware(BaseHTTPMiddleware, dispatch=dispatch), Route("/ctx", endpoint))
    test_client_factory(app).get("/ctx")
    # Down the stack the value is seen; the endpoint's own change does not come back up
    # (the app runs in a child task), as in Starlette.
    assert seen == ["set by middleware", "set by middleware"]


# Disconnects and abandoned responses


class InfiniteStream:
    """An endless streaming response that counts its chunks."""

    def __init__(self) -> None:
        self.produced = 0

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        while True:
            self.produced += 1
            yield b"x"
            await anyio.sleep(0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Closed here: StreamingResponse leaves a cancelled iterator to the garbage collector.
        async with contextlib.aclosing(self.chunks()) as chunks:
            await StreamingResponse(chunks)(scope, receive, send)

    async def assert_stopped(self) -> None:
        produced = self.produced
        await anyio.sleep(0.01)
        assert self.produced == produced


@pytest.mark.anyio
async def test_send_error_stops_the_stream() -> None:
    """ASGI 2.4: a send() that raises OSError means the client left."""
    stream = InfiniteStream()
    server = Server(spec_version="2.4")
    server.fail_send_after = 3
    with pytest.raises(OSError, match="client gone"):
        await server.run(BaseHTTPMiddleware(stream, passthrough))
    assert len(server.sent) == 3
    await stream.assert_stopped()


@pytest.mark.anyio
async def test_disconnect_message_stops_the_stream() -> None:
    """ASGI < 2.4: the app's StreamingResponse hears http.disconnect and stops."""
    stream = InfiniteStream()
    server = Server(spec_version="2.3")

    async def send(message: Message) -> None:
        server.sent.append(message)
        if len(server.sent) == 3:
            server.disconnect.set()

    server.send = send  # type: ignore[method-assign]
    await server.run(BaseHTTPMiddleware(stream, passthrough))
    assert server.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    await stream.assert_stopped()


@pytest.mark.anyio
@pytest.mark.parametrize("spec_version", ["2.3", "2.4"])
async def test_replaced_stream_is_stopped(spec_version: str) -> None:
    """A middleware that drops the app's endless stream does not hang the request."""
    stream = InfiniteStream()

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        await call_next(request)
        return PlainTextResponse("replaced")

    server = Server(spec_version=spec_version)
    sent = await server.run(BaseHTTPMiddleware(stream, dispatch))
    assert sent[1] == {"type": "http.response.body", "body": b"replaced"}
    await stream.assert_stopped()


@pytest.mark.anyio
async def test_app_waiting_for_disconnect_is_released() -> None:
    log: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        log.append(await receive())  # the body
        await send({"type": "http.response.start", "status": 200, "headers": []})
        log.append(await receive())  # blocks until the middleware's response is out
        log.append(await receive())  # and after that, returns at once
        await send({"type": "http.response.body", "body": b"dropped"})

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        await call_next(request)
        return PlainTextResponse("replaced")

    sent = await drive(BaseHTTPMiddleware(app, dispatch))
    assert sent[1] == {"type": "http.response.body", "body": b"replaced"}
    assert log == [
        {"type": "http.request", "body": b"hello", "more_body": False},
        DISCONNECT,
        DISCONNECT,
    ]


@pytest.mark.anyio
async def test_app_error_in_abandoned_response_is_raised() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
        except OSError:  # nobody reads this body any more
            raise KeyError("late") from None

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        await call_next(request)
        return PlainTextResponse("replaced")

    with pytest.raises(KeyError, match="late"):
        await drive(BaseHTTPMiddleware(app, dispatch), spec_version="2.4")


@pytest.mark.anyio
async def test_lifespan_passes_through() -> None:
    scopes: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope["type"])

    await BaseHTTPMiddleware(app, passthrough)({"type": "lifespan"}, Server().receive, send_nowhere)
    assert scopes == ["lifespan"]


async def send_nowhere(message: Message) -> None:
    """Never called."""  # pragma: no cover


@pytest.mark.anyio
async def test_disconnect_before_the_body_reaches_the_app() -> None:
    received: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(await receive())
        await PlainTextResponse("late")(scope, receive, send)

    await Server([DISCONNECT]).run(BaseHTTPMiddleware(app, passthrough))
    assert received == [DISCONNECT]


class Chunks:
    """An async iterator that is not a generator: nothing to close."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    def __aiter__(self) -> Chunks:
        return self

    async def __anext__(self) -> bytes:
        if not self.chunks:
            raise StopAsyncIteration
        return self.chunks.pop(0)


@pytest.mark.anyio
async def test_body_iterator_without_aclose() -> None:
    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        assert isinstance(response, _StreamingResponse)
        response.body_iterator = Chunks(b"a", b"b")
        return response

    sent = await drive(BaseHTTPMiddleware(homepage_app, dispatch))
    assert [message.get("body") for message in sent[1:]] == [b"a", b"b", b""]


# Disconnects seen by one side are remembered for the other


class OneDisconnectServer(Server):
    """Sends its messages, then one http.disconnect; a receive() after that fails the test."""

    async def receive(self) -> Message:
        assert self.incoming, "receive() called after http.disconnect"
        return self.incoming.pop(0)


def receiving_app(count: int, log: list[Message]) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for _ in range(count):
            log.append(await receive())
        await PlainTextResponse("ok")(scope, receive, send)

    return app


@pytest.mark.anyio
async def test_middleware_sees_the_disconnect_the_app_received() -> None:
    seen: list[bool] = []

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        seen.append(await request.is_disconnected())  # no receive(): the server is done
        return response

    log: list[Message] = []
    await OneDisconnectServer([DISCONNECT]).run(BaseHTTPMiddleware(receiving_app(3, log), dispatch))
    assert seen == [True]
    assert log == [DISCONNECT] * 3


@pytest.mark.anyio
async def test_app_polling_after_its_body_gets_the_disconnect_again() -> None:
    log: list[Message] = []
    server = OneDisconnectServer(
        [
            {"type": "http.request", "body": b"a", "more_body": True},
            {"type": "http.request", "body": b""},
            DISCONNECT,
        ]
    )
    await server.run(BaseHTTPMiddleware(receiving_app(4, log), passthrough))
    assert log == [
        {"type": "http.request", "body": b"a", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": False},
        DISCONNECT,
        DISCONNECT,
    ]


@pytest.mark.anyio
@pytest.mark.parametrize(("mode", "replayed"), [("body", b"hi"), ("stream", b"")])
async def test_body_read_before_a_disconnect_is_replayed_first(mode: str, replayed: bytes) -> None:
    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        if mode == "body":
            await request.body()
        else:
            assert [chunk async for chunk in request.stream()] == [b"hi", b""]
        assert await request.is_disconnected()
        return await call_next(request)

    log: list[Message] = []
    server = OneDisconnectServer([{"type": "http.request", "body": b"hi"}, DISCONNECT])
    await server.run(BaseHTTPMiddleware(receiving_app(3, log), dispatch))
    assert log == [
        {"type": "http.request", "body": replayed, "more_body": False},
        DISCONNECT,
        DISCONNECT,
    ]


@pytest.mark.anyio
async def test_app_reading_on_after_the_middleware_read_the_rest() -> None:
    log: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        log.append(await receive())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": True})
        log.append(await receive())  # the rest, which the middleware read meanwhile
        log.append(await receive())
        await send({"type": "http.response.body", "body": b""})

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        assert await request.body() == b"b"  # what the app left
        return response

    server = Server(
        [
            {"type": "http.request", "body": b"a", "more_body": True},
            {"type": "http.request", "body": b"b"},
        ]
    )
    server.disconnect.set()
    await server.run(BaseHTTPMiddleware(app, dispatch))
    assert log == [
        {"type": "http.request", "body": b"a", "more_body": True},
        {"type": "http.request", "body": b"b", "more_body": False},
        DISCONNECT,
    ]


# Messages before and after http.response.start


@pytest.mark.anyio
async def test_early_hints_from_middleware_and_app_go_out_first() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await Request(scope, receive, send).send_early_hints("</app.css>")
        await PlainTextResponse("x")(scope, receive, send)

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        await request.send_early_hints("</mw.css>")  # the middleware's request can send
        response = await call_next(request)
        await request.send_early_hints("</late.css>")
        return response

    extensions: dict[str, Any] = {"http.response.early_hint": {}}
    sent = await drive(BaseHTTPMiddleware(app, dispatch), extensions=extensions)
    assert [message.get("links") for message in sent[:3]] == [
        [b"</mw.css>"],
        [b"</app.css>"],
        [b"</late.css>"],
    ]
    assert sent[3]["type"] == "http.response.start"


@pytest.mark.anyio
async def test_only_the_last_debug_info_is_kept() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.debug", "info": {"n": 1}})
        await send({"type": "http.response.debug", "info": {"n": 2}})
        await PlainTextResponse("x")(scope, receive, send)

    sent = await drive(BaseHTTPMiddleware(app, passthrough))
    assert sent[0] == {"type": "http.response.debug", "info": {"n": 2}}
    assert sent[1]["type"] == "http.response.start"


@pytest.mark.anyio
async def test_push_before_start_is_an_error() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.push", "path": "/p", "headers": []})

    with pytest.raises(AssertionError, match="got 'http.response.push'"):
        await drive(BaseHTTPMiddleware(app, passthrough))


@pytest.mark.anyio
@pytest.mark.parametrize(
    "unexpected",
    [
        {"type": "http.response.start", "status": 200},
        {"type": "http.response.early_hint", "links": []},
        {"type": "http.response.trailers", "headers": []},
    ],
)
async def test_unexpected_message_after_start(unexpected: Message) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send(unexpected)

    server = Server()
    with pytest.raises(AssertionError) as info:
        await server.run(BaseHTTPMiddleware(app, passthrough))
    assert str(info.value) == f"Unexpected message: {unexpected}"
    assert server.sent[-1] == {"type": "http.response.body", "body": b"a", "more_body": True}


@pytest.mark.anyio
async def test_pathsend_file_response_needs_no_receive(tmp_path: Path) -> None:
    path = tmp_path / "example.txt"
    path.write_text("content")

    async def receive() -> Message:
        raise AssertionError("receive() called")  # pragma: no cover (the test fails if it is)

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = Server(extensions={"http.response.pathsend": {}}, method="GET").scope
    await BaseHTTPMiddleware(FileResponse(path), passthrough)(scope, receive, send)
    assert [message["type"] for message in sent] == [
        "http.response.start",
        "http.response.pathsend",
    ]
    assert sent[1]["path"] == str(path)


# The exception raised by call_next


def fail_plainly() -> None:
    raise KeyError("plain")


def fail_while_handling() -> None:
    try:
        raise ValueError("inner")
    except ValueError:
        raise KeyError("outer")  # noqa: B904 (the implicit context is what is tested)


def fail_with_cause() -> None:
    try:
        raise ValueError("inner")
    except ValueError as exc:
        raise KeyError("outer") from exc


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fail", "cause"),
    [(fail_plainly, None), (fail_while_handling, "inner"), (fail_with_cause, "inner")],
)
async def test_call_next_error_keeps_its_context_as_cause(fail: Any, cause: str | None) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        fail()

    with pytest.raises(KeyError) as info:
        await drive(BaseHTTPMiddleware(app, passthrough))
    error = info.value
    assert (error.__cause__ and str(error.__cause__).strip("'")) == cause
    # As in Starlette: the context is an internal end-of-stream, hidden from tracebacks.
    assert isinstance(error.__context__, anyio.EndOfStream)
    assert error.__suppress_context__


@pytest.mark.anyio
async def test_no_response_hides_the_end_of_stream() -> None:
    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        pass

    with pytest.raises(RuntimeError) as info:
        await drive(BaseHTTPMiddleware(silent, passthrough))
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


@pytest.mark.anyio
async def test_error_during_the_body_is_left_as_it_is() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        fail_while_handling()

    with pytest.raises(KeyError) as info:
        await drive(BaseHTTPMiddleware(app, passthrough))
    assert info.value.__cause__ is None
    assert isinstance(info.value.__context__, ValueError)
    assert not info.value.__suppress_context__


# The app's last message waits for the middleware's response


@pytest.mark.anyio
@pytest.mark.parametrize("replace", [False, True])
async def test_app_background_runs_after_the_response_is_sent(replace: bool) -> None:
    log: list[str] = []

    async def task() -> None:
        log.append("background")

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        return PlainTextResponse("replaced") if replace else response

    server = Server()
    original_send = server.send

    async def slow_send(message: Message) -> None:
        await anyio.sleep(0.01)  # the app's task gets every chance to run ahead
        log.append(f"{message['type']} {message.get('body', b'')!r}")
        await original_send(message)

    server.send = slow_send  # type: ignore[method-assign]
    app = PlainTextResponse("ok", background=BackgroundTask(task))
    await server.run(BaseHTTPMiddleware(app, dispatch))
    if replace:
        assert log == ["http.response.start b''", "http.response.body b'replaced'", "background"]
    else:
        assert log == [
            "http.response.start b''",
            "http.response.body b'ok'",
            "http.response.body b''",
            "background",
        ]


# What the app sends after the middleware's response is out


def sending_until_disconnect(log: list[str], listen: bool = True) -> ASGIApp:
    """Streams from a task group while another task waits for http.disconnect to stop it."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})

        async def stop_on_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass  # pragma: no cover (the body was read by then)
            log.append("disconnect")
            task_group.cancel_scope.cancel()

        async def stream() -> None:
            with anyio.fail_after(2):
                while True:
                    try:
                        await send({"type": "http.response.body", "body": b"x", "more_body": True})
                    except OSError:
                        log.append("send failed")
                        raise
                    await anyio.sleep(0)

        async with anyio.create_task_group() as task_group:
            if listen:
                task_group.start_soon(stop_on_disconnect)
            task_group.start_soon(stream)

    return app


async def first_chunk_then_replace(
    request: Request, call_next: RequestResponseEndpoint
) -> Response:
    response = await call_next(request)
    assert isinstance(response, _StreamingResponse)
    body = response.body_iterator
    assert isinstance(body, AsyncGenerator)
    assert await body.__anext__() == b"x"
    await body.aclose()
    return PlainTextResponse("Custom")


def test_discarded_stream_sends_are_dropped(test_client_factory: TestClientFactory) -> None:
    """Below ASGI 2.4 as with a server: sends after the client left go nowhere, no error."""
    log: list[str] = []
    app = BaseHTTPMiddleware(sending_until_disconnect(log), first_chunk_then_replace)
    assert test_client_factory(app).get("/").text == "Custom"
    assert log == ["disconnect"]


@pytest.mark.anyio
async def test_discarded_stream_send_raises_on_asgi_2_4() -> None:
    """The OSError stops the app's task group; that group is not an error of the request."""
    log: list[str] = []
    app = BaseHTTPMiddleware(sending_until_disconnect(log, listen=False), first_chunk_then_replace)
    sent = await drive(app, spec_version="2.4")
    assert sent[1] == {"type": "http.response.body", "body": b"Custom"}
    assert log == ["send failed"]


@pytest.mark.anyio
async def test_app_oserror_of_its_own_is_raised() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"dropped", "more_body": True})
        raise OSError("the app's own")

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        await call_next(request)
        return PlainTextResponse("replaced")

    with pytest.raises(OSError, match="the app's own"):
        await drive(BaseHTTPMiddleware(app, dispatch))


@pytest.mark.anyio
async def test_app_error_group_in_abandoned_response_is_raised() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        async with anyio.create_task_group():
            try:
                await send({"type": "http.response.body", "body": b"x", "more_body": True})
            finally:
                raise KeyError("also")

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        await call_next(request)
        return PlainTextResponse("replaced")

    with pytest.raises(BaseExceptionGroup) as info:
        await drive(BaseHTTPMiddleware(app, dispatch), spec_version="2.4")
    assert info.group_contains(KeyError)


@pytest.mark.anyio
@pytest.mark.parametrize("spec_version", ["2.x", None])
async def test_unreadable_spec_version_drops_sends(spec_version: Any) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"dropped", "more_body": True})

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        await call_next(request)
        return PlainTextResponse("replaced")

    sent = await drive(BaseHTTPMiddleware(app, dispatch), spec_version=spec_version)
    assert sent[1] == {"type": "http.response.body", "body": b"replaced"}


@pytest.mark.anyio
async def test_other_server_messages_pass_through() -> None:
    log: list[Message] = []
    server = Server([{"type": "http.custom", "x": 1}])
    server.disconnect.set()
    await server.run(BaseHTTPMiddleware(receiving_app(2, log), passthrough))
    assert log == [{"type": "http.custom", "x": 1}, DISCONNECT]
