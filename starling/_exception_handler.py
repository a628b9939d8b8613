"""The layer that turns an exception from an ASGI app into its registered handler's response."""

# ExceptionMiddleware puts its handlers in scope["starlette.exception_handlers"] as
# (class_handlers, status_handlers); every layer below it (each route's endpoint) reads them
# from there. FastAPI imports wrap_app_handling_exceptions from this module.

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starling._utils import is_async_callable
from starling.concurrency import run_in_threadpool
from starling.exceptions import HTTPException
from starling.types import ASGIApp, ExceptionHandler, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from starling.requests import Request
    from starling.websockets import WebSocket

ExceptionHandlers = dict[Any, ExceptionHandler]
StatusHandlers = dict[int, ExceptionHandler]

HANDLERS_SCOPE_KEY = "starlette.exception_handlers"

# Exception types are few, but an app may create them dynamically: bound the lookup cache.
MAX_CACHED_EXCEPTION_TYPES = 256

_NOT_CACHED: Any = object()


class _HandlerMap(dict[Any, ExceptionHandler]):
    """A class -> handler dict that remembers, per exception type, which handler its MRO finds.

    Every mutation clears the memo, so handlers added after start-up are still found.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._by_type: dict[type[BaseException], ExceptionHandler | None] = {}

    def lookup(self, exc_type: type[BaseException]) -> ExceptionHandler | None:
        handler = self._by_type.get(exc_type, _NOT_CACHED)
        if handler is _NOT_CACHED:
            handler = _walk_mro(self, exc_type)
            if len(self._by_type) >= MAX_CACHED_EXCEPTION_TYPES:
                self._by_type.clear()
            self._by_type[exc_type] = handler
        return handler  # type: ignore[no-any-return]

    def __setitem__(self, key: Any, value: ExceptionHandler) -> None:
        self._by_type.clear()
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self._by_type.clear()
        super().__delitem__(key)

    def __ior__(self, other: Any) -> _HandlerMap:  # type: ignore[override,misc]
        self._by_type.clear()
        super().update(other)
        return self

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._by_type.clear()
        super().update(*args, **kwargs)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self._by_type.clear()
        return super().setdefault(key, default)

    def pop(self, key: Any, *default: Any) -> Any:
        self._by_type.clear()
        return super().pop(key, *default)

    def popitem(self) -> tuple[Any, ExceptionHandler]:
        self._by_type.clear()
        return super().popitem()

    def clear(self) -> None:
        self._by_type.clear()
        super().clear()


def _walk_mro(
    handlers: dict[Any, ExceptionHandler], exc_type: type[BaseException]
) -> ExceptionHandler | None:
    for cls in exc_type.__mro__:
        if cls in handlers:
            return handlers[cls]
    return None


def _lookup_exception_handler(scope: Scope, exc: Exception) -> ExceptionHandler | None:
    handlers: tuple[ExceptionHandlers, StatusHandlers] = scope.get(HANDLERS_SCOPE_KEY) or ({}, {})
    exception_handlers, status_handlers = handlers
    # A status-code handler wins over a class handler, as in Starlette.
    if isinstance(exc, HTTPException) and exc.status_code in status_handlers:
        return status_handlers[exc.status_code]
    if isinstance(exception_handlers, _HandlerMap):
        return exception_handlers.lookup(type(exc))
    return _walk_mro(exception_handlers, type(exc))


def _connection(scope: Scope, receive: Receive, send: Send) -> Request | WebSocket:
    # Built only once an exception needs a handler: the happy path never pays for it.
    if scope["type"] == "http":
        from starling.requests import Request

        return Request(scope, receive, send)
    from starling.websockets import WebSocket

    return WebSocket(scope, receive, send)


class ResponseTracker:
    """Forwards messages to ``send`` and remembers whether the response has started.

    ServerErrorMiddleware passes ``tracker.send`` down; ExceptionMiddleware, when it receives
    exactly that (nothing in between), reads the same flag instead of wrapping ``send`` again.
    """

    __slots__ = ("_send", "started")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


async def handle_exceptions(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    conn: Request | WebSocket | None = None,
) -> None:
    """Run ``app``; hand an exception to its registered handler, or re-raise it.

    ``conn`` is what the handler receives; when None, one is built from the scope on demand.
    """
    response_started = False

    async def sender(message: Message) -> None:
        nonlocal response_started
        if message["type"] == "http.response.start":
            response_started = True
        await send(message)

    try:
        await app(scope, receive, sender)
    except Exception as exc:
        await respond_to_exception(exc, scope, receive, sender, response_started, conn)


async def respond_to_exception(
    exc: Exception,
    scope: Scope,
    receive: Receive,
    send: Send,
    response_started: bool,
    conn: Request | WebSocket | None = None,
) -> None:
    """What ``handle_exceptions`` does with an exception: call from its ``except`` block.

    Re-raises ``exc`` when no handler is registered for it; raises RuntimeError when the
    response has started; else sends the handler's response (if any) with ``send``.
    """
    handler = _lookup_exception_handler(scope, exc)
    if handler is None:
        raise exc
    if response_started:
        raise RuntimeError("Caught handled exception, but response already started.") from exc
    if conn is None:
        conn = _connection(scope, receive, send)
    if is_async_callable(handler):
        response = await handler(conn, exc)
    else:
        response = await run_in_threadpool(handler, conn, exc)
    if response is not None:
        await response(scope, receive, send)
    # Handled: drop the traceback, as Starlette does. It holds every frame of the failed call
    # (and their locals) alive for as long as anything keeps the exception.
    exc.__traceback__ = None


def wrap_app_handling_exceptions(app: ASGIApp, conn: Request | WebSocket) -> ASGIApp:
    async def wrapped_app(scope: Scope, receive: Receive, send: Send) -> None:
        await handle_exceptions(app, scope, receive, send, conn)

    return wrapped_app
