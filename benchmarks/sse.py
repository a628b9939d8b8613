"""Server-Sent Events benchmark: starling's EventSourceResponse against sse-starlette 3.7.

Each response is an ASGI app driven directly (no server) by a client that never leaves, with
the same producer: an async (or sync) generator of N events with a data and an id field. The
case "1 event" measures what opening a stream costs (its tasks and watchers); "1000 events"
measures the cost per event. Both run in one process, interleaved: each round times each
library for the same wall time, in a rotating order. The table shows events per second (median
of the rounds) and the paired ratio starling / sse-starlette (above 1: starling is faster).
Every stream is checked (the events it carries) before anything is timed.

Run it in the benchmark environment (`make .venv-bench/.installed`): sse-starlette is never a
dependency of starling or of its tests.

    python -m benchmarks.sse [--rounds 7] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from starling.sse import EventSourceResponse, ServerSentEvent

SAMPLE_SECONDS = 0.1  # each library's share of a round
DATA = "x" * 80


def _starling(count: int, sync: bool) -> Any:
    if sync:
        return EventSourceResponse(ServerSentEvent(DATA, id=n) for n in range(count))

    async def events() -> AsyncIterator[ServerSentEvent]:
        for n in range(count):
            yield ServerSentEvent(DATA, id=n)

    return EventSourceResponse(events())


def _sse_starlette(count: int, sync: bool) -> Any:
    from sse_starlette import EventSourceResponse as PluginResponse
    from sse_starlette import ServerSentEvent as PluginEvent

    if sync:

        def sync_events() -> Iterator[Any]:
            for n in range(count):
                yield PluginEvent(DATA, id=str(n))

        return PluginResponse(sync_events(), sep="\n")

    async def events() -> AsyncIterator[Any]:
        for n in range(count):
            yield PluginEvent(DATA, id=str(n))

    return PluginResponse(events(), sep="\n")


LIBRARIES: dict[str, Callable[[int, bool], Any]] = {
    "starling": _starling,
    "sse-starlette": _sse_starlette,
}


async def stream(response: Any) -> bytes:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "path": "/",
        "headers": [],
    }
    body: list[bytes] = []
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await never.wait()  # the client stays
        return {"type": "http.disconnect"}  # pragma: no cover

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    await response(scope, receive, send)
    return b"".join(body)


async def timed(library: str, count: int, sync: bool, min_seconds: float) -> float:
    """Events per second, over back-to-back streams for at least ``min_seconds``."""
    make = LIBRARIES[library]
    gc.collect()
    streams = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < min_seconds:
        await stream(make(count, sync))
        streams += 1
        elapsed = time.perf_counter() - start
    return streams * count / elapsed


async def main(rounds: int, quick: bool) -> None:
    sample_seconds = SAMPLE_SECONDS / 4 if quick else SAMPLE_SECONDS
    names = list(LIBRARIES)
    print(f"python {sys.version.split()[0]}, {rounds} rounds; events/s, medians")
    for sync in (False, True):
        for count in (1, 1000):
            label = f"{count} event{'s' if count > 1 else ''}, {'sync' if sync else 'async'}"
            for library in names:
                body = await stream(LIBRARIES[library](count, sync))
                assert body.count(b"data: " + DATA.encode()) == count, (library, body[:200])
                assert f"id: {count - 1}".encode() in body, library
            rates: dict[str, list[float]] = {name: [] for name in names}
            ratios = []
            for round_number in range(rounds):
                order = names if round_number % 2 == 0 else names[::-1]
                sample = {name: await timed(name, count, sync, sample_seconds) for name in order}
                for name in names:
                    rates[name].append(sample[name])
                ratios.append(sample["starling"] / sample["sse-starlette"])
            line = ", ".join(f"{name} {statistics.median(rates[name]):>9,.0f}" for name in names)
            print(f"{label:20} {line}; ratio {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="shorter samples")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.quick))
