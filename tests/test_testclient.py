from __future__ import annotations

import contextlib
import importlib
import inspect
import sys
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import httpx2
import pytest

from starling import _testclient_http
from starling.exceptions import StarletteDeprecationWarning
from starling.testclient import TestClient, WebSocketDenialResponse, WebSocketTestSession
from starling.types import Message, Receive, Scope, Send
from starling.websockets import WebSocketDisconnect
from tests.types import TestClientFactory

# --- helpers -------------------------------------------------------------------------------


async def respond(send: Send, body: bytes = b"", status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


# What the client library sends by default ("gzip, deflate", plus "zstd" where it can decode it)
ACCEPT_ENCODING = httpx2.Client().headers["accept-encoding"].encode()


def scope_recorder(scopes: list[Scope]) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(dict(scope))
        await respond(send, b"ok")

    return app


def read_all(messages: list[Message]) -> Any:
    """An app that records every request message up to the body's end, then responds."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            messages.append(message)
            if not message.get("more_body", False):
                break
        await respond(send)

    return app


# --- the HTTP scope ------------------------------------------------------------------------


def test_default_scope(test_client_factory: TestClientFactory) -> None:
    scopes: list[Scope] = []
    client = test_client_factory(scope_recorder(scopes))
    response = client.get("/a%20b/c?x=1&y=%20", headers={"X-Custom": "v"})
    assert response.status_code == 200
    assert response.text == "ok"
    assert scopes == [
        {
            "type": "http",
            "http_version": "1.1",
            "method": "GET",
            "path": "/a b/c",
            "raw_path": b"/a%20b/c",
            "root_path": "",
            "scheme": "http",
            "query_string": b"x=1&y=%20",
            "headers": [
                (b"host", b"testserver"),
                (b"accept", b"*/*"),
                (b"accept-encoding", ACCEPT_ENCODING),
                (b"connection", b"keep-alive"),
                (b"user-agent", b"testclient"),
                (b"x-custom", b"v"),
            ],
            "client": ("testclient", 50000),
            "server": ["testserver", 80],
            "extensions": {"http.response.debug": {}, "http.response.trailers": {}},
            "state": {},
        }
    ]
    assert list(scopes[0]) == [
        "type",
        "http_version",
        "method",
        "path",
        "raw_path",
        "root_path",
        "scheme",
        "query_string",
        "headers",
        "client",
        "server",
        "extensions",
        "state",
    ]


def test_scope_from_client_options(test_client_factory: TestClientFactory) -> None:
    scopes: list[Scope] = []
    client = test_client_factory(
        scope_recorder(scopes),
        base_url="https://example.org:8443/sub",
        root_path="/root",
        client=("1.2.3.4", 99),
        headers={"h": "1"},
        cookies={"c": "d"},
    )
    client.post("/p", content=b"abc")
    scope = scopes[0]
    assert scope["path"] == "/sub/p"
    assert scope["raw_path"] == b"/sub/p"
    assert scope["root_path"] == "/root"
    assert scope["scheme"] == "https"
    assert scope["server"] == ["example.org", 8443]
    assert scope["client"] == ("1.2.3.4", 99)
    assert scope["headers"] == [
        (b"host", b"example.org:8443"),
        (b"accept", b"*/*"),
        (b"accept-encoding", ACCEPT_ENCODING),
        (b"connection", b"keep-alive"),
        (b"h", b"1"),
        (b"user-agent", b"testclient"),
        (b"cookie", b"c=d"),
        (b"content-length", b"3"),
    ]


@pytest.mark.parametrize(
    ("url", "scheme", "server"),
    [
        ("http://other:81/y", "http", ["other", 81]),
        ("https://other/y", "https", ["other", 443]),
        ("http://[::1]:8000/y", "http", ["::1", 8000]),
    ],
)
def test_server_from_url(
    test_client_factory: TestClientFactory, url: str, scheme: str, server: list[Any]
) -> None:
    scopes: list[Scope] = []
    client = test_client_factory(scope_recorder(scopes))
    client.get(url)
    assert (scopes[0]["scheme"], scopes[0]["server"], scopes[0]["path"]) == (scheme, server, "/y")


def test_root_path_is_not_added_to_path(test_client_factory: TestClientFactory) -> None:
    scopes: list[Scope] = []
    client = test_client_factory(scope_recorder(scopes), root_path="/root")
    client.get("/x")
    client.get("/root/x")
    assert [(s["root_path"], s["path"]) for s in scopes] == [("/root", "/x"), ("/root", "/root/x")]


def test_user_agent_can_be_overridden(test_client_factory: TestClientFactory) -> None:
    scopes: list[Scope] = []
    headers = {"User-Agent": "mine"}
    client = test_client_factory(scope_recorder(scopes), headers=headers)
    client.get("/")
    assert (b"user-agent", b"mine") in scopes[0]["headers"]
    assert headers == {"User-Agent": "mine"}  # the caller's dict is left alone


def test_state_is_a_copy_per_request(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["state"]["seen"] = True
        await respond(send, str(sorted(scope["state"])).encode())

    client = test_client_factory(app)
    client.app_state["shared"] = 1
    assert client.get("/").text == "['seen', 'shared']"
    assert client.app_state == {"shared": 1}


# --- the request body ----------------------------------------------------------------------


def test_request_body_in_one_message(test_client_factory: TestClientFactory) -> None:
    messages: list[Message] = []
    client = test_client_factory(read_all(messages))
    client.post("/", content=b"abc")
    client.post("/")
    assert messages == [
        {"type": "http.request", "body": b"abc"},
        {"type": "http.request", "body": b""},
    ]


def test_request_body_streams_in_chunks(test_client_factory: TestClientFactory) -> None:
    messages: list[Message] = []
    client = test_client_factory(read_all(messages))

    def chunks() -> Iterator[bytes]:
        yield b"a"
        yield b""
        yield b"bc"

    client.post("/", content=chunks())
    assert messages == [
        {"type": "http.request", "body": b"a", "more_body": True},
        {"type": "http.request", "body": b"bc"},
    ]


def test_disconnect_comes_after_the_response(test_client_factory: TestClientFactory) -> None:
    messages: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        messages.append(await receive())
        async with anyio.create_task_group() as tg:

            async def listen() -> None:
                messages.append(await receive())

            tg.start_soon(listen)
            await anyio.wait_all_tasks_blocked()
            messages.append({"type": "sending"})
            await respond(send, b"done")

    client = test_client_factory(app)
    assert client.post("/", content=b"x").text == "done"
    assert messages == [
        {"type": "http.request", "body": b"x"},
        {"type": "sending"},
        {"type": "http.disconnect"},
    ]


# --- responses -----------------------------------------------------------------------------


def test_response_start_and_body_chunks(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "unknown.message"})  # ignored, as by Starlette's client
        await send({"type": "http.response.start", "status": 201, "headers": [(b"x-a", b"1")]})
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        await send({"type": "unknown.message"})
        await send({"type": "http.response.body", "more_body": True})
        await send({"type": "http.response.body", "body": b"y"})

    response = test_client_factory(app).get("/")
    assert response.status_code == 201
    assert response.headers["x-a"] == "1"
    assert response.content == b"xy"
    assert response.extensions == {}
    assert not hasattr(response, "template")


def test_response_without_headers_key(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    response = test_client_factory(app).get("/")
    assert (response.status_code, response.content) == (204, b"")


def test_debug_extension(test_client_factory: TestClientFactory) -> None:
    info = {"template": "T", "context": {"a": 1}}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.debug", "info": info})
        await respond(send, b"page")

    response = test_client_factory(app).get("/")
    assert response.template == "T"  # type: ignore[attr-defined]
    assert response.context == {"a": 1}  # type: ignore[attr-defined]
    assert response.extensions == {"http.response.debug": info}


def test_debug_extension_after_the_start(test_client_factory: TestClientFactory) -> None:
    """Debug info sent between the start and the first body chunk is on the response."""
    info = {"blocks": ["nav"]}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200})
        await anyio.lowlevel.checkpoint()
        await send({"type": "http.response.debug", "info": info})
        await send({"type": "http.response.body", "body": b"page"})

    response = test_client_factory(app).get("/")
    assert response.extensions == {"http.response.debug": info}
    assert not hasattr(response, "template")  # set only when the info names one
    assert not hasattr(response, "context")


def test_debug_extension_too_late(test_client_factory: TestClientFactory) -> None:
    """Once the response exists (the app sent body, ended, or waited on something else),
    later debug info is not shown."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200})
        if scope["path"] == "/waits":
            await anyio.sleep(0.05)
        else:
            await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.debug", "info": {"template": "T"}})
        await send({"type": "http.response.body", "body": b"b"})

    client = test_client_factory(app)
    for path in ("/waits", "/body"):
        response = client.get(path)
        assert response.extensions == {}
        assert not hasattr(response, "template")


def test_debug_extension_of_an_app_that_ends(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.debug", "info": {"context": {"a": 1}}})

    response = test_client_factory(app).get("/")
    assert response.content == b""
    assert response.context == {"a": 1}  # type: ignore[attr-defined]
    assert not hasattr(response, "template")


def test_trailers_extension(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.body", "body": b"x"})
        trailer = {"type": "http.response.trailers", "headers": [(b"t", b"v")]}
        await send({**trailer, "more_trailers": True})
        await send({"type": "http.response.trailers"})

    response = test_client_factory(app).get("/")
    assert response.content == b"x"
    assert response.extensions == {"http.response.trailers": [(b"t", b"v")]}
    assert "t" not in response.headers


def test_trailers_are_recorded_as_the_app_sends_them(
    test_client_factory: TestClientFactory,
) -> None:
    sent = threading.Event()
    log: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()  # the (empty) request body
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.body", "body": b"x"})
        await send({"type": "http.response.trailers", "headers": [(b"t", b"v")]})
        sent.set()
        log.append(await receive())  # the response is complete: the disconnect comes

    with test_client_factory(app).stream("GET", "/") as response:
        assert response.extensions == {"http.response.trailers": []}  # declared
        assert next(response.iter_raw()) == b"x"
        assert sent.wait(5)
        assert response.extensions == {"http.response.trailers": [(b"t", b"v")]}
    assert log == [{"type": "http.disconnect"}]


def test_the_disconnect_waits_for_declared_trailers(
    test_client_factory: TestClientFactory,
) -> None:
    log: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.body", "body": b"x"})
        with anyio.move_on_after(0.05) as waited:
            await receive()
        log.append(waited.cancelled_caught)
        await send({"type": "http.response.trailers", "headers": []})
        log.append(await receive())

    assert test_client_factory(app).get("/").content == b"x"
    assert log == [True, {"type": "http.disconnect"}]


@pytest.mark.parametrize("raise_server_exceptions", [True, False])
def test_trailers_cut_short(
    test_client_factory: TestClientFactory, raise_server_exceptions: bool
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.body", "body": b"x"})
        if scope["path"] == "/none":
            return
        trailer = {"type": "http.response.trailers", "headers": [(b"t", b"v")]}
        await send({**trailer, "more_trailers": True})
        if scope["path"] == "/error":
            raise ValueError("trailers failed")

    client = test_client_factory(app, raise_server_exceptions=raise_server_exceptions)
    assert client.get("/none").extensions == {"http.response.trailers": []}
    assert client.get("/partial").extensions == {"http.response.trailers": [(b"t", b"v")]}
    if raise_server_exceptions:
        with pytest.raises(ValueError, match="trailers failed"):
            client.get("/error")
    else:
        response = client.get("/error")
        assert response.extensions == {"http.response.trailers": [(b"t", b"v")]}


START: Message = {"type": "http.response.start", "status": 200}
START_TRAILERS: Message = {"type": "http.response.start", "status": 200, "trailers": True}
BODY: Message = {"type": "http.response.body", "body": b"x"}
MORE_BODY: Message = {"type": "http.response.body", "body": b"x", "more_body": True}
TRAILERS: Message = {"type": "http.response.trailers"}
MORE_TRAILERS: Message = {"type": "http.response.trailers", "more_trailers": True}


@pytest.mark.parametrize(
    ("messages", "match", "status"),
    [
        ([TRAILERS], 'trailers" without declaring trailers', 500),
        ([START, BODY, TRAILERS], 'trailers" without declaring trailers', 200),
        ([START_TRAILERS, TRAILERS], 'trailers" before body completed', 200),
        ([START_TRAILERS, MORE_BODY, TRAILERS], 'trailers" before body completed', 200),
        ([START_TRAILERS, BODY, BODY], 'body" after body completed', 200),
        ([START_TRAILERS, BODY, MORE_TRAILERS, BODY], 'body" after body completed', 200),
        ([START_TRAILERS, BODY, TRAILERS, BODY], 'body" after response completed', 200),
        ([START_TRAILERS, BODY, TRAILERS, TRAILERS], 'trailers" after response completed', 200),
    ],
)
def test_trailer_sequence_errors(
    test_client_factory: TestClientFactory, messages: list[Message], match: str, status: int
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        pending = iter(messages)
        while True:  # until the client's assertion fails the send
            await send(next(pending))

    with pytest.raises(AssertionError, match=f'^Received "http.response.{match}.$'):
        test_client_factory(app).get("/")
    response = test_client_factory(app, raise_server_exceptions=False).get("/")
    assert response.status_code == status


def test_head_response_has_no_body(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-length", b"5")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"hello"})

    response = test_client_factory(app).head("/")
    assert response.headers["content-length"] == "5"
    assert response.content == b""


def test_redirects(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/from":
            headers = [(b"location", b"/to")]
            await send({"type": "http.response.start", "status": 307, "headers": headers})
            await send({"type": "http.response.body"})
        else:
            await respond(send, scope["path"].encode())

    assert test_client_factory(app).get("/from").text == "/to"
    not_following = test_client_factory(app, follow_redirects=False)
    assert not_following.get("/from").status_code == 307
    assert not_following.get("/from", follow_redirects=True).text == "/to"


def test_timeout_argument_warns(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(scope_recorder([]))
    with pytest.warns(StarletteDeprecationWarning) as record:
        client.request("GET", "/", timeout=3)
    assert str(record[0].message) == (
        "You should not use the 'timeout' argument with the TestClient. "
        "See https://github.com/Kludex/starlette/issues/1108 for more information."
    )
    assert record[0].filename == __file__
    with client.stream("GET", "/", timeout=3) as response:  # streaming does not warn
        assert response.read() == b"ok"


def test_asgi2_app(test_client_factory: TestClientFactory) -> None:
    class App:
        def __init__(self, scope: Scope) -> None:
            self.scope = scope

        async def __call__(self, receive: Receive, send: Send) -> None:
            await respond(send, self.scope["path"].encode())

    assert test_client_factory(App).get("/asgi2").text == "/asgi2"  # type: ignore[arg-type]


def test_awaitable_class_is_asgi3(test_client_factory: TestClientFactory) -> None:
    class Endpoint:
        def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
            self.send = send

        def __await__(self) -> Any:
            return respond(self.send, b"asgi3").__await__()

    assert test_client_factory(Endpoint).get("/").text == "asgi3"


# --- errors in the app ---------------------------------------------------------------------


async def error_app(scope: Scope, receive: Receive, send: Send) -> None:
    path = scope["path"]
    if path == "/before":
        raise ValueError("before")
    if path == "/none":
        return
    await send({"type": "http.response.start", "status": 202, "headers": [(b"a", b"b")]})
    if path == "/after":
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("after")
    if path == "/double":
        await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"x"})
    if path == "/extra":
        await send({"type": "http.response.body", "body": b"y"})


async def body_first_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.body", "body": b"x"})


@pytest.mark.parametrize(
    ("app", "path", "error", "match"),
    [
        (error_app, "/before", ValueError, "before"),
        (error_app, "/after", ValueError, "after"),
        (error_app, "/none", AssertionError, "TestClient did not receive any response."),
        (error_app, "/double", AssertionError, 'Received multiple "http.response.start"'),
        (error_app, "/extra", AssertionError, '"http.response.body" after response completed'),
        (body_first_app, "/", AssertionError, '"http.response.body" without "http.response'),
    ],
)
def test_server_exceptions_are_raised(
    test_client_factory: TestClientFactory,
    app: Any,
    path: str,
    error: type[Exception],
    match: str,
) -> None:
    client = test_client_factory(app)
    with pytest.raises(error, match=match):
        client.get(path)


@pytest.mark.parametrize(
    ("app", "path", "status", "content"),
    [
        (error_app, "/before", 500, b""),
        (error_app, "/none", 500, b""),
        (body_first_app, "/", 500, b""),
        (error_app, "/after", 202, b"partial"),
        (error_app, "/double", 202, b""),
        (error_app, "/extra", 202, b"x"),
        (error_app, "/ok", 202, b"x"),
    ],
)
def test_server_exceptions_become_responses(
    test_client_factory: TestClientFactory, app: Any, path: str, status: int, content: bytes
) -> None:
    client = test_client_factory(app, raise_server_exceptions=False)
    response = client.get(path)
    assert (response.status_code, response.content) == (status, content)


# --- streaming -----------------------------------------------------------------------------


def test_stream_yields_chunks_as_the_app_sends_them(
    test_client_factory: TestClientFactory,
) -> None:
    log: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"%d" % i, "more_body": True})
            log.append(f"sent {i}")
        await send({"type": "http.response.body"})
        log.append("done")

    client = test_client_factory(app)
    with client.stream("GET", "/") as response:
        assert response.status_code == 200
        seen = []
        for chunk in response.iter_bytes():
            seen.append((chunk, list(log)))
    assert [chunk for chunk, _ in seen] == [b"0", b"1", b"2"]
    # The app is held at each send until the test takes that chunk: never a chunk ahead.
    assert all(f"sent {int(chunk) + 1}" not in sent for chunk, sent in seen)
    assert log == ["sent 0", "sent 1", "sent 2", "done"]


def test_closing_a_stream_early_cancels_the_app(test_client_factory: TestClientFactory) -> None:
    log: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x", "more_body": True})
        except anyio.get_cancelled_exc_class():
            log.append("cancelled")
            raise

    client = test_client_factory(app)
    with client.stream("GET", "/") as response:
        assert next(response.iter_bytes()) == b"x"
    assert log == ["cancelled"]


def test_stream_raises_the_app_error(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(error_app)
    with client.stream("GET", "/after") as response:
        assert response.status_code == 202
        with pytest.raises(ValueError, match="after"):
            response.read()


def test_app_ends_before_the_test_reads(test_client_factory: TestClientFactory) -> None:
    log: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, b"body")
        log.append("background work")

    client = test_client_factory(app)
    assert client.get("/").text == "body"
    assert log == ["background work"]  # the request waits for the whole app call


def test_chunks_are_copied_from_mutable_buffers(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        buffer = bytearray(b"one")
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": memoryview(buffer), "more_body": True})
        buffer[:] = b"two"
        await send({"type": "http.response.body", "body": buffer})

    client = test_client_factory(app)
    assert client.get("/").content == b"onetwo"
    with client.stream("GET", "/") as response:
        chunks = list(response.iter_raw())
    assert chunks == [b"one", b"two"]
    assert all(type(chunk) is bytes for chunk in chunks)


def background_app(log: list[str], on_cancel: str = "log") -> Any:
    """Responds at once, then runs "background work" that takes 50 ms (or, at /forever,
    until cancelled); ``on_cancel="raise"`` makes a cancelled app fail."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            for phase in ("startup", "shutdown"):
                await receive()
                log.append(phase)
                await send({"type": f"lifespan.{phase}.complete"})
            return
        await respond(send, b"hello")
        try:
            if scope["path"] == "/forever":
                await anyio.sleep_forever()
            await anyio.sleep(0.05)
        except anyio.get_cancelled_exc_class():
            log.append("cancelled")
            if on_cancel == "raise":
                raise ValueError("failed on cancel") from None
            raise
        log.append("background done")
        if scope["path"] == "/fails":
            raise ValueError("background failed")

    return app


def test_closing_a_complete_response_waits_for_the_app(
    test_client_factory: TestClientFactory,
) -> None:
    log: list[str] = []
    client = test_client_factory(background_app(log))
    with client.stream("GET", "/") as response:
        chunks = response.iter_raw()
        assert next(chunks) == b"hello"
        assert log == []
    assert log == ["background done"]


@pytest.mark.parametrize("raise_server_exceptions", [True, False])
def test_an_app_error_after_the_response(
    test_client_factory: TestClientFactory, raise_server_exceptions: bool
) -> None:
    log: list[str] = []
    client = test_client_factory(
        background_app(log), raise_server_exceptions=raise_server_exceptions
    )
    if raise_server_exceptions:
        with (
            pytest.raises(ValueError, match="background failed"),
            client.stream("GET", "/fails") as response,
        ):
            chunks = response.iter_raw()
            assert next(chunks) == b"hello"
        with pytest.raises(ValueError, match="background failed"):
            client.get("/fails")
    else:
        with client.stream("GET", "/fails") as response:
            chunks = response.iter_raw()
            assert next(chunks) == b"hello"
        assert client.get("/fails").content == b"hello"
    assert log == ["background done"] * 2


@pytest.mark.parametrize("raise_server_exceptions", [True, False])
def test_closing_an_incomplete_response_cancels_the_app(
    test_client_factory: TestClientFactory, raise_server_exceptions: bool
) -> None:
    log: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200})
        try:
            if scope["path"] == "/unread":
                await send({"type": "http.response.body", "body": b"never taken"})
            else:
                await send({"type": "http.response.body", "body": b"x", "more_body": True})
                await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            log.append("cancelled")
            raise ValueError("failed on cancel") from None

    client = test_client_factory(app, raise_server_exceptions=raise_server_exceptions)
    for path in ("/unread", "/partial"):
        with contextlib.ExitStack() as stack:
            if raise_server_exceptions:
                stack.enter_context(pytest.raises(ValueError, match="failed on cancel"))
            with client.stream("GET", path) as response:
                if path == "/partial":
                    chunks = response.iter_raw()
                    assert next(chunks) == b"x"
    assert log == ["cancelled"] * 2


@pytest.mark.parametrize("lifespan", [True, False])
def test_closing_the_client_cancels_open_responses(
    test_client_factory: TestClientFactory, lifespan: bool
) -> None:
    """Leaving `with client:` or closing the client cancels the app behind every response
    still open (complete or not), whichever portal it runs in, before the app shuts down."""
    log: list[str] = []
    client = test_client_factory(background_app(log))

    def open_response() -> Iterator[bytes]:
        response = client.send(client.build_request("GET", "/forever"), stream=True)
        # (kept by the caller: dropping the iterator closes the response, which waits)
        chunks = response.iter_raw()
        assert next(chunks) == b"hello"
        return chunks

    before = open_response()
    if lifespan:
        with client:
            inside = open_response()
        assert log == ["startup", "cancelled", "cancelled", "shutdown"]
        assert client.get("/").content == b"hello"  # the client can be used again
        assert log[-1] == "background done"
    else:
        inside = open_response()
        client.close()
        assert log == ["cancelled", "cancelled"]
    done = list(log)
    assert list(before) == []  # the app is gone: the body ends
    assert list(inside) == []
    assert log == done


@pytest.mark.parametrize("raise_server_exceptions", [True, False])
def test_errors_of_cancelled_responses(
    test_client_factory: TestClientFactory, raise_server_exceptions: bool
) -> None:
    log: list[str] = []
    app = background_app(log, on_cancel="raise")
    client = test_client_factory(app, raise_server_exceptions=raise_server_exceptions)
    with contextlib.ExitStack() as stack:
        if raise_server_exceptions:
            stack.enter_context(pytest.raises(ValueError, match="failed on cancel"))
        with client:
            kept = []
            for _ in range(2):
                response = client.send(client.build_request("GET", "/forever"), stream=True)
                kept.append(response.iter_raw())
                assert next(kept[-1]) == b"hello"
    # Both were cancelled, and the app shut down before the error was raised.
    assert log == ["startup", "cancelled", "cancelled", "shutdown"]


def test_reading_on_after_the_client_closed(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200})
        while True:
            await send({"type": "http.response.body", "body": b"x", "more_body": True})

    client = test_client_factory(app)
    response = client.send(client.build_request("GET", "/"), stream=True)
    chunks = response.iter_raw()
    assert next(chunks) == b"x"
    client.close()
    assert list(chunks) == []


class _Interrupt(Exception):
    pass


def test_a_failure_while_waiting_for_the_start_stops_the_app(
    test_client_factory: TestClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    log: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await respond(send)
        except anyio.get_cancelled_exc_class():
            log.append("cancelled")
            raise

    async def interrupted(self: Any) -> None:
        raise _Interrupt

    monkeypatch.setattr(_testclient_http._Exchange, "start", interrupted)
    with pytest.raises(_Interrupt):
        test_client_factory(app).get("/")
    assert log == ["cancelled"]


# --- lifespan ------------------------------------------------------------------------------


def lifespan_app(log: list[Any], mode: str = "ok") -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            log.append(("request", dict(scope["state"])))
            scope["state"]["mutated"] = True
            scope["state"]["shared"].append(len(log))
            await respond(send)
            return
        log.append(dict(scope))
        if mode == "unsupported":
            return
        log.append(await receive())
        scope["state"]["shared"] = []
        await send({"type": "lifespan.startup.complete"})
        log.append(await receive())
        await send({"type": "lifespan.shutdown.complete"})

    return app


def test_lifespan(test_client_factory: TestClientFactory) -> None:
    log: list[Any] = []
    client = test_client_factory(lifespan_app(log))
    assert client.portal is None
    with client as entered:
        assert entered is client
        assert client.portal is not None
        assert log == [
            {"type": "lifespan", "state": {"shared": []}},
            {"type": "lifespan.startup"},
        ]
        client.get("/")
        client.get("/")
    assert client.portal is None
    assert log[2:] == [
        ("request", {"shared": [3, 4]}),
        ("request", {"shared": [3, 4]}),
        {"type": "lifespan.shutdown"},
    ]
    assert client.app_state == {"shared": [3, 4]}  # a shallow copy per request


def test_requests_in_the_lifespan_share_one_event_loop_thread(
    test_client_factory: TestClientFactory,
) -> None:
    threads: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        threads.append(threading.get_ident())
        if scope["type"] == "http":
            await respond(send)
        else:
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})

    client = test_client_factory(app)
    with client:
        client.get("/")
        client.get("/")
    assert len(threads) == 3
    assert len(set(threads)) == 1


def test_app_without_lifespan_support(test_client_factory: TestClientFactory) -> None:
    log: list[Any] = []
    client = test_client_factory(lifespan_app(log, "unsupported"))
    client.app_state["shared"] = []
    with client:
        client.get("/")
    assert log == [{"type": "lifespan", "state": {"shared": [2]}}, ("request", {"shared": [2]})]


def test_nested_lifespans(test_client_factory: TestClientFactory) -> None:
    log: list[Any] = []
    client = test_client_factory(lifespan_app(log))
    with client:
        outer = client.portal
        with client:
            assert client.portal is not outer
        assert client.portal is outer
        client.get("/")
    assert client.portal is None
    assert [m["type"] for m in log if isinstance(m, dict)] == [
        "lifespan",
        "lifespan.startup",
        "lifespan",
        "lifespan.startup",
        "lifespan.shutdown",
        "lifespan.shutdown",
    ]


def failing_lifespan(phase: str, how: str) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        if phase == "shutdown":
            await send({"type": "lifespan.startup.complete"})
            await receive()
        if how == "raise":
            raise ValueError(f"{phase} error")
        if how == "return":
            return
        if how == "wrong":
            await send({"type": "lifespan.oops"})
            return
        message: Message = {"type": f"lifespan.{phase}.failed"}
        if how != "no message":
            message["message"] = "it broke"
        await send(message)
        if how == "failed and raise":
            raise ValueError(f"{phase} error")  # as Starlette's router does
        if how == "failed and wait":
            await receive()

    return app


@pytest.mark.parametrize("phase", ["startup", "shutdown"])
@pytest.mark.parametrize(
    ("how", "error", "match"),
    [
        ("raise", ValueError, "error"),
        ("failed and raise", ValueError, "error"),
        ("failed", RuntimeError, r"^The app sent lifespan\.{phase}\.failed: it broke$"),
        ("no message", RuntimeError, r"^The app sent lifespan\.{phase}\.failed\.$"),
        ("failed and wait", RuntimeError, "it broke"),
        (
            "wrong",
            RuntimeError,
            r"^Expected ASGI message \"lifespan\.{phase}\.complete\" or "
            r"\"lifespan\.{phase}\.failed\", but got 'lifespan\.oops'\.$",
        ),
    ],
)
def test_lifespan_failures(
    test_client_factory: TestClientFactory,
    phase: str,
    how: str,
    error: type[Exception],
    match: str,
) -> None:
    client = test_client_factory(failing_lifespan(phase, how))
    with pytest.raises(error, match=match.format(phase=phase)), client:
        pass
    assert client.portal is None


def test_lifespan_returning_at_shutdown_is_accepted(
    test_client_factory: TestClientFactory,
) -> None:
    client = test_client_factory(failing_lifespan("shutdown", "return"))
    with client:
        pass
    assert client.portal is None


def test_lifespan_methods_are_coroutine_functions() -> None:
    for name in ("lifespan", "wait_startup", "wait_shutdown"):
        assert inspect.iscoroutinefunction(getattr(TestClient, name))
    assert TestClient.__test__ is False


def test_backend_options() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send)

    client = TestClient(app, backend="asyncio", backend_options={"use_uvloop": False})
    assert client.async_backend == {"backend": "asyncio", "backend_options": {"use_uvloop": False}}
    assert client.get("/").status_code == 200
    assert TestClient(app).async_backend == {"backend": "asyncio", "backend_options": {}}


# --- WebSockets ----------------------------------------------------------------------------


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Accepts with the last offered subprotocol and echoes every message back."""
    assert await receive() == {"type": "websocket.connect"}
    offered = scope["subprotocols"]
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": offered[-1] if offered else None,
            "headers": [(b"x-h", b"v")],
        }
    )
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "close":
            await send({"type": "websocket.close", "code": 1001, "reason": "bye"})
            return
        await send({**message, "type": "websocket.send"})


def test_websocket_scope(test_client_factory: TestClientFactory) -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(dict(scope))
        await echo_app(scope, receive, send)

    client = test_client_factory(app, cookies={"k": "v"})
    with client.websocket_connect(
        "/ws?a=1", subprotocols=["a", "b"], headers={"X-Y": "z"}
    ) as session:
        assert isinstance(session, WebSocketTestSession)
        assert session.accepted_subprotocol == "b"
        assert session.extra_headers == [(b"x-h", b"v")]
    assert scopes == [
        {
            "type": "websocket",
            "path": "/ws",
            "raw_path": b"/ws",
            "root_path": "",
            "scheme": "ws",
            "query_string": b"a=1",
            "headers": [
                (b"host", b"testserver"),
                (b"accept", b"*/*"),
                (b"accept-encoding", ACCEPT_ENCODING),
                (b"user-agent", b"testclient"),
                (b"x-y", b"z"),
                (b"connection", b"upgrade"),
                (b"sec-websocket-key", b"testserver=="),
                (b"sec-websocket-version", b"13"),
                (b"sec-websocket-protocol", b"a, b"),
                (b"cookie", b"k=v"),
            ],
            "client": ("testclient", 50000),
            "server": ["testserver", 80],
            "subprotocols": ["a", "b"],
            "state": {},
            "extensions": {"websocket.http.response": {}},
        }
    ]


def test_websocket_url_ignores_base_url(test_client_factory: TestClientFactory) -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(dict(scope))
        await echo_app(scope, receive, send)

    client = test_client_factory(app, base_url="https://h:8443/base", root_path="/r")
    with client.websocket_connect("/ws") as session:
        assert session.accepted_subprotocol is None
    with client.websocket_connect("wss://other/ws"):
        pass
    assert [(s["scheme"], s["server"], s["path"], s["root_path"]) for s in scopes] == [
        ("ws", ["testserver", 80], "/ws", "/r"),
        ("wss", ["other", 443], "/ws", "/r"),
    ]
    assert scopes[0]["subprotocols"] == []
    assert (b"host", b"other") in scopes[1]["headers"]


def test_websocket_send_and_receive(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(echo_app)
    with client.websocket_connect("/") as session:
        session.send_text("hi")
        assert session.receive() == {"type": "websocket.send", "text": "hi"}
        session.send_bytes(b"hi")
        assert session.receive() == {"type": "websocket.send", "bytes": b"hi"}
        session.send_json({"a": "é", "b": [1, 2]})
        assert session.receive() == {"type": "websocket.send", "text": '{"a":"é","b":[1,2]}'}
        session.send_json({"a": "é"}, mode="binary")
        assert session.receive() == {"type": "websocket.send", "bytes": '{"a":"é"}'.encode()}
        session.send({"type": "websocket.receive", "text": "raw"})
        assert session.receive_text() == "raw"
        session.send_bytes(b"raw")
        assert session.receive_bytes() == b"raw"
        session.send_text('{"x": 2}')
        assert session.receive_json() == {"x": 2}
        session.send_bytes('{"x": "é"}'.encode())
        assert session.receive_json(mode="binary") == {"x": "é"}
        session.send_text("close")
        assert session.receive() == {"type": "websocket.close", "code": 1001, "reason": "bye"}


@pytest.mark.parametrize("method", ["receive_text", "receive_bytes", "receive_json"])
def test_websocket_receive_raises_on_close(
    test_client_factory: TestClientFactory, method: str
) -> None:
    client = test_client_factory(echo_app)
    with client.websocket_connect("/") as session:
        session.send_text("close")
        with pytest.raises(WebSocketDisconnect) as info:
            getattr(session, method)()
    assert (info.value.code, info.value.reason) == (1001, "bye")


def test_websocket_close_from_the_test(test_client_factory: TestClientFactory) -> None:
    received: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        received.append(await receive())

    client = test_client_factory(app)
    with client.websocket_connect("/") as session:
        session.close(1002, "reason")
    with client.websocket_connect("/") as session:
        pass  # leaving the block closes with 1000
    assert received == [
        {"type": "websocket.disconnect", "code": 1002, "reason": "reason"},
        {"type": "websocket.disconnect", "code": 1000, "reason": None},
    ]


def test_websocket_app_ignoring_the_close_is_cancelled(
    test_client_factory: TestClientFactory,
) -> None:
    log: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        try:
            await anyio.sleep_forever()
        finally:
            log.append("cancelled")

    with test_client_factory(app).websocket_connect("/"):
        pass
    assert log == ["cancelled"]


def reject_app(message: Message) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send(message)

    return app


@pytest.mark.parametrize(
    ("message", "code", "reason"),
    [
        ({"type": "websocket.close", "code": 1008, "reason": "no"}, 1008, "no"),
        ({"type": "websocket.close"}, 1000, ""),
    ],
)
def test_websocket_closed_before_accept(
    test_client_factory: TestClientFactory, message: Message, code: int, reason: str
) -> None:
    client = test_client_factory(reject_app(message))
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/"):
        pass  # pragma: no cover (the connection is refused before the block runs)
    assert (info.value.code, info.value.reason) == (code, reason)


def test_websocket_denial_response(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "websocket.http.response.start", "status": 403, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": b"den", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"ied"})

    client = test_client_factory(app)
    with pytest.raises(WebSocketDenialResponse) as info, client.websocket_connect("/"):
        pass  # pragma: no cover (the connection is denied before the block runs)
    denial = info.value
    assert isinstance(denial, httpx2.Response)
    assert isinstance(denial, WebSocketDisconnect)
    assert denial.status_code == 403
    assert denial.headers["content-type"] == "text/plain"
    assert denial.content == b"denied"


def test_websocket_denial_cut_short(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 500, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"par", "more_body": True})

    client = test_client_factory(app)
    with pytest.raises(WebSocketDenialResponse) as info, client.websocket_connect("/"):
        pass  # pragma: no cover (the connection is denied before the block runs)
    assert (info.value.status_code, info.value.content) == (500, b"par")


def websocket_error_app(when: str) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if when == "before accept":
            raise ValueError(when)
        await receive()
        await send({"type": "websocket.accept"})
        if when == "after send":
            await send({"type": "websocket.send", "text": "t"})
            raise ValueError(when)
        await receive()
        raise ValueError(when)

    return app


@pytest.mark.parametrize("when", ["before accept", "after send"])
def test_websocket_app_error_fails_the_connection(
    test_client_factory: TestClientFactory, when: str
) -> None:
    client = test_client_factory(websocket_error_app(when))
    with pytest.raises(ValueError, match=when), client.websocket_connect("/"):
        pass  # pragma: no cover (the app fails before the block runs)


def test_websocket_app_error_on_receive(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(websocket_error_app("in loop"))
    with client.websocket_connect("/") as session:
        session.send_text("x")
        with pytest.raises(ValueError, match="in loop"):
            session.receive()
        # Reported once; after it, the connection reads as closed.
        assert session.receive()["code"] == 1006


def test_websocket_app_error_on_exit(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(websocket_error_app("on close"))
    with pytest.raises(ValueError, match="on close"), client.websocket_connect("/"):
        pass


def test_websocket_app_returning_before_accept(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        pass

    client = test_client_factory(app)
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/"):
        pass  # pragma: no cover (the connection is refused before the block runs)
    assert info.value.code == 1006


def test_websocket_app_returning_after_accept(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "last"})

    client = test_client_factory(app)
    with client.websocket_connect("/") as session:
        assert session.receive_text() == "last"
        closed = {"type": "websocket.close", "code": 1006, "reason": ""}
        assert session.receive() == closed
        assert session.receive() == closed
        with pytest.raises(WebSocketDisconnect) as info:
            session.receive_text()
        assert info.value.code == 1006
        session.send_text("nobody listens")  # sending to an ended app is not an error


def test_websocket_app_that_never_waits(
    test_client_factory: TestClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_testclient_http, "SETTLE_TIMEOUT", 0.05)
    log: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        try:
            while True:  # busy, but it yields to the event loop
                await anyio.lowlevel.checkpoint()
        finally:
            log.append("cancelled")

    with test_client_factory(app).websocket_connect("/") as session:
        assert session.accepted_subprotocol is None
    assert log == ["cancelled"]


def test_websocket_in_lifespan_uses_the_shared_portal(
    test_client_factory: TestClientFactory,
) -> None:
    threads: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        threads.append(threading.get_ident())
        if scope["type"] == "websocket":
            await echo_app(scope, receive, send)
        else:
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})

    client = test_client_factory(app)
    with client, client.websocket_connect("/") as session:
        session.send_text("x")
        assert session.receive_text() == "x"
    assert len(threads) == 2 and threads[0] == threads[1]


def test_trio_backend_directly() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, anyio.get_cancelled_exc_class().__module__.encode())

    assert TestClient(app, backend="trio").get("/").text == "trio"
    assert TestClient(app).get("/").text == "asyncio.exceptions"


def test_the_client_is_built_on_httpx2_when_installed() -> None:
    assert issubclass(TestClient, httpx2.Client)
    assert issubclass(WebSocketDenialResponse, httpx2.Response)


def test_httpx_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx2", None)  # makes `import httpx2` fail
    for name in ("starling._httpx", "starling._testclient_http", "starling.testclient"):
        monkeypatch.delitem(sys.modules, name)
    fallback = importlib.import_module("starling.testclient")
    assert issubclass(fallback.TestClient, httpx.Client)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, b"on httpx")

    assert fallback.TestClient(app).get("/").text == "on httpx"


def test_missing_httpx_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)  # makes both imports fail
    monkeypatch.setitem(sys.modules, "httpx2", None)
    for name in ("starling._httpx", "starling._testclient_http", "starling.testclient"):
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(RuntimeError) as info:
        importlib.import_module("starling.testclient")
    assert str(info.value).startswith(
        "The starling.testclient module requires the httpx2 (or httpx) package to be installed."
    )
    assert 'pip install "starling[full]"' in str(info.value)


def test_asgi_app_type_aliases(test_client_factory: TestClientFactory) -> None:
    """The names Starlette's test suite imports exist and describe the two app styles."""
    from starling.testclient import ASGI2App, ASGI3App, ASGIInstance

    def asgi2(scope: Scope) -> ASGIInstance:
        async def instance(receive: Receive, send: Send) -> None:
            await respond(send, b"asgi2")

        return instance

    async def asgi3(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, b"asgi3")

    apps: list[ASGI2App | ASGI3App] = [asgi2, asgi3]
    texts = [test_client_factory(app).get("/").text for app in apps]  # type: ignore[arg-type]
    assert texts == ["asgi2", "asgi3"]
