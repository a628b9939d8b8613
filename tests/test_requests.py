"""starling.requests: HTTPConnection and Request, through the TestClient and on raw scopes.

Expected values were recorded by running the same calls on Starlette 1.10.
"""

from __future__ import annotations

import io
import json
import sys
import types
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qsl

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from starling._formerrors import MultiPartException
from starling.datastructures import URL, Address, FormData, Headers, State, UploadFile, URLPath
from starling.exceptions import HTTPException
from starling.requests import (
    SERVER_PUSH_HEADERS_TO_COPY,
    ClientDisconnect,
    HTTPConnection,
    Request,
    _body_chunks,
    empty_receive,
    empty_send,
)
from starling.types import Message, Receive, Scope, Send
from tests.types import TestClientFactory

FORM = b"application/x-www-form-urlencoded"


# --- helpers -------------------------------------------------------------------------------


async def respond(send: Send, content: Any, status: int = 200) -> None:
    """Send ``content`` as JSON with raw ASGI messages (no dependency on starling.responses)."""
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(content).encode()})


def make_scope(**changes: Any) -> Scope:
    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": "/p/q",
        "root_path": "",
        "scheme": "http",
        "query_string": b"a=1",
        "headers": [],
        "server": ("srv", 8000),
    }
    scope.update(changes)
    return scope


def body_message(body: bytes, more_body: bool = False) -> Message:
    return {"type": "http.request", "body": body, "more_body": more_body}


class Receiver:
    """A receive channel that replays messages, then reports a disconnect; counts calls."""

    def __init__(self, *messages: Message) -> None:
        self.messages = list(messages)
        self.calls = 0

    async def __call__(self) -> Message:
        self.calls += 1
        if self.messages:
            return self.messages.pop(0)
        return {"type": "http.disconnect"}


def form_request(body: bytes, content_type: bytes = FORM, **changes: Any) -> Request[Any]:
    headers = [(b"content-type", content_type)]
    return Request(
        make_scope(method="POST", headers=headers, **changes), Receiver(body_message(body))
    )


async def read_stream(request: Request[Any]) -> list[bytes]:
    return [chunk async for chunk in request.stream()]


# --- through the TestClient ----------------------------------------------------------------


