"""A real uvicorn process on 127.0.0.1 serving an app module written for the test."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def eventually(predicate: Callable[[], bool]) -> bool:
    """True once ``predicate`` is, polling for up to 10 s."""
    return any(_pause() and predicate() for _ in range(500))


def _pause() -> bool:
    time.sleep(0.02)
    return True


class Uvicorn:
    """``app:app`` from ``app_dir``, served until ``stop()``; its output is read at the end."""

    def __init__(self, app_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app:app", "--app-dir", str(app_dir)]
            + ["--host", "127.0.0.1", "--port", str(self.port), "--no-access-log"],
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


def serve(tmp_path: Path, source: str) -> Iterator[Uvicorn]:
    """Serve ``app`` from the module ``source`` until the test ends (killed by its PID)."""
    (tmp_path / "app.py").write_text(source)
    server = Uvicorn(tmp_path)
    try:
        yield server
    finally:
        server.stop()
