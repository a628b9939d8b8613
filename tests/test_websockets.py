from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from starling import status
from starling.responses import PlainTextResponse, Response
from starling.types import Message, Receive, Scope, Send
from starling.websockets import (
    WebSocket,
    WebSocketClose,
    WebSocketDisconnect,
    WebSocketDisconnected,
    WebSocketState,
)
from tests.types import TestClientFactory

CONNECT: Message = {"type": "websocket.connect"}
ACCEPTED: Message = {"type": "websocket.accept", "subprotocol": None, "headers": []}
DENIAL: dict[str, Any] = {"websocket.http.response": {}}


def text(data: str) -> Message:
    return {"type": "websocket.receive", "text": data}


def binary(data: bytes) -> Message:
    return {"type": "websocket.receive", "bytes": data}


def disconnect(code: int = 1000, reason: str | None = None) -> Message:
    return {"type": "websocket.disconnect", "code": code, "reason": reason}


class Peer:
    """A scripted server side: hands out ``incoming`` in order and records what is sent.

    Reading past the script fails the test at once instead of hanging it.
    """

    def __init__(self, *incoming: Message, send_error: BaseException | None = None) -> None:
        self.incoming = list(incoming)
        self.sent: list[Message] = []
        self.send_error = send_error

    async def receive(self) -> Message:
        assert self.incoming, "the app read past the scripted messages"
        return self.incoming.pop(0)

    async def send(self, message: Message) -> None:
        if self.send_error is not None and message["type"] != "websocket.accept":
            raise self.send_error
        self.sent.append(message)


def make(*incoming: Message, send_error: BaseException | None = None, **scope: Any) -> Any:
    peer = Peer(*incoming, send_error=send_error)
    websocket: WebSocket[Any] = WebSocket(
        {"type": "websocket", "path": "/", "headers": [], **scope}, peer.receive, peer.send
    )
    return websocket, peer


def states(websocket: WebSocket[Any]) -> tuple[WebSocketState, WebSocketState]:
    return websocket.client_state, websocket.application_state


# -- the small public classes --------------------------------------------------------------


def test_websocket_state_members() -> None:
    assert [(state.name, state.value) for state in WebSocketState] == [
        ("CONNECTING", 0),
        ("CONNECTED", 1),
        ("DISCONNECTED", 2),
        ("RESPONSE", 3),
    ]


def test_websocket_disconnect_defaults() -> None:
    exc = WebSocketDisconnect()
    assert (exc.code, exc.reason, exc.args) == (1000, "", ())


def test_websocket_disconnect_values() -> None:
    exc = WebSocketDisconnect(1001, "bye")
    assert (exc.code, exc.reason, exc.args) == (1001, "bye", (1001, "bye"))
    assert WebSocketDisconnect(1002, None).reason == ""
    assert WebSocketDisconnect(reason="why").code == 1000


def test_websocket_disconnected_is_a_runtime_error() -> None:
    assert issubclass(WebSocketDisconnected, RuntimeError)
    assert not issubclass(WebSocketDisconnected, WebSocketDisconnect)


@pytest.mark.anyio
async def test_websocket_close_app() -> None:
    peer = Peer()
    await WebSocketClose()({"type": "websocket"}, peer.receive, peer.send)
    await WebSocketClose(4001, None)({"type": "websocket"}, peer.receive, peer.send)
    await WebSocketClose(4002, "r")({"type": "websocket"}, peer.receive, peer.send)
    assert peer.sent == [
        {"type": "websocket.close", "code": 1000, "reason": ""},
        {"type": "websocket.close", "code": 4001, "reason": ""},
        {"type": "websocket.close", "code": 4002, "reason": "r"},
    ]


def test_websocket_close_attributes() -> None:
    close = WebSocketClose(4000, "x")
    assert (close.code, close.reason) == (4000, "x")


def test_websocket_requires_websocket_scope() -> None:
    peer = Peer()
    with pytest.raises(AssertionError):
        WebSocket({"type": "http"}, peer.receive, peer.send)
    with pytest.raises(KeyError):
        WebSocket({}, peer.receive, peer.send)