def test_url_method_and_query_params(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        content = {
            "method": request.method,
            "url": str(request.url),
            "base_url": str(request.base_url),
            "query_params": request.query_params.multi_items(),
        }
        await respond(send, content)

    client = test_client_factory(app)
    response = client.get("/123?a=abc&a=2&b=%20")
    assert response.json() == {
        "method": "GET",
        "url": "http://testserver/123?a=abc&a=2&b=%20",
        "base_url": "http://testserver/",
        "query_params": [["a", "abc"], ["a", "2"], ["b", " "]],
    }
    response = client.post("https://example.org:123/")
    assert response.json()["url"] == "https://example.org:123/"
    assert response.json()["method"] == "POST"


def test_headers_and_client(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        client = request.client
        assert client is not None
        content = {
            "host": request.headers["host"],
            "custom": request.headers.getlist("x-custom"),
            "client": [client.host, client.port],
        }
        await respond(send, content)

    client = test_client_factory(app, client=("1.2.3.4", 8080))
    response = client.get("/", headers={"X-Custom": "v1"})
    assert response.json() == {"host": "testserver", "custom": ["v1"], "client": ["1.2.3.4", 8080]}


def test_cookies(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, Request(scope, receive).cookies)

    client = test_client_factory(app)
    response = client.get("/", headers={"cookie": 'a=1; b="x\\101"; bare; a=2'})
    assert response.json() == {"a": "2", "b": "xA", "": "bare"}


def test_body_json_and_stream(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        chunks = await read_stream(request)
        await respond(send, {"stream": b"".join(chunks).decode(), "last": chunks[-1].decode()})

    client = test_client_factory(app)
    assert client.post("/", content=b"abc").json() == {"stream": "abc", "last": ""}
    assert client.get("/").json() == {"stream": "", "last": ""}

    async def json_app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        await respond(send, {"json": await request.json(), "same": json.loads(body)})

    client = test_client_factory(json_app)
    response = client.post("/", json={"a": "123"})
    assert response.json() == {"json": {"a": "123"}, "same": {"a": "123"}}


def test_urlencoded_form(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        form = await request.form()
        await respond(send, form.multi_items())

    client = test_client_factory(app)
    response = client.post("/", data={"abc": "123 @", "x": ["1", "2"]})
    assert response.json() == [["abc", "123 @"], ["x", "1"], ["x", "2"]]
    assert client.post("/", content=b"a=1", headers={"content-type": "text/plain"}).json() == []


@pytest.mark.parametrize(
    ("limits", "detail"),
    [
        ({"max_fields": 1}, "Too many fields. Maximum number of fields is 1."),
        ({"max_part_size": 3}, "Field exceeded maximum size of 0KB."),
    ],
)
def test_form_limit_is_a_400_inside_an_application(
    test_client_factory: TestClientFactory, limits: dict[str, int], detail: str
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # An application puts itself in the scope; that is what turns the error into a 400.
        request = Request({**scope, "app": app}, receive)
        try:
            await request.form(**limits)
        except HTTPException as exc:
            await respond(send, exc.detail, status=exc.status_code)

    client = test_client_factory(app)
    response = client.post("/", data={"a": "1234", "b": "2"})
    assert response.status_code == 400
    assert response.json() == detail


def test_stream_consumed(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        await request.form()
        try:
            await request.body()
        except RuntimeError as exc:
            await respond(send, str(exc))

    client = test_client_factory(app)
    assert client.post("/", data={"a": "1"}).json() == "Stream consumed"


def test_receive_channel_not_given(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        try:
            await request.body()
        except RuntimeError as exc:
            await respond(send, str(exc))

    client = test_client_factory(app)
    assert client.post("/", content=b"x").json() == "Receive channel has not been made available"


def test_state_is_shared_through_the_scope(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        Request(scope, receive).state.example = 1
        await respond(send, {"example": Request(scope, receive).state.example})

    client = test_client_factory(app)
    assert client.get("/").json() == {"example": 1}


@pytest.mark.parametrize(
    "host",
    [b"evil.com@good.com", b"a b", b"", b"a:xx", b"a:999999", b"[::1", b"a/b", b"a#b", b"\xe9\xff"],
)
def test_malformed_host_header_falls_back_to_the_server(
    test_client_factory: TestClientFactory, host: bytes
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        await respond(send, [str(request.url), request.url.hostname, request.headers["host"]])

    client = test_client_factory(app)
    response = client.get("/path", headers=[(b"host", host)])
    url, hostname, host_header = response.json()
    assert (url, hostname) == ("http://testserver/path", "testserver")
    if host.isascii():  # how a client encodes other bytes is the client's business
        assert host_header == host.decode()


def test_hostile_cookie_and_query_through_the_client(
    test_client_factory: TestClientFactory,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        await respond(send, [request.cookies, request.query_params.multi_items()])

    client = test_client_factory(app)
    response = client.get("/?a=%zz&%=%ff&b", headers={"cookie": 'x="\\400\\"; ;;=; y="\\'})
    assert response.json() == [
        {"x": "400\\", "y": '"\\'},
        [["a", "%zz"], ["%", "\ufffd"], ["b", ""]],
    ]


# --- the connection as a mapping over the scope --------------------------------------------


def test_connection_is_a_mapping_over_the_scope() -> None:
    scope = make_scope()
    connection: HTTPConnection[Any] = HTTPConnection(scope)
    assert connection["path"] == "/p/q"
    assert list(connection) == list(scope)
    assert len(connection) == len(scope)
    assert "method" in connection
    assert dict(connection) == scope


def test_connections_compare_by_identity() -> None:
    scope = make_scope()
    first: HTTPConnection[Any] = HTTPConnection(scope)
    second: HTTPConnection[Any] = HTTPConnection(scope)
    assert first == first
    assert first != second
    assert first != scope
    assert len({first, second}) == 2


def test_scope_type_is_checked() -> None:
    websocket: HTTPConnection[Any] = HTTPConnection(make_scope(type="websocket"))
    assert websocket.scope["type"] == "websocket"
    with pytest.raises(AssertionError):
        HTTPConnection(make_scope(type="lifespan"))
    with pytest.raises(AssertionError):
        Request(make_scope(type="websocket"))


def test_request_keeps_user_attributes() -> None:
    request: Request[Any] = Request(make_scope(method="PATCH"))
    assert request.method == "PATCH"
    request.custom = "value"  # type: ignore[attr-defined]
    assert request.custom == "value"  # type: ignore[attr-defined]


# --- url, base_url, url_for ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "url", "base_url"),
    [
        ({}, "http://srv:8000/p/q?a=1", "http://srv:8000/"),
        (
            {"headers": [(b"host", b"example.com:8080")]},
            "http://example.com:8080/p/q?a=1",
            "http://example.com:8080/",
        ),
        (
            {"root_path": "/api", "path": "/api/p"},
            "http://srv:8000/api/p?a=1",
            "http://srv:8000/api/",
        ),
        (
            {"root_path": "/api/", "path": "/api/p"},
            "http://srv:8000/api/p?a=1",
            "http://srv:8000/api/",
        ),
        (
            {"root_path": "/api/sub", "app_root_path": "/api", "path": "/api/sub/p"},
            "http://srv:8000/api/sub/p?a=1",
            "http://srv:8000/api/",
        ),
        ({"server": None}, "/p/q?a=1", "/"),
        ({"scheme": "https", "server": ("h", 443)}, "https://h/p/q?a=1", "https://h/"),
        ({"type": "websocket", "scheme": "ws", "server": ("h", 80)}, "ws://h/p/q?a=1", "ws://h/"),
        ({"server": ("::1", 8000)}, "http://[::1]:8000/p/q?a=1", "http://[::1]:8000/"),
    ],
)
def test_url_and_base_url(changes: dict[str, Any], url: str, base_url: str) -> None:
    connection: HTTPConnection[Any] = HTTPConnection(make_scope(**changes))
    assert str(connection.url) == url
    assert str(connection.base_url) == base_url


def test_url_and_base_url_are_cached() -> None:
    connection: HTTPConnection[Any] = HTTPConnection(make_scope())
    assert connection.url is connection.url
    assert connection.base_url is connection.base_url
    assert connection.headers is connection.headers
    assert connection.query_params is connection.query_params
    assert connection.cookies is connection.cookies
    assert connection.state is connection.state


class FakeRouter:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        self.calls.append((name, path_params))
        return URLPath(f"/{name}/{path_params.get('id', '')}")


def test_url_for_uses_the_router_and_the_base_url() -> None:
    router = FakeRouter()
    scope = make_scope(root_path="/r", router=router, app=FakeRouter())
    url = HTTPConnection(scope).url_for("item", id=3)
    assert isinstance(url, URL)
    assert str(url) == "http://srv:8000/r/item/3"
    assert router.calls == [("item", {"id": 3})]


def test_url_for_uses_app_root_path_under_a_mount() -> None:
    scope = make_scope(root_path="/api/m", app_root_path="/api", router=FakeRouter())
    assert str(HTTPConnection(scope).url_for("x")) == "http://srv:8000/api/x/"


def test_url_for_falls_back_to_the_app() -> None:
    app = FakeRouter()
    url = HTTPConnection(make_scope(router=None, app=app)).url_for("name")
    assert str(url) == "http://srv:8000/name/"
    assert app.calls == [("name", {})]


def test_url_for_protocol_follows_the_connection() -> None:
    class WebSocketRouter:
        def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
            return URLPath("/ws", protocol="websocket", host="other.com")

    scope = make_scope(scheme="https", router=WebSocketRouter())
    assert str(HTTPConnection(scope).url_for("ws")) == "wss://other.com/ws"


def test_url_for_without_router_or_app() -> None:
    connection: HTTPConnection[Any] = HTTPConnection(make_scope())
    with pytest.raises(RuntimeError) as info:
        connection.url_for("name")
    assert str(info.value) == (
        "The `url_for` method can only be used inside a Starlette application or with a router."
    )


# --- other connection properties -----------------------------------------------------------


def test_client_address() -> None:
    connection: HTTPConnection[Any] = HTTPConnection(make_scope(client=("1.2.3.4", 5)))
    assert connection.client == Address(host="1.2.3.4", port=5)
    assert HTTPConnection(make_scope(client=None)).client is None
    assert HTTPConnection(make_scope()).client is None


def test_path_params_and_app() -> None:
    assert HTTPConnection(make_scope()).path_params == {}
    assert HTTPConnection(make_scope(path_params={"id": 5})).path_params == {"id": 5}
    assert HTTPConnection(make_scope(app="APP")).app == "APP"
    with pytest.raises(KeyError):
        HTTPConnection(make_scope()).app  # noqa: B018


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("session", "SessionMiddleware must be installed to access request.session"),
        ("auth", "AuthenticationMiddleware must be installed to access request.auth"),
        ("user", "AuthenticationMiddleware must be installed to access request.user"),
    ],
)
def test_middleware_provided_values(name: str, message: str) -> None:
    with pytest.raises(AssertionError) as info:
        getattr(HTTPConnection(make_scope()), name)
    assert str(info.value) == message
    assert getattr(HTTPConnection(make_scope(**{name: {"v": 1}})), name) == {"v": 1}


def test_state_is_created_in_the_scope() -> None:
    scope = make_scope()
    state = HTTPConnection(scope).state
    assert isinstance(state, State)
    assert scope["state"] == {}
    state.x = 1
    assert scope["state"] == {"x": 1}
    # another connection over the same scope sees the same values through a new State
    other = HTTPConnection(scope).state
    assert other is not state
    assert other.x == 1


def test_existing_state_is_wrapped() -> None:
    values = {"db": "pool"}
    request: Request[State] = Request(make_scope(state=values))
    assert request.state.db == "pool"
    request.state.extra = 2
    assert values == {"db": "pool", "extra": 2}


def test_missing_scope_keys_are_key_errors_as_in_starlette() -> None:
    with pytest.raises(KeyError):
        HTTPConnection({"type": "http"}).headers  # noqa: B018
    with pytest.raises(KeyError):
        HTTPConnection({"type": "http"}).query_params  # noqa: B018
    with pytest.raises(KeyError):
        Request({"type": "http"}).method  # noqa: B018


# --- hostile input on raw scopes -----------------------------------------------------------


HOSTILE_HOSTS = [
    b"evil.com@good.com",
    b"evil.com/x",
    b"a b",
    b"",
    b"a:xx",
    b"a:999999",
    b"[::1",
    b"[::zz]",
    b"a#b",
    b"a?b",
    b"\xff\xfe",
    b"a\x00b",
    b"a\r\nb",
]


@pytest.mark.parametrize("host", HOSTILE_HOSTS)
def test_hostile_host_never_moves_the_authority(host: bytes) -> None:
    connection: HTTPConnection[Any] = HTTPConnection(make_scope(headers=[(b"host", host)]))
    assert connection.url.hostname == "srv"
    assert str(connection.url) == "http://srv:8000/p/q?a=1"
    assert str(connection.base_url) == "http://srv:8000/"
    assert connection.headers["host"] == host.decode("latin-1")


@pytest.mark.parametrize("path", ["@evil.com/x", "//evil.com/x", "x", "/a?b#c"])
def test_hostile_path_never_moves_the_authority(path: str) -> None:
    url = HTTPConnection(make_scope(path=path)).url
    assert url.hostname == "srv"
    assert url.port == 8000


@pytest.mark.parametrize(
    "query_string", [b"\xff=\xfe", b"a=%zz&%=%%", b"a=%ff", b"\x00&\r\n", b"a#b", b"a=\xe2\x82"]
)
def test_hostile_query_string(query_string: bytes) -> None:
    connection: HTTPConnection[Any] = HTTPConnection(make_scope(query_string=query_string))
    str(connection.url)
    assert connection.url.hostname == "srv"
    assert isinstance(connection.query_params.multi_items(), list)


def test_query_params_read_raw_bytes_as_latin_1() -> None:
    connection: HTTPConnection[Any] = HTTPConnection(
        make_scope(query_string=b"\xff=\xfe&a=%E2%82%AC")
    )
    assert connection.query_params.multi_items() == [("ÿ", "þ"), ("a", "€")]


def test_header_and_cookie_bytes_are_read_as_latin_1() -> None:
    headers = [(b"x-raw", b"\xff\xfe"), (b"cookie", b"a=\xe2\x82\xac; \xff=\x00")]
    connection: HTTPConnection[Any] = HTTPConnection(make_scope(headers=headers))
    assert connection.headers["x-raw"] == "ÿþ"
    assert connection.cookies == {"a": "â\x82¬", "ÿ": "\x00"}


def test_cookies_from_several_headers() -> None:
    headers = [(b"cookie", b"a=1"), (b"cookie", b"a=2; b=3"), (b"cookie", b"")]
    assert HTTPConnection(make_scope(headers=headers)).cookies == {"a": "2", "b": "3"}
    assert HTTPConnection(make_scope()).cookies == {}


# --- the body ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_stream_yields_chunks_then_an_empty_end() -> None:
    receive = Receiver(body_message(b"ab", True), body_message(b"", True), body_message(b"c"))
    request: Request[Any] = Request(make_scope(), receive)
    assert await read_stream(request) == [b"ab", b"c", b""]
    with pytest.raises(RuntimeError, match="^Stream consumed$"):
        await read_stream(request)
    with pytest.raises(RuntimeError, match="^Stream consumed$"):
        await request.body()


@pytest.mark.anyio
async def test_body_is_cached_and_replayed_by_stream() -> None:
    receive = Receiver(body_message(b"ab", True), body_message(b"cd"))
    request: Request[Any] = Request(make_scope(), receive)
    assert await request.body() == b"abcd"
    assert await request.body() == b"abcd"
    assert await read_stream(request) == [b"abcd", b""]
    assert receive.calls == 2


@pytest.mark.anyio
async def test_empty_body_is_cached() -> None:
    receive = Receiver(body_message(b""))
    request: Request[Any] = Request(make_scope(), receive)
    assert await request.body() == b""
    assert await read_stream(request) == [b"", b""]
    assert receive.calls == 1


@pytest.mark.anyio
async def test_unknown_messages_and_missing_keys_are_skipped() -> None:
    receive = Receiver({"type": "weird"}, {"type": "http.request"})
    request: Request[Any] = Request(make_scope(), receive)
    assert await read_stream(request) == [b""]


@pytest.mark.anyio
async def test_partly_read_stream_resumes() -> None:
    receive = Receiver(body_message(b"ab", True), body_message(b"cd"))
    request: Request[Any] = Request(make_scope(), receive)
    stream = request.stream()
    assert await stream.__anext__() == b"ab"
    await stream.aclose()
    assert await read_stream(request) == [b"cd", b""]


@pytest.mark.anyio
async def test_disconnect_while_reading() -> None:
    receive = Receiver(body_message(b"x", True), {"type": "http.disconnect"})
    request: Request[Any] = Request(make_scope(), receive)
    with pytest.raises(ClientDisconnect):
        await request.body()
    # as in Starlette the stream is not marked consumed: reading again asks the server again
    with pytest.raises(ClientDisconnect):
        await read_stream(request)
    assert receive.calls == 3
    assert await request.is_disconnected()
    assert receive.calls == 3


@pytest.mark.anyio
async def test_json() -> None:
    receive = Receiver(body_message(b'{"a": [1, ', more_body=True), body_message(b"2]}"))
    request: Request[Any] = Request(make_scope(), receive)
    data = await request.json()
    assert data == {"a": [1, 2]}
    assert await request.json() is data


@pytest.mark.anyio
async def test_json_null_is_cached() -> None:
    receive = Receiver(body_message(b"null"))
    request: Request[Any] = Request(make_scope(), receive)
    assert await request.json() is None
    assert await request.json() is None
    assert receive.calls == 1


@pytest.mark.anyio
@pytest.mark.parametrize("body", [b"{bad", b"", b"zz"])
async def test_malformed_json_raises_json_decode_error(body: bytes) -> None:
    # Starlette's behaviour, kept so that applications catching it keep working.
    request: Request[Any] = Request(make_scope(), Receiver(body_message(body)))
    with pytest.raises(json.JSONDecodeError):
        await request.json()
    with pytest.raises(json.JSONDecodeError):
        await request.json()


@pytest.mark.anyio
async def test_deeply_nested_json_is_a_decode_error() -> None:
    # Starlette lets a RecursionError through; starling reports malformed JSON the usual way.
    body = b"[" * 100_000 + b"]" * 100_000
    request: Request[Any] = Request(make_scope(), Receiver(body_message(body)))
    with pytest.raises(json.JSONDecodeError, match="JSON nested too deeply"):
        await request.json()


@pytest.mark.anyio
async def test_json_body_that_is_not_utf8() -> None:
    request: Request[Any] = Request(make_scope(), Receiver(body_message(b"\xff")))
    with pytest.raises(UnicodeDecodeError):
        await request.json()


@pytest.mark.anyio
async def test_json_errors_keep_their_messages_and_are_400s() -> None:
    request: Request[Any] = Request(make_scope(), Receiver(body_message(b"{bad")))
    with pytest.raises(json.JSONDecodeError) as decode_error:
        await request.json()
    assert str(decode_error.value) == str(_json_error(b"{bad"))
    assert repr(decode_error.value).startswith("MalformedJSONBody(")
    assert decode_error.value.pos == 1
    assert isinstance(decode_error.value, HTTPException)
    assert decode_error.value.status_code == 400
    assert decode_error.value.detail == (
        "Malformed JSON in the request body: "
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)."
    )
    request = Request(make_scope(), Receiver(body_message(b"\xff")))
    with pytest.raises(UnicodeDecodeError) as unicode_error:
        await request.json()
    assert str(unicode_error.value) == str(_unicode_error(b"\xff"))
    assert repr(unicode_error.value).startswith("UndecodableJSONBody(")
    assert isinstance(unicode_error.value, HTTPException)
    assert unicode_error.value.status_code == 400


def _json_error(body: bytes) -> json.JSONDecodeError:
    try:
        json.loads(body)
    except json.JSONDecodeError as error:
        return error
    raise AssertionError("expected a decode error")  # pragma: no cover (the body is malformed)


def _unicode_error(body: bytes) -> UnicodeDecodeError:
    try:
        json.loads(body)
    except UnicodeDecodeError as error:
        return error
    raise AssertionError("expected a decode error")  # pragma: no cover (the body is not text)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{bad", "Malformed JSON in the request body: Expecting property name"),
        (b"[" * 100_000, "Malformed JSON in the request body: JSON nested too deeply"),
        (b"\xff\xfe\x00", "The JSON request body is not valid UTF-8, UTF-16 or UTF-32 text."),
    ],
)
def test_malformed_json_in_an_app_is_a_400(
    test_client_factory: TestClientFactory, body: bytes, detail: str
) -> None:
    from starling.applications import Starling
    from starling.responses import JSONResponse
    from starling.routing import Route

    async def endpoint(request: Request[Any]) -> JSONResponse:
        return JSONResponse(await request.json())

    client = test_client_factory(Starling(routes=[Route("/", endpoint, methods=["POST"])]))
    response = client.post("/", content=body)
    assert response.status_code == 400
    assert response.text.startswith(detail)
    assert client.post("/", content=b'{"ok": 1}').json() == {"ok": 1}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "expected"),
    [(b'\xef\xbb\xbf{"a": 1}', {"a": 1}), (b"\xff\xfe{\x00}\x00", {}), (b'"\xc3\xa9"', "é")],
)
async def test_json_detects_the_encoding(body: bytes, expected: Any) -> None:
    request: Request[Any] = Request(make_scope(), Receiver(body_message(body)))
    assert await request.json() == expected


@pytest.mark.anyio
async def test_empty_channels() -> None:
    with pytest.raises(RuntimeError, match="^Receive channel has not been made available$"):
        await empty_receive()
    with pytest.raises(RuntimeError, match="^Send channel has not been made available$"):
        await empty_send({"type": "http.response.start"})
    request: Request[Any] = Request(make_scope())
    assert request.receive is empty_receive


# --- forms ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_form_is_cached_and_consumes_the_stream() -> None:
    request = form_request(b"a=1&b=%20")
    form = await request.form()
    assert isinstance(form, FormData)
    assert form.multi_items() == [("a", "1"), ("b", " ")]
    assert await request.form(max_fields=0) is form
    with pytest.raises(RuntimeError, match="^Stream consumed$"):
        await request.body()


@pytest.mark.anyio
async def test_form_after_body() -> None:
    request = form_request(b"a=1")
    assert await request.body() == b"a=1"
    assert (await request.form()).multi_items() == [("a", "1")]


@pytest.mark.anyio
async def test_urlencoded_form_read_in_chunks() -> None:
    receive = Receiver(
        body_message(b"a=1&b", True), body_message(b"=2&c=%2", True), body_message(b"0x")
    )
    scope = make_scope(method="POST", headers=[(b"content-type", FORM)])
    request: Request[Any] = Request(scope, receive)
    assert (await request.form()).multi_items() == [("a", "1"), ("b", "2"), ("c", " x")]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=50, deadline=None)
@given(body=st.binary(max_size=60), cuts=st.lists(st.integers(0, 60), max_size=4))
def test_urlencoded_form_equals_parse_qsl_for_any_chunking(
    backend: str, body: bytes, cuts: list[int]
) -> None:
    points = sorted({min(cut, len(body)) for cut in cuts})
    bounds = zip([0, *points], [*points, len(body)], strict=True)
    pieces = [body[start:end] for start, end in bounds]
    messages = [body_message(piece, True) for piece in pieces[:-1]] + [body_message(pieces[-1])]
    scope = make_scope(method="POST", headers=[(b"content-type", FORM)])

    async def read_form() -> list[tuple[str, Any]]:
        return (await Request(scope, Receiver(*messages)).form()).multi_items()

    expected = parse_qsl(body.decode("latin-1"), keep_blank_values=True)
    assert anyio.run(read_form, backend=backend) == expected


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content_type",
    [
        b"application/x-www-form-urlencoded;charset=utf-8",
        b" Application/X-WWW-Form-Urlencoded ",
        b"application/x-www-form-urlencoded\t;x=1",
        b"APPLICATION/x-www-form-urlencoded;",
    ],
)
async def test_urlencoded_content_types(content_type: bytes) -> None:
    request = form_request(b"a=%E9", content_type)
    assert (await request.form()).multi_items() == [("a", "\ufffd")]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content_type",
    [
        b"text/plain",
        b"application/json",
        b"application/x-www-form-urlencodedX",
        b'"application/x-www-form-urlencoded"',
        b"application/x-www-form-urlencoded,text/plain",
        b"\x0bapplication/x-www-form-urlencoded",
        b"application/x-www-form-urlencoded\r\n",
        b"\xffapplication/x-www-form-urlencoded",
    ],
)
async def test_other_content_types_give_an_empty_form_without_reading(
    content_type: bytes,
) -> None:
    request = form_request(b"a=1", content_type)
    assert await request.form() == FormData()
    assert await request.body() == b"a=1"


