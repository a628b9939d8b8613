"""Routing: path compilation, matching, dispatch, slash redirects, lifespan and url_path_for."""

from __future__ import annotations

import contextlib
import functools
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from starling._routing_lifespan import _DefaultLifespan
from starling.applications import Starling
from starling.background import BackgroundTask
from starling.convertors import Convertor, IntegerConvertor, PathConvertor, StringConvertor
from starling.datastructures import URLPath
from starling.exceptions import HTTPException, StarletteDeprecationWarning
from starling.middleware import Middleware
from starling.requests import Request
from starling.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starling.routing import (
    BaseRoute,
    Host,
    Match,
    Mount,
    NoMatchFound,
    Route,
    Router,
    WebSocketRoute,
    compile_path,
    get_name,
    replace_params,
    request_response,
    websocket_session,
)
from starling.types import ASGIApp, Message, Receive, Scope, Send
from starling.websockets import WebSocket, WebSocketDisconnect
from tests.types import TestClientFactory


async def homepage(request: Request) -> Response:
    return PlainTextResponse("home")


def describe(request: Request) -> Response:
    """A sync endpoint reporting what routing put in the scope."""
    scope = request.scope
    params = {key: str(value) for key, value in request.path_params.items()}
    return JSONResponse(
        {
            "path_params": params,
            "root_path": scope.get("root_path"),
            "app_root_path": scope.get("app_root_path"),
            "route": repr(scope.get("route")),
            "url": str(request.url),
        }
    )


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse(f"raw {scope['type']}")(scope, receive, send)


class RawEndpoint:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("raw endpoint")(scope, receive, send)


def http_scope(path: str, method: str = "GET", **extra: Any) -> Scope:
    scope: Scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "query_string": b"",
        "scheme": "http",
        "server": ("testserver", 80),
    }
    scope.update(extra)
    return scope


async def call(app: ASGIApp, scope: Scope, messages: list[Message] | None = None) -> list[Message]:
    """Run ``app`` on ``scope``; return what it sent."""
    pending = list(messages or [{"type": "http.request", "body": b""}])
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


# ---------------------------------------------------------------------------------------------
# compile_path, replace_params, get_name, NoMatchFound


@pytest.mark.parametrize(
    ("path", "regex", "path_format", "convertors"),
    [
        ("/", "^/$", "/", {}),
        ("/users/{id}", "^/users/(?P<id>[^/]+)$", "/users/{id}", {"id": StringConvertor}),
        (
            "/u/{id:int}/x/{rest:path}",
            "^/u/(?P<id>[0-9]+)/x/(?P<rest>.*)$",
            "/u/{id}/x/{rest}",
            {"id": IntegerConvertor, "rest": PathConvertor},
        ),
        ("/a.{ext}", r"^/a\.(?P<ext>[^/]+)$", "/a.{ext}", {"ext": StringConvertor}),
        ("/q?x=1 (a+b)", r"^/q\?x=1\ \(a\+b\)$", "/q?x=1 (a+b)", {}),
        # Not parameters: left as literal text.
        ("/{1a}/{a-b}/{a:}", r"^/\{1a\}/\{a\-b\}/\{a:\}$", "/{1a}/{a-b}/{a:}", {}),
    ],
)
def test_compile_path(path: str, regex: str, path_format: str, convertors: dict[str, Any]) -> None:
    compiled, fmt, param_convertors = compile_path(path)
    assert (compiled.pattern, fmt) == (regex, path_format)
    assert {k: type(v) for k, v in param_convertors.items()} == convertors
    assert not compiled.flags & 2  # re.IGNORECASE: paths are case-sensitive


@pytest.mark.parametrize(
    ("host", "regex", "host_format"),
    [
        ("example.com", r"^example\.com$", "example.com"),
        ("api.example.com:8000", r"^api\.example\.com$", "api.example.com:8000"),
        ("{sub}.example.com:8000", r"^(?P<sub>[^/]+)\.example\.com$", "{sub}.example.com:8000"),
        ("{a}.b:1:2", r"^(?P<a>[^/]+)\.b:1$", "{a}.b:1:2"),
        ("[::1]:8000", r"^\[::1\]$", "[::1]:8000"),
        ("[::1]", r"^\[::1\]$", "[::1]"),
        ("{sub}:{port:int}", "^(?P<sub>[^/]+):(?P<port>[0-9]+)$", "{sub}:{port}"),
    ],
)
def test_compile_host(host: str, regex: str, host_format: str) -> None:
    compiled, fmt, _ = compile_path(host)
    assert (compiled.pattern, fmt) == (regex, host_format)
    assert compiled.flags & 2  # re.IGNORECASE: host names are not case-sensitive


def test_compile_path_errors() -> None:
    with pytest.raises(ValueError, match=r"^Duplicated param name a at path /\{a\}/\{a\}$"):
        compile_path("/{a}/{a}")
    message = r"^Duplicated param names a, b at path /\{b\}/\{a:int\}/\{b\}/\{a\}$"
    with pytest.raises(ValueError, match=message):
        compile_path("/{b}/{a:int}/{b}/{a}")
    with pytest.raises(AssertionError, match="^Unknown path convertor 'foo'$"):
        compile_path("/{a:foo}")


def test_replace_params() -> None:
    convertors: dict[str, Convertor[Any]] = {"x": StringConvertor(), "y": IntegerConvertor()}
    params: dict[str, Any] = {"x": "1", "y": 2, "z": "3"}
    path, remaining = replace_params("/a/{x}/{y}", convertors, params)
    assert (path, remaining) == ("/a/1/2", {"z": "3"})
    assert remaining is params  # the used params are taken out of the dict itself
    with pytest.raises(KeyError):
        replace_params("/a/{x}", {}, {"x": "1"})


def test_get_name() -> None:
    class Endpoint:
        def __call__(self) -> None: ...

        def method(self) -> None: ...

    assert get_name(homepage) == "homepage"
    assert get_name(Endpoint) == "Endpoint"
    assert get_name(Endpoint()) == "Endpoint"
    assert get_name(Endpoint().method) == "method"
    assert get_name(functools.partial(homepage)) == "partial"
    assert get_name(lambda request: None) == "<lambda>"


def test_no_match_found_message() -> None:
    assert str(NoMatchFound("n", {"a": 1, "b": 2})) == (
        'No route exists for name "n" and params "a, b".'
    )
    assert str(NoMatchFound("n", {})) == 'No route exists for name "n" and params "".'


def test_match_enum() -> None:
    assert [(m.name, m.value) for m in Match] == [("NONE", 0), ("PARTIAL", 1), ("FULL", 2)]


# ---------------------------------------------------------------------------------------------
# Route


class Handlers:
    def sync(self, request: Request) -> Response:
        return PlainTextResponse("method")


