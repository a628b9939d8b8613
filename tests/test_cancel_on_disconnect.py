"""``cancel_on_disconnect`` on Route, Router and Starling: the endpoint is cancelled when the
client goes away, its body messages arrive whole and in order, and the read-ahead is bounded."""

from __future__ import annotations

import collections
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from starling._cancel_on_disconnect import READ_AHEAD, CancelOnDisconnect
from starling.applications import Starling
from starling.background import BackgroundTask
from starling.endpoints import HTTPEndpoint
from starling.middleware import Middleware
from starling.requests import Request
from starling.responses import PlainTextResponse, Response
from starling.routing import Mount, Route, Router
from starling.types import ASGIApp, Message, Receive, Scope, Send
from tests.types import TestClientFactory

DISCONNECT: Message = {"type": "http.disconnect"}


class Client:
    """The server's side of one request: the body it has read from a client (handed to the app
    in order), and the disconnect once ``leave()`` is called or the response is complete."""

    def __init__(self, chunks: list[bytes] | None = None, *, endless: int = 0) -> None:
        self.chunks = collections.deque(chunks if chunks is not None else [b""])
        self.endless = endless  # > 0: a body of chunks this size that never ends
        self.handed = 0  # body bytes handed to the app
        self.left = anyio.Event()
        self.sent: list[Message] = []

    def leave(self) -> None:
        self.left.set()

    async def receive(self) -> Message:
        await anyio.lowlevel.checkpoint()
        if self.left.is_set():
            return DISCONNECT  # uvicorn reports a disconnect ahead of unread body
        if self.endless:
            self.handed += self.endless
            return {"type": "http.request", "body": b"x" * self.endless, "more_body": True}
        if self.chunks:
            chunk = self.chunks.popleft()
            self.handed += len(chunk)
            return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}
        await self.left.wait()
        return DISCONNECT

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.leave()  # a complete response: the server's next receive() is the disconnect


def scope(path: str = "/") -> Scope:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }


async def serve(app: ASGIApp, client: Client, path: str = "/") -> None:
    with anyio.fail_after(5):
        await app(scope(path), client.receive, client.send)


async def leave_when_blocked(app: ASGIApp, client: Client, path: str = "/") -> None:
    """Runs the request; once everything waits, the client leaves; returns when the app does."""
    with anyio.fail_after(5):
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(serve, app, client, path)
            await anyio.wait_all_tasks_blocked()
            client.leave()


class Probe:
    """An endpoint that waits forever, noting what ran on the way out."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.release = anyio.Event()

    @contextlib.asynccontextmanager
    async def resource(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            self.events.append("context manager exited")

    async def endpoint(self, request: Request) -> Response:
        try:
            async with self.resource():
                await self.release.wait()
        except anyio.get_cancelled_exc_class():
            self.events.append("cancelled")
            raise
        finally:
            self.events.append("finally")
        return PlainTextResponse("done")


pytestmark = pytest.mark.anyio


# --- cancelled, and nothing sent -------------------------------------------------------------


@pytest.mark.parametrize("where", ["route", "router", "app", "mount"])
async def test_the_endpoint_is_cancelled_when_the_client_leaves(where: str) -> None:
    probe = Probe()
    own = True if where == "route" else None
    routes = [Route("/", probe.endpoint, methods=["POST"], cancel_on_disconnect=own)]
    app: ASGIApp
    if where == "router":
        app = Starling(routes=[Mount("", app=Router(routes, cancel_on_disconnect=True))])
    elif where == "mount":  # the app's default reaches a route in a mounted router
        app = Starling(routes=[Mount("", app=Router(routes))], cancel_on_disconnect=True)
    else:
        app = Starling(routes=routes, cancel_on_disconnect=where == "app")
    client = Client([b"body"])
    await leave_when_blocked(app, client)
    assert probe.events == ["context manager exited", "cancelled", "finally"]
    assert client.sent == []


async def test_without_the_option_the_endpoint_runs_on() -> None:
    probe = Probe()
    route = Route("/", probe.endpoint, methods=["POST"])
    app = Starling(routes=[route])
    client = Client([b"body"])
    with anyio.fail_after(5):
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(serve, app, client)
            await anyio.wait_all_tasks_blocked()
            client.leave()
            await anyio.wait_all_tasks_blocked()
            assert probe.events == []  # still running: nobody watches for the disconnect
            probe.release.set()
    assert probe.events == ["context manager exited", "finally"]
    assert [message["type"] for message in client.sent] == [
        "http.response.start",
        "http.response.body",
    ]


def test_the_default_path_is_untouched() -> None:
    """PERF: without the option, nothing wraps the route or the app: Starling.__call__ keeps
    running a plain Route's endpoint itself (see Router._dispatch)."""

    async def endpoint(request: Request) -> Response:
        raise NotImplementedError  # pragma: no cover (never called)

    plain = Route("/", endpoint)
    assert plain._endpoint is not None and plain._endpoint[0] is plain.app
    assert plain.cancel_on_disconnect is None
    router = Router([plain])
    assert router.middleware_stack == router.app and router._bare_stack is not None
    app = Starling(routes=[plain])
    assert not isinstance(app.build_middleware_stack(), CancelOnDisconnect)
    assert Route("/", endpoint, cancel_on_disconnect=False)._endpoint is not None
    watched = Route("/", endpoint, cancel_on_disconnect=True)
    assert watched._endpoint is None and isinstance(watched.app, CancelOnDisconnect)
    assert isinstance(
        Router([plain], cancel_on_disconnect=True).middleware_stack, CancelOnDisconnect
    )
    assert isinstance(
        Starling(routes=[plain], cancel_on_disconnect=True).build_middleware_stack(),
        CancelOnDisconnect,
    )


