"""Form body parsers: urlencoded (FormParser) and multipart/form-data (MultiPartParser)."""

from __future__ import annotations

import codecs
import io
import os
import re
import warnings
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from enum import Enum
from tempfile import SpooledTemporaryFile
from typing import Any, BinaryIO, cast
from urllib.parse import unquote_plus

import anyio
import anyio.to_thread

from starling._formerrors import FileTooLarge, MultiPartException
from starling._multipart import MultipartParser, parse_options_header
from starling._urlencoded import UrlencodedParser
from starling.datastructures import FormData, Headers, UploadFile, _form_data
from starling.exceptions import StarletteDeprecationWarning

__all__ = ["FormMessage", "FormParser", "MultiPartException", "MultiPartParser", "MultipartPart"]

# Bytes of file data queued before one trip to a worker thread writes them to disk: one thread
# hop per 2 MiB rather than one per received chunk, and never more than this held in memory.
WRITE_BATCH_SIZE = 2 * 1024 * 1024

_HAS_WRITEV = hasattr(os, "writev")
# How many buffers one writev call may take (POSIX guarantees at least 16; Linux has 1024).
_IOV_MAX = 1024

# Codecs under which an ASCII name reads the same as under latin-1: the common case skips the
# re-encoding a decode with the form's charset needs.
_ASCII_COMPATIBLE = frozenset({"utf-8", "iso8859-1", "ascii", "cp1252"})

# What browsers send: form-data; name="..."; filename="...", no escapes. Anything else goes
# through the general parameter parser, which reads this shape the same way.
_SIMPLE_DISPOSITION = re.compile(rb'form-data; name="([^"\\]*)"(?:; filename="([^"\\]*)")?')
# What clients send as the request's Content-Type; anything else takes the general parser.
# (PERF: case-insensitive only where it matters; the class already holds both cases.)
_SIMPLE_CONTENT_TYPE = re.compile(r"(?i:multipart/form-data; ?boundary=)([!#-'*-+\--9A-Z^-~]+)")


class FormMessage(Enum):
    FIELD_START = 1
    FIELD_NAME = 2
    FIELD_DATA = 3
    FIELD_END = 4
    END = 5


_FORM_MESSAGE_DEPRECATED = "`FormMessage` is deprecated and will be removed in a future version."


def _deprecated_form_message(cls: type[FormMessage], value: object) -> FormMessage:
    # Starlette 1.10 deprecates looking a member up by value, FormMessage(1) (members as
    # attributes stay quiet), warning at the caller: the frame above EnumType.__call__.
    warnings.warn(_FORM_MESSAGE_DEPRECATED, StarletteDeprecationWarning, stacklevel=3)
    return Enum.__new__(cls, value)


FormMessage.__new__ = staticmethod(_deprecated_form_message)  # type: ignore[assignment]
FormMessage.__deprecated__ = _FORM_MESSAGE_DEPRECATED  # type: ignore[attr-defined]  # PEP 702


@dataclass
class MultipartPart:
    content_disposition: bytes | None = None
    field_name: str = ""
    data: bytearray = field(default_factory=bytearray)
    file: UploadFile | None = None
    item_headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def _read_disposition(
    headers: list[tuple[bytes, bytes]],
) -> tuple[bytes | None, bytes, bytes | None]:
    """A part's Content-Disposition (the last one), its name and its filename if any."""
    disposition = None
    for header_name, value in headers:
        if header_name == b"content-disposition":
            disposition = value
    if disposition is not None:
        match = _SIMPLE_DISPOSITION.fullmatch(disposition)
        if match is not None:
            return disposition, match[1], match[2]
        _, options = parse_options_header(disposition.decode("latin-1"))
        name = options.get("name")
        if name is not None:
            filename = options.get("filename")
            return (
                disposition,
                name.encode("latin-1"),
                None if filename is None else filename.encode("latin-1"),
            )
    raise MultiPartException('The Content-Disposition header field "name" must be provided.')


def _user_safe_decode(src: bytes | bytearray, codec: str) -> str:
    # The form's charset when it can read the bytes, latin-1 (which reads any) otherwise.
    try:
        return src.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return src.decode("latin-1")


