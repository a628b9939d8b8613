"""CompressionMiddleware through a real uvicorn process on 127.0.0.1: a real client (httpx2,
which decodes zstd, br and gzip) gets each coding and decodes it; a stream arrives flushed
chunk by chunk, and an event stream through the middleware is neither compressed nor held."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator

import httpx2
import pytest

from tests._uvicorn import Uvicorn, serve

APP = textwrap.dedent(
    """
    import json

    import anyio

    from starling.applications import Starling
    from starling.middleware import Middleware
    from starling.middleware.compression import CompressionMiddleware
    from starling.responses import JSONResponse, StreamingResponse
    from starling.routing import Route
    from starling.sse import EventSourceResponse

    ROWS = [{"id": n, "name": f"row {n}", "tags": ["a", "b", "c"]} for n in range(2000)]
    release = anyio.Event()


    async def data(request):
        return JSONResponse(ROWS)


    async def lines(request):
        async def rows():
            for start in range(0, len(ROWS), 500):
                yield "".join(json.dumps(row) + "\\n" for row in ROWS[start : start + 500])
            # the last chunk waits until the client has read the first ones
            await release.wait()
            yield json.dumps({"end": True}) + "\\n"

        return StreamingResponse(rows(), media_type="application/x-ndjson")


    async def go(request):
        release.set()
        return JSONResponse({})


    async def events(request):
        async def produce():
            yield {"data": "x" * 2000}
            await anyio.sleep(3600)  # idle: the first event must arrive all the same

        return EventSourceResponse(produce())


    app = Starling(
        routes=[
            Route("/", data),
            Route("/lines", lines),
            Route("/go", go),
            Route("/events", events),
        ],
        middleware=[Middleware(CompressionMiddleware)],
    )
    """
)
ROWS = [{"id": n, "name": f"row {n}", "tags": ["a", "b", "c"]} for n in range(2000)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uvicorn]:
    yield from serve(tmp_path_factory.mktemp("app"), APP)


@pytest.mark.parametrize("coding", ["zstd", "br", "gzip"])
def test_each_coding_is_decoded_by_the_client(server: Uvicorn, coding: str) -> None:
    response = httpx2.get(server.url + "/", headers={"Accept-Encoding": coding}, timeout=5)
    assert response.headers["content-encoding"] == coding
    assert response.headers["vary"] == "Accept-Encoding"
    assert int(response.headers["content-length"]) < len(response.content) / 5
    assert response.json() == ROWS


def test_the_best_coding_by_default(server: Uvicorn) -> None:
    response = httpx2.get(server.url + "/", timeout=5)  # httpx2 offers gzip, deflate, br, zstd
    assert response.headers["content-encoding"] == "zstd"
    identity = httpx2.get(server.url + "/", headers={"Accept-Encoding": "identity"}, timeout=5)
    assert "content-encoding" not in identity.headers
    assert identity.json() == ROWS


def test_a_stream_is_decodable_before_it_ends(server: Uvicorn) -> None:
    headers = {"Accept-Encoding": "br"}
    with httpx2.stream("GET", server.url + "/lines", headers=headers, timeout=5) as response:
        assert response.headers["content-encoding"] == "br"
        lines = response.iter_lines()
        # all the rows arrive decoded while the app still holds its last chunk back
        rows = [json.loads(next(lines)) for _ in ROWS]
        assert rows == ROWS
        httpx2.get(server.url + "/go", timeout=5)
        assert json.loads(next(lines)) == {"end": True}


def test_an_event_stream_is_not_compressed_or_held(server: Uvicorn) -> None:
    headers = {"Accept-Encoding": "zstd, br, gzip"}
    with httpx2.stream("GET", server.url + "/events", headers=headers, timeout=5) as response:
        assert "content-encoding" not in response.headers
        lines = response.iter_lines()
        assert next(lines) == "data: " + "x" * 2000
