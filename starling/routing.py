"""Routes and the router: match a scope to an endpoint, and build paths back from route names.

Everything a route needs to match is compiled when it is built; matching a request does no
parsing beyond one regex match per candidate. ``Route.matches``/``handle``/``url_path_for`` use
only the public attributes (``path_regex``, ``param_convertors``, ``methods``, ``app``...):
FastAPI's ``APIRoute`` subclasses ``Route`` and sets them without calling ``Route.__init__``.
"""

from __future__ import annotations

import functools
import inspect
import operator
import re
import traceback
from collections.abc import Awaitable, Callable, Collection, Sequence
from enum import Enum
from re import Pattern
from typing import Any, Literal

from starling import _router_index
from starling._cancel_on_disconnect import CancelOnDisconnect
from starling._exception_handler import handle_exceptions, respond_to_exception
from starling._path_values import check_host_values, path_value
from starling._router_index import HTTP, INDEXABLE, WEBSOCKET, RouteIndex, RouteList
from starling._routing_lifespan import lifespan_context_for
from starling._shutdown import lifespan_shutdown
from starling._urlparse import parse_host
from starling._utils import get_route_path, is_async_callable
from starling.concurrency import run_in_threadpool
from starling.convertors import CONVERTOR_TYPES, Convertor, _NoSuchValue
from starling.datastructures import URL, URLPath
from starling.exceptions import HTTPException
from starling.middleware import Middleware
from starling.middleware.body_limit import RequestBodyLimitMiddleware
from starling.requests import Request
from starling.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starling.types import ASGIApp, Lifespan, Message, Receive, Scope, Send
from starling.websockets import WebSocket, WebSocketClose

# Match parameters in paths, eg. '{param}', and '{param:int}'
PARAM_REGEX = re.compile("{([a-zA-Z_][a-zA-Z0-9_]*)(:[a-zA-Z_][a-zA-Z0-9_]*)?}")


class NoMatchFound(Exception):
    """Raised by ``url_path_for`` when no route has the name and exactly these parameters."""

    def __init__(self, name: str, path_params: dict[str, Any]) -> None:
        params = ", ".join(list(path_params.keys()))
        super().__init__(f'No route exists for name "{name}" and params "{params}".')


class Match(Enum):
    NONE = 0
    PARTIAL = 1
    FULL = 2


# PERF: an Enum member read through its class goes through a descriptor (measured: ~80 ns on
# Python 3.11, three reads per candidate route); a module global is a dict hit.
_NONE = Match.NONE
_PARTIAL = Match.PARTIAL
_FULL = Match.FULL


# ---------------------------------------------------------------------------------------------
# Endpoint adapters


async def _in_threadpool(func: Callable[[Request[Any]], Any], request: Request[Any]) -> Any:
    return await run_in_threadpool(func, request)


# Responses whose __call__ (Response.__call__, for an http scope) sends the start message, the
# body, then runs the background task, reading only status_code, raw_headers, body, background.
_PLAIN_RESPONSES = frozenset({Response, HTMLResponse, PlainTextResponse, JSONResponse})


def _endpoint_call(func: Callable[[Request[Any]], Any]) -> Callable[[Request[Any]], Any]:
    """``func`` as a coroutine function of the request: a sync one runs in the threadpool."""
    return func if is_async_callable(func) else functools.partial(_in_threadpool, func)


def request_response(
    func: Callable[[Request[Any]], Awaitable[Response] | Response],
) -> ASGIApp:
    """An ASGI app calling ``func(request)`` and sending the response it returns.

    A sync ``func`` runs in the threadpool. Exceptions go to the app's exception handlers
    (the ones ExceptionMiddleware puts in the scope) with this same request object.
    """
    return _endpoint_app(_endpoint_call(func))


def _endpoint_app(call: Callable[[Request[Any]], Any]) -> ASGIApp:
    """request_response's app for an endpoint already made a coroutine function by
    _endpoint_call. (Starling.__call__ runs the same steps inline for a plain Route.)"""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request: Request[Any] = Request(scope, receive, send)
        # PERF: what handle_exceptions(...) does, without wrapping `send` to learn whether the
        # response started (measured: -1.2 µs of ~8 µs for a plain-text endpoint): the
        # endpoint cannot start it (it only has the request), and a plain response's first
        # step is to send its start message, built here first so that a failure building it
        # is still "not started".
        try:
            response = await call(request)
            # (Request() asserts an http scope: Response.__call__'s websocket branch is not hit)
            if type(response) in _PLAIN_RESPONSES:
                start: Message | None = {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": response.raw_headers,
                }
            else:
                start = None
        except Exception as exc:
            await respond_to_exception(exc, scope, receive, send, False, request)
            return
        if start is None:
            await handle_exceptions(response, scope, receive, send, request)
            return
        try:
            await send(start)
            await send({"type": "http.response.body", "body": response.body})
            if response.background is not None:
                await response.background()
        except Exception as exc:
            await respond_to_exception(exc, scope, receive, send, True, request)

    return app


