"""WSGIMiddleware: the environ, streaming from a worker thread, exc_info, close()."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from starling.applications import Starling
from starling.exceptions import StarletteDeprecationWarning
from starling.routing import Mount
from starling.types import Message, Scope

with warnings.catch_warnings():
    # deprecated at import: the warning itself is tested below
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starling.middleware.wsgi import (
        MAX_BUFFERED_MESSAGES,
        WSGIMiddleware,
        WSGIResponder,
        build_environ,
    )

if TYPE_CHECKING:  # a Protocol named Test*: imported at run time, pytest would try to collect it
    from tests.types import TestClientFactory

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def hello_world(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello World!\n"]


def echo_body(environ: Environ, start_response: StartResponse) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body, b"|", environ.get("CONTENT_LENGTH", "-").encode()]


def echo_environ(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [])
    lines = [f"{key}={environ[key]}" for key in ("SCRIPT_NAME", "PATH_INFO", "QUERY_STRING")]
    return ["\n".join(lines).encode()]


def raise_exception(environ: Environ, start_response: StartResponse) -> list[bytes]:
    raise RuntimeError("Something went wrong")


def return_exc_info(environ: Environ, start_response: StartResponse) -> list[bytes]:
    try:
        raise RuntimeError("Something went wrong")
    except RuntimeError:
        start_response(
            "500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info()
        )
        return [b"Internal Server Error"]


def test_deprecated_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "starling.middleware.wsgi")
    message = (
        r"^starlette\.middleware\.wsgi is deprecated and will be removed in a future release\. "
        r"Please refer to https://github\.com/abersheeran/a2wsgi as a replacement\.$"
    )
    with pytest.warns(StarletteDeprecationWarning, match=message) as record:
        import starling.middleware.wsgi  # noqa: F401
    # reported at the importer, not inside the module
    assert record[0].filename == __file__


def test_hello_world(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(WSGIMiddleware(hello_world))
    response = client.get("/")
    assert response.status_code == 200
    assert response.text == "Hello World!\n"
    assert response.headers["content-type"] == "text/plain"


def test_request_body(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(WSGIMiddleware(echo_body))
    response = client.post("/", content=b"example")
    assert response.text == "example|7"


def test_mounted(test_client_factory: TestClientFactory) -> None:
    app = Starling(routes=[Mount("/wsgi", WSGIMiddleware(echo_environ))])
    response = test_client_factory(app).get("/wsgi/a%20b?x=1&y=%20")
    assert response.text == "SCRIPT_NAME=/wsgi\nPATH_INFO=/a b\nQUERY_STRING=x=1&y=%20"


def test_exception(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(WSGIMiddleware(raise_exception))
    with pytest.raises(RuntimeError, match="Something went wrong"):
        client.get("/")


def test_exc_info(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(WSGIMiddleware(return_exc_info))
    with pytest.raises(RuntimeError, match="Something went wrong"):
        client.get("/")

    client = test_client_factory(WSGIMiddleware(return_exc_info), raise_server_exceptions=False)
    response = client.get("/")
    assert response.status_code == 500
    assert response.text == "Internal Server Error"


def test_start_response_twice(test_client_factory: TestClientFactory) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("201 Created", [("X-A", " 1 ")])
        start_response("400 Bad Request", [])
        return [b"first wins"]

    response = test_client_factory(WSGIMiddleware(app)).get("/")
    assert response.status_code == 201
    assert response.headers["x-a"] == "1"
    assert response.text == "first wins"


class Closing:
    """A WSGI iterable that records whether close() was called (PEP 3333 requires it)."""

    def __init__(self, chunks: list[bytes], fail: bool = False) -> None:
        self.chunks = chunks
        self.fail = fail
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.fail:
            raise ValueError("broken iterable")

    def close(self) -> None:
        self.closed = True


def test_streams_and_closes(test_client_factory: TestClientFactory) -> None:
    iterable = Closing([b"a", b"", b"b"])

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("X-A", "1"), ("X-A", "2")])
        return iterable

    response = test_client_factory(WSGIMiddleware(app)).get("/")
    assert response.content == b"ab"
    assert response.headers.get_list("x-a") == ["1", "2"]
    assert iterable.closed


def test_closed_when_iteration_fails(test_client_factory: TestClientFactory) -> None:
    iterable = Closing([b"a"], fail=True)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        return iterable

    with pytest.raises(ValueError, match="broken iterable"):
        test_client_factory(WSGIMiddleware(app)).get("/")
    assert iterable.closed


async def drive(app: WSGIMiddleware, scope: Scope, body_chunks: list[bytes]) -> list[Message]:
    """Call the middleware directly: the request body arrives in several messages."""
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": index < len(body_chunks) - 1}
        for index, chunk in enumerate(body_chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def http_scope(**extra: Any) -> Scope:
    scope: Scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": "/",
        "root_path": "",
        "query_string": b"",
        "headers": [],
    }
    scope.update(extra)
    return scope


@pytest.mark.anyio
async def test_body_in_several_messages() -> None:
    sent = await drive(WSGIMiddleware(echo_body), http_scope(), [b"ab", b"", b"cd"])
    assert sent[0] == {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/plain")],
    }
    assert b"".join(message["body"] for message in sent[1:]) == b"abcd|-"
    assert sent[-1] == {"type": "http.response.body", "body": b""}


@pytest.mark.anyio
async def test_client_gone_stops_the_app() -> None:
    produced: list[int] = []
    closed: list[bool] = []

    class Endless:
        def __iter__(self) -> Iterator[bytes]:
            for number in range(1000):  # pragma: no branch (stopped long before the end)
                produced.append(number)
                yield b"x"

        def close(self) -> None:
            closed.append(True)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        return Endless()

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            raise OSError("client gone")

    with pytest.raises(OSError, match="client gone"):
        await WSGIMiddleware(app)(http_scope(), receive, send)
    assert closed == [True]
    assert len(produced) < 1000


@pytest.mark.anyio
async def test_slow_client_holds_the_app_back() -> None:
    produced = 0
    sent = 0
    most_ahead = 0

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        nonlocal produced
        start_response("200 OK", [])
        for _ in range(200):
            produced += 1
            yield b"x"

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        nonlocal sent, most_ahead
        await anyio.sleep(0.001)  # a slow client
        if message["type"] == "http.response.body":
            sent += 1
            most_ahead = max(most_ahead, produced - sent)

    await WSGIMiddleware(app)(http_scope(), receive, send)
    assert sent == 201
    # the buffer, plus the chunk in the thread's hand and the one being sent (unbounded, the
    # thread runs to the end long before the client has the first chunks)
    assert MAX_BUFFERED_MESSAGES == 16
    assert most_ahead <= 18


@pytest.mark.anyio
@pytest.mark.parametrize("scope_type", ["websocket", "lifespan"])
async def test_only_http(scope_type: str) -> None:
    async def receive() -> Message:
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(message: Message) -> None:
        raise AssertionError("unreachable")  # pragma: no cover

    with pytest.raises(AssertionError):
        await WSGIMiddleware(hello_world)({"type": scope_type}, receive, send)


def test_build_environ() -> None:
    scope = http_scope(
        scheme="https",
        path="/root/p/é",
        root_path="/root",
        query_string=b"a=1&b=%20",
        headers=[
            (b"host", b"example.com:8443"),
            (b"content-type", b"text/plain"),
            (b"content-length", b"3"),
            (b"x-a", b"1"),
            (b"x-a", b"2"),
            (b"accept-encoding", b"gzip"),
            (b"cookie", b"a=1"),
            (b"cookie", b"b=2"),
        ],
        server=("srv", 8443),
        client=("1.2.3.4", 5678),
    )
    environ = build_environ(scope, b"abc")
    stream = environ.pop("wsgi.input")
    assert stream.read() == b"abc"
    assert environ == {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/root",
        "PATH_INFO": "/p/Ã©",  # PEP 3333: the UTF-8 bytes, as latin-1
        "QUERY_STRING": "a=1&b=%20",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https",
        "wsgi.errors": sys.stdout,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "SERVER_NAME": "srv",
        "SERVER_PORT": 8443,
        "REMOTE_ADDR": "1.2.3.4",
        "HTTP_HOST": "example.com:8443",
        "CONTENT_TYPE": "text/plain",
        "CONTENT_LENGTH": "3",
        "HTTP_X_A": "1,2",
        "HTTP_ACCEPT_ENCODING": "gzip",
        "HTTP_COOKIE": "a=1,b=2",
    }


def test_build_environ_defaults() -> None:
    scope: Scope = {"type": "http", "method": "GET", "path": "/x", "query_string": b""}
    environ = build_environ(scope, b"")
    assert environ["SERVER_NAME"] == "localhost"
    assert environ["SERVER_PORT"] == 80
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["SCRIPT_NAME"] == ""
    assert environ["PATH_INFO"] == "/x"
    assert "REMOTE_ADDR" not in environ
    environ = build_environ({**scope, "server": None, "client": None, "http_version": "2"}, b"")
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("localhost", 80)
    assert environ["SERVER_PROTOCOL"] == "HTTP/2"
    assert "REMOTE_ADDR" not in environ


def test_build_environ_hostile_input() -> None:
    scope = http_scope(
        query_string=b"q=\xc3\xa9\xff",
        headers=[
            (b"x-forwarded-for", b"10.0.0.1"),
            (b"x_forwarded_for", b"6.6.6.6"),
            (b"x-b", "é".encode()),
        ],
    )
    environ = build_environ(scope, b"")
    # a raw non-ASCII byte in the query is not an error: latin-1 carries every byte
    assert environ["QUERY_STRING"] == "q=Ã©ÿ"
    # an underscore header cannot pose as the dashed one a proxy sets
    assert environ["HTTP_X_FORWARDED_FOR"] == "10.0.0.1"
    assert environ["HTTP_X_B"] == "Ã©"


@pytest.mark.parametrize(
    ("root_path", "path", "path_info"),
    [
        ("/root", "/rootless", "/rootless"),  # not a segment boundary: outside the root
        ("/root", "/root/x", "/x"),
        ("/root", "/root", ""),
        # a root ending in "/" is a boundary itself: SCRIPT_NAME + PATH_INFO is still the path
        ("/root/", "/root/x", "x"),
        ("/root/", "/root/", ""),
        ("/root/", "/root", "/root"),
        ("/", "/x", "x"),
        ("", "/x", "/x"),
    ],
)
def test_path_info(root_path: str, path: str, path_info: str) -> None:
    environ = build_environ(http_scope(path=path, root_path=root_path), b"")
    assert environ["PATH_INFO"] == path_info
    assert environ["SCRIPT_NAME"] == root_path


def test_responder_state() -> None:
    responder = WSGIResponder(hello_world, http_scope())
    assert responder.status is None
    assert responder.response_headers is None
    assert responder.response_started is False
    assert responder.exc_info is None
    responder.stream_send.close()
    responder.stream_receive.close()


@pytest.mark.anyio
async def test_receive_fails() -> None:
    async def receive() -> Message:
        raise OSError("receive failed")

    async def send(message: Message) -> None:
        raise AssertionError("unreachable")  # pragma: no cover

    # nothing left open behind (filterwarnings=error would turn a ResourceWarning into a failure)
    with pytest.raises(OSError, match="receive failed"):
        await WSGIMiddleware(hello_world)(http_scope(), receive, send)


def test_hostile_query_through_the_client(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        scope["query_string"] = b"q=\xff"
        await WSGIMiddleware(echo_environ)(scope, receive, send)

    response = test_client_factory(app).get("/")
    assert response.status_code == 200
    assert response.text.endswith("QUERY_STRING=q=ÿ")
