"""In-process benchmark: each app's ASGI callable driven directly, frameworks interleaved.

For every endpoint, each round runs every app for the same wall time, in a rotating order; a
round gives each app's req/s and the paired ratios starling/Starlette and starling/bare. The
table shows req/s median [min-max] and the median of the per-round ratios. Every response is
checked (status and body) before anything is timed.

    python -m benchmarks.inprocess [--rounds 15] [--round-time 0.2] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.apps import (
    DEEP_ROUTES,
    HELLO,
    JSON_PAYLOAD,
    ASGIApp,
    Message,
    make_bare_app,
    make_framework_app,
)

BOUNDARY = "benchboundary7MA4YWxkTrZu0gW"
UPLOAD_FILE = bytes(range(256)) * 4  # 1 KiB
UPLOAD_FIELD = "a field value"
SWEEP = (10, 100, 1000, 10000)


def upload_body() -> bytes:
    return (
        (
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="field"\r\n\r\n'
            f"{UPLOAD_FIELD}\r\n"
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="file"; filename="data.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + UPLOAD_FILE
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    expected: Callable[[bytes], bool]
    body: bytes = b""
    content_type: bytes = b""


def _json_is(value: Any) -> Callable[[bytes], bool]:
    return lambda body: json.loads(body) == value


CASES = {
    "hello": Case("hello", "GET", "/", lambda body: body == HELLO.encode()),
    "json": Case("json", "GET", "/json", _json_is(JSON_PAYLOAD)),
    "users": Case("users", "GET", "/users/42", _json_is({"id": 42})),
    "deep": Case("deep", "GET", "/deep", lambda body: body == b"deep"),
    "upload": Case(
        "upload",
        "POST",
        "/upload",
        _json_is({"field": UPLOAD_FIELD, "size": len(UPLOAD_FILE)}),
        upload_body(),
        f"multipart/form-data; boundary={BOUNDARY}".encode(),
    ),
}


def scope_for(case: Case) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), (b"accept", b"*/*")]
    if case.body:
        headers += [
            (b"content-type", case.content_type),
            (b"content-length", str(len(case.body)).encode()),
        ]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": case.method,
        "root_path": "",
        "path": case.path,
        "raw_path": case.path.encode(),
        "query_string": b"",
        "headers": headers,
        "state": {},
    }


class Driver:
    """Calls an app with one request's scope, receive and send; nothing else per request."""

    def __init__(self, app: ASGIApp, case: Case) -> None:
        self.app = app
        self.scope = scope_for(case)
        self.request: Message = {"type": "http.request", "body": case.body, "more_body": False}

    async def check(self, case: Case) -> None:
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        await self.app(dict(self.scope), self._receive(), send)
        status = sent[0]["status"]
        body = b"".join(message.get("body", b"") for message in sent[1:])
        if status != 200 or not case.expected(body):
            raise AssertionError(f"{case.name}: unexpected response {status} {body[:200]!r}")

    def _receive(self) -> Callable[[], Any]:
        messages = [self.request]

        async def receive() -> Message:
            if messages:
                return messages.pop()
            return {"type": "http.disconnect"}  # pragma: no cover (apps here read once)

        return receive

    async def run_for(self, seconds: float) -> float:
        """req/s over at least ``seconds`` of wall time."""
        app, scope, make_receive = self.app, self.scope, self._receive

        async def send(message: Message) -> None:
            pass

        count = 0
        start = time.perf_counter()
        deadline = start + seconds
        now = start
        while now < deadline:
            for _ in range(10):
                await app(dict(scope), make_receive(), send)
            count += 10
            now = time.perf_counter()
        return count / (now - start)


@dataclass
class Result:
    rates: dict[str, list[float]]

    def ratios(self, a: str, b: str) -> list[float]:
        return [x / y for x, y in zip(self.rates[a], self.rates[b], strict=True)]


async def measure(apps: dict[str, ASGIApp], case: Case, rounds: int, round_time: float) -> Result:
    """Every app answering ``case``, interleaved."""
    return await measure_pairs(
        {name: (app, case) for name, app in apps.items()}, rounds, round_time
    )


async def measure_pairs(
    runs: dict[str, tuple[ASGIApp, Case]], rounds: int, round_time: float
) -> Result:
    """Each named (app, request) pair, checked, then timed in interleaved rounds."""
    drivers = {name: Driver(app, case) for name, (app, case) in runs.items()}
    for name, driver in drivers.items():
        await driver.check(runs[name][1])
        await driver.run_for(round_time / 4)  # warm up
    rates: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for index in range(rounds):
        # Rotate the order so that no app always runs first (or right after a GC).
        order = names[index % len(names) :] + names[: index % len(names)]
        for name in order:
            gc.collect()
            rates[name].append(await drivers[name].run_for(round_time))
    return Result(rates)


