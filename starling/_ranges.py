"""Sans-IO parsing of the HTTP ``Range`` header and framing of ``multipart/byteranges`` bodies.

RFC 9110 §14.1.1::

    ranges-specifier = range-unit "=" range-set
    range-set        = 1#range-spec
    range-spec       = int-range / suffix-range / other-range
    int-range        = first-pos "-" [ last-pos ]
    suffix-range     = "-" suffix-length

What starling accepts, and where that is more lenient than the grammar (matching Starlette):

- OWS (space, tab) around the unit, the numbers and the dash, not only around commas.
- A list element that is not a range-spec (``x``, ``1-a``, an empty element) is skipped, not an
  error; only a header with no usable element at all is malformed.
- Overlapping or adjacent ranges are merged and the result is sorted.

Where it is stricter than Starlette, which reads each number with ``int()``: only ASCII digits
count as digits, so ``+1``, ``1_0`` and non-ASCII digits make their element unusable; and a
number of any length is read by value (Starlette skips elements with more than 4300 digits).

Limit: more than ``MAX_RANGES`` list elements make the header ignored (the whole file is sent),
checked before any element is parsed, so the work per header is bounded by its length.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

# Starlette's FileResponse.max_ranges: a header with more list elements than this is ignored.
MAX_RANGES = 100

_OWS = " \t"
# One list element: first-pos "-" last-pos, either side optional, OWS allowed around each token.
# APPSEC: possessive quantifiers. With plain ones, an element of spaces and no dash made the two
# OWS runs around the empty first-pos try every split of the spaces: quadratic, a 256 KB header
# took minutes. Giving back characters could never make a match here, so the result is the same.
_RANGE_SPEC = re.compile(r"[ \t]*+([0-9]*+)[ \t]*+-[ \t]*+([0-9]*+)[ \t]*+").fullmatch


class MalformedRangeHeader(Exception):
    """The Range header cannot be read: the response is a 400 carrying ``content``."""

    __module__ = "starling.responses"

    def __init__(self, content: str = "Malformed range header.") -> None:
        self.content = content


class RangeNotSatisfiable(Exception):
    """A requested range starts beyond the end of the file: the response is a 416."""

    __module__ = "starling.responses"

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size


def _position(digits: str, file_size: int) -> int:
    """A first-pos, last-pos or suffix-length; anything past the end reads as ``file_size + 1``.

    Hostile headers carry 64 KB numbers: a number with more significant digits than the file
    size is past the end whatever its value, so it is never converted (nor limited by
    ``sys.get_int_max_str_digits``).
    """
    significant = digits.lstrip("0")
    if len(significant) > len(str(file_size)):
        return file_size + 1
    return int(significant or "0")


def _parse_spec(spec: str, file_size: int) -> tuple[int, int] | None:
    """One range-spec as a half-open ``(start, end)`` interval, or None when it is unusable."""
    match = _RANGE_SPEC(spec)
    if match is None:
        return None
    first, last = match.groups()
    if not first:
        if not last:
            return None
        # suffix-range: the last N bytes; "-0" asks for nothing and is unsatisfiable below
        return max(0, file_size - _position(last, file_size)), file_size
    start = _position(first, file_size)
    end = file_size if not last else min(_position(last, file_size) + 1, file_size)
    return start, end


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort, and join ranges that overlap or touch (0-5 and 6-8 become 0-8)."""
    ranges.sort()
    merged = [ranges[0]]
    for start, end in ranges[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged


def parse_range_header(
    value: str, file_size: int, max_ranges: int = MAX_RANGES
) -> list[tuple[int, int]]:
    """Half-open byte intervals asked for by a Range header, sorted and merged.

    Returns ``[]`` when the header lists more than ``max_ranges`` elements (serve the whole file).
    Raises MalformedRangeHeader (400) or RangeNotSatisfiable (416), and nothing else.
    """
    unit, equals, range_set = value.partition("=")
    if not equals:
        raise MalformedRangeHeader()
    if unit.strip(_OWS).lower() != "bytes":
        raise MalformedRangeHeader("Only support bytes range")
    if range_set.count(",") >= max_ranges:
        return []
    ranges = []
    for spec in range_set.split(","):
        parsed = _parse_spec(spec, file_size)
        if parsed is not None:
            ranges.append(parsed)
    if not ranges:
        raise MalformedRangeHeader("Range header: range must be requested")
    if any(start >= file_size for start, _ in ranges):
        raise RangeNotSatisfiable(file_size)
    if any(start >= end for start, end in ranges):
        raise MalformedRangeHeader("Range header: start must be less than end")
    if len(ranges) == 1:
        return ranges
    return _merge(ranges)


def multipart_part_header(
    boundary: str, content_type: str, start: int, end: int, file_size: int
) -> bytes:
    """The delimiter and headers that open the part for bytes ``start`` to ``end - 1``."""
    return (
        f"--{boundary}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Range: bytes {start}-{end - 1}/{file_size}\r\n\r\n"
    ).encode("latin-1")


def multipart_closing(boundary: str) -> bytes:
    return f"--{boundary}--".encode("latin-1")


def generate_multipart(
    ranges: Sequence[tuple[int, int]], boundary: str, max_size: int, content_type: str
) -> tuple[int, Callable[[int, int], bytes]]:
    """The body length of a multipart/byteranges response, and the part-header builder.

    Each part is its header, the bytes, then CRLF; the body ends with the closing delimiter.
    """
    length = len(multipart_closing(boundary))
    for start, end in ranges:
        header = multipart_part_header(boundary, content_type, start, end, max_size)
        length += len(header) + (end - start) + 2

    def part_header(start: int, end: int) -> bytes:
        return multipart_part_header(boundary, content_type, start, end, max_size)

    return length, part_header
