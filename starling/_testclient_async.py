"""The AsyncTestClient's httpx transport: the TestClient's exchange, run in the test's own loop.

The sync TestClient drives ``_Exchange`` (the app's side of one request) through a blocking
portal; here the test is already in an event loop, so the exchange runs as a task of the client's
task group (open between ``__aenter__`` and ``__aexit__``) and the body is pulled with plain
awaits. Outside ``async with`` there is no task group to outlive a request: each request then runs
in a task group of its own and its response is read whole before it is returned.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.abc

from starling._httpx import httpx
from starling._testclient_http import (
    ExchangeStream,
    _Exchange,
    build_response,
    chunk_messages,
    http_scope,
    no_response,
    websocket_scope,
)
from starling.types import ASGIApp, Scope


class HeldTaskGroup:
    """A task group held open from one call to another (an ``async with`` object's enter and
    exit) that never wraps an error in an ExceptionGroup.

    Its tasks keep their errors for the test to raise (they never raise themselves), and the
    test's own exception is not passed in on the way out (only a cancellation is): so an
    assertion failing inside ``async with client:`` comes out as itself.
    """

    async def open(self) -> anyio.abc.TaskGroup:
        self.task_group = anyio.create_task_group()
        await self.task_group.__aenter__()
        return self.task_group

    async def close(self, exc: BaseException | None) -> None:
        """Cancels what is left of the tasks and waits for them to end."""
        self.task_group.cancel_scope.cancel()
        if isinstance(exc, Exception):
            exc = None
        await self.task_group.__aexit__(
            None if exc is None else type(exc), exc, None if exc is None else exc.__traceback__
        )


class AsyncResponseStream(ExchangeStream, httpx.AsyncByteStream):
    """The response body, pulled from the app as the test reads it.

    A plain async iterator rather than an async generator: a test that stops reading early
    leaves no generator for the garbage collector to finalise.
    """

    more = True  # the app may send more body

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        exchange = self.exchange
        while self.more and not self.stopped:
            try:
                message = await exchange.take()
            except anyio.EndOfStream:
                break
            self.more = message.get("more_body", False)
            body: bytes = message.get("body", b"")
            if body and not self.head:
                return body
        self.more = False
        # Declared trailers: the response ends with the last of them (or the app). (Once the
        # stream is stopped the app has ended: this returns at once, and reports only once.)
        await exchange.finished.wait()
        self._report()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        await self.stop(cancel=False)

    async def stop(self, cancel: bool) -> None:
        """Ends the app (cancelled if ``cancel`` or the response is incomplete), waits for it,
        then raises its error if the client raises server exceptions. (Idempotent: a second
        call finds the app ended and its error reported.)"""
        self.stopped = True
        self.on_stop(self)
        try:
            # Shielded: a test cancelled while closing still leaves no app task behind.
            with anyio.CancelScope(shield=True):
                await self.exchange.stop(cancel)
                await self.exchange.ended.wait()
        finally:
            self.exchange.inbox.close()
        self._report()


class AsyncTestClientTransport(httpx.AsyncBaseTransport):
    """Sends each httpx request to the ASGI app; ws/wss URLs go to ``websocket_handler``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        raise_server_exceptions: bool,
        root_path: str,
        client: tuple[str, int],
        app_state: dict[str, Any],
        websocket_handler: Callable[[Scope], Any],
    ) -> None:
        self.app = app
        self.raise_server_exceptions = raise_server_exceptions
        self.root_path = root_path
        self.client = client
        self.app_state = app_state
        self.websocket_handler = websocket_handler
        # The client's, between its __aenter__ and __aexit__: apps run there, and outlive the
        # request that started them (a streaming response is read after send() returns).
        self.task_group: anyio.abc.TaskGroup | None = None
        # The responses the test has not closed yet, in the order they were sent.
        self.open: dict[AsyncResponseStream, None] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme in ("ws", "wss"):
            scope = websocket_scope(request, self.root_path, self.client, self.app_state)
            return self.websocket_handler(scope)  # type: ignore[no-any-return]
        scope = http_scope(request, self.root_path, self.client, self.app_state)
        chunks = [chunk async for chunk in request.stream if chunk]  # type: ignore[union-attr]
        exchange = _Exchange(self.app, scope, chunk_messages(chunks))
        if self.task_group is None:
            return await self._read_whole(request, exchange)
        self.task_group.start_soon(exchange.run)
        return await self._respond(request, exchange)

    async def _respond(self, request: httpx.Request, exchange: _Exchange) -> httpx.Response:
        stream = AsyncResponseStream(exchange, self.raise_server_exceptions)
        try:
            start = await exchange.start()
        except BaseException:
            await stream.stop(cancel=True)
            raise
        if start is None:
            await stream.aclose()  # the app has ended: this raises its error (if raising)
            return no_response(self.raise_server_exceptions)
        response = build_response(request, start, exchange, stream)
        self.open[stream] = None
        stream.on_stop = self._forget
        return response

    async def _read_whole(self, request: httpx.Request, exchange: _Exchange) -> httpx.Response:
        """One request outside ``async with``: the app in a task group of its own, the
        response read whole (the app has ended when this returns)."""
        outcome: list[httpx.Response | Exception] = []
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(exchange.run)
            try:
                response = await self._respond(request, exchange)
                try:
                    await response.aread()
                finally:
                    await response.aclose()
            except Exception as exc:
                # Raised once the task group is left: inside it, an exception would come out
                # wrapped in an ExceptionGroup.
                outcome.append(exc)
            else:
                outcome.append(response)
        (result,) = outcome
        if isinstance(result, Exception):
            raise result
        return result

    def _forget(self, stream: AsyncResponseStream) -> None:
        self.open.pop(stream, None)

    async def cancel_open(self) -> None:
        """Cancels the app behind every response the test left open and waits for it to
        end, then raises the first app error (if raising server exceptions)."""
        first: Exception | None = None
        for stream in list(self.open):
            try:
                await stream.stop(cancel=True)
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first

    async def aclose(self) -> None:
        await self.cancel_open()
