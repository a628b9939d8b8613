"""Compression benchmark: starling's CompressionMiddleware against starlette-compress 2.0.

Both wrap the same bare ASGI app sending a JSON body of 1 KiB, 64 KiB or 1 MiB, both at their
default levels (4 for zstd, brotli and gzip), and are driven directly (no server), in one run,
interleaved: each round times every middleware for the same wall time, in a rotating order.
For each body and coding the table shows the bytes sent, the time per response (the best round:
on a shared machine the other rounds measure the neighbours) and the ratios of the best times to
starlette-compress's (below 1: starling is faster) of starling as
configured by default (bodies of 128 KiB or more compressed in a worker thread) and of starling
never using a thread (as starlette-compress, which blocks the event loop meanwhile). Every
response is decoded and compared with the body before anything is timed.

Run it in the benchmark environment (`make .venv-bench/.installed`): starlette-compress is never
a dependency of starling or of its tests.

    python -m benchmarks.compression [--rounds 7] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import gzip
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import brotli  # type: ignore[import-untyped]
from backports import zstd

from starling.middleware.compression import CompressionMiddleware

App = Callable[..., Any]
SIZES = {"1KiB": 1024, "64KiB": 64 * 1024, "1MiB": 1024 * 1024}
CODINGS: dict[str, Callable[[bytes], bytes]] = {
    "zstd": zstd.decompress,
    "br": brotli.decompress,
    "gzip": gzip.decompress,
    # nothing to compress: what each middleware costs a response by itself
    "identity": bytes,
}
SAMPLE_SECONDS = 0.1  # each middleware's share of a round


def json_body(size: int) -> bytes:
    """A JSON array of records like an API returns, ``size`` bytes long (spaces pad the end)."""
    records = []
    length = 2
    number = 0
    while length < size - 200:
        record = {
            "id": number,
            "name": f"user {number}",
            "email": f"user{number}@example.org",
            "active": number % 3 != 0,
            "score": round(number * 1.37 % 100, 2),
            "tags": ["alpha", "beta", "gamma"][: number % 3 + 1],
        }
        records.append(record)
        length += len(json.dumps(record)) + 2
        number += 1
    body = json.dumps(records).encode()
    return body + b" " * (size - len(body))


def body_app(body: bytes) -> App:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        # a new list per response, as Response objects make (middleware may edit it)
        start = {"type": "http.response.start", "status": 200, "headers": list(headers)}
        await send(start)
        await send({"type": "http.response.body", "body": body})

    return app


def middlewares(body: bytes) -> dict[str, App]:
    from starlette_compress import CompressMiddleware  # the benchmark environment's

    return {
        "starling": CompressionMiddleware(body_app(body)),
        # the same, never handing a body to a worker thread (as starlette-compress never does):
        # the difference is what keeping the event loop free costs one response
        "starling-inline": CompressionMiddleware(body_app(body), thread_minimum_size=1 << 62),
        "starlette-compress": CompressMiddleware(body_app(body)),
    }


async def call(app: App, coding: str) -> tuple[dict[bytes, bytes], bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench"), (b"accept-encoding", coding.encode())],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }
    headers: dict[bytes, bytes] = {}
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}  # never read

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers.update(message["headers"])
        else:
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return headers, b"".join(chunks)


async def timed(app: App, coding: str, min_seconds: float) -> float:
    """Seconds per response, over back-to-back responses for at least ``min_seconds``."""
    gc.collect()
    count = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < min_seconds:
        await call(app, coding)
        count += 1
        elapsed = time.perf_counter() - start
    return elapsed / count


async def main(rounds: int, quick: bool) -> None:
    sample_seconds = SAMPLE_SECONDS / 4 if quick else SAMPLE_SECONDS
    print(f"python {sys.version.split()[0]}, {rounds} rounds; time per response, best round")
    print(
        f"{'body':6} {'coding':5} {'starling':>24} {'starling, no thread':>24} "
        f"{'starlette-compress':>24}  ratios"
    )
    for size_name, size in SIZES.items():
        body = json_body(size)
        apps = middlewares(body)
        names = list(apps)
        for coding, decode in CODINGS.items():
            sizes = {}
            for name, app in apps.items():
                headers, sent = await call(app, coding)
                expected = None if coding == "identity" else coding.encode()
                assert headers.get(b"content-encoding") == expected, (name, headers)
                assert decode(sent) == body, (name, coding)
                sizes[name] = len(sent)
                await timed(app, coding, sample_seconds / 4)  # warm up
            times: dict[str, list[float]] = {name: [] for name in names}
            for round_number in range(rounds):
                shift = round_number % len(names)
                order = names[shift:] + names[:shift]
                for name in order:
                    times[name].append(await timed(apps[name], coding, sample_seconds))
            best = {name: min(times[name]) for name in names}
            cells = [f"{sizes[name]:>9,} B {best[name] * 1e6:>9,.1f} µs" for name in names]
            ratios = " / ".join(
                f"{best[name] / best['starlette-compress']:.2f}x" for name in names[:2]
            )
            print(f"{size_name:6} {coding:5} {' '.join(f'{cell:>24}' for cell in cells)}  {ratios}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="shorter samples")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.quick))
