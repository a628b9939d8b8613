"""CompressionMiddleware: the coding chosen, what is never compressed, the headers it changes,
streams flushed chunk by chunk, big bodies in a worker thread, and its configuration."""

from __future__ import annotations

import gzip
import json
import sys
import threading
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import brotli  # type: ignore[import-untyped]
import pytest
from backports import zstd

from starling._compressors import Stream
from starling.applications import Starling
from starling.middleware import Middleware
from starling.middleware.compression import (
    COMPRESSION_THREAD_LIMIT,
    CompressionMiddleware,
    _get_thread_limiter,
)
from starling.requests import Request
from starling.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starling.routing import Route
from starling.sse import EventSourceResponse
from starling.types import ASGIApp, Message, Receive, Scope, Send
from tests.types import TestClientFactory

pytestmark = pytest.mark.anyio

BODY = json.dumps([{"id": n, "name": f"item {n}", "tags": ["a", "b"]} for n in range(100)])
BODY_BYTES = BODY.encode()

DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "zstd": zstd.decompress,
}


def response_app(
    chunks: list[bytes],
    headers: list[tuple[bytes, bytes]] | None = None,
    status: int = 200,
    trailers: bool = False,
) -> ASGIApp:
    """Sends ``chunks`` as body messages (Content-Length when there is one chunk)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raw = [(b"content-type", b"application/json")] if headers is None else list(headers)
        if len(chunks) == 1:
            raw.append((b"content-length", str(len(chunks[0])).encode()))
        start: Message = {"type": "http.response.start", "status": status, "headers": raw}
        if trailers:
            start["trailers"] = True
        await send(start)
        for index, chunk in enumerate(chunks):
            more_body = index < len(chunks) - 1
            await send({"type": "http.response.body", "body": chunk, "more_body": more_body})
        if trailers:
            await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"1")]})

    return app


async def drive(
    app: ASGIApp, accept: bytes | None = b"zstd, br, gzip", method: str = "GET"
) -> list[Message]:
    headers = [] if accept is None else [(b"accept-encoding", accept)]
    scope: Scope = {"type": "http", "method": method, "path": "/", "headers": headers}
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}  # pragma: no cover (never read)

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def headers_of(sent: list[Message]) -> dict[bytes, bytes]:
    return dict(sent[0]["headers"])


def body_of(sent: list[Message]) -> bytes:
    return b"".join(m["body"] for m in sent if m["type"] == "http.response.body")


@pytest.mark.parametrize("coding", ["zstd", "br", "gzip"])
async def test_each_coding_compresses_a_body(coding: str) -> None:
    sent = await drive(CompressionMiddleware(response_app([BODY_BYTES])), coding.encode())
    headers = headers_of(sent)
    body = body_of(sent)
    assert headers[b"content-encoding"] == coding.encode()
    assert headers[b"content-length"] == str(len(body)).encode()
    assert headers[b"vary"] == b"Accept-Encoding"
    assert len(body) < len(BODY_BYTES) / 4
    assert DECODERS[coding](body) == BODY_BYTES


@pytest.mark.parametrize(
    ("accept", "coding"),
    [
        (b"gzip, deflate, br, zstd", b"zstd"),
        (b"gzip, br", b"br"),
        (b"br;q=0.5, gzip", b"gzip"),
        (b"*", b"zstd"),
        (b"x-gzip", b"gzip"),
    ],
)
async def test_the_coding_follows_accept_encoding(accept: bytes, coding: bytes) -> None:
    sent = await drive(CompressionMiddleware(response_app([BODY_BYTES])), accept)
    assert headers_of(sent)[b"content-encoding"] == coding


@pytest.mark.parametrize("accept", [None, b"", b"identity", b"deflate", b"gzip;q=0, *;q=0"])
async def test_identity_when_nothing_we_offer_is_acceptable(accept: bytes | None) -> None:
    sent = await drive(CompressionMiddleware(response_app([BODY_BYTES])), accept)
    assert b"content-encoding" not in headers_of(sent)
    assert headers_of(sent)[b"vary"] == b"Accept-Encoding"  # another client would get zstd
    assert body_of(sent) == BODY_BYTES


async def test_a_small_body_is_left_alone() -> None:
    app = CompressionMiddleware(response_app([b"x" * 499]))
    for accept in (b"gzip", None):
        sent = await drive(app, accept)
        assert headers_of(sent) == {b"content-type": b"application/json", b"content-length": b"499"}
    sent = await drive(CompressionMiddleware(response_app([b"x" * 10]), minimum_size=10))
    assert headers_of(sent)[b"content-encoding"] == b"zstd"


@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-type", b"image/png")],
        [(b"content-type", b"video/mp4")],
        [(b"content-type", b"text/event-stream; charset=utf-8")],
        [(b"content-type", b"application/json"), (b"content-encoding", b"br")],
    ],
)
async def test_never_compressed_and_no_vary(headers: list[tuple[bytes, bytes]]) -> None:
    sent = await drive(CompressionMiddleware(response_app([BODY_BYTES], headers)))
    assert b"vary" not in headers_of(sent)
    assert body_of(sent) == BODY_BYTES


async def test_the_exclusion_list_is_the_callers_but_event_streams_stay_excluded() -> None:
    png = response_app([BODY_BYTES], [(b"content-type", b"image/png")])
    sent = await drive(CompressionMiddleware(png, exclude_content_types=["application/pdf"]))
    assert headers_of(sent)[b"content-encoding"] == b"zstd"
    stream = response_app([BODY_BYTES], [(b"content-type", b"text/event-stream")])
    sent = await drive(CompressionMiddleware(stream, exclude_content_types=[]))
    assert b"content-encoding" not in headers_of(sent)
    pdf = response_app([BODY_BYTES], [(b"content-type", b"Application/PDF")])
    sent = await drive(CompressionMiddleware(pdf, exclude_content_types=["application/pdf"]))
    assert b"content-encoding" not in headers_of(sent)


async def test_a_response_without_a_media_type_is_compressed() -> None:
    sent = await drive(CompressionMiddleware(response_app([BODY_BYTES], [])))
    assert headers_of(sent)[b"content-encoding"] == b"zstd"


@pytest.mark.parametrize("status", [206, 304])
async def test_partial_and_not_modified_get_vary_only(status: int) -> None:
    sent = await drive(CompressionMiddleware(response_app([BODY_BYTES], status=status)))
    assert headers_of(sent)[b"vary"] == b"Accept-Encoding"
    assert b"content-encoding" not in headers_of(sent)
    assert body_of(sent) == BODY_BYTES


async def test_a_small_partial_response_gets_no_vary() -> None:
    sent = await drive(CompressionMiddleware(response_app([b"abc"], status=206)))
    assert b"vary" not in headers_of(sent)


@pytest.mark.parametrize("status", [101, 204])
async def test_no_body_statuses_pass_untouched(status: int) -> None:
    sent = await drive(CompressionMiddleware(response_app([b""], [], status=status)))
    assert sent[0]["headers"] == [(b"content-length", b"0")]


async def test_head_is_never_compressed_but_varies_like_get() -> None:
    async def head_app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(BODY_BYTES)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    sent = await drive(CompressionMiddleware(head_app), method="HEAD")
    assert headers_of(sent) == {
        b"content-length": str(len(BODY_BYTES)).encode(),
        b"vary": b"Accept-Encoding",
    }
    small = await drive(CompressionMiddleware(response_app([b"tiny"])), method="HEAD")
    assert b"vary" not in headers_of(small)


@pytest.mark.parametrize(
    ("vary", "expected"),
    [
        ([b"Origin"], b"Origin, Accept-Encoding"),
        ([b"Origin", b"Cookie"], b"Origin, Cookie, Accept-Encoding"),
        ([b"origin, accept-encoding"], b"origin, accept-encoding"),
        ([b"*"], b"*"),
    ],
)
async def test_vary_is_merged(vary: list[bytes], expected: bytes) -> None:
    headers = [(b"content-type", b"text/plain"), *((b"vary", value) for value in vary)]
    for accept in (b"gzip", b"identity"):
        sent = await drive(CompressionMiddleware(response_app([BODY_BYTES], headers)), accept)
        assert [value for key, value in sent[0]["headers"] if key == b"vary"] == [expected]


async def test_a_strong_etag_becomes_weak_when_compressed() -> None:
    for etag, expected in ((b'"abc"', b'W/"abc"'), (b'W/"abc"', b'W/"abc"')):
        headers = [(b"content-type", b"text/plain"), (b"etag", etag)]
        sent = await drive(CompressionMiddleware(response_app([BODY_BYTES], headers)))
        assert headers_of(sent)[b"etag"] == expected
        identity = await drive(CompressionMiddleware(response_app([BODY_BYTES], headers)), None)
        assert headers_of(identity)[b"etag"] == etag


@pytest.mark.parametrize("coding", ["zstd", "br", "gzip"])
async def test_a_stream_is_flushed_chunk_by_chunk(coding: str) -> None:
    """Every chunk decodes to what the app sent so far, before the next one exists."""
    chunks = [BODY_BYTES[:700], b"", BODY_BYTES[700:1500], BODY_BYTES[1500:]]
    decoders: dict[str, Any] = {
        "gzip": zlib.decompressobj(31),
        "br": brotli.Decompressor(),
        "zstd": zstd.ZstdDecompressor(),
    }
    decoder = decoders[coding]
    decode = decoder.decompress if coding != "br" else decoder.process
    seen = b""
    checked: list[bool] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/x-ndjson"), (b"content-length", b"1")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for index, chunk in enumerate(chunks):
            more = index < len(chunks) - 1
            await send({"type": "http.response.body", "body": chunk, "more_body": more})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        nonlocal seen
        sent.append(message)
        if message["type"] == "http.response.body":
            seen += decode(message["body"])
            checked.append(BODY_BYTES.startswith(seen) and len(seen) > 0)

    scope: Scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    scope["headers"] = [(b"accept-encoding", coding.encode())]
    await CompressionMiddleware(app)(scope, _never, send)
    headers = headers_of(sent)
    assert headers[b"content-encoding"] == coding.encode()
    assert b"content-length" not in headers
    assert seen == BODY_BYTES
    assert checked == [True, True, True, True]
    assert sent[2]["body"] == b""  # an empty chunk stays empty


async def _never() -> Message:
    raise AssertionError("never read")  # pragma: no cover (the apps here read no body)


async def test_trailers_after_a_held_start() -> None:
    sent = await drive(CompressionMiddleware(response_app([BODY_BYTES], trailers=True)))
    assert [m["type"] for m in sent] == [
        "http.response.start",
        "http.response.body",
        "http.response.trailers",
    ]
    assert b"content-length" not in headers_of(sent)  # trailers: the length is not known
    assert zstd.decompress(body_of(sent)) == BODY_BYTES

    async def trailers_only(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.trailers", "headers": []})

    sent = await drive(CompressionMiddleware(trailers_only))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.trailers"]


async def test_pathsend_and_early_hints_pass() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.early_hint", "links": ["</a.css>; rel=preload"]})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": "/tmp/file"})

    sent = await drive(CompressionMiddleware(app))
    assert [m["type"] for m in sent] == [
        "http.response.early_hint",
        "http.response.start",
        "http.response.pathsend",
    ]
    assert sent[1]["headers"] == []


async def test_a_body_before_the_start_is_an_error() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.body", "body": b"x"})

    with pytest.raises(RuntimeError, match="Expected ASGI message 'http.response.start'"):
        await drive(CompressionMiddleware(app))


async def test_other_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    await CompressionMiddleware(app)({"type": "lifespan"}, _never, _never)  # type: ignore[arg-type]
    assert seen == ["lifespan"]


class _RecordingStream:
    """A coding's stream that notes the thread each chunk is compressed in."""

    def __init__(self, stream: Stream, threads: list[int]) -> None:
        self.stream = stream
        self.threads = threads

    def chunk(self, data: bytes) -> bytes:
        self.threads.append(threading.get_ident())
        return self.stream.chunk(data)

    def finish(self, data: bytes) -> bytes:
        self.threads.append(threading.get_ident())
        return self.stream.finish(data)