@pytest.mark.anyio
async def test_no_content_type_gives_an_empty_form() -> None:
    request: Request[Any] = Request(make_scope(method="POST"), Receiver())
    assert await request.form() == FormData()


@pytest.mark.anyio
async def test_form_limit_outside_an_application_raises_multipart_exception() -> None:
    request = form_request(b"a=1&b=2")
    with pytest.raises(MultiPartException) as info:
        await request.form(max_fields=1)
    assert info.value.message == "Too many fields. Maximum number of fields is 1."


@pytest.mark.anyio
async def test_form_limit_inside_an_application_raises_http_exception() -> None:
    request = form_request(b"a=12345", app=object())
    with pytest.raises(HTTPException) as info:
        await request.form(max_part_size=4)
    assert info.value.status_code == 400
    assert info.value.detail == "Field exceeded maximum size of 0KB."
    assert isinstance(info.value.__cause__, MultiPartException)


@pytest.mark.anyio
async def test_form_as_context_manager() -> None:
    request = form_request(b"a=1")
    async with request.form() as form:
        assert form.multi_items() == [("a", "1")]
    await request.close()


@pytest.mark.anyio
async def test_close_without_form() -> None:
    request: Request[Any] = Request(make_scope())
    await request.close()


# --- multipart: delegated to starling.formparsers ------------------------------------------


