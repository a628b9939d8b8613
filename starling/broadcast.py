"""Publish/subscribe across the tasks of one process (``memory://``) or across processes and
machines (``redis://``): ``Broadcast``, its ``Subscriber`` queues and their ``Event`` items.

Each subscriber has a bounded queue with an overflow policy, so a slow client never makes
memory grow without bound; channel names are literal (never patterns); messages are ``str``
or ``bytes`` up to ``max_message_size``. See docs/broadcast.md.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Literal

import anyio
from anyio.lowlevel import checkpoint

from starling._broadcast_hub import Hub
from starling._broadcast_redis import RedisUnavailable, redacted

if TYPE_CHECKING:
    from starling._broadcast_memory import MemoryBackend
    from starling._broadcast_redis import RedisBackend

Overflow = Literal["drop_oldest", "drop_newest", "disconnect"]

DEFAULT_MAX_QUEUE = 100
DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024
DEFAULT_TIMEOUT = 2.0
DEFAULT_HEALTH_CHECK_INTERVAL = 15.0
# APPSEC: a channel name often comes from the client (a room in the URL); Redis would take up
# to 512 MB. Names are identifiers, so a generous fixed bound costs nothing legitimate.
MAX_CHANNEL_BYTES = 1024

_OVERFLOW_POLICIES = ("drop_oldest", "drop_newest", "disconnect")
_REDIS_SCHEMES = ("redis", "rediss")


class BroadcastError(Exception):
    """Base class of the errors raised by ``Broadcast`` and its subscribers."""


class BroadcastUnavailable(BroadcastError):
    """The backend (Redis) could not be reached, or did not answer within ``timeout``."""


class SubscriberOverflow(BroadcastError):
    """Raised to a subscriber with ``overflow="disconnect"`` whose queue overflowed."""


class Event:
    """One message received on ``channel``: ``message`` as text, ``data`` as bytes."""

    __slots__ = ("_data", "_text", "channel")

    def __init__(self, channel: str, message: str | bytes) -> None:
        self.channel = channel
        self._text: str | None = message if isinstance(message, str) else None
        self._data: bytes | None = message if isinstance(message, bytes) else None

    @property
    def message(self) -> str:
        """The message as text (UTF-8); ``ValueError`` if it was published as other bytes."""
        if self._text is None:
            assert self._data is not None
            try:
                self._text = self._data.decode()
            except UnicodeDecodeError:
                raise ValueError(
                    f"The message on channel {_shown(self.channel)} is not UTF-8 text; "
                    "read event.data for its bytes."
                ) from None
        return self._text

    @property
    def data(self) -> bytes:
        """The message as bytes (text is encoded as UTF-8)."""
        if self._data is None:
            assert self._text is not None
            self._data = self._text.encode()
        return self._data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return self.channel == other.channel and self.data == other.data

    def __hash__(self) -> int:
        return hash((self.channel, self.data))

    def __repr__(self) -> str:
        shown = self._text if self._text is not None else self._data
        return f"Event(channel={self.channel!r}, message={shown!r})"


class Subscriber:
    """The events of one ``subscribe()``: ``async for event in subscriber``.

    Holds at most ``max_queue`` events not yet read. When one more arrives, ``overflow``
    decides: ``"drop_oldest"`` discards the oldest queued event, ``"drop_newest"`` discards the
    arriving one (both count it in ``dropped``), ``"disconnect"`` discards the queue and ends
    the iteration with ``SubscriberOverflow``. Iteration stops when the subscription ends (its
    ``async with`` block is left, or the broadcast disconnects).
    """

    def __init__(self, channels: tuple[str, ...], max_queue: int, overflow: Overflow) -> None:
        self.channels = channels
        self.max_queue = max_queue
        self.overflow = overflow
        self.dropped = 0
        self._queue: deque[Event] = deque()
        self._wakeup: anyio.Event | None = None
        self._ended = False
        self._error: BaseException | None = None

    @property
    def pending(self) -> int:
        """How many events are queued, not yet read."""
        return len(self._queue)

    def __aiter__(self) -> Subscriber:
        return self

    async def __anext__(self) -> Event:
        while not self._queue:
            if self._ended:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            if self._wakeup is None:
                self._wakeup = anyio.Event()
            await self._wakeup.wait()
        # A consumer that always finds events waiting still lets other tasks run.
        await checkpoint()
        return self._queue.popleft()

    def _deliver(self, event: Event) -> None:
        if self._ended:
            return
        queue = self._queue
        if len(queue) >= self.max_queue:
            self.dropped += 1
            if self.overflow == "drop_newest":
                return
            if self.overflow == "disconnect":
                queue.clear()
                self._end(
                    SubscriberOverflow(
                        f"The subscriber to {', '.join(map(_shown, self.channels))} fell "
                        f"{self.max_queue} events behind and was disconnected "
                        '(overflow="disconnect").'
                    )
                )
                return
            queue.popleft()
        queue.append(event)
        self._wake()

    def _end(self, error: BaseException | None) -> None:
        if not self._ended:
            self._ended = True
            self._error = error
            self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None


class Broadcast:
    """Channels that any task (``memory://``) or process (``redis://``) can publish to.

    Connect it in the app's lifespan (``async with broadcast:``, or ``connect()`` and
    ``disconnect()``). The Redis backend needs the ``redis`` extra and asyncio: redis-py has no
    trio support, so on trio it fails here (or at ``connect()``) rather than on a request.
    """

    def __init__(
        self,
        url: str = "memory://",
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        overflow: Overflow = "drop_oldest",
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        timeout: float = DEFAULT_TIMEOUT,
        health_check_interval: float = DEFAULT_HEALTH_CHECK_INTERVAL,
    ) -> None:
        scheme, separator, rest = url.partition("://")
        if not separator or scheme not in ("memory", *_REDIS_SCHEMES):
            raise ValueError(
                f"Broadcast URL {url!r} is not supported: use 'memory://' (one process) or "
                "'redis://host:port/db' ('rediss://' for TLS)."
            )
        if scheme == "memory" and rest:
            raise ValueError(f"Broadcast URL {url!r}: 'memory://' takes nothing after '//'.")
        _check_queue(max_queue, overflow)
        _check_limits(max_message_size, timeout, health_check_interval)
        self.url = url
        self.max_queue = max_queue
        self.overflow = overflow
        self.max_message_size = max_message_size
        self.timeout = timeout
        self.health_check_interval = health_check_interval
        self._redis = scheme != "memory"
        if self._redis:
            _require_redis()
            _refuse_trio()
        self._backend: MemoryBackend | RedisBackend | None = None

    async def connect(self) -> None:
        if self._backend is not None:
            raise BroadcastError("Broadcast.connect(): this broadcast is already connected.")
        hub: Hub[Event] = Hub(Event)
        backend: MemoryBackend | RedisBackend
        if self._redis:
            _refuse_trio()
            from starling._broadcast_redis import RedisBackend

            backend = RedisBackend(
                hub,
                self.url,
                timeout=self.timeout,
                health_check_interval=self.health_check_interval,
            )
        else:
            from starling._broadcast_memory import MemoryBackend

            backend = MemoryBackend(hub)
        self._backend = backend
        await backend.connect()

    async def disconnect(self) -> None:
        """Stop: every subscriber's iteration ends. Harmless when not connected."""
        backend, self._backend = self._backend, None
        if backend is not None:
            await backend.disconnect()

    async def __aenter__(self) -> Broadcast:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    async def publish(self, channel: str, message: str | bytes) -> None:
        """Send ``message`` to every current subscriber of ``channel`` (in every process)."""
        backend = self._connected("publish")
        key = _channel_key(channel)
        _check_message(message, self.max_message_size, channel)
        try:
            await backend.publish(key, channel, message)
        except RedisUnavailable as exc:
            raise self._unavailable(f"publish to channel {_shown(channel)}", exc) from exc

    @asynccontextmanager
    async def subscribe(
        self,
        channel: str,
        *channels: str,
        max_queue: int | None = None,
        overflow: Overflow | None = None,
    ) -> AsyncIterator[Subscriber]:
        """Listen on one or more channels for the duration of the ``async with`` block.

        Once the block is entered, every message published to these channels reaches the
        subscriber (with Redis: the subscription is confirmed by the server first).
        ``max_queue`` and ``overflow`` override the broadcast's defaults for this subscriber.
        """
        backend = self._connected("subscribe")
        keys = {_channel_key(name): name for name in (channel, *channels)}
        queue_size = self.max_queue if max_queue is None else max_queue
        policy = self.overflow if overflow is None else overflow
        _check_queue(queue_size, policy)
        subscriber = Subscriber(tuple(keys.values()), queue_size, policy)
        try:
            await backend.subscribe(subscriber, keys)
        except RedisUnavailable as exc:
            shown = ", ".join(map(_shown, keys.values()))
            raise self._unavailable(f"subscribe to {shown}", exc) from exc
        try:
            yield subscriber
        finally:
            subscriber._end(None)
            backend.unsubscribe(subscriber, list(keys))

    def _connected(self, action: str) -> MemoryBackend | RedisBackend:
        backend = self._backend
        if backend is None:
            raise BroadcastError(
                f"Broadcast.{action}(): the broadcast is not connected. Connect it in the "
                "app's lifespan: `async with broadcast: yield` (or await broadcast.connect())."
            )
        return backend

    def _unavailable(self, action: str, exc: RedisUnavailable) -> BroadcastUnavailable:
        return BroadcastUnavailable(
            f"Broadcast could not {action} (Redis expected at {redacted(self.url)}): {exc}. "
            f"Check that Redis runs there; each operation gives up after timeout={self.timeout}s."
        )

    def __repr__(self) -> str:
        return f"Broadcast({redacted(self.url)!r})"


