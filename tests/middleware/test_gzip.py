"""GZipMiddleware: when it compresses, the headers it changes, streaming, trailers, threads."""

from __future__ import annotations

import threading
import zlib
from collections.abc import AsyncIterator

import pytest

from starling.applications import Starling
from starling.middleware import Middleware
from starling.middleware.gzip import (
    DEFAULT_EXCLUDED_CONTENT_TYPES,
    DEFAULT_THREAD_MINIMUM_SIZE,
    GZIP_THREAD_LIMIT,
    MAX_ACCEPT_ENCODING_ITEMS,
    GZipMiddleware,
    GZipResponder,
    IdentityResponder,
    _accepts_gzip,
    _get_gzip_capacity_limiter,
    _normalize_content_types,
    unattached_send,
)
from starling.requests import Request
from starling.responses import PlainTextResponse, StreamingResponse
from starling.routing import Route
from starling.types import ASGIApp, Message, Receive, Scope, Send
from tests.types import TestClientFactory

GZIP = [(b"accept-encoding", b"gzip")]


def responder_app(
    chunks: list[bytes],
    headers: list[tuple[bytes, bytes]] | None = None,
    status: int = 200,
    trailers: list[tuple[bytes, bytes]] | None = None,
) -> ASGIApp:
    """An app that sends ``chunks`` as body messages, with Content-Length when not streaming."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raw = [(b"content-type", b"text/plain")] if headers is None else list(headers)
        if len(chunks) == 1:
            raw.append((b"content-length", str(len(chunks[0])).encode()))
        start: Message = {"type": "http.response.start", "status": status, "headers": raw}
        if trailers is not None:
            start["trailers"] = True
        await send(start)
        for index, chunk in enumerate(chunks):
            more_body = index < len(chunks) - 1
            await send({"type": "http.response.body", "body": chunk, "more_body": more_body})
        if trailers is not None:
            await send({"type": "http.response.trailers", "headers": trailers})

    return app


async def drive(app: ASGIApp, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    scope: Scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}  # pragma: no cover (never read)

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def body_of(sent: list[Message]) -> bytes:
    return b"".join(m["body"] for m in sent if m["type"] == "http.response.body")


def test_configuration() -> None:
    middleware = GZipMiddleware(hello_app, exclude_content_types=["Text/HTML ", "image/*; q=1"])
    assert middleware.minimum_size == 500
    assert middleware.compresslevel == 9
    assert middleware.thread_minimum_size == DEFAULT_THREAD_MINIMUM_SIZE == 131072
    assert middleware.exclude_content_types == ("text/html", "image/*")
    assert GZipMiddleware(hello_app).exclude_content_types == DEFAULT_EXCLUDED_CONTENT_TYPES
    assert "text/event-stream" in DEFAULT_EXCLUDED_CONTENT_TYPES
    assert _normalize_content_types([" A/B ;x=1"]) == ("a/b",)


async def hello_app(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("x" * 1000)(scope, receive, send)


def test_compresses_a_large_response(test_client_factory: TestClientFactory) -> None:
    def homepage(request: Request) -> PlainTextResponse:
        return PlainTextResponse("x" * 4000, headers={"X-Custom": "1"})

    app = Starling(routes=[Route("/", homepage)], middleware=[Middleware(GZipMiddleware)])
    client = test_client_factory(app)
    response = client.get("/", headers={"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert response.text == "x" * 4000
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Accept-Encoding"
    assert int(response.headers["content-length"]) < 4000
    assert response.headers["x-custom"] == "1"


def test_no_gzip_accepted(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(GZipMiddleware(hello_app))
    response = client.get("/", headers={"accept-encoding": "identity"})
    assert response.text == "x" * 1000
    assert "content-encoding" not in response.headers
    assert response.headers["content-length"] == "1000"
    # The response would have been compressed for another client: caches must know.
    assert response.headers["vary"] == "Accept-Encoding"


def test_small_response_is_not_compressed(test_client_factory: TestClientFactory) -> None:
    def homepage(request: Request) -> PlainTextResponse:
        return PlainTextResponse("OK")

    app = Starling(routes=[Route("/", homepage)], middleware=[Middleware(GZipMiddleware)])
    client = test_client_factory(app)
    for encoding in ("gzip", "identity"):
        response = client.get("/", headers={"accept-encoding": encoding})
        assert response.text == "OK"
        assert "content-encoding" not in response.headers
        assert "vary" not in response.headers
        assert response.headers["content-length"] == "2"


@pytest.mark.anyio
async def test_minimum_size_boundary_and_header_order() -> None:
    sent = await drive(GZipMiddleware(responder_app([b"x" * 499])), GZIP)
    assert sent[0]["headers"] == [(b"content-type", b"text/plain"), (b"content-length", b"499")]
    sent = await drive(GZipMiddleware(responder_app([b"x" * 500])), GZIP)
    body = body_of(sent)
    # Byte for byte what Starlette sends: zlib's gzip stream at level 9.
    assert body.hex() == "1f8b0800000000000203aba81805230d000051ceb20af4010000"
    assert sent[0]["headers"] == [
        (b"content-type", b"text/plain"),
        (b"content-length", str(len(body)).encode()),
        (b"vary", b"Accept-Encoding"),
        (b"content-encoding", b"gzip"),
    ]


@pytest.mark.anyio
async def test_custom_minimum_size_and_level() -> None:
    sent = await drive(GZipMiddleware(responder_app([b""]), minimum_size=0), GZIP)
    assert body_of(sent).hex() == "1f8b080000000000020303000000000000000000"
    sent = await drive(GZipMiddleware(responder_app([b"x" * 600]), compresslevel=1), GZIP)
    body = body_of(sent)
    assert body[8] == 4  # XFL: fastest compression
    assert zlib.decompress(body, 31) == b"x" * 600


@pytest.mark.anyio
async def test_missing_content_length_is_added() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [], "x": 1})
        await send({"type": "http.response.body", "body": b"x" * 600, "y": 2})

    sent = await drive(GZipMiddleware(app), GZIP)
    length = str(len(sent[1]["body"])).encode()
    assert sent[0]["headers"] == [
        (b"vary", b"Accept-Encoding"),
        (b"content-encoding", b"gzip"),
        (b"content-length", length),
    ]
    assert sent[0]["x"] == 1 and sent[1]["y"] == 2  # other message keys are kept
    sent = await drive(GZipMiddleware(app), [])
    assert sent[0]["headers"] == [(b"vary", b"Accept-Encoding")]


@pytest.mark.anyio
async def test_streaming_flushes_every_chunk() -> None:
    sent = await drive(GZipMiddleware(responder_app([b"a" * 10, b"", b"b" * 10, b""])), GZIP)
    assert sent[0]["headers"] == [
        (b"content-type", b"text/plain"),
        (b"vary", b"Accept-Encoding"),
        (b"content-encoding", b"gzip"),
    ]
    decompressor = zlib.decompressobj(31)
    # Every chunk can be decoded as soon as it arrives.
    assert decompressor.decompress(sent[1]["body"]) == b"a" * 10
    assert decompressor.decompress(sent[2]["body"]) == b""
    assert decompressor.decompress(sent[3]["body"]) == b"b" * 10
    assert sent[1]["more_body"] and sent[3]["more_body"] and not sent[4]["more_body"]
    assert decompressor.decompress(sent[4]["body"]) == b""
    assert decompressor.eof


@pytest.mark.anyio
async def test_streaming_identity_keeps_content_length() -> None:
    app = GZipMiddleware(responder_app([b"a" * 10, b"b" * 10]))
    sent = await drive(app, [])
    assert sent[0]["headers"] == [(b"content-type", b"text/plain"), (b"vary", b"Accept-Encoding")]
    assert body_of(sent) == b"a" * 10 + b"b" * 10


def test_streaming_response(test_client_factory: TestClientFactory) -> None:
    async def numbers() -> AsyncIterator[str]:
        for number in range(100):
            yield f"{number},"

    def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(numbers(), media_type="text/plain")

    app = Starling(routes=[Route("/", stream)], middleware=[Middleware(GZipMiddleware)])
    client = test_client_factory(app)
    response = client.get("/", headers={"accept-encoding": "gzip"})
    assert response.text == "".join(f"{n}," for n in range(100))
    assert response.headers["content-encoding"] == "gzip"
    assert "content-length" not in response.headers


@pytest.mark.parametrize(
    "content_type",
    [
        b"text/event-stream; charset=utf-8",
        b"TEXT/EVENT-STREAM ; charset=x",
        b"Image/PNG",
        b"video/mp4",
        b"audio",
        b"application/grpc",
        b"application/grpc+proto",
        b"font/woff2",
    ],
)
@pytest.mark.anyio
async def test_excluded_content_types(content_type: bytes) -> None:
    app = GZipMiddleware(responder_app([b"x" * 1000], [(b"content-type", content_type)]))
    for headers in (GZIP, []):
        sent = await drive(app, headers)
        assert sent[0]["headers"][-1] == (b"content-length", b"1000")
        assert not any(name in (b"vary", b"content-encoding") for name, _ in sent[0]["headers"])
        assert body_of(sent) == b"x" * 1000


@pytest.mark.parametrize(
    "content_type",
    [b"videox/mp4", b"application/grpc-web", b"image/svg+xml", b"image/png+x", b"font/woff2x"],
)
@pytest.mark.anyio
async def test_not_excluded_content_types(content_type: bytes) -> None:
    app = GZipMiddleware(responder_app([b"x" * 1000], [(b"content-type", content_type)]))
    sent = await drive(app, GZIP)
    assert (b"content-encoding", b"gzip") in sent[0]["headers"]


@pytest.mark.anyio
async def test_custom_exclusions() -> None:
    excluded = ["Text/Plain", "x/*"]
    for content_type, compressed in [
        (b"text/plain", False),
        (b"x/y", False),
        (b"xy/z", True),
        (b"application/grpc", True),
    ]:
        app = GZipMiddleware(
            responder_app([b"x" * 1000], [(b"content-type", content_type)]),
            exclude_content_types=excluded,
        )
        sent = await drive(app, GZIP)
        assert ((b"content-encoding", b"gzip") in sent[0]["headers"]) is compressed


@pytest.mark.anyio
async def test_streaming_excluded_type_passes_through() -> None:
    app = GZipMiddleware(responder_app([b"a", b"b"], [(b"content-type", b"text/event-stream")]))
    sent = await drive(app, GZIP)
    assert [m.get("body") for m in sent[1:]] == [b"a", b"b"]
    assert not any(name == b"content-encoding" for name, _ in sent[0]["headers"])


@pytest.mark.anyio
async def test_existing_content_encoding_and_partial_content() -> None:
    app = GZipMiddleware(responder_app([b"x" * 1000], [(b"content-encoding", b"br")]))
    sent = await drive(app, GZIP)
    assert sent[0]["headers"].count((b"content-encoding", b"br")) == 1
    assert body_of(sent) == b"x" * 1000
    sent = await drive(GZipMiddleware(responder_app([b"x" * 1000], status=206)), GZIP)
    assert sent[0]["status"] == 206
    assert body_of(sent) == b"x" * 1000
    assert not any(name == b"vary" for name, _ in sent[0]["headers"])


@pytest.mark.anyio
async def test_existing_vary_is_extended() -> None:
    app = GZipMiddleware(responder_app([b"x" * 1000], [(b"vary", b"Origin")]))
    sent = await drive(app, GZIP)
    assert sent[0]["headers"][0] == (b"vary", b"Origin, Accept-Encoding")


@pytest.mark.anyio
async def test_head_response_is_not_compressed() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # What a HEAD response sends: the length of the body it leaves out.
        start = {"type": "http.response.start", "status": 200}
        await send({**start, "headers": [(b"content-length", b"1000")]})
        await send({"type": "http.response.body", "body": b""})

    sent = await drive(GZipMiddleware(app), GZIP)
    assert sent[0]["headers"] == [(b"content-length", b"1000")]
    assert body_of(sent) == b""


@pytest.mark.anyio
async def test_trailers_are_kept() -> None:
    trailers = [(b"x-checksum", b"1")]
    sent = await drive(GZipMiddleware(responder_app([b"x" * 1000], trailers=trailers)), GZIP)
    assert sent[0]["trailers"] is True
    # Trailers go with chunked encoding: the Content-Length is dropped, not rewritten.
    assert not any(name == b"content-length" for name, _ in sent[0]["headers"])
    assert zlib.decompress(body_of(sent), 31) == b"x" * 1000
    assert sent[-1] == {"type": "http.response.trailers", "headers": trailers}

    sent = await drive(GZipMiddleware(responder_app([b"x", b"y"], trailers=trailers)), GZIP)
    assert zlib.decompress(body_of(sent), 31) == b"xy"
    assert sent[-1]["type"] == "http.response.trailers"

    sent = await drive(GZipMiddleware(responder_app([b"x" * 1000], trailers=trailers)), [])
    assert (b"content-length", b"1000") in sent[0]["headers"]
    assert sent[-1]["type"] == "http.response.trailers"


@pytest.mark.anyio
async def test_extension_message_instead_of_a_body() -> None:
    # FileResponse sends "http.response.pathsend" when the server offers it.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": "/x"})

    sent = await drive(GZipMiddleware(app, minimum_size=0), GZIP)
    assert sent == [
        {"type": "http.response.start", "status": 200, "headers": []},
        {"type": "http.response.pathsend", "path": "/x"},
    ]


def recording_app(messages: list[Message], sent: list[Message], seen: list[int]) -> ASGIApp:
    """Sends ``messages``; ``seen`` gets how many messages had gone out after each one."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for message in messages:
            await send(dict(message))
            seen.append(len(sent))

    return app