def test_websocket_initial_state() -> None:
    websocket, _ = make()
    assert states(websocket) == (WebSocketState.CONNECTING, WebSocketState.CONNECTING)


# -- receive(): the client side of the state machine ----------------------------------------


@pytest.mark.anyio
async def test_receive_connect_then_messages() -> None:
    websocket, _ = make(CONNECT, text("a"), disconnect(1005))
    assert await websocket.receive() == CONNECT
    assert states(websocket)[0] is WebSocketState.CONNECTED
    assert await websocket.receive() == text("a")
    assert await websocket.receive() == disconnect(1005)
    assert websocket.client_state is WebSocketState.DISCONNECTED


@pytest.mark.anyio
@pytest.mark.parametrize("first", [text("x"), disconnect(1001)])
async def test_receive_first_message_must_be_connect(first: Message) -> None:
    websocket, _ = make(first)
    expected = f"Expected ASGI message \"websocket.connect\", but got '{first['type']}'"
    with pytest.raises(RuntimeError) as info:
        await websocket.receive()
    assert str(info.value) == expected
    assert type(info.value) is RuntimeError
    assert websocket.client_state is WebSocketState.CONNECTING


@pytest.mark.anyio
@pytest.mark.parametrize("second", [CONNECT, {"type": "bogus"}])
async def test_receive_rejects_unexpected_message_once_connected(second: Message) -> None:
    websocket, _ = make(CONNECT, second)
    await websocket.receive()
    with pytest.raises(RuntimeError) as info:
        await websocket.receive()
    assert str(info.value) == (
        'Expected ASGI message "websocket.receive" or "websocket.disconnect", '
        f"but got {second['type']!r}"
    )


@pytest.mark.anyio
async def test_receive_after_disconnect() -> None:
    websocket, peer = make(CONNECT, disconnect(), CONNECT)
    await websocket.receive()
    await websocket.receive()
    with pytest.raises(WebSocketDisconnected) as info:
        await websocket.receive()
    assert str(info.value) == 'Cannot call "receive" once a disconnect message has been received.'
    assert peer.incoming == [CONNECT]  # the server was not asked again


@pytest.mark.anyio
async def test_receive_message_without_type() -> None:
    websocket, _ = make({})
    with pytest.raises(KeyError):
        await websocket.receive()


# -- send(): the application side of the state machine --------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("message", "state"),
    [
        ({"type": "websocket.accept"}, WebSocketState.CONNECTED),
        ({"type": "websocket.close"}, WebSocketState.DISCONNECTED),
        ({"type": "websocket.close", "code": 1001, "reason": "r"}, WebSocketState.DISCONNECTED),
        ({"type": "websocket.http.response.start", "status": 403}, WebSocketState.RESPONSE),
    ],
)
async def test_send_opening_messages(message: Message, state: WebSocketState) -> None:
    websocket, peer = make()
    await websocket.send(message)
    assert peer.sent == [message]
    assert states(websocket) == (WebSocketState.CONNECTING, state)


@pytest.mark.anyio
@pytest.mark.parametrize("message_type", ["websocket.send", "websocket.http.response.body", "x"])
async def test_send_rejects_message_while_connecting(message_type: str) -> None:
    websocket, peer = make(CONNECT)
    with pytest.raises(RuntimeError) as info:
        await websocket.send({"type": message_type})
    assert str(info.value) == (
        'Expected ASGI message "websocket.accept", "websocket.close" or '
        f'"websocket.http.response.start", but got {message_type!r}'
    )
    assert peer.sent == []
    assert websocket.application_state is WebSocketState.CONNECTING


@pytest.mark.anyio
@pytest.mark.parametrize(
    "message_type", ["websocket.accept", "websocket.http.response.start", "websocket.bogus"]
)
async def test_send_rejects_message_once_connected(message_type: str) -> None:
    websocket, peer = make(CONNECT, extensions=DENIAL)
    await websocket.accept()
    with pytest.raises(RuntimeError) as info:
        await websocket.send({"type": message_type})
    assert str(info.value) == (
        f'Expected ASGI message "websocket.send" or "websocket.close", but got {message_type!r}'
    )
    assert peer.sent == [ACCEPTED]
    assert websocket.application_state is WebSocketState.CONNECTED


