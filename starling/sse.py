"""Server-Sent Events: ``EventSourceResponse`` streams ``ServerSentEvent`` objects.

The wire format is the WHATWG HTML "server-sent events" one. An event's fields are checked
when it is built, so no value can start a field or an event of its own: ``event``, ``id`` and
``comment`` refuse CR and LF, ``id`` refuses NUL, and the line breaks of ``data`` (CR, LF and
CRLF) become one ``data:`` line each.

The response sends what the producer (the content iterable) yields as soon as it is yielded; a
comment line goes out after every ``ping`` seconds without an event, so proxies and clients see
the connection alive. The producer is closed (``aclose()``, or ``close()`` in the
worker thread that iterated it) when the client leaves, when the server stops, when a send
takes longer than ``send_timeout`` and when the producer fails; nothing keeps running for a
client that left.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from typing import Any, Final

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from anyio import get_cancelled_exc_class
from anyio.streams.memory import MemoryObjectSendStream

from starling._shutdown import ShutdownWatch
from starling.background import BackgroundTask
from starling.responses import Response, _setdefault
from starling.types import Message, Receive, Scope, Send

__all__ = ["EventSourceResponse", "ServerSentEvent"]

logger = logging.getLogger(__name__)

# The comment sent while the producer is idle (a comment line: clients ignore it).
PING: Final = b": ping\n\n"
# How long a closing producer may take over its own clean-up (its finally blocks) once the
# stream is over, before it is cancelled.
PRODUCER_CLOSE_TIMEOUT: Final = 5.0
# Worker threads iterating sync producers at once, per event loop. A sync producer holds one
# thread for its whole life (so that it is closed in the thread that iterated it); the limit is
# its own so that event streams never starve the threads of other requests.
SYNC_PRODUCER_THREAD_LIMIT: Final = 256

_EVENT_FIELDS = frozenset({"data", "event", "id", "retry", "comment"})

_thread_limiter: anyio.lowlevel.RunVar[anyio.CapacityLimiter] = anyio.lowlevel.RunVar(
    "_sse_thread_limiter"
)


def _get_thread_limiter() -> anyio.CapacityLimiter:
    try:
        return _thread_limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(SYNC_PRODUCER_THREAD_LIMIT)
        _thread_limiter.set(limiter)
        return limiter


def _single_line(name: str, value: object) -> str:
    """``value`` as a field value that cannot end its line (APPSEC: no injected fields)."""
    if not isinstance(value, str):
        raise TypeError(f"ServerSentEvent {name} must be a str, not {type(value).__name__}.")
    if "\r" in value or "\n" in value:
        raise ValueError(
            f"ServerSentEvent {name} must not contain a line break (CR or LF): it would start "
            f"a new field or event. Got {value!r}."
        )
    return value


class ServerSentEvent:
    """One event: the fields given (all optional), checked and encoded once.

    ``data`` is text (an ``int`` or ``float`` is written with ``str()``); its line breaks make
    several ``data:`` lines, which the client joins with LF. ``retry`` is the reconnection
    time in milliseconds. ``comment`` is a comment line, ignored by clients.
    """

    __slots__ = ("data", "event", "id", "retry", "comment", "_encoded")

    data: str | None
    event: str | None
    id: str | None
    retry: int | None
    comment: str | None
    _encoded: bytes

    def __init__(
        self,
        data: str | int | float | None = None,
        *,
        event: str | None = None,
        id: str | int | None = None,
        retry: int | None = None,
        comment: str | None = None,
    ) -> None:
        lines: list[str] = []
        if comment is not None:
            lines.append(": " + _single_line("comment", comment))
        if event is not None:
            lines.append("event: " + _single_line("event", event))
        if id is not None:
            if isinstance(id, int) and not isinstance(id, bool):
                id = str(id)
            id = _single_line("id", id)
            if "\0" in id:
                raise ValueError(
                    "ServerSentEvent id must not contain NUL: clients ignore such an id. "
                    f"Got {id!r}."
                )
            lines.append("id: " + id)
        if retry is not None:
            if not isinstance(retry, int) or isinstance(retry, bool) or retry < 0:
                raise ValueError(
                    "ServerSentEvent retry must be a whole number of milliseconds, 0 or more. "
                    f"Got {retry!r}."
                )
            lines.append(f"retry: {retry}")
        if data is not None:
            if isinstance(data, (int, float)) and not isinstance(data, bool):
                data = str(data)
            elif not isinstance(data, str):
                raise TypeError(
                    f"ServerSentEvent data must be a str, not {type(data).__name__}: "
                    "serialise other values first, e.g. with json.dumps()."
                )
            # PERF: every line break (CRLF, CR or LF) starts a new data line, in two C passes
            # rather than a Python step per line: data made only of line breaks costs what any
            # data of its size does (tests/test_parser_cost.py).
            normalised = data.replace("\r\n", "\n").replace("\r", "\n")
            lines.append("data: " + normalised.replace("\n", "\ndata: "))
        set_field = object.__setattr__
        set_field(self, "data", data)
        set_field(self, "event", event)
        set_field(self, "id", id)
        set_field(self, "retry", retry)
        set_field(self, "comment", comment)
        # Strict UTF-8: a lone surrogate fails here, not halfway through the stream.
        encoded = ("\n".join(lines) + "\n\n").encode("utf-8") if lines else b""
        set_field(self, "_encoded", encoded)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("ServerSentEvent is immutable: build a new event instead.")

    def encode(self) -> bytes:
        """The event on the wire, blank line included (empty for an event with no fields)."""
        return self._encoded

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServerSentEvent):
            return NotImplemented
        return self._encoded == other._encoded

    def __hash__(self) -> int:
        return hash(self._encoded)

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in ("data", "event", "id", "retry", "comment")
            if getattr(self, name) is not None
        )
        return f"ServerSentEvent({fields})"


def _encode_item(item: object) -> bytes:
    """What one item of the content is on the wire."""
    if isinstance(item, ServerSentEvent):
        return item.encode()
    if isinstance(item, str):
        return ServerSentEvent(item).encode()
    if isinstance(item, Mapping):
        unknown = set(item) - _EVENT_FIELDS
        if unknown:
            raise ValueError(
                f"Unknown server-sent event field(s) {sorted(map(str, unknown))}: "
                "the keys are data, event, id, retry and comment."
            )
        return ServerSentEvent(**item).encode()
    raise TypeError(
        f"An event stream yields ServerSentEvent, str or dict items, not {type(item).__name__}."
    )


def _check_interval(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number of seconds above 0, or None. Got {value!r}.")
    return float(value)


class _ClientGone(Exception):
    """send() failed or timed out: the stream ends without its closing chunk."""


class EventSourceResponse(Response):
    """A ``text/event-stream`` response sending what ``content`` yields, event by event.

    ``content`` is a sync or async iterable of ``ServerSentEvent``, ``str`` (one data field) or
    ``dict`` (the event's fields). ``ping`` is the idle time in seconds after which a comment
    line is sent (``None``: never); ``send_timeout`` drops a client that takes longer than that
    to accept one chunk (``None``: wait). ``on_disconnect`` is called (and awaited if it
    returns an awaitable) when the client leaves or is dropped, after the producer is closed.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        content: AsyncIterable[Any] | Iterable[Any],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        *,
        ping: float | None = 15.0,
        send_timeout: float | None = None,
        background: BackgroundTask | None = None,
        on_disconnect: Callable[[], Awaitable[None] | None] | None = None,
    ) -> None:
        if not isinstance(content, (AsyncIterable, Iterable)) or isinstance(
            content, (str, bytes, Mapping)
        ):
            raise TypeError(
                "EventSourceResponse content must be an iterable or async iterable of events "
                f"(a generator, typically), not {type(content).__name__}."
            )
        self.content = content
        self.ping = _check_interval("ping", ping)
        self.send_timeout = _check_interval("send_timeout", send_timeout)
        self.on_disconnect = on_disconnect
        self.status_code = status_code
        self.background = background
        self.init_headers(headers)
        # Never stored by caches, never buffered by nginx; Connection is the server's business
        # (and forbidden in HTTP/2).
        _setdefault(self.raw_headers, b"cache-control", b"no-store")
        _setdefault(self.raw_headers, b"x-accel-buffering", b"no")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message = {
            "type": "http.response.start",
            "status": self.status_code,
            "headers": self.raw_headers,
        }
        stream = _Stream(self, send)
        with ShutdownWatch(stream.stop_for_shutdown) as watch:
            if scope.get("method") == "HEAD" or watch.fired:
                # No events: a HEAD request, or a server already stopping (the client comes
                # back, to another worker). The producer is closed without being started.
                await send(start)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                ended = "complete"
                await self._close_unstarted()
            else:
                ended = await stream.run(start, receive)
        if ended == "disconnect" and self.on_disconnect is not None:
            result = self.on_disconnect()
            if inspect.isawaitable(result):
                await result
        if self.background is not None:
            await self.background()

    async def _close_unstarted(self) -> None:
        content = self.content
        if isinstance(content, AsyncIterable):
            await _aclose(content)
        else:
            close = getattr(content, "close", None)
            if close is not None:
                await anyio.to_thread.run_sync(close, limiter=_get_thread_limiter())