async def _run_session(
    func: Callable[[WebSocket[Any]], Awaitable[None]],
    session: WebSocket[Any],
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    await func(session)


def websocket_session(func: Callable[[WebSocket[Any]], Awaitable[None]]) -> ASGIApp:
    """An ASGI app calling ``await func(websocket)``, exceptions going to the app's handlers."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        session: WebSocket[Any] = WebSocket(scope, receive=receive, send=send)
        session_app = functools.partial(_run_session, func, session)
        await handle_exceptions(session_app, scope, receive, send, session)

    return app


def get_name(endpoint: Callable[..., Any]) -> str:
    return getattr(endpoint, "__name__", endpoint.__class__.__name__)


# ---------------------------------------------------------------------------------------------
# Paths


# "{name}" in a path format (compile_path leaves only names there)
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


def replace_params(
    path: str,
    param_convertors: dict[str, Convertor[Any]],
    path_params: dict[str, str],
) -> tuple[str, dict[str, str]]:
    """Fill ``{name}`` placeholders in ``path``; ``path_params`` keeps (in place) the unused.

    One pass over ``path``: a value that itself looks like a placeholder ("{id}") is text, never
    filled in turn. APPSEC: no value can restructure the path (see starling._path_values):
    ``?``, ``#``, ``%``... are percent-encoded, a ``/`` outside a ``path`` parameter or a dot
    segment is refused.
    """
    used: list[str] = []

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in path_params:
            return match.group(0)  # left for an enclosing Mount or Host to fill
        used.append(key)
        convertor = param_convertors[key]
        return path_value(key, convertor.to_string(path_params[key]), convertor.regex)

    path = _PLACEHOLDER.sub(fill, path)
    for key in used:
        path_params.pop(key)
    return path, path_params


def _endpoint_path(
    route: Route | WebSocketRoute,
    name: str,
    path_params: dict[str, Any],
    protocol: Literal["http", "websocket"],
) -> URLPath:
    """``url_path_for`` of a route that ends in an endpoint: every parameter, and only those."""
    if name != route.name or set(path_params) != set(route.param_convertors):
        raise NoMatchFound(name, path_params)
    path, remaining_params = replace_params(route.path_format, route.param_convertors, path_params)
    assert not remaining_params
    return URLPath(path=_no_network_path(path), protocol=protocol)


def _no_network_path(path: str) -> str:
    """APPSEC: a built path starting "//" (or "/\\", which browsers read the same) would be a
    URL to another host ("//evil.com" from a path parameter): backslashes are escaped and a
    leading second slash too, as Starlette 1.10 does."""
    if "\\" in path:
        path = path.replace("\\", "%5C")
    if path.startswith("//"):
        return "/%2F" + path[2:]
    return path


def _host_tail(tail: str) -> str:
    # A host pattern's port is not matched: Host compares against the host without its port.
    # "]" ends an IPv6 literal, whose colons are not a port separator.
    if tail.endswith("]"):
        return tail
    return tail.rsplit(":", 1)[0]


def compile_path(path: str) -> tuple[Pattern[str], str, dict[str, Convertor[Any]]]:
    """Compile a route path (or a host, when it does not start with "/").

    Returns the regex, the format string for ``url_path_for`` and the convertor per parameter,
    eg. "/{username:str}" -> ("^/(?P<username>[^/]+)$", "/{username}", {"username": ...}).
    """
    source, flags, path_format, param_convertors = _parse_path(path)
    return re.compile(source, flags), path_format, param_convertors


def _parse_path(path: str) -> tuple[str, re.RegexFlag, str, dict[str, Convertor[Any]]]:
    """``compile_path`` without the ``re.compile``: the regex source and flags."""
    is_host = not path.startswith("/")
    path_regex = "^"
    path_format = ""
    duplicated_params: set[str] = set()
    param_convertors: dict[str, Convertor[Any]] = {}
    idx = 0
    for match in PARAM_REGEX.finditer(path):
        param_name, convertor_type = match.groups("str")
        convertor_type = convertor_type.lstrip(":")
        assert convertor_type in CONVERTOR_TYPES, f"Unknown path convertor '{convertor_type}'"
        convertor = CONVERTOR_TYPES[convertor_type]
        literal = path[idx : match.start()]
        path_regex += re.escape(literal) + f"(?P<{param_name}>{convertor.regex})"
        path_format += literal + "{" + param_name + "}"
        if param_name in param_convertors:
            duplicated_params.add(param_name)
        param_convertors[param_name] = convertor
        idx = match.end()

    if duplicated_params:
        names = ", ".join(sorted(duplicated_params))
        ending = "s" if len(duplicated_params) > 1 else ""
        raise ValueError(f"Duplicated param name{ending} {names} at path {path}")

    tail = path[idx:]
    if is_host:
        path_regex += re.escape(_host_tail(tail)) + "$"
        flags = re.IGNORECASE
    else:
        path_regex += re.escape(tail) + "$"
        flags = re.NOFLAG
    path_format += tail
    return path_regex, flags, path_format, param_convertors


class _LazyRegex:
    """``route.path_regex``, compiled on first use from what ``_set_path`` parsed.

    PERF: ``re.compile`` is most of the cost of building a route (measured: ~40 of ~70 µs);
    an app with 10,000 routes compiles only the ones requests reach. The compiled regex is
    stored in the instance's ``__dict__``, which later reads and assignments (FastAPI sets
    ``path_regex`` itself) use directly: no descriptor call per request.
    """

    def __get__(self, route: Any, owner: type | None = None) -> Any:
        if route is None:
            return self
        try:
            source, flags = route.__dict__["_regex_source"]
        except KeyError:
            raise AttributeError("path_regex") from None
        regex = re.compile(source, flags)
        route.__dict__["path_regex"] = route.__dict__["_own_regex"] = regex
        return regex


def _set_path(route: Any, path: str) -> None:
    """Parse ``path`` (its errors raised now) for ``route``; the regex compiles on first use."""
    source, flags, route.path_format, route.param_convertors = _parse_path(path)
    route._regex_source = (source, flags)
    # What the router's index files this route under (while path_regex is this one).
    route._compiled_from = path


def _convert_params(
    matched: dict[str, str], param_convertors: dict[str, Convertor[Any]], scope: Scope
) -> dict[str, Any] | None:
    """The scope's path params updated with these converted parameters, or None when a
    convertor finds a segment names no value of its type (the route does not match)."""
    path_params = dict(scope.get("path_params", {}))
    try:
        for key, value in matched.items():
            path_params[key] = param_convertors[key].convert(value)
    except _NoSuchValue:
        return None
    return path_params


def _match_params(
    match: re.Match[str], param_convertors: dict[str, Convertor[Any]], scope: Scope
) -> dict[str, Any] | None:
    """``_convert_params`` for all the groups of ``match``."""
    # PERF: a pattern without parameters skips groupdict() and the loop (~0.2 µs per match)
    if not match.re.groups:
        return dict(scope.get("path_params", {}))
    return _convert_params(match.groupdict(), param_convertors, scope)


def _wrap_middleware(
    app: ASGIApp,
    middleware: Sequence[Middleware] | None,
    max_body_size: int | None,
    cancel_on_disconnect: bool | None = False,
) -> ASGIApp:
    """``app`` inside ``middleware`` (first listed is outermost), inside the body limit, inside
    the disconnect watch (outermost: nothing inside it sends once the client has gone)."""
    if middleware is not None:
        for cls, args, kwargs in reversed(middleware):
            app = cls(app, *args, **kwargs)
    if max_body_size is not None:
        app = RequestBodyLimitMiddleware(app, max_body_size)
    if cancel_on_disconnect:
        app = CancelOnDisconnect(app)
    return app


def _check_cancel_option(value: Any, owner: str, none_allowed: bool) -> Any:
    if type(value) is bool or (value is None and none_allowed):
        return value
    allowed = "True, False or None" if none_allowed else "True or False"
    raise TypeError(f"{owner}(cancel_on_disconnect=...) takes {allowed}, not {value!r}.")


def _is_endpoint_function(endpoint: Any) -> bool:
    """True for a function or method (maybe in partials): called with a request, not as ASGI."""
    while isinstance(endpoint, functools.partial):
        endpoint = endpoint.func
    return inspect.isfunction(endpoint) or inspect.ismethod(endpoint)


def _request_host(scope: Scope) -> str | None:
    """The first Host header's host, lowercased and without port; None when absent or invalid.

    As in Starlette, any all-digit port is ignored (even one past 65535): Host routes match on
    the host alone, which must be a valid RFC 3986 host.
    """
    for key, value in scope["headers"]:
        if key == b"host":
            text = value.decode("latin-1")
            host, colon, port = text.rpartition(":")
            if not (colon and port.isascii() and port.isdigit()):
                host = text  # no port (or "[::1]": its colons are the address's)
            parsed = parse_host(host)
            return None if parsed is None or parsed[1] is not None else parsed[0].lower()
    return None


# ---------------------------------------------------------------------------------------------
# Ready-made responses (the bytes PlainTextResponse would send, built once)

_TEXT_PLAIN = (b"content-type", b"text/plain; charset=utf-8")
_NOT_FOUND = b"Not Found"
_METHOD_NOT_ALLOWED = b"Method Not Allowed"


async def _send_plain_text(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    headers += [(b"content-length", str(len(body)).encode("latin-1")), _TEXT_PLAIN]
    start: Message = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})


async def _close_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    await WebSocketClose()(scope, receive, send)


# ---------------------------------------------------------------------------------------------
# Routes


class BaseRoute:
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        raise NotImplementedError()

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NotImplementedError()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A route used directly as an ASGI app: 404 (or a websocket close) when unmatched."""
        match, child_scope = self.matches(scope)
        if match is _NONE:
            if scope["type"] == "http":
                await _send_plain_text(send, 404, _NOT_FOUND, [])
            elif scope["type"] == "websocket":
                await _close_websocket(scope, receive, send)
            return
        scope.update(child_scope)
        await self.handle(scope, receive, send)


