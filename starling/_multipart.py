"""Sans-IO, bounded parser for ``multipart/form-data`` bodies (RFC 7578, RFC 2046 framing).

Bytes go in through ``feed`` (any chunking) and events come out, in order; no ``await``
inside. An event is one of:

- a ``list`` of ``(name, value)`` byte pairs: a part begins, and these are its headers (names
  lower-cased, the value's leading spaces dropped, in the order sent);
- ``bytes``: the next piece of the current part's body (never empty);
- ``None``: the current part ended;
- a ``MultiPartException``: the body is malformed here. It is the last event; handle the
  events before it (a part among them may fail a check of its own first, as with
  python-multipart's callbacks), then raise it. Later calls raise it at once.

The grammar is python-multipart's (which Starlette uses), so both read a body the same way: a
body that starts with CR or LF may have a preamble up to its first ``-``, which is skipped; a
delimiter is ``CRLF--boundary`` followed by CRLF (next part), ``--`` (the end; any epilogue is
ignored) or spaces and tabs then CRLF (transport padding); ``CRLF--boundary`` followed by
anything else is part data.

Errors carry Starlette's message, "Invalid multipart data.", wherever python-multipart (so
Starlette) refuses the body too, with the reason as an exception note; where Starlette accepts
a body starling refuses (a body that ends before the final boundary, a boundary of 71-256
bytes or with a line break), the message itself says why.

Every buffer is bounded: a boundary of at most ``MAX_BOUNDARY_LENGTH`` bytes (RFC 2046), header
lines of at most ``MAX_HEADER_SIZE`` bytes and at most ``MAX_HEADER_COUNT`` headers per part
(python-multipart's limits). Data is searched with ``bytes.find`` and never rescanned, so the
work is linear in the body however it is chunked; at most one delimiter's length of data is
held back between chunks.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starling._formerrors import MultiPartException

MAX_BOUNDARY_LENGTH = 70
# python-multipart's limit: a longer boundary is one Starlette refuses too.
_REFERENCE_MAX_BOUNDARY_LENGTH = 256
MAX_HEADER_SIZE = 4096 + 128  # one header line, CRLF excluded
MAX_HEADER_COUNT = 8
# A header block that has not ended by this size breaks one of the two limits above.
_MAX_HEADER_BLOCK = MAX_HEADER_COUNT * (MAX_HEADER_SIZE + 2) + 2

# APPSEC: a Content-Type or Content-Disposition with more ";" than this (parameter separators,
# or inside quoted values) is refused. Real ones carry two or three parameters; without a
# bound, a 4 KB part header of ";" cost a Python step per byte, for every part of the body.
MAX_SEMICOLONS = 128

# RFC 9110 token characters, the only ones allowed in a header name.
_TOKEN_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~"

# Transport padding after a delimiter (RFC 2046): spaces and tabs.
_end_of_padding = re.compile(rb"[^ \t]|\Z").search

_PREAMBLE, _AFTER_FIRST, _HEADERS, _DATA, _PADDING, _EPILOGUE = range(6)

Event = list[tuple[bytes, bytes]] | bytes | None | MultiPartException


INVALID = "Invalid multipart data."


def _invalid(reason: str) -> MultiPartException:
    """Malformed data Starlette refuses too: its message, the reason as a note for logs."""
    error = MultiPartException(INVALID)
    error.add_note(f"Reason: {reason}.")
    return error


def _refused(reason: str) -> MultiPartException:
    """Data Starlette accepts and starling refuses: the message says why."""
    return MultiPartException(f"Invalid multipart data: {reason}.")


def _parse_header_block(block: bytes) -> list[tuple[bytes, bytes]]:
    if b"\r" not in block and len(block) <= MAX_HEADER_SIZE:  # PERF: one line, a field's
        name, colon, value = block.partition(b":")
        if not colon or not name or name.translate(None, _TOKEN_CHARS):
            raise _invalid("malformed part header")
        return [(name.lower(), value.lstrip(b" "))]
    lines = block.split(b"\r\n")
    if len(lines) > MAX_HEADER_COUNT:
        raise _invalid(f"a part has more than {MAX_HEADER_COUNT} headers")
    if block.count(b"\r") >= len(lines):
        raise _invalid("a CR not followed by LF in a part header")
    headers = []
    for line in lines:
        name, colon, value = line.partition(b":")
        if len(line) > MAX_HEADER_SIZE:
            raise _invalid(f"a part header line is longer than {MAX_HEADER_SIZE} bytes")
        if not colon or not name or name.translate(None, _TOKEN_CHARS):
            raise _invalid("malformed part header")
        headers.append((name.lower(), value.lstrip(b" ")))
    return headers


def _check_partial_headers(block: bytes) -> None:
    """The body ended inside a header block: refuse what python-multipart refuses as it reads
    (so Starlette does too), byte by byte, before it reaches the end."""
    complete, _, last = block.rpartition(b"\r\n")
    if complete:
        _parse_header_block(complete)
    if last.endswith(b"\r"):  # its LF would come next
        last = last[:-1]
    name, colon, _ = last.partition(b":")
    if b"\r" in last or (colon and not name) or name.translate(None, _TOKEN_CHARS):
        raise _invalid("malformed part header")
    if len(last) > MAX_HEADER_SIZE:
        raise _invalid(f"a part header line is longer than {MAX_HEADER_SIZE} bytes")


class MultipartParser:
    """Feed body chunks, handle the events, and call ``close`` at the end of the body."""

    __slots__ = (
        "_delimiter",
        "_error",
        "_first",
        "_headers_buffer",
        "_headers_scan",
        "_in_preamble",
        "_part_end",
        "_state",
        "_tail",
    )

    def __init__(self, boundary: bytes) -> None:
        if not boundary:
            raise MultiPartException("Missing boundary in multipart.")
        if len(boundary) > _REFERENCE_MAX_BOUNDARY_LENGTH:
            raise _invalid(f"the boundary is longer than {_REFERENCE_MAX_BOUNDARY_LENGTH} bytes")
        if len(boundary) > MAX_BOUNDARY_LENGTH:
            raise _refused(f"the boundary is longer than {MAX_BOUNDARY_LENGTH} bytes")
        if b"\r" in boundary or b"\n" in boundary:
            # The delimiter's CR must be its only one: the search for a partial delimiter at
            # the end of a chunk relies on it.
            raise _refused("the boundary contains a line break")
        self._delimiter = b"\r\n--" + boundary
        self._first = self._delimiter[2:]  # the first boundary has no CRLF before it
        # PERF: compiled on first need (data holding a delimiter that is not one), not per body
        self._part_end: Callable[[bytes, int], re.Match[bytes] | None] | None = None
        self._state = _PREAMBLE
        self._tail = b""  # unread bytes held back for the next chunk (under a delimiter's size)
        self._headers_buffer = bytearray()  # a header block that spans chunks
        self._headers_scan = 0
        self._in_preamble = False
        self._error: MultiPartException | None = None

    @property
    def complete(self) -> bool:
        """Whether the final boundary has been read."""
        return self._state == _EPILOGUE

    def feed(self, data: bytes) -> list[Event]:
        """Read a chunk; return the events it completes, in order (an error last)."""
        if self._error is not None:
            raise self._error
        events: list[Event] = []
        try:
            if self._headers_buffer:
                data = self._continue_headers(data)
                if not data:
                    return events
            elif self._tail:
                data = self._tail + data
                self._tail = b""
            pos = 0
            size = len(data)
            delimiter = self._delimiter
            after_delimiter = len(delimiter)
            while pos < size:
                state = self._state
                if state == _DATA:
                    # PERF: the common case inline: a delimiter, CRLF, and the next part's whole
                    # header block in this chunk. Everything else takes the general readers.
                    found = data.find(delimiter, pos)
                    if found != -1 and data.startswith(b"\r\n", found + after_delimiter):
                        if found > pos:
                            events.append(data[pos:found])
                        events.append(None)
                        pos = found + after_delimiter + 2
                        end = data.find(b"\r\n\r\n", pos)
                        if end == -1 or data.startswith(b"\r\n", pos):
                            self._state = _HEADERS
                        else:
                            events.append(_parse_header_block(data[pos:end]))
                            pos = end + 4
                        continue
                    pos = self._read_data(data, pos, events, found)
                elif state == _HEADERS:
                    pos = self._read_headers(data, pos, events)
                elif state == _PREAMBLE:
                    pos = self._read_preamble(data, pos)
                elif state == _AFTER_FIRST:
                    pos = self._read_after_first(data, pos, events)
                elif state == _PADDING:
                    pos = self._read_padding(data, pos)
                else:  # the epilogue is ignored (RFC 2046)
                    break
        except MultiPartException as error:
            # Returned after the events before it, not raised past them: a part ahead of the
            # malformed data may fail its own check first, whatever the chunking.
            self._error = error
            events.append(error)
        return events

    def close(self) -> None:
        """End of body: fail unless the final boundary was read (or the body was empty)."""
        if self._error is not None:
            raise self._error
        if self._state == _PREAMBLE and not self._tail:
            return  # no body, or only line breaks: an empty form
        if self._state == _HEADERS and self._headers_buffer:
            _check_partial_headers(bytes(self._headers_buffer))
        if self._state != _EPILOGUE:
            raise _refused("the body ended before the final boundary")

    def _hold(self, data: bytes, pos: int) -> int:
        self._tail = data[pos:]
        return len(data)

    def _read_preamble(self, data: bytes, pos: int) -> int:
        size = len(data)
        if self._in_preamble or data[pos] in b"\r\n":
            # python-multipart's reading: after a leading line break, anything up to the first
            # "-" is a preamble (here whatever the chunking).
            dash = data.find(b"-", pos)
            self._in_preamble = dash == -1
            if dash == -1:
                return size
            pos = dash
        first = self._first
        end = pos + len(first)
        if end > size:
            if not first.startswith(data[pos:]):
                raise _invalid("the body does not start with the boundary")
            return self._hold(data, pos)
        if not data.startswith(first, pos):
            raise _invalid("the body does not start with the boundary")
        self._state = _AFTER_FIRST
        return end

    def _read_after_first(self, data: bytes, pos: int, events: list[Event]) -> int:
        after = data[pos : pos + 2]
        if after == b"\r\n":
            return self._read_headers(data, pos + 2, events)
        elif after == b"--":
            self._state = _EPILOGUE  # an empty form
        elif after == b"\r" or after == b"-":  # the rest decides; wait for it
            return self._hold(data, pos)
        else:  # refused at the first wrong byte, as python-multipart does
            raise _invalid("expected CRLF after the boundary")
        return pos + 2

    def _read_headers(self, data: bytes, pos: int, events: list[Event]) -> int:
        size = len(data)
        if data.startswith(b"\r\n", pos):  # a part with no headers
            events.append([])
            self._state = _DATA
            return pos + 2
        end = data.find(b"\r\n\r\n", pos)
        if end == -1:
            # The block continues in the next chunk: keep it in a growing buffer, scanned
            # once, so a block sent byte by byte stays linear.
            if size - pos > _MAX_HEADER_BLOCK:
                raise _invalid("the part headers are too large")
            self._state = _HEADERS
            self._headers_buffer += data[pos:]
            self._headers_scan = max(0, size - pos - 3)
            return size
        events.append(_parse_header_block(data[pos:end]))
        self._state = _DATA
        return end + 4

    def _continue_headers(self, data: bytes) -> bytes:
        buffer = self._headers_buffer
        buffer += data
        if buffer.startswith(b"\r\n") or buffer.find(b"\r\n\r\n", self._headers_scan) != -1:
            whole = bytes(buffer)
            buffer.clear()
            return whole
        if len(buffer) > _MAX_HEADER_BLOCK:
            raise _invalid("the part headers are too large")
        self._headers_scan = max(0, len(buffer) - 3)
        return b""

    def _read_data(self, data: bytes, pos: int, events: list[Event], found: int) -> int:
        # found: where the delimiter is first found from pos (the caller searched already)
        delimiter = self._delimiter
        size = len(data)
        search = pos
        while True:
            if found == -1:
                # Hold back a trailing partial delimiter; the delimiter starts with its only CR.
                keep = size
                cr = data.rfind(b"\r", max(search, size - len(delimiter) + 1))
                if cr != -1 and delimiter.startswith(data[cr:]):
                    keep = cr
                if keep > pos:
                    events.append(data if pos == 0 and keep == size else data[pos:keep])
                return self._hold(data, keep)
            after = found + len(delimiter)
            if size - after < 2:  # what follows the delimiter decides; wait for it
                if found > pos:
                    events.append(data[pos:found])
                return self._hold(data, found)
            follow = data[after : after + 2]
            if follow == b"\r\n":
                self._state = _HEADERS
                after += 2
            elif follow == b"--":
                self._state = _EPILOGUE
            elif follow[0] in b" \t":
                self._state = _PADDING
            else:  # "CRLF--boundary" then anything else is data (python-multipart)
                # APPSEC: the next delimiter that ends a part is searched for in C, so data
                # made of "CRLF--boundary" plus one other byte, over and over, costs about
                # what any data does rather than a Python step per near-delimiter.
                search = found + 1
                if self._part_end is None:
                    # A delimiter followed by what makes it one: CRLF, "--" or padding.
                    pattern = re.escape(delimiter) + rb"(?:\r\n|--|[ \t])"
                    self._part_end = re.compile(pattern).search
                match = self._part_end(data, search)
                if match is not None:
                    found = match.start()
                else:  # none complete: perhaps one the next chunk completes
                    found = data.find(delimiter, max(search, size - len(delimiter) - 1))
                continue
            if found > pos:
                events.append(data[pos:found])
            events.append(None)
            return after

    def _read_padding(self, data: bytes, pos: int) -> int:
        pos = _end_of_padding(data, pos).start()  # type: ignore[union-attr]  # (always matches)
        after = data[pos : pos + 2]
        if after == b"" or after == b"\r":  # the rest decides; wait for it
            return self._hold(data, pos)
        if after != b"\r\n":  # refused at the first wrong byte, as python-multipart does
            raise _invalid("expected CRLF after the boundary padding")
        self._state = _HEADERS
        return pos + 2


def _split_params(value: str) -> list[str]:
    # ";"-separated segments; a ";" inside a quoted string (an odd count of unescaped quotes
    # so far) does not split. Each gap between semicolons is counted once, in C: linear, with
    # a Python step per ";", of which there are at most MAX_SEMICOLONS.
    if value.count(";") > MAX_SEMICOLONS:
        raise _refused(f"a header parameter list has more than {MAX_SEMICOLONS} semicolons")
    segments = []
    start = 0
    quotes = 0
    search = 0
    while True:
        semicolon = value.find(";", search)
        end = len(value) if semicolon == -1 else semicolon
        quotes += value.count('"', search, end) - value.count('\\"', search, end)
        if semicolon != -1 and quotes % 2:
            search = semicolon + 1
            continue
        segment = value[start:end]
        name, equals, rest = segment.partition("=")
        if equals:
            segment = name.rstrip(" \t").lower() + "=" + rest.lstrip(" \t")
        segments.append(segment.strip(" \t"))
        if semicolon == -1:
            return segments
        start = search = semicolon + 1
        quotes = 0


def parse_options_header(value: str) -> tuple[str, dict[str, str]]:
    """Split ``type; key=value; key="quoted"`` into the lower-cased type and its parameters.

    Read as python-multipart reads it for Starlette: keys are lower-cased, a quoted value is
    unquoted (``\\\\`` and ``\\"`` unescaped), a later key wins, and RFC 2231 extended keys
    (``filename*``), which RFC 7578 forbids in forms, are ignored. A ``filename`` holding a
    Windows path (old IE sent the full path) is cut to its last component.
    """
    if ";" not in value:
        return value.lower().strip(" \t"), {}
    content_type, *segments = _split_params(value)
    options = {}
    for segment in segments:
        key, _, param = segment.partition("=")
        if "*" in key:
            continue
        if len(param) >= 2 and param[0] == '"' and param[-1] == '"':
            param = param[1:-1].replace("\\\\", "\\").replace('\\"', '"')
        if key == "filename" and (param[1:3] == ":\\" or param[:2] == "\\\\"):
            param = param.rsplit("\\", 1)[-1]
        options[key] = param
    return content_type.lower(), options
