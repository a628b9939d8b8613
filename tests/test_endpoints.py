from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from starling import status
from starling.applications import Starlette
from starling.endpoints import HTTPEndpoint, WebSocketEndpoint
from starling.exceptions import HTTPException
from starling.requests import Request
from starling.responses import PlainTextResponse, Response
from starling.routing import Route, WebSocketRoute
from starling.types import Message, Receive, Scope, Send
from starling.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected
from tests.types import TestClientFactory

# -- HTTPEndpoint ----------------------------------------------------------------------------


class Homepage(HTTPEndpoint):
    async def get(self, request: Request[Any]) -> Response:
        username = request.path_params.get("username")
        return PlainTextResponse(f"Hello, {username or 'world'}! ({request.method})")

    def post(self, request: Request[Any]) -> Response:
        on_main = threading.current_thread() is threading.main_thread()
        return PlainTextResponse(f"post on main thread: {on_main}")


def make_endpoint(*names: str) -> type[HTTPEndpoint]:
    """An endpoint class with an async handler, answering its own name, for each name."""

    def handler(name: str) -> Any:
        async def handle(self: HTTPEndpoint, request: Request[Any]) -> Response:
            return PlainTextResponse(name)

        return handle

    return type("Generated", (HTTPEndpoint,), {name: handler(name) for name in names})


def test_http_endpoint_route(test_client_factory: TestClientFactory) -> None:
    app = Starlette(routes=[Route("/", Homepage), Route("/{username}", Homepage)])
    client = test_client_factory(app)
    assert client.get("/").text == "Hello, world! (GET)"
    assert client.get("/tomchristie").text == "Hello, tomchristie! (GET)"


def test_http_endpoint_sync_handler_runs_in_a_thread(
    test_client_factory: TestClientFactory,
) -> None:
    client = test_client_factory(Homepage)
    response = client.post("/")
    assert (response.status_code, response.text) == (200, "post on main thread: False")


def test_http_endpoint_head_falls_back_to_get(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(Homepage)
    response = client.head("/")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len("Hello, world! (HEAD)"))
    assert response.text == ""


def test_http_endpoint_head_handler_wins(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_endpoint("get", "head"))
    assert client.head("/").headers["content-length"] == "4"


def test_http_endpoint_head_none_falls_back_to_get(
    test_client_factory: TestClientFactory,
) -> None:
    # Starlette calls the None and fails with a TypeError; None means "no handler" here.
    class NoHead(HTTPEndpoint):
        head = None

        async def get(self, request: Request[Any]) -> Response:
            return PlainTextResponse("get")

    response = test_client_factory(NoHead).head("/")
    assert (response.status_code, response.headers["content-length"]) == (200, "3")


def test_http_endpoint_instance_method_not_allowed(
    test_client_factory: TestClientFactory,
) -> None:
    class Instance(HTTPEndpoint):
        def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
            super().__init__(scope, receive, send)
            self.method_not_allowed = self.refuse  # type: ignore[method-assign,assignment]

        async def refuse(self, request: Request[Any]) -> Response:
            return PlainTextResponse("refused", status_code=418)

    assert test_client_factory(Instance).get("/").status_code == 418


