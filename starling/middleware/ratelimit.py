"""Rate limiting: ``RateLimitMiddleware`` with ``RateLimit`` rules, in memory or in Redis.

Each rule is a quota (``"100/minute"``) on the requests it matches (a path pattern, methods),
counted per key (the client address by default; an authenticated user, a header, or any
callable). The algorithm is a fixed window per rule and key, started by the key's first
counted request; a refused request counts for nothing. With ``RedisStore`` the check is one Lua
script (one round trip for every rule of the request, atomic on the server), so a limit of N
holds exactly across every worker and machine sharing the Redis.

Responses carry ``RateLimit-Policy`` and ``RateLimit`` (IETF draft-ietf-httpapi-ratelimit-
headers-11); over the limit, ``429`` with ``Retry-After`` and an ``application/problem+json``
body of the draft's ``quota-exceeded`` type. When the store does not answer, ``fail_open=True``
(the default) lets requests through and logs it; ``fail_open=False`` answers ``503``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from starling._backends.errors import StoreUnavailable as StoreUnavailable
from starling._backends.memory import MemoryBackend
from starling._backends.ratelimit import HitResult
from starling._backends.redis import DEFAULT_MAX_CONNECTIONS as _MAX_CONNECTIONS
from starling._backends.redis import DEFAULT_TIMEOUT as _TIMEOUT
from starling._backends.redis import RedisBackend
from starling._utils import get_route_path, is_async_callable
from starling.requests import HTTPConnection
from starling.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:  # pragma: no cover (imports for the type checker only)
    from redis.asyncio import Redis

KeyFunction = Callable[[HTTPConnection], "str | None | Awaitable[str | None]"]

logger = logging.getLogger("starling.middleware.ratelimit")

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
# "100/minute", "100 per minute", "10/5 minutes", "1/second" (case-insensitive)
_LIMIT = re.compile(
    r"\s*([0-9]{1,12})\s*(?:/|per)\s*([0-9]{1,9})?\s*(second|minute|hour|day)s?\s*", re.IGNORECASE
)
# A policy name is a Structured Field String in the headers and part of the store's keys.
_is_policy_name = re.compile(r"[A-Za-z0-9_.-]{1,64}").fullmatch
_QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"
_LOG_EVERY = 10.0  # seconds between two "store unavailable" log lines when failing open


# --- keys -------------------------------------------------------------------------------------


def client_address(connection: HTTPConnection) -> str:
    """The client's IP address (``scope["client"]``: behind a proxy, the real client's only
    once ``ProxyHeadersMiddleware`` or the server's proxy-headers option has set it).
    Requests without one (a Unix socket) share one key."""
    client = connection.scope.get("client")
    return client[0] if client else "unknown"


def authenticated_user(connection: HTTPConnection) -> str | None:
    """The authenticated user's identity (``AuthenticationMiddleware``); None for anonymous
    requests, which the rule then does not count (limit them with another rule)."""
    user = connection.scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    try:
        identity: str = user.identity
    except (AttributeError, NotImplementedError):  # BaseUser leaves identity to subclasses
        identity = user.display_name
    return identity


def header(name: str) -> Callable[[HTTPConnection], str | None]:
    """A key function: the value of request header ``name`` (requests without it are not
    counted by the rule). Only for headers a client cannot choose freely, such as an API key
    checked further in: a client could otherwise send a new value with every request."""
    lowered = name.lower()

    def header_key(connection: HTTPConnection) -> str | None:
        return connection.headers.get(lowered)

    return header_key


# --- rules -----------------------------------------------------------------------------------


class RateLimit:
    """``limit`` requests per window (``"100/minute"``, ``"5 per second"``, ``"1000/day"``,
    ``"10/5 minutes"``) for the requests that match ``path`` (``*`` matches anything, ``/`` too;
    every path when None) and ``methods`` (every method when None), counted per ``key`` (the
    middleware's when None). ``name`` names the policy in the headers (and the store's keys)."""

    def __init__(
        self,
        limit: str,
        *,
        path: str | None = None,
        methods: Sequence[str] | None = None,
        key: KeyFunction | None = None,
        name: str | None = None,
    ) -> None:
        match = _LIMIT.fullmatch(limit) if isinstance(limit, str) else None
        if match is None:
            raise ValueError(
                f"RateLimit: {limit!r} is not a limit; write it as '100/minute', '5 per second' "
                "or '10/5 minutes' (units: second, minute, hour, day)"
            )
        count, multiple, unit = match.groups()
        self.limit = int(count)
        self.window = int(multiple or 1) * _UNITS[unit.lower()]
        if self.limit < 1 or self.window < 1:
            raise ValueError(f"RateLimit: {limit!r} allows nothing; use a positive number")
        if path is not None and not path.startswith("/"):
            raise ValueError(f"RateLimit: path {path!r} must start with '/'")
        self.path = path
        self._path_match = (
            None
            if path is None
            else re.compile(".*".join(re.escape(part) for part in path.split("*"))).fullmatch
        )
        self.methods = None if methods is None else frozenset(m.upper() for m in methods)
        self.key = key
        self._key_is_async = key is not None and is_async_callable(key)
        if name is None:
            name = f"{self.limit}-per-{int(multiple or 1)}-{unit.lower()}"
            if multiple is None or multiple == "1":
                name = f"{self.limit}-per-{unit.lower()}"
        if not _is_policy_name(name):
            raise ValueError(
                f"RateLimit: name {name!r} must be 1 to 64 letters, digits, '_', '.' or '-'"
            )
        self.name = name
        self.policy = f'"{name}";q={self.limit};w={self.window}'

    def __repr__(self) -> str:
        return f"RateLimit({self.limit}/{self.window}s, path={self.path!r}, name={self.name!r})"

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return self._path_match is None or self._path_match(path) is not None


# --- stores ----------------------------------------------------------------------------------


class _CounterStore:
    def __init__(self, backend: MemoryBackend | RedisBackend, prefix: str) -> None:
        self.backend = backend
        self.prefix = prefix

    async def hit(
        self, keys: Sequence[str], limits: Sequence[int], windows: Sequence[float]
    ) -> HitResult:
        return await self.backend.hit([self.prefix + key for key in keys], limits, windows)

    def check_async_library(self) -> None:
        self.backend.check_async_library()

    async def aclose(self) -> None:
        await self.backend.aclose()


class MemoryStore(_CounterStore):
    """Counters in this process's memory: at most ``max_keys`` (the least recently counted
    dropped first, each dropped when its window ends). One process only: with several
    workers, each would allow the full limit; use ``RedisStore``."""

    def __init__(self, max_keys: int = 100_000) -> None:
        super().__init__(MemoryBackend(max_keys), prefix="")


class RedisStore(_CounterStore):
    """Counters in Redis, shared by every worker: one Lua script per request (atomic), each
    key with its window as TTL. ``url_or_client`` as for the session ``RedisStore``; every
    operation gives up after ``timeout`` seconds. asyncio only."""

    def __init__(
        self,
        url_or_client: str | Redis,
        prefix: str = "starling:ratelimit:",
        *,
        timeout: float = _TIMEOUT,
        max_connections: int = _MAX_CONNECTIONS,
    ) -> None:
        backend = RedisBackend(
            url_or_client, owner="RedisStore", timeout=timeout, max_connections=max_connections
        )
        super().__init__(backend, prefix)


# --- the middleware --------------------------------------------------------------------------


class RateLimitMiddleware:
    """Count each HTTP request against the rules it matches; refuse it with 429 over a limit."""

    def __init__(
        self,
        app: ASGIApp,
        rules: Sequence[RateLimit],
        *,
        store: MemoryStore | RedisStore | None = None,
        key: KeyFunction = client_address,
        fail_open: bool = True,
    ) -> None:
        rules = list(rules)
        if not rules or not all(isinstance(rule, RateLimit) for rule in rules):
            raise TypeError("rules must be a non-empty list of RateLimit(...)")
        names = [rule.name for rule in rules]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(
                f"RateLimit names must differ (they name the policies and their counters): "
                f"{', '.join(duplicates)}; give the rules name=..."
            )
        if store is None:
            store = MemoryStore()
        elif not isinstance(store, _CounterStore):
            raise TypeError(
                "store must be starling.middleware.ratelimit.MemoryStore or RedisStore, "
                f"not {type(store).__name__}"
            )
        store.check_async_library()
        self.app = app
        self.rules = rules
        self.store = store
        self.key = key
        self._key_is_async = is_async_callable(key)
        self.fail_open = fail_open
        self._next_log = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type != "http":
            if scope_type == "lifespan":
                await self._lifespan(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        method = scope["method"]
        path = get_route_path(scope)
        matched = [rule for rule in self.rules if rule.matches(method, path)]
        if not matched:
            await self.app(scope, receive, send)
            return
        applied, keys = await self._keys(scope, matched)
        if not applied:
            await self.app(scope, receive, send)
            return
        try:
            result = await self.store.hit(
                keys, [rule.limit for rule in applied], [rule.window for rule in applied]
            )
        except StoreUnavailable as exc:
            if self.fail_open:
                self._log_unavailable(exc)
                await self.app(scope, receive, send)
            else:
                logger.error("Rate-limit store unavailable, request refused: %s", exc)
                await _send_unavailable(send)
            return
        headers = _headers(applied, result)
        if not result.allowed:
            await _send_too_many(send, applied, result, headers)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _keys(
        self, scope: Scope, matched: list[RateLimit]
    ) -> tuple[list[RateLimit], list[str]]:
        connection = HTTPConnection(scope)
        applied: list[RateLimit] = []
        keys: list[str] = []
        for rule in matched:
            if rule.key is None:
                value = self.key(connection)
                if self._key_is_async:
                    value = await value  # type: ignore[misc]
            else:
                value = rule.key(connection)
                if rule._key_is_async:
                    value = await value  # type: ignore[misc]
            if value is None:
                continue
            if not isinstance(value, str):
                raise TypeError(
                    f"The key function of rate limit {rule.name!r} returned "
                    f"{type(value).__name__}: it must return a str, or None to skip the rule"
                )
            applied.append(rule)
            # APPSEC: the client-chosen part of the key is hashed: fixed length whatever was
            # sent, and no key of one rule can be written to look like another rule's.
            digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=16)
            keys.append(f"{rule.name}:{digest.hexdigest()}")
        return applied, keys

    def _log_unavailable(self, exc: StoreUnavailable) -> None:
        now = time.monotonic()
        if now >= self._next_log:
            self._next_log = now + _LOG_EVERY
            logger.warning("Rate-limit store unavailable, requests let through: %s", exc)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the store can run here at startup; close its connections at shutdown."""

        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.store.aclose()
            await send(message)

        try:
            self.store.check_async_library()
        except RuntimeError as exc:  # the server reports it and does not start
            await receive()  # lifespan.startup
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await self.app(scope, receive, lifespan_send)


