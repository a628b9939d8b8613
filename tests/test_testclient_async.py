"""AsyncTestClient: an httpx AsyncClient over the app, in the test's own event loop."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from starling._httpx import httpx
from starling.applications import Starling
from starling.background import BackgroundTask
from starling.requests import Request
from starling.responses import JSONResponse, PlainTextResponse
from starling.routing import Route, WebSocketRoute
from starling.testclient import (
    AsyncTestClient,
    AsyncWebSocketTestSession,
    WebSocketDenialResponse,
)
from starling.types import Message, Receive, Scope, Send
from starling.websockets import WebSocket, WebSocketDisconnect

pytestmark = pytest.mark.anyio


async def respond(send: Send, body: bytes = b"", status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


# --- HTTP ----------------------------------------------------------------------------------


async def test_a_request_without_async_with() -> None:
    async def hello(request: Request) -> PlainTextResponse:
        body = await request.body()
        return PlainTextResponse(f"{request.method} {request.url} {body.decode()}")

    client = AsyncTestClient(Starling(routes=[Route("/hi", hello, methods=["GET", "POST"])]))
    response = await client.post("/hi?x=1", content=b"body")
    assert (response.status_code, response.text) == (200, "POST http://testserver/hi?x=1 body")
    assert (await client.head("/hi")).content == b""


async def test_the_scope_is_a_servers() -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await respond(send)

    client = AsyncTestClient(
        app,
        base_url="https://example.org:8443",
        root_path="/r",
        client=("10.0.0.1", 1234),
        cookies={"c": "d"},
    )
    await client.get("/p%20q", headers={"X-A": "b"})
    (scope,) = scopes
    assert scope["scheme"] == "https"
    assert scope["server"] == ["example.org", 8443]
    assert (scope["path"], scope["raw_path"], scope["root_path"]) == ("/p q", b"/p%20q", "/r")
    assert scope["client"] == ("10.0.0.1", 1234)
    headers = dict(scope["headers"])
    assert (headers[b"x-a"], headers[b"cookie"]) == (b"b", b"c=d")
    assert headers[b"user-agent"] == b"testclient"
    await AsyncTestClient(app, headers={"User-Agent": "mine"}).get("/")
    assert dict(scopes[1]["headers"])[b"user-agent"] == b"mine"


async def test_the_body_arrives_in_the_chunks_sent() -> None:
    messages: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        while True:
            message = await receive()
            messages.append(message)
            if not message.get("more_body", False):
                break
        await respond(send)

    async def body() -> AsyncIterator[bytes]:
        yield b"a"
        yield b""
        yield b"b"

    async with AsyncTestClient(app) as client:
        await client.post("/", content=body())
        await client.get("/")
    assert messages == [
        {"type": "http.request", "body": b"a", "more_body": True},
        {"type": "http.request", "body": b"b"},
        {"type": "http.request", "body": b""},
    ]


async def test_the_app_runs_in_the_tests_own_loop() -> None:
    """Unlike the sync client's thread: the app can wait on an event the test sets."""
    release = anyio.Event()

    async def waits(request: Request) -> PlainTextResponse:
        await release.wait()
        return PlainTextResponse("released")

    results: list[str] = []
    client = AsyncTestClient(Starling(routes=[Route("/", waits)]))

    async def get() -> None:
        results.append((await client.get("/")).text)

    async with client, anyio.create_task_group() as task_group:
        task_group.start_soon(get)
        await anyio.wait_all_tasks_blocked()
        assert results == []
        release.set()
    assert results == ["released"]


async def test_background_tasks_run_before_the_response_is_returned() -> None:
    ran: list[str] = []

    async def note() -> None:
        await anyio.sleep(0)
        ran.append("background")

    async def endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok", background=BackgroundTask(note))

    app = Starling(routes=[Route("/", endpoint)])
    async with AsyncTestClient(app) as client:
        assert (await client.get("/")).text == "ok"
        assert ran == ["background"]
    assert (await AsyncTestClient(app).get("/")).text == "ok"
    assert ran == ["background", "background"]


