"""Starling, the application: a router wrapped in the error, user and exception middleware."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

from starling._cancel_on_disconnect import CancelOnDisconnect
from starling._exception_handler import (
    HANDLERS_SCOPE_KEY,
    ResponseTracker,
    respond_to_exception,
)
from starling.datastructures import State, URLPath
from starling.middleware import Middleware, _MiddlewareFactory
from starling.middleware.body_limit import RequestBodyLimitMiddleware
from starling.middleware.errors import ServerErrorMiddleware
from starling.middleware.exceptions import ExceptionMiddleware
from starling.requests import Request
from starling.responses import Response
from starling.routing import _PLAIN_RESPONSES, BaseRoute, Router, _check_cancel_option
from starling.types import ASGIApp, ExceptionHandler, Lifespan, Message, Receive, Scope, Send

AppType = TypeVar("AppType", bound="Starling")
P = ParamSpec("P")

# Handlers for these keys belong to ServerErrorMiddleware (the last one registered wins);
# every other handler goes to ExceptionMiddleware.
_SERVER_ERROR_KEYS = (500, Exception)


class Starling:
    """An ASGI app: a router, its middleware stack, exception handlers and lifespan."""

    def __init__(
        self: AppType,
        debug: bool = False,
        routes: Sequence[BaseRoute] | None = None,
        middleware: Sequence[Middleware] | None = None,
        exception_handlers: Mapping[Any, ExceptionHandler] | None = None,
        lifespan: Lifespan[AppType] | None = None,
        *,
        max_body_size: int | None = None,
        cancel_on_disconnect: bool = False,
    ) -> None:
        self.debug = debug
        self.state = State()
        self.router = Router(routes, lifespan=lifespan)
        self.max_body_size = max_body_size
        # The default for the app's routes (a Route's own True or False wins); the watch wraps
        # the whole stack, so no middleware sends anything once the client has gone.
        self.cancel_on_disconnect = _check_cancel_option(cancel_on_disconnect, "Starling", False)
        self.exception_handlers = {} if exception_handlers is None else dict(exception_handlers)
        self.user_middleware = [] if middleware is None else list(middleware)
        self.middleware_stack: ASGIApp | None = None

    def build_middleware_stack(self) -> ASGIApp:
        debug = self.debug
        error_handler = None
        exception_handlers: dict[Any, ExceptionHandler] = {}
        for key, value in self.exception_handlers.items():
            if key in _SERVER_ERROR_KEYS:
                error_handler = value
            else:
                exception_handlers[key] = value

        middleware = [Middleware(ServerErrorMiddleware, handler=error_handler, debug=debug)]
        if self.max_body_size is not None:
            middleware.append(Middleware(RequestBodyLimitMiddleware, self.max_body_size))
        middleware += self.user_middleware
        middleware.append(Middleware(ExceptionMiddleware, handlers=exception_handlers, debug=debug))

        app: ASGIApp = self.router
        for cls, args, kwargs in reversed(middleware):
            app = cls(app, *args, **kwargs)
        if self.cancel_on_disconnect:
            app = CancelOnDisconnect(app)
        return app

    @property
    def routes(self) -> list[BaseRoute]:
        return self.router.routes

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        return self.router.url_path_for(name, **path_params)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        stack = self.middleware_stack
        if stack is None:
            stack = self.middleware_stack = self.build_middleware_stack()
        # PERF: the default stack (ServerErrorMiddleware -> ExceptionMiddleware -> Router, no
        # user middleware) run in this one frame: what the two middleware __call__ do, minus
        # their coroutine frames, and for a plain Route's function endpoint what Router.app
        # and request_response's app do too (measured, with Router._dispatch's shortcuts:
        # 14 -> 5 Python calls and ~4.6 -> ~2.1 µs per hello request). Checked on every
        # request, so a stack changed after start-up still runs as built.
        if type(stack) is ServerErrorMiddleware and scope["type"] == "http":
            inner = stack.app
            if type(inner) is ExceptionMiddleware:
                scope[HANDLERS_SCOPE_KEY] = inner._scope_handlers
                app = inner.app
                call = None
                if type(app) is Router:
                    router = app
                    if router.middleware_stack is router._bare_stack:
                        if "router" not in scope:
                            scope["router"] = router
                        app, call = router._dispatch(scope)
                    else:
                        app = router.middleware_stack
                request: Request | None = None
                if call is not None:
                    # request_response's app, here: a plain response is sent from this frame,
                    # whether it started is known here (no wrapper around `send` needed).
                    request = Request(scope, receive, send)
                    try:
                        response = await call(request)
                        if type(response) in _PLAIN_RESPONSES:
                            start: Message | None = {
                                "type": "http.response.start",
                                "status": response.status_code,
                                "headers": response.raw_headers,
                            }
                        else:
                            start = None
                    except Exception as exc:
                        await _fail(stack, exc, scope, receive, send, False, request)
                        return
                    if start is None:
                        app = response  # sent by its own __call__, as any other app below
                    else:
                        try:
                            await send(start)
                            await send({"type": "http.response.body", "body": response.body})
                            if response.background is not None:
                                await response.background()
                        except Exception as exc:
                            await _fail(stack, exc, scope, receive, send, True, request)
                        return
                tracker = ResponseTracker(send)
                try:
                    try:
                        await app(scope, receive, tracker.send)
                    except Exception as exc:
                        await respond_to_exception(
                            exc, scope, receive, tracker.send, tracker.started, request
                        )
                except Exception as exc:
                    if await stack._respond(exc, scope, receive, send, tracker.started):
                        raise
                return
        await stack(scope, receive, send)

    def mount(self, path: str, app: ASGIApp, name: str | None = None) -> None:
        self.router.mount(path, app=app, name=name)

    def host(self, host: str, app: ASGIApp, name: str | None = None) -> None:
        self.router.host(host, app=app, name=name)

    def add_middleware(
        self, middleware_class: _MiddlewareFactory[P], *args: P.args, **kwargs: P.kwargs
    ) -> None:
        if self.middleware_stack is not None:
            raise RuntimeError("Cannot add middleware after an application has started")
        # The last one added is the outermost, so it goes first.
        self.user_middleware.insert(0, Middleware(middleware_class, *args, **kwargs))

    def add_exception_handler(
        self, exc_class_or_status_code: int | type[Exception], handler: ExceptionHandler
    ) -> None:
        self.exception_handlers[exc_class_or_status_code] = handler

    def add_route(
        self,
        path: str,
        route: Callable[[Request], Awaitable[Response] | Response],
        methods: list[str] | None = None,
        name: str | None = None,
        include_in_schema: bool = True,
    ) -> None:
        self.router.add_route(
            path, route, methods=methods, name=name, include_in_schema=include_in_schema
        )


async def _fail(
    errors: ServerErrorMiddleware,
    exc: Exception,
    scope: Scope,
    receive: Receive,
    send: Send,
    started: bool,
    request: Request,
) -> None:
    """``exc`` from an endpoint run by Starling.__call__: its handler's response, else a 500."""
    tracker = ResponseTracker(send)
    tracker.started = started
    try:
        await respond_to_exception(exc, scope, receive, tracker.send, started, request)
    except Exception as unhandled:
        if await errors._respond(unhandled, scope, receive, send, tracker.started):
            raise


# Starlette's name for the same class: `from starlette.applications import Starlette` works.
Starlette = Starling
