"""Response compression with zstd, brotli or gzip, chosen from the request's Accept-Encoding.

The coding is the acceptable one with the greatest q-value (RFC 9110 §12.5.3), ties going to
the first of ``encodings`` (zstd, br, gzip by default). A response is compressed when it has no
Content-Encoding, its status is not 1xx, 204, 206 or 304, the request is not HEAD, its media
type is not excluded (event streams never are compressed, whatever the list says), and it
either streams (``more_body``) or its single body is at least ``minimum_size`` bytes. A
streamed response is flushed per chunk, so each chunk reaches the client decodable on its own.

``Vary: Accept-Encoding`` is added whenever the request's Accept-Encoding could have changed the
response, compressed or not (a 304 or 206 included), so that caches keep the versions apart.
A compressed response's strong ETag becomes weak: the bytes differ from the identity ones.

The response start is held until the first body shows whether to compress, unless it already
rules compression out. A body (or chunk) of ``thread_minimum_size`` bytes or more is
compressed in a worker thread, so that one big response does not stall the event loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import anyio
import anyio.lowlevel
import anyio.to_thread

from starling._accept_encoding import choose_coding, parse_accept_encoding
from starling._compressors import DEFAULT_LEVELS, PREFERENCE, Coding, Stream, load
from starling.middleware.gzip import (
    DEFAULT_EXCLUDED_CONTENT_TYPES,
    DEFAULT_THREAD_MINIMUM_SIZE,
    _exclusions,
    _normalize_content_types,
)
from starling.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "COMPRESSION_THREAD_LIMIT",
    "DEFAULT_EXCLUDED_CONTENT_TYPES",
    "DEFAULT_LEVELS",
    "DEFAULT_THREAD_MINIMUM_SIZE",
    "PREFERENCE",
    "CompressionMiddleware",
]

# Worker threads compressing at once, per event loop.
COMPRESSION_THREAD_LIMIT: Final = 40

_NO_BODY_STATUSES = frozenset({204, 304})
_SENT_AFTER_START = frozenset({"http.response.trailers", "http.response.pathsend"})
_thread_limiter: anyio.lowlevel.RunVar[anyio.CapacityLimiter] = anyio.lowlevel.RunVar(
    "_compression_thread_limiter"
)


def _get_thread_limiter() -> anyio.CapacityLimiter:
    try:
        return _thread_limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(COMPRESSION_THREAD_LIMIT)
        _thread_limiter.set(limiter)
        return limiter


class CompressionMiddleware:
    """Compresses responses with zstd, brotli or gzip, as the client accepts.

    ``levels`` sets a level per coding (``{"zstd": 4, "br": 4, "gzip": 4}`` by default: zstd
    levels 1 to 22, brotli 0 to 11, gzip 0 to 9). ``encodings`` lists the codings to offer, in
    the order that breaks ties. zstd and brotli need the ``compress`` extra.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        minimum_size: int = 500,
        levels: Mapping[str, int] | None = None,
        encodings: Sequence[str] = PREFERENCE,
        exclude_content_types: Sequence[str] = DEFAULT_EXCLUDED_CONTENT_TYPES,
        thread_minimum_size: int = DEFAULT_THREAD_MINIMUM_SIZE,
    ) -> None:
        if isinstance(encodings, str):
            raise TypeError(f"encodings must be a sequence of coding names, e.g. ({encodings!r},).")
        unknown = [name for name in encodings if name not in PREFERENCE]
        if unknown:
            raise ValueError(
                f"Unknown content coding(s) {unknown}: "
                f"CompressionMiddleware speaks {', '.join(PREFERENCE)}."
            )
        unknown_levels = set(levels or ()) - set(encodings)
        if unknown_levels:
            raise ValueError(f"levels names coding(s) not in encodings: {sorted(unknown_levels)}.")
        if len(set(encodings)) != len(encodings):
            raise ValueError(f"encodings lists a coding twice: {list(encodings)}.")
        chosen_levels = {**DEFAULT_LEVELS, **(levels or {})}
        self.app = app
        self.minimum_size = minimum_size
        self.thread_minimum_size = thread_minimum_size
        self.codings = {name: load(name, chosen_levels[name]) for name in encodings}
        self.encodings = tuple(self.codings)
        self.exclude_content_types = _normalize_content_types(exclude_content_types)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        coding: Coding | None = None
        head = scope["method"] == "HEAD"
        if not head:
            values = [value for key, value in scope["headers"] if key == b"accept-encoding"]
            if values:
                name = choose_coding(parse_accept_encoding(values), self.encodings)
                coding = None if name is None else self.codings[name]
        responder = _Responder(self, coding, head, send)
        await self.app(scope, receive, responder.send)


