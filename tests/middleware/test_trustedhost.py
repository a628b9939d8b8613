"""TrustedHostMiddleware: allowed hosts, wildcards, the www redirect and hostile Host headers."""

from __future__ import annotations

import pytest

from starling.applications import Starling
from starling.middleware import Middleware
from starling.middleware.trustedhost import (
    ENFORCE_DOMAIN_WILDCARD,
    MAX_HOST_LENGTH,
    TrustedHostMiddleware,
)
from starling.requests import Request
from starling.responses import PlainTextResponse
from starling.routing import Route
from starling.types import Message, Receive, Scope, Send
from starling.websockets import WebSocket
from tests.types import TestClientFactory


def homepage(request: Request) -> PlainTextResponse:
    return PlainTextResponse("OK")


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("OK")(scope, receive, send)


def make_app(allowed_hosts: list[str] | None, www_redirect: bool = True) -> Starling:
    middleware = Middleware(
        TrustedHostMiddleware, allowed_hosts=allowed_hosts, www_redirect=www_redirect
    )
    return Starling(routes=[Route("/{path:path}", homepage)], middleware=[middleware])


async def drive(
    middleware: TrustedHostMiddleware, headers: list[tuple[bytes, bytes]], **scope: object
) -> list[Message]:
    """Call the middleware with raw Host headers that a client library refuses to send."""
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

    await middleware(full_scope, receive, send)
    return sent


def test_configuration() -> None:
    middleware = TrustedHostMiddleware(ok_app, allowed_hosts=["Example.com", "*.example.com"])
    assert middleware.allowed_hosts == ["example.com", "*.example.com"]
    assert middleware.allow_any is False
    assert middleware.www_redirect is True
    default = TrustedHostMiddleware(ok_app)
    assert default.allowed_hosts == ["*"]
    assert default.allow_any is True
    # Patterns Starlette accepts as they are.
    for pattern in ("*", "*.", ".a.com"):
        TrustedHostMiddleware(ok_app, allowed_hosts=[pattern])


@pytest.mark.parametrize("pattern", ["*example.com", "a.*.com", "ex*.com", "**.a.com"])
def test_bad_wildcard(pattern: str) -> None:
    assert ENFORCE_DOMAIN_WILDCARD == "Domain wildcard patterns must be like '*.example.com'."
    with pytest.raises(AssertionError, match=r"^Domain wildcard patterns must be like"):
        TrustedHostMiddleware(ok_app, allowed_hosts=[pattern])


@pytest.mark.parametrize(
    ("allowed", "host", "status"),
    [
        (["example.com"], "example.com", 200),
        (["example.com"], "example.com:8000", 200),
        (["example.com"], "EXAMPLE.COM", 200),
        (["Example.com"], "example.com", 200),
        (["example.com"], "evil.com", 400),
        (["example.com"], "www.example.com", 400),
        (["example.com"], "example.com.", 400),
        (["example.com:8000"], "example.com:8000", 400),  # patterns are hosts, not netlocs
        (["*.example.com"], "a.example.com", 200),
        (["*.example.com"], "a.b.example.com", 200),
        (["*.example.com"], "example.com", 400),
        (["*.example.com"], "aexample.com", 400),
        (["*.example.com"], "example.com.evil.com", 400),
        (["[::1]"], "[::1]:8000", 200),
        (["[::1]"], "[::1]", 200),
        (["::1"], "[::1]", 400),  # as Starlette: IPv6 is allowed in its Host form only
        (["::1"], "::1", 400),
        (["example.com"], "example.com:0", 200),
        (["example.com"], "example.com:65536", 200),  # as Starlette: the port is not checked
        (["example.com"], "example.com:00000000000000000080", 200),
        (["[::1]"], "[::1]:99999", 200),
        (["[v1.foo]"], "[v1.foo]:70000", 200),
        (["*.example.com"], "a.example.com:100000", 200),
        (["*"], "anything.at.all", 200),
    ],
)
def test_allowed_hosts(
    test_client_factory: TestClientFactory, allowed: list[str], host: str, status: int
) -> None:
    client = test_client_factory(make_app(allowed))
    response = client.get("/", headers={"host": host})
    assert response.status_code == status
    if status == 400:
        assert response.text == "Invalid host header"
        assert response.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.anyio
async def test_missing_host_header() -> None:
    middleware = TrustedHostMiddleware(ok_app, allowed_hosts=["example.com"])
    sent = await drive(middleware, [])
    assert sent[0]["status"] == 400
    anything = TrustedHostMiddleware(ok_app)
    assert (await drive(anything, []))[0]["status"] == 200


