"""A client that leaves is not a server error.

ClientDisconnect (the body read when the client has gone) and WebSocketDisconnect (the peer of a
WebSocket gone) that no exception handler takes end the request quietly: no 500 sent to nobody,
no traceback in the server's log, one debug line. A handler registered for them still runs.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from starling.applications import Starling
from starling.endpoints import HTTPEndpoint
from starling.middleware import Middleware
from starling.middleware.errors import ServerErrorMiddleware
from starling.requests import ClientDisconnect, Request
from starling.responses import PlainTextResponse, Response
from starling.routing import Mount, Route, WebSocketRoute
from starling.testclient import AsyncTestClient
from starling.types import ASGIApp, Message, Receive, Scope, Send
from starling.websockets import WebSocket, WebSocketDisconnect
from tests._uvicorn_process import APP_ERROR, UvicornProcess, tracebacks
from tests.types import TestClientFactory

LOGGER = "starling.middleware.errors"
DISCONNECT: Message = {"type": "http.disconnect"}
PARTIAL_BODY: Message = {"type": "http.request", "body": b"abc", "more_body": True}
PARTIAL_UPLOAD: Message = {
    "type": "http.request",
    "body": b'--b\r\nContent-Disposition: form-data; name="f"; filename="f"\r\n\r\nabc',
    "more_body": True,
}


async def read_body(request: Request) -> Response:
    return PlainTextResponse(await request.body())


async def read_form(request: Request) -> Response:
    return PlainTextResponse(str(await request.form()))


class ReadBody(HTTPEndpoint):
    async def post(self, request: Request) -> Response:
        return PlainTextResponse(await request.body())


async def raw_reader(scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(Request(scope, receive))


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())


class PassThrough:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def make_app(**options: Any) -> Starling:
    return Starling(
        routes=[
            Route("/body", read_body, methods=["POST"]),
            Route("/form", read_form, methods=["POST"]),
            Route("/endpoint", ReadBody),
            Mount("/raw", raw_reader),
            WebSocketRoute("/ws", echo),
        ],
        **options,
    )


def http_scope(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers or [],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }


async def run(app: ASGIApp, scope: Scope, incoming: list[Message]) -> list[Message]:
    """What ``app`` sends for ``scope`` when the client's messages are ``incoming``."""
    messages = iter(incoming)
    sent: list[Message] = []

    async def receive() -> Message:
        return next(messages)

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


