"""Real servers as real processes: start one on a free 127.0.0.1 port, wait until it listens,
stop it by its PID. Every wait is bounded."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent
APPS = Path(__file__).parent / "subprocess_apps"
START_TIMEOUT = 30.0  # a cold interpreter importing FastAPI on a busy 2-core machine
STOP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """True once ``predicate`` is, polling until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def environment(**changes: str | None) -> dict[str, str]:
    """This process's environment with ``changes`` applied (``None`` removes a variable)."""
    env = dict(os.environ)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def running(
    command: Sequence[str | Path], port: int, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` (a server told to listen on ``port``) until the block ends.

    Its output goes to a file, not a pipe: a pipe nobody reads fills up and blocks the server.
    """
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            [str(part) for part in command],
            cwd=ROOT,
            env=dict(env if env is not None else os.environ),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            listening = eventually(
                lambda: process.poll() is not None or _listening(port), START_TIMEOUT
            )
            if process.poll() is not None or not listening:
                stop(process)
                output.seek(0)
                raise AssertionError(f"{command} did not start:\n{output.read().decode()}")
            yield process
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> int:
    """Ask the server to shut down (SIGTERM: daphne ignores SIGINT); SIGKILL it if it has not
    within STOP_TIMEOUT. Returns its exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover - only when a server hangs
            process.kill()
            process.wait(STOP_TIMEOUT)
    return process.returncode
