"""Every parser of client bytes: a degenerate input costs about what a benign one of its size does.

Each test times a benign input and a degenerate one of the same size, in this process, and
allows a generous factor: no absolute time, so a slow or busy machine cannot fail it, while a
parser that takes a Python step per byte of a degenerate shape (50 to 600 times the cost,
measured before the fixes) cannot pass. Robust to noise on a shared machine: the inputs are
large enough for the per-byte cost to dominate, each side is the best of several interleaved
runs, and a failing comparison is measured again before it fails.

The benign inputs are what a real client sends, scaled to the size: realistic forms and
queries (percent-encoded text), cookies as ``set_cookie`` quotes them, a file upload.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from starling._cookie_header import quote_value
from starling._cookies import parse_cookie_header
from starling._formerrors import MultiPartException
from starling._headers import header_name, header_value
from starling._multipart import MultipartParser, parse_options_header
from starling._ranges import MalformedRangeHeader, RangeNotSatisfiable, parse_range_header
from starling._urlencoded import UrlencodedParser, parse_urlencoded
from starling._urlparse import parse_host, parse_query, scope_path, scope_query
from starling.middleware.gzip import _accepts_gzip
from starling.requests import MalformedJSONBody, _loads
from starling.sse import ServerSentEvent
from starling.staticfiles import _etag_matches

# A degenerate input may cost this many times what the benign one of its size costs. The
# shapes fixed here cost 50 to 600 times more before; after, at most about 5 (measured).
FACTOR = 10
RUNS = 5  # each side: the best of this many interleaved runs
ATTEMPTS = 3  # a comparison that fails is measured again this many times in all

# The errors a parser may answer hostile input with: the cost up to the error is what counts.
EXPECTED = (MultiPartException, MalformedRangeHeader, RangeNotSatisfiable, MalformedJSONBody)

TEXT = (
    "Dear team, the quarterly report (draft #3) is attached; see pages 4-7 & the appendix. "
    "Costs rose 12% vs. Q2: \"shipping\" +8%, 'materials' +4%. Naïve estimates? Café, 50€. "
)


# An input: the text or bytes a parser reads.
Input = TypeVar("Input", bytes, str)


def best_time(parse: Callable[[], object]) -> float:
    start = time.perf_counter()
    with contextlib.suppress(*EXPECTED):
        parse()
    return time.perf_counter() - start


def ratio(parse: Callable[[Input], object], benign: Input, degenerate: Input) -> float:
    benign_time = degenerate_time = float("inf")
    for _ in range(RUNS):
        benign_time = min(benign_time, best_time(lambda: parse(benign)))
        degenerate_time = min(degenerate_time, best_time(lambda: parse(degenerate)))
    return degenerate_time / benign_time


def assert_same_cost(parse: Callable[[Input], object], benign: Input, degenerate: Input) -> None:
    """``parse(degenerate)`` costs at most FACTOR times ``parse(benign)``."""
    assert len(degenerate) >= len(benign) * 0.9, "compare inputs of the same size"
    measured = []
    for _ in range(ATTEMPTS):
        measured.append(ratio(parse, benign, degenerate))
        if measured[-1] <= FACTOR:
            return
    pytest.fail(f"the degenerate input cost {min(measured):.1f} times the benign one")


def repeat(piece: Input, size: int) -> Input:
    return (piece * (size // len(piece) + 1))[:size]


def test_the_comparison_fails_for_a_per_byte_python_loop() -> None:
    """The harness itself: a parser with a Python step per separator does not pass."""

    def slow(body: bytes) -> int:
        return sum(1 for piece in body.split(b"&") if piece)

    benign = repeat(b"x", 200_000)
    with pytest.raises(pytest.fail.Exception, match="times the benign one"):
        assert_same_cost(slow, benign, repeat(b"&", 200_000))


# --- urlencoded bodies -------------------------------------------------------------------------

FORM_SIZE = 512 * 1024  # a single field fills it without reaching max_part_size


def benign_form(size: int) -> bytes:
    # the most fields the default limit accepts, with realistic percent-encoded text
    field = urlencode({"comment": TEXT * 10}).encode()
    return repeat(field + b"&", size)


URLENCODED_SHAPES = {
    "separators": b"&",
    "equals": b"=",
    "percent": b"%",
    "plus": b"+",
    "escapes": b"%41",
    "invalid-utf8-escapes": b"%C3",
    "half-escapes": b"%4",
    "empty-names": b"=&",
    "one-byte-fields": b"a&",
    "raw-latin1-escapes": b"\xff%",
    "escape-then-byte": b"%41\xff",
}


@pytest.mark.parametrize("piece", URLENCODED_SHAPES.values(), ids=URLENCODED_SHAPES.keys())
def test_urlencoded_body(piece: bytes) -> None:
    assert_same_cost(parse_urlencoded, benign_form(FORM_SIZE), repeat(piece, FORM_SIZE))


def test_urlencoded_one_enormous_field() -> None:
    assert_same_cost(parse_urlencoded, benign_form(FORM_SIZE), b"a=" + b"%" * (FORM_SIZE - 2))


def test_urlencoded_many_tiny_chunks() -> None:
    def bytewise(body: bytes) -> None:
        parser = UrlencodedParser()
        for index in range(len(body)):
            parser.feed(body[index : index + 1])
        parser.close()

    size = 20_000
    assert_same_cost(bytewise, benign_form(size), repeat(b"&", size))


@settings(max_examples=15, deadline=None)
@given(st.lists(st.sampled_from(list(URLENCODED_SHAPES.values())), min_size=1, max_size=4))
def test_urlencoded_combined_shapes(pieces: list[bytes]) -> None:
    assert_same_cost(parse_urlencoded, benign_form(FORM_SIZE), repeat(b"".join(pieces), FORM_SIZE))


# --- query strings -----------------------------------------------------------------------------

QUERY_SIZE = 256 * 1024
BENIGN_QUERY = repeat(urlencode({"q": TEXT, "page": 2}) + "&", QUERY_SIZE)

QUERY_SHAPES = {
    "separators": "&",
    "equals": "=",
    "percent": "%",
    "plus": "+",
    "escapes": "%41",
    "invalid-utf8-escapes": "%C3",
    "escape-and-text": "%E2%82é",
}


@pytest.mark.parametrize("piece", QUERY_SHAPES.values(), ids=QUERY_SHAPES.keys())
def test_query_string(piece: str) -> None:
    assert_same_cost(parse_query, BENIGN_QUERY, repeat(piece, QUERY_SIZE))


@settings(max_examples=10, deadline=None)
@given(st.lists(st.sampled_from(list(QUERY_SHAPES.values())), min_size=1, max_size=4))
def test_query_combined_shapes(pieces: list[str]) -> None:
    assert_same_cost(parse_query, BENIGN_QUERY, repeat("".join(pieces), QUERY_SIZE))


# A query a page in a legacy charset submits: latin-1 bytes, not UTF-8, percent-encoded here.
BENIGN_LEGACY_QUERY = repeat("q=caf\xe9+cr\xe8me+br\xfbl\xe9e&page=2&", QUERY_SIZE).encode(
    "latin-1"
)


@pytest.mark.parametrize(
    "piece", [b"\xff", b"#", b"\t", b"\xff#"], ids=["non-utf8", "hash", "tab", "both"]
)
def test_raw_query_string(piece: bytes) -> None:
    assert_same_cost(scope_query, BENIGN_LEGACY_QUERY, repeat(piece, QUERY_SIZE))


@pytest.mark.parametrize("piece", ["?", "#", "\\", "\t", "/"])
def test_path(piece: str) -> None:
    # the benign path holds one character that needs escaping, so both take the slow branch
    benign = repeat("/articles/2024/summer-sale", QUERY_SIZE - 1) + "?"
    assert_same_cost(lambda path: scope_path(path, False), benign, repeat(piece, QUERY_SIZE))


# --- cookies -----------------------------------------------------------------------------------

COOKIE_SIZE = 256 * 1024
# Cookies as set_cookie writes them: JSON values, quoted with escapes.
BENIGN_COOKIES = repeat(
    "; ".join(
        f"c{index}={quote_value(json.dumps({'id': index, 'note': TEXT[:60]}))}"
        for index in range(40)
    )
    + "; ",
    COOKIE_SIZE,
)

COOKIE_SHAPES = {
    "separators": ";",
    "equals": "=",
    "spaces": " ",
    "quotes": '"',
    "bare-values": "a;",
    "empty-values": "a=;",
}


@pytest.mark.parametrize("piece", COOKIE_SHAPES.values(), ids=COOKIE_SHAPES.keys())
def test_cookie_header(piece: str) -> None:
    assert_same_cost(parse_cookie_header, BENIGN_COOKIES, repeat(piece, COOKIE_SIZE))


@pytest.mark.parametrize(
    "escape", ["\\\\", "\\101", '\\"', "\\"], ids=["backslashes", "octal", "quotes", "lone"]
)
def test_cookie_value_of_escapes_only(escape: str) -> None:
    degenerate = 'a="' + repeat(escape, COOKIE_SIZE - 4) + '"'
    assert_same_cost(parse_cookie_header, BENIGN_COOKIES, degenerate)


@settings(max_examples=10, deadline=None)
@given(st.lists(st.sampled_from([*COOKIE_SHAPES.values(), '\\"', "\\1"]), min_size=1, max_size=4))
def test_cookie_combined_shapes(pieces: list[str]) -> None:
    degenerate = 'a="' + repeat("".join(pieces), COOKIE_SIZE - 4) + '"'
    assert_same_cost(parse_cookie_header, BENIGN_COOKIES, degenerate)


# --- Host --------------------------------------------------------------------------------------

HOST_SIZE = 256 * 1024
BENIGN_HOST = repeat("shop.example.com.", HOST_SIZE - 5) + ":8080"

HOST_SHAPES = {
    "open-ipv6": "[" + ":" * (HOST_SIZE - 1),
    "open-ipvfuture": "[v1." + ":" * (HOST_SIZE - 4),
    "brackets": "[" * HOST_SIZE,
    "colons": ":" * HOST_SIZE,
    "port-digits": "a:" + "1" * (HOST_SIZE - 2),
    "port-separators": "a" + ":1" * (HOST_SIZE // 2),
    "percent": "%" * HOST_SIZE,
}


@pytest.mark.parametrize("host", HOST_SHAPES.values(), ids=HOST_SHAPES.keys())
def test_host_header(host: str) -> None:
    assert_same_cost(parse_host, BENIGN_HOST, host)


# --- Range -------------------------------------------------------------------------------------

RANGE_SIZE = 256 * 1024
FILE_SIZE = 10**12
# 99 ranges (the most that are read), each number padded with zeros to fill the size
_WIDTH = RANGE_SIZE // 99 // 2 - 2
BENIGN_RANGE = "bytes=" + ",".join(
    f"{index * 1000:0{_WIDTH}d}-{index * 1000 + 499:0{_WIDTH}d}" for index in range(99)
)

RANGE_SHAPES = {
    "commas": "bytes=" + "," * 99 + " " * RANGE_SIZE,
    "spaces": "bytes=" + " " * RANGE_SIZE,
    "dashes": "bytes=" + "-" * RANGE_SIZE,
    "equals": "=" * RANGE_SIZE,
    "huge-start": "bytes=" + "9" * RANGE_SIZE + "-",
    "zero-padded-suffix": "bytes=-" + "0" * RANGE_SIZE + "1",
    "space-dash": "bytes=" + " -" * (RANGE_SIZE // 2),
}


@pytest.mark.parametrize("value", RANGE_SHAPES.values(), ids=RANGE_SHAPES.keys())
def test_range_header(value: str) -> None:
    assert_same_cost(lambda header: parse_range_header(header, FILE_SIZE), BENIGN_RANGE, value)


# --- multipart ---------------------------------------------------------------------------------

BOUNDARY = b"boundary"
MULTIPART_SIZE = 1024 * 1024


def parse_multipart(body: bytes, chunk_size: int = 64 * 1024) -> None:
    parser = MultipartParser(BOUNDARY)
    for start in range(0, len(body), chunk_size):
        for event in parser.feed(body[start : start + chunk_size]):
            if isinstance(event, MultiPartException):
                raise event
    parser.close()


def multipart_body(data: bytes, preamble: bytes = b"--boundary\r\n") -> bytes:
    head = preamble + b'Content-Disposition: form-data; name="f"; filename="a.bin"\r\n\r\n'
    return head + data + b"\r\n--boundary--\r\n"


# an upload of binary data (every byte value, CR and LF included)
BENIGN_MULTIPART = multipart_body(repeat(bytes(range(256)) * 3 + b"\r\n", MULTIPART_SIZE))

MULTIPART_DATA_SHAPES = {
    "almost-delimiters": b"\r\n--boundar",
    "delimiters-then-data": b"\r\n--boundaryx",
    "carriage-returns": b"\r",
    "line-breaks": b"\r\n",
    "dashes": b"-",
    "crlf-dash": b"\r\n-",
    "crlf-dashes": b"\r\n--",
}


@pytest.mark.parametrize("piece", MULTIPART_DATA_SHAPES.values(), ids=MULTIPART_DATA_SHAPES.keys())
@pytest.mark.parametrize("chunk_size", [64 * 1024, 1000])
def test_multipart_part_data(piece: bytes, chunk_size: int) -> None:
    degenerate = multipart_body(repeat(piece, MULTIPART_SIZE))
    assert_same_cost(lambda body: parse_multipart(body, chunk_size), BENIGN_MULTIPART, degenerate)


@settings(max_examples=10, deadline=None)
@given(st.lists(st.sampled_from(list(MULTIPART_DATA_SHAPES.values())), min_size=1, max_size=4))
def test_multipart_combined_shapes(pieces: list[bytes]) -> None:
    degenerate = multipart_body(repeat(b"".join(pieces), MULTIPART_SIZE))
    assert_same_cost(parse_multipart, BENIGN_MULTIPART, degenerate)


def test_multipart_transport_padding() -> None:
    degenerate = b"--boundary" + b" " * MULTIPART_SIZE + b"\r\n\r\n\r\n--boundary--"
    assert_same_cost(parse_multipart, BENIGN_MULTIPART, degenerate)


def test_multipart_preamble() -> None:
    degenerate = multipart_body(b"", preamble=b"\r\n" + b"x" * MULTIPART_SIZE + b"--boundary\r\n")
    assert_same_cost(parse_multipart, BENIGN_MULTIPART, degenerate)


def test_multipart_epilogue() -> None:
    degenerate = multipart_body(b"") + b"\r\n--boundary\r\n" * (MULTIPART_SIZE // 14)
    assert_same_cost(parse_multipart, BENIGN_MULTIPART, degenerate)


def test_multipart_many_tiny_chunks() -> None:
    size = 20_000
    benign = multipart_body(repeat(bytes(range(256)), size))
    degenerate = multipart_body(repeat(b"\r\n--boundar", size))
    assert_same_cost(lambda body: parse_multipart(body, 1), benign, degenerate)


OPTIONS_SIZE = 64 * 1024
BENIGN_OPTIONS = 'form-data; name="upload"; filename="' + "a" * OPTIONS_SIZE + '.txt"'

OPTIONS_SHAPES = {
    "semicolons": ";",
    "quotes": '"',
    "semicolon-quote": ';"',
    "parameters": ";a=",
    "escaped-quotes": '\\"',
    "quoted-semicolons": None,
}


@pytest.mark.parametrize("piece", OPTIONS_SHAPES.values(), ids=OPTIONS_SHAPES.keys())
def test_content_disposition(piece: str | None) -> None:
    if piece is None:  # semicolons inside an open quoted string
        degenerate = 'form-data; name="' + ";" * OPTIONS_SIZE
    else:
        degenerate = "form-data; " + repeat(piece, OPTIONS_SIZE)
    assert_same_cost(parse_options_header, BENIGN_OPTIONS, degenerate)


@settings(max_examples=10, deadline=None)
@given(st.lists(st.sampled_from(['"', ";", "=", "\\", " ", "a"]), min_size=1, max_size=5))
def test_content_disposition_combined_shapes(pieces: list[str]) -> None:
    degenerate = "form-data; " + repeat("".join(pieces), OPTIONS_SIZE)
    assert_same_cost(parse_options_header, BENIGN_OPTIONS, degenerate)


# --- JSON bodies -------------------------------------------------------------------------------

JSON_SIZE = 512 * 1024
BENIGN_JSON = (
    json.dumps([{"id": index, "comment": TEXT, "score": 0.5} for index in range(2000)])[
        :JSON_SIZE
    ].rsplit("},", 1)[0]
    + "}]"
)

JSON_SHAPES = {
    "nesting": "[" * JSON_SIZE,
    "objects": '{"a":' * (JSON_SIZE // 5),
    "huge-integer": "1" * JSON_SIZE,
    "huge-float": "0." + "1" * JSON_SIZE,
    "huge-exponent": "1e" + "9" * JSON_SIZE,
    "escapes": '"' + "\\u00e9" * (JSON_SIZE // 6) + '"',
    "backslashes": '"' + "\\\\" * (JSON_SIZE // 2) + '"',
    "whitespace": " " * JSON_SIZE + "1",
    "commas": "[" + "1," * (JSON_SIZE // 2) + "1]",
}


@pytest.mark.parametrize("document", JSON_SHAPES.values(), ids=JSON_SHAPES.keys())
def test_json_body(document: str) -> None:
    assert_same_cost(_loads, BENIGN_JSON.encode(), document.encode())


# --- headers -----------------------------------------------------------------------------------

HEADER_SIZE = 256 * 1024


@pytest.mark.parametrize(
    ("benign", "degenerate"),
    [
        (repeat("x-request-id-", HEADER_SIZE), "-" * HEADER_SIZE),
        (repeat("x-custom-header", HEADER_SIZE), "~" * HEADER_SIZE),
    ],
    ids=["dashes", "symbols"],
)
def test_header_name(benign: str, degenerate: str) -> None:
    assert_same_cost(header_name, benign, degenerate)


@pytest.mark.parametrize("piece", ["\t", "\x80", "\t\x80"], ids=["tabs", "latin1", "both"])
def test_header_value(piece: str) -> None:
    benign = repeat("text/html; charset=utf-8, ", HEADER_SIZE)
    assert_same_cost(header_value, benign, repeat(piece, HEADER_SIZE))


@pytest.mark.parametrize(
    "piece", [",", " ,", "W/,", '"a",'], ids=["commas", "spaces", "weak", "tags"]
)
def test_if_none_match(piece: str) -> None:
    etag = '"5d41402abc4b2a76b9719d911017c592"'
    # a revalidation: the etag is in the list, so both take the full scan
    benign = repeat(f'"{"0" * 32}", W/"{"1" * 32}", ', HEADER_SIZE) + etag
    assert_same_cost(
        lambda value: _etag_matches(value, etag), benign, repeat(piece, HEADER_SIZE) + etag
    )


@pytest.mark.parametrize(
    "piece", [";", ";q", "; q=", " ;"], ids=["semicolons", "q-names", "q-empty", "spaces"]
)
def test_accept_encoding(piece: str) -> None:
    def accepts(value: bytes) -> bool:
        return _accepts_gzip({"headers": [(b"accept-encoding", value)]})

    benign = repeat("br;q=1.0, deflate;q=0.5, identity, ", HEADER_SIZE - 8) + "gzip;q=1"
    degenerate = "gzip" + repeat(piece, HEADER_SIZE)
    assert_same_cost(accepts, benign.encode(), degenerate.encode())


# --- event-stream encoding (starling.sse) ----------------------------------------------------

EVENT_SIZE = 512 * 1024
BENIGN_EVENT_DATA = repeat(TEXT + "\n", EVENT_SIZE)  # a long multi-line text
EVENT_SHAPES = {
    "line feeds only": "\n",
    "carriage returns only": "\r",
    "CRLF only": "\r\n",
    "CR CR LF LF": "\r\r\n\n",
    "one enormous line": "x",
}


@pytest.mark.parametrize("piece", EVENT_SHAPES.values(), ids=EVENT_SHAPES.keys())
def test_event_stream_encoding(piece: str) -> None:
    """Every line break of the data becomes a `data:` line, in one pass."""
    assert_same_cost(
        lambda data: ServerSentEvent(data).encode(), BENIGN_EVENT_DATA, repeat(piece, EVENT_SIZE)
    )


@pytest.mark.parametrize("field", ["event", "id", "comment"])
def test_event_single_line_fields(field: str) -> None:
    """A huge single-line field is checked for CR and LF in one pass, whatever its bytes."""
    benign = repeat(TEXT.replace("\n", " "), EVENT_SIZE)

    def build(value: str) -> ServerSentEvent:
        fields: dict[str, str] = {field: value}
        return ServerSentEvent(
            "x", event=fields.get("event"), id=fields.get("id"), comment=fields.get("comment")
        )

    assert_same_cost(build, benign, repeat("\x7f", EVENT_SIZE))
