"""Gzip compression of HTTP responses for clients that accept it.

A response is compressed when the client lists ``gzip`` (or ``x-gzip``) with a non-zero
quality in Accept-Encoding, the response has no Content-Encoding, is not a 206 partial
response, its media type is not excluded, and it either streams (``more_body``) or its single
body is at least ``minimum_size`` bytes. A streamed response is flushed per chunk, so that
server-sent events and long polls reach the client as they are produced.

The response start is held until the first body shows whether to compress, unless it already
rules compression out (then it goes out at once). Early hints go out at once; trailers and
pathsend follow the start; other message types are dropped, as in Starlette.

The zlib compressor is only created once a body is compressed. A chunk of at least
``thread_minimum_size`` bytes is compressed in a worker thread, so that one large response
does not stall the event loop; at most GZIP_THREAD_LIMIT such threads run per event loop.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterable, Sequence
from typing import NoReturn

import anyio
import anyio.lowlevel
import anyio.to_thread

from starling.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_EXCLUDED_CONTENT_TYPES = (
    "application/grpc",
    "application/gzip",
    "application/x-gzip",
    "application/zip",
    "audio/*",
    "font/woff",
    "font/woff2",
    "image/avif",
    "image/gif",
    "image/jpeg",
    "image/png",
    "image/webp",
    "text/event-stream",
    "video/*",
)

# A body chunk of at least this many bytes is compressed in a worker thread (128 KiB: level 9
# takes a few milliseconds on it, long enough to delay every other request on the loop).
DEFAULT_THREAD_MINIMUM_SIZE = 131072
# Worker threads compressing at once, per event loop.
GZIP_THREAD_LIMIT = 40
# Accept-Encoding items read; a real header lists a handful.
MAX_ACCEPT_ENCODING_ITEMS = 64

_GZIP_CODINGS = frozenset({"gzip", "x-gzip"})
_SENT_AFTER_START = frozenset({"http.response.trailers", "http.response.pathsend"})
_gzip_capacity_limiter: anyio.lowlevel.RunVar[anyio.CapacityLimiter] = anyio.lowlevel.RunVar(
    "_gzip_capacity_limiter"
)


def _get_gzip_capacity_limiter() -> anyio.CapacityLimiter:
    """The event loop's limiter for compression threads, created on first use."""
    try:
        return _gzip_capacity_limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(GZIP_THREAD_LIMIT)
        _gzip_capacity_limiter.set(limiter)
        return limiter


def _normalize_content_types(content_types: Sequence[str]) -> tuple[str, ...]:
    """Media types as compared: lower case, without parameters or surrounding spaces."""
    return tuple(item.split(";", 1)[0].strip().lower() for item in content_types)


class _Exclusions:
    """Which media types an exclusion list matches, worked out once per list."""

    def __init__(self, content_types: tuple[str, ...]) -> None:
        self.exact = frozenset(item for item in content_types if not item.endswith("/*"))
        # "audio/*" matches every subtype of audio (and a bare "audio").
        self.top_level = frozenset(item[:-2] for item in content_types if item.endswith("/*"))
        # gRPC is sent as "application/grpc+proto" etc.: all of them stream.
        self.grpc = "application/grpc" in self.exact

    def match(self, content_type: str) -> bool:
        media_type = content_type.split(";", 1)[0].strip().lower()
        # An event stream is never compressed, whatever the list says: each event must reach the
        # client as it is sent, through proxies that buffer compressed bodies too.
        if media_type in self.exact or media_type == "text/event-stream":
            return True
        if self.grpc and media_type.startswith("application/grpc+"):
            return True
        return bool(self.top_level) and media_type.partition("/")[0] in self.top_level


@functools.lru_cache(maxsize=64)
def _exclusions(content_types: tuple[str, ...]) -> _Exclusions:
    # Keyed on configuration, not on anything a client sends: worked out once per list.
    return _Exclusions(_normalize_content_types(content_types))


def _accepts_gzip(scope: Scope) -> bool:
    """Whether Accept-Encoding lists gzip or x-gzip with a quality above zero.

    Codings are case-insensitive and compared whole ("gzipx" is not gzip). "*" is not read as
    gzip. A q value that is not a number is ignored, as if absent. Repeated Accept-Encoding
    headers are one list.
    """
    values = [value for key, value in scope["headers"] if key == b"accept-encoding"]
    if not values:
        return False
    value = b",".join(values).decode("latin-1").lower()
    if "gzip" not in value:
        return False  # PERF: most requests without gzip decide here
    items = value.split(",", MAX_ACCEPT_ENCODING_ITEMS)[:MAX_ACCEPT_ENCODING_ITEMS]
    for item in items:
        coding, _, params = item.partition(";")
        if coding.strip() in _GZIP_CODINGS:
            return not params or _quality(params) > 0
    return False


