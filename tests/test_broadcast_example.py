"""examples/broadcast_chat.py in one process (memory://): the chat over WebSockets and the live
feed over a streaming response, as docs/broadcast.md shows them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from examples.broadcast_chat import app, broadcast, sse_data
from starling.broadcast import DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_QUEUE
from starling.types import Message
from starling.websockets import WebSocketDisconnect

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


def test_sse_data_splits_on_every_line_ending() -> None:
    assert sse_data("a\r\nb\rc\nd") == "data: a\ndata: b\ndata: c\ndata: d\n\n"
    assert sse_data("") == "data: \n\n"
    assert sse_data("end\n") == "data: end\ndata: \n\n"


def test_posting_more_than_the_body_limit_is_refused(
    test_client_factory: TestClientFactory,
) -> None:
    with test_client_factory(app) as client:
        response = client.post("/rooms/lobby", content=b"x" * (64 * 1024 + 1))
        assert response.status_code == 413
