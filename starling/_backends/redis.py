"""The Redis backend: every worker and machine pointed at one server shares its state.

One client per store (one bounded connection pool), built on first use from a URL, or the
``redis.asyncio.Redis`` you pass (then yours to configure and close; pass the same client to
several stores to share one pool). Every operation is bounded by ``timeout`` seconds (connect
and command); a failure becomes ``StoreUnavailable``
naming the operation and the server, without its password. Nothing is cached about the
server's health: a connection the server dropped (a restart) is retried once on a fresh one,
and when the server answers again the next operation simply works, with no restart.

redis-py's client is asyncio-only: ``check_async_library`` refuses trio with a clear error.
A client made from a URL belongs to the event loop it was first used on; used from another
loop (a test client started again), a new one is made. ``aclose`` (called by the middleware at
lifespan shutdown) closes the connections of a client made from a URL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from starling._backends.asynclib import require_asyncio
from starling._backends.errors import StoreUnavailable
from starling._backends.ratelimit import HitResult

if TYPE_CHECKING:  # pragma: no cover (imports for the type checker only)
    from redis.asyncio import Redis

T = TypeVar("T")

DEFAULT_TIMEOUT = 0.5  # seconds: a Redis on the same network answers in about a millisecond
DEFAULT_MAX_CONNECTIONS = 100
_SCHEMES = ("redis", "rediss", "unix")

# The fixed window of ratelimit.py, atomic on the server. KEYS: the counters; ARGV: each key's
# limit, then each key's window in milliseconds. Returns [allowed, count1, ttl1, count2, ...].
# A key without a TTL (never written by this script) starts a new window, so every counter
# key carries a TTL.
HIT_SCRIPT = """
local n = #KEYS
local allowed = 1
local counts = {}
local ttls = {}
for i = 1, n do
  local ttl = redis.call('PTTL', KEYS[i])
  local count = 0
  if ttl > 0 then
    count = tonumber(redis.call('GET', KEYS[i])) or 0
  else
    ttl = tonumber(ARGV[n + i])
  end
  counts[i] = count
  ttls[i] = ttl
  if count >= tonumber(ARGV[i]) then
    allowed = 0
  end
end
local result = {allowed}
for i = 1, n do
  if allowed == 1 then
    if counts[i] == 0 then
      redis.call('SET', KEYS[i], 1, 'PX', ttls[i])
    else
      redis.call('INCR', KEYS[i])
    end
    counts[i] = counts[i] + 1
  end
  result[2 * i] = counts[i]
  result[2 * i + 1] = ttls[i]
end
return result
"""


def import_redis() -> Any:
    try:
        import redis.asyncio
    except ImportError as exc:  # pragma: no cover (the redis extra is installed for the tests)
        raise ImportError(
            "The Redis stores need redis-py, which is not installed. "
            "Install it with `pip install starling[redis]`."
        ) from exc
    return redis


def safe_location(url: str) -> str:
    """``url`` without its password, for error messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _client_location(client: Any) -> str:
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
    return f"redis://{host}:{port}/{kwargs.get('db', 0)}"


def _driver_info(redis: Any) -> dict[str, Any]:
    """redis-py >= 7 looks its own version up in the installed metadata (file I/O, on the event
    loop) for every new connection unless told it: told here, from ``redis.__version__``."""
    try:
        from redis.driver_info import DriverInfo
    except ImportError:  # pragma: no cover (redis-py < 7 takes its version once, at import)
        return {}
    return {"driver_info": DriverInfo(name="redis-py", lib_version=redis.__version__)}