async def drive_recording(
    messages: list[Message], headers: list[tuple[bytes, bytes]]
) -> tuple[list[Message], list[int]]:
    sent: list[Message] = []
    seen: list[int] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}  # pragma: no cover (never read)

    scope: Scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}
    await GZipMiddleware(recording_app(messages, sent, seen))(scope, receive, send)
    return sent, seen


def start_message(content_type: bytes = b"text/plain", status: int = 200) -> Message:
    headers = [(b"content-type", content_type)]
    return {"type": "http.response.start", "status": status, "headers": headers}


BODY: Message = {"type": "http.response.body", "body": b"x" * 1000}
HINT: Message = {"type": "http.response.early_hint", "links": [b"</a.css>; rel=preload"]}


@pytest.mark.parametrize("accept", [GZIP, []])
@pytest.mark.parametrize(
    "start",
    [
        start_message(b"text/event-stream"),
        start_message(b"image/png"),
        start_message(status=206),
        {**start_message(), "headers": [(b"content-encoding", b"br")]},
    ],
)
@pytest.mark.anyio
async def test_start_goes_out_at_once_when_never_compressed(
    accept: list[tuple[bytes, bytes]], start: Message
) -> None:
    # An event stream's client gets the headers before the app produces its first event.
    sent, seen = await drive_recording([start, BODY], accept)
    assert seen == [1, 2]
    assert sent[0]["headers"] == start["headers"]
    assert sent[1]["body"] == b"x" * 1000
    # Nothing else follows: the start is not sent twice.
    sent, seen = await drive_recording([start], accept)
    assert seen == [1]