@pytest.mark.anyio
async def test_send_after_close() -> None:
    websocket, peer = make(CONNECT)
    await websocket.accept()
    await websocket.close()
    for _ in range(2):
        with pytest.raises(WebSocketDisconnected) as info:
            await websocket.send_text("x")
        assert str(info.value) == 'Cannot call "send" once a close message has been sent.'
    with pytest.raises(WebSocketDisconnected):
        await websocket.close()
    assert peer.sent == [ACCEPTED, {"type": "websocket.close", "code": 1000, "reason": ""}]


@pytest.mark.anyio
async def test_send_message_without_type() -> None:
    websocket, _ = make()
    with pytest.raises(KeyError):
        await websocket.send({})


@pytest.mark.anyio
@pytest.mark.parametrize("error", [OSError("gone"), ConnectionResetError("reset")])
@pytest.mark.parametrize("operation", ["send_text", "close"])
async def test_send_os_error_once_connected_is_abnormal_closure(
    error: OSError, operation: str
) -> None:
    websocket, _ = make(CONNECT, send_error=error)
    await websocket.accept()
    with pytest.raises(WebSocketDisconnect) as info:
        if operation == "close":
            await websocket.close()
        else:
            await websocket.send_text("x")
    assert info.value.code == status.WS_1006_ABNORMAL_CLOSURE
    assert info.value.__context__ is error
    assert websocket.application_state is WebSocketState.DISCONNECTED
    with pytest.raises(WebSocketDisconnected):
        await websocket.send_text("x")


@pytest.mark.anyio
async def test_send_other_error_once_connected_propagates() -> None:
    error = ValueError("boom")
    websocket, _ = make(CONNECT, send_error=error)
    await websocket.accept()
    with pytest.raises(ValueError) as info:
        await websocket.send_text("x")
    assert info.value is error
    assert websocket.application_state is WebSocketState.CONNECTED


@pytest.mark.anyio
async def test_send_os_error_while_connecting_propagates() -> None:
    websocket, _ = make(send_error=OSError("gone"))
    with pytest.raises(OSError, match="gone"):
        await websocket.close()
    assert websocket.application_state is WebSocketState.DISCONNECTED


# -- accept() and close() --------------------------------------------------------------------


@pytest.mark.anyio
async def test_accept_reads_connect_first() -> None:
    websocket, peer = make(CONNECT)
    await websocket.accept()
    assert peer.sent == [ACCEPTED]
    assert states(websocket) == (WebSocketState.CONNECTED, WebSocketState.CONNECTED)


@pytest.mark.anyio
async def test_accept_after_receiving_connect() -> None:
    websocket, peer = make(CONNECT)
    assert await websocket.receive() == CONNECT
    await websocket.accept("chat", [(b"x-a", b"1")])
    expected = {"type": "websocket.accept", "subprotocol": "chat", "headers": [(b"x-a", b"1")]}
    assert peer.sent == [expected]


@pytest.mark.anyio
async def test_accept_passes_headers_through() -> None:
    websocket, peer = make(CONNECT)
    headers = ((b"a", b"b"),)
    await websocket.accept(headers=headers)
    assert peer.sent[0]["headers"] is headers


@pytest.mark.anyio
async def test_accept_when_client_disconnected_first() -> None:
    websocket, peer = make(disconnect(1006))
    with pytest.raises(RuntimeError, match="websocket.connect"):
        await websocket.accept()
    assert peer.sent == []


@pytest.mark.anyio
async def test_accept_twice() -> None:
    websocket, peer = make(CONNECT)
    await websocket.accept()
    with pytest.raises(RuntimeError, match="but got 'websocket.accept'"):
        await websocket.accept()
    assert peer.sent == [ACCEPTED]


@pytest.mark.anyio
async def test_close_before_accept() -> None:
    websocket, peer = make(CONNECT)
    await websocket.close(1001, "why")
    assert peer.sent == [{"type": "websocket.close", "code": 1001, "reason": "why"}]
    assert states(websocket) == (WebSocketState.CONNECTING, WebSocketState.DISCONNECTED)