# Parameters read after a coding; a real one has at most a q value.
MAX_CODING_PARAMETERS = 16


def _quality(params: str) -> float:
    # APPSEC: a bounded number of parameters: "gzip;;;;..." would cost a Python step per ";".
    for param in params.split(";", MAX_CODING_PARAMETERS)[:MAX_CODING_PARAMETERS]:
        name, _, value = param.partition("=")
        if name.strip() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 1.0
    return 1.0


class GZipMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        minimum_size: int = 500,
        compresslevel: int = 9,
        thread_minimum_size: int = DEFAULT_THREAD_MINIMUM_SIZE,
        *,
        exclude_content_types: Sequence[str] = DEFAULT_EXCLUDED_CONTENT_TYPES,
    ) -> None:
        self.app = app
        self.minimum_size = minimum_size
        self.compresslevel = compresslevel
        self.thread_minimum_size = thread_minimum_size
        self.exclude_content_types = _normalize_content_types(exclude_content_types)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        responder: IdentityResponder
        if _accepts_gzip(scope):
            responder = GZipResponder(
                self.app,
                self.minimum_size,
                self.compresslevel,
                thread_minimum_size=self.thread_minimum_size,
                exclude_content_types=self.exclude_content_types,
            )
        else:
            responder = IdentityResponder(
                self.app, self.minimum_size, exclude_content_types=self.exclude_content_types
            )
        await responder(scope, receive, send)


class IdentityResponder:
    """Sends the response as is, adding ``Vary: Accept-Encoding`` where gzip would apply."""

    def __init__(
        self,
        app: ASGIApp,
        minimum_size: int,
        *,
        exclude_content_types: Sequence[str] = DEFAULT_EXCLUDED_CONTENT_TYPES,
    ) -> None:
        self.app = app
        self.minimum_size = minimum_size
        self.exclude_content_types = tuple(exclude_content_types)
        self.send: Send = unattached_send
        self.initial_message: Message = {}
        self.started = False
        self.content_encoding_set = False
        self.content_type_is_excluded = False
        self.partial_response = False
        # Set once the first body is sent through apply_compression (and the headers say so).
        self.compressing = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.send = send
        await self.app(scope, receive, self.send_with_compression)

    async def send_with_compression(self, message: Message) -> None:
        message_type = message["type"]
        if message_type == "http.response.start":
            await self._start(message)
        elif message_type == "http.response.body":
            await self._body(message)
        elif message_type == "http.response.early_hint":
            # A 103 response precedes the final one: it goes out at once, ahead of a held start.
            await self.send(message)
        elif message_type in _SENT_AFTER_START:
            # Trailers end the response; pathsend replaces the body, which is then not ours to
            # compress. Either way the start goes out first, unchanged if still held.
            await self._release_start()
            await self.send(message)
        # Any other message type is dropped, as Starlette does.

    async def _start(self, message: Message) -> None:
        self.initial_message = message
        content_type: bytes | None = None
        for key, value in message.get("headers", ()):
            if key == b"content-encoding":
                self.content_encoding_set = True
            elif key == b"content-type" and content_type is None:
                content_type = value
        self.content_type_is_excluded = content_type is not None and _exclusions(
            self.exclude_content_types
        ).match(content_type.decode("latin-1"))
        self.partial_response = message["status"] == 206
        if self.content_encoding_set or self.content_type_is_excluded or self.partial_response:
            # Never compressed: the start goes out now (an event stream's client sees it
            # before the first event is produced).
            await self._release_start()
        # Otherwise held until the first body shows whether the body is worth compressing.

    async def _release_start(self) -> None:
        if not self.started:
            self.started = True
            await self.send(self.initial_message)

    async def _body(self, message: Message) -> None:
        if self.started:
            if self.compressing:
                message["body"] = await self.apply_compression(
                    message.get("body", b""), more_body=message.get("more_body", False)
                )
            await self.send(message)
        elif not self.initial_message:
            raise RuntimeError(
                "Expected ASGI message 'http.response.start', but got 'http.response.body'."
            )
        else:
            self.started = True
            await self._send_first_body(message)

    async def _send_first_body(self, message: Message) -> None:
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if not more_body and len(body) < self.minimum_size:
            await self.send(self.initial_message)
            await self.send(message)
            return
        self.compressing = True
        message["body"] = body = await self.apply_compression(body, more_body=more_body)
        start = self.initial_message
        start["headers"] = self._response_headers(start.get("headers", ()), body, more_body)
        await self.send(start)
        await self.send(message)

    def _response_headers(
        self, raw: Iterable[tuple[bytes, bytes]], body: bytes, more_body: bool
    ) -> list[tuple[bytes, bytes]]:
        """The identity body is unchanged, and so are its headers, beyond Vary."""
        return _rewrite_headers(raw)

    async def apply_compression(self, body: bytes, *, more_body: bool) -> bytes:
        """The body to send for one chunk; the identity coding sends it unchanged."""
        return body


