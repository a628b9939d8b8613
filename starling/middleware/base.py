"""BaseHTTPMiddleware: middleware written as ``async def dispatch(request, call_next)``.

Shipped for compatibility; starling's own middleware is pure ASGI. ``call_next`` runs the rest
of the app in a task of a per-request task group and hands its messages over a zero-size memory
stream, so a streamed body is passed on chunk by chunk, never buffered whole.

- The request body: what the middleware read (``await request.body()``) is replayed to the app;
  a body it streamed to the end reaches the app as empty; one it did not touch passes through.
  A disconnect seen by either side is remembered: ``request.is_disconnected()`` in the
  middleware sees the app's, and every later ``receive()`` of the app returns it again.
- The app's exceptions come out of ``call_next`` (or out of the body iteration, once the
  response has started) as themselves, never wrapped in an ExceptionGroup. As in Starlette,
  one raised by ``call_next`` keeps what it had as its ``__context__`` as its ``__cause__``.
- The app's last body message returns only once the middleware's response is sent, so its
  background tasks run after the response, as in Starlette.
- Once the middleware's response is sent, the app's ``receive()`` returns ``http.disconnect``
  and its sends go nowhere, as to a server whose client left: dropped silently, or (ASGI 2.4,
  where send() on a gone client raises) a non-final body chunk gets ``OSError``.
- Context variables the app sets are not seen by the middleware: the app runs in a child task
  with a copy of the context, as in Starlette.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from starling.requests import ClientDisconnect, Request
from starling.responses import Response
from starling.types import ASGIApp, Message, Receive, Scope, Send

RequestResponseEndpoint = Callable[[Request], Awaitable[Response]]
DispatchFunction = Callable[[Request, RequestResponseEndpoint], Awaitable[Response]]
T = TypeVar("T")

_DISCONNECT: Message = {"type": "http.disconnect"}
# What an app raises once its send() has raised OSError.
_CLIENT_GONE = (OSError, ClientDisconnect)


class _CachedRequest(Request):
    """The middleware's request. ``wrapped_receive`` is the app's view of the body."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        super().__init__(scope, receive, send)
        # The app has had the whole body (replayed, or read from the server): no replay now.
        # What the middleware read after the app's first chunks is the rest: replayed.
        self._app_has_body = False

    async def wrapped_receive(self) -> Message:
        if not self._app_has_body:
            body: bytes | None = self.__dict__.get("_body")
            if body is None and self._stream_consumed:
                body = b""  # streamed to the end by the middleware, not kept
            if body is not None:
                self._app_has_body = True
                return {"type": "http.request", "body": body, "more_body": False}
        if self._is_disconnected:
            # The server sends http.disconnect once; whoever saw it, the app may ask again.
            return dict(_DISCONNECT)
        message = await self._receive()
        message_type = message["type"]
        if message_type == "http.disconnect":
            self._is_disconnected = True
        elif message_type == "http.request":
            more_body = message.get("more_body", False)
            if not more_body:
                # The app read the body the middleware never did: it cannot be read again.
                self._app_has_body = self._stream_consumed = True
            return {
                "type": "http.request",
                "body": message.get("body", b""),
                "more_body": more_body,
            }
        return message


