"""The TestClient's side of the ASGI lifespan protocol, run in the client's portal."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import anyio

from starling._testclient_http import settle
from starling.types import ASGIApp, Message


class _Ended:
    """Put on the app's message stream when its lifespan call returns or raises."""

    __slots__ = ("error",)

    def __init__(self, error: Exception | None) -> None:
        self.error = error


class LifespanRunner:
    """Runs ``app`` with a lifespan scope and drives startup and shutdown through it."""

    def __init__(self, app: ASGIApp, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state
        self.ended = False
        self.cancel_scope: anyio.CancelScope | None = None
        self._to_app, self._to_app_rx = anyio.create_memory_object_stream[Message](math.inf)
        self._from_app, self._from_app_rx = anyio.create_memory_object_stream[Any](math.inf)

    async def run(self) -> None:
        with anyio.CancelScope() as self.cancel_scope:
            error: Exception | None = None
            try:
                await self.app(
                    {"type": "lifespan", "state": self.state},
                    self._to_app_rx.receive,
                    self._from_app.send,
                )
            except Exception as exc:
                error = exc
            await self._from_app.send(_Ended(error))

    def close(self) -> None:
        """Closes the streams, once the lifespan task has ended."""
        for stream in (self._to_app, self._to_app_rx, self._from_app, self._from_app_rx):
            stream.close()

    def cancel(self) -> None:
        assert self.cancel_scope is not None  # run() started before startup was awaited
        self.cancel_scope.cancel()

    async def wait_startup(self) -> None:
        await self._to_app.send({"type": "lifespan.startup"})
        await self._expect("startup")

    async def wait_shutdown(self) -> None:
        if self.ended:
            return
        await self._to_app.send({"type": "lifespan.shutdown"})
        await self._expect("shutdown")

    async def _expect(self, phase: str) -> None:
        message = await self._from_app_rx.receive()
        if isinstance(message, _Ended):
            # An app that returns instead of answering does not speak the lifespan protocol:
            # go on without it, as servers do (Starlette's client fails with a TypeError here).
            self._end(message)
            return
        kind = message["type"]
        if kind == f"lifespan.{phase}.complete":
            return
        if kind != f"lifespan.{phase}.failed":
            raise RuntimeError(
                f'Expected ASGI message "lifespan.{phase}.complete" or '
                f'"lifespan.{phase}.failed", but got {kind!r}.'
            )
        # Starlette's router sends "failed" and then re-raises the error that caused it:
        # that error says more than the message, so raise it when the app has one.
        await settle()
        with contextlib.suppress(anyio.WouldBlock):
            self._end(self._from_app_rx.receive_nowait())
        reason = message.get("message", "")
        raise RuntimeError(
            f"The app sent lifespan.{phase}.failed" + (f": {reason}" if reason else ".")
        )

    def _end(self, ended: _Ended) -> None:
        self.ended = True
        if ended.error is not None:
            raise ended.error