@pytest.mark.parametrize("accept", [GZIP, []])
@pytest.mark.anyio
async def test_start_is_held_until_the_first_body(accept: list[tuple[bytes, bytes]]) -> None:
    sent, seen = await drive_recording([start_message(), BODY], accept)
    assert seen == [0, 2]
    assert (b"vary", b"Accept-Encoding") in sent[0]["headers"]
    # A response that ends without a body sends nothing, as Starlette.
    sent, seen = await drive_recording([start_message()], accept)
    assert sent == []


@pytest.mark.parametrize("accept", [GZIP, []])
@pytest.mark.anyio
async def test_early_hints_go_out_at_once(accept: list[tuple[bytes, bytes]]) -> None:
    sent, seen = await drive_recording([HINT, start_message(), HINT, BODY], accept)
    assert seen == [1, 1, 2, 4]
    types = [message["type"] for message in sent]
    assert types == [HINT["type"], HINT["type"], "http.response.start", "http.response.body"]
    assert sent[0] == HINT
    # Once the start is out, a hint simply follows it.
    sent, seen = await drive_recording([start_message(b"image/png"), HINT, BODY], accept)
    assert [message["type"] for message in sent] == [
        "http.response.start",
        HINT["type"],
        "http.response.body",
    ]


@pytest.mark.anyio
async def test_other_message_types_are_dropped() -> None:
    # As Starlette: an extension message it does not know is not forwarded, and in
    # particular does not make the held start go out without its gzip headers.
    debug: Message = {"type": "http.response.debug", "info": {}}
    other: Message = {"type": "http.response.other"}
    chunk: Message = {"type": "http.response.body", "body": b"x" * 1000, "more_body": True}
    messages = [debug, start_message(), other, chunk, other, BODY, other]
    sent, seen = await drive_recording(messages, GZIP)
    assert [message["type"] for message in sent] == ["http.response.start"] + [
        "http.response.body"
    ] * 2
    assert (b"content-encoding", b"gzip") in sent[0]["headers"]
    assert zlib.decompress(body_of(sent), 31) == b"x" * 2000
    sent, seen = await drive_recording([start_message(b"image/png"), other, BODY], [])
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]