class Route(BaseRoute):
    path_regex: Pattern[str] = _LazyRegex()  # type: ignore[assignment]
    path_format: str
    param_convertors: dict[str, Convertor[Any]]
    # (the request_response app made for a function endpoint, that endpoint as a coroutine
    # function): set when nothing wraps the app, for the router's fast lane (see Router._dispatch)
    _endpoint: tuple[ASGIApp, Callable[[Request[Any]], Any]] | None = None

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Collection[str] | None = None,
        name: str | None = None,
        include_in_schema: bool = True,
        middleware: Sequence[Middleware] | None = None,
        max_body_size: int | None = None,
        cancel_on_disconnect: bool | None = None,
    ) -> None:
        assert path.startswith("/"), "Routed paths must start with '/'"
        self.path = path
        self.endpoint = endpoint
        self.name = get_name(endpoint) if name is None else name
        self.include_in_schema = include_in_schema
        # None: the default of the Router or Starling app (docs/cancel_on_disconnect.md)
        self.cancel_on_disconnect = _check_cancel_option(cancel_on_disconnect, "Route", True)

        self.app: ASGIApp
        if _is_endpoint_function(endpoint):
            # Endpoint is a function or method: treat it as `func(request) -> response`.
            call = _endpoint_call(endpoint)
            self.app = _endpoint_app(call)
            if methods is None:
                methods = ["GET"]
            if middleware is None and max_body_size is None and not cancel_on_disconnect:
                # Starling.__call__ runs `call` itself while `self.app` is still this app.
                self._endpoint = (self.app, call)
        else:
            # Endpoint is a class or callable object: treat it as an ASGI app.
            self.app = endpoint
        self.app = _wrap_middleware(self.app, middleware, max_body_size, cancel_on_disconnect)

        self.methods: set[str] | None
        if methods is None:
            self.methods = None
        else:
            self.methods = {method.upper() for method in methods}
            if "GET" in self.methods:
                self.methods.add("HEAD")

        _set_path(self, path)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return _NONE, {}
        # PERF: get_route_path inlined for the usual empty root_path (~0.1 µs per candidate)
        route_path = get_route_path(scope) if scope.get("root_path") else scope["path"]
        # fullmatch: "$" alone also matches before a trailing "\n", and "/a\n" is not "/a"
        match = self.path_regex.fullmatch(route_path)
        if match is None:
            return _NONE, {}
        # PERF: _match_params() inlined (measured: 1.15 -> 1.05 µs for one int parameter)
        inherited = scope.get("path_params")
        path_params = dict(inherited) if inherited else {}
        if match.re.groups:
            convertors = self.param_convertors
            try:
                for key, value in match.groupdict().items():
                    path_params[key] = convertors[key].convert(value)
            except _NoSuchValue:
                return _NONE, {}
        child_scope = {"endpoint": self.endpoint, "path_params": path_params}
        methods = self.methods
        if methods and scope["method"] not in methods:
            return _PARTIAL, child_scope
        return _FULL, child_scope

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        return _endpoint_path(self, name, path_params, "http")

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            await self._method_not_allowed(scope, send)
        else:
            await self.app(scope, receive, send)

    async def _method_not_allowed(self, scope: Scope, send: Send) -> None:
        # Sorted: Starlette's order is the set's, which changes from process to process.
        allow = ", ".join(sorted(self.methods or ()))
        if "app" in scope:
            # Inside an app: its exception handlers build the response.
            raise HTTPException(status_code=405, headers={"Allow": allow})
        allow_header = (b"allow", allow.encode("latin-1"))
        await _send_plain_text(send, 405, _METHOD_NOT_ALLOWED, [allow_header])

    def __eq__(self, other: Any) -> bool:
        return (
            isinstance(other, Route)
            and self.path == other.path
            and self.endpoint == other.endpoint
            and self.methods == other.methods
        )

    def __repr__(self) -> str:
        class_name = self.__class__.__name__
        methods = sorted(self.methods or [])
        path, name = self.path, self.name
        return f"{class_name}(path={path!r}, name={name!r}, methods={methods!r})"


