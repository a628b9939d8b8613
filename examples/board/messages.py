"""Where the board keeps its messages: in memory (one process), or in Redis (many workers)."""

from __future__ import annotations

import itertools
import json
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Protocol

# The feed shows the newest messages only; older ones fall off (the store stays bounded).
KEEP = 100


@dataclass(frozen=True)
class Message:
    id: int
    author: str
    text: str
    image: str | None  # the uploaded file's name under /uploads, if any

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Message:
        fields: dict[str, Any] = json.loads(raw)
        return cls(**fields)


class MessageStore(Protocol):
    async def add(self, author: str, text: str, image: str | None) -> Message: ...

    async def recent(self, after: int = 0) -> list[Message]:
        """The kept messages newer than ``after``, oldest first."""
        ...


class MemoryMessages:
    def __init__(self) -> None:
        self._messages: deque[Message] = deque(maxlen=KEEP)
        self._ids = itertools.count(1)

    async def add(self, author: str, text: str, image: str | None) -> Message:
        message = Message(next(self._ids), author, text, image)
        self._messages.append(message)
        return message

    async def recent(self, after: int = 0) -> list[Message]:
        return [message for message in self._messages if message.id > after]


class RedisMessages:
    """The same, shared by every worker: a capped list and a counter for the ids."""

    def __init__(self, url: str, prefix: str = "board:") -> None:
        import redis.asyncio
        from redis.driver_info import DriverInfo

        # Told its own version, redis-py does not read it from the package metadata (blocking
        # file reads, on the event loop) for every new connection.
        version = DriverInfo(name="redis-py", lib_version=redis.__version__)
        self._redis = redis.asyncio.Redis.from_url(url, socket_timeout=2, driver_info=version)
        self._list = f"{prefix}messages"
        self._counter = f"{prefix}next-id"

    async def add(self, author: str, text: str, image: str | None) -> Message:
        message = Message(await self._redis.incr(self._counter), author, text, image)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(self._list, message.to_json())
            pipe.ltrim(self._list, -KEEP, -1)
            await pipe.execute()
        return message

    async def recent(self, after: int = 0) -> list[Message]:
        raw = await self._redis.lrange(self._list, 0, -1)
        return [m for m in map(Message.from_json, raw) if m.id > after]

    async def close(self) -> None:
        await self._redis.aclose()
