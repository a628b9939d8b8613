"""The TestClient's httpx transport: one HTTP request driven through the ASGI app in a portal.

The app runs as a task in an anyio blocking portal (its own event loop thread); this thread
pulls the app's messages one at a time through a zero-buffer memory stream, so a streaming
response really streams and an app that streams forever is paused until the test reads on.
"""

from __future__ import annotations

import collections
import contextlib
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import unquote

import anyio
import anyio.from_thread

from starling._httpx import httpx
from starling.types import ASGIApp, Message, Scope

PortalFactory = Callable[[], AbstractContextManager[anyio.from_thread.BlockingPortal]]

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}

# How long settle() waits for the app to block: an app that never waits (a busy loop) must
# not hang the test, it only loses the early error report.
SETTLE_TIMEOUT = 1.0
_DISCONNECT: Message = {"type": "http.disconnect"}


class _AppFinished:
    """Put on the app's message stream when the app returns or raises."""

    __slots__ = ("error",)

    def __init__(self, error: Exception | None) -> None:
        self.error = error


def _url_parts(request: httpx.Request) -> tuple[str, bytes, bytes, list[Any]]:
    """The scheme, raw path, query string and server of ``request``'s URL."""
    url = request.url
    port = url.port if url.port is not None else _DEFAULT_PORTS.get(url.scheme, 80)
    raw_path, _, query = url.raw_path.partition(b"?")
    return url.scheme, raw_path, query, [url.host, port]


def _raw_headers(request: httpx.Request) -> list[tuple[bytes, bytes]]:
    return [(name.lower(), value) for name, value in request.headers.raw]


def http_scope(
    request: httpx.Request, root_path: str, client: tuple[str, int], app_state: dict[str, Any]
) -> Scope:
    """The scope a server would build for an HTTP ``request``, keys in Starlette's order."""
    scheme, raw_path, query, server = _url_parts(request)
    return {
        "type": "http",
        "http_version": "1.1",
        "method": request.method,
        "path": unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "root_path": root_path,
        "scheme": scheme,
        "query_string": query,
        "headers": _raw_headers(request),
        "client": client,
        "server": server,
        "extensions": {"http.response.debug": {}, "http.response.trailers": {}},
        "state": app_state.copy(),
    }


def websocket_scope(
    request: httpx.Request, root_path: str, client: tuple[str, int], app_state: dict[str, Any]
) -> Scope:
    """The scope a server would build for a WebSocket handshake ``request``."""
    scheme, raw_path, query, server = _url_parts(request)
    protocols = request.headers.get("sec-websocket-protocol")
    return {
        "type": "websocket",
        "path": unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "root_path": root_path,
        "scheme": scheme,
        "query_string": query,
        "headers": _raw_headers(request),
        "client": client,
        "server": server,
        "subprotocols": [p.strip() for p in protocols.split(",")] if protocols else [],
        "state": app_state.copy(),
        "extensions": {"websocket.http.response": {}},
    }


def body_messages(request: httpx.Request) -> list[Message]:
    """The request body as ``http.request`` messages, one per non-empty chunk of the stream."""
    chunks = [chunk for chunk in request.stream if chunk]  # type: ignore[union-attr]
    if not chunks:
        return [{"type": "http.request", "body": b""}]
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks[:-1]
    ]
    # The last message leaves out "more_body", as Starlette's client does.
    messages.append({"type": "http.request", "body": chunks[-1]})
    return messages


class _Exchange:
    """The event-loop side of one HTTP request: the app's receive/send and its task."""

    def __init__(self, app: ASGIApp, scope: Scope, requests: list[Message]) -> None:
        self.app = app
        self.scope = scope
        self.requests = collections.deque(requests)
        self.started = False
        self.body_sent = False
        self.complete: anyio.Event | None = None
        self.cancel_scope: anyio.CancelScope | None = None
        # Zero buffer: the app's send waits until the test takes the message (backpressure).
        self.outbox, self.inbox = anyio.create_memory_object_stream[Any](0)

    async def run(self) -> None:
        self.complete = anyio.Event()
        self.cancel_scope = anyio.CancelScope()
        with self.cancel_scope:
            error: Exception | None = None
            try:
                await self.app(self.scope, self.receive, self.send)
            except Exception as exc:
                error = exc
            self.complete.set()
            await self.outbox.send(_AppFinished(error))

    async def receive(self) -> Message:
        if self.requests:
            return self.requests.popleft()
        # Like a server: once the body is read, the next message is the disconnect, which
        # comes when the response is complete.
        assert self.complete is not None
        if not self.complete.is_set():
            # (waiting on a set event would still checkpoint, and is_disconnected() asks from
            # inside a cancelled scope: after the response it must get the disconnect at once)
            await self.complete.wait()
        return _DISCONNECT

    async def send(self, message: Message) -> None:
        kind = message["type"]
        last = False
        if kind == "http.response.start":
            assert not self.started, 'Received multiple "http.response.start" messages.'
            self.started = True
        elif kind == "http.response.body":
            assert self.started, 'Received "http.response.body" without "http.response.start".'
            assert not self.body_sent, 'Received "http.response.body" after response completed.'
            last = self.body_sent = not message.get("more_body", False)
        await self.outbox.send(message)
        if last:
            # Only once the test has the whole body does the app see the disconnect: an app
            # listening for it must not be cancelled while its last chunk is in flight.
            assert self.complete is not None
            self.complete.set()


