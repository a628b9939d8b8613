"""HTTP responses: ASGI apps that send a status, a header list built once, and a body."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from email.utils import formatdate
from functools import lru_cache
from mimetypes import guess_type
from secrets import token_hex
from typing import Any, Literal
from urllib.parse import quote

import anyio
import anyio.to_thread

from starling._cookie_header import build_set_cookie
from starling._headers import header_name as _header_name
from starling._headers import header_value as _header_value
from starling._ranges import MAX_RANGES, multipart_closing, parse_range_header
from starling._ranges import MalformedRangeHeader as MalformedRangeHeader  # public here
from starling._ranges import RangeNotSatisfiable as RangeNotSatisfiable  # public here
from starling._ranges import generate_multipart as _generate_multipart
from starling.background import BackgroundTask
from starling.concurrency import iterate_in_threadpool
from starling.datastructures import URL, MutableHeaders
from starling.requests import ClientDisconnect
from starling.types import Message, Receive, Scope, Send

# The stdlib reads the system's MIME type files on first use: do it at import, not on the event
# loop when the first FileResponse guesses a type.
guess_type("index.html")

Content = str | bytes | memoryview
SyncContentStream = Iterable[Content]
AsyncContentStream = AsyncIterable[Content]
ContentStream = AsyncContentStream | SyncContentStream


def _encode_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(_header_name(key), _header_value(value)) for key, value in headers.items()]


# (media_type, charset) -> Content-Type header. The keys come from application code, not from
# clients; the cap only guards against an application that makes up media types per request.
# PERF: whole header tuples (immutable, so shared safely by every response's list).
_content_types: dict[tuple[str, str], tuple[bytes, bytes]] = {}
_CONTENT_TYPES_CACHE_SIZE = 256

# Content-Length headers for bodies of fewer bytes than this, built once (tuples: shared safely).
_SMALL_LENGTHS = 1024
_SMALL_CONTENT_LENGTHS = [
    (b"content-length", str(n).encode("latin-1")) for n in range(_SMALL_LENGTHS)
]


def _content_type_header(media_type: str, charset: str) -> tuple[bytes, bytes]:
    """The Content-Type header not found in ``_content_types`` (the caller looked), cached."""
    key = (media_type, charset)
    if media_type.startswith("text/") and "charset=" not in media_type.lower():
        media_type += "; charset=" + charset
    header = (b"content-type", _header_value(media_type))
    if len(_content_types) < _CONTENT_TYPES_CACHE_SIZE:
        _content_types[key] = header
    return header


def _setdefault(raw: list[tuple[bytes, bytes]], name: bytes, value: bytes) -> None:
    """MutableHeaders.setdefault on a raw list: add only when ``name`` is absent."""
    for key, _ in raw:
        if key == name:
            return
    raw.append((name, value))


def _set(raw: list[tuple[bytes, bytes]], name: bytes, value: bytes) -> None:
    """MutableHeaders.__setitem__ on a raw list: the first entry is replaced, later ones dropped."""
    found = [index for index, (key, _) in enumerate(raw) if key == name]
    for index in reversed(found[1:]):
        del raw[index]
    if found:
        raw[found[0]] = (name, value)
    else:
        raw.append((name, value))


def _first(raw: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in raw:
        if key == name:
            return value
    return None


def _websocket_denial_send(send: Send) -> Send:
    """A response sent on a websocket scope rejects the handshake (the denial extension)."""

    async def denial_send(message: Message) -> None:
        message["type"] = "websocket." + message["type"]
        await send(message)

    return denial_send


@lru_cache(maxsize=16)
def _spec_version_at_least_2_4(version: Any) -> bool:
    # The server's constant, not client input: safe to cache.
    try:
        parsed = tuple(int(part) for part in version.split("."))
    except (AttributeError, ValueError):
        return False  # unreadable: listen for http.disconnect, which works on every version
    return parsed >= (2, 4)


def _send_raises_on_disconnect(scope: Scope) -> bool:
    """ASGI 2.4: send() raises OSError once the client is gone, so no listener is needed."""
    version = scope.get("asgi", {}).get("spec_version", "2.0")
    try:
        return _spec_version_at_least_2_4(version)
    except TypeError:  # an unhashable spec_version
        return False


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break


async def _run_until_disconnect(
    stream: Callable[[], Awaitable[None]], listen: Callable[[], Awaitable[None]]
) -> None:
    """Run ``stream`` while ``listen`` waits for the disconnect; the first to finish stops both.

    A failure comes out as itself, not wrapped in the task group's ExceptionGroup.
    """
    collapsed: BaseException | None = None
    try:
        async with anyio.create_task_group() as task_group:

            async def listen_then_cancel() -> None:
                await listen()
                task_group.cancel_scope.cancel()

            task_group.start_soon(listen_then_cancel)
            await stream()
            task_group.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) != 1:  # pragma: no cover (stream and receive failing at once)
            raise
        collapsed = group.exceptions[0]
    if collapsed is not None:
        # raised outside the except block so that the group does not become its __context__
        raise collapsed


def _headers_for_200(
    length: int, media_type: str | None, charset: str
) -> list[tuple[bytes, bytes]]:
    """init_headers(None)'s list for a status-200 body of ``length`` bytes."""
    raw = [
        _SMALL_CONTENT_LENGTHS[length]
        if length < _SMALL_LENGTHS
        else (b"content-length", str(length).encode("latin-1"))
    ]
    if media_type is not None:
        header = _content_types.get((media_type, charset))
        raw.append(header if header is not None else _content_type_header(media_type, charset))
    return raw


