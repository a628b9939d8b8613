"""EventSourceResponse: headers, streaming, pings, and the producer closed whatever ends it.

In-process tests drive the response as a server would (a ``receive`` that reports the client
leaving when told, a ``send`` that records, stalls or fails); tests/test_sse_server.py runs the
same through uvicorn.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from types import FrameType
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest

from starling import _shutdown, sse
from starling.applications import Starling
from starling.background import BackgroundTask
from starling.middleware import Middleware
from starling.middleware.gzip import GZipMiddleware
from starling.requests import Request
from starling.routing import Route
from starling.sse import PING, EventSourceResponse, ServerSentEvent
from starling.types import Message, Scope
from tests.types import TestClientFactory

pytestmark = pytest.mark.anyio
START_TIMEOUT = 5  # seconds: every wait below is bounded


class Server:
    """The server side of one request: what was sent, and a client that leaves on demand."""

    def __init__(self, spec_version: str = "2.3") -> None:
        self.sent: list[Message] = []
        self.left = anyio.Event()
        self.body_sent = anyio.Event()
        self.scope: Scope = {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": [],
            "asgi": {"spec_version": spec_version},
        }

    async def receive(self) -> Message:
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body":
            self.body_sent.set()

    @property
    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]

    @property
    def finished(self) -> bool:
        return any(
            m["type"] == "http.response.body" and not m.get("more_body", False) for m in self.sent
        )

    async def run(self, response: EventSourceResponse) -> None:
        with anyio.fail_after(START_TIMEOUT):
            await response(self.scope, self.receive, self.send)

    async def run_until_first_body_then_leave(self, response: EventSourceResponse) -> None:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(self.run, response)
            with anyio.fail_after(START_TIMEOUT):
                await self.body_sent.wait()
            self.left.set()


class Producer:
    """Async and sync generators that record how far they got and whether they were closed."""

    def __init__(self) -> None:
        self.closed = threading.Event()
        self.threads: list[int] = []
        self.cleaned_up = False

    async def endless(self) -> AsyncIterator[Any]:
        try:
            number = 0
            while True:
                yield ServerSentEvent(str(number), id=number)
                number += 1
                await anyio.sleep(0.001)
        finally:
            self.closed.set()

    async def one_then_idle(self) -> AsyncIterator[Any]:
        try:
            yield "first"
            await anyio.sleep_forever()
        finally:
            self.closed.set()

    def sync_endless(self) -> Iterator[Any]:
        try:
            number = 0
            while True:
                self.threads.append(threading.get_ident())
                yield {"data": str(number)}
                number += 1
        finally:
            self.threads.append(threading.get_ident())
            self.closed.set()


def sse_app(make: Callable[[Request], EventSourceResponse], **kwargs: Any) -> Starling:
    async def endpoint(request: Request) -> EventSourceResponse:
        return make(request)

    return Starling(routes=[Route("/", endpoint)], **kwargs)


def test_headers_and_events(test_client_factory: TestClientFactory) -> None:
    async def events() -> AsyncIterator[Any]:
        yield ServerSentEvent("one", event="greeting", id="1")
        yield "two\nlines"
        yield {"data": "three", "retry": 100}
        yield ServerSentEvent()  # nothing on the wire

    client = test_client_factory(sse_app(lambda request: EventSourceResponse(events())))
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-accel-buffering"] == "no"
    assert "connection" not in response.headers
    assert "content-length" not in response.headers
    assert response.content == (
        b"event: greeting\nid: 1\ndata: one\n\n"
        b"data: two\ndata: lines\n\n"
        b"retry: 100\ndata: three\n\n"
    )


def test_headers_given_are_kept(test_client_factory: TestClientFactory) -> None:
    def make(request: Request) -> EventSourceResponse:
        headers = {"Cache-Control": "no-cache", "X-Stream": "yes"}
        return EventSourceResponse(["a"], status_code=201, headers=headers)

    response = test_client_factory(sse_app(make)).get("/")
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-stream"] == "yes"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.text == "data: a\n\n"


def test_a_sync_generator_runs_in_one_worker_thread(
    test_client_factory: TestClientFactory,
) -> None:
    producer = Producer()

    def numbers() -> Iterator[Any]:
        try:
            for number in range(3):
                producer.threads.append(threading.get_ident())
                yield str(number)
        finally:
            producer.threads.append(threading.get_ident())

    client = test_client_factory(sse_app(lambda request: EventSourceResponse(numbers())))
    assert client.get("/").text == "data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert len(set(producer.threads)) == 1
    assert producer.threads[0] != threading.get_ident()


def test_last_event_id_resumes(test_client_factory: TestClientFactory) -> None:
    def make(request: Request) -> EventSourceResponse:
        start = int(request.headers.get("last-event-id", "-1")) + 1
        return EventSourceResponse(ServerSentEvent(str(n), id=n) for n in range(start, 3))

    client = test_client_factory(sse_app(make))
    assert client.get("/").text.count("data:") == 3
    assert client.get("/", headers={"Last-Event-ID": "1"}).text == "id: 2\ndata: 2\n\n"


def test_head_sends_no_events_and_closes_the_producer(
    test_client_factory: TestClientFactory,
) -> None:
    producer = Producer()
    closed: list[str] = []
    closable = _Closable(iter(["never"]), lambda: closed.append("closed"))

    async def make_async(request: Request) -> EventSourceResponse:
        return EventSourceResponse(producer.endless())

    async def make_sync(request: Request) -> EventSourceResponse:
        return EventSourceResponse(closable)

    async def make_async_iterable(request: Request) -> EventSourceResponse:
        return EventSourceResponse(_AsyncIterable())

    async def make_list(request: Request) -> EventSourceResponse:
        return EventSourceResponse(["x"])

    routes = [Route("/a", make_async), Route("/s", make_sync), Route("/l", make_list)]
    client = test_client_factory(Starling(routes=[*routes, Route("/i", make_async_iterable)]))
    assert client.get("/i").text == "data: event\n\n"
    for path in ("/a", "/s", "/l", "/i"):
        response = client.head(path)
        assert response.status_code == 200
        assert response.content == b""
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert not producer.closed.is_set()  # never started: aclose() of a fresh generator is a no-op
    assert closed == ["closed"]
    assert list(closable) == ["never"]  # never advanced


class _AsyncIterable:
    """An async iterable that is not an async generator (nothing to close)."""

    def __aiter__(self) -> AsyncIterator[str]:
        return self.events()

    async def events(self) -> AsyncIterator[str]:
        yield "event"


class _Closable:
    """An iterator whose close() is observable."""

    def __init__(self, iterator: Iterator[str], close: Callable[[], None]) -> None:
        self.iterator = iterator
        self.close = close  # never called while the iterator runs: no thread-safety needed

    def __iter__(self) -> Iterator[str]:
        return self.iterator


@pytest.mark.parametrize("content", ["text", b"bytes", {"data": "x"}, 5])
def test_content_must_be_an_iterable_of_events(content: Any) -> None:
    with pytest.raises(TypeError, match="content must be an iterable or async iterable"):
        EventSourceResponse(content)


@pytest.mark.parametrize("name", ["ping", "send_timeout"])
@pytest.mark.parametrize("value", [0, -1, True, "5"])
def test_intervals_must_be_positive(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"{name} must be a number of seconds above 0"):
        EventSourceResponse([], **{name: value})


async def test_pings_while_the_producer_is_idle() -> None:
    producer = Producer()
    server = Server()
    response = EventSourceResponse(producer.one_then_idle(), ping=0.01)
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(server.run, response)
        with anyio.fail_after(START_TIMEOUT):
            while server.bodies.count(PING) < 3:
                await anyio.sleep(0.01)
        server.left.set()
    assert server.bodies[0] == b"data: first\n\n"
    assert set(server.bodies[1:]) == {PING}
    assert producer.closed.is_set()


async def test_no_pings_while_events_flow() -> None:
    producer = Producer()
    server = Server()
    response = EventSourceResponse(producer.endless(), ping=60)
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(server.run, response)
        with anyio.fail_after(START_TIMEOUT):
            while len(server.bodies) < 20:
                await anyio.sleep(0.01)
        server.left.set()
    assert PING not in server.bodies


@pytest.mark.parametrize("callback", ["sync", "async", None])
async def test_a_client_that_leaves_closes_the_producer(callback: str | None) -> None:
    producer = Producer()
    server = Server()
    calls: list[str] = []
    ran: list[str] = []

    def on_disconnect() -> None:
        calls.append("sync")

    async def on_disconnect_async() -> None:
        await anyio.sleep(0)
        calls.append("async")

    handlers = {"sync": on_disconnect, "async": on_disconnect_async, None: None}
    response = EventSourceResponse(
        producer.endless(),
        on_disconnect=handlers[callback],
        background=BackgroundTask(ran.append, "background"),
    )
    await server.run_until_first_body_then_leave(response)
    assert producer.closed.is_set()
    assert not server.finished  # the client is gone: no closing chunk
    assert calls == ([] if callback is None else [callback])
    assert ran == ["background"]


async def test_a_sync_producer_is_closed_in_its_own_thread() -> None:
    producer = Producer()
    server = Server()
    await server.run_until_first_body_then_leave(EventSourceResponse(producer.sync_endless()))
    assert await anyio.to_thread.run_sync(producer.closed.wait, START_TIMEOUT)
    assert len(set(producer.threads)) == 1
    assert producer.threads[0] != threading.get_ident()


async def test_a_blocked_sync_producer_does_not_hold_the_response() -> None:
    release = threading.Event()
    threads: list[int] = []
    closed = threading.Event()

    def blocking() -> Iterator[str]:
        try:
            threads.append(threading.get_ident())
            yield "first"
            release.wait(START_TIMEOUT)  # blocks its worker thread: cannot be interrupted
            threads.append(threading.get_ident())
            yield "second"  # the stream is over by then: the thread stops here
        finally:
            threads.append(threading.get_ident())
            closed.set()

    server = Server()
    await server.run_until_first_body_then_leave(EventSourceResponse(blocking()))
    # The response is over while the producer's thread is still blocked in it...
    assert not closed.is_set()
    release.set()
    # ...and once it returns, it is closed in that same thread, never advanced past "second".
    assert await anyio.to_thread.run_sync(closed.wait, START_TIMEOUT)
    assert len(threads) == 3 and len(set(threads)) == 1
    assert server.bodies == [b"data: first\n\n"]


async def test_a_slow_client_is_dropped_after_send_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = Producer()
    server = Server()
    calls: list[str] = []

    async def stalled_send(message: Message) -> None:
        server.sent.append(message)
        if message["type"] == "http.response.body":
            await anyio.sleep_forever()  # a client that stopped reading

    response = EventSourceResponse(
        producer.endless(), send_timeout=0.05, on_disconnect=lambda: calls.append("gone")
    )
    with caplog.at_level(logging.INFO, logger="starling.sse"), anyio.fail_after(START_TIMEOUT):
        await response(server.scope, server.receive, stalled_send)
    assert producer.closed.is_set()
    assert calls == ["gone"]
    assert "one send took over 0.05s" in caplog.text
    assert not server.finished


async def test_asgi_2_4_send_errors_mean_the_client_left() -> None:
    producer = Producer()
    server = Server(spec_version="2.4")

    async def failing_send(message: Message) -> None:
        if message["type"] == "http.response.body":
            raise OSError("connection lost")
        server.sent.append(message)

    with anyio.fail_after(START_TIMEOUT):
        await EventSourceResponse(producer.endless())(server.scope, server.receive, failing_send)
    assert producer.closed.is_set()


@pytest.mark.parametrize("ping", [15, None])
async def test_a_failing_producer_is_closed_and_its_error_raised(ping: float | None) -> None:
    closed: list[str] = []

    async def failing() -> AsyncIterator[str]:
        try:
            yield "ok"
            raise LookupError("boom")
        finally:
            closed.append("closed")

    server = Server()
    with pytest.raises(LookupError, match="boom"):
        await server.run(EventSourceResponse(failing(), ping=ping))
    assert closed == ["closed"]
    assert server.bodies == [b"data: ok\n\n"]
    assert not server.finished  # a truncated stream must not look complete


async def test_a_bad_item_closes_the_producer() -> None:
    closed: list[str] = []

    def bad() -> Iterator[Any]:
        try:
            yield b"not an event"
        finally:
            closed.append("closed")

    with pytest.raises(TypeError, match="not bytes"):
        await Server().run(EventSourceResponse(bad()))
    assert closed == ["closed"]


async def test_a_finished_producer_ends_the_stream_cleanly() -> None:
    server = Server()
    content = iter(["a", ServerSentEvent(), {"data": "b"}])
    await server.run(EventSourceResponse(content, ping=None))
    assert server.bodies == [b"data: a\n\n", b"data: b\n\n", b""]
    assert server.finished


async def test_a_client_gone_before_the_closing_chunk() -> None:
    server = Server(spec_version="2.4")
    calls: list[str] = []

    async def send(message: Message) -> None:
        if message.get("more_body") is False:
            raise OSError("connection lost")
        server.sent.append(message)

    response = EventSourceResponse(["a"], on_disconnect=lambda: calls.append("gone"))
    await response(server.scope, server.receive, send)
    assert server.bodies == [b"data: a\n\n"]
    assert calls == ["gone"]


def test_lifespan_without_open_streams(test_client_factory: TestClientFactory) -> None:
    with test_client_factory(sse_app(lambda request: EventSourceResponse([]))) as client:
        assert client.get("/").text == ""


async def test_async_clean_up_runs_when_closed_at_a_yield(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Closed while suspended at a ``yield``, a producer's finally may await (shielded)."""
    steps: list[str] = []

    async def producer() -> AsyncIterator[str]:
        try:
            while True:
                yield "x"
        finally:
            await anyio.sleep(0.001)
            steps.append("async clean-up done")
            await anyio.sleep_forever()  # clean-up that hangs: cut short after the timeout

    monkeypatch.setattr(sse, "PRODUCER_CLOSE_TIMEOUT", 0.05)
    server = Server()

    async def stalled_send(message: Message) -> None:
        server.sent.append(message)
        if message["type"] == "http.response.body":
            server.body_sent.set()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(
            EventSourceResponse(producer()), server.scope, server.receive, stalled_send
        )
        with anyio.fail_after(START_TIMEOUT):
            await server.body_sent.wait()
            await anyio.sleep(0.01)  # the producer is now waiting at its next yield
            server.left.set()
    assert steps == ["async clean-up done"]