class WebSocketRoute(BaseRoute):
    path_regex: Pattern[str] = _LazyRegex()  # type: ignore[assignment]
    path_format: str
    param_convertors: dict[str, Convertor[Any]]

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        name: str | None = None,
        middleware: Sequence[Middleware] | None = None,
    ) -> None:
        assert path.startswith("/"), "Routed paths must start with '/'"
        self.path = path
        self.endpoint = endpoint
        self.name = get_name(endpoint) if name is None else name

        self.app: ASGIApp
        if _is_endpoint_function(endpoint):
            # Endpoint is a function or method: treat it as `func(websocket)`.
            self.app = websocket_session(endpoint)
        else:
            # Endpoint is a class or callable object: treat it as an ASGI app.
            self.app = endpoint
        self.app = _wrap_middleware(self.app, middleware, None)

        _set_path(self, path)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "websocket":
            return _NONE, {}
        match = self.path_regex.fullmatch(get_route_path(scope))
        if match is None:
            return _NONE, {}
        path_params = _match_params(match, self.param_convertors, scope)
        if path_params is None:
            return _NONE, {}
        return _FULL, {"endpoint": self.endpoint, "path_params": path_params}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        return _endpoint_path(self, name, path_params, "websocket")

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def __eq__(self, other: Any) -> bool:
        return (
            isinstance(other, WebSocketRoute)
            and self.path == other.path
            and self.endpoint == other.endpoint
        )

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(path={self.path!r}, name={self.name!r})"


