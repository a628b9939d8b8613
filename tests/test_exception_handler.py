from __future__ import annotations

import threading
from typing import Any

import pytest

from starling import _exception_handler
from starling._exception_handler import (
    HANDLERS_SCOPE_KEY,
    _HandlerMap,
    handle_exceptions,
    wrap_app_handling_exceptions,
)
from starling.exceptions import HTTPException, WebSocketException
from starling.requests import Request
from starling.responses import PlainTextResponse, Response
from starling.types import Message, Receive, Scope, Send
from starling.websockets import WebSocket
from tests.types import TestClientFactory


class ParentError(Exception):
    pass


class ChildError(ParentError):
    pass


class NotAnException(BaseException):
    pass


def http_scope(handlers: Any = None, **extra: Any) -> Scope:
    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [],
        "query_string": b"",
        **extra,
    }
    if handlers is not None:
        scope[HANDLERS_SCOPE_KEY] = handlers
    return scope


def websocket_scope(handlers: Any = None) -> Scope:
    scope = http_scope(handlers)
    scope["type"] = "websocket"
    return scope


class Recorder:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def receive(self) -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: Message) -> None:
        self.messages.append(message)

    def status(self) -> int | None:
        starts = [m for m in self.messages if m["type"].endswith("http.response.start")]
        return starts[0]["status"] if starts else None

    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages if m["type"].endswith("body"))


def raising(exc: BaseException, start: bool = False) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if start:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        raise exc

    return app


def respond(text: str, status_code: int = 200) -> Any:
    def handler(conn: Any, exc: Exception) -> Response:
        return PlainTextResponse(f"{text}: {exc}", status_code=status_code)

    return handler


async def run(app: Any, scope: Scope, conn: Any = None) -> Recorder:
    recorder = Recorder()
    if conn is None:
        await handle_exceptions(app, scope, recorder.receive, recorder.send)
    else:
        await wrap_app_handling_exceptions(app, conn)(scope, recorder.receive, recorder.send)
    return recorder


@pytest.mark.anyio
async def test_no_handlers_in_scope_reraises() -> None:
    with pytest.raises(ValueError, match="boom"):
        await run(raising(ValueError("boom")), http_scope())


@pytest.mark.anyio
async def test_unmatched_exception_reraises() -> None:
    scope = http_scope(({KeyError: respond("key")}, {}))
    with pytest.raises(ValueError):
        await run(raising(ValueError("boom")), scope)


@pytest.mark.anyio
async def test_passes_through_when_nothing_raised() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        await PlainTextResponse(f"fine {message['body']!r}")(scope, receive, send)

    recorder = await run(app, http_scope(({}, {})))
    assert recorder.status() == 200
    assert recorder.body() == b"fine b''"


@pytest.mark.anyio
async def test_class_handler_found_along_the_mro() -> None:
    scope = http_scope(_scope_handlers({ParentError: respond("parent", 418)}))
    recorder = await run(raising(ChildError("child")), scope)
    assert recorder.status() == 418
    assert recorder.body() == b"parent: child"


@pytest.mark.anyio
async def test_nearest_class_in_the_mro_wins() -> None:
    handlers = {Exception: respond("any"), ParentError: respond("parent"), ChildError: respond("c")}
    scope = http_scope(_scope_handlers(handlers))
    recorder = await run(raising(ChildError("x")), scope)
    assert recorder.body() == b"c: x"


@pytest.mark.anyio
async def test_plain_dicts_in_scope_work_too() -> None:
    # FastAPI and hand-written middleware may put ordinary dicts in the scope.
    scope = http_scope(({ParentError: respond("parent")}, {}))
    recorder = await run(raising(ChildError("child")), scope)
    assert recorder.body() == b"parent: child"


@pytest.mark.anyio
async def test_status_handler_wins_over_class_handler() -> None:
    scope = http_scope(({HTTPException: respond("class")}, {404: respond("status", 404)}))
    recorder = await run(raising(HTTPException(404)), scope)
    assert recorder.status() == 404
    assert recorder.body() == b"status: 404: Not Found"