def fmt_rate(values: list[float]) -> str:
    return f"{statistics.median(values):>9,.0f} [{min(values):,.0f}-{max(values):,.0f}]"


def fmt_ratio(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x"


def endpoint_table(results: dict[str, Result], names: list[str]) -> str:
    lines = [
        "| endpoint | "
        + " | ".join(f"{name} req/s" for name in names)
        + " | starling/Starlette | starling/bare |",
        "|---" * (len(names) + 3) + "|",
    ]
    for case_name, result in results.items():
        cells = [fmt_rate(result.rates[name]) for name in names]
        cells.append(fmt_ratio(result.ratios("starling", "starlette")))
        cells.append(fmt_ratio(result.ratios("starling", "bare")))
        lines.append(f"| {case_name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def construction_times(counts: tuple[int, ...], collector: bool = True) -> dict[int, float]:
    """Seconds to build a starling app with n routes and answer its first request, with the
    cyclic garbage collector running (as in most apps) or paused around it."""
    times = {}
    for count in counts:
        gc.collect()
        if not collector:
            gc.disable()
        try:
            start = time.perf_counter()
            app = make_framework_app("starling", count)
            await Driver(app, CASES["deep"]).check(CASES["deep"])
            times[count] = time.perf_counter() - start
        finally:
            gc.enable()
    return times


async def run_all(args: argparse.Namespace) -> None:
    names = ["starling", "starlette", "bare"]
    apps: dict[str, ASGIApp] = {
        "starling": make_framework_app("starling"),
        "starlette": make_framework_app("starlette"),
        "bare": make_bare_app(),
    }
    results = {}
    for case_name in args.cases:
        results[case_name] = await measure(apps, CASES[case_name], args.rounds, args.round_time)
        print(f"  measured {case_name}", file=sys.stderr)
    print(
        f"## In process: {args.rounds} rounds of {args.round_time}s per app, /deep after "
        f"{DEEP_ROUTES} routes\n"
    )
    print(endpoint_table(results, names))
    if "deep" in results and "hello" in results:
        paired = await measure_pairs(
            {
                "hello": (apps["starling"], CASES["hello"]),
                "deep": (apps["starling"], CASES["deep"]),
            },
            args.rounds,
            args.round_time,
        )
        print(
            "\nstarling /deep (after 1,000 routes) vs its own hello, paired rounds: "
            f"{fmt_ratio(paired.ratios('deep', 'hello'))}"
        )

    if args.sweep:
        print("\n## Route-count sweep: GET /deep registered after n routes, all interleaved\n")
        print(
            "| routes | starling req/s | vs 10 routes | Starlette req/s | vs 10 routes "
            "| starling/Starlette |"
        )
        print("|---|---|---|---|---|---|")
        runs = {}
        for count in SWEEP:
            for package in ("starling", "starlette"):
                runs[f"{package}-{count}"] = (make_framework_app(package, count), CASES["deep"])
        sweep = await measure_pairs(runs, args.sweep_rounds, args.round_time)
        first = SWEEP[0]
        for count in SWEEP:
            ours, theirs = f"starling-{count}", f"starlette-{count}"
            print(
                f"| {count:,} | {fmt_rate(sweep.rates[ours])} "
                f"| {fmt_ratio(sweep.ratios(ours, f'starling-{first}'))} "
                f"| {fmt_rate(sweep.rates[theirs])} "
                f"| {fmt_ratio(sweep.ratios(theirs, f'starlette-{first}'))} "
                f"| {fmt_ratio(sweep.ratios(ours, theirs))} |"
            )

        print("\n## Building a starling app with n routes (and answering its first request)\n")
        print("| routes | seconds | µs per route | µs per route, collector paused |")
        print("|---|---|---|---|")
        counts = (1000, 10000, 20000, 40000)
        running = await construction_times(counts)
        paused = await construction_times(counts, collector=False)
        for count, seconds in running.items():
            print(
                f"| {count:,} | {seconds:.3f} | {seconds / count * 1e6:.1f} "
                f"| {paused[count] / count * 1e6:.1f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--sweep-rounds", type=int, default=7)
    parser.add_argument("--round-time", type=float, default=0.2)
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--no-sweep", dest="sweep", action="store_false")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 0.05 s: a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.sweep_rounds, args.round_time = 3, 2, 0.05
    asyncio.run(run_all(args))


if __name__ == "__main__":
    main()