@pytest.mark.anyio
async def test_trailers_without_a_body_follow_the_start() -> None:
    # Starlette sends the trailers alone, dropping the held start (an invalid ASGI sequence).
    trailers: Message = {"type": "http.response.trailers", "headers": [(b"x-t", b"1")]}
    start = {**start_message(), "trailers": True}
    sent, seen = await drive_recording([start, trailers], GZIP)
    assert sent == [start, trailers]
    assert seen == [0, 2]


@pytest.mark.anyio
async def test_body_before_start() -> None:
    with pytest.raises(RuntimeError, match="Expected ASGI message 'http.response.start'"):
        await drive_recording([BODY], GZIP)


def accepts(*values: bytes) -> bool:
    return _accepts_gzip({"type": "http", "headers": [(b"accept-encoding", v) for v in values]})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("gzip", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("deflate, gzip", True),
        ("br,gzip;q=0.5", True),
        ("gzip ;q=1", True),
        ("gzip; level=1", True),
        ("gzip;q=abc", True),
        ("gzip;q=0", False),
        ("gzip; q=0.000", False),
        ("deflate", False),
        ("*", False),
        ("identity", False),
        ("agzip", False),
        ("gzipx", False),
        ("", False),
        ("GZIP;Q=0", False),
        ("gzip;q=0.5;x=1", True),
    ],
)
def test_accept_encoding_parsing(value: str, expected: bool) -> None:
    assert accepts(value.encode()) is expected