@pytest.mark.anyio
async def test_receive_after_close_still_reads_the_client() -> None:
    websocket, _ = make(CONNECT, disconnect(1000))
    await websocket.accept()
    await websocket.close()
    assert await websocket.receive() == disconnect(1000)
    with pytest.raises(WebSocketDisconnected, match='Need to call "accept" first'):
        await websocket.receive_text()


# -- receive_text / receive_bytes / receive_json ---------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["receive_text", "receive_bytes", "receive_json"])
async def test_receive_data_needs_accept(method: str) -> None:
    websocket, peer = make(CONNECT, text("1"))
    with pytest.raises(WebSocketDisconnected) as info:
        await getattr(websocket, method)()
    assert str(info.value) == 'WebSocket is not connected. Need to call "accept" first.'
    assert len(peer.incoming) == 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "message", "expected"),
    [
        ("receive_text", text("1"), "1"),
        ("receive_text", {"type": "websocket.receive", "text": "2", "bytes": b"1"}, "2"),
        ("receive_bytes", binary(b"1"), b"1"),
        ("receive_bytes", {"type": "websocket.receive", "text": "2", "bytes": b"1"}, b"1"),
        ("receive_json", text('{"a": [1]}'), {"a": [1]}),
        ("receive_json", text("NaN"), pytest.approx(float("nan"), nan_ok=True)),
    ],
)
async def test_receive_data(method: str, message: Message, expected: Any) -> None:
    websocket, _ = make(CONNECT, message)
    await websocket.accept()
    assert await getattr(websocket, method)() == expected


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "message", "key"),
    [
        ("receive_text", binary(b"1"), "text"),
        ("receive_bytes", text("1"), "bytes"),
        ("receive_json", binary(b"1"), "text"),
    ],
)
async def test_receive_data_of_the_other_kind(method: str, message: Message, key: str) -> None:
    websocket, _ = make(CONNECT, message)
    await websocket.accept()
    with pytest.raises(KeyError, match=key):
        await getattr(websocket, method)()


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["receive_text", "receive_bytes", "receive_json"])
async def test_receive_data_raises_on_disconnect(method: str) -> None:
    websocket, _ = make(CONNECT, disconnect(1001, "gone"))
    await websocket.accept()
    with pytest.raises(WebSocketDisconnect) as info:
        await getattr(websocket, method)()
    assert (info.value.code, info.value.reason) == (1001, "gone")
    assert websocket.client_state is WebSocketState.DISCONNECTED


@pytest.mark.anyio
async def test_receive_data_disconnect_without_reason() -> None:
    websocket, _ = make(CONNECT, disconnect(1002))
    await websocket.accept()
    with pytest.raises(WebSocketDisconnect) as info:
        await websocket.receive_text()
    assert (info.value.code, info.value.reason) == (1002, "")


def test_raise_on_disconnect_ignores_other_messages() -> None:
    websocket, _ = make()
    websocket._raise_on_disconnect(text("x"))
    with pytest.raises(WebSocketDisconnect):
        websocket._raise_on_disconnect(disconnect())


@pytest.mark.anyio
async def test_receive_data_disconnect_without_code_is_1005() -> None:
    # Starlette raises KeyError('code'); ASGI says a missing close code means 1005.
    websocket, _ = make(CONNECT, {"type": "websocket.disconnect"})
    await websocket.accept()
    with pytest.raises(WebSocketDisconnect) as info:
        await websocket.receive_bytes()
    assert info.value.code == status.WS_1005_NO_STATUS_RCVD


@pytest.mark.anyio
async def test_receive_json_binary_mode() -> None:
    websocket, _ = make(CONNECT, binary('{"é": 1}'.encode()), text("1"))
    await websocket.accept()
    assert await websocket.receive_json(mode="binary") == {"é": 1}
    with pytest.raises(KeyError, match="bytes"):
        await websocket.receive_json("binary")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("mode", "message", "error"),
    [
        ("text", text("{"), json.JSONDecodeError),
        ("text", text(""), json.JSONDecodeError),
        ("binary", binary(b"{"), json.JSONDecodeError),
        ("binary", binary(b"\xff"), UnicodeDecodeError),
        ("binary", binary('{"a":1}'.encode("utf-16")), UnicodeDecodeError),
        ("binary", binary(b'\xef\xbb\xbf{"a":1}'), json.JSONDecodeError),
        ("text", {"type": "websocket.receive", "text": None, "bytes": b"1"}, TypeError),
    ],
)
async def test_receive_json_bad_input(mode: str, message: Message, error: type[Exception]) -> None:
    websocket, _ = make(CONNECT, message)
    await websocket.accept()
    with pytest.raises(error):
        await websocket.receive_json(mode)


