"""Disconnects ended quietly, handed to the in-process test clients.

ServerErrorMiddleware ends a WebSocket whose peer left without a traceback: under a real
server, a dropped connection is not an error (docs/security.md). Starlette's test client,
though, sees the WebSocketDisconnect escape the app and raises it when the session closes, and
tests are written for that (``with pytest.raises(WebSocketDisconnect):``, as FastAPI's own
documentation teaches). The test clients run the app inside ``surfacing()``; a disconnect the
middleware ends quietly is noted there and raised to the test as it would have escaped.

A context variable, not a scope key: the app sees exactly the scope a server would send, and
outside a test client (no variable set) nothing is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_noted: ContextVar[list[Exception] | None] = ContextVar("starling_quiet_disconnects", default=None)


def note_quiet_disconnect(exc: Exception) -> None:
    """Called where a disconnect is ended quietly: a test client running the app sees it."""
    noted = _noted.get()
    if noted is not None:
        noted.append(exc)


@contextmanager
def surfacing() -> Iterator[list[Exception]]:
    """Around a test client's call of the app: the disconnects ended quietly within it."""
    noted: list[Exception] = []
    token = _noted.set(noted)
    try:
        yield noted
    finally:
        _noted.reset(token)
