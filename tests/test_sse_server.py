"""Event streams through a real uvicorn process on 127.0.0.1, read by a real httpx client:
events arrive one by one, a client that leaves has its producer closed, and a stop signal ends
the open streams so that the worker exits at once."""

from __future__ import annotations

import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._uvicorn import Uvicorn, eventually, serve

APP = textwrap.dedent(
    """
    import threading
    import time

    import anyio

    from starling.applications import Starling
    from starling.responses import JSONResponse
    from starling.routing import Route
    from starling.sse import EventSourceResponse, ServerSentEvent

    state = {"async_closed": 0, "sync_closed": 0, "same_thread": None}


    async def numbers(request):
        async def events():
            try:
                number = int(request.headers.get("last-event-id", "-1")) + 1
                while True:
                    yield ServerSentEvent(str(number), id=number)
                    number += 1
                    await anyio.sleep(0.01)
            finally:
                state["async_closed"] += 1
                print("async producer closed", flush=True)

        return EventSourceResponse(events(), ping=60)


    def sync_numbers(request):
        def events():
            threads = set()
            try:
                for number in range(100000):
                    threads.add(threading.get_ident())
                    yield {"data": f"{number}\\nsecond line", "event": "tick"}
                    time.sleep(0.01)
            finally:
                state["same_thread"] = threads == {threading.get_ident()}
                state["sync_closed"] += 1

        return EventSourceResponse(events())


    async def status(request):
        return JSONResponse(state)


    app = Starling(
        routes=[Route("/numbers", numbers), Route("/sync", sync_numbers), Route("/", status)]
    )
    """
)


@pytest.fixture
def uvicorn_server(tmp_path: Path) -> Iterator[Uvicorn]:
    yield from serve(tmp_path, APP)


def _read_events(lines: Iterator[str], count: int) -> list[list[str]]:
    """The next ``count`` events, as their lines (the app sends no pings in that time)."""
    events: list[list[str]] = []
    event: list[str] = []
    while len(events) < count:
        line = next(lines)
        if line:
            event.append(line)
        else:
            events.append(event)
            event = []
    return events


def test_events_then_the_client_leaves(uvicorn_server: Uvicorn) -> None:
    with httpx.stream("GET", uvicorn_server.url + "/numbers", timeout=5) as response:
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-store"
        events = _read_events(response.iter_lines(), 3)
    assert events == [["id: 0", "data: 0"], ["id: 1", "data: 1"], ["id: 2", "data: 2"]]
    assert eventually(lambda: uvicorn_server.status()["async_closed"] == 1)


def test_resuming_from_the_last_event_id(uvicorn_server: Uvicorn) -> None:
    headers = {"Last-Event-ID": "41"}
    with httpx.stream("GET", uvicorn_server.url + "/numbers", headers=headers) as response:
        assert _read_events(response.iter_lines(), 1) == [["id: 42", "data: 42"]]


def test_a_sync_producer_closed_in_its_thread_when_the_client_leaves(
    uvicorn_server: Uvicorn,
) -> None:
    with httpx.stream("GET", uvicorn_server.url + "/sync", timeout=5) as response:
        events = _read_events(response.iter_lines(), 2)
    assert events[1] == ["event: tick", "data: 1", "data: second line"]
    assert eventually(lambda: uvicorn_server.status()["sync_closed"] == 1)
    assert uvicorn_server.status()["same_thread"] is True


def test_a_stop_signal_ends_open_streams_and_the_worker_exits(
    uvicorn_server: Uvicorn,
) -> None:
    with httpx.stream("GET", uvicorn_server.url + "/numbers", timeout=5) as response:
        lines = response.iter_lines()
        assert _read_events(lines, 1) == [["id: 0", "data: 0"]]
        uvicorn_server.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        # The stream ends cleanly (the final chunk arrives), well before any timeout.
        rest = list(lines)
    assert all(line.startswith(("id: ", "data: ")) for line in rest if line)
    assert time.monotonic() - started < 5
    assert uvicorn_server.process.wait(timeout=10) is not None
    assert "async producer closed" in uvicorn_server.stop()