def test_www_redirect(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app(["www.example.com"]), base_url="https://example.com")
    response = client.get("/a b?x=1", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "https://www.example.com/a%20b?x=1"
    response = client.get("/p", headers={"host": "Example.com:8000"}, follow_redirects=False)
    assert response.headers["location"] == "https://www.Example.com:8000/p"


def test_www_redirect_disabled(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app(["www.example.com"], www_redirect=False))
    response = client.get("/", headers={"host": "example.com"}, follow_redirects=False)
    assert response.status_code == 400


def test_www_redirect_only_to_exact_hosts(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app(["*.example.com", "www.[::1]"]))
    for host in ("example.com", "[::1]"):
        response = client.get("/", headers={"host": host}, follow_redirects=False)
        assert response.status_code == 400


@pytest.mark.anyio
async def test_www_redirect_keeps_the_path_on_the_host() -> None:
    middleware = TrustedHostMiddleware(ok_app, allowed_hosts=["www.example.com"])
    sent = await drive(middleware, [(b"host", b"example.com")], path="//evil.com/x")
    assert dict(sent[0]["headers"])[b"location"] == b"http://www.example.com//evil.com/x"


@pytest.mark.parametrize(
    "host",
    [
        b"example.com\r\nSet-Cookie: a=b",
        b"example.com@evil.com",
        b"evil.com@example.com",
        b"example.com/evil",
        b"example.com:abc",
        b"example.com:",
        b"example.com:+80",
        b"example.com:-1",
        b"example.com: 80",
        b"example.com:\xb2",  # a digit for str.isdigit(), but not ASCII
        b"example.com:80:80",
        b"example.com:1:",
        b"[::1]:",
        b"ex ample.com",
        b"\xc3\xa9.example.com",
        b"",
        b"a" * 10_000 + b".example.com",
        b"a" * (MAX_HOST_LENGTH - len(".example.com") + 1) + b".example.com",
    ],
)
@pytest.mark.anyio
async def test_hostile_host_is_refused(host: bytes) -> None:
    middleware = TrustedHostMiddleware(ok_app, allowed_hosts=["*.example.com", "example.com"])
    sent = await drive(middleware, [(b"host", host)])
    assert sent[0]["status"] == 400
    assert sent[1]["body"] == b"Invalid host header"


@pytest.mark.parametrize(
    "host", [b"example.com/evil", b"example.com@evil.com", b"example.com\r\nLocation: x"]
)
@pytest.mark.anyio
async def test_hostile_host_gets_no_redirect(host: bytes) -> None:
    middleware = TrustedHostMiddleware(ok_app, allowed_hosts=["www.example.com"])
    sent = await drive(middleware, [(b"host", host)])
    assert sent[0]["status"] == 400
    assert not any(name == b"location" for name, _ in sent[0]["headers"])


@pytest.mark.anyio
async def test_www_redirect_with_an_out_of_range_port() -> None:
    # As Starlette: request.url drops such a port and falls back to the server address, so the
    # redirect goes to "www." + the server's host, never to a host the client chose.
    middleware = TrustedHostMiddleware(ok_app, allowed_hosts=["www.example.com"])
    sent = await drive(middleware, [(b"host", b"example.com:70000")], path="/p")
    assert sent[0]["status"] == 307
    assert dict(sent[0]["headers"])[b"location"] == b"http://www.testserver/p"
    sent = await drive(
        middleware, [(b"host", b"example.com:" + b"9" * 5000)], path="/p", server=("srv", 8080)
    )
    assert dict(sent[0]["headers"])[b"location"] == b"http://www.srv:8080/p"


@pytest.mark.anyio
async def test_redirect_strips_crlf_from_the_path() -> None:
    middleware = TrustedHostMiddleware(ok_app, allowed_hosts=["www.example.com"])
    sent = await drive(
        middleware,
        [(b"host", b"example.com")],
        path="/\r\nSet-Cookie: a=b",
        query_string=b"q=\r\n1",
    )
    assert sent[0]["status"] == 307
    assert dict(sent[0]["headers"])[b"location"] == (
        b"http://www.example.com/Set-Cookie:%20a=b?q=1"
    )


@pytest.mark.anyio
async def test_longest_allowed_host() -> None:
    host = b"a" * (MAX_HOST_LENGTH - len(".example.com")) + b".example.com"
    middleware = TrustedHostMiddleware(ok_app, allowed_hosts=["*.example.com"])
    assert (await drive(middleware, [(b"host", host + b":80")]))[0]["status"] == 200


@pytest.mark.anyio
async def test_first_host_header_counts() -> None:
    middleware = TrustedHostMiddleware(ok_app, allowed_hosts=["example.com"])
    headers = [(b"host", b"evil.com"), (b"host", b"example.com")]
    assert (await drive(middleware, headers))[0]["status"] == 400


def test_websocket(test_client_factory: TestClientFactory) -> None:
    async def ws_app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    client = test_client_factory(TrustedHostMiddleware(ws_app, allowed_hosts=["testserver"]))
    with client.websocket_connect("/") as websocket:
        assert websocket.receive_text() == "hi"


@pytest.mark.anyio
async def test_websocket_denied_or_redirected() -> None:
    app = TrustedHostMiddleware(ok_app, allowed_hosts=["www.example.com"])
    sent = await drive(app, [(b"host", b"evil.com")], type="websocket", scheme="ws")
    assert sent[0]["type"] == "websocket.http.response.start"
    assert sent[0]["status"] == 400
    sent = await drive(app, [(b"host", b"example.com")], type="websocket", scheme="ws")
    assert sent[0]["status"] == 307
    assert dict(sent[0]["headers"])[b"location"] == b"ws://www.example.com/"


@pytest.mark.anyio
async def test_lifespan_passes_through() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    middleware = TrustedHostMiddleware(app, allowed_hosts=["example.com"])
    scope: Scope = {"type": "lifespan"}
    await middleware(scope, None, None)  # type: ignore[arg-type]
    assert seen == [scope]
