"""The TestClient's httpx transport: one HTTP request driven through the ASGI app in a portal.

The app runs as a task in an anyio blocking portal (its own event loop thread); this thread
pulls the app's messages one at a time through a zero-buffer memory stream, so a streaming
response really streams and an app that streams forever is paused until the test reads on.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import unquote

import anyio
import anyio.from_thread
import anyio.lowlevel

from starling._httpx import httpx
from starling.types import ASGIApp, Message, Scope

PortalFactory = Callable[[], AbstractContextManager[anyio.from_thread.BlockingPortal]]

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}

# How long settle() waits for the app to block: an app that never waits (a busy loop) must
# not hang the test, it only loses the early error report.
SETTLE_TIMEOUT = 1.0
# How many scheduler turns the app gets after "http.response.start" to send debug info before
# its first body chunk: debug info sent later (or after a real wait) is not on the response.
START_SETTLE_STEPS = 50
_DISCONNECT: Message = {"type": "http.disconnect"}


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
    return chunk_messages([chunk for chunk in request.stream if chunk])  # type: ignore[union-attr]


def chunk_messages(chunks: list[bytes]) -> list[Message]:
    """``http.request`` messages carrying ``chunks`` (non-empty), as a server sends them."""
    if not chunks:
        return [{"type": "http.request", "body": b""}]
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks[:-1]
    ]
    # The last message leaves out "more_body", as Starlette's client does.
    messages.append({"type": "http.request", "body": chunks[-1]})
    return messages


class _Exchange:
    """The event-loop side of one HTTP request: the app's receive/send and its task.

    Only "http.response.start" and body chunks travel to the test through the stream (so the
    app waits at each chunk until the test reads it); debug info and trailers are recorded
    straight into the response's extensions.
    """

    # Made by run(), on the event loop; the test only uses them once the app has started.
    cancel_scope: anyio.CancelScope
    responded: anyio.Event  # the test has the whole response: receive() gives the disconnect
    finished: anyio.Event  # the response is complete or the app has ended
    ended: anyio.Event  # the app has returned or raised (its background tasks are done)

    def __init__(self, app: ASGIApp, scope: Scope, requests: list[Message]) -> None:
        self.app = app
        self.scope = scope
        self.requests = collections.deque(requests)
        self.extensions: dict[str, Any] = {}
        self.error: Exception | None = None
        # What the app has sent, checked as it sends (Starlette's assertion messages).
        self.started = False
        self.trailers = False  # declared by "http.response.start"
        self.body_sent = False
        self.trailers_sent = False
        self.complete = False  # the response is whole on the test's side
        self.sending = False  # a body chunk is waiting for the test to take it
        self.frozen = False  # the response object exists: later debug info is not shown
        # Zero buffer: the app's send waits until the test takes the message (backpressure).
        self.outbox, self.inbox = anyio.create_memory_object_stream[Message](0)

    async def run(self) -> None:
        self.responded = anyio.Event()
        self.finished = anyio.Event()
        self.ended = anyio.Event()
        try:
            with anyio.CancelScope() as self.cancel_scope:
                try:
                    await self.app(self.scope, self.receive, self.send)
                except Exception as exc:
                    self.error = exc
        finally:
            self.finished.set()
            self.ended.set()
            self.outbox.close()  # the test's next read ends

    async def receive(self) -> Message:
        if self.requests:
            return self.requests.popleft()
        # Like a server: once the body is read, the next message is the disconnect, which
        # comes when the response is complete.
        if not self.responded.is_set():
            # (waiting on a set event would still checkpoint, and is_disconnected() asks from
            # inside a cancelled scope: after the response it must get the disconnect at once)
            await self.responded.wait()
        return _DISCONNECT

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            await self._send_body(message)
        elif kind == "http.response.start":
            assert not self.started, 'Received multiple "http.response.start" messages.'
            self.started = True
            if message.get("trailers", False):
                self.trailers = True
                self.extensions["http.response.trailers"] = []
            await self.outbox.send(message)
        elif kind == "http.response.trailers":
            self._add_trailers(message)
        elif kind == "http.response.debug" and not self.frozen:
            self.extensions["http.response.debug"] = message["info"]
        # Any other message type is ignored, as by Starlette's client.

    async def _send_body(self, message: Message) -> None:
        assert self.started, 'Received "http.response.body" without "http.response.start".'
        sent_all = self.trailers_sent or (self.body_sent and not self.trailers)
        assert not sent_all, 'Received "http.response.body" after response completed.'
        assert not self.body_sent, 'Received "http.response.body" after body completed.'
        self.body_sent = not message.get("more_body", False)
        body = message.get("body", b"")
        if type(body) is not bytes:
            # The app may reuse a mutable buffer once send() returns: the test keeps a copy.
            message = {**message, "body": bytes(body)}
        self.sending = True
        try:
            await self.outbox.send(message)
        finally:
            self.sending = False

    def _add_trailers(self, message: Message) -> None:
        assert self.trailers, 'Received "http.response.trailers" without declaring trailers.'
        assert not self.trailers_sent, 'Received "http.response.trailers" after response completed.'
        assert self.body_sent, 'Received "http.response.trailers" before body completed.'
        self.extensions["http.response.trailers"].extend(message.get("headers", []))
        if not message.get("more_trailers", False):
            self.trailers_sent = True
            self._complete()

    def _complete(self) -> None:
        self.complete = True
        self.responded.set()
        self.finished.set()

    async def start(self) -> Message | None:
        """The app's "http.response.start" (None if the app ended first), once the app has
        had a moment to send debug info before its first body chunk."""
        try:
            message = await self.inbox.receive()
        except anyio.EndOfStream:
            return None
        for _ in range(START_SETTLE_STEPS):
            if self.sending or self.finished.is_set():
                break
            await anyio.lowlevel.checkpoint()
        self.frozen = True
        return message

    async def take(self) -> Message:
        """The app's next body chunk (raises EndOfStream once the app has ended)."""
        message = await self.inbox.receive()
        # Marked here, on the event loop, before the test can ask to close the response.
        if not message.get("more_body", False) and not self.trailers:
            self._complete()
        return message

    async def stop(self, cancel: bool) -> None:
        """Cancels the app unless the response is complete and ``cancel`` is false."""
        if cancel or not self.complete:
            self.cancel_scope.cancel()


