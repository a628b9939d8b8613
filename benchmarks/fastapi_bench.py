"""FastAPI on starling against FastAPI on Starlette, in process, through the switch.

One interpreter cannot hold both, so two worker processes run the same FastAPI app: one started
with STARLING_AS_STARLETTE=1 (starling), one without (the real Starlette 1.10). Each worker
drives the app's ASGI callable directly, as benchmarks/inprocess.py does. The parent asks them
in turn, round after round and in a rotating order, to run each request for the same wall time,
so every round gives a paired ratio. Every response is checked before anything is timed.

Needs FastAPI and the real Starlette beside starling: run it from the dev environment.

    .venv/bin/python -m benchmarks.fastapi_bench [--rounds 9] [--round-time 0.2] [--quick]
"""

# No `from __future__ import annotations`: FastAPI reads the annotations of the endpoints
# defined inside make_app(), and could not resolve those names from strings.
import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
from typing import Annotated, Any

from benchmarks.inprocess import Case, Driver

ITEM = {"name": "oolong", "price": 10.0, "tags": ["green", "loose"]}
CASES = {
    "hello": Case("hello", "GET", "/", lambda body: json.loads(body) == {"hello": "world"}),
    "params": Case(
        "params",
        "GET",
        "/items/42",
        lambda body: json.loads(body) == {"item_id": 42, "q": "tea", "limit": 10},
    ),
    "body": Case(
        "body",
        "POST",
        "/items",
        lambda body: json.loads(body) == {**ITEM, "price_with_tax": 12.0},
        json.dumps(ITEM).encode(),
        b"application/json",
    ),
    "depends": Case(
        "depends",
        "GET",
        "/users/me",
        lambda body: json.loads(body) == {"user": "ada", "db": "session", "page": [0, 10]},
    ),
}
EXTRA_SCOPE: dict[str, dict[str, Any]] = {
    "params": {"query_string": b"q=tea"},
    "depends": {"headers_extra": [(b"x-user", b"ada")]},
}


def make_app() -> Any:
    """The benchmarked FastAPI app: what most FastAPI endpoints do (parameters, a pydantic
    body, dependencies), imported from whatever ``starlette`` is in this process."""
    from collections.abc import AsyncIterator

    from fastapi import Depends, FastAPI, Header
    from pydantic import BaseModel

    class Item(BaseModel):
        name: str
        price: float
        tags: list[str] = []

    class PricedItem(Item):
        price_with_tax: float

    app = FastAPI()

    @app.get("/")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, q: str | None = None, limit: int = 10) -> dict[str, Any]:
        return {"item_id": item_id, "q": q, "limit": limit}

    @app.post("/items", response_model=PricedItem)
    async def create_item(item: Item) -> dict[str, Any]:
        return {**item.model_dump(), "price_with_tax": round(item.price * 1.2, 2)}

    async def current_user(x_user: Annotated[str, Header()]) -> str:
        return x_user

    async def session() -> AsyncIterator[str]:
        yield "session"

    def page(skip: int = 0, limit: int = 10) -> tuple[int, int]:
        return skip, limit

    @app.get("/users/me")
    async def me(
        user: Annotated[str, Depends(current_user)],
        db: Annotated[str, Depends(session)],
        paging: Annotated[tuple[int, int], Depends(page)],
    ) -> dict[str, Any]:
        return {"user": user, "db": db, "page": paging}

    return app


def driver_for(app: Any, name: str) -> Driver:
    driver = Driver(app, CASES[name])
    extra = dict(EXTRA_SCOPE.get(name, {}))
    driver.scope["headers"] = driver.scope["headers"] + extra.pop("headers_extra", [])
    driver.scope.update(extra)
    return driver


def worker() -> None:
    """Answer ``<case> <seconds>`` lines on stdin with req/s on stdout."""
    import starlette

    app = make_app()
    drivers = {name: driver_for(app, name) for name in CASES}
    for name, driver in drivers.items():
        asyncio.run(driver.check(CASES[name]))
        asyncio.run(driver.run_for(0.05))  # warm up
    print(f"ready {starlette.__file__}", flush=True)
    for line in sys.stdin:
        name, seconds = line.split()
        gc.collect()
        print(asyncio.run(drivers[name].run_for(float(seconds))), flush=True)


def start_worker(switch: str) -> subprocess.Popen[str]:
    env = {**os.environ, "STARLING_AS_STARLETTE": switch}
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.fastapi_bench", "--worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    ready = process.stdout.readline()
    if not ready.startswith("ready "):
        raise SystemExit(f"the worker with STARLING_AS_STARLETTE={switch} failed (see above)")
    print(f"  worker with STARLING_AS_STARLETTE={switch}: {ready.strip()}", file=sys.stderr)
    return process


def ask(process: subprocess.Popen[str], name: str, seconds: float) -> float:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(f"{name} {seconds}\n")
    process.stdin.flush()
    return float(process.stdout.readline())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--round-time", type=float, default=0.2)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 0.05 s: a smoke test")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker()
        return
    if args.quick:
        args.rounds, args.round_time = 3, 0.05
    workers = {"starling": start_worker("1"), "starlette": start_worker("0")}
    try:
        print(f"## FastAPI in process: {args.rounds} rounds of {args.round_time}s per app\n")
        print("| request | FastAPI + starling req/s | FastAPI + Starlette req/s | ratio |")
        print("|---|---|---|---|")
        for name in CASES:
            rates: dict[str, list[float]] = {"starling": [], "starlette": []}
            for index in range(args.rounds):
                order = list(workers) if index % 2 == 0 else list(reversed(workers))
                for which in order:
                    rates[which].append(ask(workers[which], name, args.round_time))
            ratios = [a / b for a, b in zip(rates["starling"], rates["starlette"], strict=True)]
            print(
                f"| {CASES[name].method} {CASES[name].path} "
                f"| {statistics.median(rates['starling']):,.0f} "
                f"| {statistics.median(rates['starlette']):,.0f} "
                f"| {statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}] |"
            )
    finally:
        for process in workers.values():
            assert process.stdin is not None
            process.stdin.close()
            process.wait(10)


if __name__ == "__main__":
    main()