class FormParser:
    """Parse an ``application/x-www-form-urlencoded`` body into ``FormData``.

    ``parse`` runs the bounded sans-IO ``starling._urlencoded.UrlencodedParser``. The
    ``on_field_*`` callbacks are the python-multipart callback interface Starlette exposes,
    kept for code that drives the parser by hand; they apply the same limits.
    """

    def __init__(
        self,
        headers: Headers,
        stream: AsyncGenerator[bytes, None],
        *,
        max_fields: int | float = 1000,
        max_part_size: int = 1024 * 1024,
    ) -> None:
        self.headers = headers
        self.stream = stream
        self.max_fields = max_fields
        self.max_part_size = max_part_size
        self._current_field_size = 0
        self._current_fields = 0
        self._field_name = bytearray()
        self._field_value = bytearray()
        self._items: list[tuple[str, str | UploadFile]] = []

    def on_field_start(self) -> None:
        self._current_fields += 1
        if self._current_fields > self.max_fields:
            raise MultiPartException(
                f"Too many fields. Maximum number of fields is {self.max_fields}."
            )
        self._current_field_size = 0
        self._field_name.clear()
        self._field_value.clear()

    def on_field_name(self, data: bytes, start: int, end: int) -> None:
        self._field_name += data[start:end]
        self._grow_field(end - start)

    def on_field_data(self, data: bytes, start: int, end: int) -> None:
        self._field_value += data[start:end]
        self._grow_field(end - start)

    def _grow_field(self, size: int) -> None:
        self._current_field_size += size
        if self._current_field_size > self.max_part_size:
            raise MultiPartException(
                f"Field exceeded maximum size of {self.max_part_size // 1024}KB."
            )

    def on_field_end(self) -> None:
        name = unquote_plus(self._field_name.decode("latin-1"))
        value = unquote_plus(self._field_value.decode("latin-1"))
        self._items.append((name, value))

    async def parse(self) -> FormData:
        parser = UrlencodedParser(self.max_fields, self.max_part_size)
        items: list[tuple[str, str | UploadFile]] = []
        try:
            async for chunk in self.stream:
                items += parser.feed(chunk)
            items += parser.close()
        finally:
            # Fields counted as each one ends, the one over max_fields included (Starlette's).
            self._current_fields = parser.field_count
        return _form_data(items)


def _write_chunks(chunks: list[tuple[UploadFile, bytes]]) -> None:
    # Runs in a worker thread. Consecutive chunks of one file go out in one writev call, so
    # the thread takes the GIL once per batch rather than once per chunk, and the event
    # loop keeps parsing meanwhile.
    start = 0
    while start < len(chunks):
        upload = chunks[start][0]
        end = start + 1
        while end < len(chunks) and chunks[end][0] is upload:
            end += 1
        _write_file(upload.file, [chunk for _, chunk in chunks[start:end]])
        start = end


def _write_file(file: BinaryIO, data: list[bytes]) -> None:
    if not _HAS_WRITEV:  # pragma: no cover (only on platforms without writev: Windows)
        file.writelines(data)
        return
    file.flush()
    descriptor = file.fileno()  # a spooled file rolls over to disk here, in this thread
    for start in range(0, len(data), _IOV_MAX):
        group = data[start : start + _IOV_MAX]
        written = os.writev(descriptor, group)
        rest = b"".join(group)[written:] if written < sum(map(len, group)) else b""
        while rest:  # a short write (rare on a regular file): the remainder plainly
            rest = rest[os.write(descriptor, rest) :]
    file.seek(0, os.SEEK_END)  # the file object's idea of the position, after raw writes


def _finish_files(chunks: list[tuple[UploadFile, bytes]], uploads: list[UploadFile]) -> None:
    _write_chunks(chunks)
    for upload in uploads:
        upload.file.seek(0)