class Response:
    media_type: str | None = None
    charset = "utf-8"

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
        self.background = background
        cls = self.__class__
        # PERF: the commonest response (text, status 200, no extra headers, render and
        # init_headers not overridden) built here with what those two would do (measured:
        # 0.71 -> 0.52 µs per PlainTextResponse).
        if (
            content.__class__ is str
            and headers is None
            and status_code == 200
            and cls.render is _RENDER
            and cls.init_headers is _INIT_HEADERS
        ):
            charset = self.charset
            body: bytes | memoryview = content.encode(charset)
            self.body = body
            # _headers_for_200(), inlined (measured: -0.08 µs of ~2.6 µs per hello request)
            length = len(body)
            raw = [
                _SMALL_CONTENT_LENGTHS[length]
                if length < _SMALL_LENGTHS
                else (b"content-length", str(length).encode("latin-1"))
            ]
            media_type = self.media_type
            if media_type is not None:
                header = _content_types.get((media_type, charset))
                raw.append(
                    header if header is not None else _content_type_header(media_type, charset)
                )
            self.raw_headers = raw
            return
        self.body = self.render(content)
        self.init_headers(headers)

    def render(self, content: Any) -> bytes | memoryview:
        if content is None:
            return b""
        if isinstance(content, bytes):
            return content
        if isinstance(content, memoryview):
            # a strided view cannot be sent as it is: copy it into one contiguous buffer
            return content if content.c_contiguous else content.tobytes()
        return content.encode(self.charset)  # type: ignore[no-any-return]

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        if headers is None:
            raw_headers: list[tuple[bytes, bytes]] = []
            populate_content_length = populate_content_type = True
        else:
            raw_headers = _encode_headers(headers)
            names = {name for name, _ in raw_headers}
            populate_content_length = b"content-length" not in names
            populate_content_type = b"content-type" not in names

        body = getattr(self, "body", None)
        status_code = self.status_code
        if (
            body is not None
            and populate_content_length
            # RFC 9110 §8.6: no Content-Length on 1xx and 204; on 304 it would describe another body
            and not (status_code < 200 or status_code == 204 or status_code == 304)
        ):
            length = body.nbytes if isinstance(body, memoryview) else len(body)
            # PERF: small bodies share prebuilt header tuples (measured: -0.1 µs per response)
            if length < _SMALL_LENGTHS:
                raw_headers.append(_SMALL_CONTENT_LENGTHS[length])
            else:
                raw_headers.append((b"content-length", str(length).encode("latin-1")))

        media_type = self.media_type
        if media_type is not None and populate_content_type:
            # PERF: the cache is read here first (measured: one call of ~22 per request fewer)
            header = _content_types.get((media_type, self.charset))
            if header is None:
                header = _content_type_header(media_type, self.charset)
            raw_headers.append(header)

        self.raw_headers = raw_headers

    @property
    def headers(self) -> MutableHeaders:
        headers: MutableHeaders | None = getattr(self, "_headers", None)
        if headers is None or headers.raw is not self.raw_headers:
            headers = self._headers = MutableHeaders(raw=self.raw_headers)
        return headers

    def set_cookie(
        self,
        key: str,
        value: str = "",
        max_age: int | None = None,
        expires: datetime | str | int | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: Literal["lax", "strict", "none"] | None = "lax",
        partitioned: bool = False,
    ) -> None:
        cookie = build_set_cookie(
            key, value, max_age, expires, path, domain, secure, httponly, samesite, partitioned
        )
        self.raw_headers.append((b"set-cookie", cookie.encode("latin-1")))

    def delete_cookie(
        self,
        key: str,
        path: str = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: Literal["lax", "strict", "none"] | None = "lax",
        partitioned: bool = False,
    ) -> None:
        self.set_cookie(
            key,
            max_age=0,
            expires=0,
            path=path,
            domain=domain,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
            partitioned=partitioned,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            send = _websocket_denial_send(send)
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": "http.response.body", "body": self.body})
        if self.background is not None:
            await self.background()


# What Response.__init__ compares a class's methods with before taking its fast path.
_RENDER = Response.render
_INIT_HEADERS = Response.init_headers


class HTMLResponse(Response):
    media_type = "text/html"


class PlainTextResponse(Response):
    media_type = "text/plain"


# The encoder behind JSONResponse.render (see there for the PERF measurement).
_json_dumps = json.dumps
_json_encoder = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
)
# JSONEncoder.encode() with the options above is this C encoder (see JSONResponse.render)
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_json_default = _json_encoder.default
_encode_str = json.encoder.encode_basestring
# Without markers the C encoder keeps no state between calls: one serves every response.
_encode_without_markers: Any = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(None, _json_default, _encode_str, None, ":", ",", False, False, False)
)


