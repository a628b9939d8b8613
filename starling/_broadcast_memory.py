"""The ``memory://`` broadcast backend: one process, nothing to install, asyncio and trio."""

from __future__ import annotations

from typing import Any

from anyio.lowlevel import checkpoint

from starling._broadcast_hub import Hub, Receiver


class MemoryBackend:
    def __init__(self, hub: Hub[Any]) -> None:
        self._hub = hub

    async def connect(self) -> None:
        await checkpoint()

    async def disconnect(self) -> None:
        self._hub.close()
        await checkpoint()

    async def publish(self, key: bytes, channel: str, message: str | bytes) -> None:
        self._hub.deliver(key, message)
        # A publisher in a loop still lets the subscribers it woke run (and is cancellable).
        await checkpoint()

    async def subscribe(self, receiver: Receiver[Any], channels: dict[bytes, str]) -> None:
        await checkpoint()  # before adding: a cancelled subscribe leaves nothing behind
        self._hub.add(receiver, channels)

    def unsubscribe(self, receiver: Receiver[Any], keys: list[bytes]) -> None:
        self._hub.remove(receiver, keys)