@pytest.mark.anyio
async def test_receive_json_bad_mode_checked_before_anything() -> None:
    websocket, peer = make(CONNECT)
    with pytest.raises(RuntimeError) as info:
        await websocket.receive_json("other")
    assert str(info.value) == 'The "mode" argument should be "text" or "binary".'
    assert peer.incoming == [CONNECT]


# -- iter_* ----------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "expected"),
    [("iter_text", ["1", "3"]), ("iter_bytes", [b"2", b"4"]), ("iter_json", [1, 3])],
)
async def test_iter_until_disconnect(method: str, expected: list[Any]) -> None:
    messages = [{"type": "websocket.receive", "text": t, "bytes": b} for t, b in [("1", b"2")]]
    messages.append({"type": "websocket.receive", "text": "3", "bytes": b"4"})
    websocket, _ = make(CONNECT, *messages, disconnect(1001))
    await websocket.accept()
    assert [item async for item in getattr(websocket, method)()] == expected
    assert states(websocket) == (WebSocketState.DISCONNECTED, WebSocketState.CONNECTED)


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["iter_text", "iter_bytes", "iter_json"])
async def test_iter_needs_accept(method: str) -> None:
    websocket, _ = make(CONNECT)
    with pytest.raises(WebSocketDisconnected):
        async for _ in getattr(websocket, method)():
            pass  # pragma: no cover (the iterator fails before yielding)


# -- send_text / send_bytes / send_json ------------------------------------------------------


@pytest.mark.anyio
async def test_send_data() -> None:
    websocket, peer = make(CONNECT)
    await websocket.accept()
    await websocket.send_text("é")
    await websocket.send_bytes(b"b")
    await websocket.send_json({"b": 1, "a": "é"})
    await websocket.send_json([1], "binary")
    await websocket.send_json(float("nan"))
    assert peer.sent[1:] == [
        {"type": "websocket.send", "text": "é"},
        {"type": "websocket.send", "bytes": b"b"},
        {"type": "websocket.send", "text": '{"b":1,"a":"é"}'},
        {"type": "websocket.send", "bytes": b"[1]"},
        {"type": "websocket.send", "text": "NaN"},
    ]


@pytest.mark.anyio
async def test_send_json_bad_mode_and_bad_data() -> None:
    websocket, peer = make(CONNECT)
    await websocket.accept()
    with pytest.raises(RuntimeError, match='The "mode" argument should be "text" or "binary".'):
        await websocket.send_json(object(), "other")
    with pytest.raises(TypeError, match="not JSON serializable"):
        await websocket.send_json(object())
    assert peer.sent == [ACCEPTED]


@pytest.mark.anyio
async def test_send_text_before_accept() -> None:
    websocket, peer = make(CONNECT)
    with pytest.raises(RuntimeError, match="but got 'websocket.send'"):
        await websocket.send_text("x")
    assert peer.sent == []


# -- the denial response extension -----------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("scope", [{}, {"extensions": {}}, {"extensions": None}])
async def test_denial_response_unsupported(scope: dict[str, Any]) -> None:
    websocket, peer = make(CONNECT, **scope)
    with pytest.raises(RuntimeError) as info:
        await websocket.send_denial_response(PlainTextResponse("no", 403))
    assert str(info.value) == "The server doesn't support the Websocket Denial Response extension."
    assert peer.sent == []


@pytest.mark.anyio
async def test_denial_response() -> None:
    websocket, peer = make(CONNECT, extensions=DENIAL)
    await websocket.send_denial_response(PlainTextResponse("no", 403))
    assert peer.sent == [
        {
            "type": "websocket.http.response.start",
            "status": 403,
            "headers": [(b"content-length", b"2"), (b"content-type", b"text/plain; charset=utf-8")],
        },
        {"type": "websocket.http.response.body", "body": b"no"},
    ]
    assert states(websocket) == (WebSocketState.CONNECTING, WebSocketState.DISCONNECTED)
    with pytest.raises(WebSocketDisconnected, match='Cannot call "send"'):
        await websocket.send({"type": "websocket.http.response.body", "body": b""})


