"""BaseHTTPMiddleware: middleware written as ``async def dispatch(request, call_next)``.

Shipped for compatibility; starling's own middleware is pure ASGI. ``call_next`` runs the rest
of the app in a task of a per-request task group and hands its messages over a zero-size memory
stream, so a streamed body is passed on chunk by chunk, never buffered whole.

- The request body: what the middleware read (``await request.body()``) is replayed to the app;
  a body it streamed to the end reaches the app as empty; one it did not touch passes through.
- The app's exceptions come out of ``call_next`` (or out of the body iteration, once the
  response has started) as themselves, never wrapped in an ExceptionGroup.
- Once the middleware's response is sent, the app's ``receive()`` returns ``http.disconnect``
  and its sends go nowhere: a finished or replaced plain response still runs its background
  tasks (the task group waits for them, they are not cancelled); a body still streaming gets
  ``OSError`` from ``send()``, as from a client that left (ASGI 2.4).
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


class _CachedRequest(Request):
    """The middleware's request. ``wrapped_receive`` is the app's view of the body."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        super().__init__(scope, receive)
        self._app_has_body = False

    async def wrapped_receive(self) -> Message:
        if self._app_has_body:  # what follows the body (a disconnect) comes from the server
            return await self._receive()
        if self._is_disconnected:
            return dict(_DISCONNECT)
        body: bytes | None = self.__dict__.get("_body")
        if body is None and self._stream_consumed:
            body = b""  # streamed to the end by the middleware, not kept
        if body is not None:
            self._app_has_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        message = await self._receive()
        if message["type"] != "http.request":
            return message
        more_body = message.get("more_body", False)
        if not more_body:
            # The app read the body the middleware never did: it cannot be read again.
            self._app_has_body = self._stream_consumed = True
        return {"type": "http.request", "body": message.get("body", b""), "more_body": more_body}


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
        self.response_sent = False
        self.app_response_complete = False
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
        async for message in self._receive_stream:
            if message["type"] == "http.response.debug":
                info = message["info"]
                continue
            if message["type"] != "http.response.start":
                raise AssertionError(f"Expected 'http.response.start', got {message['type']!r}.")
            pathsend: list[Message] = []
            response = _StreamingResponse(
                self._body(pathsend), status_code=message["status"], info=info, pathsend=pathsend
            )
            response.raw_headers = list(message.get("headers", []))
            return response
        self._raise_app_exc()
        raise RuntimeError("No response returned.")

    def _raise_app_exc(self) -> None:
        """Raise the app's exception, once: a middleware that catches it may still respond."""
        exc = self.app_exc
        if exc is not None:
            self.app_exc = None
            raise exc

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
        self._raise_app_exc()

    async def _run_app(self) -> None:
        try:
            await self.app(self.request.scope, self.receive, self.send)
        except Exception as exc:  # raised again where the middleware reads the response
            self.app_exc = exc
        finally:
            # Only now, with app_exc stored: closing wakes the reader, which then looks at it.
            self._send_stream.close()

    async def receive(self) -> Message:
        if self.response_sent:
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
            # Nobody reads any more: the middleware's response has gone out.
            if message["type"] == "http.response.body" and message.get("more_body", False):
                raise OSError("The response was already sent by the middleware.") from None

    def finish(self) -> None:
        """The middleware's response is out: release an app still waiting to send or receive."""
        self.response_sent = True
        if self.started:
            self._receive_stream.close()
        for scope in self._receive_scopes:
            scope.cancel()

    def raise_late_app_error(self) -> None:
        """Raise what the app raised after the middleware stopped reading (background tasks)."""
        exc = self.app_exc
        if exc is None:
            return
        if not self.app_response_complete and isinstance(exc, (OSError, ClientDisconnect)):
            return  # the abandoned body's send failed, as designed
        raise exc


class BaseHTTPMiddleware:
    def __init__(self, app: ASGIApp, dispatch: DispatchFunction | None = None) -> None:
        self.app = app
        self.dispatch_func = self.dispatch if dispatch is None else dispatch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = _CachedRequest(scope, receive)
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
