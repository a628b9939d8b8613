"""The in-memory backend: one process, nothing to install, every map bounded.

Entries live in an ``OrderedDict`` with their expiry time (``time.monotonic()``). Reads drop an
expired entry; writes first drop a few expired entries from the front, then, at capacity, the
least recently used one, so memory never exceeds ``max_entries`` entries whatever clients send.
Nothing awaits between reading and writing an entry, so a ``hit`` is atomic on one event loop.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence

from starling._backends.ratelimit import HitResult

# Expired entries dropped from the front on each write: amortised, O(1) per write.
_PURGE_PER_WRITE = 2


class MemoryBackend:
    def __init__(self, max_entries: int) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be a positive int, got {max_entries!r}")
        self.max_entries = max_entries
        self.location = "memory"
        # key -> (expires at, value): a session's bytes or a counter's int
        self._entries: OrderedDict[str, tuple[float, bytes | int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def check_async_library(self) -> None:
        """Any async library will do."""

    async def aclose(self) -> None:
        """Nothing to close."""

    def _live(self, key: str, now: float) -> bytes | int | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._entries[key]
            return None
        return entry[1]

    def _store(self, key: str, expires: float, value: bytes | int, now: float) -> None:
        entries = self._entries
        entries[key] = (expires, value)
        entries.move_to_end(key)
        for _ in range(_PURGE_PER_WRITE):
            first = next(iter(entries.values()))
            if first[0] > now:
                break
            entries.popitem(last=False)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)  # the least recently used

    async def get(self, key: str) -> bytes | None:
        value = self._live(key, time.monotonic())
        if value is None:
            return None
        self._entries.move_to_end(key)
        assert isinstance(value, bytes)
        return value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        now = time.monotonic()
        self._store(key, now + ttl, value, now)

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def hit(
        self, keys: Sequence[str], limits: Sequence[int], windows: Sequence[float]
    ) -> HitResult:
        now = time.monotonic()
        counts: list[int] = []
        resets: list[float] = []
        allowed = True
        for key, limit, window in zip(keys, limits, windows, strict=True):
            entry = self._entries.get(key)
            if entry is None or entry[0] <= now:
                count, reset = 0, window
            else:
                count, reset = int(entry[1]), entry[0] - now
            counts.append(count)
            resets.append(reset)
            allowed = allowed and count < limit
        if allowed:
            for index, key in enumerate(keys):
                counts[index] += 1
                self._store(key, now + resets[index], counts[index], now)
        return HitResult(allowed, counts, resets)