# --- lifespan ------------------------------------------------------------------------------


async def test_async_with_runs_the_lifespan_and_its_state_reaches_requests() -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starling) -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        yield {"greeting": "hello"}
        events.append("shutdown")

    async def endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.state.greeting)

    app = Starling(routes=[Route("/", endpoint)], lifespan=lifespan)
    async with AsyncTestClient(app) as client:
        assert events == ["startup"]
        assert (await client.get("/")).text == "hello"
    assert events == ["startup", "shutdown"]


async def test_a_failed_startup_fails_async_with() -> None:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starling) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield  # pragma: no cover (never reached)

    client = AsyncTestClient(Starling(lifespan=lifespan))
    with pytest.raises(RuntimeError, match="no database"):
        async with client:
            pass  # pragma: no cover (startup fails first)


async def test_an_app_without_lifespan_support_still_runs() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return  # what servers tolerate: no lifespan protocol
        await respond(send, b"ok")

    async with AsyncTestClient(app) as client:
        assert (await client.get("/")).text == "ok"


async def test_an_asgi2_app() -> None:
    def app(scope: Scope) -> Any:
        async def instance(receive: Receive, send: Send) -> None:
            assert scope["type"] == "http"  # no lifespan: the client is not entered
            await respond(send, b"asgi2")

        return instance

    assert (await AsyncTestClient(app).get("/")).text == "asgi2"  # type: ignore[arg-type]


# --- streaming -----------------------------------------------------------------------------