async def test_a_route_may_opt_out_of_the_default() -> None:
    probe = Probe()
    seen: list[bool] = []

    async def endpoint(request: Request) -> Response:
        response = await probe.endpoint(request)
        await request.body()  # the messages in order: the body, then the disconnect
        seen.append(await request.is_disconnected())
        assert await request.receive() == await request.receive() == {"type": "http.disconnect"}
        return response

    route = Route("/", endpoint, methods=["POST"], cancel_on_disconnect=False)
    app = Starling(routes=[route], cancel_on_disconnect=True)
    client = Client([b"body"])
    with anyio.fail_after(5):
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(serve, app, client)
            await anyio.wait_all_tasks_blocked()
            client.leave()
            await anyio.wait_all_tasks_blocked()
            probe.release.set()
    assert probe.events == ["context manager exited", "finally"]
    assert seen == [True]  # it learns of the disconnect as from a server
    assert len(client.sent) == 2  # and what it sends goes to the server, as without the option


async def test_an_http_endpoint_class() -> None:
    events: list[str] = []

    class Slow(HTTPEndpoint):
        async def post(self, request: Request) -> Response:
            try:
                await anyio.sleep_forever()
            finally:
                events.append("finally")
            raise AssertionError  # pragma: no cover (cancelled first)

    app = Starling(routes=[Route("/", Slow, cancel_on_disconnect=True)])
    await leave_when_blocked(app, Client())
    assert events == ["finally"]


async def test_middleware_sends_nothing_once_the_client_has_gone() -> None:
    """With the app's default, the watch is outermost: a middleware answering for an app that
    returned without a response is not heard either."""

    class AnswerIfSilent:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            await self.app(scope, receive, send)  # (the endpoint here never responds)
            await PlainTextResponse("silent", status_code=500)(scope, receive, send)

    probe = Probe()
    route = Route("/", probe.endpoint, methods=["POST"], cancel_on_disconnect=True)
    client = Client()
    app = Starling(routes=[route], middleware=[Middleware(AnswerIfSilent)])
    await leave_when_blocked(app, client)
    assert "cancelled" in probe.events
    assert [message["status"] for message in client.sent if "status" in message] == [500]

    client = Client()
    app = Starling(
        routes=[route], middleware=[Middleware(AnswerIfSilent)], cancel_on_disconnect=True
    )
    await leave_when_blocked(app, client)
    assert client.sent == []


# --- a complete response is not cancelled ----------------------------------------------------