async def test_lifespan_shutdown_ends_open_streams() -> None:
    producer = Producer()
    app = sse_app(lambda request: EventSourceResponse(producer.one_then_idle()))
    server = Server()
    server.scope["app"] = app
    to_app, from_server = anyio.create_memory_object_stream[Message](2)
    from_app: list[Message] = []

    async def lifespan_send(message: Message) -> None:
        from_app.append(message)

    async with to_app, from_server, anyio.create_task_group() as task_group:
        task_group.start_soon(
            app, {"type": "lifespan", "state": {}}, from_server.receive, lifespan_send
        )
        await to_app.send({"type": "lifespan.startup"})
        task_group.start_soon(server.run, app)  # type: ignore[arg-type]
        with anyio.fail_after(START_TIMEOUT):
            await server.body_sent.wait()
        await to_app.send({"type": "lifespan.shutdown"})
    assert producer.closed.is_set()
    assert server.finished  # a clean end: the client reconnects elsewhere
    assert [m["type"] for m in from_app] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]


async def test_lifespan_shutdown_ends_only_its_own_event_loops_streams() -> None:
    with anyio.from_thread.start_blocking_portal() as portal:
        other = portal.call(_open_watch)
        try:
            with _shutdown.ShutdownWatch() as mine:
                _shutdown.lifespan_shutdown()
                assert mine.event.is_set()
            assert not portal.call(other.event.is_set)
        finally:
            other.__exit__()