MULTIPART = [(b"content-type", b"multipart/form-data; boundary=b")]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "headers", "partial"),
    [
        ("/body", None, PARTIAL_BODY),  # a function endpoint: Starling.__call__'s fused stack
        ("/form", MULTIPART, PARTIAL_UPLOAD),  # the same, in the multipart parser
        ("/endpoint", None, PARTIAL_BODY),  # an HTTPEndpoint: the default stack, not fused
        ("/raw/", None, PARTIAL_BODY),  # a raw ASGI app under a Mount
    ],
)
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"debug": True},
        {"middleware": [Middleware(PassThrough)]},  # ServerErrorMiddleware.__call__
        # a handler for Exception is the server-error handler: a client leaving is not one
        {"exception_handlers": {Exception: lambda request, exc: PlainTextResponse("no", 500)}},
    ],
    ids=["default", "debug", "user-middleware", "error-handler"],
)
async def test_client_leaving_mid_body_ends_quietly(
    path: str,
    headers: list[tuple[bytes, bytes]] | None,
    partial: Message,
    options: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    sent = await run(make_app(**options), http_scope(path, headers), [partial, DISCONNECT])
    assert sent == []  # no 500 to a client that is gone
    [record] = [record for record in caplog.records if record.name == LOGGER]
    assert record.levelno == logging.DEBUG
    assert record.getMessage() == (
        f"Client left before the response completed (ClientDisconnect): POST {path!r}"
    )


@pytest.mark.anyio
async def test_a_handler_for_client_disconnect_still_runs() -> None:
    seen: list[Exception] = []

    async def on_disconnect(request: Request, exc: Exception) -> Response:
        seen.append(exc)
        return PlainTextResponse("gone", status_code=499)

    app = make_app(exception_handlers={ClientDisconnect: on_disconnect})
    sent = await run(app, http_scope("/body"), [DISCONNECT])
    assert [type(exc) for exc in seen] == [ClientDisconnect]
    assert sent[0]["status"] == 499


@pytest.mark.anyio
async def test_server_error_middleware_alone_ends_quietly_too() -> None:
    assert await run(ServerErrorMiddleware(raw_reader), http_scope("/"), [DISCONNECT]) == []


@pytest.mark.anyio
async def test_other_errors_are_still_reported() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("a real error")

    with pytest.raises(ValueError, match="a real error"):
        await run(ServerErrorMiddleware(broken), http_scope("/"), [])


WS_SCOPE: Scope = {
    "type": "websocket",
    "asgi": {"version": "3.0"},
    "path": "/ws",
    "raw_path": b"/ws",
    "root_path": "",
    "query_string": b"",
    "headers": [],
    "scheme": "ws",
    "server": ("127.0.0.1", 8000),
    "client": ("127.0.0.1", 50000),
    "subprotocols": [],
}
WS_LEAVES: list[Message] = [
    {"type": "websocket.connect"},
    {"type": "websocket.disconnect", "code": 1006},
]


@pytest.mark.anyio
async def test_websocket_peer_leaving_ends_quietly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    sent = await run(make_app(), dict(WS_SCOPE), WS_LEAVES)
    assert sent == [{"type": "websocket.accept", "subprotocol": None, "headers": []}]
    [record] = [record for record in caplog.records if record.name == LOGGER]
    assert record.getMessage() == (
        "Client left before the response completed (WebSocketDisconnect): WEBSOCKET '/ws'"
    )


@pytest.mark.anyio
async def test_websocket_send_to_a_vanished_peer_ends_quietly() -> None:
    async def greet(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        if message["type"] != "websocket.accept":
            raise OSError("the transport is gone")  # ASGI 2.4: what a server raises

    app = Starling(routes=[WebSocketRoute("/ws", greet)])
    await app(dict(WS_SCOPE), receive, send)


@pytest.mark.anyio
async def test_a_handler_for_websocket_disconnect_still_runs() -> None:
    codes: list[int] = []

    async def on_disconnect(websocket: WebSocket, exc: Exception) -> None:
        assert isinstance(exc, WebSocketDisconnect)
        codes.append(exc.code)

    app = make_app(exception_handlers={WebSocketDisconnect: on_disconnect})
    await run(app, dict(WS_SCOPE), WS_LEAVES)
    assert codes == [1006]


# ---------------------------------------------------------------------------------------------
# Under the test clients: the disconnect is raised to the test, as Starlette's client raises it
# (tests written `with pytest.raises(WebSocketDisconnect):` keep passing), though no server
# would see it.


async def listen(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:  # ends when the client closes: receive_text raises WebSocketDisconnect
        await websocket.send_text(await websocket.receive_text())


def test_the_test_client_still_raises_the_disconnect(
    test_client_factory: TestClientFactory,
) -> None:
    client = test_client_factory(Starling(routes=[WebSocketRoute("/ws", listen)]))
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/ws") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "hi"
    assert info.value.code == 1000


@pytest.mark.anyio
async def test_the_async_test_client_still_raises_the_disconnect() -> None:
    app = Starling(routes=[WebSocketRoute("/ws", listen)])
    async with AsyncTestClient(app) as client:
        with pytest.raises(WebSocketDisconnect) as info:
            async with client.websocket_connect("/ws") as ws:
                await ws.send_text("hi")
                assert await ws.receive_text() == "hi"
    assert info.value.code == 1000


# ---------------------------------------------------------------------------------------------
# Under a real server: what uvicorn logs


@pytest.fixture
def served(tmp_path: Path) -> Iterator[UvicornProcess]:
    server = UvicornProcess("tests._served_app:app", tmp_path / "uvicorn.log")
    try:
        yield server
    finally:
        server.stop()


def _cut(port: int, head: bytes, body: bytes) -> None:
    """Send a request head and part of its body, then leave."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head + body)
        time.sleep(0.05)


def _request(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += sock.recv(65536)
        return reply


def _websocket_then_drop(port: int) -> None:
    key = base64.b64encode(os.urandom(16))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert sock.recv(1024).startswith(b"HTTP/1.1 101")


def test_cut_uploads_leave_no_traceback_in_the_server_log(served: UvicornProcess) -> None:
    port = served.port
    _cut(port, b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n", b"a")
    _cut(
        port,
        b"POST /form HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\n\r\n",
        b'--b\r\nContent-Disposition: form-data; name="f"; filename="f.bin"\r\n\r\n' + b"x" * 500,
    )
    _websocket_then_drop(port)
    # a real error, as a control: it is logged, with its traceback
    assert _request(port, b"GET /fail HTTP/1.1\r\nHost: localhost\r\n\r\n").startswith(
        b"HTTP/1.1 500"
    )
    assert _request(port, b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").startswith(
        b"HTTP/1.1 200"
    )
    assert served.stop()
    log = served.log()
    assert log.count(APP_ERROR) == 1, log
    [logged] = tracebacks(log)
    assert logged.title == f"ERROR:    {APP_ERROR}", log
    assert logged.exception == "RuntimeError: served app: this handler raises on purpose", log