async def test_background_tasks_run_after_a_complete_response() -> None:
    done: list[str] = []

    async def later() -> None:
        await anyio.sleep(0.01)  # the disconnect comes while this runs
        done.append("background")

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("ok", background=BackgroundTask(later))

    app = Starling(routes=[Route("/", endpoint, methods=["POST"], cancel_on_disconnect=True)])
    client = Client()
    await serve(app, client)
    assert done == ["background"]
    assert client.sent[-1] == {"type": "http.response.body", "body": b"ok"}


@pytest.mark.parametrize("before_trailers", [True, False])
async def test_a_response_with_trailers_is_complete_after_them(before_trailers: bool) -> None:
    events: list[str] = []
    client = Client()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "trailers": True})
            await send({"type": "http.response.body", "body": b"body"})
            if before_trailers:
                client.leave()
                await anyio.sleep_forever()
            headers = [(b"x-check", b"1")]
            await send(
                {"type": "http.response.trailers", "headers": headers, "more_trailers": True}
            )
            await send({"type": "http.response.trailers", "headers": []})
            client.leave()
            await anyio.sleep(0.01)  # a disconnect after the trailers cancels nothing
            events.append("ran on")
        finally:
            events.append("finally")

    await serve(CancelOnDisconnect(app), client)
    assert events == (["finally"] if before_trailers else ["ran on", "finally"])


async def test_a_streaming_endpoint_is_cancelled_mid_stream() -> None:
    client = Client()
    events: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            index = 0
            while True:
                await send({"type": "http.response.body", "body": b"%d" % index, "more_body": True})
                if index == 2:
                    client.leave()
                await anyio.sleep(0)
                index += 1
        finally:
            events.append("finally")

    await serve(CancelOnDisconnect(app), client)
    assert events == ["finally"]
    assert 4 <= len(client.sent) < 20  # cut short once the disconnect was read


# --- the body: whole, in order, bounded ------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(chunks=st.lists(st.binary(max_size=200), max_size=12), pause=st.booleans())
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_endpoint_reads_every_body_message_in_order(
    backend: str, chunks: list[bytes], pause: bool
) -> None:
    async def endpoint(request: Request) -> Response:
        received: list[bytes] = []
        while True:
            message = await request.receive()
            received.append(message["body"])
            if pause:
                await anyio.sleep(0)  # the reader runs ahead meanwhile
            if not message.get("more_body", False):
                return Response(b"|".join(received))

    app = Starling(routes=[Route("/", endpoint, methods=["POST"], cancel_on_disconnect=True)])
    client = Client(list(chunks) or [b""])

    async def run() -> None:
        await serve(app, client)

    anyio.run(run, backend=backend)
    assert client.sent[1]["body"] == b"|".join(chunks or [b""])