class _UploadSpool(SpooledTemporaryFile[bytes]):
    """``SpooledTemporaryFile(max_size=...)``: the same object, built with less work.

    PERF: the stdlib __init__ checks its mode and builds the rollover arguments on every
    call (measured: -0.3 µs per uploaded file). This sets the same attributes, sharing one
    arguments dict (the rollover only reads it). Used only when a plain
    SpooledTemporaryFile is seen to hold exactly these attributes (_spool_setup()).
    """

    def __init__(self, max_size: int) -> None:
        self._file = io.BytesIO()
        self._max_size = max_size
        self._rolled = False
        self._TemporaryFileArgs = _SPOOL_ARGUMENTS


def _spool_setup() -> tuple[dict[str, Any], Callable[..., SpooledTemporaryFile[bytes]]]:
    """The rollover arguments, and _UploadSpool if this Python's SpooledTemporaryFile holds
    exactly the attributes it sets (else the stdlib class itself)."""
    plain = SpooledTemporaryFile(max_size=1)  # noqa: SIM115 (closed right below)
    try:
        attributes = vars(plain)
        arguments = attributes.get("_TemporaryFileArgs")
        expected = {"_file": attributes.get("_file"), "_max_size": 1, "_rolled": False}
        if (
            not isinstance(arguments, dict)
            or type(attributes.get("_file")) is not io.BytesIO
            or attributes != {**expected, "_TemporaryFileArgs": arguments}
        ):  # pragma: no cover (a Python whose SpooledTemporaryFile is built otherwise)
            return {}, SpooledTemporaryFile
    finally:
        plain.close()
    return arguments, _UploadSpool


_SPOOL_ARGUMENTS, _new_spool = _spool_setup()
_STDLIB_SPOOL = SpooledTemporaryFile


def _close_files(files: list[SpooledTemporaryFile[bytes]]) -> None:
    for file in files:
        file.close()