def _child_name(own_name: str | None, name: str) -> str | None:
    """The name to look up below a Mount/Host called ``own_name``; None when not below it."""
    if own_name is None:
        return name
    prefix = own_name + ":"
    if name.startswith(prefix):
        return name[len(prefix) :]
    return None


class Mount(BaseRoute):
    path_regex: Pattern[str] = _LazyRegex()  # type: ignore[assignment]
    path_format: str
    param_convertors: dict[str, Convertor[Any]]

    def __init__(
        self,
        path: str,
        app: ASGIApp | None = None,
        routes: Sequence[BaseRoute] | None = None,
        name: str | None = None,
        *,
        middleware: Sequence[Middleware] | None = None,
        max_body_size: int | None = None,
    ) -> None:
        assert path == "" or path.startswith("/"), "Routed paths must start with '/'"
        assert app is not None or routes is not None, (
            "Either 'app=...', or 'routes=' must be specified"
        )
        self.path = path.rstrip("/")
        self._base_app: ASGIApp = app if app is not None else Router(routes=routes)
        self.app = _wrap_middleware(self._base_app, middleware, max_body_size)
        self.name = name
        source = self.path + "/{path:path}"
        _set_path(self, source)

    @property
    def routes(self) -> list[BaseRoute]:
        return getattr(self._base_app, "routes", [])

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] not in ("http", "websocket"):
            return _NONE, {}
        route_path = get_route_path(scope)
        match = self.path_regex.fullmatch(route_path)
        if match is None:
            return _NONE, {}
        matched_params = match.groupdict()
        remaining_path = "/" + matched_params.pop("path")
        matched_path = route_path[: -len(remaining_path)]
        path_params = _convert_params(matched_params, self.param_convertors, scope)
        if path_params is None:
            return _NONE, {}
        root_path = scope.get("root_path", "")
        child_scope = {
            "path_params": path_params,
            # The root_path of the whole app, before any Mount added to it.
            "app_root_path": scope.get("app_root_path", root_path),
            "root_path": root_path + matched_path,
            "endpoint": self.app,
        }
        return _FULL, child_scope

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        if self.name is not None and name == self.name and "path" in path_params:
            # 'name' matches "<mount_name>".
            path_params["path"] = path_params["path"].lstrip("/")
            path, remaining_params = replace_params(
                self.path_format, self.param_convertors, path_params
            )
            if not remaining_params:
                return URLPath(path=path)
        else:
            remaining_name = _child_name(self.name, name)
            if remaining_name is not None:
                # 'name' matches "<mount_name>:<child_name>".
                path_kwarg = path_params.get("path")
                path_params["path"] = ""
                path_prefix, remaining_params = replace_params(
                    self.path_format, self.param_convertors, path_params
                )
                if path_kwarg is not None:
                    remaining_params["path"] = path_kwarg
                for route in self.routes or []:
                    try:
                        url = route.url_path_for(remaining_name, **remaining_params)
                    except NoMatchFound:
                        continue
                    path = path_prefix.rstrip("/") + str(url)
                    return URLPath(path=path, protocol=url.protocol)
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Mount) and self.path == other.path and self.app == other.app

    def __repr__(self) -> str:
        class_name = self.__class__.__name__
        name = self.name or ""
        return f"{class_name}(path={self.path!r}, name={name!r}, app={self.app!r})"


