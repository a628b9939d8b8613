"""Run a WSGI application under an ASGI server (deprecated, as in Starlette: use a2wsgi)."""

from __future__ import annotations

import io
import sys
import warnings
from collections.abc import Callable, Iterable, MutableMapping
from types import TracebackType
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from starling._utils import create_collapsing_task_group, get_route_path
from starling.exceptions import StarletteDeprecationWarning
from starling.types import Receive, Scope, Send

warnings.warn(
    "starlette.middleware.wsgi is deprecated and will be removed in a future release. "
    "Please refer to https://github.com/abersheeran/a2wsgi as a replacement.",
    StarletteDeprecationWarning,
    stacklevel=2,
)

# Body chunks the WSGI thread may produce ahead of the client. Starlette buffers without bound, so
# a fast app and a slow client hold the whole response in memory; here the thread waits instead.
MAX_BUFFERED_MESSAGES = 16

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _environ_key(header_name: str) -> str | None:
    if header_name == "content-length":
        return "CONTENT_LENGTH"
    if header_name == "content-type":
        return "CONTENT_TYPE"
    if "_" in header_name:
        # APPSEC: "x_forwarded_for" would become HTTP_X_FORWARDED_FOR too, spoofing a header a
        # proxy vouches for. Dropped, as gunicorn and nginx do (Starlette passes it on).
        return None
    return "HTTP_" + header_name.upper().replace("-", "_")


def _path_info(scope: Scope) -> str:
    """The path below SCRIPT_NAME, so that SCRIPT_NAME + PATH_INFO is the request path.

    As routing's, except that a root path ending in "/" is a boundary of its own: under root
    "/app/", "/app/users" gives "users".
    """
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path.endswith("/") and path.startswith(root_path):
        return path[len(root_path) :]
    return get_route_path(scope)


def build_environ(scope: Scope, body: bytes) -> dict[str, Any]:
    """The PEP 3333 environ for an HTTP scope. Strings carry bytes as latin-1, per the PEP."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode("utf-8").decode("latin-1"),
        "PATH_INFO": _path_info(scope).encode("utf-8").decode("latin-1"),
        # latin-1, not ASCII: a raw non-ASCII byte in the query is the client's, and must not
        # become a 500 (Starlette decodes as ASCII)
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stdout,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    server = scope.get("server") or ("localhost", 80)
    environ["SERVER_NAME"] = server[0]
    environ["SERVER_PORT"] = server[1]
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"] = client[0]

    for raw_name, raw_value in scope.get("headers", ()):
        key = _environ_key(raw_name.decode("latin-1"))
        if key is None:
            continue
        value = raw_value.decode("latin-1")
        if key in environ:
            # repeated headers are joined, as a proxy folding them would
            value = environ[key] + "," + value
        environ[key] = value
    return environ


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    more_body = True
    while more_body:
        message = await receive()
        chunks.append(message.get("body", b""))
        more_body = message.get("more_body", False)
    return b"".join(chunks)


class WSGIMiddleware:
    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        responder = WSGIResponder(self.app, scope)
        await responder(receive, send)


class WSGIResponder:
    """One request: the WSGI app runs in a worker thread and hands its messages to ``sender``
    on the event loop through a stream."""

    stream_send: MemoryObjectSendStream[MutableMapping[str, Any]]
    stream_receive: MemoryObjectReceiveStream[MutableMapping[str, Any]]

    def __init__(self, app: WSGIApp, scope: Scope) -> None:
        self.app = app
        self.scope = scope
        self.status: str | None = None
        self.response_headers: list[tuple[bytes, bytes]] | None = None
        self.stream_send, self.stream_receive = anyio.create_memory_object_stream(
            MAX_BUFFERED_MESSAGES
        )
        self.response_started = False
        self.exc_info: ExcInfo | None = None

    async def __call__(self, receive: Receive, send: Send) -> None:
        try:
            environ = build_environ(self.scope, await _read_body(receive))
            async with create_collapsing_task_group() as task_group:
                task_group.start_soon(self.sender, send)
                async with self.stream_send:
                    await anyio.to_thread.run_sync(self.wsgi, environ, self.start_response)
        finally:
            # also when reading the body failed or was cancelled, before the sender started
            self.stream_send.close()
            self.stream_receive.close()
        if self.exc_info is not None:
            # the app reported an error through start_response: the response is out, now raise
            raise self.exc_info[1].with_traceback(self.exc_info[2])

    async def sender(self, send: Send) -> None:
        async with self.stream_receive:
            async for message in self.stream_receive:
                await send(message)

    def start_response(
        self,
        status: str,
        response_headers: list[tuple[str, str]],
        exc_info: ExcInfo | None = None,
    ) -> None:
        self.exc_info = exc_info
        if self.response_started:
            return
        self.response_started = True
        self.status = status
        status_code, _ = status.split(" ", 1)
        self.response_headers = [
            (name.strip().encode("latin-1").lower(), value.strip().encode("latin-1"))
            for name, value in response_headers
        ]
        start = {
            "type": "http.response.start",
            "status": int(status_code),
            "headers": self.response_headers,
        }
        self._send(start)

    def _send(self, message: MutableMapping[str, Any]) -> bool:
        """From the worker thread: hand a message to ``sender``; False once it has stopped
        (sending failed: the client left), so the app is not iterated any further."""
        try:
            anyio.from_thread.run(self.stream_send.send, message)
        except anyio.BrokenResourceError:
            return False
        return True

    def wsgi(self, environ: dict[str, Any], start_response: StartResponse) -> None:
        """Runs in the worker thread: call the app and stream what it yields."""
        iterable = self.app(environ, start_response)
        try:
            for chunk in iterable:
                message = {"type": "http.response.body", "body": chunk, "more_body": True}
                if not self._send(message):
                    return
            self._send({"type": "http.response.body", "body": b""})
        finally:
            # PEP 3333: close() is always called, so the app can release what it holds
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