class MultiPartParser:
    """Parse a ``multipart/form-data`` body into ``FormData`` of strings and ``UploadFile``.

    The body is read by the bounded sans-IO ``starling._multipart.MultipartParser``. Files
    are ``SpooledTemporaryFile``s that stay in memory up to ``spool_max_size`` bytes; past it,
    data is written to disk in a worker thread, in batches of ``WRITE_BATCH_SIZE`` bytes (one
    ``writev`` each), so neither the rollover nor the writes block the event loop. On any
    error (a limit, malformed data, a client disconnect) every file opened so far is closed
    before the error propagates.

    Beyond Starlette, off by default: ``max_file_size`` (bytes; a larger file raises
    ``FileTooLarge``, a ``MultiPartException`` that ``Request.form`` answers with a 413). Set
    it, or ``spool_max_size``, per call (``request.form(max_file_size=...)``), on an
    instance, on a subclass or on this class.

    The ``on_*`` callbacks are the python-multipart callback interface Starlette exposes, kept
    for code that drives the parser by hand; ``parse`` shares their part handling.
    """

    spool_max_size = 1024 * 1024
    max_part_size = 1024 * 1024
    max_file_size: int | None = None

    def __init__(
        self,
        headers: Headers,
        stream: AsyncGenerator[bytes, None],
        *,
        max_files: int | float = 1000,
        max_fields: int | float = 1000,
        max_part_size: int = 1024 * 1024,
    ) -> None:
        self.headers = headers
        self.stream = stream
        self.max_files = max_files
        self.max_fields = max_fields
        self.items: list[tuple[str, str | UploadFile]] = []
        self._current_files = 0
        self._current_fields = 0
        self._current_partial_header_name = b""
        self._current_partial_header_value = b""
        # self._current_part: made on first use (a property); parse() never needs it
        self._charset = ""
        self._file_parts_to_write: list[tuple[MultipartPart, bytes]] = []
        self._file_parts_to_finish: list[MultipartPart] = []
        self._files_to_close_on_error: list[SpooledTemporaryFile[bytes]] = []
        self.max_part_size = max_part_size
        self._ascii_names = True  # whether an ASCII name decodes to itself in the charset
        # File data bound for disk, in order, and its size (see WRITE_BATCH_SIZE).
        self._pending: list[tuple[UploadFile, bytes]] = []
        self._pending_size = 0

    @property
    def _current_part(self) -> MultipartPart:
        # PERF: the callbacks' part, made when code driving them first reads it rather than
        # for every parse (measured: -0.3 µs per form). (A property, not __getattr__, which
        # would slow every attribute read on the parser.)
        part: MultipartPart | None = self.__dict__.get("_part")
        if part is None:
            part = self._part = MultipartPart()
        return part

    @_current_part.setter
    def _current_part(self, part: MultipartPart) -> None:
        self._part = part

    # --- python-multipart callbacks ----------------------------------------------------

    def on_part_begin(self) -> None:
        self._current_part = MultipartPart()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        message_bytes = data[start:end]
        part = self._current_part
        if part.file is None:
            part.data += message_bytes
            if len(part.data) > self.max_part_size:
                raise self._part_too_large()
        else:
            self._file_parts_to_write.append((part, message_bytes))

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is None:
            self.items.append((part.field_name, _user_safe_decode(part.data, self._charset)))
        else:
            self._file_parts_to_finish.append(part)
            self.items.append((part.field_name, part.file))

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._current_partial_header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._current_partial_header_value += data[start:end]

    def on_header_end(self) -> None:
        name = self._current_partial_header_name.lower()
        self._current_part.item_headers.append((name, self._current_partial_header_value))
        self._current_partial_header_name = b""
        self._current_partial_header_value = b""

    def on_headers_finished(self) -> None:
        part = self._current_part
        part.content_disposition, part.field_name, part.file = self._open_part(part.item_headers)

    def on_end(self) -> None:
        pass

    # --- parsing ------------------------------------------------------------------------

    async def parse(self) -> FormData:
        boundary = self._read_content_type()
        try:
            await self._read_body(MultipartParser(boundary))
        except BaseException:
            await self._close_on_error()
            raise
        return _form_data(self.items)

    async def _read_body(self, parser: MultipartParser) -> None:
        items = self.items
        charset = self._charset
        max_part_size = self.max_part_size
        uploads: list[UploadFile] = []
        # The part being read: its name, and its file or its field value so far.
        name = ""
        upload: UploadFile | None = None
        value = bytearray()
        async for chunk in self.stream:
            if not chunk:  # PERF: the stream's closing b"" (or a server's empty message)
                continue
            for event in parser.feed(chunk):
                if event.__class__ is bytes:  # PERF: the commonest event first
                    if upload is None:
                        value += event
                        if len(value) > max_part_size:
                            raise self._part_too_large()
                    else:
                        await self._add_file_data(upload, event)
                elif event is None:
                    if upload is None:
                        items.append((name, _user_safe_decode(value, charset)))
                    else:
                        items.append((name, upload))
                        uploads.append(upload)
                elif isinstance(event, list):
                    _, name, upload = self._open_part(event)
                    value = bytearray()
                else:  # malformed data, after the events before it
                    raise cast(MultiPartException, event)
        parser.close()
        await self._finish(uploads)

    def _read_content_type(self) -> bytes:
        content_type = self.headers.get("content-type", "")
        match = _SIMPLE_CONTENT_TYPE.fullmatch(content_type)
        if match is not None:
            self._charset = "utf-8"
            return match[1].encode("latin-1")
        _, params = parse_options_header(content_type)
        # Resolved once per request, as Starlette does: a failed codec lookup is not cached by
        # Python, so retrying an unknown charset for every name and value would search the
        # codec registry each time.
        try:
            codec = codecs.lookup(params.get("charset", "utf-8")).name
        except LookupError:  # an unknown charset: every value reads as latin-1
            codec = "iso8859-1"
        self._charset = codec
        self._ascii_names = codec in _ASCII_COMPATIBLE
        boundary = params.get("boundary")
        if boundary is None:
            raise MultiPartException("Missing boundary in multipart.")
        return boundary.encode("latin-1")

    def _open_part(
        self, headers: list[tuple[bytes, bytes]]
    ) -> tuple[bytes | None, str, UploadFile | None]:
        """A part's headers are in: its Content-Disposition, name, and file if it is one."""
        disposition, name, filename = _read_disposition(headers)
        field_name = self._decode_name(name)
        if filename is None:
            self._current_fields += 1
            if self._current_fields > self.max_fields:
                raise MultiPartException(
                    f"Too many fields. Maximum number of fields is {self.max_fields}."
                )
            return disposition, field_name, None
        self._current_files += 1
        if self._current_files > self.max_files:
            raise MultiPartException(
                f"Too many files. Maximum number of files is {self.max_files}."
            )
        # Closed by FormData.close, or by parse on an error.
        # (SpooledTemporaryFile read here, not bound at import: tests patch it on this module)
        if SpooledTemporaryFile is _STDLIB_SPOOL:
            tempfile = _new_spool(max_size=self.spool_max_size)
        else:
            tempfile = SpooledTemporaryFile(max_size=self.spool_max_size)  # noqa: SIM115
        self._files_to_close_on_error.append(tempfile)
        upload = UploadFile(
            file=tempfile,  # type: ignore[arg-type]
            size=0,
            filename=self._decode_name(filename),
            headers=Headers(raw=headers),
        )
        return disposition, field_name, upload

    def _decode_name(self, raw: bytes) -> str:
        if self._ascii_names and raw.isascii():
            return raw.decode("ascii")
        return _user_safe_decode(raw, self._charset)

    def _part_too_large(self) -> MultiPartException:
        return MultiPartException(f"Part exceeded maximum size of {self.max_part_size // 1024}KB.")

    async def _add_file_data(self, upload: UploadFile, data: bytes) -> None:
        size = upload.size + len(data)  # type: ignore[operator]
        upload.size = size
        if self.max_file_size is not None and size > self.max_file_size:
            raise FileTooLarge(
                f"File exceeded maximum size of {self.max_file_size} bytes (max_file_size)."
            )
        if size <= self.spool_max_size:
            # Still under the spool threshold, so no chunk of this file is queued: an
            # in-memory write, in order.
            file: Any = upload.file
            if type(file) is _UploadSpool:
                # PERF: SpooledTemporaryFile.write without its frames: this write keeps the
                # file within its size, so it would not roll over (measured: -0.2 µs).
                file._file.write(data)
            else:
                file.write(data)
            return
        self._pending.append((upload, data))
        self._pending_size += len(data)
        if self._pending_size >= WRITE_BATCH_SIZE:
            await anyio.to_thread.run_sync(_write_chunks, self._take_pending())

    def _take_pending(self) -> list[tuple[UploadFile, bytes]]:
        pending = self._pending
        self._pending = []
        self._pending_size = 0
        return pending

    async def _finish(self, uploads: list[UploadFile]) -> None:
        if self._file_parts_to_write or self._file_parts_to_finish:
            await self._finish_callback_parts(uploads)
        spool_max_size = self.spool_max_size
        on_disk = [upload for upload in uploads if upload.size > spool_max_size]  # type: ignore[operator]
        if self._pending or on_disk:
            await anyio.to_thread.run_sync(_finish_files, self._take_pending(), on_disk)
        for upload in uploads:
            if upload.size <= spool_max_size:  # type: ignore[operator]
                file: Any = upload.file
                # PERF: SpooledTemporaryFile.seek is this call, one frame up
                (file._file if type(file) is _UploadSpool else file).seek(0)

    async def _finish_callback_parts(self, uploads: list[UploadFile]) -> None:
        # Files written through the callbacks (code driving them by hand), in order.
        for part, data in self._file_parts_to_write:
            assert part.file is not None
            await self._add_file_data(part.file, data)
        self._file_parts_to_write.clear()
        uploads += [part.file for part in self._file_parts_to_finish if part.file is not None]
        self._file_parts_to_finish.clear()

    async def _close_on_error(self) -> None:
        files = self._files_to_close_on_error
        self._pending.clear()
        if any(getattr(file, "_rolled", False) for file in files):
            # Shielded: a cancelled request still releases its descriptors.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_close_files, files)
        else:
            _close_files(files)
