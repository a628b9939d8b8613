"""A chat over WebSockets and a live feed of the same rooms over server-sent events.

    uvicorn examples.broadcast_chat:app                     # one process: memory://
    BROADCAST_URL=redis://127.0.0.1:6379/0 \\
        uvicorn examples.broadcast_chat:app --workers 4     # many processes: Redis

- ``GET /``: a page to chat in the lobby from a browser;
- ``ws://…/rooms/{room}/ws``: every text message sent is relayed to everyone in the room;
- ``GET /rooms/{room}/events``: the room as an event stream (read-only, ``text/event-stream``);
- ``POST /rooms/{room}``: the request body (text) is posted to the room.

When Redis is unreachable, posting answers 503 and chats close with 1011, while everything else
keeps serving; when it is back, they work again, without a restart.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from starling.applications import Starling
from starling.broadcast import Broadcast, BroadcastUnavailable, SubscriberOverflow
from starling.middleware import Middleware
from starling.middleware.body_limit import RequestBodyLimitMiddleware
from starling.requests import Request
from starling.responses import HTMLResponse, PlainTextResponse, Response
from starling.routing import Route, WebSocketRoute
from starling.sse import EventSourceResponse, ServerSentEvent
from starling.websockets import WebSocket, WebSocketDisconnect

broadcast = Broadcast(os.environ.get("BROADCAST_URL", "memory://"))


@asynccontextmanager
async def lifespan(app: Starling) -> AsyncIterator[None]:
    async with broadcast:
        yield


PAGE = """<!doctype html>
<title>Lobby</title>
<ul id="messages"></ul>
<form><input id="text" autocomplete="off" autofocus><button>Send</button></form>
<script>
  const socket = new WebSocket(`ws://${location.host}/rooms/lobby/ws`);
  socket.onmessage = (event) => {
    const item = document.createElement("li");
    item.textContent = event.data;
    document.getElementById("messages").append(item);
  };
  document.querySelector("form").onsubmit = (event) => {
    event.preventDefault();
    socket.send(document.getElementById("text").value);
    document.getElementById("text").value = "";
  };
</script>
"""


async def homepage(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


async def chat(websocket: WebSocket) -> None:
    try:
        await chat_in_room(websocket, f"room:{websocket.path_params['room']}")
    except BroadcastUnavailable:  # Redis is down: refuse the handshake, the client may retry
        await websocket.close(code=1011, reason="broadcast unavailable")


async def chat_in_room(websocket: WebSocket, channel: str) -> None:
    # Subscribe before accepting: once the client sees the handshake complete, it will
    # receive every message posted to the room. A client too slow to keep up is told to
    # reconnect rather than silently missing messages.
    async with broadcast.subscribe(channel, overflow="disconnect") as subscriber:
        await websocket.accept()
        async with anyio.create_task_group() as tasks:

            async def relay() -> None:
                try:
                    async for event in subscriber:
                        await websocket.send_text(event.message)
                except SubscriberOverflow:  # it fell max_queue messages behind
                    await websocket.close(code=1013, reason="too slow, reconnect")
                tasks.cancel_scope.cancel()

            tasks.start_soon(relay)
            await receive_and_publish(websocket, channel)
            tasks.cancel_scope.cancel()


async def receive_and_publish(websocket: WebSocket, channel: str) -> None:
    while True:
        try:
            text = await websocket.receive_text()
        except WebSocketDisconnect:
            return
        try:
            await broadcast.publish(channel, text)
        except ValueError:  # over max_message_size
            await websocket.close(code=1009, reason="message too big")
            return
        except BroadcastUnavailable:
            await websocket.close(code=1011, reason="broadcast unavailable")
            return


async def room_events(request: Request) -> EventSourceResponse:
    channel = f"room:{request.path_params['room']}"

    async def events() -> AsyncIterator[ServerSentEvent]:
        async with broadcast.subscribe(channel) as subscriber:
            # a comment first: sends the headers, and tells the client it is live
            yield ServerSentEvent(comment="subscribed")
            async for event in subscriber:
                yield ServerSentEvent(event.message)  # a data line per line of the message

    return EventSourceResponse(events())


async def post(request: Request) -> Response:
    text = (await request.body()).decode("utf-8", errors="replace")
    try:
        await broadcast.publish(f"room:{request.path_params['room']}", text)
    except BroadcastUnavailable:
        return PlainTextResponse("broadcast unavailable, retry later", status_code=503)
    return PlainTextResponse("posted", status_code=202)


app = Starling(
    routes=[
        Route("/", homepage),
        WebSocketRoute("/rooms/{room}/ws", chat),
        Route("/rooms/{room}/events", room_events),
        Route("/rooms/{room}", post, methods=["POST"]),
    ],
    middleware=[Middleware(RequestBodyLimitMiddleware, max_body_size=64 * 1024)],
    lifespan=lifespan,
)