class RedisBackend:
    def __init__(
        self,
        url_or_client: str | Redis,
        *,
        owner: str,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        redis = import_redis()
        if not (isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0):
            raise ValueError(
                f"{owner}: timeout must be a positive number of seconds, got {timeout!r}"
            )
        if (
            isinstance(max_connections, bool)
            or not isinstance(max_connections, int)
            or max_connections < 1
        ):
            raise ValueError(
                f"{owner}: max_connections must be a positive int, got {max_connections!r}"
            )
        self.owner = owner
        self.timeout = float(timeout)
        self.max_connections = max_connections
        self._redis = redis
        self._loop: asyncio.AbstractEventLoop | None = None
        self._script: Any = None
        if isinstance(url_or_client, str):
            scheme = url_or_client.partition("://")[0]
            if scheme not in _SCHEMES or "://" not in url_or_client:
                raise ValueError(
                    f"{owner}: {safe_location(url_or_client)!r} is not a Redis URL: "
                    "use redis://host:6379/0, rediss:// (TLS) or unix:///path/to/socket"
                )
            self._url: str | None = url_or_client
            self._client: Any = None
            self.location = safe_location(url_or_client)
        elif isinstance(url_or_client, redis.asyncio.Redis):
            self._url = None
            self._client = url_or_client
            self.location = _client_location(url_or_client)
        else:
            raise TypeError(
                f"{owner} takes a Redis URL (str) or a redis.asyncio.Redis client, "
                f"not {type(url_or_client).__name__}"
            )
        self.check_async_library()

    def check_async_library(self) -> None:
        require_asyncio(self.owner)

    def _make_client(self) -> Any:
        redis = self._redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # PERF: the plain pool, not BlockingConnectionPool, whose get_connection runs two
        # asyncio.wait_for (a task each) per command: ~25% more Python calls per GET, measured.
        # At max_connections operations in flight (a Redis far slower than usual), the next
        # one fails at once (StoreUnavailable) instead of queueing: load shedding.
        pool = redis.asyncio.ConnectionPool.from_url(
            self._url,
            **_driver_info(redis),
            max_connections=self.max_connections,
            # PERF: no socket timeout (redis-py's default is 5 s): with one, redis-py wraps
            # every write in asyncio.wait_for, a task per command. _run's asyncio.timeout
            # bounds the whole operation instead; a command cancelled mid-read has its
            # connection dropped by redis-py.
            socket_timeout=None,
            socket_connect_timeout=self.timeout,
            # A pooled connection the server closed (a restart) fails once, then the command
            # runs on a new connection: recovery without an error. Timeouts are not retried.
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        )
        return redis.asyncio.Redis(connection_pool=pool)

    def _current_client(self) -> Any:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.check_async_library()  # raises for trio: the clear message
            raise  # pragma: no cover (an operation always runs inside an event loop)
        if self._url is not None and loop is not self._loop:
            self._client = self._make_client()
            self._loop = loop
            self._script = None
        return self._client

    async def _run(self, what: str, operation: Callable[[Any], Awaitable[T]]) -> T:
        client = self._current_client()
        try:
            async with asyncio.timeout(self.timeout):
                return await operation(client)
        except (self._redis.RedisError, OSError, TimeoutError) as exc:
            detail = str(exc) or type(exc).__name__
            raise StoreUnavailable(
                f"{self.owner}: Redis {what} failed at {self.location} "
                f"(timeout {self.timeout:g} s): {detail}"
            ) from exc

    async def aclose(self) -> None:
        """Close the connections of a client this backend made (a client passed in is left
        to its owner)."""
        client, self._loop = self._client, None
        if self._url is not None and client is not None:
            self._client = None
            await client.aclose(close_connection_pool=True)

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self._run("GET", lambda client: client.get(key))
        return value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        milliseconds = max(1, int(ttl * 1000))
        await self._run("SET", lambda client: client.set(key, value, px=milliseconds))

    async def delete(self, key: str) -> None:
        await self._run("DEL", lambda client: client.delete(key))

    async def hit(
        self, keys: Sequence[str], limits: Sequence[int], windows: Sequence[float]
    ) -> HitResult:
        arguments = [*limits, *(max(1, int(window * 1000)) for window in windows)]

        async def run_script(client: Any) -> list[int]:
            script = self._script
            if script is None:
                script = self._script = client.register_script(HIT_SCRIPT)
            result: list[int] = await script(keys=list(keys), args=arguments)
            return result

        reply = await self._run("rate-limit script", run_script)
        counts = [int(count) for count in reply[1::2]]
        resets = [int(ttl) / 1000 for ttl in reply[2::2]]
        return HitResult(reply[0] == 1, counts, resets)