class FakeMultiPartParser:
    """Stands in for starling.formparsers.MultiPartParser: records how it is called."""

    created: list[FakeMultiPartParser] = []

    def __init__(
        self,
        headers: Headers,
        stream: AsyncIterator[bytes],
        *,
        max_files: int | float,
        max_fields: int | float,
        max_part_size: int,
    ) -> None:
        self.headers = headers
        self.stream = stream
        self.limits = (max_files, max_fields, max_part_size)
        self.created.append(self)

    async def parse(self) -> FormData:
        body = b"".join([chunk async for chunk in self.stream])
        if body == b"bad":
            raise MultiPartException("Invalid multipart data.")
        return FormData([("upload", UploadFile(io.BytesIO(body), filename="f.txt"))])


@pytest.fixture
def fake_formparsers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    module = types.ModuleType("starling.formparsers")
    module.MultiPartParser = FakeMultiPartParser  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "starling.formparsers", module)
    FakeMultiPartParser.created.clear()
    yield
    FakeMultiPartParser.created.clear()


MULTIPART = b"multipart/form-data; boundary=x"


@pytest.mark.anyio
@pytest.mark.usefixtures("fake_formparsers")
async def test_multipart_is_delegated_with_the_limits() -> None:
    request = form_request(b"file body", MULTIPART)
    async with request.form(max_files=2, max_fields=3, max_part_size=4) as form:
        upload = form["upload"]
        assert isinstance(upload, UploadFile)
        assert not upload.file.closed
    assert upload.file.closed
    (parser,) = FakeMultiPartParser.created
    assert parser.limits == (2, 3, 4)
    assert parser.headers is request.headers