@pytest.mark.anyio
async def test_request_response_called_directly() -> None:
    async def echo(request: Request) -> Response:
        return PlainTextResponse(await request.body())

    sent = await call(
        request_response(echo), http_scope("/"), [{"type": "http.request", "body": b"hi"}]
    )
    assert sent[1] == {"type": "http.response.body", "body": b"hi"}
    sent = await call(Route("/", Handlers().sync), http_scope("/"))
    assert sent[1] == {"type": "http.response.body", "body": b"method"}


def test_route_methods_and_endpoint_kinds() -> None:

    assert Route("/", homepage).methods == {"GET", "HEAD"}
    assert Route("/", homepage, methods=["post", "get"]).methods == {"POST", "GET", "HEAD"}
    assert Route("/", homepage, methods=["HEAD"]).methods == {"HEAD"}
    assert Route("/", homepage, methods=[]).methods == set()
    assert Route("/", Handlers().sync).methods == {"GET", "HEAD"}
    assert Route("/", functools.partial(describe)).methods == {"GET", "HEAD"}
    # Classes and callable objects are ASGI apps: any method, no request_response wrapper.
    endpoint = RawEndpoint()
    route = Route("/", endpoint)
    assert (route.methods, route.app, route.name) == (None, endpoint, "RawEndpoint")
    assert Route("/", functools.partial(PlainTextResponse)).methods is None
    assert Route("/", PlainTextResponse).name == "PlainTextResponse"
    assert Route("/", homepage, name="").name == ""


def test_route_attributes_repr_eq() -> None:
    route = Route("/u/{id:int}", homepage, methods=["get"], name="user", include_in_schema=False)
    assert (route.path, route.endpoint, route.name) == ("/u/{id:int}", homepage, "user")
    assert (route.include_in_schema, route.path_format) == (False, "/u/{id}")
    assert route.path_regex.pattern == "^/u/(?P<id>[0-9]+)$"
    assert repr(route) == "Route(path='/u/{id:int}', name='user', methods=['GET', 'HEAD'])"
    assert repr(Route("/", RawEndpoint)) == "Route(path='/', name='RawEndpoint', methods=[])"
    assert route == Route("/u/{id:int}", homepage, methods=["GET"])
    assert route != Route("/u/{id:int}", homepage, methods=["POST"])
    assert route != Route("/u/{id}", homepage, methods=["GET"])
    assert route != "/u/{id:int}"
    with pytest.raises(AssertionError, match="^Routed paths must start with '/'$"):
        Route("users", homepage)


def test_route_matches() -> None:
    route = Route("/u/{id:int}", homepage, methods=["POST"])
    match, child = route.matches(http_scope("/u/3", "POST", path_params={"a": "b"}))
    assert (match, child) == (
        Match.FULL,
        {"endpoint": homepage, "path_params": {"a": "b", "id": 3}},
    )
    match, child = route.matches(http_scope("/u/3"))
    assert (match, child) == (Match.PARTIAL, {"endpoint": homepage, "path_params": {"id": 3}})
    assert route.matches(http_scope("/u/x")) == (Match.NONE, {})
    assert route.matches(http_scope("/u/3", type="websocket")) == (Match.NONE, {})
    assert route.matches({"type": "lifespan"}) == (Match.NONE, {})
    # Under a root_path, the part below it is matched.
    assert route.matches(http_scope("/api/u/3", "POST", root_path="/api"))[0] is Match.FULL
    assert Route("/", homepage, methods=[]).matches(http_scope("/", "DELETE"))[0] is Match.FULL
    assert Route("/", RawEndpoint()).matches(http_scope("/", "DELETE"))[0] is Match.FULL


def test_trailing_newline_does_not_match() -> None:
    """Starlette's `re.match` lets "$" match before a final newline: "/a\\n" reaches "/a"."""
    assert Route("/a", homepage).matches(http_scope("/a\n")) == (Match.NONE, {})
    assert Route("/i/{x:int}", homepage).matches(http_scope("/i/5\n")) == (Match.NONE, {})
    # A string parameter may contain one, as in Starlette.
    match, child = Route("/s/{x}", homepage).matches(http_scope("/s/x\n"))
    assert (match, child["path_params"]) == (Match.FULL, {"x": "x\n"})


def test_route_endpoints(test_client_factory: TestClientFactory) -> None:
    main_thread = threading.get_ident()

    def sync_endpoint(request: Request) -> Response:
        return PlainTextResponse(str(threading.get_ident() != main_thread))

    router = Router(
        [
            Route("/sync", sync_endpoint),
            Route("/raw", RawEndpoint(), methods=["GET"]),
            Route("/raw-any", RawEndpoint()),
            Route("/partial", functools.partial(describe)),
        ]
    )
    client = test_client_factory(router)
    assert client.get("/sync").text == "True"  # a sync endpoint runs in the threadpool
    assert client.get("/raw").text == "raw endpoint"
    assert client.delete("/raw-any").text == "raw endpoint"
    assert client.get("/partial").json()["route"].startswith("Route(path='/partial'")


def test_method_not_allowed(test_client_factory: TestClientFactory) -> None:
    router = Router([Route("/", homepage, methods=["PUT", "post", "DELETE"])])
    client = test_client_factory(router)
    response = client.get("/")
    assert (response.status_code, response.text) == (405, "Method Not Allowed")
    # Sorted, where Starlette's order is a set's (it changes from process to process).
    assert list(response.headers.items()) == [
        ("allow", "DELETE, POST, PUT"),
        ("content-length", "18"),
        ("content-type", "text/plain; charset=utf-8"),
    ]
    assert client.head("/").status_code == 405


def test_not_found_and_method_not_allowed_in_an_app(
    test_client_factory: TestClientFactory,
) -> None:
    def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse(
            {"detail": exc.detail, "headers": exc.headers}, status_code=exc.status_code
        )

    app = Starling(
        routes=[Route("/", homepage, methods=["POST"])],
        exception_handlers={HTTPException: handler},
    )
    client = test_client_factory(app)
    response = client.get("/")
    assert response.status_code == 405
    assert response.json() == {"detail": "Method Not Allowed", "headers": {"Allow": "POST"}}
    response = client.get("/nowhere")
    assert (response.status_code, response.json()) == (
        404,
        {"detail": "Not Found", "headers": None},
    )


def test_exception_handlers_apply_inside_routes(test_client_factory: TestClientFactory) -> None:
    class Teapot(Exception):
        pass

    seen: list[Request] = []

    async def brew(request: Request) -> Response:
        seen.append(request)
        raise Teapot()

    async def on_teapot(request: Request, exc: Exception) -> Response:
        assert request is seen[0]  # the endpoint's own request object
        return PlainTextResponse("short and stout", status_code=418)

    app = Starling(routes=[Route("/", brew)], exception_handlers={Teapot: on_teapot})
    response = test_client_factory(app).get("/")
    assert (response.status_code, response.text) == (418, "short and stout")