@pytest.mark.anyio
async def test_denial_response_gets_the_state_machine() -> None:
    seen: list[Any] = []

    class Spy(Response):
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            seen.extend([receive, send])

    websocket, _ = make(CONNECT, extensions=DENIAL)
    await websocket.send_denial_response(Spy())
    assert seen == [websocket.receive, websocket.send]


@pytest.mark.anyio
async def test_denial_response_after_accept() -> None:
    websocket, _ = make(CONNECT, extensions=DENIAL)
    await websocket.accept()
    with pytest.raises(RuntimeError, match="but got 'websocket.http.response.start'"):
        await websocket.send_denial_response(PlainTextResponse("no", 403))


@pytest.mark.anyio
async def test_response_state_accepts_only_body() -> None:
    websocket, peer = make(CONNECT, disconnect(), extensions=DENIAL)
    await websocket.send({"type": "websocket.http.response.start", "status": 403, "headers": []})
    more: Message = {"type": "websocket.http.response.body", "body": b"x", "more_body": True}
    await websocket.send(more)
    assert states(websocket)[1] is WebSocketState.RESPONSE
    with pytest.raises(RuntimeError) as info:
        await websocket.send_text("x")
    assert str(info.value) == (
        "Expected ASGI message \"websocket.http.response.body\", but got 'websocket.send'"
    )
    await websocket.send({"type": "websocket.http.response.body", "body": b""})
    assert websocket.application_state is WebSocketState.DISCONNECTED
    assert await websocket.receive() == CONNECT
    assert await websocket.receive() == disconnect()
    assert len(peer.sent) == 3


# -- the connection details it inherits -------------------------------------------------------


def test_websocket_is_an_http_connection() -> None:
    websocket, _ = make(query_string=b"a=1", headers=[(b"x-h", b"v")], server=("h", 80))
    websocket.scope["scheme"] = "ws"
    assert websocket.query_params["a"] == "1"
    assert websocket.headers["x-h"] == "v"
    assert str(websocket.url) == "ws://h/?a=1"
    assert websocket["type"] == "websocket"


# -- through the test client --------------------------------------------------------------


