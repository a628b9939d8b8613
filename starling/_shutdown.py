"""Telling long-lived responses (event streams) that the server is stopping.

A server stops in two steps: it stops accepting connections and waits for the open ones to
finish, then it runs the lifespan shutdown. An endless stream never finishes, so on its own it
would keep the worker alive until the server's graceful-shutdown timeout (uvicorn has none by
default: it waits forever). Two things end the streams first:

- the stop signal (SIGINT, SIGTERM): when a stream starts in the main thread and the current
  handler for a signal is a server's own Python handler, that handler is wrapped once so the
  signal also wakes every open stream, then runs the server's handler as before. Default
  handlers (``SIG_DFL``, ``SIG_IGN``, Python's KeyboardInterrupt handler) and trio's are
  never replaced: no server is stopping gracefully there, so there is nothing to hook. A
  server that installs its handlers again (a new server in the same process) starts a new
  epoch: a signal sent to an earlier server does not end later streams.
- the lifespan shutdown message, for servers that send it while connections are open: it ends
  the streams of the event loop that runs it (Router.lifespan calls ``lifespan_shutdown``).

Each open stream holds a ``ShutdownWatch``; waking one is thread-safe and signal-safe (it only
schedules ``Event.set`` on the stream's own event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import anyio

_SIGNALS = tuple(
    sig for sig in (getattr(signal, name, None) for name in ("SIGINT", "SIGTERM")) if sig
)
# Handlers that mean "no graceful shutdown here": never wrapped.
_DEFAULT_HANDLERS = (signal.SIG_DFL, signal.SIG_IGN, signal.default_int_handler, None)

# Every open stream's watch, on every event loop of the process. Only ever added to, removed
# from and copied whole with tuple(), each one step under the GIL, so the signal handler never
# sees a set that is being changed.
_watches: set[ShutdownWatch] = set()


class _Epoch:
    """Whether a stop signal arrived since the server's handlers were (re)installed."""

    signalled = False


def _current_loop() -> tuple[object, Callable[[Callable[[], object]], object]]:
    """The running event loop (an identity) and its thread-safe "call soon"."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: trio (anyio runs on nothing else)
        import trio

        token = trio.lowlevel.current_trio_token()
        return token, token.run_sync_soon
    return loop, loop.call_soon_threadsafe


class ShutdownWatch:
    """One open stream's view of the server stopping; use as a context manager."""

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.loop, self._call_soon = _current_loop()

    def __enter__(self) -> ShutdownWatch:
        _watches.add(self)
        _install_signal_hooks()
        if _Epoch.signalled:
            self.event.set()  # the server is already stopping: end at once
        return self

    def __exit__(self, *exc_info: object) -> None:
        _watches.discard(self)

    def wake(self) -> None:
        """Set the event from any thread, or from a signal handler."""
        # A RuntimeError: the stream's event loop is closed, nothing left to end.
        with contextlib.suppress(RuntimeError):
            self._call_soon(self.event.set)


class _ChainedHandler:
    """A server's signal handler, which now also ends the open streams first."""

    def __init__(self, previous: Callable[[int, FrameType | None], Any]) -> None:
        self.previous = previous

    def __call__(self, signum: int, frame: FrameType | None) -> Any:
        _Epoch.signalled = True
        for watch in tuple(_watches):
            watch.wake()
        return self.previous(signum, frame)


def _install_signal_hooks() -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # signals are only delivered to, and handled in, the main thread
    for sig in _SIGNALS:
        current = signal.getsignal(sig)
        if isinstance(current, _ChainedHandler) or current in _DEFAULT_HANDLERS:
            continue
        if getattr(current, "__module__", "").startswith("trio."):
            # trio's own handlers (KeyboardInterrupt delivery, signal receivers) are put back
            # only if still in place when trio.run ends: wrapping one would outlive it.
            continue
        if not callable(current):  # pragma: no cover (getsignal returns a handler or a default)
            continue
        signal.signal(sig, _ChainedHandler(current))
        # A handler we have not wrapped yet: a server (re)installed its own, a new epoch.
        _Epoch.signalled = False


def lifespan_shutdown() -> None:
    """End the streams of the running event loop (called on that loop)."""
    if not _watches:
        return  # PERF: an app without open streams pays nothing
    loop, _ = _current_loop()
    for watch in tuple(_watches):
        if watch.loop is loop:
            watch.event.set()