@pytest.mark.parametrize("chunk", [1000, READ_AHEAD // 3, READ_AHEAD * 2])
async def test_the_read_ahead_is_bounded_however_large_the_body(chunk: int) -> None:
    """An endless body, an endpoint that reads it slowly, then not at all: the server never
    hands over more than READ_AHEAD bytes (plus one message) beyond what the endpoint took."""
    client = Client(endless=chunk)
    took = 0
    peaks: list[int] = []

    async def endpoint(request: Request) -> Response:
        nonlocal took
        for _ in range(20):
            message = await request.receive()
            took += len(message["body"])
            for _ in range(50):  # the reader reads as far as it may meanwhile
                await anyio.lowlevel.checkpoint()
            peaks.append(client.handed - took)
        client.leave()
        # With the read-ahead full, the reader waits for the endpoint to read on: only then
        # can it see the disconnect (the ASGI receive() is the only way to learn of it).
        while True:
            await request.receive()

    app = Starling(routes=[Route("/", endpoint, methods=["POST"], cancel_on_disconnect=True)])
    await serve(app, client)
    assert max(peaks) <= READ_AHEAD + chunk
    assert min(peaks) >= min(READ_AHEAD, chunk)  # it did read ahead
    assert took == 20 * chunk
    assert client.sent == []


async def test_a_disconnect_during_the_body_cancels_the_reader_of_it() -> None:
    client = Client(endless=1024)
    read = 0

    async def endpoint(request: Request) -> Response:
        nonlocal read
        async for chunk in request.stream():
            read += len(chunk)
            if read >= 10 * 1024:
                client.leave()
        raise AssertionError  # pragma: no cover (cancelled first)

    app = Starling(routes=[Route("/", endpoint, methods=["POST"], cancel_on_disconnect=True)])
    await serve(app, client)
    assert client.sent == []


# --- errors ----------------------------------------------------------------------------------


async def test_an_endpoint_error_comes_out_as_itself() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("from the endpoint")

    with pytest.raises(ValueError, match="from the endpoint"):
        await serve(CancelOnDisconnect(app), Client())


async def test_a_server_receive_error_reaches_the_endpoints_receive() -> None:
    async def failing() -> Message:
        await anyio.lowlevel.checkpoint()
        raise OSError("connection reset")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        with pytest.raises(OSError, match="connection reset"):
            await receive()
        await PlainTextResponse("handled")(scope, receive, send)

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    with anyio.fail_after(5):
        await CancelOnDisconnect(app)(scope(), failing, send)
    assert sent[-1]["body"] == b"handled"


@pytest.mark.parametrize("scope_type", ["websocket", "lifespan"])
async def test_other_scopes_pass_through(scope_type: str) -> None:
    seen: list[Receive] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(receive)

    client = Client()
    await CancelOnDisconnect(app)({"type": scope_type}, client.receive, client.send)
    assert seen == [client.receive]


async def test_nested_watches_share_one_reader() -> None:
    receives: list[Receive] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        receives.append(receive)
        await PlainTextResponse("ok")(scope, receive, send)

    outer_seen: list[Receive] = []

    async def outer(scope: Scope, receive: Receive, send: Send) -> None:
        outer_seen.append(receive)
        await CancelOnDisconnect(app)(scope, receive, send)

    await serve(CancelOnDisconnect(outer), Client())
    assert receives == outer_seen  # the inner watch passed the reader's receive through


def test_a_bad_option_fails_at_construction() -> None:
    one: Any = 1
    message = r"Route\(cancel_on_disconnect=\.\.\.\) takes True, False or None, not 1\."
    with pytest.raises(TypeError, match=message):
        Route("/", Probe().endpoint, cancel_on_disconnect=one)
    with pytest.raises(
        TypeError, match=r"Router\(cancel_on_disconnect=\.\.\.\) takes True or False"
    ):
        Router(cancel_on_disconnect=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Starling\(cancel_on_disconnect=\.\.\.\)"):
        Starling(cancel_on_disconnect=one)


async def test_an_endpoint_cancelled_while_shielded_is_cancelled_at_its_next_receive() -> None:
    """The disconnect came while the endpoint could not be cancelled: its next receive() is
    where it is, rather than handing it the body still queued (and then the disconnect)."""
    client = Client([b"one", b"two"])
    events: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            with anyio.CancelScope(shield=True):
                client.leave()
                await anyio.sleep(0.01)  # the reader reads on: the disconnect
            events.append("receiving")
            events.append(str(await receive()))
        finally:
            with anyio.CancelScope(shield=True):
                # too late: nothing goes out once the client has gone
                await send({"type": "http.response.start", "status": 500, "headers": []})
            events.append("finally")

    await serve(CancelOnDisconnect(app), client)
    assert events == ["receiving", "finally"]
    assert client.sent == []


def test_requests_through_the_test_client(test_client_factory: TestClientFactory) -> None:
    """Nothing changes for a client that stays: bodies, forms, background tasks."""
    ran: list[str] = []

    async def echo(request: Request) -> Response:
        form = await request.form()
        return PlainTextResponse(
            f"{form['a']} {request.method}", background=BackgroundTask(ran.append, "bg")
        )

    app = Starling(routes=[Route("/", echo, methods=["POST"])], cancel_on_disconnect=True)
    with test_client_factory(app) as client:
        for _ in range(3):
            assert client.post("/", data={"a": "x" * 100_000}).text == "x" * 100_000 + " POST"
    assert ran == ["bg", "bg", "bg"]
