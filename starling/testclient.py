"""TestClient: an httpx2 (or httpx) Client that calls an ASGI app in-process, plus its
WebSocket session."""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import urljoin

import anyio
import anyio.from_thread

from starling._httpx import httpx, httpx_client, httpx_types
from starling._surfaced import surfacing
from starling._testclient_async import AsyncTestClientTransport, HeldTaskGroup
from starling._testclient_http import TestClientTransport, settle
from starling._testclient_lifespan import LifespanRunner
from starling._utils import is_async_callable
from starling.exceptions import StarletteDeprecationWarning
from starling.types import ASGIApp, Message, Receive, Scope, Send
from starling.websockets import WebSocketDisconnect

# httpx's "not given" sentinel: the client compares arguments to it by identity
_CLIENT_DEFAULT = httpx_client.USE_CLIENT_DEFAULT

_RequestData = dict[str, str] | list[tuple[str, str]] | str | bytes

# The two ASGI application styles the client accepts (ASGI 2 apps are wrapped).
ASGIInstance = Callable[[Receive, Send], Awaitable[None]]
ASGI2App = Callable[[Scope], ASGIInstance]
ASGI3App = Callable[[Scope, Receive, Send], Awaitable[None]]

# What a real client sees when the connection ends without a close frame (RFC 6455 7.1.5).
_ABNORMAL_CLOSURE = 1006


class _AppEnded:
    """The app's WebSocket task returned (``error`` is None) or raised."""

    __slots__ = ("error",)

    def __init__(self, error: Exception | None) -> None:
        self.error = error


class _Upgrade(Exception):
    """Carries a WebSocket session out of the transport, through httpx, to websocket_connect."""

    def __init__(self, session: WebSocketTestSession | AsyncWebSocketTestSession) -> None:
        self.session = session


def _is_asgi3(app: Any) -> bool:
    # An endpoint class whose instances are awaitable (``Class(scope, receive, send)``) is ASGI 3.
    if inspect.isclass(app):
        return hasattr(app, "__await__")
    return bool(is_async_callable(app))


class _WrapASGI2:
    """Adapts an ASGI 2 app (``app(scope)`` returns ``instance(receive, send)``) to ASGI 3."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        instance = self.app(scope)
        await instance(receive, send)


class WebSocketDenialResponse(  # type: ignore[misc] # as Starlette's: pickling is unsupported
    httpx.Response, WebSocketDisconnect
):
    """The HTTP response an app sent instead of accepting a WebSocket connection."""


class WebSocketTestSession:
    def __init__(self, app: ASGIApp, scope: Scope, portal_factory: Any) -> None:
        self.app = app
        self.scope = scope
        self.accepted_subprotocol: str | None = None
        self.portal_factory = portal_factory
        self.extra_headers: list[tuple[bytes, bytes]] | None = None
        self.portal: anyio.from_thread.BlockingPortal | None = None
        self._ended: _AppEnded | None = None
        self._app_gone = False
        self._error_reported = False
        self._cancel_scope: anyio.CancelScope | None = None

    def __enter__(self) -> Self:
        with contextlib.ExitStack() as stack:
            self.portal = portal = stack.enter_context(self.portal_factory())
            self._to_app, self._to_app_rx = anyio.create_memory_object_stream[Message](math.inf)
            self._from_app, self._from_app_rx = anyio.create_memory_object_stream[Any](math.inf)
            task = portal.start_task_soon(self._run)
            stack.callback(self._finish, task)
            self.send({"type": "websocket.connect"})
            message = self.receive()
            self._raise_on_close(message)
            self.accepted_subprotocol = message.get("subprotocol", None)
            self.extra_headers = message.get("headers", None)
            # Let the app run until it waits: an app that fails right after accepting fails
            # the `with` statement, as with Starlette.
            portal.call(settle)
            self._raise_app_error()
            self.exit_stack = stack.pop_all()
        return self

    def __exit__(self, *args: Any) -> None:
        self.exit_stack.close()

    async def _run(self) -> None:
        with anyio.CancelScope() as self._cancel_scope:
            error: Exception | None = None
            try:
                with surfacing() as quiet:
                    await self.app(self.scope, self._to_app_rx.receive, self._from_app.send)
                if quiet:  # ended quietly by the app's error middleware: raised here, as Starlette
                    error = quiet[0]
            except Exception as exc:
                error = exc
            self._ended = _AppEnded(error)
            await self._from_app.send(self._ended)

    def _finish(self, task: Future[None]) -> None:
        """Closes the connection, gives the app a moment to react, then cancels it."""
        assert self.portal is not None
        if not task.done():
            self.close(1000)
            self.portal.call(settle)
        if not task.done():
            assert self._cancel_scope is not None
            self.portal.call(self._cancel_scope.cancel)
        task.result()
        for stream in (self._to_app, self._to_app_rx, self._from_app, self._from_app_rx):
            stream.close()
        self._raise_app_error()

    def _raise_app_error(self) -> None:
        ended = self._ended
        if ended is not None and ended.error is not None and not self._error_reported:
            self._error_reported = True
            raise ended.error

    def _raise_on_close(self, message: Message) -> None:
        _raise_on_disconnect(message)
        if message["type"] == "websocket.http.response.start":
            denial = _Denial(message)
            while denial.add(self.receive()):
                pass
            raise denial.response()

    def send(self, message: Message) -> None:
        assert self.portal is not None
        self.portal.call(self._to_app.send, message)

    def send_text(self, data: str) -> None:
        self.send({"type": "websocket.receive", "text": data})

    def send_bytes(self, data: bytes) -> None:
        self.send({"type": "websocket.receive", "bytes": data})

    def send_json(self, data: Any, mode: Literal["text", "binary"] = "text") -> None:
        self.send(_json_message(data, mode))

    def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.send({"type": "websocket.disconnect", "code": code, "reason": reason})

    def receive(self) -> Message:
        """The app's next message; once the app has ended, a close frame it never sent."""
        assert self.portal is not None
        if not self._app_gone:
            message = self.portal.call(self._from_app_rx.receive)
            if not isinstance(message, _AppEnded):
                return message  # type: ignore[no-any-return]
            self._app_gone = True
        self._raise_app_error()
        return {"type": "websocket.close", "code": _ABNORMAL_CLOSURE, "reason": ""}

    def receive_text(self) -> str:
        message = self.receive()
        self._raise_on_close(message)
        return message["text"]  # type: ignore[no-any-return]

    def receive_bytes(self) -> bytes:
        message = self.receive()
        self._raise_on_close(message)
        return message["bytes"]  # type: ignore[no-any-return]

    def receive_json(self, mode: Literal["text", "binary"] = "text") -> Any:
        message = self.receive()
        self._raise_on_close(message)
        return _json_value(message, mode)