def test_endpoint_response_of_any_class(test_client_factory: TestClientFactory) -> None:
    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"a"
            yield b"b"

        return StreamingResponse(chunks(), media_type="text/plain")

    response = test_client_factory(Starling(routes=[Route("/", stream)])).get("/")
    assert (response.status_code, response.text) == (200, "ab")


class LateError(Exception):
    pass


@pytest.mark.parametrize("handled", [True, False])
def test_error_after_a_plain_response_started(
    test_client_factory: TestClientFactory, handled: bool
) -> None:
    def fail() -> None:
        raise LateError()

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("sent", background=BackgroundTask(fail))

    handlers: dict[Any, Any] = {}
    if handled:
        handlers[LateError] = lambda request, exc: PlainTextResponse("handler")
    app = Starling(routes=[Route("/", endpoint)], exception_handlers=handlers)
    client = test_client_factory(app)
    if handled:
        with pytest.raises(RuntimeError, match="response already started") as info:
            client.get("/")
        assert isinstance(info.value.__cause__, LateError)
    else:
        with pytest.raises(LateError):
            client.get("/")


@pytest.mark.anyio
async def test_plain_response_failing_before_it_starts() -> None:
    async def endpoint(request: Request) -> Response:
        response = PlainTextResponse("never sent")
        del response.raw_headers
        return response

    async def on_error(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("handled", status_code=409)

    handlers: tuple[dict[Any, Any], dict[int, Any]] = ({AttributeError: on_error}, {})
    scope = http_scope("/")
    scope["starlette.exception_handlers"] = handlers
    messages = await call(request_response(endpoint), scope)
    assert (messages[0]["status"], messages[1]["body"]) == (409, b"handled")


def test_request_response_returns_asgi_app(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(request_response(homepage))
    assert client.get("/anything").text == "home"


@pytest.mark.anyio
async def test_route_called_directly() -> None:
    route = Route("/u/{id:int}", describe, methods=["POST"])
    not_found = await call(route, http_scope("/nowhere", app=object()))
    assert not_found[0]["status"] == 404  # always a plain 404, even inside an app
    assert not_found[1]["body"] == b"Not Found"
    assert (await call(route, http_scope("/u/1")))[0]["status"] == 405
    scope = http_scope("/u/1", "POST")
    assert (await call(route, scope))[0]["status"] == 200
    assert scope["path_params"] == {"id": 1}
    assert "route" not in scope  # only a Router records the route
    assert await call(route, {"type": "lifespan"}) == []
    closed = await call(route, {"type": "websocket", "path": "/nowhere", "headers": []})
    assert closed == [{"type": "websocket.close", "code": 1000, "reason": ""}]


@pytest.mark.anyio
async def test_route_handle_405_inside_an_app_raises() -> None:
    route = Route("/", homepage, methods=["POST"])
    with pytest.raises(HTTPException) as info:
        await call(route.handle, http_scope("/", app=object()))
    assert (info.value.status_code, info.value.headers) == (405, {"Allow": "POST"})


def test_route_middleware_sees_routing_keys(test_client_factory: TestClientFactory) -> None:
    seen: list[Scope] = []

    class Spy:
        def __init__(self, app: ASGIApp, label: str) -> None:
            self.app = app
            self.label = label

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            seen.append({"label": self.label, **scope})
            await self.app(scope, receive, send)

    router = Router(
        [
            Route(
                "/{x}",
                homepage,
                middleware=[Middleware(Spy, "outer"), Middleware(Spy, "inner")],
            )
        ]
    )
    assert test_client_factory(router).get("/1").text == "home"
    assert [s["label"] for s in seen] == ["outer", "inner"]
    assert seen[0]["path_params"] == {"x": "1"}
    assert seen[0]["endpoint"] is homepage
    assert seen[0]["route"] is router.routes[0]
    assert seen[0]["router"] is router


# ---------------------------------------------------------------------------------------------
# WebSocketRoute


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    text = await websocket.receive_text()
    await websocket.send_text(f"{text} {websocket.path_params}")
    await websocket.close()


class RawWebSocket:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.send_text("raw")
        await websocket.close()


def test_websocket_route(test_client_factory: TestClientFactory) -> None:
    router = Router(
        [
            WebSocketRoute("/ws/{x}", ws_echo, name="echo"),
            WebSocketRoute("/raw", RawWebSocket()),
        ]
    )
    client = test_client_factory(router)
    with client.websocket_connect("/ws/1") as websocket:
        websocket.send_text("hi")
        assert websocket.receive_text() == "hi {'x': '1'}"
    with client.websocket_connect("/raw") as websocket:
        assert websocket.receive_text() == "raw"
    assert router.url_path_for("echo", x="a") == URLPath("/ws/a", protocol="websocket")


def test_websocket_exception_handler(test_client_factory: TestClientFactory) -> None:
    class Boom(Exception):
        pass

    async def failing(websocket: WebSocket) -> None:
        await websocket.accept()
        raise Boom()

    async def on_boom(websocket: WebSocket, exc: Exception) -> None:
        await websocket.close(code=4001)

    app = Starling(routes=[WebSocketRoute("/", failing)], exception_handlers={Boom: on_boom})
    with test_client_factory(app).websocket_connect("/") as websocket:
        assert websocket.receive() == {"type": "websocket.close", "code": 4001, "reason": ""}


def test_websocket_route_attributes() -> None:
    route = WebSocketRoute("/ws/{x}", ws_echo)
    assert (route.name, route.path_format) == ("ws_echo", "/ws/{x}")
    assert repr(route) == "WebSocketRoute(path='/ws/{x}', name='ws_echo')"
    assert route == WebSocketRoute("/ws/{x}", ws_echo, name="other")
    assert route != WebSocketRoute("/ws/{y}", ws_echo)
    assert route != Route("/ws/{x}", ws_echo)
    raw = RawWebSocket()
    assert WebSocketRoute("/", raw).app is raw
    partial: Any = functools.partial(ws_echo)
    assert WebSocketRoute("/", partial).app is not partial  # a function: websocket_session
    with pytest.raises(AssertionError, match="^Routed paths must start with '/'$"):
        WebSocketRoute("ws", ws_echo)

    scope: Scope = {"type": "websocket", "path": "/ws/1", "headers": [], "path_params": {"a": 1}}
    assert route.matches(scope) == (
        Match.FULL,
        {"endpoint": ws_echo, "path_params": {"a": 1, "x": "1"}},
    )
    assert route.matches({**scope, "path": "/ws/1/2"}) == (Match.NONE, {})
    assert route.matches(http_scope("/ws/1")) == (Match.NONE, {})
    with pytest.raises(NoMatchFound):
        route.url_path_for("ws_echo", x="1", y="2")
    with pytest.raises(NoMatchFound):
        route.url_path_for("other", x="1")


@pytest.mark.anyio
async def test_websocket_route_middleware() -> None:
    class Reject:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "websocket.close", "code": 4003, "reason": "no"})

    router = Router([WebSocketRoute("/", ws_echo, middleware=[Middleware(Reject)])])
    sent = await call(router, {"type": "websocket", "path": "/", "headers": []})
    assert sent == [{"type": "websocket.close", "code": 4003, "reason": "no"}]


