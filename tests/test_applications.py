from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

from starling import applications
from starling.applications import Starlette, Starling
from starling.datastructures import State
from starling.exceptions import HTTPException, WebSocketException
from starling.middleware import Middleware
from starling.middleware.errors import ServerErrorMiddleware
from starling.middleware.exceptions import ExceptionMiddleware
from starling.requests import Request
from starling.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starling.routing import Host, Mount, NoMatchFound, Route, Router, WebSocketRoute
from starling.types import ASGIApp, Receive, Scope, Send
from starling.websockets import WebSocket, WebSocketDisconnect

if TYPE_CHECKING:
    from tests.types import TestClientFactory


class ParentError(Exception):
    pass


class ChildError(ParentError):
    pass


def homepage(request: Request) -> Response:
    return PlainTextResponse("home")


def users(request: Request) -> Response:
    return PlainTextResponse(f"user {request.path_params['name']}")


def raise_runtime(request: Request) -> Response:
    raise RuntimeError("<b>boom</b>")


def raise_child(request: Request) -> Response:
    raise ChildError("child")


def raise_http(request: Request) -> Response:
    raise HTTPException(int(request.path_params["code"]))


async def read_body(request: Request) -> Response:
    return PlainTextResponse(str(len(await request.body())))


async def websocket_endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


async def websocket_raise(websocket: WebSocket) -> None:
    await websocket.accept()
    raise WebSocketException(code=4001, reason="nope")


def make_app(**kwargs: Any) -> Starling:
    routes = [
        Route("/", homepage),
        Route("/users/{name}", users, name="user"),
        Route("/runtime", raise_runtime),
        Route("/child", raise_child),
        Route("/http/{code:int}", raise_http),
        Route("/body", read_body, methods=["POST"]),
        WebSocketRoute("/ws", websocket_endpoint),
        WebSocketRoute("/ws-raise", websocket_raise),
    ]
    return Starling(routes=routes, **kwargs)


def test_starlette_is_starling() -> None:
    assert Starlette is Starling
    assert applications.Starlette is applications.Starling


def test_routes_and_url_path_for(test_client_factory: TestClientFactory) -> None:
    app = make_app()
    client = test_client_factory(app)
    assert client.get("/").text == "home"
    assert client.get("/users/ada").text == "user ada"
    assert app.routes is app.router.routes
    assert app.url_path_for("user", name="ada") == "/users/ada"
    with pytest.raises(NoMatchFound):
        app.url_path_for("missing")


def test_defaults() -> None:
    app = Starling()
    assert app.debug is False
    assert isinstance(app.state, State)
    assert isinstance(app.router, Router)
    assert app.routes == []
    assert app.exception_handlers == {}
    assert app.user_middleware == []
    assert app.middleware_stack is None
    assert app.max_body_size is None


def test_constructor_arguments_are_copied() -> None:
    middleware: list[Middleware] = []
    handlers: dict[Any, Any] = {}
    app = Starling(middleware=middleware, exception_handlers=handlers)
    assert app.user_middleware == middleware and app.user_middleware is not middleware
    assert app.exception_handlers == handlers and app.exception_handlers is not handlers


def test_not_found_and_method_not_allowed(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app())
    response = client.get("/nowhere")
    assert (response.status_code, response.text) == (404, "Not Found")
    response = client.post("/")
    assert (response.status_code, response.text) == (405, "Method Not Allowed")
    assert response.headers["allow"] == "GET, HEAD"


def test_websocket_routes(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app())
    with client.websocket_connect("/ws") as session:
        assert session.receive_text() == "hello"
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/ws-raise") as ws:
        ws.receive_text()
    assert (info.value.code, info.value.reason) == (4001, "nope")


def test_server_error(test_client_factory: TestClientFactory) -> None:
    app = make_app()
    client = test_client_factory(app, raise_server_exceptions=False)
    response = client.get("/runtime")
    assert (response.status_code, response.text) == (500, "Internal Server Error")
    with pytest.raises(RuntimeError, match="boom"):
        test_client_factory(app).get("/runtime")