# --- what the sync and async WebSocket sessions share ---------------------------------------


def _raise_on_disconnect(message: Message) -> None:
    if message["type"] == "websocket.close":
        raise WebSocketDisconnect(code=message.get("code", 1000), reason=message.get("reason", ""))


class _Denial:
    """The HTTP response an app sends instead of accepting, gathered message by message."""

    def __init__(self, start: Message) -> None:
        self.status_code: int = start["status"]
        self.headers: list[tuple[bytes, bytes]] = start["headers"]
        self.body: list[bytes] = []

    def add(self, message: Message) -> bool:
        """Takes the app's next message; whether the body goes on."""
        if message["type"] != "websocket.http.response.body":
            return False  # the app ended mid-body: deny with what it sent
        self.body.append(message["body"])
        return bool(message.get("more_body", False))

    def response(self) -> WebSocketDenialResponse:
        return WebSocketDenialResponse(
            status_code=self.status_code, headers=self.headers, content=b"".join(self.body)
        )


def _json_message(data: Any, mode: Literal["text", "binary"]) -> Message:
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    if mode == "text":
        return {"type": "websocket.receive", "text": text}
    return {"type": "websocket.receive", "bytes": text.encode("utf-8")}


def _json_value(message: Message, mode: Literal["text", "binary"]) -> Any:
    text = message["text"] if mode == "text" else message["bytes"].decode("utf-8")
    return json.loads(text)


def _websocket_headers(kwargs: dict[str, Any], subprotocols: Sequence[str] | None) -> httpx.Headers:
    """The handshake's headers: the caller's (popped from ``kwargs``) and the required ones."""
    headers = httpx.Headers(kwargs.pop("headers", None))
    headers.setdefault("connection", "upgrade")
    headers.setdefault("sec-websocket-key", "testserver==")
    headers.setdefault("sec-websocket-version", "13")
    if subprotocols is not None:
        headers.setdefault("sec-websocket-protocol", ", ".join(subprotocols))
    return headers