def _shown(channel: str) -> str:
    """A channel name fit for a message: repr'd (no raw newlines in logs) and cut short."""
    text = repr(channel)
    return text if len(text) <= 80 else f"{text[:60]}...({len(channel)} characters)"


def _channel_key(channel: str) -> bytes:
    if not isinstance(channel, str):
        raise TypeError(f"A channel name is a str, not {type(channel).__name__}.")
    try:
        key = channel.encode()
    except UnicodeEncodeError:
        raise ValueError(
            f"Channel name {_shown(channel)} is not valid Unicode text (lone surrogate)."
        ) from None
    if len(key) > MAX_CHANNEL_BYTES:
        raise ValueError(
            f"Channel name {_shown(channel)} is {len(key)} bytes long; the limit is "
            f"{MAX_CHANNEL_BYTES} bytes (UTF-8)."
        )
    return key


def _check_message(message: str | bytes, limit: int, channel: str) -> None:
    if isinstance(message, str):
        # PERF: UTF-8 takes 1 to 4 bytes a character, so most texts need no encoding to check.
        if len(message) * 4 <= limit:
            return
        try:
            size = len(message.encode())
        except UnicodeEncodeError:
            raise ValueError(
                f"The message for channel {_shown(channel)} is not valid Unicode text."
            ) from None
    elif isinstance(message, bytes):
        size = len(message)
    else:
        raise TypeError(f"A broadcast message is str or bytes, not {type(message).__name__}.")
    if size > limit:
        raise ValueError(
            f"The message for channel {_shown(channel)} is {size} bytes; the limit is "
            f"max_message_size={limit} bytes."
        )


def _check_queue(max_queue: int, overflow: str) -> None:
    if not isinstance(max_queue, int) or max_queue < 1:
        raise ValueError(f"max_queue must be a positive int, not {max_queue!r}.")
    if overflow not in _OVERFLOW_POLICIES:
        raise ValueError(f"overflow must be one of {_OVERFLOW_POLICIES}, not {overflow!r}.")


def _check_limits(max_message_size: int, timeout: float, interval: float) -> None:
    if not isinstance(max_message_size, int) or max_message_size < 1:
        raise ValueError(f"max_message_size must be a positive int, not {max_message_size!r}.")
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}.")
    if not interval > 0:
        raise ValueError(
            f"health_check_interval must be a positive number of seconds, not {interval!r}."
        )


def _require_redis() -> None:
    try:
        import redis.asyncio  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "Broadcast('redis://...') needs redis-py: pip install 'starling[redis]'"
        ) from exc


def _refuse_trio() -> None:
    trio = sys.modules.get("trio")
    if trio is not None and trio.lowlevel.in_trio_run():
        raise RuntimeError(
            "Broadcast('redis://...') needs asyncio: redis-py has no trio support. Run the app "
            "on asyncio, or use Broadcast('memory://') (one process) on trio."
        )
