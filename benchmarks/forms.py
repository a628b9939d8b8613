"""Form and upload benchmark: starling against Starlette 1.10 + python-multipart, side by side.

Run ``python benchmarks/forms.py [--rounds N] [--quick]`` where both starling (this repository)
and ``starlette==1.10.0`` with ``python-multipart`` are importable. Each application's ASGI
callable is driven directly (no server, no sockets): the body arrives in 64 KiB
``http.request`` messages, as a server hands it over. Cases:

- ``file-20MB``: one 20 MB file, spooled to disk as Starlette does (1 MiB threshold); MB/s;
- ``fields-1000``: 1,000 small fields; fields/s;
- ``file-1KiB+field``: a 1 KiB file and one field, the whole request; req/s;
- ``upload-200MB``: peak memory growth (tracemalloc) while a 200 MB upload is parsed.

Every response is checked before anything is timed. Frameworks alternate within each round,
each running back-to-back requests for 0.25 s after a warm-up, and the ratio is taken per
round (paired), so a noisy, shared machine skews both sides alike; the medians over rounds
are printed. ``make bench`` runs it as ``python -m benchmarks.forms``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHUNK = 64 * 1024
BOUNDARY = b"----starlingbenchboundary7MA4YWxkTrZu0gW"
CONTENT_TYPE = b"multipart/form-data; boundary=" + BOUNDARY

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def _part(name: str, data: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"\r\nContent-Type: application/octet-stream'
    return (
        b"--"
        + BOUNDARY
        + f"\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        + data
        + b"\r\n"
    )


def _end() -> bytes:
    return b"--" + BOUNDARY + b"--\r\n"


def file_body(size: int) -> bytes:
    block = bytes(range(256)) * (size // 256 + 1)
    return _part("upload", block[:size], "data.bin") + _end()


def fields_body(count: int) -> bytes:
    return b"".join(_part(f"field{i}", f"value number {i}".encode()) for i in range(count)) + _end()


def small_body() -> bytes:
    return _part("upload", bytes(range(256)) * 4, "small.bin") + _part("title", b"hello") + _end()


def chunked(body: bytes) -> list[bytes]:
    return [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]


STREAMED_HEAD = (
    b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="upload"; '
    b'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
)


def streamed_file(size: int) -> Iterator[bytes]:
    """A file upload of ``size`` bytes made chunk by chunk, never held whole in memory."""
    yield STREAMED_HEAD
    for _ in range(size // CHUNK):
        yield b"\xab" * CHUNK  # a new object each time, as a server receives it
    yield b"\r\n" + _end()


def streamed_length(size: int) -> int:
    return len(STREAMED_HEAD) + size // CHUNK * CHUNK + 2 + len(_end())


def make_app(framework: str) -> App:
    """The same upload endpoint on ``framework`` ("starling" or "starlette")."""
    applications = importlib.import_module(f"{framework}.applications")
    datastructures = importlib.import_module(f"{framework}.datastructures")
    responses = importlib.import_module(f"{framework}.responses")
    routing = importlib.import_module(f"{framework}.routing")
    application_class = getattr(applications, framework.capitalize())

    async def upload(request: Any) -> Any:
        async with request.form() as form:
            count = 0
            total = 0
            for _, value in form.multi_items():
                count += 1
                if isinstance(value, datastructures.UploadFile):
                    total += value.size or 0
                else:
                    total += len(value)
        return responses.PlainTextResponse(f"{count} {total}")

    app: App = application_class(routes=[routing.Route("/", upload, methods=["POST"])])
    return app


async def call(
    app: App, chunks: Iterator[bytes] | list[bytes], length: int | None = None
) -> tuple[int, bytes]:
    if length is None:
        assert isinstance(chunks, list)
        length = sum(map(len, chunks))
    iterator = iter(chunks)
    pending = next(iterator, b"")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", CONTENT_TYPE),
            (b"content-length", str(length).encode()),
        ],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }
    state: dict[str, Any] = {"status": 0, "body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal pending
        chunk = pending
        following = next(iterator, None)
        pending = following or b""
        return {"type": "http.request", "body": chunk, "more_body": following is not None}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            state["status"] = message["status"]
        elif message["type"] == "http.response.body":
            state["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return state["status"], state["body"]


async def timed(app: App, chunks: list[bytes], min_seconds: float) -> float:
    """Seconds per request, over back-to-back requests for at least ``min_seconds``."""
    gc.collect()
    count = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < min_seconds:
        await call(app, chunks)
        count += 1
        elapsed = time.perf_counter() - start
    return elapsed / count


async def peak_memory(app: App, size: int) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        status, body = await call(app, streamed_file(size), streamed_length(size))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == 200 and body == f"1 {size // CHUNK * CHUNK}".encode(), (status, body)
    return peak - base


CASES: dict[str, tuple[Callable[[], bytes], str, float, bytes]] = {
    # name: (body, unit, units per request, expected response)
    "file-20MB": (lambda: file_body(20_000_000), "MB/s", 20.0, b"1 20000000"),
    "fields-1000": (lambda: fields_body(1000), "fields/s", 1000.0, b""),
    "file-1KiB+field": (small_body, "req/s", 1.0, b"2 1029"),
}
SAMPLE_SECONDS = 0.25  # each framework's share of a round


async def main(rounds: int, quick: bool, only: str | None) -> None:
    frameworks = ["starling", "starlette"]
    apps = {name: make_app(name) for name in frameworks}
    print(f"python {sys.version.split()[0]}, {rounds} rounds, medians; ratio = paired, per round")
    sample_seconds = SAMPLE_SECONDS / 5 if quick else SAMPLE_SECONDS
    for case, (make_body, unit, units, expected) in CASES.items():
        if only is not None and only != case:
            continue
        chunks = chunked(make_body())
        for name, app in apps.items():
            status, body = await call(app, chunks)
            assert status == 200, (name, case, status, body)
            assert not expected or body == expected, (name, case, body)
            assert body == (await call(apps["starlette"], chunks))[1], (name, case, body)
            await timed(app, chunks, sample_seconds / 4)  # warm up
        rates: dict[str, list[float]] = {name: [] for name in frameworks}
        ratios = []
        for round_number in range(rounds):
            order = frameworks if round_number % 2 == 0 else frameworks[::-1]
            sample = {
                name: units / await timed(apps[name], chunks, sample_seconds) for name in order
            }
            for name in frameworks:
                rates[name].append(sample[name])
            ratios.append(sample["starling"] / sample["starlette"])
        line = ", ".join(
            f"{name} {statistics.median(rates[name]):,.0f} {unit}" for name in frameworks
        )
        print(f"{case:18} {line}; ratio {statistics.median(ratios):.2f}x")
    if only is not None and not only.startswith("upload"):
        return
    size = 50_000_000 if quick else 200_000_000
    peaks = {name: await peak_memory(apps[name], size) for name in frameworks}
    line = ", ".join(f"{name} {peaks[name] / 1e6:.1f} MB" for name in frameworks)
    label = f"upload-{size // 1_000_000}MB"
    print(f"{label:18} peak memory growth: {line}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, a 50 MB upload")
    parser.add_argument("--case", help="run only this case (file-20MB, fields-1000, ...)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.quick, arguments.case))