def test_http_endpoint_method_not_allowed(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(Homepage)
    for method in ("PUT", "DELETE", "QUERY", "OPTIONS"):
        response = client.request(method, "/")
        assert response.status_code == 405
        assert response.text == "Method Not Allowed"
        assert list(response.headers.items())[0] == ("allow", "GET, HEAD, POST")


@pytest.mark.parametrize(
    ("handlers", "allow"),
    [
        ((), ""),
        (("head",), "HEAD"),
        (("get",), "GET, HEAD"),
        (("query", "put"), "PUT, QUERY"),
        (
            ("query", "options", "delete", "patch", "put", "post", "head", "get", "trace"),
            "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, QUERY",
        ),
    ],
)
def test_http_endpoint_allow_header(
    test_client_factory: TestClientFactory, handlers: tuple[str, ...], allow: str
) -> None:
    client = test_client_factory(make_endpoint(*handlers))
    response = client.request("BREW", "/")
    assert (response.status_code, response.headers["allow"]) == (405, allow)


def test_http_endpoint_query_method(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_endpoint("query"))
    assert client.request("QUERY", "/").text == "query"
    assert client.get("/").status_code == 405
    assert client.head("/").status_code == 405


@pytest.mark.parametrize(
    "method", ["TRACE", "CONNECT", "DISPATCH", "METHOD_NOT_ALLOWED", "__INIT__"]
)
def test_http_endpoint_only_dispatches_known_methods(
    test_client_factory: TestClientFactory, method: str
) -> None:
    client = test_client_factory(make_endpoint("get", "trace", "connect"))
    assert client.request(method, "/").status_code == 405


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["get", "Get", "head"])
async def test_http_endpoint_method_is_case_sensitive(method: str) -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}  # pragma: no cover (nothing reads the body)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/", "headers": [], "query_string": b""}
    await make_endpoint("get")(scope, receive, send)
    assert sent[0]["status"] == 405


def test_http_endpoint_allowed_methods_fixed_at_init(
    test_client_factory: TestClientFactory,
) -> None:
    class Late(HTTPEndpoint):
        def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
            super().__init__(scope, receive, send)
            self.delete = self.handle

        async def handle(self, request: Request[Any]) -> Response:
            raise AssertionError("not reached")  # pragma: no cover (405 before dispatch)

    response = test_client_factory(Late).delete("/")
    assert (response.status_code, response.headers["allow"]) == (405, "")


def test_http_endpoint_custom_method_not_allowed(test_client_factory: TestClientFactory) -> None:
    class Custom(HTTPEndpoint):
        async def delete(self, request: Request[Any]) -> Response:
            return PlainTextResponse("deleted")

        async def method_not_allowed(self, request: Request[Any]) -> Response:  # type: ignore[override]
            return PlainTextResponse("custom", status_code=418)

    client = test_client_factory(Custom)
    assert client.delete("/").text == "deleted"
    response = client.post("/")
    assert (response.status_code, response.text) == (418, "custom")


def test_http_endpoint_sync_custom_method_not_allowed(
    test_client_factory: TestClientFactory,
) -> None:
    class Custom(HTTPEndpoint):
        def method_not_allowed(self, request: Request[Any]) -> Response:
            on_main = threading.current_thread() is threading.main_thread()
            return PlainTextResponse(f"main thread: {on_main}", status_code=405)

    assert test_client_factory(Custom).get("/").text == "main thread: False"