class _Responder:
    """One response through the middleware: holds the start, then compresses it or not."""

    def __init__(
        self, middleware: CompressionMiddleware, coding: Coding | None, head: bool, send: Send
    ) -> None:
        self.minimum_size = middleware.minimum_size
        self.thread_minimum_size = middleware.thread_minimum_size
        self.exclusions = _exclusions(middleware.exclude_content_types)
        self.coding = coding
        self.head = head
        self.downstream = send
        self.start: Message | None = None
        self.started = False
        self.stream: Stream | None = None

    async def send(self, message: Message) -> None:
        message_type = message["type"]
        if message_type == "http.response.start":
            await self._start(message)
        elif message_type == "http.response.body":
            await self._body(message)
        elif message_type in _SENT_AFTER_START:
            # Trailers end the response; pathsend replaces the body (the server sends a file,
            # which is not ours to compress). The start goes out first, unchanged if held.
            await self._release_start()
            await self.downstream(message)
        else:
            # An early hint (a 103 precedes the final response), or a message we do not know.
            await self.downstream(message)

    async def _start(self, message: Message) -> None:
        self.start = message
        headers = message.get("headers", ())
        encoded = False
        content_type = length = None
        for key, value in headers:
            if key == b"content-encoding":
                encoded = True
            elif key == b"content-type" and content_type is None:
                content_type = value
            elif key == b"content-length" and length is None:
                length = value
        status = message["status"]
        if (
            encoded
            or status < 200
            or status == 204
            or (content_type is not None and self.exclusions.match(content_type.decode("latin-1")))
        ):
            await self._release_start()  # never compressed, whatever the request said
        elif self.head or status == 206 or status == 304:
            # Not compressed, but a GET with another Accept-Encoding could have been: caches
            # must keep them apart (a 304 stands for the 200 that would have been sent).
            if not _below(length, self.minimum_size):
                message["headers"] = _with_vary(headers)
            await self._release_start()
        # Otherwise held until the first body shows whether it is worth compressing.

    async def _release_start(self) -> None:
        if not self.started:
            self.started = True
            assert self.start is not None
            await self.downstream(self.start)

    async def _body(self, message: Message) -> None:
        if self.started:
            if self.stream is not None:
                body = message.get("body", b"")
                more_body = message.get("more_body", False)
                if body or not more_body:
                    message["body"] = await self._compress(body, more_body)
            await self.downstream(message)
            return
        start = self.start
        if start is None:
            raise RuntimeError(
                "Expected ASGI message 'http.response.start', but got 'http.response.body'."
            )
        self.started = True
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        coding = self.coding
        headers = start.get("headers", ())
        if not more_body and len(body) < self.minimum_size:
            pass  # too small to be worth it, whatever the request said: no Vary either
        elif coding is None:
            start["headers"] = _with_vary(headers)
        else:
            streaming = more_body or start.get("trailers", False)
            if streaming:
                self.stream = coding.stream()
            message["body"] = body = await self._compress(body, more_body)
            length = None if streaming else str(len(body)).encode("latin-1")
            start["headers"] = _compressed_headers(headers, coding.header, length)
        await self.downstream(start)
        await self.downstream(message)

    async def _compress(self, body: bytes, more_body: bool) -> bytes:
        """``body`` compressed: a whole body, or one chunk of the stream (then flushed)."""
        stream = self.stream
        if stream is None:
            assert self.coding is not None
            compress = self.coding.whole
        else:
            compress = stream.chunk if more_body else stream.finish
        if len(body) >= self.thread_minimum_size:
            return await anyio.to_thread.run_sync(compress, body, limiter=_get_thread_limiter())
        return compress(body)


def _below(length: bytes | None, minimum_size: int) -> bool:
    """Whether a Content-Length says the body is too small to compress."""
    return (
        length is not None and length.isdigit() and len(length) < 20 and int(length) < minimum_size
    )


def _vary(values: list[bytes]) -> bytes:
    """The Vary value: the app's, with Accept-Encoding added unless already there (or *)."""
    listed = {item.strip().lower() for value in values for item in value.split(b",")}
    if b"accept-encoding" in listed or b"*" in listed:
        return b", ".join(values)
    return b", ".join([*values, b"Accept-Encoding"])


def _with_vary(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``raw`` as a new list, with Accept-Encoding in its Vary header (one, at the end)."""
    headers: list[tuple[bytes, bytes]] = []
    varies: list[bytes] = []
    for item in raw:
        if item[0] == b"vary":
            varies.append(item[1])
        else:
            headers.append(item)
    headers.append((b"vary", _vary(varies)))
    return headers


def _compressed_headers(
    raw: Iterable[tuple[bytes, bytes]], encoding: bytes, length: bytes | None
) -> list[tuple[bytes, bytes]]:
    """The headers of the compressed body: a new list, the app's own left as it was."""
    headers: list[tuple[bytes, bytes]] = []
    varies: list[bytes] = []
    for key, value in raw:
        if key == b"vary":
            varies.append(value)
        elif key == b"etag" and not value.startswith(b"W/"):
            # The compressed bytes are not the identity ones: only weakly the same (RFC 9110
            # §8.8.3), so a Range request with If-Range never mixes the two.
            headers.append((key, b"W/" + value))
        elif key != b"content-length":
            headers.append((key, value))
    headers.append((b"vary", _vary(varies)))
    headers.append((b"content-encoding", encoding))
    if length is not None:
        headers.append((b"content-length", length))
    return headers