class GZipResponder(IdentityResponder):
    """Compresses the response body, chunk by chunk."""

    def __init__(
        self,
        app: ASGIApp,
        minimum_size: int,
        compresslevel: int = 9,
        *,
        thread_minimum_size: int = DEFAULT_THREAD_MINIMUM_SIZE,
        exclude_content_types: Sequence[str] = DEFAULT_EXCLUDED_CONTENT_TYPES,
    ) -> None:
        super().__init__(app, minimum_size, exclude_content_types=exclude_content_types)
        self.compresslevel = compresslevel
        self.thread_minimum_size = thread_minimum_size
        self._compressor: zlib._Compress | None = None

    @property
    def compressor(self) -> zlib._Compress:
        """The gzip stream, created with the first compressed chunk."""
        if self._compressor is None:
            self._compressor = zlib.compressobj(self.compresslevel, zlib.DEFLATED, 16 + 15)
        return self._compressor

    def _response_headers(
        self, raw: Iterable[tuple[bytes, bytes]], body: bytes, more_body: bool
    ) -> list[tuple[bytes, bytes]]:
        if more_body or self.initial_message.get("trailers", False):
            # The length is unknown until the end (chunked transfer carries the trailers).
            return _rewrite_headers(raw, encoding=b"gzip", drop_length=True)
        return _rewrite_headers(raw, encoding=b"gzip", length=str(len(body)).encode("latin-1"))

    async def apply_compression(self, body: bytes, *, more_body: bool) -> bytes:
        if len(body) >= self.thread_minimum_size:
            return await anyio.to_thread.run_sync(
                self._compress_body, body, more_body, limiter=_get_gzip_capacity_limiter()
            )
        return self._compress_body(body, more_body)

    def _compress_body(self, body: bytes, more_body: bool) -> bytes:
        compressor = self.compressor
        data = compressor.compress(body)
        # A sync flush per streamed chunk: the client can decode everything sent so far.
        tail = compressor.flush(zlib.Z_SYNC_FLUSH if more_body else zlib.Z_FINISH)
        return data + tail


def _rewrite_headers(
    raw: Iterable[tuple[bytes, bytes]],
    encoding: bytes | None = None,
    length: bytes | None = None,
    drop_length: bool = False,
) -> list[tuple[bytes, bytes]]:
    """``raw`` with "Accept-Encoding" added to Vary, in one pass and as a new list.

    With ``encoding``, Content-Encoding is set; Content-Length is dropped (``drop_length``) or
    set to ``length``. The result equals MutableHeaders' ``add_vary_header`` then item sets: a
    set header takes the place of its first occurrence, or goes at the end.
    """
    headers: list[tuple[bytes, bytes]] = []
    varies: list[bytes] = []
    vary_index = length_index = -1
    rewrite_length = drop_length or length is not None
    for item in raw:
        key = item[0]
        if key == b"vary":
            if vary_index < 0:
                vary_index = len(headers)
                headers.append(item)
            varies.append(item[1])
        elif key == b"content-length" and rewrite_length:
            if length_index < 0 and not drop_length:
                length_index = len(headers)
                headers.append(item)
        else:
            headers.append(item)
    varies.append(b"Accept-Encoding")
    vary = (b"vary", b", ".join(varies))
    if vary_index < 0:
        headers.append(vary)
    else:
        headers[vary_index] = vary
    if encoding is not None:
        headers.append((b"content-encoding", encoding))
    if length is not None:
        if length_index < 0:
            headers.append((b"content-length", length))
        else:
            headers[length_index] = (b"content-length", length)
    return headers


async def unattached_send(message: Message) -> NoReturn:
    raise RuntimeError("send awaitable not set")
