"""Event streams through a real uvicorn process on 127.0.0.1, read by a real httpx client:
events arrive one by one, a client that leaves has its producer closed, and a stop signal ends
the open streams so that the worker exits at once."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _eventually(predicate: Callable[[], bool]) -> bool:
    """True once ``predicate`` is, polling for up to 10 s."""
    return any(_pause() and predicate() for _ in range(500))


def _pause() -> bool:
    time.sleep(0.02)
    return True


class Uvicorn:
    def __init__(self, app_dir: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app:app", "--app-dir", str(app_dir)]
            + ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "info"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        # uvicorn logs this line once it listens (the read ends at EOF if it fails to start)
        started = next((line for line in self.process.stdout if "Uvicorn running on" in line), "")
        assert started, "uvicorn did not start"

    def status(self) -> dict[str, object]:
        result: dict[str, object] = httpx.get(self.url + "/", timeout=5).json()
        return result

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.kill()
        output, _ = self.process.communicate(timeout=10)
        return output


@pytest.fixture
def uvicorn_server(tmp_path: Path) -> Iterator[Uvicorn]:
    (tmp_path / "app.py").write_text(APP)
    server = Uvicorn(tmp_path)
    try:
        yield server
    finally:
        server.stop()


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
    assert _eventually(lambda: uvicorn_server.status()["async_closed"] == 1)


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
    assert _eventually(lambda: uvicorn_server.status()["sync_closed"] == 1)
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