@pytest.mark.anyio
async def test_status_handler_for_another_code_falls_back_to_class() -> None:
    scope = http_scope(({HTTPException: respond("class", 400)}, {404: respond("status")}))
    recorder = await run(raising(HTTPException(400)), scope)
    assert recorder.body() == b"class: 400: Bad Request"


@pytest.mark.anyio
async def test_status_handlers_apply_only_to_http_exceptions() -> None:
    scope = websocket_scope(({}, {1008: respond("status")}))
    with pytest.raises(WebSocketException):
        await run(raising(WebSocketException(1008)), scope)


@pytest.mark.anyio
async def test_async_handler() -> None:
    async def handler(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("async", status_code=503)

    recorder = await run(raising(ValueError()), http_scope(({ValueError: handler}, {})))
    assert recorder.status() == 503


@pytest.mark.anyio
async def test_sync_handler_runs_in_a_worker_thread() -> None:
    threads: list[threading.Thread] = []

    def handler(request: Request, exc: Exception) -> Response:
        threads.append(threading.current_thread())
        return PlainTextResponse("sync")

    await run(raising(ValueError()), http_scope(({ValueError: handler}, {})))
    assert threads and threads[0] is not threading.current_thread()


@pytest.mark.anyio
async def test_handler_returning_none_sends_nothing() -> None:
    def handler(request: Request, exc: Exception) -> None:
        return None

    recorder = await run(raising(ValueError()), http_scope(({ValueError: handler}, {})))
    assert recorder.messages == []


@pytest.mark.anyio
async def test_handler_gets_the_given_connection() -> None:
    scope = http_scope(({ValueError: lambda conn, exc: seen.append(conn)}, {}))
    seen: list[Any] = []
    request = Request(scope)
    await run(raising(ValueError()), scope, conn=request)
    assert seen == [request]


@pytest.mark.anyio
async def test_connection_built_on_demand_for_http() -> None:
    seen: list[Any] = []
    scope = http_scope(({ValueError: lambda conn, exc: seen.append(conn)}, {}))
    await run(raising(ValueError()), scope)
    assert isinstance(seen[0], Request)
    assert seen[0].scope is scope


@pytest.mark.anyio
async def test_connection_built_on_demand_for_websocket() -> None:
    async def handler(websocket: WebSocket, exc: Exception) -> None:
        await websocket.close(code=1011, reason="sorry")

    scope = websocket_scope(({ValueError: handler}, {}))
    recorder = await run(raising(ValueError()), scope)
    assert recorder.messages == [{"type": "websocket.close", "code": 1011, "reason": "sorry"}]


@pytest.mark.anyio
async def test_response_already_started() -> None:
    scope = http_scope(({ValueError: respond("late")}, {}))
    with pytest.raises(RuntimeError) as info:
        await run(raising(ValueError("late"), start=True), scope)
    assert str(info.value) == "Caught handled exception, but response already started."
    assert isinstance(info.value.__cause__, ValueError)


@pytest.mark.anyio
async def test_response_started_without_handler_reraises_original() -> None:
    with pytest.raises(ValueError):
        await run(raising(ValueError(), start=True), http_scope(({}, {})))


@pytest.mark.anyio
async def test_base_exceptions_are_not_handled() -> None:
    scope = http_scope(({BaseException: respond("base")}, {}))
    with pytest.raises(NotAnException):
        await run(raising(NotAnException()), scope)


@pytest.mark.anyio
async def test_exception_groups_are_not_unwrapped() -> None:
    # A user's group is theirs: a ValueError handler must not swallow it (starlette #2830).
    scope = http_scope(({ValueError: respond("value")}, {}))
    with pytest.raises(ExceptionGroup):
        await run(raising(ExceptionGroup("group", [ValueError()])), scope)


@pytest.mark.anyio
async def test_exception_group_handler() -> None:
    scope = http_scope(({ExceptionGroup: respond("group")}, {}))
    recorder = await run(raising(ExceptionGroup("g", [ValueError()])), scope)
    assert recorder.body().startswith(b"group: g")


@pytest.mark.anyio
async def test_handler_that_raises_propagates_with_context() -> None:
    def handler(request: Request, exc: Exception) -> Response:
        raise KeyError("handler")

    with pytest.raises(KeyError) as info:
        await run(raising(ValueError()), http_scope(({ValueError: handler}, {})))
    assert isinstance(info.value.__context__, ValueError)


@pytest.mark.anyio
async def test_websocket_handler_response_is_a_denial() -> None:
    scope = websocket_scope(({ValueError: respond("denied", 403)}, {}))
    recorder = await run(raising(ValueError("no")), scope)
    assert recorder.messages[0]["type"] == "websocket.http.response.start"
    assert recorder.status() == 403


def _scope_handlers(handlers: dict[Any, Any]) -> tuple[_HandlerMap, dict[int, Any]]:
    return _HandlerMap(handlers), {}


def handler_a(conn: Any, exc: Exception) -> None:
    """A placeholder handler."""


def handler_b(conn: Any, exc: Exception) -> None:
    """Another placeholder handler."""


def test_handler_map_caches_lookups() -> None:
    handlers = _HandlerMap({ParentError: handler_a})
    assert handlers.lookup(ChildError) is handler_a
    assert handlers.lookup(KeyError) is None
    assert handlers._by_type == {ChildError: handler_a, KeyError: None}
    assert handlers.lookup(KeyError) is None


def test_handler_map_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_exception_handler, "MAX_CACHED_EXCEPTION_TYPES", 2)
    handlers = _HandlerMap()
    handlers.lookup(KeyError)
    handlers.lookup(ValueError)
    handlers.lookup(TypeError)
    assert list(handlers._by_type) == [TypeError]