def test_http_endpoint_405_inside_an_app_uses_its_handlers(
    test_client_factory: TestClientFactory,
) -> None:
    async def handler(request: Request[Any], exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        body = f"handled {exc.status_code} {exc.detail} {exc.headers}"
        return PlainTextResponse(body, exc.status_code, headers=exc.headers)

    app = Starlette(routes=[Route("/", Homepage)], exception_handlers={HTTPException: handler})
    response = test_client_factory(app).put("/")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert response.text == "handled 405 Method Not Allowed {'Allow': 'GET, HEAD, POST'}"


def test_http_endpoint_405_with_app_in_scope_raises(
    test_client_factory: TestClientFactory,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = None
        await make_endpoint("get")(scope, receive, send)

    with pytest.raises(HTTPException) as info:
        test_client_factory(app).put("/")
    assert (info.value.status_code, info.value.headers) == (405, {"Allow": "GET, HEAD"})


def test_http_endpoint_request_gets_the_channels(test_client_factory: TestClientFactory) -> None:
    class Channels(HTTPEndpoint):
        async def get(self, request: Request[Any]) -> Response:
            same = (request.receive is self.receive, request._send is self.send)
            return PlainTextResponse(repr(same))

    assert test_client_factory(Channels).get("/").text == "(True, True)"


def test_http_endpoint_requires_http_scope() -> None:
    with pytest.raises(AssertionError):
        HTTPEndpoint({"type": "websocket"}, None, None)  # type: ignore[arg-type]


def test_http_endpoint_attributes() -> None:
    async def receive() -> Message:
        raise AssertionError("unused")  # pragma: no cover (never called)

    async def send(message: Message) -> None:
        raise AssertionError("unused")  # pragma: no cover (never called)

    scope = {"type": "http", "method": "GET"}
    endpoint = make_endpoint("post")(scope, receive, send)
    assert (endpoint.scope, endpoint.receive, endpoint.send) == (scope, receive, send)
    assert endpoint._allowed_methods == ["POST"]


# -- WebSocketEndpoint -----------------------------------------------------------------------


class Recorder(WebSocketEndpoint):
    """Echoes what it receives as JSON, and records every event in ``events``."""

    events: list[Any]

    async def on_connect(self, websocket: WebSocket[Any]) -> None:
        self.events.append("connect")
        await super().on_connect(websocket)

    async def on_receive(self, websocket: WebSocket[Any], data: Any) -> None:
        self.events.append(("receive", data))
        await websocket.send_json({"echo": repr(data)})

    async def on_disconnect(self, websocket: WebSocket[Any], close_code: int) -> None:
        self.events.append(("disconnect", close_code))
        await super().on_disconnect(websocket, close_code)


def recorder(encoding: str | None, events: list[Any], **extra: Any) -> type[WebSocketEndpoint]:
    namespace = {"encoding": encoding, "events": events, **extra}
    return type("Endpoint", (Recorder,), namespace)


@pytest.mark.parametrize(
    ("encoding", "frames", "received"),
    [
        (None, ["a", b"b"], ["a", b"b"]),
        ("text", ["a", ""], ["a", ""]),
        ("bytes", [b"a", b""], [b"a", b""]),
        ("json", ['{"a": 1}', b"[2]", "null"], [{"a": 1}, [2], None]),
    ],
)
def test_websocket_endpoint_receives(
    test_client_factory: TestClientFactory,
    encoding: str | None,
    frames: list[str | bytes],
    received: list[Any],
) -> None:
    events: list[Any] = []
    client = test_client_factory(recorder(encoding, events))
    with client.websocket_connect("/") as websocket:
        for frame in frames:
            if isinstance(frame, bytes):
                websocket.send_bytes(frame)
            else:
                websocket.send_text(frame)
            websocket.receive_json()
        websocket.close(1001)
    expected = ["connect", *(("receive", data) for data in received), ("disconnect", 1001)]
    assert events == expected


def test_websocket_endpoint_route(test_client_factory: TestClientFactory) -> None:
    events: list[Any] = []
    app = Starlette(routes=[WebSocketRoute("/ws", recorder("text", events))])
    with test_client_factory(app).websocket_connect("/ws") as websocket:
        websocket.send_text("hi")
        assert websocket.receive_json() == {"echo": "'hi'"}
    assert events == ["connect", ("receive", "hi"), ("disconnect", 1000)]


@pytest.mark.parametrize(
    ("encoding", "frame", "error"),
    [
        ("text", b"x", "Expected text websocket messages, but got bytes"),
        ("bytes", "x", "Expected bytes websocket messages, but got text"),
        ("json", "{bad", "Malformed JSON data received."),
        ("json", b"{bad", "Malformed JSON data received."),
        ("json", "", "Malformed JSON data received."),
        ("json", b"\xff", "Malformed JSON data received."),
        ("json", "[" * 100_000, "Malformed JSON data received."),
    ],
)
def test_websocket_endpoint_bad_frames_close_1003(
    test_client_factory: TestClientFactory, encoding: str, frame: str | bytes, error: str
) -> None:
    events: list[Any] = []
    client = test_client_factory(recorder(encoding, events))
    with pytest.raises(RuntimeError) as info:  # noqa: SIM117
        with client.websocket_connect("/") as websocket:
            if isinstance(frame, bytes):
                websocket.send_bytes(frame)
            else:
                websocket.send_text(frame)
            websocket.receive()
    assert str(info.value) == error
    assert events == ["connect", ("disconnect", status.WS_1011_INTERNAL_ERROR)]


def test_websocket_endpoint_unsupported_encoding(test_client_factory: TestClientFactory) -> None:
    events: list[Any] = []
    client = test_client_factory(recorder("yaml", events))
    with pytest.raises(AssertionError, match="Unsupported 'encoding' attribute yaml"):  # noqa: SIM117
        with client.websocket_connect("/") as websocket:
            websocket.send_text("x")
            websocket.receive()
    assert events == ["connect", ("disconnect", 1011)]


def test_websocket_endpoint_close_without_messages(test_client_factory: TestClientFactory) -> None:
    events: list[Any] = []
    with test_client_factory(recorder("yaml", events)).websocket_connect("/") as websocket:
        websocket.close(4000)
    assert events == ["connect", ("disconnect", 4000)]


def test_websocket_endpoint_default_handlers(test_client_factory: TestClientFactory) -> None:
    with test_client_factory(WebSocketEndpoint).websocket_connect("/") as websocket:
        websocket.send_text("ignored")
        websocket.send_bytes(b"ignored")


def test_websocket_endpoint_on_receive_error(test_client_factory: TestClientFactory) -> None:
    events: list[Any] = []

    async def on_receive(self: WebSocketEndpoint, websocket: WebSocket[Any], data: Any) -> None:
        raise ValueError("boom")

    client = test_client_factory(recorder(None, events, on_receive=on_receive))
    with pytest.raises(ValueError, match="boom"):  # noqa: SIM117
        with client.websocket_connect("/") as websocket:
            websocket.send_text("x")
            websocket.receive()
    assert events == ["connect", ("disconnect", 1011)]


def test_websocket_endpoint_on_connect_error(test_client_factory: TestClientFactory) -> None:
    events: list[Any] = []

    async def on_connect(self: WebSocketEndpoint, websocket: WebSocket[Any]) -> None:
        raise ValueError("connect failed")

    client = test_client_factory(recorder(None, events, on_connect=on_connect))
    with pytest.raises(ValueError, match="connect failed"), client.websocket_connect("/"):
        pass  # pragma: no cover (the connection fails)
    assert events == []  # on_disconnect is not called when on_connect fails


def test_websocket_endpoint_on_connect_may_refuse(test_client_factory: TestClientFactory) -> None:
    events: list[Any] = []

    async def on_connect(self: WebSocketEndpoint, websocket: WebSocket[Any]) -> None:
        await websocket.close(4001, "go away")

    client = test_client_factory(recorder(None, events, on_connect=on_connect))
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/"):
        pass  # pragma: no cover (the connection is refused)
    assert (info.value.code, info.value.reason) == (4001, "go away")


def test_websocket_endpoint_on_disconnect_error(test_client_factory: TestClientFactory) -> None:
    async def on_disconnect(self: WebSocketEndpoint, websocket: WebSocket[Any], code: int) -> None:
        raise ValueError("disconnect failed")

    client = test_client_factory(recorder(None, [], on_disconnect=on_disconnect))
    with pytest.raises(ValueError, match="disconnect failed"):  # noqa: SIM117
        with client.websocket_connect("/") as websocket:
            websocket.close()


def test_websocket_endpoint_raising_disconnect(test_client_factory: TestClientFactory) -> None:
    events: list[Any] = []

    async def on_receive(self: WebSocketEndpoint, websocket: WebSocket[Any], data: Any) -> None:
        raise WebSocketDisconnect(4002)

    client = test_client_factory(recorder(None, events, on_receive=on_receive))
    with pytest.raises(WebSocketDisconnect) as info:  # noqa: SIM117
        with client.websocket_connect("/") as websocket:
            websocket.send_text("x")
            websocket.receive()
    assert info.value.code == 4002
    assert events == ["connect", ("disconnect", 1011)]


def test_websocket_endpoint_requires_websocket_scope() -> None:
    with pytest.raises(AssertionError):
        WebSocketEndpoint({"type": "http"}, None, None)  # type: ignore[arg-type]


# -- WebSocketEndpoint driven by hand (messages the test client cannot produce) ---------------


def scripted(*incoming: Message) -> tuple[Receive, Send, list[Message]]:
    messages = list(incoming)
    sent: list[Message] = []

    async def receive() -> Message:
        assert messages, "the endpoint read past the scripted messages"
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    return receive, send, sent


CONNECT: Message = {"type": "websocket.connect"}
ACCEPT: Message = {"type": "websocket.accept", "subprotocol": None, "headers": []}
CLOSE_1003: Message = {"type": "websocket.close", "code": 1003, "reason": ""}


def receive_message(**fields: Any) -> Message:
    return {"type": "websocket.receive", **fields}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("encoding", "fields", "expected"),
    [
        (None, {"text": "1", "bytes": b"2"}, "1"),
        (None, {"text": None, "bytes": b"2"}, b"2"),
        ("text", {"text": "", "bytes": b"1"}, ""),
        ("bytes", {"text": "1", "bytes": b""}, b""),
        ("json", {"text": "1", "bytes": b"2"}, 1),
        ("json", {"text": None, "bytes": b"2"}, 2),
    ],
)
async def test_decode_picks_the_field(
    encoding: str | None, fields: dict[str, Any], expected: Any
) -> None:
    events: list[Any] = []
    receive, send, sent = scripted(CONNECT, receive_message(**fields), {"type": "x"})
    endpoint = recorder(encoding, events)({"type": "websocket"}, receive, send)
    with pytest.raises(RuntimeError, match="but got 'x'"):
        await endpoint
    assert events == ["connect", ("receive", expected), ("disconnect", 1011)]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("encoding", "fields", "error"),
    [
        ("text", {"text": None, "bytes": b"1"}, RuntimeError),
        ("text", {}, RuntimeError),
        ("bytes", {"bytes": None, "text": "1"}, RuntimeError),
        ("json", {"text": "", "bytes": b"1"}, RuntimeError),
        ("json", {}, KeyError),
        (None, {}, KeyError),
    ],
)
async def test_decode_bad_messages(
    encoding: str | None, fields: dict[str, Any], error: type[Exception]
) -> None:
    events: list[Any] = []
    receive, send, sent = scripted(CONNECT, receive_message(**fields))
    with pytest.raises(error):
        await recorder(encoding, events)({"type": "websocket"}, receive, send)
    assert events == ["connect", ("disconnect", 1011)]
    assert sent == ([ACCEPT, CLOSE_1003] if error is RuntimeError else [ACCEPT])