async def _open_watch() -> _shutdown.ShutdownWatch:
    return _shutdown.ShutdownWatch().__enter__()


def test_a_watch_on_a_closed_event_loop_is_left_alone() -> None:
    watch = anyio.run(_make_watch)
    watch.wake()  # its loop is gone: nothing to do, no error


async def _make_watch() -> _shutdown.ShutdownWatch:
    return _shutdown.ShutdownWatch()


@pytest.fixture
def server_signal_handler() -> Iterator[list[int]]:
    """A server's own SIGTERM handler (as uvicorn installs), restored afterwards."""
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    original = signal.signal(signal.SIGTERM, handler)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, original)


async def test_a_stop_signal_ends_open_streams(server_signal_handler: list[int]) -> None:
    producer = Producer()
    server = Server()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(server.run, EventSourceResponse(producer.one_then_idle()))
        with anyio.fail_after(START_TIMEOUT):
            await server.body_sent.wait()
        # trio's own SIGINT handler is never wrapped (it is put back only if still in place)
        assert not isinstance(signal.getsignal(signal.SIGINT), _shutdown._ChainedHandler)
        signal.raise_signal(signal.SIGTERM)
    assert producer.closed.is_set()
    assert server.finished
    assert server_signal_handler == [signal.SIGTERM]  # the server's own handler still ran

    # While that server is stopping, a stream that starts ends at once.
    late = Server()
    await late.run(EventSourceResponse(Producer().one_then_idle()))
    assert late.bodies == [b""]

    # A server that installs its handlers again starts afresh.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    fresh = Server()
    await fresh.run_until_first_body_then_leave(EventSourceResponse(Producer().one_then_idle()))
    assert fresh.bodies == [b"data: first\n\n"]