class ExchangeStream:
    """What the sync and async response streams share: the exchange, the flags, the report.

    Closing a stream waits for the app to end when the test has the whole response
    (background tasks run to completion), and cancels the app otherwise.
    """

    def __init__(self, exchange: _Exchange, raise_server_exceptions: bool) -> None:
        self.exchange = exchange
        self.raise_server_exceptions = raise_server_exceptions
        self.on_stop: Callable[[Any], Any] = _ignore
        self.head = False  # a HEAD response has no body, whatever the app sends
        self.stopped = False
        self.reported = False

    def _report(self) -> None:
        error = self.exchange.error
        if error is not None and self.raise_server_exceptions and not self.reported:
            self.reported = True
            raise error


class _ResponseStream(ExchangeStream, httpx.SyncByteStream):
    """The response body, pulled from the app (through the portal) as the test reads it."""

    def __init__(
        self,
        exchange: _Exchange,
        portal: anyio.from_thread.BlockingPortal,
        task: Future[None],
        release: Callable[[], Any],
        raise_server_exceptions: bool,
    ) -> None:
        super().__init__(exchange, raise_server_exceptions)
        self.portal = portal
        self.task = task
        self.release = release  # leaves the portal (when the request has its own)

    def __iter__(self) -> Iterator[bytes]:
        exchange = self.exchange
        more = True
        while more and not self.stopped:
            try:
                message = self.portal.call(exchange.take)
            except anyio.EndOfStream:
                break
            more = message.get("more_body", False)
            body = message.get("body", b"")
            if body and not self.head:
                yield body
        if not self.stopped:
            if not exchange.finished.is_set():
                # Declared trailers: the response ends with the last of them (or the app).
                self.portal.call(exchange.finished.wait)
            self._report()

    def close(self) -> None:
        self.stop(cancel=False)

    def stop(self, cancel: bool) -> None:
        """Ends the app (cancelled if ``cancel`` or the response is incomplete), then raises
        its error if the client raises server exceptions."""
        if self.stopped:
            return
        self.stopped = True
        self.on_stop(self)
        try:
            self.portal.call(self.exchange.stop, cancel)
            self.task.result()
        finally:
            self.exchange.inbox.close()
            self.release()
        self._report()


def _ignore(stream: ExchangeStream) -> None:
    """The default ``on_stop``, until the response is handed to the test."""


def build_response(
    request: httpx.Request, start: Message, exchange: _Exchange, stream: ExchangeStream
) -> httpx.Response:
    """The response the test gets for the app's "http.response.start", its body ``stream``."""
    response = httpx.Response(
        status_code=start["status"],
        headers=list(start.get("headers", [])),
        stream=stream,  # type: ignore[arg-type]
    )
    response.extensions = exchange.extensions  # shared: trailers arrive as the app runs
    stream.head = request.method == "HEAD"
    info = exchange.extensions.get("http.response.debug")
    if info is not None:
        if "template" in info:
            response.template = info["template"]  # type: ignore[attr-defined]
        if "context" in info:
            response.context = info["context"]  # type: ignore[attr-defined]
    return response


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
        # The responses the test has not closed yet, in the order they were sent.
        self.open: dict[_ResponseStream, None] = {}

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
            # From here the body stream owns the portal: stopping the stream leaves it.
            stream = _ResponseStream(
                exchange, portal, task, stack.pop_all().close, self.raise_server_exceptions
            )
        try:
            start = portal.call(exchange.start)
        except BaseException:
            stream.stop(cancel=True)
            raise
        if start is None:
            stream.close()  # the app has ended: this raises its error (if raising)
            return self._no_response()
        response = build_response(request, start, exchange, stream)
        self.open[stream] = None
        stream.on_stop = self._forget
        return response

    def _forget(self, stream: _ResponseStream) -> None:
        self.open.pop(stream, None)

    def _no_response(self) -> httpx.Response:
        return no_response(self.raise_server_exceptions)

    def cancel_open(self) -> None:
        """Cancels the app behind every response the test left open and waits for it to
        end, then raises the first app error (if raising server exceptions)."""
        first: Exception | None = None
        for stream in list(self.open):
            try:
                stream.stop(cancel=True)
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first

    def close(self) -> None:
        self.cancel_open()


def no_response(raise_server_exceptions: bool) -> httpx.Response:
    """What the test gets when the app ended without starting a response."""
    if raise_server_exceptions:
        raise AssertionError("TestClient did not receive any response.")
    return httpx.Response(status_code=500, headers=[])


async def settle() -> None:
    """Lets every task in the event loop run until it waits (bounded by SETTLE_TIMEOUT)."""
    with anyio.move_on_after(SETTLE_TIMEOUT):
        await anyio.wait_all_tasks_blocked()