@pytest.mark.anyio
async def test_decode_json_error_chains_the_cause() -> None:
    receive, send, _ = scripted(CONNECT, receive_message(bytes=b"\xff"))
    with pytest.raises(RuntimeError) as info:
        await recorder("json", [])({"type": "websocket"}, receive, send)
    assert isinstance(info.value.__cause__, UnicodeDecodeError)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("disconnect", "code"),
    [
        ({"type": "websocket.disconnect", "code": 1001}, 1001),
        ({"type": "websocket.disconnect"}, 1000),
        ({"type": "websocket.disconnect", "code": None}, 1000),
    ],
)
async def test_disconnect_codes(disconnect: Message, code: int) -> None:
    events: list[Any] = []
    receive, send, _ = scripted(CONNECT, disconnect)
    await recorder(None, events)({"type": "websocket"}, receive, send)
    assert events == ["connect", ("disconnect", code)]


@pytest.mark.anyio
async def test_receive_after_on_connect_closed() -> None:
    # The client may still send before it sees the close; the endpoint keeps reading.
    events: list[Any] = []

    async def on_connect(self: WebSocketEndpoint, websocket: WebSocket[Any]) -> None:
        await websocket.close(4001)

    async def on_receive(self: WebSocketEndpoint, websocket: WebSocket[Any], data: Any) -> None:
        events.append(("receive", data))

    receive, send, sent = scripted(
        CONNECT, receive_message(text="x"), {"type": "websocket.disconnect", "code": 1000}
    )
    endpoint = recorder(None, events, on_connect=on_connect, on_receive=on_receive)
    await endpoint({"type": "websocket"}, receive, send)
    assert events == [("receive", "x"), ("disconnect", 1000)]
    assert sent == [{"type": "websocket.close", "code": 4001, "reason": ""}]


