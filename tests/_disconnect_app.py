"""An app for tests/test_cancel_on_disconnect_server.py, served by a real uvicorn process."""

from __future__ import annotations

import anyio

from starling.applications import Starling
from starling.requests import Request
from starling.responses import JSONResponse, PlainTextResponse
from starling.routing import Route

state = {"started": 0, "cleaned_up": 0}


async def slow(request: Request) -> PlainTextResponse:
    state["started"] += 1
    try:
        await anyio.sleep(60)
    finally:
        state["cleaned_up"] += 1
    return PlainTextResponse("too late")  # pragma: no cover (the client left long before)


async def status(request: Request) -> JSONResponse:
    return JSONResponse(state)


app = Starling(routes=[Route("/slow", slow, cancel_on_disconnect=True), Route("/state", status)])
