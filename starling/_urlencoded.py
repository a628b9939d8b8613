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
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from starling._formerrors import MultiPartException

# Starlette's defaults for Request.form(max_fields=..., max_part_size=...).
MAX_FIELDS = 1000
MAX_PART_SIZE = 1024 * 1024


def _decode(raw: bytes) -> str:
    return unquote_plus(raw.decode("latin-1"))


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
        while (end := data.find(b"&", start)) != -1:
            self._extend(data[start:end])
            self._finish_field(fields)
            start = end + 1
        self._extend(data[start:])
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
            raise MultiPartException(
                f"Field exceeded maximum size of {self._max_part_size // 1024}KB."
            )

    def _finish_field(self, fields: list[tuple[str, str]]) -> None:
        if not self._buffer:  # "&&": an empty field is no field
            return
        self._field_count += 1
        if self._field_count > self._max_fields:
            raise MultiPartException(
                f"Too many fields. Maximum number of fields is {self._max_fields}."
            )
        name, _, value = bytes(self._buffer).partition(b"=")
        fields.append((_decode(name), _decode(value)))
        self._buffer.clear()
        self._has_equals = False


def parse_urlencoded(
    body: bytes, max_fields: int | float = MAX_FIELDS, max_part_size: int = MAX_PART_SIZE
) -> list[tuple[str, str]]:
    """Parse a whole body at once."""
    parser = UrlencodedParser(max_fields, max_part_size)
    return parser.feed(body) + parser.close()