class _ResponseStream(httpx.SyncByteStream):
    """The response body, pulled from the app as the test reads it."""

    def __init__(
        self,
        pull: Callable[[], Any],
        stop: Callable[[], None],
        raise_server_exceptions: bool,
        extensions: dict[str, Any],
    ) -> None:
        self._pull = pull
        self._stop = stop
        self._raise = raise_server_exceptions
        self.head = False  # a HEAD response has no body, whatever the app sends
        self.extensions = extensions

    def __iter__(self) -> Iterator[bytes]:
        while True:
            message = self._pull()
            if isinstance(message, _AppFinished):
                if message.error is not None and self._raise:
                    raise message.error
                return
            kind = message["type"]
            if kind == "http.response.body":
                body = message.get("body", b"")
                if body and not self.head:
                    yield body
            elif kind == "http.response.trailers":
                self.extensions.setdefault("http.response.trailers", []).extend(
                    message.get("headers", [])
                )

    def close(self) -> None:
        self._stop()


class TestClientTransport(httpx.BaseTransport):
    """Sends each httpx request to the ASGI app; ws/wss URLs go to ``websocket_handler``."""

    def __init__(
        self,
        app: ASGIApp,
        portal_factory: PortalFactory,
        raise_server_exceptions: bool = True,
        root_path: str = "",
        *,
        client: tuple[str, int],
        app_state: dict[str, Any],
        websocket_handler: Callable[[httpx.Request, Scope], Any] | None = None,
    ) -> None:
        self.app = app
        self.portal_factory = portal_factory
        self.raise_server_exceptions = raise_server_exceptions
        self.root_path = root_path
        self.client = client
        self.app_state = app_state
        self.websocket_handler = websocket_handler

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme in ("ws", "wss"):
            scope = websocket_scope(request, self.root_path, self.client, self.app_state)
            assert self.websocket_handler is not None
            return self.websocket_handler(request, scope)  # type: ignore[no-any-return]
        scope = http_scope(request, self.root_path, self.client, self.app_state)
        exchange = _Exchange(self.app, scope, body_messages(request))
        with contextlib.ExitStack() as stack:
            portal = stack.enter_context(self.portal_factory())
            task = portal.start_task_soon(exchange.run)
            stack.callback(_stop, portal, exchange, task)
            pull = functools.partial(portal.call, exchange.inbox.receive)
            extensions: dict[str, Any] = {}
            start = _until_start(pull, extensions)
            if isinstance(start, _AppFinished):
                return self._server_error(start.error)
            # From here the body stream owns the portal: closing the response closes it.
            stream = _ResponseStream(
                pull, stack.pop_all().close, self.raise_server_exceptions, extensions
            )
        response = httpx.Response(
            status_code=start["status"],
            headers=list(start.get("headers", [])),
            stream=stream,
            extensions=extensions,
        )
        stream.extensions = response.extensions  # httpx copies an empty dict
        stream.head = request.method == "HEAD"
        if "http.response.debug" in extensions:
            info = extensions["http.response.debug"]
            response.template = info.get("template")  # type: ignore[attr-defined]
            response.context = info.get("context")  # type: ignore[attr-defined]
        return response

    def _server_error(self, error: Exception | None) -> httpx.Response:
        if error is None:
            error = AssertionError("TestClient did not receive any response.")
        if self.raise_server_exceptions:
            raise error
        return httpx.Response(status_code=500, headers=[])


async def settle() -> None:
    """Lets every task in the event loop run until it waits (bounded by SETTLE_TIMEOUT)."""
    with anyio.move_on_after(SETTLE_TIMEOUT):
        await anyio.wait_all_tasks_blocked()


def _until_start(pull: Callable[[], Any], extensions: dict[str, Any]) -> Any:
    """Reads the app's messages up to ``http.response.start`` and returns it, or the
    ``_AppFinished`` marker when the app ended first."""
    while True:
        message = pull()
        if isinstance(message, _AppFinished) or message["type"] == "http.response.start":
            return message
        if message["type"] == "http.response.debug":
            extensions["http.response.debug"] = message["info"]


def _stop(
    portal: anyio.from_thread.BlockingPortal, exchange: _Exchange, task: Future[None]
) -> None:
    """Cancels the app if the test stopped reading early, then waits for it to end."""
    if not task.done():
        assert exchange.cancel_scope is not None
        portal.call(exchange.cancel_scope.cancel)
    task.result()
    exchange.outbox.close()
    exchange.inbox.close()
