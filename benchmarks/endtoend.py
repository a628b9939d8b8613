"""End-to-end benchmark: each app under uvicorn (httptools, uvloop, 1 worker), loaded by wrk.

The three servers run at once on 127.0.0.1, pinned to one core; wrk runs pinned to another.
Endpoints and apps are interleaved in short rounds; every response is checked before it is
timed. Reports req/s median [min-max], p99 latency (median over rounds) and the per-round
paired ratios starling/bare, Starlette/bare, starling/Starlette and the p99 ratio
starling/Starlette. Servers are stopped by PID.

    python -m benchmarks.endtoend [--rounds 5] [--duration 3] [--connections 64]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks.apps import HELLO, JSON_PAYLOAD

APPS = {"starling": 8101, "starlette": 8102, "bare": 8103}
# The realistic service (benchmarks/service.py), served beside the simple apps
SERVICE_PORTS = {"starling": 8111, "starlette": 8112, "bare": 8113}
CASES = {
    "hello": ("/", HELLO.encode()),
    "json": ("/json", None),
    "users": ("/users/42", None),
    "deep": ("/deep", b"deep"),
}
JSON_BODIES = {"json": JSON_PAYLOAD, "users": {"id": 42}}
SERVER_CORE, LOAD_CORE = "0", "1"
# The realistic requests: headers as the in-process benchmark sends them; `get` asks for a
# different item id (of a million) on every request, through a wrk script.
VARIED_GET = """
math.randomseed(1)
request = function()
  return wrk.format(nil, "/api/items/" .. math.random(1, 1000000))
end
"""
SERVICE_CASES = {"list": "/api/items/?offset=40&limit=20", "get": None, "health": "/health"}
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def pinned(core: str) -> list[str]:
    return ["taskset", "-c", core] if shutil.which("taskset") else []


@contextmanager
def servers(apps: dict[str, int] = APPS, target: str = "benchmarks.apps:{}_app") -> Iterator[None]:
    processes = []
    try:
        for name, port in apps.items():
            command = [
                *pinned(SERVER_CORE),
                sys.executable, "-m", "uvicorn", target.format(name),
                "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                "--http", "httptools", "--loop", "uvloop",
                "--log-level", "warning", "--no-access-log",
            ]  # fmt: skip
            processes.append(subprocess.Popen(command))
        for port in apps.values():
            wait_until_up(port)
        yield
    finally:
        for process in processes:
            os.kill(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


def wait_until_up(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
            return
        except urllib.error.HTTPError:  # up, answering 404 (or 400 for a host it refuses)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def check(name: str, case: str) -> None:
    path, expected = CASES[case]
    with urllib.request.urlopen(f"http://127.0.0.1:{APPS[name]}{path}", timeout=5) as response:
        body = response.read()
        status = response.status
    ok = body == expected if expected is not None else json.loads(body) == JSON_BODIES[case]
    if status != 200 or not ok:
        raise AssertionError(f"{name} {case}: unexpected response {status} {body[:200]!r}")


def wrk(
    port: int,
    path: str,
    duration: int,
    connections: int,
    headers: tuple[tuple[bytes, bytes], ...] = (),
    script: str | None = None,
) -> tuple[float, float]:
    """req/s and p99 latency in ms."""
    command = [
        *pinned(LOAD_CORE),
        "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "--latency",
    ]  # fmt: skip
    for name, value in headers:
        command += ["-H", f"{name.decode()}: {value.decode()}"]
    if script is not None:
        command += ["-s", script]
    command.append(f"http://127.0.0.1:{port}{path}")
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    # A slow server (Starlette's /deep) may still time out some requests: counted, not fatal.
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: connect [1-9]", output)
    if rate is None or p99 is None or errors is not None:
        raise AssertionError(f"wrk failed or saw errors:\n{output}")
    return float(rate.group(1)), float(p99.group(1)) * _UNITS[p99.group(2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--service-cases", nargs="*", default=list(SERVICE_CASES))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: install it with `apt-get install -y wrk` (Debian).")
        return
    if args.cases:
        simple(args)
    if args.service_cases:
        service(args)


def service(args: argparse.Namespace) -> None:
    """The realistic service's requests, each app serving its own service."""
    from benchmarks.realistic import cases as service_requests

    requests = service_requests()
    names = list(SERVICE_PORTS)
    rates: dict[tuple[str, str], list[float]] = {}
    p99s: dict[tuple[str, str], list[float]] = {}
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(VARIED_GET)
        script.flush()

        def load(name: str, case: str, duration: int) -> tuple[float, float]:
            headers = tuple(h for h in requests[case].headers if h[0] != b"user-agent")
            path = SERVICE_CASES[case]
            return wrk(
                SERVICE_PORTS[name],
                path or "/api/items/1",
                duration,
                args.connections,
                headers,
                None if path else script.name,
            )

        with servers(SERVICE_PORTS, "benchmarks.service:{}_service"):
            for case in args.service_cases:
                for name in names:
                    load(name, case, 1)  # warm up (wrk refuses non-2xx answers)
            for index in range(args.rounds):
                for case in args.service_cases:
                    order = names[index % len(names) :] + names[: index % len(names)]
                    for name in order:
                        rate, p99 = load(name, case, args.duration)
                        rates.setdefault((case, name), []).append(rate)
                        p99s.setdefault((case, name), []).append(p99)
                print(f"  service round {index + 1}/{args.rounds}", file=sys.stderr)
    print(
        f"\n## End to end, the realistic service: uvicorn as above, {args.rounds} rounds of "
        f"{args.duration}s\n"
    )
    table(args.service_cases, names, rates, p99s)


