"""Sessions and rate limits across processes: the same app in two uvicorn processes on two
ports, sharing one real Redis, spoken to by a real HTTP client (httpx)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from starling.testclient import TestClient
from tests import _multiworker_app
from tests._redis_server import free_port

ROOT = Path(__file__).parent.parent
STARTUP_TIMEOUT = 20.0


def _wait_until_serving(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, "uvicorn exited at startup"
        try:
            httpx.get(url + "/me", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(
        f"uvicorn did not serve {url} within {STARTUP_TIMEOUT} s"
    )  # pragma: no cover


@pytest.fixture(scope="module")
def two_workers(redis_url: str) -> Iterator[tuple[str, str]]:
    env = {
        **os.environ,
        "STARLING_TEST_REDIS_URL": redis_url,
        "STARLING_TEST_PREFIX": f"test:{uuid.uuid4().hex}:",
    }
    processes: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for _ in range(2):
            port = free_port()
            command = [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "tests._multiworker_app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ]
            processes.append(subprocess.Popen(command, cwd=ROOT, env=env))
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, processes, strict=True):
            _wait_until_serving(url, process)
        yield urls[0], urls[1]
    finally:
        for process in processes:  # stopped by PID, each waited for
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover (a worker ignoring SIGTERM)
                process.kill()
                process.wait()


def test_a_session_created_through_one_is_read_through_the_other(
    two_workers: tuple[str, str],
) -> None:
    first, second = two_workers
    login = httpx.post(first + "/login?user=ada")
    cookie = login.cookies["session"]
    me = httpx.get(second + "/me", cookies={"session": cookie})
    assert me.json() == {
        "user": "ada",
        "port": int(first.rsplit(":", 1)[1]),
        "served_by": int(second.rsplit(":", 1)[1]),
    }


def test_a_limit_of_n_allows_exactly_n_across_both(two_workers: tuple[str, str]) -> None:
    limit = _multiworker_app.LIMIT
    urls = [two_workers[n % 2] + "/limited" for n in range(4 * limit)]
    with httpx.Client() as client, ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda url: client.get(url).status_code, urls))
    assert statuses.count(200) == limit
    assert statuses.count(429) == 3 * limit


def test_the_same_app_in_process(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STARLING_TEST_REDIS_URL", redis_url)
    monkeypatch.setenv("STARLING_TEST_PREFIX", f"test:{uuid.uuid4().hex}:")
    app = _multiworker_app.create_app()
    with TestClient(app, backend="asyncio", base_url="http://testserver:8001") as client:
        assert client.post("/login?user=bob").json() == {"user": "bob", "port": 8001}
        assert client.get("/me").json() == {"user": "bob", "port": 8001, "served_by": 8001}
        statuses = [client.get("/limited").status_code for _ in range(_multiworker_app.LIMIT + 1)]
        assert statuses == [200] * _multiworker_app.LIMIT + [429]
