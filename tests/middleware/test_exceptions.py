from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from starling._exception_handler import HANDLERS_SCOPE_KEY, ResponseTracker, _HandlerMap
from starling.exceptions import HTTPException, WebSocketException
from starling.middleware.errors import ServerErrorMiddleware
from starling.middleware.exceptions import ExceptionMiddleware
from starling.requests import Request
from starling.responses import JSONResponse, PlainTextResponse, Response
from starling.routing import Route, Router, WebSocketRoute
from starling.testclient import WebSocketDenialResponse
from starling.types import Message, Receive, Scope, Send
from starling.websockets import WebSocket, WebSocketDisconnect

if TYPE_CHECKING:
    from tests.types import TestClientFactory


def raise_http(request: Request) -> Response:
    params = request.query_params
    headers = {"X-Extra": "yes"} if "headers" in params else None
    raise HTTPException(
        int(params.get("code", "400")), detail=params.get("detail"), headers=headers
    )


class Channel:
    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        return {"type": "probe"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)


class CustomError(Exception):
    pass


class CustomChildError(CustomError):
    pass


def raise_custom(request: Request) -> Response:
    raise CustomChildError("custom")


def raise_value_error(request: Request) -> Response:
    raise ValueError("unhandled")


class RaiseAfterStart:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise HTTPException(406)


async def websocket_raise(websocket: WebSocket) -> None:
    if "accept" in websocket.query_params:
        await websocket.accept()
    raise WebSocketException(code=1008, reason="policy")


async def websocket_http_error(websocket: WebSocket) -> None:
    raise HTTPException(403, headers={"X-Why": "forbidden"})


router = Router(
    [
        Route("/http", raise_http),
        Route("/custom", raise_custom),
        Route("/value", raise_value_error),
        Route("/started", RaiseAfterStart()),
        WebSocketRoute("/ws", websocket_raise),
        WebSocketRoute("/ws-http", websocket_http_error),
    ]
)


@pytest.mark.parametrize(
    ("query", "status", "body", "extra"),
    [
        ("", 400, b"Bad Request", False),
        ("?code=404", 404, b"Not Found", False),
        ("?code=418&detail=teapot&headers=1", 418, b"teapot", True),
        ("?code=401&headers=1", 401, b"Unauthorized", True),
        ("?code=599", 599, b"", False),
    ],
)
def test_http_exception_becomes_plain_text(
    test_client_factory: TestClientFactory, query: str, status: int, body: bytes, extra: bool
) -> None:
    client = test_client_factory(ExceptionMiddleware(router))
    response = client.get(f"/http{query}")
    assert response.status_code == status
    assert response.content == body
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-length"] == str(len(body))
    assert ("x-extra" in response.headers) is extra


@pytest.mark.parametrize("code", [204, 304])
def test_http_exception_without_body(test_client_factory: TestClientFactory, code: int) -> None:
    client = test_client_factory(ExceptionMiddleware(router))
    response = client.get(f"/http?code={code}&headers=1")
    assert response.status_code == code
    assert response.content == b""
    assert list(response.headers.items()) == [("x-extra", "yes")]


