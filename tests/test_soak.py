"""The soak (tests/_soak.py) in its short version, and the served app it drives, in process.

``make test`` runs it for STARLING_SOAK_SECONDS (default 12 s); ``make soak`` for longer.
What it proves, and each bound, is in docs/security.md ("What the soak proves").
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from starling.websockets import WebSocketDisconnect
from tests._redis_server import free_port
from tests._served_app import EXPECTED_FAILURE, FILE_SIZE, STREAM_CHUNK, app
from tests._soak import (
    ACTORS,
    BOUNDARY,
    FD_SLACK,
    SoakResult,
    actor,
    health_check,
    load,
    multipart,
    run_soak,
)
from tests._uvicorn_process import APP_ERROR, LoggedTraceback, UvicornProcess, tracebacks
from tests.types import TestClientFactory

SOAK_SECONDS = float(os.environ.get("STARLING_SOAK_SECONDS", "12"))
# The server's resident memory may grow by this much from the first quiet moment (after a
# warm-up third of the run) to the last: allocator slack, not a leak. A leak of one cut upload
# (1.5 MiB, rolled over to disk) per round, or of a connection's buffers, passes it within
# seconds.
RSS_GROWTH_BOUND_KIB = 24 * 1024


def test_the_served_app_in_process(test_client_factory: TestClientFactory) -> None:
    with test_client_factory(app) as client:
        assert client.get("/health").text == "ok"
        assert client.get("/json", params={"name": "n"}).json()["name"] == "n"
        assert client.post("/upload", content=b"abc").text == "3"
        body, content_type = multipart(b"x" * 10)
        headers = {"content-type": content_type.partition(b": ")[2].decode()}
        assert client.post("/form", content=body, headers=headers).json() == {
            "field": 5,
            "file": 10,
        }
        assert client.post("/half-read", content=body, headers=headers).text == "10"
        assert client.get("/stream", params={"chunks": 2}).content == STREAM_CHUNK * 2
        assert len(client.get("/file").content) == FILE_SIZE
        assert client.get("/url").json() == {
            "url": "http://testserver/url",
            "host": "testserver",
            "link": "http://testserver/health",
        }
        with pytest.raises(RuntimeError, match=EXPECTED_FAILURE):
            client.get("/fail")
        # The echo endpoint does not catch the close: as with Starlette, the test client raises
        # it (under the server it ends quietly: the soak checks that).
        with pytest.raises(WebSocketDisconnect), client.websocket_connect("/ws") as websocket:
            websocket.send_text("echo")
            assert websocket.receive_text() == "echo"
    assert BOUNDARY in body


def test_the_soak_reports_what_goes_wrong() -> None:
    # Nothing listens on the port: every client and the probe fail, and it is all recorded.
    port = free_port()
    result = SoakResult()

    async def fail_for_a_moment() -> None:
        await health_check(port, result)
        await actor("load", load, port, time.monotonic() + 0.2, result)

    asyncio.run(fail_for_a_moment())
    assert len(result.health_failures) == 1
    assert "ConnectionRefusedError" in result.health_failures[0]
    assert result.failures and all(f.startswith("load: ") for f in result.failures)
    assert result.rounds == {}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the server's /proc")
def test_soak(tmp_path: Path) -> None:
    server = UvicornProcess("tests._served_app:app", tmp_path / "uvicorn.log")
    try:
        result = asyncio.run(run_soak(server.port, server.pid, SOAK_SECONDS))
    finally:
        stopped = server.stop()
    log = server.log()
    report = f"{result}\n--- server log ---\n{log[-20000:]}"
    first, last = result.samples
    # shown by `make soak` (pytest -s)
    print(
        f"\nsoak {SOAK_SECONDS:g}s: {dict(result.rounds)}; RSS {first.rss_kib} -> "
        f"{last.rss_kib} KiB; descriptors {len(first.descriptors)} -> {len(last.descriptors)}"
    )
    assert stopped, report
    assert result.failures == [], report
    assert result.health_failures == [], report
    assert set(result.rounds) == {*ACTORS, "health"}, report
    assert len(last.descriptors) <= len(first.descriptors) + FD_SLACK, report
    assert [target for target in last.descriptors if target.endswith("(deleted)")] == [], report
    assert last.rss_kib - first.rss_kib <= RSS_GROWTH_BOUND_KIB, report
    # The only tracebacks: one per request to the handler that raises on purpose, and uvicorn's
    # own for the invalid UTF-8 frames it refuses (logged by uvicorn, before any app code).
    unexpected = [logged for logged in tracebacks(log) if not expected_traceback(logged)]
    assert unexpected == [], report
    assert log.count(APP_ERROR) == result.rounds["raising handler"], report


def expected_traceback(logged: LoggedTraceback) -> bool:
    if logged.title == f"ERROR:    {APP_ERROR}":
        return logged.exception == f"RuntimeError: {EXPECTED_FAILURE}"
    return (
        logged.title == "ERROR:    Invalid UTF-8 sequence received from client."
        and logged.exception.startswith("UnicodeDecodeError: 'utf-8' codec can't decode")
        and "starling" not in logged.frames
    )