class Host(BaseRoute):
    def __init__(self, host: str, app: ASGIApp, name: str | None = None) -> None:
        assert not host.startswith("/"), "Host must not start with '/'"
        self.host = host
        self.app = app
        self.name = name
        self.host_regex, self.host_format, self.param_convertors = compile_path(host)

    @property
    def routes(self) -> list[BaseRoute]:
        return getattr(self.app, "routes", [])

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] not in ("http", "websocket"):
            return _NONE, {}
        host = _request_host(scope)
        if host is None:
            return _NONE, {}
        match = self.host_regex.fullmatch(host)
        if match is None:
            return _NONE, {}
        path_params = _match_params(match, self.param_convertors, scope)
        if path_params is None:
            return _NONE, {}
        return _FULL, {"path_params": path_params, "endpoint": self.app}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        if self.name is not None and name == self.name and "path" in path_params:
            # 'name' matches "<host_name>".
            path = path_params.pop("path")
            check_host_values(self.param_convertors, path_params)
            host, remaining_params = replace_params(
                self.host_format, self.param_convertors, path_params
            )
            if not remaining_params:
                return URLPath(path=path, host=host)
        else:
            remaining_name = _child_name(self.name, name)
            if remaining_name is not None:
                # 'name' matches "<host_name>:<child_name>".
                check_host_values(self.param_convertors, path_params)
                host, remaining_params = replace_params(
                    self.host_format, self.param_convertors, path_params
                )
                for route in self.routes or []:
                    try:
                        url = route.url_path_for(remaining_name, **remaining_params)
                    except NoMatchFound:
                        continue
                    return URLPath(path=str(url), protocol=url.protocol, host=host)
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Host) and self.host == other.host and self.app == other.app

    def __repr__(self) -> str:
        class_name = self.__class__.__name__
        name = self.name or ""
        return f"{class_name}(host={self.host!r}, name={name!r}, app={self.app!r})"


# The route classes whose matching the router's index can vouch for: a subclass that keeps
# its parent's ``matches`` is indexed too; one with its own ``matches`` is tried in order.
INDEXABLE[Route.matches] = (HTTP,)
INDEXABLE[WebSocketRoute.matches] = (WEBSOCKET,)
INDEXABLE[Mount.matches] = (HTTP, WEBSOCKET)
_router_index.ROUTE_MATCHES.append(Route.matches)
_router_index.LazyRegexType = _LazyRegex


# ---------------------------------------------------------------------------------------------
# Router


