"""examples/broadcast_chat.py in one process (memory://): the chat over WebSockets and the live
feed over a streaming response, as docs/broadcast.md shows them."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio
import pytest

from examples import broadcast_chat as example
from examples.broadcast_chat import app, broadcast
from starling.broadcast import DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_QUEUE, Broadcast
from starling.testclient import TestClient
from starling.types import Message
from starling.websockets import WebSocketDisconnect
from tests._redis_server import RedisServer

if TYPE_CHECKING:
    from tests.types import TestClientFactory


def test_chat_relays_to_everyone_in_the_room(test_client_factory: TestClientFactory) -> None:
    with (
        test_client_factory(app) as client,
        client.websocket_connect("/rooms/lobby/ws") as alice,
        client.websocket_connect("/rooms/lobby/ws") as bob,
        client.websocket_connect("/rooms/attic/ws") as carol,
    ):
        alice.send_text("hi bob")
        bob.send_text("hi alice")
        for person in (alice, bob):
            assert person.receive_text() == "hi bob"
            assert person.receive_text() == "hi alice"
        carol.send_text("anyone?")
        assert carol.receive_text() == "anyone?"  # the only message in the attic


def test_chat_refuses_a_message_over_the_limit(test_client_factory: TestClientFactory) -> None:
    with (
        test_client_factory(app) as client,
        client.websocket_connect("/rooms/lobby/ws") as alice,
    ):
        alice.send_text("x" * (DEFAULT_MAX_MESSAGE_SIZE + 1))
        with pytest.raises(WebSocketDisconnect) as info:
            alice.receive_text()
        assert (info.value.code, info.value.reason) == (1009, "message too big")


class HandDrivenChat:
    """The chat endpoint driven as a server would, over a network that may not drain: while
    ``released`` is unset, the first frame sent to the client blocks."""

    def __init__(self) -> None:
        self.released = anyio.Event()
        self.sent: list[Message] = []
        self.scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            "path": "/rooms/busy/ws",
            "raw_path": b"/rooms/busy/ws",
            "query_string": b"",
            "root_path": "",
            "headers": [],
            "server": ("testserver", 80),
            "client": ("testclient", 50000),
            "subprotocols": [],
        }

    async def receive(self) -> Message:
        if not self.sent:
            return {"type": "websocket.connect"}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        if message["type"] == "websocket.send":
            await self.released.wait()

    async def run(self) -> None:
        await app(self.scope, self.receive, self.send)

    async def accepted(self) -> None:
        while not self.sent:
            await anyio.sleep(0.01)
        assert self.sent[0]["type"] == "websocket.accept"


@pytest.mark.anyio
async def test_a_chat_client_too_slow_is_told_to_reconnect() -> None:
    chat = HandDrivenChat()
    async with broadcast, anyio.create_task_group() as tasks:
        tasks.start_soon(chat.run)
        with anyio.fail_after(5):
            await chat.accepted()
            # more than a queue's worth posted while the first frame is still on its way
            for number in range(DEFAULT_MAX_QUEUE + 2):
                await broadcast.publish("room:busy", str(number))
            chat.released.set()
    assert chat.sent[1] == {"type": "websocket.send", "text": "0"}
    assert chat.sent[2] == {
        "type": "websocket.close",
        "code": 1013,
        "reason": "too slow, reconnect",
    }
    assert len(chat.sent) == 3


@pytest.mark.anyio
async def test_the_chat_ends_when_the_broadcast_stops() -> None:
    chat = HandDrivenChat()
    async with anyio.create_task_group() as tasks:
        await broadcast.connect()
        tasks.start_soon(chat.run)
        with anyio.fail_after(5):
            await chat.accepted()
        await broadcast.disconnect()  # the app shuts down: the relay's iteration ends
    assert len(chat.sent) == 1


def test_the_room_as_an_event_stream(test_client_factory: TestClientFactory) -> None:
    with (
        test_client_factory(app) as client,
        client.stream("GET", "/rooms/lobby/events") as response,
    ):
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-store"
        chunks = response.iter_text()
        assert next(chunks) == ": subscribed\n\n"
        assert client.post("/rooms/lobby", content="hello").status_code == 202
        assert next(chunks) == "data: hello\n\n"
        with client.websocket_connect("/rooms/lobby/ws") as alice:
            alice.send_text("two\r\nlines")
            assert next(chunks) == "data: two\ndata: lines\n\n"


def test_posting_more_than_the_body_limit_is_refused(
    test_client_factory: TestClientFactory,
) -> None:
    with test_client_factory(app) as client:
        response = client.post("/rooms/lobby", content=b"x" * (64 * 1024 + 1))
        assert response.status_code == 413


def test_the_homepage_chats_in_the_lobby(test_client_factory: TestClientFactory) -> None:
    response = test_client_factory(app).get("/")
    assert response.status_code == 200
    assert "/rooms/lobby/ws" in response.text


def test_redis_down_and_back(
    monkeypatch: pytest.MonkeyPatch, redis_server_factory: type[RedisServer]
) -> None:
    """With Redis (asyncio only): posting answers 503 and chats close with 1011 while it is
    down, the rest keeps serving, and everything works again once it is back."""
    server = redis_server_factory()
    server.start()
    monkeypatch.setattr(example, "broadcast", Broadcast(server.url, timeout=0.5))
    with TestClient(app, backend="asyncio") as client:
        with client.websocket_connect("/rooms/lobby/ws") as alice:
            alice.send_text("before")
            assert alice.receive_text() == "before"
            server.stop()
            alice.send_text("during")
            with pytest.raises(WebSocketDisconnect) as info:
                alice.receive_text()
            assert (info.value.code, info.value.reason) == (1011, "broadcast unavailable")
        response = client.post("/rooms/lobby", content="during")
        assert (response.status_code, response.text) == (503, "broadcast unavailable, retry later")
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/rooms/x/ws"):
            pass  # pragma: no cover (the handshake is refused)
        assert refused.value.code == 1011
        assert client.get("/").status_code == 200  # what needs no Redis keeps serving
        server.start()
        deadline = time.monotonic() + 10
        while not chat_works_again(client):
            assert time.monotonic() < deadline, "Redis was not used again"  # pragma: no cover
            time.sleep(0.05)  # pragma: no cover (only until the broadcast has reconnected)
        assert client.post("/rooms/lobby", content="after").status_code == 202


def chat_works_again(client: TestClient) -> bool:
    try:
        with client.websocket_connect("/rooms/lobby/ws") as bob:
            bob.send_text("back")
            return bob.receive_text() == "back"
    except WebSocketDisconnect:  # pragma: no cover (only until the broadcast has reconnected)
        return False
