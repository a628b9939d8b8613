"""A Starlette app, written against ``starlette`` and never edited for starling: every server in
tests/test_servers.py runs it with STARLING_AS_STARLETTE=1."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import starlette
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

# What happened inside this worker, for the test to ask about afterwards.
events: list[str] = []


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
    yield {"started_by": "lifespan"}
    # the process is about to exit: leave the proof where the test can read it
    shutdown_file = os.environ.get("SERVER_APP_SHUTDOWN_FILE")
    if shutdown_file:
        await anyio.Path(shutdown_file).write_text("lifespan shutdown ran")


async def info(request: Request) -> JSONResponse:
    client = request.client
    return JSONResponse(
        {
            "starlette_file": starlette.__file__,
            # daphne does not run the lifespan protocol, so it may have set nothing
            "started_by": getattr(request.state, "started_by", None),
            "client_port": client.port if client else None,
            "http_version": request.scope["http_version"],
            "events": events,
        }
    )


async def upload(request: Request) -> JSONResponse:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.stream():
        digest.update(chunk)
        size += len(chunk)
    return JSONResponse({"size": size, "sha256": digest.hexdigest()})


async def numbers(limit: int) -> AsyncIterator[bytes]:
    try:
        for number in range(limit):
            yield f"{number}\n".encode()
            await anyio.sleep(0.01)
    finally:
        events.append(f"producer closed after {number}")


async def stream(request: Request) -> StreamingResponse:
    limit = int(request.query_params.get("limit", "1000000"))
    return StreamingResponse(numbers(limit), media_type="text/plain")


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text("echo: " + await websocket.receive_text())
    except WebSocketDisconnect as disconnect:
        events.append(f"websocket closed {disconnect.code}")


app = Starlette(
    routes=[
        Route("/", info),
        Route("/upload", upload, methods=["POST"]),
        Route("/stream", stream),
        WebSocketRoute("/echo", echo),
    ],
    lifespan=lifespan,
)
