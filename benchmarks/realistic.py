"""In-process benchmark of the realistic service (benchmarks/service.py).

Starlette 1.10, starling and the bare ASGI service answer the same requests; each request is
checked first (the three answers compared: status, headers in order, the decompressed body,
with the values that depend on the clock or on the run normalised), then timed in paired,
interleaved rounds as benchmarks.inprocess does. Path parameters vary as in real traffic: each
timed request takes the next of 50,000 item ids drawn from a range of a million, so no per-path
cache makes the numbers. ``users`` is benchmarks.apps' endpoint, repeated and varied.

    python -m benchmarks.realistic [--rounds 15] [--round-time 0.2] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import gzip
import json
import random
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.apps import ASGIApp, Message, make_framework_app
from benchmarks.inprocess import Result, fmt_rate, fmt_ratio
from benchmarks.service import ORIGIN, SECRET, TOKEN, make_bare_service, make_service

POST_BODY = b'{"name": "a new item", "price": 12.5}'
VARIED_IDS = 50_000
ID_RANGE = 1_000_000


def _signed_session() -> str:
    """A session cookie as SessionMiddleware writes it, made once (signing is not timed)."""
    import itsdangerous

    data = base64.b64encode(json.dumps({"views": 3}).encode())
    return itsdangerous.TimestampSigner(SECRET).sign(data).decode()


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str  # "{id}" is replaced by the varied id
    query: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""
    varied: bool = False
    expected_status: int = 200


def _common(*extra: tuple[bytes, bytes]) -> tuple[tuple[bytes, bytes], ...]:
    return (
        (b"host", b"api.example.com"),
        (b"user-agent", b"bench"),
        (b"accept", b"*/*"),
        *extra,
    )


def cases() -> dict[str, Case]:
    auth = (b"authorization", f"Bearer {TOKEN}".encode())
    origin = (b"origin", ORIGIN.encode())
    session = (b"cookie", f"session={_signed_session()}; theme=dark".encode())
    return {
        "list": Case(
            "list",
            "GET",
            "/api/items/",
            b"offset=40&limit=20",
            _common(auth, origin, session, (b"accept-encoding", b"gzip, deflate, br")),
        ),
        "get": Case("get", "GET", "/api/items/{id}", headers=_common(auth, origin), varied=True),
        "post": Case(
            "post",
            "POST",
            "/api/items/",
            headers=_common(
                auth,
                origin,
                (b"content-type", b"application/json"),
                (b"content-length", str(len(POST_BODY)).encode()),
            ),
            body=POST_BODY,
            expected_status=201,
        ),
        "preflight": Case(
            "preflight",
            "OPTIONS",
            "/api/items/",
            headers=_common(
                origin,
                (b"access-control-request-method", b"POST"),
                (b"access-control-request-headers", b"authorization, content-type"),
            ),
        ),
        "health": Case("health", "GET", "/health", headers=_common()),
    }


def scope_for(case: Case, path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": case.method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": case.query,
        "headers": list(case.headers),
        "state": {},
    }


@dataclass
class Driver:
    """Calls an app with a prepared scope per request; varied cases cycle through their ids."""

    app: ASGIApp
    case: Case
    scopes: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.case.varied:
            ids = random.Random(1).sample(range(1, ID_RANGE), VARIED_IDS)
            paths = [self.case.path.replace("{id}", str(i)) for i in ids]
        else:
            paths = [self.case.path.replace("{id}", "421337")]
        self.scopes = [scope_for(self.case, path) for path in paths]

    def _receive(self) -> Callable[[], Any]:
        messages = [{"type": "http.request", "body": self.case.body, "more_body": False}]

        async def receive() -> Message:
            if messages:
                return messages.pop()
            return {"type": "http.disconnect"}  # pragma: no cover (apps here read once)

        return receive

    async def answer(self, index: int = 0) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        await self.app(dict(self.scopes[index]), self._receive(), send)
        body = b"".join(message.get("body", b"") for message in sent[1:])
        return sent[0]["status"], list(sent[0]["headers"]), body

    async def run_for(self, seconds: float) -> float:
        app, scopes, make_receive = self.app, self.scopes, self._receive
        count_scopes = len(scopes)

        async def send(message: Message) -> None:
            pass

        count = 0
        start = time.perf_counter()
        deadline = start + seconds
        now = start
        index = 0
        while now < deadline:
            for _ in range(10):
                await app(dict(scopes[index]), make_receive(), send)
                index = (index + 1) % count_scopes
            count += 10
            now = time.perf_counter()
        return count / (now - start)


_CLOCK_HEADERS = {b"x-process-time"}
_SIGNED = re.compile(rb"^(session=[A-Za-z0-9_=-]+)\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+(;.*)$")


def normalised(answer: tuple[int, list[tuple[bytes, bytes]], bytes]) -> Any:
    """What must be equal between the three: the clock's values and gzip's mtime set aside."""
    status, headers, body = answer
    kept = []
    for name, value in headers:
        if name in _CLOCK_HEADERS:
            value = b"<elapsed>"
        elif name == b"set-cookie" and value.startswith(b"session="):
            value = _SIGNED.sub(rb"\1.<timestamp-signature>\2", value)
        elif name == b"content-length" and (b"content-encoding", b"gzip") in headers:
            value = b"<compressed length>"
        kept.append((name, value))
    if (b"content-encoding", b"gzip") in headers:
        body = gzip.decompress(body)
    return status, kept, body


async def check(apps: dict[str, ASGIApp], case: Case) -> None:
    answers = {name: normalised(await Driver(app, case).answer()) for name, app in apps.items()}
    reference = answers["starlette"]
    if reference[0] != case.expected_status:
        raise AssertionError(f"{case.name}: Starlette answered {reference}")
    for name, answer in answers.items():
        if answer != reference:
            raise AssertionError(
                f"{case.name}: {name} differs from Starlette\n  {name}: {answer}\n"
                f"  starlette: {reference}"
            )


async def measure(runs: dict[str, Driver], rounds: int, round_time: float) -> Result:
    for driver in runs.values():
        await driver.run_for(round_time / 4)  # warm up
    rates: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for index in range(rounds):
        order = names[index % len(names) :] + names[: index % len(names)]
        for name in order:
            gc.collect()
            rates[name].append(await runs[name].run_for(round_time))
    return Result(rates)


async def run_all(args: argparse.Namespace) -> None:
    apps: dict[str, ASGIApp] = {
        "starling": make_service("starling"),
        "starlette": make_service("starlette"),
        "bare": make_bare_service(),
    }
    all_cases = cases()
    for case in all_cases.values():
        await check(apps, case)
    print(f"## Realistic service, in process: {args.rounds} rounds of {args.round_time}s per app\n")
    print(
        "| request | starling req/s | starlette req/s | bare req/s | starling/Starlette "
        "| starling/bare |"
    )
    print("|---|---|---|---|---|---|")
    for name in args.cases:
        case = all_cases[name]
        result = await measure(
            {app_name: Driver(app, case) for app_name, app in apps.items()},
            args.rounds,
            args.round_time,
        )
        print(
            f"| {name} | {fmt_rate(result.rates['starling'])} | "
            f"{fmt_rate(result.rates['starlette'])} | {fmt_rate(result.rates['bare'])} | "
            f"{fmt_ratio(result.ratios('starling', 'starlette'))} | "
            f"{fmt_ratio(result.ratios('starling', 'bare'))} |"
        )
        print(f"  measured {name}", file=sys.stderr)

    # The same endpoint asked with one repeated id and with 50,000 distinct ids.
    print("\n## Repeated against varied path parameters (GET /users/{id}, paired rounds)\n")
    print("| app | repeated req/s | varied req/s | repeated/varied |")
    print("|---|---|---|---|")
    users = Case("users", "GET", "/users/{id}", headers=_common(), varied=True)
    repeated = Case("users", "GET", "/users/42", headers=_common())
    runs = {}
    for package in ("starling", "starlette"):
        simple_app = make_framework_app(package)
        runs[f"{package}-repeated"] = Driver(simple_app, repeated)
        runs[f"{package}-varied"] = Driver(simple_app, users)
    result = await measure(runs, args.rounds, args.round_time)
    for package in ("starling", "starlette"):
        rep, var = f"{package}-repeated", f"{package}-varied"
        print(
            f"| {package} | {fmt_rate(result.rates[rep])} | {fmt_rate(result.rates[var])} | "
            f"{fmt_ratio(result.ratios(rep, var))} |"
        )


# ---------------------------------------------------------------------------------------------
# FastAPI: one worker process per framework, driven in alternating rounds over pipes.


def worker(package: str) -> None:
    """Serve commands on stdin: answer a case once, or time it for some seconds."""
    if package == "starling":
        from starling.compat import alias_starlette

        alias_starlette()
    from benchmarks.service_fastapi import make_fastapi_service

    app = make_fastapi_service()
    drivers = {name: Driver(app, case) for name, case in cases().items()}

    async def serve() -> None:
        for line in sys.stdin:
            command = json.loads(line)
            driver = drivers[command["case"]]
            if command["cmd"] == "answer":
                status, headers, body = await driver.answer()
                reply: dict[str, Any] = {
                    "status": status,
                    "headers": [[name.hex(), value.hex()] for name, value in headers],
                    "body": base64.b64encode(body).decode(),
                }
            else:
                reply = {"rate": await driver.run_for(command["seconds"])}
            print(json.dumps(reply), flush=True)

    asyncio.run(serve())


class Worker:
    def __init__(self, package: str) -> None:
        import subprocess

        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.realistic", "--worker", package],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        reply: dict[str, Any] = json.loads(self.process.stdout.readline())
        return reply

    def answer(self, case: str) -> Any:
        reply = self.ask(cmd="answer", case=case)
        headers = [(bytes.fromhex(n), bytes.fromhex(v)) for n, v in reply["headers"]]
        return normalised((reply["status"], headers, base64.b64decode(reply["body"])))

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


def run_fastapi(args: argparse.Namespace) -> None:
    workers = {"starling": Worker("starling"), "starlette": Worker("starlette")}
    try:
        for name in args.cases:
            ours, theirs = workers["starling"].answer(name), workers["starlette"].answer(name)
            if ours != theirs:
                raise AssertionError(f"FastAPI {name}: starling {ours}\n  starlette {theirs}")
        print(
            f"\n## Realistic service written with FastAPI, in process: {args.rounds} rounds of "
            f"{args.round_time}s per framework (one worker process each)\n"
        )
        print("| request | FastAPI+starling req/s | FastAPI+Starlette req/s | starling/Starlette |")
        print("|---|---|---|---|")
        for name in args.cases:
            for process in workers.values():
                process.ask(cmd="run", case=name, seconds=args.round_time / 4)  # warm up
            rates: dict[str, list[float]] = {"starling": [], "starlette": []}
            for index in range(args.rounds):
                order = ["starling", "starlette"][:: 1 if index % 2 == 0 else -1]
                for package in order:
                    reply = workers[package].ask(cmd="run", case=name, seconds=args.round_time)
                    rates[package].append(reply["rate"])
            result = Result(rates)
            print(
                f"| {name} | {fmt_rate(rates['starling'])} | {fmt_rate(rates['starlette'])} | "
                f"{fmt_ratio(result.ratios('starling', 'starlette'))} |"
            )
    finally:
        for process in workers.values():
            process.close()


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--round-time", type=float, default=0.2)
    parser.add_argument("--cases", nargs="*", default=list(cases()))
    parser.add_argument("--quick", action="store_true", help="3 rounds of 0.05 s: a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.round_time = 3, 0.05
    asyncio.run(run_all(args))
    run_fastapi(args)


if __name__ == "__main__":
    main()
