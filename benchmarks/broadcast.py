"""Broadcast benchmark: starling.broadcast against encode's broadcaster, side by side.

Run ``python -m benchmarks.broadcast [--rounds N] [--redis URL]`` where both starling and
``broadcaster`` are importable (``pip install broadcaster``; it is not a dependency of
starling). One channel, one publishing task, ``subscribers`` reading tasks in the same process;
with ``--redis``, publisher and subscribers use separate connections to that Redis, as two
workers would. Two patterns, in messages delivered per second (messages x subscribers / s):

- ``relay``: publish one message, wait until every subscriber has it, then the next (a chat:
  what a message costs end to end);
- ``burst``: publish every message in a loop, then wait for the subscribers to read them all.

starling's subscribers get a queue large enough to keep every message (broadcaster's are
unbounded). Libraries alternate within each round and the ratio (starling's rate over
broadcaster's) is taken per round; medians are printed. A case broadcaster does not finish in
``--case-timeout`` seconds prints ``timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starling.broadcast import Broadcast

Publish = Callable[[str], Awaitable[None]]
Receive = Callable[[], Awaitable[Any]]
Setup = Callable[[str, int, int], Any]


@asynccontextmanager
async def starling_setup(
    url: str, messages: int, subscribers: int
) -> AsyncIterator[tuple[Publish, list[Receive]]]:
    async with AsyncExitStack() as stack:
        publisher = await stack.enter_async_context(Broadcast(url, max_queue=messages))
        receiver = publisher
        if url != "memory://":
            receiver = await stack.enter_async_context(Broadcast(url, max_queue=messages))
        subs = [
            await stack.enter_async_context(receiver.subscribe("bench")) for _ in range(subscribers)
        ]

        async def publish(text: str) -> None:
            await publisher.publish("bench", text)

        yield publish, [sub.__anext__ for sub in subs]


@asynccontextmanager
async def broadcaster_setup(
    url: str, messages: int, subscribers: int
) -> AsyncIterator[tuple[Publish, list[Receive]]]:
    import broadcaster

    async with AsyncExitStack() as stack:
        publisher = await stack.enter_async_context(broadcaster.Broadcast(url))
        receiver = publisher
        if url != "memory://":
            receiver = await stack.enter_async_context(broadcaster.Broadcast(url))
        subs = [
            await stack.enter_async_context(receiver.subscribe("bench")) for _ in range(subscribers)
        ]
        await asyncio.sleep(0.2)  # its subscribe does not wait for Redis to confirm

        async def publish(text: str) -> None:
            await publisher.publish("bench", text)

        yield publish, [sub.get for sub in subs]


async def relay(setup: Setup, url: str, messages: int, subscribers: int) -> float:
    async with setup(url, messages, subscribers) as (publish, receivers):
        started = time.perf_counter()
        for number in range(messages):
            await publish(f"message {number}")
            for receive in receivers:
                await receive()
        return time.perf_counter() - started


async def burst(setup: Setup, url: str, messages: int, subscribers: int) -> float:
    async with setup(url, messages, subscribers) as (publish, receivers):

        async def read_all(receive: Receive) -> None:
            for _ in range(messages):
                await receive()

        started = time.perf_counter()
        tasks = [asyncio.create_task(read_all(receive)) for receive in receivers]
        for number in range(messages):
            await publish(f"message {number}")
        await asyncio.gather(*tasks)
        return time.perf_counter() - started


def timed(pattern: Any, setup: Setup, case: tuple[str, int, int], limit: float) -> float | None:
    async def bounded() -> float:
        return float(await asyncio.wait_for(pattern(setup, *case), limit))

    try:
        return asyncio.run(bounded())
    except TimeoutError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", default=None, help="a Redis URL to add the Redis cases")
    parser.add_argument("--case-timeout", type=float, default=20.0)
    args = parser.parse_args()
    cases = [("memory://", 5_000, 1), ("memory://", 2_000, 10)]
    if args.redis:
        cases += [(args.redis, 1_000, 1), (args.redis, 500, 10)]
    print(f"{'case':<28} {'starling msg/s':>15} {'broadcaster msg/s':>18} {'ratio':>7}")
    for pattern in (relay, burst):
        for case in cases:
            url, messages, subscribers = case
            ours, theirs, ratios = [], [], []
            for _ in range(args.rounds):
                a = timed(pattern, starling_setup, case, args.case_timeout)
                b = timed(pattern, broadcaster_setup, case, args.case_timeout)
                assert a is not None, f"starling did not finish {pattern.__name__} {case}"
                ours.append(messages * subscribers / a)
                if b is not None:
                    theirs.append(messages * subscribers / b)
                    ratios.append(b / a)
            name = f"{pattern.__name__} {url.split(':')[0]} {messages}x{subscribers}"
            their_rate = f"{statistics.median(theirs):,.0f}" if theirs else "timeout"
            ratio = f"{statistics.median(ratios):.2f}x" if ratios else "-"
            print(f"{name:<28} {statistics.median(ours):>15,.0f} {their_rate:>18} {ratio:>7}")


if __name__ == "__main__":
    main()
