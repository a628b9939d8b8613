"""A real uvicorn process serving a test app on 127.0.0.1, its log kept for the test to read.

The server runs as a separate process (``python -m uvicorn``) on a free port, so what it logs
("Exception in ASGI application" and the traceback) is exactly what an operator would see, and
its memory and descriptors can be read from ``/proc``. It is stopped by its PID.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests._redis_server import free_port

STARTUP_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
ROOT = Path(__file__).resolve().parent.parent

# Where a traceback starts in the log, and what uvicorn writes above an app's error.
TRACEBACK = "Traceback (most recent call last):"
APP_ERROR = "Exception in ASGI application"
FINISHED = "Finished server process"


class UvicornProcess:
    """``uvicorn <app>`` on 127.0.0.1; ``log()`` is everything it wrote so far."""

    def __init__(self, app: str, log_path: Path, *extra_args: str) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                app,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                "--timeout-graceful-shutdown",
                "5",
                *extra_args,
            ],  # fmt: skip
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.pid = self.process.pid
        self._wait_until_listening()

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            except OSError:
                time.sleep(0.05)
                continue
            return
        self.stop()  # pragma: no cover (a server that did not start)
        raise RuntimeError(f"uvicorn did not start:\n{self.log()}")  # pragma: no cover

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> bool:
        """SIGTERM by PID; whether the server then stopped cleanly within STOP_TIMEOUT (else
        it is killed). uvicorn re-raises the signal once it has shut down: a clean stop exits
        "by SIGTERM", after logging that it finished."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
        try:
            code = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover (a server that hangs on exit)
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait()
            code = -signal.SIGKILL
        self._log.close()
        return code in (0, -signal.SIGTERM) and FINISHED in self.log()


@dataclass(frozen=True)
class LoggedTraceback:
    title: str  # the log line above the traceback ("ERROR:    Exception in ASGI application")
    frames: str  # the frames, as logged
    exception: str  # the exception line that ends it


def tracebacks(log: str) -> list[LoggedTraceback]:
    """Each traceback in ``log``."""
    found = []
    before, *blocks = log.split(TRACEBACK)
    for block in blocks:
        lines = block.splitlines()[1:]
        # The exception line is the first one after the frames that is not indented.
        end = next((i for i, line in enumerate(lines) if line and not line[0].isspace()), None)
        exception = "" if end is None else lines[end]
        found.append(LoggedTraceback(before.rstrip().rsplit("\n", 1)[-1], block, exception))
        before = "\n".join(lines[end + 1 :] if end is not None else [])
    return found


def open_descriptors(pid: int) -> list[str]:
    """What each descriptor of process ``pid`` points to (Linux ``/proc``)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    targets = []
    for fd in fd_dir.iterdir():
        try:
            targets.append(os.readlink(fd))
        except OSError:  # pragma: no cover (closed between listing and reading)
            continue
    return targets


def resident_kib(pid: int) -> int:
    """The resident set size of process ``pid``, in KiB (Linux ``/proc``)."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None, status
    return int(match.group(1))