def counting_stream(sent: list[int], closed: list[bool], count: int | None = None) -> Any:
    """An app streaming numbered lines (forever, unless ``count``), noting when it ends."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            index = 0
            while count is None or index < count:
                sent.append(index)
                more = count is None or index < count - 1
                body = f"{index}\n".encode()
                await send({"type": "http.response.body", "body": body, "more_body": more})
                index += 1
        finally:
            closed.append(True)

    return app


async def test_a_streaming_response_streams_with_backpressure() -> None:
    sent: list[int] = []
    closed: list[bool] = []
    async with AsyncTestClient(counting_stream(sent, closed)) as client:
        async with (
            client.stream("GET", "/") as response,
            # (aiter_raw: httpx's other iterators nest generators that aclosing cannot close)
            contextlib.aclosing(response.aiter_raw()) as chunks,  # type: ignore[type-var]
        ):
            assert await anext(chunks) == b"0\n"
            assert await anext(chunks) == b"1\n"
            # the app waits for the test to read on: it produced at most one chunk ahead
            assert len(sent) <= 3
        # leaving the block closed the response and cancelled the endless producer
        assert closed == [True]


async def test_a_finite_stream_is_read_whole() -> None:
    sent: list[int] = []
    closed: list[bool] = []
    client = AsyncTestClient(counting_stream(sent, closed, count=3))
    async with client, client.stream("GET", "/") as response:
        assert [line async for line in response.aiter_lines()] == ["0", "1", "2"]
    assert closed == [True]


async def test_responses_left_open_are_cancelled_at_exit() -> None:
    sent: list[int] = []
    closed: list[bool] = []
    async with AsyncTestClient(counting_stream(sent, closed)) as client:
        request = client.build_request("GET", "/")
        response = await client.send(request, stream=True)
        assert response.status_code == 200
    assert closed == [True]


async def test_a_cancelled_request_cancels_the_app() -> None:
    cleaned: list[bool] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                await anyio.sleep_forever()
            finally:
                cleaned.append(True)

    for client in (AsyncTestClient(app), AsyncTestClient(app)):
        async with contextlib.AsyncExitStack() as stack:
            if cleaned:
                await stack.enter_async_context(client)  # the second time, with a task group
            with anyio.move_on_after(0.05):
                await client.get("/")
    assert cleaned == [True, True]


# --- errors --------------------------------------------------------------------------------


async def boom(request: Request) -> PlainTextResponse:
    raise ValueError("boom")


async def test_server_exceptions_are_raised() -> None:
    app = Starling(routes=[Route("/", boom)])
    with pytest.raises(ValueError, match="boom"):
        await AsyncTestClient(app).get("/")
    async with AsyncTestClient(app) as client:
        with pytest.raises(ValueError, match="boom"):
            await client.get("/")


async def test_or_answered_500() -> None:
    app = Starling(routes=[Route("/", boom)])
    async with AsyncTestClient(app, raise_server_exceptions=False) as client:
        response = await client.get("/")
    assert (response.status_code, response.text) == (500, "Internal Server Error")


@pytest.mark.parametrize("entered", [False, True])
async def test_an_app_that_never_responds(entered: bool) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        pass

    async with contextlib.AsyncExitStack() as stack:
        client = AsyncTestClient(app)
        if entered:
            await stack.enter_async_context(client)
        with pytest.raises(AssertionError, match="did not receive any response"):
            await client.get("/")
        quiet = AsyncTestClient(app, raise_server_exceptions=False)
        assert (await quiet.get("/")).status_code == 500


async def test_an_error_after_the_response_started_is_raised_once_read() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"part", "more_body": True})
            raise ValueError("mid-stream")

    async with AsyncTestClient(app) as client, client.stream("GET", "/") as response:
        with pytest.raises(ValueError, match="mid-stream"):
            await response.aread()


async def test_an_error_in_a_response_left_open_is_raised_at_exit() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            raise ValueError("after the start")

    client = AsyncTestClient(app)
    with pytest.raises(ValueError, match="after the start"):
        async with client:
            await client.send(client.build_request("GET", "/"), stream=True)


# --- WebSockets ----------------------------------------------------------------------------


async def echo(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol="chat", headers=[(b"x-echo", b"1")])
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text == "json":
            await websocket.send_json({"n": 1})
            await websocket.send_json({"n": 2}, mode="binary")
        elif text == "close":
            await websocket.close(code=4001, reason="asked")
            return
        elif text is None:
            await websocket.send_bytes(message["bytes"][::-1])
        else:
            await websocket.send_text(text.upper())


ws_app = Starling(routes=[WebSocketRoute("/ws", echo)])


@pytest.mark.parametrize("entered", [False, True])
async def test_websocket_session(entered: bool) -> None:
    async with contextlib.AsyncExitStack() as stack:
        client = AsyncTestClient(ws_app)
        if entered:
            await stack.enter_async_context(client)
        async with client.websocket_connect("/ws", subprotocols=["chat", "other"]) as ws:
            assert isinstance(ws, AsyncWebSocketTestSession)
            assert ws.accepted_subprotocol == "chat"
            assert ws.extra_headers == [(b"x-echo", b"1")]
            await ws.send_text("hello")
            assert await ws.receive_text() == "HELLO"
            await ws.send_text("json")
            assert await ws.receive_json() == {"n": 1}
            assert await ws.receive_json(mode="binary") == {"n": 2}
            await ws.send_bytes(b"ab")
            assert await ws.receive_bytes() == b"ba"


async def test_websocket_binary_json_and_bytes() -> None:
    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        data = await websocket.receive_json(mode="binary")
        await websocket.send_bytes(data["raw"].encode())

    client = AsyncTestClient(Starling(routes=[WebSocketRoute("/", app)]))
    async with client.websocket_connect("/") as ws:
        await ws.send_json({"raw": "é"}, mode="binary")
        assert await ws.receive_bytes() == "é".encode()
        # the app has ended without a close frame: what a client sees is 1006, from then on
        for _ in range(2):
            assert await ws.receive() == {"type": "websocket.close", "code": 1006, "reason": ""}


async def test_the_app_closing_raises_websocket_disconnect() -> None:
    async with AsyncTestClient(ws_app).websocket_connect("/ws") as ws:
        await ws.send_text("close")
        with pytest.raises(WebSocketDisconnect) as info:
            await ws.receive_text()
    assert (info.value.code, info.value.reason) == (4001, "asked")


async def test_a_refused_connection() -> None:
    async def refuse(websocket: WebSocket) -> None:
        await websocket.close(code=4003)

    client = AsyncTestClient(Starling(routes=[WebSocketRoute("/", refuse)]))
    with pytest.raises(WebSocketDisconnect) as info:
        async with client.websocket_connect("/"):
            pass  # pragma: no cover (refused first)
    assert info.value.code == 4003


@pytest.mark.parametrize("more", [False, True])
async def test_a_denial_response(more: bool) -> None:
    async def deny(websocket: WebSocket) -> None:
        await websocket.send_denial_response(
            JSONResponse({"error": "nope"}, status_code=403, headers={"x-why": "test"})
        )

    async def deny_by_hand(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": b"par", "more_body": True})
        # ends mid-body: denied with what it sent

    app: Any = Starling(routes=[WebSocketRoute("/", deny)]) if not more else deny_by_hand
    with pytest.raises(WebSocketDenialResponse) as info:
        async with AsyncTestClient(app).websocket_connect("/"):
            pass  # pragma: no cover (denied first)
    response = info.value
    assert isinstance(response, httpx.Response)
    if more:
        assert (response.status_code, response.text) == (401, "par")
    else:
        assert (response.status_code, response.json()) == (403, {"error": "nope"})
        assert response.headers["x-why"] == "test"


async def test_an_app_error_right_after_accept_fails_the_connect() -> None:
    async def fails(websocket: WebSocket) -> None:
        await websocket.accept()
        raise ValueError("after accept")

    with pytest.raises(ValueError, match="after accept"):
        async with AsyncTestClient(fails_app(fails)).websocket_connect("/"):
            pass  # pragma: no cover (fails first)


def fails_app(endpoint: Any) -> Starling:
    return Starling(routes=[WebSocketRoute("/", endpoint)])


async def test_an_app_error_later_is_raised_at_exit_or_on_receive() -> None:
    async def fails_on_message(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()
        raise ValueError("later")

    client = AsyncTestClient(fails_app(fails_on_message))
    with pytest.raises(ValueError, match="later"):
        async with client.websocket_connect("/") as ws:
            await ws.send_text("go")
            await ws.receive()
    with pytest.raises(ValueError, match="later"):
        async with client.websocket_connect("/") as ws:
            await ws.send_text("go")


async def test_an_app_ignoring_the_close_is_cancelled_at_exit() -> None:
    cancelled: list[bool] = []

    async def stubborn(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.append(True)

    with anyio.fail_after(5):
        async with AsyncTestClient(fails_app(stubborn)).websocket_connect("/") as ws:
            await ws.close(1001)
    assert cancelled == [True]


async def test_websocket_connect_sends_the_clients_headers_and_params() -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await receive()
        await send({"type": "websocket.accept"})

    client = AsyncTestClient(app, headers={"x-client": "1"})
    async with client.websocket_connect("/ws", headers={"x-call": "2"}, params={"b": "2"}):
        pass
    (scope,) = scopes
    assert scope["type"] == "websocket"
    assert scope["query_string"] == b"b=2"
    headers = dict(scope["headers"])
    assert (headers[b"x-client"], headers[b"x-call"]) == (b"1", b"2")
    assert headers[b"sec-websocket-version"] == b"13"
    assert scope["subprotocols"] == []


# --- what the sync client's transport records, on the async client too ---------------------


async def test_debug_info_and_trailers() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        assert "http.response.debug" in scope["extensions"]
        await send({"type": "http.response.debug", "info": {"template": "t.html", "context": 1}})
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"body"})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"1")]})

    async with AsyncTestClient(app) as client:
        response = await client.get("/")
    assert response.content == b"body"
    assert (response.template, response.context) == ("t.html", 1)  # type: ignore[attr-defined]
    assert response.extensions["http.response.trailers"] == [(b"x-sum", b"1")]