class TestClient(httpx.Client):
    __test__ = False
    task: Future[None]
    portal: anyio.from_thread.BlockingPortal | None = None

    def __init__(
        self,
        app: ASGIApp,
        base_url: str = "http://testserver",
        raise_server_exceptions: bool = True,
        root_path: str = "",
        backend: Literal["asyncio", "trio"] = "asyncio",
        backend_options: dict[str, Any] | None = None,
        cookies: httpx._types.CookieTypes | None = None,
        headers: dict[str, str] | None = None,
        follow_redirects: bool = True,
        client: tuple[str, int] = ("testclient", 50000),
    ) -> None:
        self.async_backend: dict[str, Any] = {
            "backend": backend,
            "backend_options": backend_options or {},
        }
        self.app: ASGIApp = app if _is_asgi3(app) else _WrapASGI2(app)
        self.app_state: dict[str, Any] = {}
        self._lifespans: list[contextlib.ExitStack] = []
        self._runner: LifespanRunner | None = None
        transport = TestClientTransport(
            self.app,
            portal_factory=self._portal_factory,
            raise_server_exceptions=raise_server_exceptions,
            root_path=root_path,
            client=client,
            app_state=self.app_state,
            websocket_handler=self._upgrade,
        )
        self._test_transport = transport
        merged = httpx.Headers(headers)
        if "user-agent" not in merged:
            merged["user-agent"] = "testclient"
        super().__init__(
            base_url=base_url,
            headers=merged,
            transport=transport,
            follow_redirects=follow_redirects,
            cookies=cookies,
        )

    @contextlib.contextmanager
    def _portal_factory(self) -> Generator[anyio.from_thread.BlockingPortal, None, None]:
        if self.portal is not None:
            yield self.portal
        else:
            with anyio.from_thread.start_blocking_portal(**self.async_backend) as portal:
                yield portal

    def _upgrade(self, request: httpx.Request, scope: Scope) -> httpx.Response:
        raise _Upgrade(WebSocketTestSession(self.app, scope, self._portal_factory))

    def request(  # type: ignore[override]
        self,
        method: str,
        url: httpx_types.URLTypes,
        *,
        content: httpx_types.RequestContent | None = None,
        data: _RequestData | None = None,
        files: httpx_types.RequestFiles | None = None,
        json: Any = None,
        params: httpx_types.QueryParamTypes | None = None,
        headers: httpx_types.HeaderTypes | None = None,
        cookies: httpx_types.CookieTypes | None = None,
        auth: httpx_types.AuthTypes | httpx_client.UseClientDefault = _CLIENT_DEFAULT,
        follow_redirects: bool | httpx_client.UseClientDefault = _CLIENT_DEFAULT,
        timeout: httpx_types.TimeoutTypes | httpx_client.UseClientDefault = _CLIENT_DEFAULT,
        extensions: dict[str, Any] | None = None,
    ) -> httpx.Response:
        if timeout is not httpx_client.USE_CLIENT_DEFAULT:
            warnings.warn(
                "You should not use the 'timeout' argument with the TestClient. "
                "See https://github.com/Kludex/starlette/issues/1108 for more information.",
                StarletteDeprecationWarning,
                stacklevel=2,
            )
        return super().request(
            method,
            url,
            content=content,
            data=data,  # type: ignore[arg-type]
            files=files,
            json=json,
            params=params,
            headers=headers,
            cookies=cookies,
            auth=auth,
            follow_redirects=follow_redirects,
            timeout=timeout,
            extensions=extensions,
        )

    def websocket_connect(
        self, url: str, subprotocols: Sequence[str] | None = None, **kwargs: Any
    ) -> WebSocketTestSession:
        url = urljoin("ws://testserver", url)
        headers = _websocket_headers(kwargs, subprotocols)
        try:
            super().request("GET", url, headers=headers, **kwargs)
        except _Upgrade as upgrade:
            assert isinstance(upgrade.session, WebSocketTestSession)
            return upgrade.session
        raise AssertionError("unreachable")  # pragma: no cover (ws:// always upgrades)

    def __enter__(self) -> Self:
        with contextlib.ExitStack() as stack:
            previous = (self.portal, self._runner)
            self._runner = runner = LifespanRunner(self.app, self.app_state)
            stack.callback(runner.close)
            self.portal = portal = stack.enter_context(
                anyio.from_thread.start_blocking_portal(**self.async_backend)
            )

            @stack.callback
            def restore() -> None:
                self.portal, self._runner = previous

            self.task = portal.start_task_soon(self.lifespan)
            # Whatever happens, the lifespan task must end before the portal can close.
            stack.callback(portal.call, runner.cancel)
            portal.call(self.wait_startup)

            @stack.callback
            def wait_shutdown() -> None:
                portal.call(self.wait_shutdown)

            self._lifespans.append(stack.pop_all())
        return self

    def __exit__(self, *args: Any) -> None:
        lifespan = self._lifespans.pop()
        try:
            # Responses the test left open are cancelled before the app shuts down.
            self._test_transport.cancel_open()
        finally:
            lifespan.close()

    async def lifespan(self) -> None:
        assert self._runner is not None
        await self._runner.run()

    async def wait_startup(self) -> None:
        assert self._runner is not None
        await self._runner.wait_startup()

    async def wait_shutdown(self) -> None:
        assert self._runner is not None
        await self._runner.wait_shutdown()


