"""One app under every major ASGI server, each a real process on 127.0.0.1.

The app (tests/subprocess_apps/server_app.py) is written against ``starlette`` and runs on
starling through STARLING_AS_STARLETTE=1, so this is also the unchanged-Starlette-app check for
uvicorn (httptools and h11), hypercorn, granian and daphne. tests/test_server.py drives uvicorn
in-process instead.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

import starling
from tests._processes import APPS, BIN, environment, eventually, free_port, running, stop

SERVERS = {
    "uvicorn-httptools": ["uvicorn", "--http", "httptools", "--port", "{port}", "server_app:app"],
    "uvicorn-h11": ["uvicorn", "--http", "h11", "--port", "{port}", "server_app:app"],
    "hypercorn": ["hypercorn", "--bind", "127.0.0.1:{port}", "server_app:app"],
    "granian": ["granian", "--interface", "asgi", "--port", "{port}", "server_app:app"],
    "daphne": ["daphne", "--bind", "127.0.0.1", "--port", "{port}", "server_app:app"],
}
# the ASGI lifespan protocol is optional for servers; daphne does not implement it
RUNS_LIFESPAN = {name: name != "daphne" for name in SERVERS}
# The close code the app's websocket.disconnect carries after the client closed with 1000.
# hypercorn 0.18 sends 1006 even then (a raw ASGI app sees the same; so does Starlette).
APP_SEES_CLOSE_CODE = {name: 1006 if name == "hypercorn" else 1000 for name in SERVERS}


@dataclass
class Server:
    name: str
    url: str
    shutdown_file: Path
    process: subprocess.Popen[bytes]

    def info(self) -> dict[str, object]:
        response = httpx.get(self.url + "/", timeout=10)
        assert response.status_code == 200
        data: dict[str, object] = response.json()
        return data

    def events(self) -> list[str]:
        events = self.info()["events"]
        assert isinstance(events, list)
        return events


@pytest.fixture(scope="module", params=list(SERVERS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    name: str = request.param
    port = free_port()
    executable, *args = SERVERS[name]
    command: list[str | Path] = [BIN / executable, *(arg.format(port=port) for arg in args)]
    shutdown_file = tmp_path_factory.mktemp(name) / "shutdown"
    env = environment(
        STARLING_AS_STARLETTE="1",
        PYTHONPATH=str(APPS),
        SERVER_APP_SHUTDOWN_FILE=str(shutdown_file),
    )
    with running(command, port, env) as process:
        yield Server(name, f"http://127.0.0.1:{port}", shutdown_file, process)


def test_the_starlette_app_runs_on_starling(server: Server) -> None:
    assert server.info()["starlette_file"] == starling.__file__


def test_keep_alive(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        answers = [client.get("/") for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert {answer.http_version for answer in answers} == {"HTTP/1.1"}
    # one connection served all three: the app saw the same client port each time
    assert len({answer.json()["client_port"] for answer in answers}) == 1


def test_streaming_response(server: Server) -> None:
    with (
        httpx.Client(base_url=server.url, timeout=10) as client,
        client.stream("GET", "/stream", params={"limit": 20}) as response,
    ):
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert "content-length" not in response.headers
        chunks = list(response.iter_bytes())
    assert b"".join(chunks) == b"".join(f"{n}\n".encode() for n in range(20))
    assert len(chunks) > 1  # it arrived as it was produced, not in one piece


def test_ten_mebibyte_upload(server: Server) -> None:
    body = hashlib.shake_256(b"starling").digest(10 * 1024 * 1024)
    response = httpx.post(server.url + "/upload", content=body, timeout=30)
    assert response.status_code == 200
    assert response.json() == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_websocket_exchange_and_clean_close(server: Server) -> None:
    ws_url = server.url.replace("http://", "ws://") + "/echo"
    with connect(ws_url, open_timeout=10, close_timeout=10) as websocket:
        for text in ["hello", "héllo", "x" * 70_000]:
            websocket.send(text)
            assert websocket.recv(timeout=10) == "echo: " + text
    assert websocket.close_code == 1000  # the server answered the close handshake
    expected = f"websocket closed {APP_SEES_CLOSE_CODE[server.name]}"
    assert eventually(lambda: expected in server.events()), server.events()


def test_client_disconnecting_mid_stream_closes_the_producer(server: Server) -> None:
    with (
        httpx.Client(base_url=server.url, timeout=10) as client,
        client.stream("GET", "/stream") as response,
    ):
        lines = response.iter_lines()
        assert [next(lines) for _ in range(3)] == ["0", "1", "2"]
    # leaving the block closed the connection with the producer still going
    assert eventually(lambda: any(event.startswith("producer closed") for event in server.events()))


def test_lifespan_startup_state(server: Server) -> None:
    expected = "lifespan" if RUNS_LIFESPAN[server.name] else None
    assert server.info()["started_by"] == expected


def test_lifespan_shutdown_when_the_server_stops(server: Server) -> None:
    """Last in this module: it stops the server (pytest runs one server's tests in order)."""
    stop(server.process)
    assert server.shutdown_file.exists() is RUNS_LIFESPAN[server.name]
    if RUNS_LIFESPAN[server.name]:
        assert server.shutdown_file.read_text() == "lifespan shutdown ran"


def test_a_server_that_cannot_start_is_reported() -> None:
    port = free_port()
    with pytest.raises(AssertionError, match=r"did not start:\nno app here"):
        code = "import sys; print('no app here'); sys.exit(3)"
        with running([sys.executable, "-c", code], port):
            pass  # pragma: no cover - never reached: running() raises


def test_waiting_is_bounded() -> None:
    assert not eventually(lambda: False, timeout=0.05)