@pytest.mark.parametrize("chunks", [[BODY_BYTES], [BODY_BYTES, b"tail"]], ids=["whole", "stream"])
async def test_big_bodies_are_compressed_in_a_worker_thread(chunks: list[bytes]) -> None:
    middleware = CompressionMiddleware(response_app(chunks), thread_minimum_size=1000)
    coding = middleware.codings["zstd"]
    whole, stream = coding.whole, coding.stream
    threads: list[int] = []

    def recording_whole(body: bytes) -> bytes:
        threads.append(threading.get_ident())
        return whole(body)

    coding.whole = recording_whole
    coding.stream = lambda: _RecordingStream(stream(), threads)
    sent = await drive(middleware)
    assert zstd.decompress(body_of(sent)) == b"".join(chunks)
    loop_thread = threading.get_ident()
    # the big chunk in a worker thread; a small final chunk ("tail") on the loop
    assert threads[0] != loop_thread
    assert threads[1:] == ([] if len(chunks) == 1 else [loop_thread])
    assert _get_thread_limiter().total_tokens == COMPRESSION_THREAD_LIMIT


async def test_the_thread_limiter_is_per_event_loop() -> None:
    assert _get_thread_limiter() is _get_thread_limiter()


def test_configuration() -> None:
    middleware = CompressionMiddleware(
        response_app([]),
        minimum_size=100,
        levels={"gzip": 9},
        encodings=("gzip", "br"),
        exclude_content_types=["Text/HTML ; q=1"],
    )
    assert middleware.encodings == ("gzip", "br")
    assert middleware.minimum_size == 100
    assert middleware.exclude_content_types == ("text/html",)
    assert gzip.decompress(middleware.codings["gzip"].whole(b"abc")) == b"abc"


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"encodings": "gzip"}, TypeError, r"encodings must be a sequence of coding names"),
        (
            {"encodings": ("gzip", "deflate")},
            ValueError,
            r"Unknown content coding\(s\) \['deflate'\]",
        ),
        ({"encodings": ("gzip", "gzip")}, ValueError, "lists a coding twice"),
        ({"levels": {"br": 5}, "encodings": ("gzip",)}, ValueError, r"not in encodings: \['br'\]"),
        ({"levels": {"gzip": 10}}, ValueError, "gzip level must be a whole number from 0 to 9"),
        ({"levels": {"br": -1}}, ValueError, "br level must be a whole number from 0 to 11"),
        ({"levels": {"zstd": 99}}, ValueError, "zstd level must be a whole number from"),
        ({"levels": {"gzip": True}}, ValueError, "gzip level"),
        ({"levels": {"gzip": 1.5}}, ValueError, "gzip level"),
    ],
)
def test_misconfiguration_fails_at_construction(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        CompressionMiddleware(response_app([]), **options)


@pytest.mark.parametrize(
    ("modules", "message"),
    [
        (["brotli"], r"br coding needs the brotli package: .*starling\[compress\]"),
        (["compression.zstd", "backports.zstd"], r"zstd coding needs .*starling\[compress\]"),
    ],
)
def test_a_missing_extra_names_what_to_install(
    monkeypatch: pytest.MonkeyPatch, modules: list[str], message: str
) -> None:
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(ImportError, match=message):
        CompressionMiddleware(response_app([]))
    CompressionMiddleware(response_app([]), encodings=("gzip",))  # gzip needs nothing


def test_levels_change_the_output() -> None:
    text = BODY_BYTES * 20
    fast = CompressionMiddleware(response_app([]), levels={"zstd": 1, "br": 0, "gzip": 1})
    small = CompressionMiddleware(response_app([]), levels={"zstd": 19, "br": 11, "gzip": 9})
    for name in ("zstd", "br", "gzip"):
        assert len(small.codings[name].whole(text)) < len(fast.codings[name].whole(text))


def test_through_an_app_and_its_client(test_client_factory: TestClientFactory) -> None:
    async def data(request: Request) -> Response:
        return JSONResponse(json.loads(BODY))

    async def lines(request: Request) -> Response:
        async def rows() -> AsyncIterator[str]:
            for row in json.loads(BODY):
                yield json.dumps(row) + "\n"

        return StreamingResponse(rows(), media_type="application/x-ndjson")

    async def small(request: Request) -> Response:
        return PlainTextResponse("small")

    async def events(request: Request) -> Response:
        return EventSourceResponse(["x" * 1000, "y" * 1000])

    app = Starling(
        routes=[
            Route("/data", data),
            Route("/lines", lines),
            Route("/small", small),
            Route("/events", events),
        ],
        middleware=[Middleware(CompressionMiddleware)],
    )
    client = test_client_factory(app)
    for accept in ("zstd", "br", "gzip"):
        response = client.get("/data", headers={"Accept-Encoding": accept})
        assert response.headers["content-encoding"] == accept
        assert response.json() == json.loads(BODY)
        response = client.get("/lines", headers={"Accept-Encoding": accept})
        assert response.headers["content-encoding"] == accept
        assert len(response.text.splitlines()) == 100
    assert "vary" not in client.get("/small").headers
    response = client.get("/events", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in response.headers
    assert response.text == "data: " + "x" * 1000 + "\n\ndata: " + "y" * 1000 + "\n\n"


def test_a_hostile_accept_encoding_is_a_normal_request(
    test_client_factory: TestClientFactory,
) -> None:
    async def data(request: Request) -> Response:
        return PlainTextResponse(BODY)

    app = Starling(routes=[Route("/", data)], middleware=[Middleware(CompressionMiddleware)])
    client = test_client_factory(app)
    for accept in (
        ", ".join(f"coding{n};q=0.{n % 1000:03d}" for n in range(5000)),
        "gzip;q=" + "9" * 5000,
        "gzip;q=1e308, br;q=nan, zstd;q=-1",
        "\x00\x01gzip",
    ):
        response = client.get("/", headers={"Accept-Encoding": accept})
        assert response.status_code == 200
        assert response.text == BODY
        assert "content-encoding" not in response.headers