def test_websocket_session_returns_asgi_app(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(websocket_session(ws_echo))
    with client.websocket_connect("/any") as websocket:
        websocket.send_text("x")
        assert websocket.receive_text() == "x {}"


# ---------------------------------------------------------------------------------------------
# Mount


def test_mount_attributes() -> None:
    routes = [Route("/x", homepage)]
    mount = Mount("/m/{mp}/", routes=routes, name="m")
    assert (mount.path, mount.name, mount.path_format) == ("/m/{mp}", "m", "/m/{mp}/{path}")
    assert mount.path_regex.pattern == "^/m/(?P<mp>[^/]+)/(?P<path>.*)$"
    assert mount.routes == routes
    assert mount.routes is not routes  # the Router keeps its own list
    assert isinstance(mount.app, Router)
    assert repr(mount) == f"Mount(path='/m/{{mp}}', name='m', app={mount.app!r})"
    assert repr(Mount("", app=raw_app)) == f"Mount(path='', name='', app={raw_app!r})"
    assert Mount("/", routes=[]).path_regex.pattern == "^/(?P<path>.*)$"
    # app wins over routes; an app without routes has none.
    with_both = Mount("/x", app=raw_app, routes=routes)
    assert (with_both.app, with_both.routes) == (raw_app, [])
    assert mount == Mount("/m/{mp}", routes=[Route("/x", homepage)])
    assert mount != Mount("/m/{mp}", routes=[])
    assert mount != Route("/m/{mp}", homepage)
    with pytest.raises(AssertionError, match="^Routed paths must start with '/'$"):
        Mount("m", app=raw_app)
    with pytest.raises(AssertionError, match="^Either 'app=...', or 'routes=' must be specified$"):
        Mount("/m")


def test_mount_matches() -> None:
    mount = Mount("/m/{mp:int}", app=raw_app)
    assert mount.matches(http_scope("/m/1")) == (Match.NONE, {})
    assert mount.matches(http_scope("/m/1/")) == (
        Match.FULL,
        {"path_params": {"mp": 1}, "app_root_path": "", "root_path": "/m/1", "endpoint": raw_app},
    )
    match, child = mount.matches(
        http_scope("/pre/m/1/x/y", root_path="/pre", path_params={"path": "outer"})
    )
    assert child == {
        "path_params": {"path": "outer", "mp": 1},
        "app_root_path": "/pre",
        "root_path": "/pre/m/1",
        "endpoint": raw_app,
    }
    match, child = mount.matches(http_scope("/m/1//x", app_root_path="/app"))
    assert (child["root_path"], child["app_root_path"]) == ("/m/1", "/app")
    assert mount.matches({"type": "websocket", "path": "/m/1/x", "headers": []})[0] is Match.FULL
    assert mount.matches({"type": "lifespan"}) == (Match.NONE, {})


def test_mount_dispatch(test_client_factory: TestClientFactory) -> None:
    inner = Router([Route("/leaf/{x}", describe, methods=["GET", "PUT"])])
    router = Router(
        [
            Mount(
                "/m/{mp}",
                routes=[
                    Route("/leaf/{x}", describe),
                    Mount("/deep", routes=[Route("/", describe)]),
                ],
            ),
            Mount("/r", app=inner),
            Mount("/raw", app=raw_app),
            Mount("/", routes=[Route("/root/{rest:path}", describe)]),
        ]
    )
    client = test_client_factory(router)
    data = client.get("/m/1/leaf/2").json()
    assert data["path_params"] == {"mp": "1", "x": "2"}
    assert (data["root_path"], data["app_root_path"]) == ("/m/1", "")
    assert data["url"] == "http://testserver/m/1/leaf/2"
    assert client.get("/m/1/deep/").json()["root_path"] == "/m/1/deep"
    assert client.get("/r/leaf/9").json()["route"].startswith("Route(path='/leaf/{x}'")
    assert client.put("/r/leaf/9").status_code == 200
    assert client.get("/raw/anything").text == "raw http"
    assert client.get("/root/a/b").json()["path_params"] == {"rest": "a/b"}
    assert client.get("/m/1/").status_code == 404


def test_mount_middleware(test_client_factory: TestClientFactory) -> None:
    class AddHeader:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            async def send_with_header(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message["headers"], (b"x-mount", b"1")]
                await send(message)

            await self.app(scope, receive, send_with_header)

    mount = Mount("/m", routes=[Route("/", homepage)], middleware=[Middleware(AddHeader)])
    assert isinstance(mount.app, AddHeader)
    assert len(mount.routes) == 1  # routes come from the app under the middleware
    client = test_client_factory(Router([mount]))
    assert client.get("/m/").headers["x-mount"] == "1"
    # The child scope's endpoint is the wrapped app.
    assert mount.matches(http_scope("/m/"))[1]["endpoint"] is mount.app


def test_mount_url_path_for() -> None:
    mount = Mount(
        "/m/{mp:int}",
        routes=[
            Route("/leaf/{x}", homepage, name="leaf"),
            Route("/p", homepage, name="m"),
            Mount("/deep", routes=[Route("/", homepage, name="root")], name="deep"),
        ],
        name="m",
    )
    assert mount.url_path_for("m:leaf", mp=1, x="b") == URLPath("/m/1/leaf/b", protocol="http")
    assert mount.url_path_for("m:leaf", mp=1, x="b").protocol == "http"
    assert mount.url_path_for("m:deep:root", mp=2) == "/m/2/deep/"
    assert mount.url_path_for("m:m", mp=2) == "/m/2/p"
    url = mount.url_path_for("m", mp=1, path="//a/b c")
    assert (url, url.protocol) == ("/m/1/a/b c", "")
    assert mount.url_path_for("m", mp=1, path="") == "/m/1/"
    # As in Starlette, a parameter of the mount that is not given stays a placeholder.
    assert mount.url_path_for("m:leaf", x="b") == "/m/{mp}/leaf/b"
    assert mount.url_path_for("m", path="/a") == "/m/{mp}/a"

    failures: list[tuple[str, dict[str, Any], str]] = [
        ("m", {"mp": 1, "path": "/a", "extra": 2}, "extra"),
        ("m", {"mp": 1}, "mp"),
        ("m:leaf", {"mp": 1, "x": "2", "extra": 3}, "x, extra"),
        ("m:leaf", {"mp": 1, "x": 2, "path": "zz"}, "x, path"),
        ("m:nope", {"mp": 1}, ""),
        ("mx:leaf", {"mp": 1, "x": 1}, "mp, x"),
        ("leaf", {"mp": 1, "x": 1}, "mp, x"),
    ]
    for name, params, listed in failures:
        with pytest.raises(NoMatchFound) as info:
            mount.url_path_for(name, **params)
        assert str(info.value) == f'No route exists for name "{name}" and params "{listed}".'

    unnamed = Mount("/u", routes=[Route("/n", homepage, name="n")])
    assert unnamed.url_path_for("n") == "/u/n"
    with pytest.raises(NoMatchFound):
        unnamed.url_path_for("u:n")
    assert (
        Mount("/", routes=[Route("/x", homepage, name="x")], name="r").url_path_for("r:x") == "/x"
    )
    assert Mount("/static", app=raw_app, name="s").url_path_for("s", path="/a.css") == (
        "/static/a.css"
    )
    with pytest.raises(NoMatchFound):
        Mount("/static", app=raw_app, name="s").url_path_for("s:x")


# ---------------------------------------------------------------------------------------------
# Host


def host_scope(host: bytes | None, scope_type: str = "http") -> Scope:
    headers = [] if host is None else [(b"host", host)]
    return {"type": scope_type, "path": "/", "method": "GET", "headers": headers}


@pytest.mark.parametrize(
    ("host", "sub"),
    [
        (b"a.example.org", "a"),
        (b"a.example.org:8000", "a"),
        (b"a.example.org:9", "a"),
        (b"A.EXAMPLE.ORG", "a"),  # lowercased before matching
        (b"a.b.example.org", "a.b"),
        (b"a%2fb.example.org", "a%2fb"),
        (b"", None),
        (None, None),
        (b"a.example.org.", None),
        (b"a/b.example.org", None),
        (b"a.example.org:abc", None),
        (b"a.example.org:8000:9", None),
        ("é.example.org".encode(), None),
    ],
)
def test_host_matches(host: bytes | None, sub: str | None) -> None:
    route = Host("{sub}.Example.org:8000", app=raw_app)
    match, child = route.matches(host_scope(host))
    if sub is None:
        assert (match, child) == (Match.NONE, {})
    else:
        assert (match, child) == (Match.FULL, {"path_params": {"sub": sub}, "endpoint": raw_app})


def test_host_matches_other_cases() -> None:
    route = Host("{sub}.example.org", app=raw_app)
    assert route.matches(host_scope(b"x.example.org", "websocket"))[0] is Match.FULL
    assert route.matches({"type": "lifespan"}) == (Match.NONE, {})
    scope = host_scope(b"x.example.org")
    scope["headers"] = [(b"Host", b"x.example.org")]  # ASGI header names are lowercase
    assert route.matches(scope) == (Match.NONE, {})
    scope["headers"] = [(b"host", b"x.example.org"), (b"host", b"y.example.org")]
    assert route.matches(scope)[1]["path_params"] == {"sub": "x"}
    ipv6 = Host("[::1]", app=raw_app)
    assert ipv6.matches(host_scope(b"[::1]:8000"))[0] is Match.FULL
    assert ipv6.matches(host_scope(b"[::1]"))[0] is Match.FULL


def test_host_attributes() -> None:
    router = Router([Route("/", homepage)])
    host = Host("{sub}.example.org", app=router, name="h")
    assert (host.host, host.host_format, host.name) == (
        "{sub}.example.org",
        "{sub}.example.org",
        "h",
    )
    assert host.routes == router.routes
    assert Host("a", app=raw_app).routes == []
    assert repr(host) == f"Host(host='{{sub}}.example.org', name='h', app={router!r})"
    assert repr(Host("a", app=raw_app)) == f"Host(host='a', name='', app={raw_app!r})"
    assert host == Host("{sub}.example.org", app=router)
    assert host != Host("other", app=router)
    assert host != Mount("/", app=router)
    with pytest.raises(AssertionError, match="^Host must not start with '/'$"):
        Host("/x", app=raw_app)


def test_host_url_path_for() -> None:
    host = Host("{sub}.ex.org", app=Router([Route("/x", homepage, name="x")]), name="h")
    url = host.url_path_for("h:x", sub="a")
    assert (url, url.protocol, url.host) == ("/x", "http", "a.ex.org")
    assert host.url_path_for("h:x").host == "{sub}.ex.org"  # as in Starlette
    url = host.url_path_for("h", sub="a", path="/b")
    assert (url, url.protocol, url.host) == ("/b", "", "a.ex.org")
    for name, params in [("h", {"sub": "a"}), ("x", {"sub": "a"}), ("h:nope", {"sub": "a"})]:
        with pytest.raises(NoMatchFound):
            host.url_path_for(name, **params)
    with pytest.raises(NoMatchFound) as info:
        host.url_path_for("h", sub="a", path="/b", extra=1)
    assert str(info.value) == 'No route exists for name "h" and params "extra".'
    unnamed = Host("ex.org:8000", app=Router([Route("/x", homepage, name="x")]))
    assert unnamed.url_path_for("x").host == "ex.org:8000"


def test_host_dispatch(test_client_factory: TestClientFactory) -> None:
    router = Router(
        [
            Host("{sub}.example.org", app=Router([Route("/h", describe)]), name="api"),
            Route("/h", homepage),
        ]
    )
    client = test_client_factory(router)
    data = client.get("http://api.example.org:8000/h").json()
    assert data["path_params"] == {"sub": "api"}
    assert client.get("http://other.net/h").text == "home"


# ---------------------------------------------------------------------------------------------
# Router


def test_router_attributes() -> None:
    routes = [Route("/", homepage)]
    router = Router(routes)
    assert router.routes == routes and router.routes is not routes
    assert isinstance(Router(tuple(routes)).routes, list)
    assert router.redirect_slashes is True
    assert router.default == router.not_found
    assert Router(default=raw_app).default is raw_app
    assert isinstance(router.lifespan_context, _DefaultLifespan)
    assert router.middleware_stack == router.app
    assert router == Router([Route("/", homepage)])
    assert router != Router()
    assert router != routes


def test_router_add_methods() -> None:
    router = Router()
    router.add_route("/a", homepage, methods=["post"], name="a", include_in_schema=False)
    router.add_websocket_route("/w", ws_echo, name="w")
    router.mount("/m", raw_app, name="m")
    router.host("h.com", raw_app, name="h")
    assert router.routes == [
        Route("/a", homepage, methods=["POST"]),
        WebSocketRoute("/w", ws_echo),
        Mount("/m", app=raw_app),
        Host("h.com", app=raw_app),
    ]
    first = router.routes[0]
    assert isinstance(first, Route)
    assert (first.name, first.include_in_schema) == ("a", False)


def test_router_dispatch_order(test_client_factory: TestClientFactory) -> None:
    async def second(request: Request) -> Response:
        return PlainTextResponse("second")

    router = Router(
        [
            Route("/a", homepage, methods=["POST"]),
            Route("/a", second, methods=["PUT"]),
            Route("/a", second, methods=["PUT", "GET"]),
            Route("/a", homepage, methods=["GET"]),
        ]
    )
    client = test_client_factory(router)
    assert client.post("/a").text == "home"
    assert client.put("/a").text == "second"
    assert client.get("/a").text == "second"  # the first full match wins
    response = client.delete("/a")
    # The first partial match answers the 405, with its own methods.
    assert (response.status_code, response.headers["allow"]) == (405, "POST")


def test_routes_list_is_mutable(test_client_factory: TestClientFactory) -> None:
    router = Router()
    client = test_client_factory(router)
    assert client.get("/late").status_code == 404
    router.routes.append(Route("/late", homepage))
    assert client.get("/late").text == "home"


@pytest.mark.anyio
async def test_router_sets_scope_keys() -> None:
    router = Router([Route("/a", homepage)])
    scope = http_scope("/a")
    await call(router, scope)
    assert (scope["router"], scope["route"], scope["endpoint"]) == (
        router,
        router.routes[0],
        homepage,
    )
    scope = http_scope("/a", router="outer")
    await call(router, scope)
    assert scope["router"] == "outer"  # an outer router is kept


@pytest.mark.anyio
async def test_router_not_found() -> None:
    router = Router([Route("/a", homepage)])
    sent = await call(router, http_scope("/zz"))
    assert sent == [
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [(b"content-length", b"9"), (b"content-type", b"text/plain; charset=utf-8")],
        },
        {"type": "http.response.body", "body": b"Not Found"},
    ]
    with pytest.raises(HTTPException) as info:
        await call(router, http_scope("/zz", app=object()))
    assert (info.value.status_code, info.value.detail) == (404, "Not Found")
    for extra in ({}, {"app": object()}):
        closed = await call(router, {"type": "websocket", "path": "/zz", "headers": [], **extra})
        assert closed == [{"type": "websocket.close", "code": 1000, "reason": ""}]
    with pytest.raises(AssertionError):
        await call(router, {"type": "other"})