class JSONResponse(Response):
    media_type = "application/json"

    def __init__(
        self,
        content: Any,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        # PERF: Response.__init__'s body, not a super() call (measured: one frame fewer)
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
        self.background = background
        body = self.body = self.render(content)
        cls = self.__class__
        # PERF: init_headers(None) for status 200, as in Response.__init__
        if headers is None and status_code == 200 and cls.init_headers is _INIT_HEADERS:
            self.raw_headers = _headers_for_200(len(body), self.media_type, self.charset)
            return
        self.init_headers(headers)

    def render(self, content: Any) -> bytes:
        if json.dumps is not _json_dumps:
            # json.dumps was replaced (apps patch it to change serialisation, tests to watch
            # it): honour the replacement, as a plain json.dumps call would
            return json.dumps(
                content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
            ).encode("utf-8")
        # PERF: the same output from one encoder made at import: about 1.4 us less per
        # response than json.dumps with arguments, which builds an encoder per call
        if _c_make_encoder is None:  # pragma: no cover (a Python built without _json)
            return _json_encoder.encode(content).encode("utf-8")
        # PERF: what _json_encoder.encode() runs (the C encoder, fresh circular-reference
        # markers), without its two Python frames (measured: -1.2 us per response)
        # PERF: first without the circular-reference markers (measured: -0.2 µs of ~1 µs):
        # a cycle then ends in RecursionError, and the encoding is redone with them so that
        # it raises json's own ValueError("Circular reference detected"), as json.dumps does.
        try:
            chunks = _encode_without_markers(content, 0)
        except RecursionError:
            encode = _c_make_encoder(
                {}, _json_default, _encode_str, None, ":", ",", False, False, False
            )
            chunks = encode(content, 0)
        return "".join(chunks).encode("utf-8")


# Characters a Location keeps as they are; everything else (space, quotes, CR, LF, non-ASCII
# as UTF-8) is percent-encoded, and an existing %XX is left alone.
_LOCATION_SAFE = ":/%#?=@[]!$&'()*+,;"


class RedirectResponse(Response):
    def __init__(
        self,
        url: str | URL,
        status_code: int = 307,
        headers: Mapping[str, str] | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        super().__init__(
            content=b"", status_code=status_code, headers=headers, background=background
        )
        location = quote(str(url), safe=_LOCATION_SAFE).encode("latin-1")
        _set(self.raw_headers, b"location", location)


class StreamingResponse(Response):
    body_iterator: AsyncContentStream

    def __init__(
        self,
        content: ContentStream,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        if isinstance(content, AsyncIterable):
            self.body_iterator = content
        else:
            self.body_iterator = iterate_in_threadpool(content)
        self.status_code = status_code
        self.media_type = self.media_type if media_type is None else media_type
        self.background = background
        self.init_headers(headers)

    async def listen_for_disconnect(self, receive: Receive) -> None:
        await _wait_for_disconnect(receive)

    async def stream_response(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        charset = self.charset
        async for chunk in self.body_iterator:
            if not isinstance(chunk, (bytes, memoryview)):
                chunk = chunk.encode(charset)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            send = _websocket_denial_send(send)
        if _send_raises_on_disconnect(scope):
            await self.stream_response(_disconnect_raising_send(send))
        elif scope["type"] != "http":
            # a denial response on a WebSocket: its receive() speaks WebSocket messages
            await self.stream_response(send)
        else:
            await _run_until_disconnect(
                lambda: self.stream_response(send), lambda: self.listen_for_disconnect(receive)
            )
        if self.background is not None:
            await self.background()


def _disconnect_raising_send(send: Send) -> Send:
    """ASGI 2.4: an OSError from send() means the client left; report it as ClientDisconnect.

    Only send() is wrapped, so an OSError raised by the body iterator itself stays an OSError.
    """

    async def checked_send(message: Message) -> None:
        try:
            await send(message)
        except OSError as exc:
            raise ClientDisconnect() from exc

    return checked_send


def _stat_file(path: str | os.PathLike[str]) -> os.stat_result:
    try:
        stat_result = os.stat(path)
    except FileNotFoundError:
        raise RuntimeError(f"File at path {path} does not exist.") from None
    if not stat.S_ISREG(stat_result.st_mode):
        raise RuntimeError(f"File at path {path} is not a file.")
    return stat_result


def _stat_headers(stat_result: os.stat_result) -> list[tuple[bytes, bytes]]:
    """Content-Length, Last-Modified and an ETag (md5 of "mtime-size"), as Starlette makes them."""
    etag_base = f"{stat_result.st_mtime}-{stat_result.st_size}".encode()
    etag = hashlib.md5(etag_base, usedforsecurity=False).hexdigest()
    return [
        (b"content-length", str(stat_result.st_size).encode("latin-1")),
        (b"last-modified", formatdate(stat_result.st_mtime, usegmt=True).encode("latin-1")),
        (b"etag", f'"{etag}"'.encode("latin-1")),
    ]


def _range_headers(scope: Scope) -> tuple[bytes | None, bytes | None]:
    """The first Range and If-Range values of the request."""
    range_header = if_range = None
    for name, value in scope["headers"]:
        if name == b"range" and range_header is None:
            range_header = value
        elif name == b"if-range" and if_range is None:
            if_range = value
    return range_header, if_range


def _start(status: int, headers: list[tuple[bytes, bytes]]) -> Message:
    return {"type": "http.response.start", "status": status, "headers": headers}


class FileResponse(Response):
    chunk_size = 64 * 1024
    max_ranges = MAX_RANGES

    def __init__(
        self,
        path: str | os.PathLike[str],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
        filename: str | None = None,
        stat_result: os.stat_result | None = None,
        content_disposition_type: str = "attachment",
    ) -> None:
        self.path = path
        self.status_code = status_code
        self.filename = filename
        if media_type is None:
            media_type = guess_type(filename or path)[0] or "application/octet-stream"
        self.media_type = media_type
        self.background = background
        self.init_headers(headers)
        _setdefault(self.raw_headers, b"accept-ranges", b"bytes")
        if filename is not None:
            _setdefault(
                self.raw_headers,
                b"content-disposition",
                _header_value(_content_disposition(content_disposition_type, filename)),
            )
        self.stat_result = stat_result
        if stat_result is not None:
            self.set_stat_headers(stat_result)

    def set_stat_headers(self, stat_result: os.stat_result) -> None:
        for name, value in _stat_headers(stat_result):
            _setdefault(self.raw_headers, name, value)

    def generate_multipart(
        self,
        ranges: Sequence[tuple[int, int]],
        boundary: str,
        max_size: int,
        content_type: str,
    ) -> tuple[int, Callable[[int, int], bytes]]:
        return _generate_multipart(ranges, boundary, max_size, content_type)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            body_send, method = _websocket_denial_send(send), "GET"
        else:
            body_send, method = send, scope["method"].upper()

        stat_result = self.stat_result
        if stat_result is None:
            stat_result = await anyio.to_thread.run_sync(_stat_file, self.path)
            # a copy: the instance stays unchanged and reusable, each call sees the file as it is
            headers = list(self.raw_headers)
            for name, value in _stat_headers(stat_result):
                _setdefault(headers, name, value)
        else:
            headers = self.raw_headers

        ranges = None
        if self.status_code == 200 and method in ("GET", "HEAD"):
            try:
                ranges = self._requested_ranges(scope, headers, stat_result.st_size)
            except MalformedRangeHeader as exc:
                await PlainTextResponse(exc.content, status_code=400)(scope, receive, send)
                return
            except RangeNotSatisfiable as exc:
                unsatisfiable = PlainTextResponse(
                    status_code=416, headers={"Content-Range": f"bytes */{exc.max_size}"}
                )
                await unsatisfiable(scope, receive, send)
                return

        header_only = method == "HEAD"
        # decided before the coroutine exists, so that it cannot be left un-awaited; a HEAD
        # response or a WebSocket denial sends no file, so nothing is worth interrupting
        listen = not (header_only or scope["type"] != "http" or _send_raises_on_disconnect(scope))
        if not ranges:
            pathsend = "http.response.pathsend" in (scope.get("extensions") or ())
            # as in Starlette: the server sends the file at once, so no receive() is made
            listen = listen and not pathsend
            respond = self._respond_whole(body_send, headers, header_only, pathsend)
        elif len(ranges) == 1:
            start, end = ranges[0]
            respond = self._respond_range(
                body_send, headers, start, end, stat_result.st_size, header_only
            )
        else:
            respond = self._respond_ranges(
                body_send, headers, ranges, stat_result.st_size, header_only
            )

        if listen:
            await _run_until_disconnect(lambda: respond, lambda: _wait_for_disconnect(receive))
        else:
            await respond
        if self.background is not None:
            await self.background()

    def _requested_ranges(
        self, scope: Scope, headers: list[tuple[bytes, bytes]], file_size: int
    ) -> list[tuple[int, int]] | None:
        """The byte ranges to send, or None for the whole file."""
        range_header, if_range = _range_headers(scope)
        if range_header is None:
            return None
        # If-Range (RFC 9110 §13.1.5): ranges only while the validator still matches, compared
        # strongly, so a weak entity tag never matches
        if if_range is not None and (
            if_range.startswith(b"W/")
            or if_range not in (_first(headers, b"etag"), _first(headers, b"last-modified"))
        ):
            return None
        return parse_range_header(range_header.decode("latin-1"), file_size, self.max_ranges)

    async def _respond_whole(
        self,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        header_only: bool,
        pathsend: bool,
    ) -> None:
        if header_only:
            await send(_start(self.status_code, headers))
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        elif pathsend:
            await send(_start(self.status_code, headers))
            # the ASGI extension asks for an absolute path; abspath may ask the OS for the cwd
            path = os.fspath(self.path)
            if not os.path.isabs(path):
                path = await anyio.to_thread.run_sync(os.path.abspath, path)
            await send({"type": "http.response.pathsend", "path": path})
        else:
            chunk_size = self.chunk_size
            # opened before the start message, so a vanished file fails before anything is sent
            async with await anyio.open_file(self.path, mode="rb") as file:
                await send(_start(self.status_code, headers))
                more_body = True
                while more_body:
                    chunk = await file.read(chunk_size)
                    more_body = len(chunk) == chunk_size
                    await send(
                        {"type": "http.response.body", "body": chunk, "more_body": more_body}
                    )

    async def _respond_range(
        self,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        start: int,
        end: int,
        file_size: int,
        header_only: bool,
    ) -> None:
        headers = list(headers)
        _set(headers, b"content-length", str(end - start).encode("latin-1"))
        headers.append((b"content-range", f"bytes {start}-{end - 1}/{file_size}".encode("latin-1")))
        if header_only:
            await send(_start(206, headers))
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        async with await anyio.open_file(self.path, mode="rb") as file:
            await send(_start(206, headers))
            await file.seek(start)
            await self._send_file_range(send, file, start, end, last=True)

    async def _respond_ranges(
        self,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        ranges: list[tuple[int, int]],
        file_size: int,
        header_only: bool,
    ) -> None:
        boundary = token_hex(13)
        content_type = (_first(headers, b"content-type") or b"").decode("latin-1")
        content_length, part_header = self.generate_multipart(
            ranges, boundary, file_size, content_type
        )
        headers = list(headers)
        content_type_value = f"multipart/byteranges; boundary={boundary}".encode("latin-1")
        _set(headers, b"content-type", content_type_value)
        _set(headers, b"content-length", str(content_length).encode("latin-1"))
        if header_only:
            await send(_start(206, headers))
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        async with await anyio.open_file(self.path, mode="rb") as file:
            await send(_start(206, headers))
            for start, end in ranges:
                await send(
                    {
                        "type": "http.response.body",
                        "body": part_header(start, end),
                        "more_body": True,
                    }
                )
                await file.seek(start)
                await self._send_file_range(send, file, start, end, last=False)
                await send({"type": "http.response.body", "body": b"\r\n", "more_body": True})
            closing = multipart_closing(boundary)
            await send({"type": "http.response.body", "body": closing, "more_body": False})

    async def _send_file_range(
        self, send: Send, file: anyio.AsyncFile[bytes], start: int, end: int, last: bool
    ) -> None:
        """Bytes ``start`` to ``end - 1`` (the file is already there), in chunk_size pieces."""
        position = start
        while position < end:
            chunk = await file.read(min(self.chunk_size, end - position))
            if not chunk:  # the file shrank since it was measured
                if not last:
                    # mid multipart: the Content-Length sent can no longer be honoured
                    raise RuntimeError(f"File at path {self.path} is shorter than expected.")
                break
            position += len(chunk)
            more_body = not last or position < end
            await send({"type": "http.response.body", "body": chunk, "more_body": more_body})
        if last and position < end:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def _content_disposition(disposition_type: str, filename: str) -> str:
    quoted = quote(filename)
    if quoted != filename:
        # RFC 6266 §4.3 / RFC 5987: non-token-safe names travel percent-encoded as UTF-8
        return f"{disposition_type}; filename*=utf-8''{quoted}"
    return f'{disposition_type}; filename="{filename}"'
