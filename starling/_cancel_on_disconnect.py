"""``cancel_on_disconnect``: an HTTP endpoint cancelled when its client goes away.

An ASGI app learns of a disconnect only from ``receive()``, and an endpoint busy elsewhere (a
slow query, an upstream call) is not calling it. So one task, the *reader*, becomes the only
caller of the server's ``receive()``: it queues what it reads for the endpoint, and when the
``http.disconnect`` comes, cancels the endpoint (whose ``finally`` blocks and context managers
run) unless the response is already complete (then the disconnect is only the end of the
exchange, and background tasks run on).

- Order and loss: the endpoint's ``receive()`` takes messages from the queue in the order the
  reader read them, each exactly once.
- Memory: the reader reads ahead of the endpoint by at most ``READ_AHEAD`` body bytes (plus
  the one message that crossed it), however large the body. A disconnect a server reports only
  after body the endpoint has not read (uvicorn reports it at once) is noticed once the
  endpoint reads on.
- Nothing is sent once the client has gone: messages the endpoint sends after that are dropped.

Nested wrappers (``Starling``/``Router`` default and a ``Route``) share the outermost reader: an
inner one sees that ``receive`` is already a reader's and passes the request through. Whether to
cancel is decided at the disconnect, from the route that matched: a ``Route`` with
``cancel_on_disconnect=False`` is never cancelled, even under a default of True.
"""

from __future__ import annotations

import collections
from typing import Any

import anyio
import anyio.lowlevel

from starling.types import ASGIApp, Message, Receive, Scope, Send

# Body bytes read from the server ahead of the endpoint: enough to see a disconnect behind a
# small body, small enough that an endpoint that never reads a large one holds little of it.
READ_AHEAD = 64 * 1024


def _is_reader(receive: Receive) -> bool:
    return type(getattr(receive, "__self__", None)) is _Reader


class CancelOnDisconnect:
    """Runs ``app`` for HTTP requests so that a client disconnect cancels it (see the module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_reader(receive):
            await self.app(scope, receive, send)
            return
        await _Reader(scope, receive, send).run(self.app)


class _Reader:
    """One request's reader task, queue, and the endpoint's ``receive``/``send``."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.server_receive = receive
        self.server_send = send
        self.queue: collections.deque[Message] = collections.deque()
        self.queued_bytes = 0
        self.arrived = anyio.Event()  # a message was queued (replaced after each one)
        self.taken = anyio.Event()  # the endpoint took one (replaced after each one)
        self.error: Exception | None = None  # the server's receive() raised it
        self.gone = False  # the client disconnected
        self.cancelled = False  # ...and the endpoint was cancelled for it
        self.trailers = False  # the response declared trailers
        self.complete = False  # the whole response is sent
        self.endpoint_scope = anyio.CancelScope()

    async def run(self, app: ASGIApp) -> None:
        error: Exception | None = None
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(self.read)
            try:
                with self.endpoint_scope:
                    await app(self.scope, self.receive, self.send)
            except Exception as exc:
                # Raised once the task group is left: inside it, it would come out wrapped in
                # an ExceptionGroup.
                error = exc
            task_group.cancel_scope.cancel()  # the reader stops with the endpoint
        if error is not None:
            raise error

    async def read(self) -> None:
        """The only caller of the server's receive(), until the disconnect (or an error)."""
        while True:
            while self.queued_bytes >= READ_AHEAD:
                await self.taken.wait()
            try:
                message = await self.server_receive()
            except Exception as exc:
                self.error = exc  # raised to the endpoint, in its own receive()
                self._arrive()
                return
            self.queue.append(message)
            self.queued_bytes += len(message.get("body", b""))
            if message["type"] == "http.disconnect":
                self.gone = True
                if not self.complete and self._cancels():
                    self.cancelled = True
                    self.endpoint_scope.cancel()
                self._arrive()
                return
            self._arrive()

    def _arrive(self) -> None:
        arrived, self.arrived = self.arrived, anyio.Event()
        arrived.set()

    def _cancels(self) -> bool:
        # The route that matched may opt out (a Route's own False beats a default of True).
        route: Any = self.scope.get("route")
        return getattr(route, "cancel_on_disconnect", None) is not False

    async def receive(self) -> Message:
        while True:
            if self.cancelled:
                # The endpoint is cancelled here rather than handed what is queued: it would
                # otherwise read on to the disconnect (a ClientDisconnect error) before
                # reaching a checkpoint. (A shielded endpoint reads on.)
                await anyio.lowlevel.checkpoint_if_cancelled()
            if self.queue:
                break
            if self.error is not None:
                raise self.error
            if self.gone:  # (an endpoint left running) as from a server: gone for good
                return {"type": "http.disconnect"}
            await self.arrived.wait()
        message = self.queue.popleft()
        self.queued_bytes -= len(message.get("body", b""))
        taken, self.taken = self.taken, anyio.Event()
        taken.set()
        return message

    async def send(self, message: Message) -> None:
        if self.cancelled:
            return  # APPSEC: nothing goes out for a client that has gone
        # Complete as the last message is handed over, not once send() returns: the server may
        # report the disconnect that ends the exchange (the reader may see it) meanwhile.
        kind = message["type"]
        if kind == "http.response.start":
            self.trailers = bool(message.get("trailers", False))
        elif kind == "http.response.body":
            if not message.get("more_body", False) and not self.trailers:
                self.complete = True
        elif kind == "http.response.trailers" and not message.get("more_trailers", False):
            self.complete = True
        await self.server_send(message)