def _mutations() -> list[Any]:
    def setitem(m: _HandlerMap) -> None:
        m[ChildError] = handler_b

    def delitem(m: _HandlerMap) -> None:
        del m[ParentError]

    def ior(m: _HandlerMap) -> None:
        m |= {ChildError: handler_b}

    return [
        setitem,
        delitem,
        ior,
        lambda m: m.update({ChildError: handler_b}),
        lambda m: m.setdefault(ChildError, handler_b),
        lambda m: m.pop(ParentError),
        lambda m: m.popitem(),
        lambda m: m.clear(),
    ]


@pytest.mark.parametrize("mutate", _mutations())
def test_handler_map_mutations_clear_the_cache(mutate: Any) -> None:
    handlers = _HandlerMap({ParentError: handler_a})
    assert handlers.lookup(ChildError) is handler_a
    mutate(handlers)
    assert handlers._by_type == {}
    expected = handler_b if ChildError in handlers else None
    assert handlers.lookup(ChildError) is expected


def test_handler_map_ior_returns_itself() -> None:
    handlers = _HandlerMap()
    same = handlers
    same |= {KeyError: handler_a}
    assert same is handlers
    assert isinstance(same, _HandlerMap)
    assert dict(handlers) == {KeyError: handler_a}


def test_a_handled_exception_lets_go_of_its_traceback(
    test_client_factory: TestClientFactory,
) -> None:
    """As in Starlette: once handled, the exception no longer pins the failed call's frames."""
    from starling.applications import Starling
    from starling.exceptions import HTTPException
    from starling.responses import PlainTextResponse
    from starling.routing import Route

    raised: list[Exception] = []
    seen_in_handler: list[bool] = []

    class Custom(Exception):
        pass

    def failing(exc: Exception) -> Any:
        async def endpoint(request: Any) -> Any:
            raised.append(exc)
            raise exc

        return endpoint

    async def handler(request: Any, exc: Exception) -> PlainTextResponse:
        seen_in_handler.append(exc.__traceback__ is not None)  # still there for logging
        return PlainTextResponse("handled", status_code=409)

    app = Starling(
        routes=[
            Route("/http", failing(HTTPException(401))),
            Route("/custom", failing(Custom())),
            Route("/boom", failing(ValueError("boom"))),
        ],
        exception_handlers={Custom: handler},
    )
    client = test_client_factory(app, raise_server_exceptions=False)
    assert client.get("/http").status_code == 401
    assert client.get("/custom").status_code == 409
    assert client.get("/boom").status_code == 500
    assert [exc.__traceback__ is None for exc in raised] == [True, True, False]
    assert seen_in_handler == [True]