async def _aclose(iterator: object) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        # Shielded, so that the producer's own async clean-up runs even in a cancelled stream;
        # bounded, so that it cannot keep the worker from stopping.
        with anyio.move_on_after(PRODUCER_CLOSE_TIMEOUT, shield=True):
            await aclose()


class _Stream:
    """One response's run: the producer iterated in this task, a pinger and a watcher.

    An async producer is iterated right here, each event sent as soon as it is made. A sync
    one runs in a worker thread of its own and hands its events over a channel holding one.
    The watcher ends the stream when the client leaves; the ShutdownWatch, when the server
    stops.
    The pinger sends a comment after ``ping`` idle seconds; ``sending`` and ``pinging`` keep
    its sends and the events' from overlapping without a lock (a check and a set with no
    ``await`` between them cannot interleave).
    """

    def __init__(self, response: EventSourceResponse, send: Send) -> None:
        self.response = response
        self.send = send
        self.ended = "complete"
        self.timed = response.ping is not None
        self.last_sent = anyio.current_time()
        self.sending = False
        self.pinging: anyio.Event | None = None
        self.scope: anyio.CancelScope | None = None

    def stop_for_shutdown(self) -> None:
        """The server is stopping: end the stream (called on its event loop)."""
        if self.ended == "complete":
            self.ended = "shutdown"
        if self.scope is not None:
            self.scope.cancel()

    async def run(self, start: Message, receive: Receive) -> str:
        """Stream until the producer ends, the client leaves or the server stops; say which."""
        async with _task_group() as task_group:
            self.scope = scope = task_group.cancel_scope
            task_group.start_soon(self._watch_disconnect, receive, scope)
            try:
                await self._send(start)
                if self.response.ping is not None:
                    task_group.start_soon(self._ping, self.response.ping, scope)
                content = self.response.content
                if isinstance(content, AsyncIterable):
                    await self._stream_async(content)
                else:
                    await self._stream_sync(iter(content), task_group)
            except _ClientGone:
                self.ended = "disconnect"
            scope.cancel()
        if self.ended != "disconnect":
            # The producer ended or the server is stopping: a clean end of the stream (a client
            # reconnects, to another worker if this one stops).
            try:
                await self._send({"type": "http.response.body", "body": b"", "more_body": False})
            except _ClientGone:
                self.ended = "disconnect"
        return self.ended

    async def _watch_disconnect(self, receive: Receive, scope: anyio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if self.ended == "complete":
            self.ended = "disconnect"
        scope.cancel()

    async def _send(self, message: Message) -> None:
        timeout = self.response.send_timeout
        try:
            if timeout is None:
                await self.send(message)
            else:
                with anyio.fail_after(timeout):
                    await self.send(message)
        except TimeoutError:
            logger.info("Dropped an event stream's client: one send took over %ss.", timeout)
            raise _ClientGone from None
        except OSError:  # ASGI 2.4: send() raises OSError once the client is gone
            raise _ClientGone from None
        if self.timed:
            self.last_sent = anyio.current_time()

    async def _send_event(self, body: bytes) -> None:
        while self.pinging is not None:
            await self.pinging.wait()
        self.sending = True
        try:
            await self._send({"type": "http.response.body", "body": body, "more_body": True})
        finally:
            self.sending = False

    async def _ping(self, interval: float, scope: anyio.CancelScope) -> None:
        """Send a ping whenever nothing was sent for ``interval`` seconds."""
        while True:
            await anyio.sleep_until(self.last_sent + interval)
            if self.sending or anyio.current_time() < self.last_sent + interval:
                continue  # an event is going out, or went out meanwhile
            self.pinging = done = anyio.Event()
            try:
                await self._send({"type": "http.response.body", "body": PING, "more_body": True})
            except _ClientGone:
                self.ended = "disconnect"
                scope.cancel()
            finally:
                self.pinging = None
                done.set()

    async def _stream_async(self, content: AsyncIterable[Any]) -> None:
        iterator: AsyncIterator[Any] = aiter(content)
        try:
            async for item in iterator:
                body = _encode_item(item)
                if body:
                    await self._send_event(body)
        finally:
            await _aclose(iterator)

    async def _stream_sync(self, iterator: Iterator[Any], task_group: anyio.abc.TaskGroup) -> None:
        # One event may wait in the buffer, so that the thread rarely waits for the sender.
        events, received = anyio.create_memory_object_stream[bytes](1)
        try:
            task_group.start_soon(self._run_sync, iterator, events)
            async for body in received:
                await self._send_event(body)
        finally:
            # Closed only once this stream is over: the producer's thread, if still blocked
            # handing over an event, gets BrokenResourceError, stops and closes the producer.
            received.close()

    @staticmethod
    async def _run_sync(iterator: Iterator[Any], events: MemoryObjectSendStream[bytes]) -> None:
        with events:
            await anyio.to_thread.run_sync(
                functools.partial(_produce_sync, iterator, events, get_cancelled_exc_class()),
                abandon_on_cancel=True,
                limiter=_get_thread_limiter(),
            )


@contextlib.asynccontextmanager
async def _task_group() -> AsyncIterator[anyio.abc.TaskGroup]:
    """A task group whose one error comes out as itself, not in an ExceptionGroup."""
    failure: BaseException | None = None
    try:
        async with anyio.create_task_group() as task_group:
            yield task_group
    except BaseExceptionGroup as group:
        if len(group.exceptions) != 1:  # pragma: no cover (two tasks failing at once)
            raise
        failure = group.exceptions[0]
    if failure is not None:
        # raised outside the except block so that the group is not its __context__
        raise failure


def _produce_sync(
    iterator: Iterator[Any],
    chunks: MemoryObjectSendStream[bytes],
    cancelled: type[BaseException],
) -> None:
    """Iterate a sync producer in this worker thread, and close it here too."""
    try:
        for item in iterator:
            body = _encode_item(item)
            if body and not _hand_over(body, chunks, cancelled):
                break  # the stream is over (or its event loop gone): stop iterating
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def _hand_over(
    body: bytes, chunks: MemoryObjectSendStream[bytes], cancelled: type[BaseException]
) -> bool:
    """Give ``body`` to the stream's event loop from its worker thread; False once it is over.

    Once the response is over, the thread is on its own (abandoned): the channel is closed
    at either end, the hand-over is cancelled with the response, or the loop is gone.
    """
    try:
        try:
            # PERF: a call of send_nowait() costs the event loop less than a task running
            # send(), which is needed only when the buffer is full.
            anyio.from_thread.run_sync(chunks.send_nowait, body)
        except anyio.WouldBlock:
            anyio.from_thread.run(chunks.send, body)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, RuntimeError, cancelled):
        return False
    return True