@pytest.mark.anyio
@pytest.mark.usefixtures("fake_formparsers")
async def test_multipart_content_type_is_matched_case_insensitively() -> None:
    request = form_request(b"x", b"Multipart/Form-Data; boundary=x")
    await request.form()
    await request.close()
    assert len(FakeMultiPartParser.created) == 1


@pytest.mark.anyio
@pytest.mark.usefixtures("fake_formparsers")
async def test_multipart_error_becomes_a_400_inside_an_application() -> None:
    with pytest.raises(MultiPartException):
        await form_request(b"bad", MULTIPART).form()
    with pytest.raises(HTTPException) as info:
        await form_request(b"bad", MULTIPART, app=object()).form()
    assert (info.value.status_code, info.value.detail) == (400, "Invalid multipart data.")


@pytest.mark.anyio
async def test_multipart_without_formparsers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "starling.formparsers", None)
    with pytest.raises(RuntimeError, match="needs starling.formparsers"):
        await form_request(b"x", MULTIPART).form()


# --- disconnects ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_is_disconnected() -> None:
    receive = Receiver()
    request: Request[Any] = Request(make_scope(), receive)
    assert await request.is_disconnected()
    assert await request.is_disconnected()
    assert receive.calls == 1  # remembered


@pytest.mark.anyio
async def test_is_disconnected_takes_a_ready_body_message() -> None:
    # As in Starlette, the body message taken by the check is not given to stream() later.
    receive = Receiver(body_message(b"a=1"))
    request: Request[Any] = Request(make_scope(), receive)
    assert not await request.is_disconnected()
    with pytest.raises(ClientDisconnect):
        await request.body()