@pytest.mark.anyio
async def test_router_default_app() -> None:
    seen: list[Scope] = []

    async def default(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    router = Router([Route("/a", homepage)], default=default)
    await call(router, http_scope("/zz"))
    assert len(seen) == 1 and seen[0]["router"] is router
    # A slash redirect comes before the default.
    assert (await call(router, http_scope("/a/")))[0]["status"] == 307
    assert len(seen) == 1


def test_redirect_slashes(test_client_factory: TestClientFactory) -> None:
    router = Router(
        [
            Route("/a", homepage),
            Route("/b/", homepage),
            Route("/post-only", homepage, methods=["POST"]),
            Mount("/m", routes=[Route("/", homepage), Route("/x/", homepage)]),
            WebSocketRoute("/ws/", ws_echo),
        ]
    )
    client = test_client_factory(router, follow_redirects=False)
    cases = {
        "/a/": "http://testserver/a",
        "/a//": "http://testserver/a",
        "/b": "http://testserver/b/",
        "/b?q": "http://testserver/b/?q",
        "/a/?x=1&y=%20": "http://testserver/a?x=1&y=%20",
        "/post-only/": "http://testserver/post-only",  # a 405 there is a match too
        "/m": "http://testserver/m/",
        "/m/x": "http://testserver/m/x/",
    }
    for path, location in cases.items():
        response = client.get(path)
        assert (response.status_code, response.headers["location"]) == (307, location), path
        assert response.text == ""
    for path in ["/", "//a/", "/c", "/a/%20"]:
        assert client.get(path).status_code == 404, path
    assert client.head("/b").status_code == 307
    assert client.post("/post-only/").headers["location"] == "http://testserver/post-only"
    https = test_client_factory(router, base_url="https://example.com:8443", follow_redirects=False)
    assert https.get("/a/").headers["location"] == "https://example.com:8443/a"


def test_redirect_slashes_with_root_path(test_client_factory: TestClientFactory) -> None:
    router = Router([Route("/a", homepage), Route("/b/", homepage)])
    client = test_client_factory(router, root_path="/pre", follow_redirects=False)
    assert client.get("/a/").headers["location"] == "http://testserver/a"
    assert client.get("/pre/a/").headers["location"] == "http://testserver/pre/a"
    assert client.get("/pre/b").headers["location"] == "http://testserver/pre/b/"


@pytest.mark.anyio
async def test_redirect_slashes_edge_paths() -> None:
    router = Router([Route("/", homepage)])
    sent = await call(router, http_scope("/pre", root_path="/pre"))
    assert sent[0]["status"] == 307
    assert (b"location", b"http://testserver/pre/") in sent[0]["headers"]
    sent = await call(router, http_scope(""))
    assert (b"location", b"http://testserver/") in sent[0]["headers"]
    assert (await call(router, http_scope("/pre/", root_path="/pre")))[0]["status"] == 200


def test_redirect_slashes_disabled(test_client_factory: TestClientFactory) -> None:
    router = Router([Route("/a", homepage)], redirect_slashes=False)
    client = test_client_factory(router, follow_redirects=False)
    assert client.get("/a/").status_code == 404


@pytest.mark.anyio
async def test_redirect_slashes_not_for_websockets() -> None:
    router = Router([WebSocketRoute("/ws/", ws_echo)])
    sent = await call(router, {"type": "websocket", "path": "/ws", "headers": []})
    assert sent == [{"type": "websocket.close", "code": 1000, "reason": ""}]


def test_router_middleware(test_client_factory: TestClientFactory) -> None:
    seen: list[bool] = []

    class Spy:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            seen.append("router" in scope)
            await self.app(scope, receive, send)

    router = Router([Route("/", homepage)], middleware=[Middleware(Spy)])
    assert isinstance(router.middleware_stack, Spy)
    assert test_client_factory(router).get("/").text == "home"
    assert seen == [False]  # the middleware runs before the router's dispatch


def test_url_path_for_across_nesting() -> None:
    router = Router(
        [
            Route("/u/{id:int}", homepage, name="user"),
            Route("/s/{s}", homepage, name="s"),
            Route("/p/{rest:path}", homepage, name="p"),
            Route("/f/{f:float}", homepage, name="f"),
            Route("/uu/{u:uuid}", homepage, name="uu"),
            Mount(
                "/m/{mp}",
                routes=[
                    Route("/leaf/{x}", homepage, name="leaf"),
                    Host(
                        "{sub}.ex.org", app=Router([Route("/h", homepage, name="h")]), name="host"
                    ),
                ],
                name="mount",
            ),
            Host("{sub}.example.org", app=Router([Route("/h/{x}", homepage, name="hr")]), name="h"),
        ]
    )
    assert router.url_path_for("user", id=3) == "/u/3"
    # No quoting, as in Starlette, but for what would restructure the URL ("?", "#", "%"...:
    # see tests/test_path_values.py): URLPath holds the path text, not an encoded URL.
    assert router.url_path_for("s", s="a b") == "/s/a b"
    assert router.url_path_for("s", s="é?#") == "/s/é%3F%23"
    assert router.url_path_for("p", rest="a/b c/é") == "/p/a/b c/é"
    assert router.url_path_for("p", rest="") == "/p/"
    assert router.url_path_for("f", f=1.5) == "/f/1.5"
    assert (
        router.url_path_for("uu", u=uuid.UUID(int=5)) == "/uu/00000000-0000-0000-0000-000000000005"
    )
    assert router.url_path_for("mount:leaf", mp="a", x="b") == "/m/a/leaf/b"
    url = router.url_path_for("h:hr", sub="api", x="1")
    assert (url, url.host, url.protocol) == ("/h/1", "api.example.org", "http")
    url = router.url_path_for("mount:host:h", mp="a", sub="q")
    # The host is lost under a Mount, as in Starlette: Mount keeps only path and protocol.
    assert (url, url.host) == ("/m/a/h", "")
    with pytest.raises(AssertionError, match="May not contain path separators"):
        router.url_path_for("s", s="a/b")
    with pytest.raises(AssertionError, match="Negative integers are not supported"):
        router.url_path_for("user", id=-1)
    with pytest.raises(NoMatchFound) as info:
        router.url_path_for("nope", a=1, b=2)
    assert str(info.value) == 'No route exists for name "nope" and params "a, b".'
    with pytest.raises(NoMatchFound):
        router.url_path_for("user", id=3, extra=1)


def test_request_url_for(test_client_factory: TestClientFactory) -> None:
    def endpoint(request: Request) -> Response:
        return PlainTextResponse(str(request.url_for("user", name="a b")))

    router = Router([Route("/users/{name}", endpoint, name="user")])
    # Not quoted, as in Starlette: url_path_for gives path text.
    assert test_client_factory(router).get("/users/x").text == "http://testserver/users/a b"


# ---------------------------------------------------------------------------------------------
# Lifespan


class LifespanServer:
    """Sends startup then shutdown and records the replies."""

    def __init__(self, with_state: bool = True, app: object = None) -> None:
        self.scope: Scope = {"type": "lifespan"}
        if with_state:
            self.scope["state"] = {}
        if app is not None:
            self.scope["app"] = app
        self.pending: list[Message] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        return self.pending.pop(0)

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    async def run(self, router: Router) -> None:
        await router(self.scope, self.receive, self.send)

    @property
    def types(self) -> list[str]:
        return [message["type"] for message in self.sent]


@pytest.mark.anyio
async def test_lifespan_with_state() -> None:
    events: list[object] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[dict[str, int]]:
        events.append(app)
        yield {"k": 1}
        events.append("shutdown")

    server = LifespanServer(app="the app")
    await server.run(Router(lifespan=lifespan))
    assert server.types == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["the app", "shutdown"]
    assert server.scope["state"] == {"k": 1}
    assert isinstance(server.scope["router"], Router)


@pytest.mark.anyio
async def test_lifespan_default_and_none_state() -> None:
    @contextlib.asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[None]:
        yield None

    for router in (Router(), Router(lifespan=lifespan)):
        server = LifespanServer(with_state=False)
        await server.run(router)
        assert server.types == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.mark.anyio
async def test_lifespan_state_unsupported() -> None:
    @contextlib.asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[dict[str, int]]:
        yield {"k": 1}

    server = LifespanServer(with_state=False)
    with pytest.raises(RuntimeError, match='The server does not support "state"'):
        await server.run(Router(lifespan=lifespan))
    assert server.types == ["lifespan.startup.failed"]
    assert "RuntimeError: The server does not support" in server.sent[0]["message"]


@pytest.mark.anyio
async def test_lifespan_startup_failure() -> None:
    @contextlib.asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[None]:
        raise RuntimeError("startup boom")
        yield  # pragma: no cover (never reached: the generator raises first)

    server = LifespanServer()
    with pytest.raises(RuntimeError, match="startup boom"):
        await server.run(Router(lifespan=lifespan))
    assert server.types == ["lifespan.startup.failed"]
    assert server.sent[0]["message"].startswith("Traceback (most recent call last):")
    assert server.sent[0]["message"].endswith("RuntimeError: startup boom\n")


@pytest.mark.anyio
async def test_lifespan_shutdown_failure() -> None:
    @contextlib.asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[None]:
        yield
        raise RuntimeError("shutdown boom")

    server = LifespanServer()
    with pytest.raises(RuntimeError, match="shutdown boom"):
        await server.run(Router(lifespan=lifespan))
    assert server.types == ["lifespan.startup.complete", "lifespan.shutdown.failed"]
    assert server.sent[1]["message"].endswith("RuntimeError: shutdown boom\n")


@pytest.mark.anyio
async def test_deprecated_generator_lifespans() -> None:
    events: list[str] = []

    async def async_gen(app: object) -> AsyncIterator[None]:
        events.append("async start")
        yield
        events.append("async stop")

    def sync_gen(app: object) -> Iterator[None]:
        events.append("sync start")
        yield
        events.append("sync stop")

    message = "async generator function lifespans are deprecated, use an @contextlib"
    with pytest.warns(StarletteDeprecationWarning, match=message):
        async_router = Router(lifespan=async_gen)  # type: ignore[arg-type]
    with pytest.warns(StarletteDeprecationWarning, match="^generator function lifespans"):
        sync_router = Router(lifespan=sync_gen)  # type: ignore[arg-type]
    for router in (async_router, sync_router):
        server = LifespanServer()
        await server.run(router)
        assert server.types == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["async start", "async stop", "sync start", "sync stop"]


@pytest.mark.anyio
async def test_sync_generator_lifespan_sees_errors() -> None:
    def sync_gen(app: object) -> Iterator[None]:
        with contextlib.suppress(ValueError):
            yield

    with pytest.warns(StarletteDeprecationWarning):
        router = Router(lifespan=sync_gen)  # type: ignore[arg-type]
    async with router.lifespan_context(None):
        raise ValueError("swallowed by the generator")


def test_lifespan_through_test_client(test_client_factory: TestClientFactory) -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    router = Router([Route("/", homepage)], lifespan=lifespan)
    with test_client_factory(router) as client:
        assert events == ["startup"]
        assert client.get("/").text == "home"
    assert events == ["startup", "shutdown"]


def test_base_route_is_abstract() -> None:
    route = BaseRoute()
    with pytest.raises(NotImplementedError):
        route.matches(http_scope("/"))
    with pytest.raises(NotImplementedError):
        route.url_path_for("x")


def test_hostile_int_parameter_is_a_404(test_client_factory: TestClientFactory) -> None:
    """More digits than int() takes: Starlette answers 500; for starling no route matches."""
    huge = "9" * 5000
    app = Starling(routes=[Route("/u/{id:int}", describe)])
    client = test_client_factory(app)
    assert client.get("/u/" + huge).status_code == 404
    assert client.get("/u/" + huge + "/").status_code == 404
    # a bare router (no app, no exception middleware) answers the same
    assert (
        test_client_factory(Router([Route("/u/{id:int}", describe)])).get("/u/" + huge).status_code
        == 404
    )


def test_hostile_int_parameter_falls_through_to_later_routes(
    test_client_factory: TestClientFactory,
) -> None:
    huge = "9" * 5000
    routes = [
        Route("/u/{id:int}", describe, name="by_id"),
        Route("/u/{slug}", describe, name="by_slug"),
        Mount("/m/{id:int}", routes=[Route("/x", describe, name="mounted")]),
        Host("{id:int}.example.org", app=PlainTextResponse("by host")),
    ]
    client = test_client_factory(Router(routes))
    assert client.get("/u/" + huge).json()["path_params"] == {"slug": huge}
    assert client.get(f"/m/{huge}/x").status_code == 404
    assert client.get("/", headers={"host": f"{huge}.example.org"}).status_code == 404
    assert client.get("/", headers={"host": "12.example.org"}).text == "by host"


def test_hostile_int_parameter_on_a_websocket_route(test_client_factory: TestClientFactory) -> None:
    async def endpoint(websocket: WebSocket) -> None:  # pragma: no cover (never matched)
        await websocket.accept()

    client = test_client_factory(Router([WebSocketRoute("/ws/{id:int}", endpoint)]))
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/ws/" + "9" * 5000):
        pass  # pragma: no cover (the connection is refused)
    assert info.value.code == 1000


def test_route_subclass_without_route_init(test_client_factory: TestClientFactory) -> None:
    """FastAPI's APIRoute sets the public attributes itself and never calls Route.__init__."""

    class APIRouteLike(Route):
        def __init__(self, path: str, endpoint: Any) -> None:
            self.path = path
            self.endpoint = endpoint
            self.name = "like"
            self.methods = {"GET"}
            self.path_regex, self.path_format, self.param_convertors = compile_path(path)
            self.app = request_response(endpoint)

    router = Router([APIRouteLike("/c/{x}", describe)])
    client = test_client_factory(router)
    assert client.get("/c/1").json()["path_params"] == {"x": "1"}
    assert client.post("/c/1").headers["allow"] == "GET"
    assert router.url_path_for("like", x="2") == "/c/2"


def test_url_path_for_fills_placeholders_in_one_pass() -> None:
    """A value that looks like a placeholder is text; it is never filled in turn."""
    router = Router([Route("/{id}/{x}", describe, name="pair")])
    assert router.url_path_for("pair", id="{x}", x="42") == "/{x}/42"
    assert router.url_path_for("pair", id="{x}", x="{id}") == "/{x}/{id}"
    assert replace_params(
        "/{a}/{b}",
        {"a": StringConvertor(), "b": StringConvertor()},
        {
            "a": "{b}",
            "b": "1",
            "c": "3",
        },
    ) == ("/{b}/1", {"c": "3"})


async def _ws_endpoint(websocket: WebSocket) -> None:  # pragma: no cover (never called)
    await websocket.accept()


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("any", {"p": "/evil.com/a"}, "/%2Fevil.com/a"),
        ("any", {"p": "//evil.com/a"}, "/%2F/evil.com/a"),
        ("any", {"p": "/"}, "/%2F"),
        ("any", {"p": ""}, "/"),
        ("under", {"p": "/e.org"}, "/x//e.org"),  # not at the start: a path, not an authority
        ("mounted:any", {"m": "x", "p": "/evil.com"}, "/x/%2Fevil.com"),
        ("ws", {"p": "/evil.com"}, "/%2Fevil.com"),
        # browsers read "/\\" as "//": every backslash is escaped
        ("any", {"p": "\\evil.com/a"}, "/%5Cevil.com/a"),
        ("any", {"p": "/\\evil.com"}, "/%2F%5Cevil.com"),
        ("any", {"p": "a\\b"}, "/a%5Cb"),
        ("under", {"p": "\\e"}, "/x/%5Ce"),
    ],
)
def test_url_path_for_never_builds_a_network_path(
    name: str, params: dict[str, str], expected: str
) -> None:
    """APPSEC: "//evil.com" would read as another host; the second slash is escaped."""
    router = Router(
        [
            Route("/x/{p:path}", describe, name="under"),
            WebSocketRoute("/{p:path}", _ws_endpoint, name="ws"),
            Mount("/{m}", routes=[Route("/{p:path}", describe, name="any")], name="mounted"),
            Route("/{p:path}", describe, name="any"),
        ]
    )
    assert router.url_path_for(name, **params) == expected


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("api.example.org", 200),
        ("API.example.org", 200),
        ("api.example.org:8000", 200),
        ("api.example.org:65536", 200),  # any all-digit port is ignored, as in Starlette
        ("api.example.org:100000", 200),
        ("api.example.org:", 404),
        ("api.example.org:abc", 404),
        ("api.example.org:1:2", 404),
        ("[::1]:80", 404),
    ],
)
def test_host_routes_ignore_the_port(
    test_client_factory: TestClientFactory, host: str, status: int
) -> None:
    app = Router([Host("api.example.org", app=PlainTextResponse("host"))])
    assert test_client_factory(app).get("/", headers={"host": host}).status_code == status


def test_host_routes_match_ipv6_literals(test_client_factory: TestClientFactory) -> None:
    app = Router([Host("[::1]", app=PlainTextResponse("v6"))])
    client = test_client_factory(app)
    assert client.get("/", headers={"host": "[::1]:8000"}).text == "v6"
    assert client.get("/", headers={"host": "[::1]"}).text == "v6"