def test_accept_encoding_limits() -> None:
    assert accepts(b"br", b"gzip")
    many = b",".join([b"br"] * MAX_ACCEPT_ENCODING_ITEMS)
    assert not accepts(many + b",gzip")
    assert accepts(many[3:] + b",gzip")
    assert not _accepts_gzip({"type": "http", "headers": [(b"host", b"x")]})


@pytest.mark.anyio
async def test_compressor_is_lazy() -> None:
    responder = GZipResponder(responder_app([b"small"]), 500)
    await drive(responder, GZIP)
    assert responder._compressor is None
    assert responder.compressor is responder.compressor
    identity = IdentityResponder(responder_app([b"x" * 1000]), 500)
    assert await identity.apply_compression(b"abc", more_body=False) == b"abc"


@pytest.mark.anyio
async def test_apply_compression() -> None:
    responder = GZipResponder(hello_app, 500, compresslevel=1)
    first = await responder.apply_compression(b"hello", more_body=True)
    assert first.endswith(b"\x00\x00\xff\xff")
    last = await responder.apply_compression(b"world", more_body=False)
    assert zlib.decompress(first + last, 31) == b"helloworld"


@pytest.mark.anyio
async def test_large_chunks_compress_in_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[threading.Thread] = []
    compress_body = GZipResponder._compress_body

    def recording(self: GZipResponder, body: bytes, more_body: bool) -> bytes:
        threads.append(threading.current_thread())
        return compress_body(self, body, more_body)

    monkeypatch.setattr(GZipResponder, "_compress_body", recording)
    app = GZipMiddleware(
        responder_app([b"x" * 600, b"y" * 99, b"z" * 600]), thread_minimum_size=100
    )
    sent = await drive(app, GZIP)
    assert zlib.decompress(body_of(sent), 31) == b"x" * 600 + b"y" * 99 + b"z" * 600
    main = threading.current_thread()
    assert [thread is main for thread in threads] == [False, True, False]


@pytest.mark.anyio
async def test_thread_limiter_is_per_event_loop() -> None:
    limiter = _get_gzip_capacity_limiter()
    assert limiter is _get_gzip_capacity_limiter()
    assert limiter.total_tokens == GZIP_THREAD_LIMIT


@pytest.mark.anyio
async def test_unattached_send() -> None:
    with pytest.raises(RuntimeError, match="send awaitable not set"):
        await unattached_send({"type": "http.response.start"})


@pytest.mark.anyio
async def test_other_scopes_pass_through() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    for scope_type in ("websocket", "lifespan"):
        scope: Scope = {"type": scope_type, "headers": GZIP}
        await GZipMiddleware(app)(scope, None, None)  # type: ignore[arg-type]
        assert seen[-1] is scope


def test_websocket(test_client_factory: TestClientFactory) -> None:
    async def ws_app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "x" * 1000})
        await send({"type": "websocket.close"})

    client = test_client_factory(GZipMiddleware(ws_app))
    with client.websocket_connect("/", headers={"accept-encoding": "gzip"}) as websocket:
        assert websocket.receive_text() == "x" * 1000


@pytest.mark.anyio
async def test_repeated_response_headers() -> None:
    headers = [(b"vary", b"A"), (b"vary", b"B"), (b"content-length", b"1000")] * 2
    sent = await drive(GZipMiddleware(responder_app([b"x" * 1000], headers)), GZIP)
    length = str(len(sent[1]["body"])).encode()
    assert sent[0]["headers"] == [
        (b"vary", b"A, B, A, B, Accept-Encoding"),
        (b"content-length", length),
        (b"content-encoding", b"gzip"),
    ]