@pytest.mark.anyio
async def test_is_disconnected_does_not_wait() -> None:
    async def receive() -> Message:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover (sleep_forever never returns)

    request: Request[Any] = Request(make_scope(), receive)
    with anyio.fail_after(1):
        assert not await request.is_disconnected()


@pytest.mark.anyio
async def test_is_disconnected_after_the_body() -> None:
    receive = Receiver(body_message(b"x"))
    request: Request[Any] = Request(make_scope(), receive)
    assert await request.body() == b"x"
    assert await request.is_disconnected()


# --- server push and early hints -----------------------------------------------------------


class Sender:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)


PUSH_HEADERS = [
    (b"accept", b"text/html"),
    (b"user-agent", b"ua"),
    (b"x-other", b"1"),
    (b"accept", b"b"),
    (b"cache-control", b"no"),
    (b"accept-encoding", b"gzip"),
    (b"accept-language", b"en"),
    (b"host", b"h"),
]


def test_server_push_headers_to_copy() -> None:
    assert {
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "user-agent",
    } == SERVER_PUSH_HEADERS_TO_COPY


@pytest.mark.anyio
async def test_send_push_promise() -> None:
    send = Sender()
    scope = make_scope(headers=PUSH_HEADERS, extensions={"http.response.push": {}})
    await Request(scope, send=send).send_push_promise("/style.css")
    (message,) = send.messages
    assert message["type"] == "http.response.push"
    assert message["path"] == "/style.css"
    assert message["headers"] == [
        (b"accept", b"text/html"),
        (b"accept", b"b"),
        (b"accept-encoding", b"gzip"),
        (b"accept-language", b"en"),
        (b"cache-control", b"no"),
        (b"user-agent", b"ua"),
    ]