@pytest.mark.anyio
async def test_bad_frame_after_app_closed() -> None:
    async def on_connect(self: WebSocketEndpoint, websocket: WebSocket[Any]) -> None:
        await websocket.close()

    receive, send, _ = scripted(CONNECT, receive_message(bytes=b"x"))
    with pytest.raises(WebSocketDisconnected):
        await recorder("text", [], on_connect=on_connect)({"type": "websocket"}, receive, send)


@pytest.mark.anyio
async def test_client_disconnecting_first() -> None:
    receive, send, sent = scripted({"type": "websocket.disconnect", "code": 1001})
    events: list[Any] = []
    with pytest.raises(RuntimeError, match='Expected ASGI message "websocket.connect"'):
        await recorder(None, events)({"type": "websocket"}, receive, send)
    assert events == ["connect"]
    assert sent == []


@pytest.mark.anyio
async def test_cancelled_endpoint_reports_disconnect() -> None:
    events: list[Any] = []
    messages: Iterator[Message] = iter([CONNECT])

    async def receive() -> Message:
        for message in messages:
            return message
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover (sleeps until cancelled)

    async def send(message: Message) -> None:
        pass

    with anyio.move_on_after(0.01):
        await recorder(None, events)({"type": "websocket"}, receive, send)
    assert events == ["connect", ("disconnect", 1000)]


