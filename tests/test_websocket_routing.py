"""WebSocket routes inside mounts and hosts, end to end through the test client."""

from __future__ import annotations

import pytest

from starling.applications import Starling
from starling.datastructures import URLPath
from starling.exceptions import WebSocketException
from starling.routing import Host, Mount, Router, WebSocketRoute
from starling.websockets import WebSocket, WebSocketDisconnect
from tests.types import TestClientFactory


async def where(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json(
        {
            "params": {key: str(value) for key, value in websocket.path_params.items()},
            "root_path": websocket.scope["root_path"],
            "url": str(websocket.url),
            "for": str(websocket.url_for("chat:deep", room="r1", n=2)),
        }
    )
    await websocket.close()


async def refuse(websocket: WebSocket) -> None:
    raise WebSocketException(code=4403, reason="not allowed here")


app = Starling(
    routes=[
        Mount(
            "/chat/{room}",
            routes=[
                WebSocketRoute("/ws/{n:int}", where, name="deep"),
                WebSocketRoute("/refuse", refuse),
            ],
            name="chat",
        ),
        Host(
            "{sub}.example.org",
            app=Router([WebSocketRoute("/live", where, name="live")]),
            name="sub",
        ),
    ]
)


def test_websocket_route_in_a_mount(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(app)
    with client.websocket_connect("/chat/lobby/ws/7") as websocket:
        data = websocket.receive_json()
    assert data == {
        "params": {"room": "lobby", "n": "7"},
        "root_path": "/chat/lobby",
        "url": "ws://testserver/chat/lobby/ws/7",
        "for": "ws://testserver/chat/r1/ws/2",
    }


def test_websocket_route_in_a_host(test_client_factory: TestClientFactory) -> None:
    # as in Starlette, websocket_connect resolves against ws://testserver, not base_url
    client = test_client_factory(app)
    with client.websocket_connect("ws://api.example.org/live") as websocket:
        data = websocket.receive_json()
    assert data["params"] == {"sub": "api"}
    assert data["url"] == "ws://api.example.org/live"


def test_url_path_for_websocket_routes() -> None:
    assert app.url_path_for("chat:deep", room="a", n=3) == URLPath("/chat/a/ws/3")
    assert app.url_path_for("chat:deep", room="a", n=3).protocol == "websocket"
    live = app.url_path_for("sub:live", sub="eu")
    assert (live, live.host, live.protocol) == ("/live", "eu.example.org", "websocket")


def test_unmatched_websocket_is_closed(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(app)
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/nowhere"):
        pass  # pragma: no cover (the connection is refused)
    assert info.value.code == 1000


def test_websocket_exception_in_a_mounted_route(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(app)
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/chat/x/refuse"):
        pass  # pragma: no cover (the connection is refused)
    assert (info.value.code, info.value.reason) == (4403, "not allowed here")