def test_not_found_and_method_not_allowed(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(ExceptionMiddleware(router))
    response = client.get("/missing")
    assert (response.status_code, response.text) == (404, "Not Found")
    response = client.post("/http")
    assert (response.status_code, response.text) == (405, "Method Not Allowed")
    assert response.headers["allow"] == "GET, HEAD"


def test_handlers_by_status_and_class(test_client_factory: TestClientFactory) -> None:
    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"missing": request.url.path}, status_code=404)

    def custom(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(f"custom handler: {exc}", status_code=409)

    app = ExceptionMiddleware(router, handlers={404: not_found, CustomError: custom})
    client = test_client_factory(app)
    assert client.get("/http?code=404").json() == {"missing": "/http"}
    # A bare Router (no app in the scope) answers 404 itself, without raising.
    assert client.get("/nowhere").text == "Not Found"
    response = client.get("/custom")
    assert (response.status_code, response.text) == (409, "custom handler: custom")
    assert client.get("/http").text == "Bad Request"


def test_add_exception_handler(test_client_factory: TestClientFactory) -> None:
    app = ExceptionMiddleware(router)
    client = test_client_factory(app)
    with pytest.raises(CustomChildError):
        client.get("/custom")
    app.add_exception_handler(CustomChildError, lambda r, e: PlainTextResponse("late", 410))
    app.add_exception_handler(400, lambda r, e: PlainTextResponse("bad", 422))
    assert client.get("/custom").status_code == 410
    assert client.get("/http").status_code == 422


def test_add_exception_handler_rejects_non_exceptions() -> None:
    app = ExceptionMiddleware(router)
    with pytest.raises(AssertionError):
        app.add_exception_handler(BaseException, lambda r, e: None)  # type: ignore[arg-type]


def test_unhandled_exception_propagates(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(ExceptionMiddleware(router))
    with pytest.raises(ValueError, match="unhandled"):
        client.get("/value")


def test_handled_exception_after_response_started(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(ExceptionMiddleware(router))
    with pytest.raises(RuntimeError, match="response already started"):
        client.get("/started")


def test_inside_server_error_middleware(test_client_factory: TestClientFactory) -> None:
    # Right inside ServerErrorMiddleware, the layer reads the response-started flag of its
    # tracker: the same answers as with a wrapper of its own.
    app = ServerErrorMiddleware(ExceptionMiddleware(router))
    client = test_client_factory(app, raise_server_exceptions=False)
    assert client.get("/value").status_code == 500  # no handler: ServerError answers
    response = client.get("/nowhere")
    assert (response.status_code, response.text) == (404, "Not Found")
    with pytest.raises(RuntimeError, match="response already started"):
        test_client_factory(app).get("/started")


@pytest.mark.anyio
async def test_tracker_that_already_started() -> None:
    # A tracker whose response started before this layer: its flag says nothing about what
    # this layer sends, so it tracks its own.
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    tracker = ResponseTracker(send)
    await tracker.send({"type": "http.response.start", "status": 200, "headers": []})

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        raise HTTPException(400)

    async def receive() -> Message:  # pragma: no cover (never called)
        return {"type": "http.disconnect"}

    scope: Scope = {"type": "http", "headers": [], "method": "GET", "path": "/"}
    await ExceptionMiddleware(inner)(scope, receive, tracker.send)
    assert [message.get("status") for message in sent] == [200, 400, None]


def test_websocket_exception_closes(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(ExceptionMiddleware(router))
    for path in ("/ws", "/ws?accept=1"):
        with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect(path) as session:
            session.receive_text()
        assert (info.value.code, info.value.reason) == (1008, "policy")


def test_http_exception_in_websocket_is_a_denial(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(ExceptionMiddleware(router))
    with pytest.raises(WebSocketDenialResponse) as info, client.websocket_connect("/ws-http"):
        pass  # pragma: no cover (the connection is denied before the block runs)
    assert info.value.status_code == 403
    assert info.value.headers["x-why"] == "forbidden"
    assert info.value.text == "Forbidden"


@pytest.mark.anyio
async def test_scope_carries_the_handlers() -> None:
    def on_404(request: Request, exc: Exception) -> None:
        """Placeholder."""

    seen: list[Any] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope[HANDLERS_SCOPE_KEY])

    middleware = ExceptionMiddleware(inner, handlers={404: on_404, KeyError: on_404})
    channel = Channel()
    await middleware({"type": "http"}, channel.receive, channel.send)
    await middleware({"type": "http"}, channel.receive, channel.send)
    class_handlers, status_handlers = seen[0]
    assert seen[1] is seen[0]  # built once, not per request
    assert isinstance(class_handlers, _HandlerMap)
    assert class_handlers[HTTPException] == middleware.http_exception
    assert class_handlers[WebSocketException] == middleware.websocket_exception
    assert class_handlers[KeyError] is on_404
    assert status_handlers == {404: on_404}


@pytest.mark.anyio
@pytest.mark.parametrize("scope_type", ["lifespan", "something-else"])
async def test_other_scopes_pass_through_untouched(scope_type: str) -> None:
    seen: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await send(await receive())
        raise HTTPException(400)

    channel = Channel()
    with pytest.raises(HTTPException):
        await ExceptionMiddleware(inner)({"type": scope_type}, channel.receive, channel.send)
    assert seen == [{"type": scope_type}]
    assert channel.sent == [{"type": "probe"}]


def test_debug_flag_is_kept() -> None:
    assert ExceptionMiddleware(router, debug=True).debug is True
    assert ExceptionMiddleware(router).debug is False


def test_inside_server_error_middleware_around_an_app(
    test_client_factory: TestClientFactory,
) -> None:
    # Right inside ServerErrorMiddleware with an app that is not a Router: called as it is.
    async def teapot(scope: Scope, receive: Receive, send: Send) -> None:
        raise HTTPException(status_code=418)

    client = test_client_factory(ServerErrorMiddleware(ExceptionMiddleware(teapot)))
    response = client.get("/")
    assert (response.status_code, response.text) == (418, "I'm a Teapot")
