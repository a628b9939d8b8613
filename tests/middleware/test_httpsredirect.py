"""HTTPSRedirectMiddleware: http -> https and ws -> wss on the same host, whatever the input."""

from __future__ import annotations

from typing import Any

import pytest

from starling.applications import Starling
from starling.middleware import Middleware
from starling.middleware.httpsredirect import HTTPSRedirectMiddleware
from starling.requests import Request
from starling.responses import PlainTextResponse
from starling.routing import Route
from starling.testclient import WebSocketDenialResponse
from starling.types import Message, Receive, Scope, Send
from starling.websockets import WebSocket
from tests.types import TestClientFactory


def homepage(request: Request) -> PlainTextResponse:
    return PlainTextResponse("OK")


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("OK")(scope, receive, send)


APP = Starling(
    routes=[Route("/{path:path}", homepage)], middleware=[Middleware(HTTPSRedirectMiddleware)]
)


async def drive(headers: list[tuple[bytes, bytes]], **scope: Any) -> list[Message]:
    """Call the middleware with raw input that a client library refuses to send."""
    full_scope: Scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "query_string": b"",
        "headers": headers,
        "server": ("testserver", 80),
        **scope,
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}  # pragma: no cover (never read)

    async def send(message: Message) -> None:
        sent.append(message)

    await HTTPSRedirectMiddleware(ok_app)(full_scope, receive, send)
    return sent


def location(sent: list[Message]) -> bytes:
    assert sent[0]["status"] == 307
    headers: dict[bytes, bytes] = dict(sent[0]["headers"])
    return headers[b"location"]


def test_redirects_http(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(APP)
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "https://testserver/"
    assert response.text == ""
    response = client.post("/a b?x=1&y=%20", follow_redirects=False)
    assert response.status_code == 307  # keeps the method and body, unlike 301/302
    assert response.headers["location"] == "https://testserver/a%20b?x=1&y=%20"


def test_https_is_served(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(APP, base_url="https://testserver")
    response = client.get("/")
    assert response.status_code == 200
    assert response.text == "OK"


def test_follows_to_https(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(APP)
    response = client.get("/page")
    assert response.status_code == 200
    assert str(response.url) == "https://testserver/page"


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("http://testserver:80", "https://testserver/"),
        ("http://testserver:443", "https://testserver/"),
        ("http://testserver:123", "https://testserver:123/"),
        ("http://[::1]:80", "https://[::1]/"),  # Starlette drops the brackets: "https://::1/"
        ("http://[::1]:8080", "https://[::1]:8080/"),
    ],
)
def test_ports(test_client_factory: TestClientFactory, base_url: str, expected: str) -> None:
    client = test_client_factory(APP, base_url=base_url)
    response = client.get("/", follow_redirects=False)
    assert response.headers["location"] == expected


@pytest.mark.anyio
async def test_port_from_the_server_address() -> None:
    assert location(await drive([], server=("example.org", 8000))) == b"https://example.org:8000/"
    assert location(await drive([], server=("example.org", 80))) == b"https://example.org/"
    assert location(await drive([], server=("::1", 80))) == b"https://[::1]/"
    assert location(await drive([(b"host", b"example.com:080")])) == b"https://example.com/"


@pytest.mark.anyio
async def test_root_path_is_kept() -> None:
    sent = await drive([(b"host", b"example.com")], root_path="/sub", path="/sub/x")
    assert location(sent) == b"https://example.com/sub/x"


@pytest.mark.parametrize("path", ["//evil.com", "//evil.com/x", "/\\evil.com", "@evil.com"])
@pytest.mark.anyio
async def test_path_cannot_change_the_host(path: str) -> None:
    sent = await drive([(b"host", b"example.com")], path=path, query_string=b"a=1")
    target = location(sent)
    assert target.startswith(b"https://example.com/")
    assert b"?a=1" in target


@pytest.mark.parametrize(
    "host",
    [
        b"evil.com/x",
        b"example.com@evil.com",
        b"example.com\r\nSet-Cookie: a=b",
        b"evil.com:99999",
        b"evil.com#frag",
        b"\xc3\xa9vil.com",
        b"",
    ],
)
@pytest.mark.anyio
async def test_hostile_host_falls_back_to_the_server(host: bytes) -> None:
    assert location(await drive([(b"host", host)])) == b"https://testserver/"


@pytest.mark.anyio
async def test_long_host_stays_the_same_host() -> None:
    # A valid name, however long, is where the client already is: no other host is reached.
    host = b"a" * 10_000 + b".example.com"
    assert location(await drive([(b"host", host)])) == b"https://" + host + b"/"


@pytest.mark.anyio
async def test_no_host_at_all() -> None:
    sent = await drive([(b"host", b"bad host")], server=None)
    assert sent[0]["status"] == 400
    assert sent[1]["body"] == b"Invalid host header"
    sent = await drive([], server=None)
    assert sent[0]["status"] == 400


@pytest.mark.anyio
async def test_crlf_in_path_and_query_is_dropped() -> None:
    sent = await drive([(b"host", b"example.com")], path="/a b\r\nX: y", query_string=b"q=\r\n1")
    assert location(sent) == b"https://example.com/a%20bX:%20y?q=1"


@pytest.mark.anyio
async def test_scheme_missing_from_the_scope() -> None:
    # ASGI's default scheme is http (ws for websockets); Starlette raises KeyError.
    scope_without_scheme = {"type": "http", "path": "/", "headers": [(b"host", b"a.com")]}
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await HTTPSRedirectMiddleware(ok_app)(scope_without_scheme, None, send)  # type: ignore[arg-type]
    assert location(sent) == b"https://a.com/"
    sent.clear()
    websocket_scope = {**scope_without_scheme, "type": "websocket"}
    await HTTPSRedirectMiddleware(ok_app)(websocket_scope, None, send)  # type: ignore[arg-type]
    assert location(sent) == b"wss://a.com/"


@pytest.mark.anyio
async def test_websocket_redirect() -> None:
    sent = await drive([(b"host", b"example.com:80")], type="websocket", scheme="ws")
    assert sent[0]["type"] == "websocket.http.response.start"
    assert location(sent) == b"wss://example.com/"
    sent = await drive([(b"host", b"example.com")], type="websocket", scheme="wss")
    assert sent[0]["status"] == 200  # ok_app's own answer: passed through


def test_secure_websocket(test_client_factory: TestClientFactory) -> None:
    async def ws_app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.send_text(websocket.url.scheme)
        await websocket.close()

    client = test_client_factory(HTTPSRedirectMiddleware(ws_app))
    with client.websocket_connect("wss://testserver/") as websocket:
        assert websocket.receive_text() == "wss"
    with pytest.raises(WebSocketDenialResponse) as denial, client.websocket_connect("/chat"):
        pass  # pragma: no cover (the handshake is denied)
    assert denial.value.status_code == 307
    assert denial.value.headers["location"] == "wss://testserver/chat"


@pytest.mark.anyio
async def test_lifespan_passes_through() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    scope: Scope = {"type": "lifespan"}
    await HTTPSRedirectMiddleware(app)(scope, None, None)  # type: ignore[arg-type]
    assert seen == [scope]