def test_websocket_endpoint_attributes() -> None:
    async def receive() -> Message:
        raise AssertionError("unused")  # pragma: no cover (never called)

    async def send(message: Message) -> None:
        raise AssertionError("unused")  # pragma: no cover (never called)

    endpoint = WebSocketEndpoint({"type": "websocket"}, receive, send)
    assert (endpoint.receive, endpoint.send, endpoint.encoding) == (receive, send, None)


# -- any frames: on_disconnect runs exactly once, with 1011 when something escaped --------------

FRAMES = st.sampled_from(
    [
        receive_message(text="1"),
        receive_message(text="{bad"),
        receive_message(text="[" * 5000),
        receive_message(bytes=b"2"),
        receive_message(bytes=b"\xff\xfe"),
        receive_message(text=None, bytes=b"3"),
        receive_message(),
        {"type": "websocket.disconnect", "code": 1001},
        {"type": "websocket.disconnect"},
        CONNECT,
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([None, "text", "bytes", "json"]), st.lists(FRAMES, max_size=6))
def test_websocket_endpoint_any_frames(encoding: str | None, frames: list[Message]) -> None:
    async def main() -> None:
        events: list[Any] = []
        # A client that goes quiet is modelled as a disconnect without a code.
        receive, send, sent = scripted(CONNECT, *frames, {"type": "websocket.disconnect"})
        endpoint = recorder(encoding, events)({"type": "websocket"}, receive, send)
        try:
            await endpoint
        except (RuntimeError, KeyError) as exc:
            assert events[-1] == ("disconnect", 1011)
            if "websocket messages" in str(exc) or "Malformed JSON" in str(exc):
                assert sent[-1] == CLOSE_1003
        else:
            assert events[-1][0] == "disconnect"
            assert events[-1][1] in (1000, 1001)
        assert events[0] == "connect"
        assert [event for event in events if event[0] == "disconnect"] == [events[-1]]

    anyio.run(main)