class AsyncWebSocketTestSession:
    """``WebSocketTestSession``'s methods, awaited, with the app running in the test's loop.

    Made by ``AsyncTestClient.websocket_connect``; ``async with`` connects (raising
    ``WebSocketDisconnect`` or ``WebSocketDenialResponse`` if the app refuses) and, on the
    way out, closes the connection, gives the app a moment to react, then cancels it.
    """

    def __init__(self, app: ASGIApp, scope: Scope) -> None:
        self.app = app
        self.scope = scope
        self.accepted_subprotocol: str | None = None
        self.extra_headers: list[tuple[bytes, bytes]] | None = None
        self._ended: _AppEnded | None = None
        self._app_gone = False
        self._error_reported = False
        self._done = anyio.Event()

    async def __aenter__(self) -> Self:
        self._to_app, self._to_app_rx = anyio.create_memory_object_stream[Message](math.inf)
        self._from_app, self._from_app_rx = anyio.create_memory_object_stream[Any](math.inf)
        self._tasks = HeldTaskGroup()
        task_group = await self._tasks.open()
        task_group.start_soon(self._run)
        try:
            await self.send({"type": "websocket.connect"})
            message = await self.receive()
            await self._raise_on_close(message)
            self.accepted_subprotocol = message.get("subprotocol", None)
            self.extra_headers = message.get("headers", None)
            # Let the app run until it waits: an app that fails right after accepting fails
            # the `async with` statement, as with the sync session.
            await settle()
            self._raise_app_error()
        except BaseException as exc:
            await self._close(exc)
            raise
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        await self._close(exc)

    async def _close(self, exc: BaseException | None) -> None:
        """Closes the connection, gives the app a moment to react, cancels it if it is still
        running, then raises its error."""
        try:
            with anyio.CancelScope(shield=True):
                if not self._done.is_set():
                    await self.close(1000)
                    await settle()
        finally:
            await self._tasks.close(exc)
            for stream in (self._to_app, self._to_app_rx, self._from_app, self._from_app_rx):
                stream.close()
        self._raise_app_error()

    async def _run(self) -> None:
        try:
            error: Exception | None = None
            try:
                with surfacing() as quiet:
                    await self.app(self.scope, self._to_app_rx.receive, self._from_app.send)
                if quiet:  # as in WebSocketTestSession._run
                    error = quiet[0]
            except Exception as exc:
                error = exc
            self._ended = _AppEnded(error)
            await self._from_app.send(self._ended)
        finally:
            self._done.set()

    def _raise_app_error(self) -> None:
        ended = self._ended
        if ended is not None and ended.error is not None and not self._error_reported:
            self._error_reported = True
            raise ended.error

    async def _raise_on_close(self, message: Message) -> None:
        _raise_on_disconnect(message)
        if message["type"] == "websocket.http.response.start":
            denial = _Denial(message)
            while denial.add(await self.receive()):
                pass
            raise denial.response()

    async def send(self, message: Message) -> None:
        await self._to_app.send(message)

    async def send_text(self, data: str) -> None:
        await self.send({"type": "websocket.receive", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        await self.send({"type": "websocket.receive", "bytes": data})

    async def send_json(self, data: Any, mode: Literal["text", "binary"] = "text") -> None:
        await self.send(_json_message(data, mode))

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        await self.send({"type": "websocket.disconnect", "code": code, "reason": reason})

    async def receive(self) -> Message:
        """The app's next message; once the app has ended, a close frame it never sent."""
        if not self._app_gone:
            message = await self._from_app_rx.receive()
            if not isinstance(message, _AppEnded):
                return message  # type: ignore[no-any-return]
            self._app_gone = True
        self._raise_app_error()
        return {"type": "websocket.close", "code": _ABNORMAL_CLOSURE, "reason": ""}

    async def receive_text(self) -> str:
        message = await self.receive()
        await self._raise_on_close(message)
        return message["text"]  # type: ignore[no-any-return]

    async def receive_bytes(self) -> bytes:
        message = await self.receive()
        await self._raise_on_close(message)
        return message["bytes"]  # type: ignore[no-any-return]

    async def receive_json(self, mode: Literal["text", "binary"] = "text") -> Any:
        message = await self.receive()
        await self._raise_on_close(message)
        return _json_value(message, mode)


class AsyncTestClient(httpx.AsyncClient):
    """An httpx ``AsyncClient`` that calls an ASGI app in process, in the test's event loop.

    ``async with AsyncTestClient(app) as client`` runs the app's lifespan (its state is in
    every request's scope) around the block; requests are awaited (``await client.get("/")``),
    responses stream (``client.stream(...)``) with backpressure, and
    ``async with client.websocket_connect("/ws") as ws`` opens an
    ``AsyncWebSocketTestSession``. Runs on whichever of asyncio and trio the test runs on.
    Used without ``async with``, there is no lifespan and each response is read whole.
    """

    __test__ = False

    def __init__(
        self,
        app: ASGIApp,
        base_url: str = "http://testserver",
        raise_server_exceptions: bool = True,
        root_path: str = "",
        cookies: httpx._types.CookieTypes | None = None,
        headers: dict[str, str] | None = None,
        follow_redirects: bool = True,
        client: tuple[str, int] = ("testclient", 50000),
    ) -> None:
        self.app: ASGIApp = app if _is_asgi3(app) else _WrapASGI2(app)
        self.app_state: dict[str, Any] = {}
        transport = AsyncTestClientTransport(
            self.app,
            raise_server_exceptions=raise_server_exceptions,
            root_path=root_path,
            client=client,
            app_state=self.app_state,
            websocket_handler=self._upgrade,
        )
        self._test_transport = transport
        merged = httpx.Headers(headers)
        if "user-agent" not in merged:
            merged["user-agent"] = "testclient"
        super().__init__(
            base_url=base_url,
            headers=merged,
            transport=transport,
            follow_redirects=follow_redirects,
            cookies=cookies,
        )

    def _upgrade(self, scope: Scope) -> httpx.Response:
        raise _Upgrade(AsyncWebSocketTestSession(self.app, scope))

    @contextlib.asynccontextmanager
    async def websocket_connect(
        self, url: str, subprotocols: Sequence[str] | None = None, **kwargs: Any
    ) -> AsyncIterator[AsyncWebSocketTestSession]:
        """``async with client.websocket_connect(url) as ws``: a connected session.

        ``kwargs`` are the request's (``headers``, ``params``, ``cookies``...), as for the
        sync client.
        """
        url = urljoin("ws://testserver", url)
        headers = _websocket_headers(kwargs, subprotocols)
        try:
            await super().request("GET", url, headers=headers, **kwargs)
        except _Upgrade as upgrade:
            session = upgrade.session
        else:  # pragma: no cover (ws:// always upgrades)
            raise AssertionError("unreachable")
        assert isinstance(session, AsyncWebSocketTestSession)
        async with session:
            yield session

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        transport = self._test_transport
        self._tasks = HeldTaskGroup()
        transport.task_group = task_group = await self._tasks.open()
        self._runner = runner = LifespanRunner(self.app, self.app_state)
        task_group.start_soon(runner.run)
        try:
            await runner.wait_startup()
        except BaseException as exc:
            await self._close(exc, started=False)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        await self._close(exc, started=True)

    async def _close(self, exc: BaseException | None, started: bool) -> None:
        """Cancels the responses left open, shuts the app down (if it started), ends every
        task and closes the httpx client; then raises the first error of these."""
        transport = self._test_transport
        errors: list[Exception] = []
        try:
            # Responses the test left open are cancelled before the app shuts down.
            for step in (transport.cancel_open, self._runner.wait_shutdown) if started else ():
                try:
                    await step()
                except Exception as error:
                    errors.append(error)
        finally:
            await self._tasks.close(exc)
            transport.task_group = None
            self._runner.close()
            await super().__aexit__(None, None, None)
        if errors:
            raise errors[0]