@pytest.mark.anyio
async def test_send_early_hints() -> None:
    send = Sender()
    scope = make_scope(extensions={"http.response.early_hint": {}})
    request: Request[Any] = Request(scope, send=send)
    await request.send_early_hints("</a.css>; rel=preload", "</b.js>; rel=preload")
    assert send.messages == [
        {
            "type": "http.response.early_hint",
            "links": [b"</a.css>; rel=preload", b"</b.js>; rel=preload"],
        }
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("extensions", [{}, {"other": {}}, "absent"])
async def test_push_and_hints_need_the_server_extension(extensions: Any) -> None:
    send = Sender()
    scope = make_scope(headers=PUSH_HEADERS)
    if extensions != "absent":
        scope["extensions"] = extensions
    request: Request[Any] = Request(scope, send=send)
    await request.send_push_promise("/x")
    await request.send_early_hints("\u20ac")  # not encoded when nothing is sent
    assert send.messages == []


@pytest.mark.anyio
async def test_push_without_send_channel() -> None:
    scope = make_scope(extensions={"http.response.push": {}, "http.response.early_hint": {}})
    request: Request[Any] = Request(scope)
    with pytest.raises(RuntimeError, match="^Send channel has not been made available$"):
        await request.send_push_promise("/a")
    with pytest.raises(RuntimeError, match="^Send channel has not been made available$"):
        await request.send_early_hints("a")


def test_is_disconnected_after_the_response(test_client_factory: TestClientFactory) -> None:
    """Once the response is complete the server reports the disconnect without waiting."""
    seen: list[bool] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request: Request[Any] = Request(scope, receive)
        await request.body()
        seen.append(await request.is_disconnected())
        from starling.responses import PlainTextResponse

        await PlainTextResponse("ok")(scope, receive, send)
        seen.append(await request.is_disconnected())

    assert test_client_factory(app).post("/", content="body").text == "ok"
    assert seen == [False, True]


# --- The body's chunks without an async generator --------------------------------------------

_MESSAGES = st.lists(
    st.one_of(
        st.builds(
            lambda body, more: {"type": "http.request", "body": body, "more_body": more},
            st.sampled_from([b"", b"a", b"bc"]),
            st.booleans(),
        ),
        st.just({"type": "http.request"}),
        st.just({"type": "http.disconnect"}),
        st.just({"type": "something.else"}),
    ),
    max_size=6,
)


async def _read_all(chunks: Any) -> tuple[list[bytes], str | None]:
    read: list[bytes] = []
    try:
        async for chunk in chunks:
            read.append(chunk)
    except (ClientDisconnect, RuntimeError) as exc:
        return read, repr(exc)
    return read, None


_END: Message = {"type": "http.request", "body": b"end", "more_body": False}


def _request_over(messages: list[Message], cached: bytes | None, consumed: bool) -> Request:
    queue = [*messages, _END]

    async def receive() -> Message:
        return queue.pop(0)

    request = Request({"type": "http", "headers": []}, receive)
    if cached is not None:
        request._body = cached
    if consumed:
        request._stream_consumed = True
    return request


def _expected_reading(
    messages: list[Message], cached: bytes | None, consumed: bool
) -> tuple[list[bytes], str | None, list[bool]]:
    """What reading the body gives, from the messages alone: chunks, error, final flags."""
    if cached is not None:
        return [cached, b""], None, [consumed, False]
    if consumed:
        return [], repr(RuntimeError("Stream consumed")), [True, False]
    read: list[bytes] = []
    for message in [*messages, _END]:
        if message["type"] == "http.request":
            if message.get("body", b""):
                read.append(message["body"])
            if not message.get("more_body", False):
                return [*read, b""], None, [True, False]
        elif message["type"] == "http.disconnect":
            return read, repr(ClientDisconnect()), [False, True]
    raise AssertionError("unreachable: the last message ends the body")  # pragma: no cover


@settings(max_examples=300)
@given(
    messages=_MESSAGES,
    cached=st.sampled_from([None, b"", b"cached"]),
    consumed=st.booleans(),
    reader=st.sampled_from(["stream", "chunks"]),
)
def test_reading_the_body_chunk_by_chunk(
    messages: list[Message], cached: bytes | None, consumed: bool, reader: str
) -> None:
    # Request.stream() and the async iterator that body() and forms read (_body_chunks).
    async def read() -> None:
        request = _request_over(messages, cached, consumed)
        chunks = request.stream() if reader == "stream" else _body_chunks(request)
        read, error = await _read_all(chunks)
        flags = [request._stream_consumed, request._is_disconnected]
        assert (read, error, flags) == _expected_reading(messages, cached, consumed)

    anyio.run(read)


class _RecordingRequest(Request):
    """A Request whose class has a stream() of its own: it is what forms and body() read."""

    closed: list[str] = []

    async def stream(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        try:
            async for chunk in super().stream():
                yield chunk.upper()
        finally:
            self.closed.append("closed")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        (b"application/x-www-form-urlencoded", b"a=b", [("A", "B")]),
        (b"multipart/form-data; boundary=X", b"--x\r\nx\r\n", None),
    ],
)
async def test_a_request_class_with_its_own_stream(
    content_type: bytes, body: bytes, expected: Any
) -> None:
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        return messages.pop(0)

    _RecordingRequest.closed = []
    request = _RecordingRequest(
        {"type": "http", "headers": [(b"content-type", content_type)]}, receive
    )
    if expected is None:  # upper-cased, the boundary no longer matches: malformed
        with pytest.raises(MultiPartException):
            await request.form()
    else:
        assert list((await request.form()).multi_items()) == expected
    assert _RecordingRequest.closed == ["closed"]
