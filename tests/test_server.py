"""starling under a real server: uvicorn on 127.0.0.1, spoken to by real HTTP and WebSocket
clients (httpx and the `websockets` package) rather than the in-process test client."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import uvicorn
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect

from starling.applications import Starling
from starling.requests import Request
from starling.responses import JSONResponse
from starling.routing import Route, WebSocketRoute
from starling.websockets import WebSocket, WebSocketDisconnect

closed_with: list[int] = []
closed = threading.Event()


async def echo(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol="echo")
    await websocket.send_text(await websocket.receive_text())
    await websocket.send_bytes(await websocket.receive_bytes())
    await websocket.send_json(await websocket.receive_json())
    try:
        await websocket.receive_text()
    except WebSocketDisconnect as disconnect:
        closed_with.append(disconnect.code)
        closed.set()


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"hello": request.query_params.get("name", "world")})


async def goodbye(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.close(code=1000, reason="done")


app = Starling(
    routes=[
        Route("/", hello),
        WebSocketRoute("/echo", echo),
        WebSocketRoute("/goodbye", goodbye),
    ]
)


def _eventually(predicate: Callable[[], bool]) -> bool:
    """True once ``predicate`` is, polling for up to 5 s."""
    return any(predicate() or _pause() for _ in range(500))


def _pause() -> bool:
    time.sleep(0.01)
    return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert _eventually(lambda: server.started), "uvicorn did not start"
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_http_through_uvicorn(server_url: str) -> None:
    response = httpx.get(f"http://{server_url}/", params={"name": "uvicorn"})
    assert response.status_code == 200
    assert response.json() == {"hello": "uvicorn"}
    assert response.headers["content-type"] == "application/json"


def test_websocket_exchange_through_uvicorn(server_url: str) -> None:
    closed_with.clear()
    closed.clear()
    with connect(f"ws://{server_url}/echo", subprotocols=["echo"]) as websocket:  # type: ignore[list-item]
        assert websocket.subprotocol == "echo"
        websocket.send("hello")
        assert websocket.recv() == "hello"
        websocket.send(b"\x00\xffbytes")
        assert websocket.recv() == b"\x00\xffbytes"
        websocket.send(json.dumps({"n": [1, 2], "text": "héllo"}))
        assert json.loads(websocket.recv()) == {"n": [1, 2], "text": "héllo"}
    # leaving the block closes with 1000; the endpoint sees that close code
    assert closed.wait(5)
    assert closed_with == [1000]


def test_websocket_closed_by_the_server(server_url: str) -> None:
    with connect(f"ws://{server_url}/goodbye") as websocket:
        with pytest.raises(ConnectionClosedOK) as info:
            websocket.recv()
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1000
        assert info.value.rcvd.reason == "done"