def test_default_signal_handlers_are_never_replaced() -> None:
    original = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        _shutdown._install_signal_hooks()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        assert not isinstance(signal.getsignal(signal.SIGINT), _shutdown._ChainedHandler)
    finally:
        signal.signal(signal.SIGTERM, original)


def test_signal_hooks_are_only_installed_from_the_main_thread(
    server_signal_handler: list[int],
) -> None:
    thread = threading.Thread(target=_shutdown._install_signal_hooks)
    thread.start()
    thread.join(START_TIMEOUT)
    assert not isinstance(signal.getsignal(signal.SIGTERM), _shutdown._ChainedHandler)


@pytest.mark.parametrize("excluded", [(), ("image/png",)])
def test_gzip_never_touches_an_event_stream(
    test_client_factory: TestClientFactory, excluded: tuple[str, ...]
) -> None:
    """Even with an exclusion list that leaves it out, an event stream is sent as it is."""
    events = ["x" * 1000, "y" * 1000]
    app = sse_app(
        lambda request: EventSourceResponse(events),
        middleware=[Middleware(GZipMiddleware, minimum_size=10, exclude_content_types=excluded)],
    )
    response = test_client_factory(app).get("/", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in response.headers
    assert response.text == "".join(f"data: {event}\n\n" for event in events)
