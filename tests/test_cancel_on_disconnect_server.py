"""cancel_on_disconnect under a real server: uvicorn in its own process on 127.0.0.1, a real
HTTP client that gives up, and the endpoint seen cancelled (its ``finally`` ran) at once."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import anyio
import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", "tests._disconnect_app:app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/state", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                assert process.poll() is None, "uvicorn exited"
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover (uvicorn stops on SIGTERM)
            process.kill()
            process.wait(timeout=10)


def _state_after_a_moment(url: str) -> dict[str, int]:
    time.sleep(0.02)
    state: dict[str, int] = httpx.get(f"{url}/state", timeout=5).json()
    return state


def test_a_client_that_gives_up_cancels_the_endpoint(server_url: str) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{server_url}/slow", timeout=httpx.Timeout(5, read=0.5))
    gave_up = time.monotonic()
    states = (_state_after_a_moment(server_url) for _ in range(500))  # 10 s at most
    state = next((state for state in states if state["cleaned_up"]), {})
    assert state == {"started": 1, "cleaned_up": 1}
    assert time.monotonic() - gave_up < 10  # cancelled, not left to its 60 s sleep


@pytest.mark.anyio
async def test_the_same_app_in_process() -> None:
    """The served app's endpoints, run here too (the server process's run is not measured)."""
    from starling.testclient import AsyncTestClient
    from tests import _disconnect_app

    async with AsyncTestClient(_disconnect_app.app) as client:
        before = dict(_disconnect_app.state)
        with anyio.move_on_after(0.05):  # the test gives up: the app is cancelled with it
            await client.get("/slow")
        state = (await client.get("/state")).json()
    assert state["started"] == before["started"] + 1
    assert state["cleaned_up"] == before["cleaned_up"] + 1
