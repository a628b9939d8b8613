"""Which async library runs the current task, decided without sniffio (not a dependency).

Redis is reached through redis-py's asyncio client, which runs on asyncio only. A store built
for it checks the running library as early as it can know it: when it is constructed inside a
running event loop (Starling builds its middleware stack on the first call, the lifespan
startup), else when the middleware sees the lifespan startup, else on first use.
"""

from __future__ import annotations

import asyncio
import sys


def current_async_library() -> str | None:
    """``"asyncio"``, ``"trio"``, or None when no event loop runs in this thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return "asyncio"
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            pass
        else:
            return "trio"
    return None


def require_asyncio(what: str) -> None:
    """Raise a clear error when a library other than asyncio runs the current task."""
    library = current_async_library()
    if library is not None and library != "asyncio":
        raise RuntimeError(
            f"{what} needs asyncio, but this app runs on {library}: redis-py's client is "
            "asyncio-only. Run the app on asyncio (the default of uvicorn, hypercorn and "
            "granian), or use an in-memory store (or EncryptedCookieStore for sessions)."
        )