def simple(args: argparse.Namespace) -> None:
    names = list(APPS)
    rates: dict[tuple[str, str], list[float]] = {}
    p99s: dict[tuple[str, str], list[float]] = {}
    with servers():
        for case in args.cases:
            for name in names:
                check(name, case)
                wrk(APPS[name], CASES[case][0], 1, args.connections)  # warm up
        for index in range(args.rounds):
            for case in args.cases:
                order = names[index % len(names) :] + names[: index % len(names)]
                for name in order:
                    rate, p99 = wrk(APPS[name], CASES[case][0], args.duration, args.connections)
                    rates.setdefault((case, name), []).append(rate)
                    p99s.setdefault((case, name), []).append(p99)
            print(f"  round {index + 1}/{args.rounds}", file=sys.stderr)

    print(
        f"## End to end: uvicorn (httptools, uvloop, 1 worker) on core {SERVER_CORE}, "
        f"wrk -t1 -c{args.connections} on core {LOAD_CORE}, {args.rounds} rounds of "
        f"{args.duration}s\n"
    )
    table(args.cases, names, rates, p99s)


def table(
    cases: list[str],
    names: list[str],
    rates: dict[tuple[str, str], list[float]],
    p99s: dict[tuple[str, str], list[float]],
) -> None:
    header = "| endpoint | " + " | ".join(f"{name} req/s" for name in names)
    header += " | " + " | ".join(f"{name} p99 ms" for name in names)
    print(
        header + " | starling/bare | Starlette/bare | starling/Starlette | p99 starling/Starlette |"
    )
    print("|---" * (2 * len(names) + 5) + "|")
    for case in cases:
        cells = []
        for name in names:
            values = rates[(case, name)]
            cells.append(
                f"{statistics.median(values):,.0f} [{min(values):,.0f}-{max(values):,.0f}]"
            )
        cells += [f"{statistics.median(p99s[(case, name)]):.2f}" for name in names]
        for a, b in (("starling", "bare"), ("starlette", "bare"), ("starling", "starlette")):
            pairs = zip(rates[(case, a)], rates[(case, b)], strict=True)
            cells.append(f"{statistics.median(x / y for x, y in pairs):.2f}x")
        # p99 paired per round too: the rounds' conditions (load from elsewhere) differ more
        # than the two servers under the same round do
        pairs = zip(p99s[(case, "starling")], p99s[(case, "starlette")], strict=True)
        cells.append(f"{statistics.median(x / y for x, y in pairs):.2f}x")
        print(f"| {case} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
