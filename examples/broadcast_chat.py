"""A chat over WebSockets and a live feed of the same rooms over server-sent events.

    uvicorn examples.broadcast_chat:app                     # one process: memory://
    BROADCAST_URL=redis://127.0.0.1:6379/0 \\
        uvicorn examples.broadcast_chat:app --workers 4     # many processes: Redis

- ``ws://…/rooms/{room}/ws``: every text message sent is relayed to everyone in the room;
- ``GET /rooms/{room}/events``: the room as an event stream (read-only, ``text/event-stream``);
- ``POST /rooms/{room}``: the request body (text) is posted to the room.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from starling.applications import Starling
from starling.broadcast import Broadcast, Subscriber, SubscriberOverflow
from starling.middleware import Middleware
from starling.middleware.body_limit import RequestBodyLimitMiddleware
from starling.requests import Request
from starling.responses import PlainTextResponse, Response, StreamingResponse
from starling.routing import Route, WebSocketRoute
from starling.websockets import WebSocket

broadcast = Broadcast(os.environ.get("BROADCAST_URL", "memory://"))


@asynccontextmanager
async def lifespan(app: Starling) -> AsyncIterator[None]:
    async with broadcast:
        yield


async def chat(websocket: WebSocket) -> None:
    channel = f"room:{websocket.path_params['room']}"
    # Subscribe before accepting: once the client sees the handshake complete, it will
    # receive every message posted to the room.
    async with broadcast.subscribe(channel) as subscriber:
        await websocket.accept()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(relay, websocket, subscriber)
            async for text in websocket.iter_text():
                try:
                    await broadcast.publish(channel, text)
                except ValueError:  # over max_message_size
                    await websocket.close(code=1009, reason="message too big")
                    break
            tasks.cancel_scope.cancel()


async def relay(websocket: WebSocket, subscriber: Subscriber) -> None:
    try:
        async for event in subscriber:
            await websocket.send_text(event.message)
    except SubscriberOverflow:  # only with overflow="disconnect": this client is too slow
        await websocket.close(code=1013, reason="too slow, reconnect")


def sse_data(text: str) -> str:
    """``text`` as one server-sent event: a ``data:`` line per line of text (CR, LF or CRLF)."""
    return "".join(f"data: {line}\n" for line in re.split(r"\r\n|\r|\n", text)) + "\n"


async def room_events(request: Request) -> StreamingResponse:
    channel = f"room:{request.path_params['room']}"

    async def events() -> AsyncIterator[str]:
        async with broadcast.subscribe(channel) as subscriber:
            yield ": subscribed\n\n"  # a comment: sends the headers, tells the client it's live
            async for event in subscriber:
                yield sse_data(event.message)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


async def post(request: Request) -> Response:
    text = (await request.body()).decode("utf-8", errors="replace")
    await broadcast.publish(f"room:{request.path_params['room']}", text)
    return PlainTextResponse("posted", status_code=202)


app = Starling(
    routes=[
        WebSocketRoute("/rooms/{room}/ws", chat),
        Route("/rooms/{room}/events", room_events),
        Route("/rooms/{room}", post, methods=["POST"]),
    ],
    middleware=[Middleware(RequestBodyLimitMiddleware, max_body_size=64 * 1024)],
    lifespan=lifespan,
)