def test_debug_pages(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app(debug=True), raise_server_exceptions=False)
    response = client.get("/runtime", headers={"accept": "text/html"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "RuntimeError: &lt;b&gt;boom&lt;/b&gt;" in response.text
    assert "<b>boom" not in response.text
    response = client.get("/runtime")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text.endswith("RuntimeError: <b>boom</b>\n")
    assert "in raise_runtime" in response.text


def test_handlers_by_status_code(test_client_factory: TestClientFactory) -> None:
    async def not_found(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"detail": exc.detail, "path": request.url.path}, status_code=404)

    def teapot(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("short and stout", status_code=418)

    app = make_app(exception_handlers={404: not_found, 418: teapot})
    client = test_client_factory(app)
    assert client.get("/nowhere").json() == {"detail": "Not Found", "path": "/nowhere"}
    assert client.get("/http/404").json() == {"detail": "Not Found", "path": "/http/404"}
    assert client.get("/http/418").text == "short and stout"
    assert client.get("/http/409").text == "Conflict"


def test_handlers_by_class_follow_the_mro(test_client_factory: TestClientFactory) -> None:
    def parent(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(f"parent handled {type(exc).__name__}", status_code=409)

    client = test_client_factory(make_app(exception_handlers={ParentError: parent}))
    response = client.get("/child")
    assert (response.status_code, response.text) == (409, "parent handled ChildError")


def test_500_and_exception_handlers_go_to_the_server_error_layer(
    test_client_factory: TestClientFactory,
) -> None:
    def on_500(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(f"500 handler: {exc}", status_code=500)

    def on_exception(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("exception handler", status_code=500)

    app = make_app(exception_handlers={500: on_500})
    client = test_client_factory(app, raise_server_exceptions=False)
    assert client.get("/runtime").text == "500 handler: <b>boom</b>"
    # An HTTPException(500) is a handled exception: ExceptionMiddleware answers it.
    response = test_client_factory(app).get("/http/500")
    assert (response.status_code, response.text) == (500, "Internal Server Error")

    # Of 500 and Exception, the one registered last wins.
    app = make_app(exception_handlers={500: on_500, Exception: on_exception})
    client = test_client_factory(app, raise_server_exceptions=False)
    assert client.get("/runtime").text == "exception handler"
    app = make_app(exception_handlers={Exception: on_exception, 500: on_500})
    client = test_client_factory(app, raise_server_exceptions=False)
    assert client.get("/runtime").text == "500 handler: <b>boom</b>"


def test_add_exception_handler_before_start(test_client_factory: TestClientFactory) -> None:
    app = make_app()
    app.add_exception_handler(ChildError, lambda r, e: PlainTextResponse("added", 400))
    assert test_client_factory(app).get("/child").text == "added"


def test_add_exception_handler_after_start_is_not_used(
    test_client_factory: TestClientFactory,
) -> None:
    # As in Starlette: the stack is built once, so later handlers are only recorded.
    app = make_app()
    client = test_client_factory(app)
    assert client.get("/nowhere").text == "Not Found"
    handler = lambda r, e: PlainTextResponse("late", 404)  # noqa: E731
    app.add_exception_handler(404, handler)
    assert app.exception_handlers == {404: handler}
    assert client.get("/nowhere").text == "Not Found"


def test_lifespan_state_reaches_requests(test_client_factory: TestClientFactory) -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starling) -> AsyncIterator[dict[str, Any]]:
        events.append(f"startup {type(app).__name__}")
        yield {"db": "connection"}
        events.append("shutdown")

    async def endpoint(request: Request) -> Response:
        return JSONResponse({"db": request.state.db, "on_app": hasattr(request.app.state, "db")})

    app = Starling(routes=[Route("/", endpoint)], lifespan=lifespan)
    with test_client_factory(app) as client:
        assert events == ["startup Starling"]
        assert client.get("/").json() == {"db": "connection", "on_app": False}
    assert events == ["startup Starling", "shutdown"]


def test_stateless_lifespan(test_client_factory: TestClientFactory) -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starling) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    with test_client_factory(Starling(lifespan=lifespan)):
        assert events == ["startup"]
    assert events == ["startup", "shutdown"]


def test_lifespan_startup_failure(test_client_factory: TestClientFactory) -> None:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starling) -> AsyncIterator[None]:
        raise RuntimeError("startup failed")
        yield  # pragma: no cover (never reached)

    client = test_client_factory(Starling(lifespan=lifespan))
    with pytest.raises(RuntimeError, match="startup failed"), client:
        pass  # pragma: no cover (startup fails first)


def test_no_lifespan(test_client_factory: TestClientFactory) -> None:
    app = make_app()
    with test_client_factory(app) as client:
        assert client.get("/").text == "home"


class TagMiddleware:
    def __init__(self, app: ASGIApp, tag: str, log: list[str]) -> None:
        self.app = app
        self.tag = tag
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.log.append(self.tag)
        await self.app(scope, receive, send)


def test_middleware_repr_and_unpacking() -> None:
    log: list[str] = []
    middleware = Middleware(TagMiddleware, "tag", log=log)
    cls, args, kwargs = middleware
    assert (cls, args, kwargs) == (TagMiddleware, ("tag",), {"log": log})
    assert (middleware.cls, middleware.args, middleware.kwargs) == (cls, args, kwargs)
    assert repr(middleware) == "Middleware(TagMiddleware, 'tag', log=[])"
    assert repr(Middleware(ServerErrorMiddleware)) == "Middleware(ServerErrorMiddleware)"
    assert repr(Middleware(lambda app: app)) == "Middleware(<lambda>)"
    nameless = Middleware(functools.partial(TagMiddleware, tag="t", log=log))
    assert repr(nameless) == "Middleware()"


def test_middleware_order(test_client_factory: TestClientFactory) -> None:
    log: list[str] = []
    app = make_app(
        middleware=[
            Middleware(TagMiddleware, "first", log),
            Middleware(TagMiddleware, "second", log),
        ]
    )
    app.add_middleware(TagMiddleware, "added", log=log)
    app.add_middleware(TagMiddleware, "added-last", log=log)
    with test_client_factory(app) as client:  # the lifespan scope passes through them too
        client.get("/")
    # add_middleware puts each new one outermost; constructor order is outer to inner.
    assert log == ["added-last", "added", "first", "second"]


def test_middleware_stack_shape() -> None:
    log: list[str] = []
    handler = lambda r, e: PlainTextResponse("x")  # noqa: E731
    app = make_app(
        debug=True,
        middleware=[Middleware(TagMiddleware, "user", log)],
        exception_handlers={500: handler, 404: handler},
    )
    stack: Any = app.build_middleware_stack()
    assert app.middleware_stack is None  # building is not starting
    assert isinstance(stack, ServerErrorMiddleware)
    assert (stack.handler, stack.debug) == (handler, True)
    assert isinstance(stack.app, TagMiddleware)
    assert isinstance(stack.app.app, ExceptionMiddleware)
    assert stack.app.app.debug is True
    assert stack.app.app._status_handlers == {404: handler}
    assert stack.app.app.app is app.router


def test_max_body_size(test_client_factory: TestClientFactory) -> None:
    from starling.middleware.body_limit import RequestBodyLimitMiddleware

    app = make_app(max_body_size=10)
    stack: Any = app.build_middleware_stack()
    assert isinstance(stack.app, RequestBodyLimitMiddleware)
    client = test_client_factory(app)
    assert client.post("/body", content=b"x" * 10).text == "10"
    response = client.post("/body", content=b"x" * 11)
    assert response.status_code == 413


def test_middleware_stack_built_once(test_client_factory: TestClientFactory) -> None:
    built: list[ASGIApp] = []

    class CountingApp(Starling):
        def build_middleware_stack(self) -> ASGIApp:
            stack = super().build_middleware_stack()
            built.append(stack)
            return stack

    app = CountingApp(routes=[Route("/", homepage)])
    client = test_client_factory(app)
    client.get("/")
    client.get("/")
    assert len(built) == 1
    assert app.middleware_stack is built[0]


def test_add_middleware_after_start(test_client_factory: TestClientFactory) -> None:
    app = make_app()
    test_client_factory(app).get("/")
    with pytest.raises(RuntimeError) as info:
        app.add_middleware(TagMiddleware, "late", [])
    assert str(info.value) == "Cannot add middleware after an application has started"


def test_debug_is_read_when_the_stack_is_built(test_client_factory: TestClientFactory) -> None:
    app = make_app()
    app.debug = True
    client = test_client_factory(app, raise_server_exceptions=False)
    assert client.get("/runtime").text.startswith("Traceback")
    app.debug = False  # too late: the stack exists
    assert client.get("/runtime").text.startswith("Traceback")


def test_scope_app_is_set(test_client_factory: TestClientFactory) -> None:
    seen: list[Any] = []

    def endpoint(request: Request) -> Response:
        seen.append(request.scope["app"])
        return PlainTextResponse("ok")

    app = Starling(routes=[Route("/", endpoint)])
    assert test_client_factory(app).get("/").text == "ok"
    assert seen == [app]


def test_add_route_mount_and_host(test_client_factory: TestClientFactory) -> None:
    app = Starling()
    app.add_route("/added", homepage, methods=["GET"], name="added", include_in_schema=False)
    sub = Starling(routes=[Route("/inner", homepage, name="inner")])
    app.mount("/sub", sub, name="sub")
    api = Starling(routes=[Route("/", lambda r: PlainTextResponse("api"))])
    app.host("api.example.org", api, name="api")
    client = test_client_factory(app)
    assert client.get("/added").text == "home"
    assert client.get("/sub/inner").text == "home"
    assert client.get("/", headers={"host": "api.example.org"}).text == "api"
    assert app.url_path_for("added") == "/added"
    assert app.url_path_for("sub:inner") == "/sub/inner"
    route, mount, host = app.routes
    assert isinstance(route, Route) and route.include_in_schema is False
    assert isinstance(mount, Mount) and mount.app is sub
    assert isinstance(host, Host) and host.app is api


def test_mounted_app_sees_itself(test_client_factory: TestClientFactory) -> None:
    inner = Starling(routes=[Route("/x", lambda r: PlainTextResponse(str(r.app is inner)))])
    outer = Starling(routes=[Mount("/in", inner)])
    assert test_client_factory(outer).get("/in/x").text == "True"


def test_redirect_slashes(test_client_factory: TestClientFactory) -> None:
    app = Starling(routes=[Route("/a/", homepage)])
    response = test_client_factory(app).get("/a", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "http://testserver/a/"


async def _teapot_or_crash(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["path"] == "/crash":
        raise ValueError("crash")
    raise HTTPException(status_code=418)


def test_default_stack_around_an_app_that_is_not_a_router(
    test_client_factory: TestClientFactory,
) -> None:
    # The default stack is run in Starling.__call__'s own frame: also around any other app.
    class App(Starling):
        def build_middleware_stack(self) -> ASGIApp:
            return ServerErrorMiddleware(ExceptionMiddleware(_teapot_or_crash))

    client = test_client_factory(App(), raise_server_exceptions=False)
    response = client.get("/")
    assert (response.status_code, response.text) == (418, "I'm a Teapot")
    response = client.get("/crash")
    assert (response.status_code, response.text) == (500, "Internal Server Error")


def test_default_stack_changed_after_start_up(test_client_factory: TestClientFactory) -> None:
    # The stack is looked at on every request: one changed after the first still runs as built.
    app = Starling(routes=[Route("/", lambda request: PlainTextResponse("hi"))])
    client = test_client_factory(app)
    assert client.get("/").text == "hi"
    assert isinstance(app.middleware_stack, ServerErrorMiddleware)
    app.middleware_stack.app = _teapot_or_crash
    with pytest.raises(ValueError, match="crash"):
        client.get("/crash")
    app.middleware_stack = ExceptionMiddleware(_teapot_or_crash)
    assert client.get("/").status_code == 418


async def _failing_stream() -> AsyncIterator[bytes]:
    yield b"chunk"
    raise RuntimeError("stream failed")


@pytest.mark.parametrize("raise_server_exceptions", [True, False])
def test_an_endpoints_response_failing_before_it_starts(
    test_client_factory: TestClientFactory, raise_server_exceptions: bool
) -> None:
    # A response other than the plain ones is sent by its own __call__; a failure before
    # its start message is a 500 from ServerErrorMiddleware, then re-raised.
    class Unsendable(Response):
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            raise RuntimeError("stream failed")

    async def endpoint(request: Request) -> Response:
        return Unsendable("never sent")

    app = Starling(routes=[Route("/", endpoint)])
    client = test_client_factory(app, raise_server_exceptions=raise_server_exceptions)
    if raise_server_exceptions:
        with pytest.raises(RuntimeError, match="stream failed"):
            client.get("/")
        return
    response = client.get("/")
    assert (response.status_code, response.text) == (500, "Internal Server Error")


def test_an_endpoints_streaming_response_failing_after_it_started(
    test_client_factory: TestClientFactory,
) -> None:
    # Started: no 500 can follow, so the exception reaches the server (the test client).
    seen: list[Exception] = []

    async def endpoint(request: Request) -> Response:
        return StreamingResponse(_failing_stream())

    async def on_error(request: Request, exc: Exception) -> Response:
        seen.append(exc)
        return PlainTextResponse("not sent", status_code=500)

    app = Starling(routes=[Route("/", endpoint)], exception_handlers={Exception: on_error})
    with pytest.raises(RuntimeError, match="stream failed"):
        test_client_factory(app).get("/")
    assert [str(exc) for exc in seen] == ["stream failed"]


def test_a_route_app_replaced_after_construction_is_the_one_called(
    test_client_factory: TestClientFactory,
) -> None:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("endpoint")  # pragma: no cover (replaced below)

    route = Route("/", endpoint)
    route.app = PlainTextResponse("replacement")
    app = Starling(routes=[route])
    assert test_client_factory(app).get("/").text == "replacement"


def test_a_router_with_middleware_of_its_own(test_client_factory: TestClientFactory) -> None:
    class Tag:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            scope["tagged"] = True
            await self.app(scope, receive, send)

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(str(request.scope.get("tagged")))

    app = Starling()
    app.router = Router([Route("/", endpoint)], middleware=[Middleware(Tag)])
    assert test_client_factory(app).get("/").text == "True"


def test_a_route_app_replaced_after_requests_is_the_one_called(
    test_client_factory: TestClientFactory,
) -> None:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("endpoint")

    route = Route("/", endpoint)
    client = test_client_factory(Starling(routes=[route]))
    assert client.get("/").text == "endpoint"
    assert client.get("/").text == "endpoint"  # the path's routing is remembered by now
    route.app = PlainTextResponse("replacement")
    assert client.get("/").text == "replacement"