def _headers(rules: list[RateLimit], result: HitResult) -> list[tuple[bytes, bytes]]:
    policies = ", ".join(rule.policy for rule in rules)
    limits = ", ".join(
        f'"{rule.name}";r={max(0, rule.limit - count)};t={math.ceil(reset)}'
        for rule, count, reset in zip(rules, result.counts, result.resets, strict=True)
    )
    return [(b"ratelimit-policy", policies.encode()), (b"ratelimit", limits.encode())]


async def _send_too_many(
    send: Send, rules: list[RateLimit], result: HitResult, headers: list[tuple[bytes, bytes]]
) -> None:
    exceeded = [
        (rule, reset)
        for rule, count, reset in zip(rules, result.counts, result.resets, strict=True)
        if count >= rule.limit
    ]
    # Retry-After: not before the end of the longest exceeded window (the draft's advice).
    retry_after = max(math.ceil(reset) for _, reset in exceeded)
    body = json.dumps(
        {
            "type": _QUOTA_EXCEEDED,
            "title": "Too Many Requests",
            "status": 429,
            "detail": f"Rate limit exceeded; retry in {retry_after} s.",
            "violated-policies": [rule.name for rule, _ in exceeded],
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry_after).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_unavailable(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"19"),
                (b"retry-after", b"1"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"Service Unavailable"})
