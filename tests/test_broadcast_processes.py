"""Proof across processes: examples/broadcast_chat.py served by two uvicorn processes on two
ports, sharing one real Redis. Messages posted through one process reach a WebSocket client
and an event-stream client of the other, all of them, in order."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests._redis_server import RedisServer, free_port

ROOT = Path(__file__).parent.parent
STARTUP_TIMEOUT = 20.0


def start_worker(redis_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "examples.broadcast_chat:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],  # fmt: skip
        cwd=ROOT,
        env={**os.environ, "BROADCAST_URL": redis_url},
    )
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            # GET on a POST-only route: any answer means the app is up (lifespan done)
            if httpx.get(f"http://{address}/rooms/probe", timeout=1).status_code == 405:
                return process, address
        except httpx.TransportError:  # pragma: no cover (only while uvicorn starts)
            pass
        if time.monotonic() > deadline or process.poll() is not None:  # pragma: no cover
            stop(process)
            raise RuntimeError(f"uvicorn did not start on {address}")
        time.sleep(0.05)  # pragma: no cover (only while uvicorn starts)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover (a worker that ignores SIGTERM)
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def workers(redis_url: str) -> Iterator[tuple[str, str]]:
    first, first_address = start_worker(redis_url)
    try:
        second, second_address = start_worker(redis_url)
        try:
            yield first_address, second_address
        finally:
            stop(second)
    finally:
        stop(first)


def read_events(stream: Iterator[str], count: int) -> list[str]:
    """``count`` events' data from an event stream (after its ": subscribed" comment)."""
    buffered = ""
    events: list[str] = []
    while len(events) < count:
        buffered += next(stream)
        *complete, buffered = buffered.split("\n\n")
        events.extend(block for block in complete if not block.startswith(":"))
    return [event.removeprefix("data: ") for event in events]


def receive_texts(websocket: ClientConnection, count: int) -> list[str]:
    return [str(websocket.recv(timeout=10)) for _ in range(count)]


def test_messages_cross_from_one_worker_to_the_clients_of_the_other(
    workers: tuple[str, str],
) -> None:
    publishing, listening = workers
    with (
        httpx.Client(timeout=10) as http,
        connect(f"ws://{listening}/rooms/lobby/ws") as listener,
        connect(f"ws://{publishing}/rooms/lobby/ws") as speaker,
        http.stream("GET", f"http://{listening}/rooms/lobby/events") as feed,
    ):
        assert feed.headers["content-type"] == "text/event-stream; charset=utf-8"
        stream = feed.iter_text()
        assert next(stream) == ": subscribed\n\n"  # subscribed (and confirmed by Redis)
        expected = []
        for number in range(10):
            response = http.post(f"http://{publishing}/rooms/lobby", content=f"posted {number}")
            assert response.status_code == 202
            expected.append(f"posted {number}")
        for number in range(10):
            speaker.send(f"said {number}")
            expected.append(f"said {number}")
        assert receive_texts(listener, 20) == expected
        assert read_events(stream, 20) == expected
        # the speaker's own worker relays to it as well
        assert receive_texts(speaker, 20) == expected


def test_rooms_stay_apart_across_workers(workers: tuple[str, str]) -> None:
    publishing, listening = workers
    with (
        connect(f"ws://{listening}/rooms/a*/ws") as pattern_like,
        connect(f"ws://{listening}/rooms/ab/ws") as other,
    ):
        httpx.post(f"http://{publishing}/rooms/ab", content="for ab", timeout=10)
        httpx.post(f"http://{publishing}/rooms/a*", content="for a*", timeout=10)
        assert other.recv(timeout=10) == "for ab"
        assert pattern_like.recv(timeout=10) == "for a*"  # and not "for ab" first


def test_a_worker_rides_out_a_redis_restart(redis_server_factory: type[RedisServer]) -> None:
    """Redis stops: the worker keeps serving (posting answers 503); Redis comes back: the chat
    client that stayed connected receives again, without restarting anything."""
    server = redis_server_factory()
    server.start()
    process, address = start_worker(server.url)
    try:
        with httpx.Client(timeout=10) as http, connect(f"ws://{address}/rooms/r/ws") as listener:
            assert http.post(f"http://{address}/rooms/r", content="before").status_code == 202
            assert listener.recv(timeout=10) == "before"
            server.stop()
            assert http.get(f"http://{address}/").status_code == 200
            assert http.post(f"http://{address}/rooms/r", content="lost").status_code == 503
            server.start()
            deadline = time.monotonic() + 15
            while not delivered(http, address, listener):
                assert time.monotonic() < deadline  # pragma: no cover (only until re-subscribed)
    finally:
        stop(process)


def delivered(http: httpx.Client, address: str, listener: ClientConnection) -> bool:
    """Post once more; True when the listener gets it (its worker has re-subscribed)."""
    if http.post(f"http://{address}/rooms/r", content="after").status_code != 202:
        return False  # pragma: no cover (only while the worker's publishing reconnects)
    try:
        return listener.recv(timeout=0.3) == "after"
    except TimeoutError:  # pragma: no cover (only while the worker re-subscribes)
        return False