class Router:
    def __init__(
        self,
        routes: Sequence[BaseRoute] | None = None,
        redirect_slashes: bool = True,
        default: ASGIApp | None = None,
        lifespan: Lifespan[Any] | None = None,
        *,
        middleware: Sequence[Middleware] | None = None,
        max_body_size: int | None = None,
        cancel_on_disconnect: bool = False,
    ) -> None:
        # A plain list: FastAPI and users append to it after construction.
        # A plain list (FastAPI and users append to it after construction) that drops the
        # index it carries whenever it changes.
        self.routes: list[BaseRoute] = RouteList(() if routes is None else routes)
        self._foreign_index: RouteIndex | None = None
        self.redirect_slashes = redirect_slashes
        self.default = self.not_found if default is None else default
        self.lifespan_context = lifespan_context_for(self, lifespan)
        # The default for its routes (a Route's own True or False wins).
        self.cancel_on_disconnect = _check_cancel_option(cancel_on_disconnect, "Router", False)
        self.middleware_stack = _wrap_middleware(
            self.app, middleware, max_body_size, cancel_on_disconnect
        )
        # Starling.__call__ routes itself (Router._dispatch) while the stack is still this.
        self._bare_stack = self.middleware_stack if self.middleware_stack == self.app else None

    async def not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await _close_websocket(scope, receive, send)
            return
        # Inside an app, raise so that its exception handlers build the response.
        if "app" in scope:
            raise HTTPException(status_code=404)
        await _send_plain_text(send, 404, _NOT_FOUND, [])

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        for route in self.routes:
            try:
                return route.url_path_for(name, **path_params)
            except NoMatchFound:
                pass
        raise NoMatchFound(name, path_params)

    async def lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the lifespan context across the server's startup and shutdown messages."""
        started = False
        app: Any = scope.get("app")
        await receive()
        try:
            async with self.lifespan_context(app) as maybe_state:
                if maybe_state is not None:
                    if "state" not in scope:
                        raise RuntimeError(
                            'The server does not support "state" in the lifespan scope.'
                        )
                    scope["state"].update(maybe_state)
                await send({"type": "lifespan.startup.complete"})
                started = True
                await receive()
                # Open event streams end now rather than hold the shutdown up.
                lifespan_shutdown()
        except BaseException:
            exc_text = traceback.format_exc()
            if started:
                await send({"type": "lifespan.shutdown.failed", "message": exc_text})
            else:
                await send({"type": "lifespan.startup.failed", "message": exc_text})
            raise
        else:
            await send({"type": "lifespan.shutdown.complete"})

    def _index(self) -> RouteIndex:
        routes = self.routes
        if type(routes) is RouteList:
            built = routes.router_index or RouteIndex(routes)
            routes.router_index = built
            return built
        # A list assigned from outside: rebuild whenever it no longer holds the same routes.
        index = getattr(self, "_foreign_index", None)
        if (
            index is None
            or len(index.routes) != len(routes)
            or not all(map(operator.is_, index.routes, routes))
        ):
            index = self._foreign_index = RouteIndex(routes)
        return index

    def _candidates(self, scope: Scope) -> Sequence[BaseRoute]:
        """The routes that may match, in order: any other would answer ``Match.NONE``."""
        routes = self.routes
        index = routes.router_index if type(routes) is RouteList else None
        if index is None:
            index = self._index()
        return index.candidates(scope["type"], get_route_path(scope))

    def _matches_any(self, scope: Scope) -> bool:
        return any(route.matches(scope)[0] is not _NONE for route in self._candidates(scope))

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        assert scope_type in ("http", "websocket", "lifespan")
        if "router" not in scope:
            scope["router"] = self

        if scope_type == "lifespan":
            await self.lifespan(scope, receive, send)
            return

        app, _ = self._dispatch(scope)
        await app(scope, receive, send)

    def _dispatch(self, scope: Scope) -> tuple[ASGIApp, Callable[[Request[Any]], Any] | None]:
        """The app that answers an http or websocket ``scope``, with the scope updated for it.

        The first route matching fully, else the first matching partially (405): exactly the
        answer of a scan of self.routes, asking only the index's candidates; else a slash
        redirect, else ``self.default``. The second item is the endpoint (a coroutine function
        of the request) when the app is a plain Route's request_response app, so that
        Starling.__call__ may run it without the app's own frame.
        """
        routes = self.routes
        index = routes.router_index if type(routes) is RouteList else None
        if index is None:
            index = self._index()
        # PERF: get_route_path() and the index's cache hit inlined for the usual empty
        # root_path (measured: 4 Python calls of ~23 per request fewer, ~0.35 µs).
        route_path = get_route_path(scope) if scope.get("root_path") else scope["path"]
        scope_type = scope["type"]
        type_index = index.by_type[scope_type]  # (Router.app asserts an http or websocket scope)
        # PERF: a path decided before (_TypeIndex.remember) gets what the first matching
        # route's matches() returned, without asking the routes (measured: -0.5 µs per
        # request for a path without parameters, -1.3 µs for one int parameter).
        decision = type_index.decisions.get(route_path)
        if decision is not None:
            route, params, endpoint = decision
            methods = route.methods  # type: ignore[attr-defined]
            if not methods or scope["method"] in methods:
                scope["endpoint"] = route.endpoint  # type: ignore[attr-defined]
                inherited = scope.get("path_params")
                path_params = dict(inherited) if inherited else {}
                if params:
                    path_params.update(params)
                scope["path_params"] = path_params
                scope["route"] = route
                if endpoint is not None and endpoint[0] is route.app:  # type: ignore[attr-defined]
                    return endpoint
                return self._route_app(route, scope)
        candidates = type_index.cache.get(route_path) or type_index.lookup(route_path)
        found: tuple[BaseRoute, Scope] | None = None
        for candidate in candidates:
            match, child_scope = candidate.matches(scope)
            if match is _NONE:
                continue
            if found is None:
                found = (candidate, child_scope)
                if id(candidate) in type_index.decidable:
                    type_index.remember(
                        route_path,
                        candidates,
                        candidate,
                        child_scope["path_params"],
                        candidate._endpoint if type(candidate) is Route else None,
                    )
            if match is _FULL:
                found = (candidate, child_scope)
                break
        if found is None:
            if scope_type == "http" and self.redirect_slashes:
                redirect = self._slash_redirect(scope)
                if redirect is not None:
                    return redirect, None
            return self.default, None
        route, child_scope = found
        scope.update(child_scope)
        scope["route"] = route
        return self._route_app(route, scope)

    @staticmethod
    def _route_app(
        route: BaseRoute, scope: Scope
    ) -> tuple[ASGIApp, Callable[[Request[Any]], Any] | None]:
        """_dispatch's answer for the ``route`` found, ``scope`` updated for it."""
        # PERF: a plain Route whose method is allowed does exactly `await self.app(...)` in
        # handle(): return that app (measured: one coroutine frame of ~23 fewer).
        if type(route) is Route:
            methods = route.methods
            if not methods or scope["method"] in methods:
                app = route.app
                endpoint = route._endpoint
                if endpoint is not None and endpoint[0] is app:
                    return endpoint
                return app, None
        return route.handle, None

    def _slash_redirect(self, scope: Scope) -> Response | None:
        """A redirect to the path with its trailing slash added or removed, when that matches."""
        route_path = get_route_path(scope)
        if route_path == "/":
            return None
        redirect_scope = dict(scope)
        if route_path.endswith("/"):
            redirect_scope["path"] = redirect_scope["path"].rstrip("/")
        else:
            redirect_scope["path"] = redirect_scope["path"] + "/"
        if not self._matches_any(redirect_scope):
            return None
        return RedirectResponse(url=str(URL(scope=redirect_scope)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The main entry point to the Router class."""
        await self.middleware_stack(scope, receive, send)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Router) and self.routes == other.routes

    def mount(self, path: str, app: ASGIApp, name: str | None = None) -> None:
        self.routes.append(Mount(path, app=app, name=name))

    def host(self, host: str, app: ASGIApp, name: str | None = None) -> None:
        self.routes.append(Host(host, app=app, name=name))

    def add_route(
        self,
        path: str,
        endpoint: Callable[[Request[Any]], Awaitable[Response] | Response],
        methods: Collection[str] | None = None,
        name: str | None = None,
        include_in_schema: bool = True,
    ) -> None:
        route = Route(
            path, endpoint=endpoint, methods=methods, name=name, include_in_schema=include_in_schema
        )
        self.routes.append(route)

    def add_websocket_route(
        self,
        path: str,
        endpoint: Callable[[WebSocket[Any]], Awaitable[None]],
        name: str | None = None,
    ) -> None:
        self.routes.append(WebSocketRoute(path, endpoint=endpoint, name=name))
