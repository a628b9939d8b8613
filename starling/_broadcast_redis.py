"""The ``redis://`` broadcast backend: Redis pub/sub through redis-py's asyncio API.

One pub/sub connection per ``Broadcast`` (per process), whatever the number of local
subscribers: a channel is SUBSCRIBEd when its first local subscriber arrives and UNSUBSCRIBEd
when its last one leaves; the hub fans each message out. Only SUBSCRIBE is ever used, never
PSUBSCRIBE, so ``*``, ``?`` and ``[`` in a channel name are plain characters.

The connection is kept by one task (``_run``): it connects, subscribes to every channel the
hub holds (plus a private sentinel channel, whose confirmation says "connected"), then reads
until the connection fails, and starts again after a short, growing, jittered pause. So a Redis
restart costs the messages published while it was down (pub/sub keeps nothing) and nothing
else: the subscriptions come back by themselves. SUBSCRIBE and UNSUBSCRIBE commands go through
a queue to a writer task on the same connection, so a subscriber that leaves never waits on the
network (its context exit stays safe under cancellation) and commands keep their order.

``subscribe`` returns only once Redis has confirmed every channel, so a message published
(by any process) after it returns is delivered. redis-py's own retries are off: this module
decides when to reconnect, and an operation fails after ``timeout`` rather than after a chain
of hidden retries.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import anyio

from starling._broadcast_hub import Hub, Receiver

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

logger = logging.getLogger("starling.broadcast")

# The pause before reconnecting starts small (a restart is usually quick) and doubles up to
# the maximum, with jitter so that many workers do not reconnect in lockstep.
RECONNECT_MIN_DELAY = 0.05
RECONNECT_MAX_DELAY = 2.0


class RedisUnavailable(Exception):
    """Internal: a Redis operation failed; the public error is built from it by the caller."""


def redacted(url: str) -> str:
    """``url`` without its password (APPSEC: error messages and logs never carry it)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo = f"{parts.username or ''}:***"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def describe_failure(exc: BaseException) -> str:
    """The innermost useful message of ``exc`` (task groups wrap their failures)."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    if isinstance(exc, TimeoutError) and not str(exc):
        return "it did not answer in time"
    return f"{type(exc).__name__}: {exc}"


def _driver_identity(redis_version: str) -> dict[str, Any]:
    """How the connections name their library (``CLIENT SETINFO``), with the version given.

    Left to itself, redis-py reads its version from the installed package's metadata (blocking
    file I/O on the event loop) each time it opens a connection.
    """
    from starling import __version__

    try:
        from redis.driver_info import DriverInfo
    except ImportError:  # pragma: no cover (redis-py before 7.1 has lib_name and lib_version)
        return {"lib_name": "redis-py", "lib_version": redis_version}
    info = DriverInfo(name="redis-py", lib_version=redis_version)
    return {"driver_info": info.add_upstream_driver("starling", __version__)}


class _Link:
    """One pub/sub connection and what Redis has confirmed on it."""

    def __init__(self, pubsub: PubSub) -> None:
        self.pubsub = pubsub
        self.commands: asyncio.Queue[tuple[str, list[bytes]]] = asyncio.Queue()
        # SUBSCRIBEs sent for a channel and not yet confirmed: a channel is live (its
        # messages reach us) once all are, which keeps an unsubscribe quickly followed by a
        # subscribe correct (Redis answers commands in order).
        self.unconfirmed: dict[bytes, int] = {}
        self.live: set[bytes] = set()
        self.up = False
        self.heard_at = anyio.current_time()

    def request(self, command: str, keys: list[bytes]) -> None:
        if command == "SUBSCRIBE":
            for key in keys:
                self.unconfirmed[key] = self.unconfirmed.get(key, 0) + 1
        else:
            self.live.difference_update(keys)
        self.commands.put_nowait((command, keys))


class RedisBackend:
    def __init__(
        self, hub: Hub[Any], url: str, *, timeout: float, health_check_interval: float
    ) -> None:
        self._hub = hub
        self._url = url
        self.where = redacted(url)
        self._timeout = timeout
        self._health_check_interval = health_check_interval
        # A name no application channel will use: its SUBSCRIBE confirmation means "connected".
        self._sentinel = f"starling:broadcast:{uuid.uuid4().hex}".encode()
        self._client: Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._link: _Link | None = None
        self._changed = asyncio.Event()

    # -- state changes, for the tasks waiting on them

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_until(self, ready: Any) -> None:
        while not ready():
            await self._changed.wait()

    def _connected(self) -> bool:
        return self._link is not None and self._link.up

    # -- lifecycle

    async def connect(self) -> None:
        import redis
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self._client = Redis.from_url(
            self._url,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
            retry=Retry(NoBackoff(), 0),
            client_name="starling-broadcast",
            **_driver_identity(redis.__version__),
        )
        self._task = asyncio.create_task(self._run(), name="starling.broadcast Redis reader")
        with anyio.move_on_after(self._timeout):
            await self._wait_until(self._connected)
        if not self._connected():
            logger.warning(
                "Broadcast could not reach Redis at %s within %ss; it keeps trying in the "
                "background (publish and subscribe fail until it answers).",
                self.where,
                self._timeout,
            )

    async def disconnect(self) -> None:
        assert self._task is not None and self._client is not None
        self._task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.gather(self._task, return_exceptions=True)
            self._hub.close()
            with anyio.move_on_after(self._timeout):
                await self._client.aclose()

    # -- the connection task

    async def _run(self) -> None:
        delay = RECONNECT_MIN_DELAY
        outage = False
        while True:
            assert self._client is not None
            link = _Link(self._client.pubsub())
            try:
                await self._serve(link)
            except Exception as exc:
                failure = describe_failure(exc)
            finally:
                self._link = None
                self._notify()
                with anyio.CancelScope(shield=True), anyio.move_on_after(self._timeout):
                    await link.pubsub.aclose()  # type: ignore[no-untyped-call]
            if link.up:  # it had worked: this is a new outage, and a quick restart is likely
                delay = RECONNECT_MIN_DELAY
                outage = False
            if not outage:
                outage = True
                logger.warning(
                    "Broadcast lost its Redis connection to %s (%s); subscriptions resume "
                    "once Redis answers again, messages published meanwhile are lost.",
                    self.where,
                    failure,
                )
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, RECONNECT_MAX_DELAY)

    async def _serve(self, link: _Link) -> None:
        self._link = link
        link.request("SUBSCRIBE", [self._sentinel, *self._hub.keys()])
        # The first command connects; the reader cannot start before the connection exists.
        await self._send(link, *link.commands.get_nowait())
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._write, link)
            tasks.start_soon(self._watch, link)
            await self._read(link)

    async def _send(self, link: _Link, command: str, keys: list[bytes]) -> None:
        with anyio.fail_after(self._timeout):
            if command == "SUBSCRIBE":
                await link.pubsub.subscribe(*keys)
            elif command == "UNSUBSCRIBE":
                await link.pubsub.unsubscribe(*keys)
            else:
                await link.pubsub.ping()

    async def _write(self, link: _Link) -> None:
        while True:
            await self._send(link, *await link.commands.get())

    async def _read(self, link: _Link) -> None:
        while True:
            message = await link.pubsub.get_message(timeout=None)
            link.heard_at = anyio.current_time()
            kind = message["type"]
            if kind == "message":
                self._hub.deliver(message["channel"], message["data"])
            elif kind == "subscribe":
                self._confirmed(link, message["channel"])

    async def _watch(self, link: _Link) -> None:
        """PING a silent connection: a half-open TCP connection would never report an error."""
        while True:
            await anyio.sleep(self._health_check_interval)
            if anyio.current_time() - link.heard_at < self._health_check_interval:
                continue
            asked_at = anyio.current_time()
            link.commands.put_nowait(("PING", []))
            await anyio.sleep(self._timeout)
            if link.heard_at < asked_at:
                raise TimeoutError(f"no answer to PING within {self._timeout}s")

    def _confirmed(self, link: _Link, key: bytes) -> None:
        left = link.unconfirmed.get(key, 1) - 1
        if left > 0:
            link.unconfirmed[key] = left
            return
        link.unconfirmed.pop(key, None)
        if key == self._sentinel:  # subscribed once per connection: it is up
            link.up = True
            logger.info("Broadcast connected to Redis at %s.", self.where)
        elif key in self._hub:
            link.live.add(key)
        self._notify()

    # -- operations

    async def publish(self, key: bytes, channel: str, message: str | bytes) -> None:
        assert self._client is not None
        data = message.encode() if isinstance(message, str) else message
        try:
            with anyio.fail_after(self._timeout):
                await self._client.publish(key, data)
        except Exception as exc:  # redis-py's errors, OSError, and our own timeout
            raise RedisUnavailable(describe_failure(exc)) from exc

    async def subscribe(self, receiver: Receiver[Any], channels: dict[bytes, str]) -> None:
        new = self._hub.add(receiver, channels)
        link = self._link
        if new and link is not None:
            link.request("SUBSCRIBE", new)

        def all_live() -> bool:
            current = self._link
            return current is not None and all(key in current.live for key in channels)

        try:
            with anyio.move_on_after(self._timeout):
                await self._wait_until(all_live)
            if not all_live():
                if self._connected():
                    raise RedisUnavailable("it did not confirm the subscription in time")
                raise RedisUnavailable("there is no connection to it")
        except BaseException:  # cancelled, or timed out: leave nothing behind
            self.unsubscribe(receiver, list(channels))
            raise

    def unsubscribe(self, receiver: Receiver[Any], keys: list[bytes]) -> None:
        gone = self._hub.remove(receiver, keys)
        link = self._link
        if gone and link is not None:
            link.request("UNSUBSCRIBE", gone)