def test_client_echo_and_details(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket: WebSocket[Any] = WebSocket(scope, receive, send)
        await websocket.accept(subprotocol="p2", headers=[(b"x-s", b"1")])
        await websocket.send_json(
            {
                "url": str(websocket.url),
                "query": dict(websocket.query_params),
                "header": websocket.headers.get("x-h"),
                "subprotocols": scope["subprotocols"],
                "client": list(websocket.client or ()),
            }
        )
        async for message in websocket.iter_text():
            await websocket.send_text(message[::-1])
        await websocket.close()

    client = test_client_factory(app)
    with client.websocket_connect("/x?a=1", subprotocols=["p1", "p2"], headers={"X-H": "v"}) as ws:
        assert ws.receive_json() == {
            "url": "ws://testserver/x?a=1",
            "query": {"a": "1"},
            "header": "v",
            "subprotocols": ["p1", "p2"],
            "client": ["testclient", 50000],
        }
        assert ws.accepted_subprotocol == "p2"
        assert ws.extra_headers == [(b"x-s", b"1")]
        ws.send_text("abc")
        assert ws.receive_text() == "cba"


def test_client_bytes_and_json(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket: WebSocket[Any] = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.send_bytes(await websocket.receive_bytes())
        await websocket.send_json(await websocket.receive_json(), mode="binary")
        await websocket.send_json(await websocket.receive_json(mode="binary"))
        await websocket.close()

    client = test_client_factory(app)
    with client.websocket_connect("/") as ws:
        ws.send_bytes(b"\x00\xff")
        assert ws.receive_bytes() == b"\x00\xff"
        ws.send_json({"a": "é"})
        assert ws.receive_json(mode="binary") == {"a": "é"}
        ws.send_json([1, 2], mode="binary")
        assert ws.receive_json() == [1, 2]


def test_client_close_reaches_the_app(test_client_factory: TestClientFactory) -> None:
    closed: list[tuple[int, str]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket: WebSocket[Any] = WebSocket(scope, receive, send)
        await websocket.accept()
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as exc:
            closed.append((exc.code, exc.reason))

    client = test_client_factory(app)
    with client.websocket_connect("/") as ws:
        ws.close(4000, "bye")
    assert closed == [(4000, "bye")]


def test_client_app_closes_with_code(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket: WebSocket[Any] = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.close(4001, "done")

    client = test_client_factory(app)
    with client.websocket_connect("/") as ws, pytest.raises(WebSocketDisconnect) as info:
        ws.receive_text()
    assert (info.value.code, info.value.reason) == (4001, "done")


def test_client_close_before_accept(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await WebSocket(scope, receive, send).close(4001, "nope")

    client = test_client_factory(app)
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/"):
        pass  # pragma: no cover (the connection is refused)
    assert (info.value.code, info.value.reason) == (4001, "nope")


def test_client_websocket_close_app(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(WebSocketClose(4003, "go"))
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/"):
        pass  # pragma: no cover (the connection is refused)
    assert (info.value.code, info.value.reason) == (4003, "go")


def test_client_send_after_close(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket: WebSocket[Any] = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.receive_text()
        await websocket.close()
        await websocket.send_text("late")

    client = test_client_factory(app)
    with pytest.raises(WebSocketDisconnected, match='"send" once a close'):  # noqa: SIM117
        with client.websocket_connect("/") as ws:
            ws.send_text("go")


def test_client_receive_after_disconnect(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket: WebSocket[Any] = WebSocket(scope, receive, send)
        await websocket.accept()
        with pytest.raises(WebSocketDisconnect):
            await websocket.receive_text()
        await websocket.receive()

    client = test_client_factory(app)
    with pytest.raises(WebSocketDisconnected, match='"receive" once a disconnect'):  # noqa: SIM117
        with client.websocket_connect("/") as ws:
            ws.close()


def test_client_app_returns_without_accepting(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await WebSocket(scope, receive, send).receive()

    client = test_client_factory(app)
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/"):
        pass  # pragma: no cover (the connection is refused)
    assert info.value.code == status.WS_1006_ABNORMAL_CLOSURE


def test_client_app_returns_without_closing(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await WebSocket(scope, receive, send).accept()

    client = test_client_factory(app)
    with client.websocket_connect("/") as ws, pytest.raises(WebSocketDisconnect) as info:
        ws.receive_text()
    assert info.value.code == status.WS_1006_ABNORMAL_CLOSURE


def test_client_app_error_before_accept(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("boom")

    client = test_client_factory(app)
    with pytest.raises(ValueError, match="boom"), client.websocket_connect("/"):
        pass  # pragma: no cover (the connection fails)


def test_client_app_error_after_accept(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket: WebSocket[Any] = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.receive_text()
        raise ValueError("boom")

    client = test_client_factory(app)
    with pytest.raises(ValueError, match="boom"):  # noqa: SIM117
        with client.websocket_connect("/") as ws:
            ws.send_text("go")


@pytest.mark.parametrize(
    ("client_sends", "error"),
    [
        ("{bad", json.JSONDecodeError),
        (b"\xff", UnicodeDecodeError),
    ],
)
def test_client_bad_json(
    test_client_factory: TestClientFactory, client_sends: str | bytes, error: type[Exception]
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket: WebSocket[Any] = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.receive_json("binary" if isinstance(client_sends, bytes) else "text")

    client = test_client_factory(app)
    with pytest.raises(error):  # noqa: SIM117
        with client.websocket_connect("/") as ws:
            if isinstance(client_sends, bytes):
                ws.send_bytes(client_sends)
            else:
                ws.send_text(client_sends)
            ws.receive_text()


def test_client_denial_response(test_client_factory: TestClientFactory) -> None:
    from starling.testclient import WebSocketDenialResponse

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await WebSocket(scope, receive, send).send_denial_response(PlainTextResponse("no", 403))

    client = test_client_factory(app)
    with pytest.raises(WebSocketDenialResponse) as info, client.websocket_connect("/"):
        pass  # pragma: no cover (the connection is refused)
    assert (info.value.status_code, info.value.text) == (403, "no")


@pytest.mark.anyio
async def test_no_hang_when_receive_is_cancelled() -> None:
    never: anyio.Event = anyio.Event()

    async def receive() -> Message:
        await never.wait()
        raise AssertionError("unreachable")  # pragma: no cover (the wait is cancelled)

    async def send(message: Message) -> None:
        raise AssertionError("unreachable")  # pragma: no cover (nothing is sent)

    websocket: WebSocket[Any] = WebSocket({"type": "websocket"}, receive, send)
    with anyio.move_on_after(0.01) as scope:
        await websocket.receive()
    assert scope.cancelled_caught
    assert websocket.client_state is WebSocketState.CONNECTING


# -- any sequence of messages and calls: only documented errors, states only move forward ----

MESSAGES = st.sampled_from(
    [
        CONNECT,
        text("1"),
        text("{"),
        binary(b"\xff"),
        binary(b"[1]"),
        {"type": "websocket.receive"},
        disconnect(1001, "bye"),
        {"type": "websocket.disconnect"},
        {"type": "websocket.bogus"},
    ]
)
OPERATIONS = st.sampled_from(
    [
        ("receive",),
        ("accept",),
        ("close", 4000),
        ("receive_text",),
        ("receive_bytes",),
        ("receive_json", "text"),
        ("receive_json", "binary"),
        ("send_text", "x"),
        ("send_bytes", b"x"),
        ("send_json", [1], "binary"),
        ("send", {"type": "websocket.http.response.start", "status": 403}),
        ("send", {"type": "websocket.http.response.body", "body": b"", "more_body": True}),
        ("send", {"type": "websocket.http.response.body", "body": b""}),
        ("send", {"type": "websocket.bogus"}),
    ]
)
# What a misbehaving client or app may provoke: each is a documented outcome, never a hang.
DOCUMENTED = (RuntimeError, WebSocketDisconnect, KeyError, ValueError)


APPLICATION_NEXT = {
    WebSocketState.CONNECTING: {
        WebSocketState.CONNECTED,
        WebSocketState.RESPONSE,
        WebSocketState.DISCONNECTED,
    },
    WebSocketState.CONNECTED: {WebSocketState.DISCONNECTED},
    WebSocketState.RESPONSE: {WebSocketState.DISCONNECTED},
    WebSocketState.DISCONNECTED: set(),
}


class ScriptEnded(Exception):
    """The app asked for more than the scripted client sent (a real server would wait)."""


@settings(max_examples=300, deadline=None)
@given(st.booleans(), st.lists(MESSAGES, max_size=8), st.lists(OPERATIONS, max_size=12))
@example(True, [disconnect()], [("receive",), ("receive",), ("receive",)])
@example(True, [], [("close", 4000), ("accept",)])
def test_state_machine_never_goes_back(
    handshake: bool, incoming: list[Message], operations: list[Any]
) -> None:
    async def main() -> None:
        # Most real clients open with the handshake; without it nearly every call fails early.
        script = [CONNECT, *incoming] if handshake else list(incoming)
        sent: list[Message] = []

        async def receive() -> Message:
            if not script:
                raise ScriptEnded
            return script.pop(0)

        async def send(message: Message) -> None:
            sent.append(message)

        websocket: WebSocket[Any] = WebSocket(
            {"type": "websocket", "extensions": DENIAL}, receive, send
        )
        for name, *args in operations:
            before = states(websocket)
            sent_before, script_before = len(sent), len(script)
            try:
                await getattr(websocket, name)(*args)
            except ScriptEnded:
                return
            except WebSocketDisconnected:
                assert len(sent) == sent_before
            except DOCUMENTED:
                pass
            after = states(websocket)
            assert after[0].value >= before[0].value
            assert after[1] is before[1] or after[1] in APPLICATION_NEXT[before[1]]
            if before[1] is WebSocketState.DISCONNECTED:
                assert len(sent) == sent_before
            if before[0] is WebSocketState.DISCONNECTED:
                assert len(script) == script_before

    anyio.run(main)
