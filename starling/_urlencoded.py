"""Sans-IO, bounded parser for ``application/x-www-form-urlencoded`` request bodies.

Bytes go in through ``feed`` (any chunking) and finished ``(name, value)`` pairs come out; no
``await`` inside. It reads a body the way Starlette 1.10 does, which for every input equals
``urllib.parse.parse_qsl(body.decode("latin-1"), keep_blank_values=True)``:

- fields are separated by ``&`` only (``;`` is data); empty fields are skipped;
- the first ``=`` splits name from value; a field without ``=`` has the value ``""``;
- ``+`` is a space, ``%XX`` escapes are decoded as UTF-8 (invalid sequences become U+FFFD),
  a broken escape such as ``%zz`` stays as written, and raw bytes are read as latin-1.

Limits, with Starlette's messages: a field's raw name plus raw value (the ``=`` not counted)
may hold at most ``max_part_size`` bytes, checked as the bytes arrive so no more than that is
ever buffered; at most ``max_fields`` non-empty fields, checked as each one ends.

APPSEC: the fields of a chunk are found by one regex scan in C, so a body of separators only,
which yields no field and so never reaches ``max_fields``, costs no more than a body of real
fields of the same size (a Python step per ``&`` made a 1 MB body of ``&`` 140 times slower
than a 1 MB body of fields, which stops at the thousandth). Fields are percent-decoded in C
too (starling._percent).
"""

from __future__ import annotations

import re

from starling._formerrors import MultiPartException
from starling._percent import unquote_plus_latin1

# Starlette's defaults for Request.form(max_fields=..., max_part_size=...).
MAX_FIELDS = 1000
MAX_PART_SIZE = 1024 * 1024


# A non-empty field: the "&"s between fields are skipped in C.
_find_fields = re.compile(rb"[^&]+").finditer


class UrlencodedParser:
    """Feed body chunks, collect the finished fields, and call ``close`` at the end of the body."""

    __slots__ = ("_buffer", "_field_count", "_has_equals", "_max_fields", "_max_part_size")

    def __init__(
        self, max_fields: int | float = MAX_FIELDS, max_part_size: int = MAX_PART_SIZE
    ) -> None:
        self._max_fields = max_fields
        self._max_part_size = max_part_size
        self._buffer = bytearray()  # the raw bytes of the field being read
        self._has_equals = False  # whether the buffer holds the name/value separator
        self._field_count = 0

    @property
    def field_count(self) -> int:
        """Non-empty fields ended so far, the one over ``max_fields`` included."""
        return self._field_count

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        """Read a chunk; return the fields it finished, in order."""
        fields: list[tuple[str, str]] = []
        start = 0
        if self._buffer:  # the field that ended the last chunk goes on
            end = data.find(b"&")
            if end == -1:
                self._extend(data)
                return fields
            self._extend(data[:end])
            self._finish_field(fields)
            start = end + 1
        size = len(data)
        max_part_size = self._max_part_size
        for match in _find_fields(data, start):
            field = match[0]
            if match.end() == size:  # it may go on in the next chunk
                self._extend(field)
                break
            if len(field) > max_part_size and len(field) - (b"=" in field) > max_part_size:
                raise self._too_large()
            self._add_field(fields, field)
        return fields

    def close(self) -> list[tuple[str, str]]:
        """End of body: return the last field, if there is one."""
        fields: list[tuple[str, str]] = []
        self._finish_field(fields)
        return fields

    def _extend(self, piece: bytes) -> None:
        if not piece:
            return
        if not self._has_equals and b"=" in piece:
            self._has_equals = True
        self._buffer += piece
        # PERF: the size is kept up to date per chunk rather than rescanned, so feeding a
        # field one byte at a time stays linear.
        if len(self._buffer) - self._has_equals > self._max_part_size:
            raise self._too_large()

    def _too_large(self) -> MultiPartException:
        return MultiPartException(
            f"Field exceeded maximum size of {self._max_part_size // 1024}KB."
        )

    def _finish_field(self, fields: list[tuple[str, str]]) -> None:
        if not self._buffer:  # "&&": an empty field is no field
            return
        field = bytes(self._buffer)
        self._buffer.clear()
        self._has_equals = False
        self._add_field(fields, field)

    def _add_field(self, fields: list[tuple[str, str]], field: bytes) -> None:
        self._field_count += 1
        if self._field_count > self._max_fields:
            raise MultiPartException(
                f"Too many fields. Maximum number of fields is {self._max_fields}."
            )
        name, _, value = field.partition(b"=")
        fields.append((unquote_plus_latin1(name), unquote_plus_latin1(value)))


def parse_urlencoded(
    body: bytes, max_fields: int | float = MAX_FIELDS, max_part_size: int = MAX_PART_SIZE
) -> list[tuple[str, str]]:
    """Parse a whole body at once."""
    parser = UrlencodedParser(max_fields, max_part_size)
    return parser.feed(body) + parser.close()