class _StreamingResponse(Response):
    """What ``call_next`` returns: the app's status and headers, and its body as it streams."""

    def __init__(
        self,
        content: AsyncIterator[bytes],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        info: Mapping[str, Any] | None = None,
        pathsend: list[Message] | None = None,
    ) -> None:
        self.info = info
        self.body_iterator = content
        self.status_code = status_code
        self.media_type = media_type
        self.init_headers(headers)
        self.background = None
        # Filled by the body iterator when the app answered with http.response.pathsend.
        self._pathsend = [] if pathsend is None else pathsend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.info is not None:
            await send({"type": "http.response.debug", "info": self.info})
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        body_iterator = self.body_iterator
        try:
            async for chunk in body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            # Close it now, not when garbage collected, if send() failed halfway.
            aclose = getattr(body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        if self._pathsend:
            await send(self._pathsend[0])
        else:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        if self.background is not None:
            await self.background()


class _Call:
    """One request through a BaseHTTPMiddleware: the app's task and the stream from it."""

    def __init__(self, app: ASGIApp, request: _CachedRequest, task_group: TaskGroup) -> None:
        self.app = app
        self.request = request
        self.task_group = task_group
        self.app_exc: Exception | None = None
        self.started = False
        self.response_sent = anyio.Event()
        self.app_response_complete = False
        self.send_failed = False  # we raised OSError from the app's send()
        self._receive_scopes: set[anyio.CancelScope] = set()
        self._send_stream: MemoryObjectSendStream[Message]
        self._receive_stream: MemoryObjectReceiveStream[Message]

    async def call_next(self, request: Request) -> Response:
        # As in Starlette, the app always gets the original scope and receive.
        streams = anyio.create_memory_object_stream[Message]()
        self._send_stream, self._receive_stream = streams
        self.started = True
        self.task_group.start_soon(self._run_app)
        info: Mapping[str, Any] | None = None
        while True:
            try:
                message = await self._receive_stream.receive()
            except anyio.EndOfStream:
                exc = self._take_app_exc()
                if exc is None:
                    raise RuntimeError("No response returned.") from None
                # As in Starlette: raised here, its own context would be replaced by
                # EndOfStream, so what it had is kept as its cause.
                raise exc from exc.__cause__ or exc.__context__
            message_type = message["type"]
            if message_type == "http.response.start":
                break
            if message_type == "http.response.debug":
                info = message["info"]
            elif message_type == "http.response.early_hint":
                await self.request._send(message)  # a 103 goes out before the response
            else:
                raise AssertionError(f"Expected 'http.response.start', got {message_type!r}.")
        pathsend: list[Message] = []
        response = _StreamingResponse(
            self._body(pathsend), status_code=message["status"], info=info, pathsend=pathsend
        )
        response.raw_headers = list(message.get("headers", []))
        return response

    def _take_app_exc(self) -> Exception | None:
        """The app's exception, once: a middleware that catches it may still respond."""
        exc, self.app_exc = self.app_exc, None
        return exc

    async def _body(self, pathsend: list[Message]) -> AsyncIterator[bytes]:
        """The app's body chunks; a pathsend message ends it and goes into ``pathsend``."""
        async for message in self._receive_stream:
            message_type = message["type"]
            if message_type == "http.response.body":
                chunk: bytes = message.get("body", b"")
                if chunk:
                    yield chunk
                if not message.get("more_body", False):
                    self.app_response_complete = True
                    return
            elif message_type == "http.response.pathsend":
                self.app_response_complete = True
                pathsend.append(message)
                return
            else:
                raise AssertionError(f"Unexpected message: {message}")
        exc = self._take_app_exc()
        if exc is not None:
            raise exc

    async def _run_app(self) -> None:
        try:
            await self.app(self.request.scope, self.receive, self.send)
        except Exception as exc:  # raised again where the middleware reads the response
            self.app_exc = exc
        finally:
            # Only now, with app_exc stored: closing wakes the reader, which then looks at it.
            self._send_stream.close()

    async def receive(self) -> Message:
        if self.response_sent.is_set():
            return dict(_DISCONNECT)
        with anyio.CancelScope() as scope:
            self._receive_scopes.add(scope)
            try:
                return await self.request.wrapped_receive()
            finally:
                self._receive_scopes.discard(scope)
        return dict(_DISCONNECT)  # cancelled by finish(): the response went out without it

    async def send(self, message: Message) -> None:
        try:
            await self._send_stream.send(message)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            # Nobody reads any more: the middleware's response has gone out. Like a server
            # whose client left: ASGI 2.4 says send() raises OSError, earlier versions drop it.
            if (
                message["type"] == "http.response.body"
                and message.get("more_body", False)
                and _send_raises_on_disconnect(self.request.scope)
            ):
                self.send_failed = True
                raise OSError("The response was already sent by the middleware.") from None
            return
        message_type = message["type"]
        if message_type == "http.response.pathsend" or (
            message_type == "http.response.body" and not message.get("more_body", False)
        ):
            # As in Starlette, the app (and so its background tasks) goes on only once the
            # middleware's response is out.
            await self.response_sent.wait()

    def finish(self) -> None:
        """The middleware's response is out: release an app still waiting to send or receive."""
        self.response_sent.set()
        if self.started:
            self._receive_stream.close()
        for scope in self._receive_scopes:
            scope.cancel()

    def raise_late_app_error(self) -> None:
        """Raise what the app raised after the middleware stopped reading (background tasks)."""
        exc = self.app_exc
        if exc is None:
            return
        if self.send_failed and not self.app_response_complete and _client_gone(exc):
            return  # the abandoned body's send failed, as designed
        raise exc


def _send_raises_on_disconnect(scope: Scope) -> bool:
    """Whether the server speaks ASGI 2.4, where send() to a gone client raises OSError."""
    version = scope.get("asgi", {}).get("spec_version", "2.0")
    try:
        return tuple(int(part) for part in version.split(".")) >= (2, 4)
    except (AttributeError, ValueError):
        return False


def _client_gone(exc: BaseException) -> bool:
    """OSError (or ClientDisconnect, as StreamingResponse has it), alone or in a group."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(_CLIENT_GONE)[1] is None
    return isinstance(exc, _CLIENT_GONE)


class BaseHTTPMiddleware:
    def __init__(self, app: ASGIApp, dispatch: DispatchFunction | None = None) -> None:
        self.app = app
        self.dispatch_func = self.dispatch if dispatch is None else dispatch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = _CachedRequest(scope, receive, send)
        collapsed: BaseException | None = None
        try:
            async with anyio.create_task_group() as task_group:
                call = _Call(self.app, request, task_group)
                try:
                    response = await self.dispatch_func(request, call.call_next)
                    await response(scope, request.wrapped_receive, send)
                finally:
                    call.finish()
        except BaseExceptionGroup as group:
            # The app's task never raises (it stores its exception), so a group here only
            # wraps the one exception of the dispatch: unwrap it, but only that one level.
            if len(group.exceptions) != 1:  # pragma: no cover (the app task stores its errors)
                raise
            collapsed = group.exceptions[0]
        if collapsed is not None:
            # raised outside the except block so that the group does not become its __context__
            raise collapsed
        call.raise_late_app_error()

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        raise NotImplementedError()
