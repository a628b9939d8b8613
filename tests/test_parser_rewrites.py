"""The parsers rewritten to run in C on hostile shapes read every input as before.

Each rewrite (tests/test_parser_cost.py measures why) is compared here with the plain reading
it replaced, kept as a reference: the results must be the same on every input.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from hypothesis import example, given, settings
from hypothesis import strategies as st

from starling._multipart import MultipartParser
from starling._ranges import _RANGE_SPEC, MalformedRangeHeader, parse_range_header
from starling._urlencoded import UrlencodedParser
from starling._urlparse import parse_host, scope_path, scope_query
from starling.middleware.gzip import _quality
from starling.staticfiles import _etag_matches


def reference_quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 1.0
    return 1.0


@settings(max_examples=2000)
@given(st.text("q=; \t0.5x\n\x0b", max_size=20))
def test_accept_encoding_quality(params: str) -> None:
    assert _quality(params) == reference_quality(params)


def test_accept_encoding_quality_reads_sixteen_parameters() -> None:
    assert _quality(";" * 15 + "q=0") == 0.0
    assert _quality(";" * 16 + "q=0") == 1.0  # past the bound: as if absent


def reference_etag_matches(header: str, etag: str | None) -> bool:
    if header.strip() == "*":
        return True
    if etag is None:
        return False
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


@settings(max_examples=3000)
@given(
    st.text('W/"a, *\t\n\u2003', max_size=20),
    st.sampled_from(['"a"', 'W/"a"', '"', None, "a", "W/a", "*", "a.b"]),
)
@example('W/"a"', '"a"')
@example('"a", W/W/"a"', 'W/"a"')
@example("axb", "a.b")  # the etag is matched literally, not as a pattern
def test_if_none_match(header: str, etag: str | None) -> None:
    assert _etag_matches(header, etag) == reference_etag_matches(header, etag)


def reference_scope_query(query_string: bytes) -> str:
    try:
        query = query_string.decode("utf-8")
    except UnicodeDecodeError:
        query = quote(query_string, safe=bytes(range(0x80)))
    return query.replace("\t", "").replace("\r", "").replace("\n", "").replace("#", "%23")


@given(st.binary())
@example(b"caf\xe9#x")
def test_query_string(query_string: bytes) -> None:
    assert scope_query(query_string) == reference_scope_query(query_string)


_STRIP = str.maketrans("", "", "\t\r\n")
_PATH_ESCAPES = str.maketrans({"?": "%3F", "#": "%23", "\\": "%5C"})


def reference_scope_path(path: str) -> str:
    return path.translate(_STRIP).translate(_PATH_ESCAPES)


@given(st.text("a/?#\\\t\r\né"))
def test_path(path: str) -> None:
    expected = reference_scope_path(path)
    if expected and expected[0] != "/":
        expected = "/" + expected
    assert scope_path(path, True) == expected


# The Host grammar with ordinary (backtracking) quantifiers, as before the rewrite.
_REFERENCE_HOST = re.compile(
    r"(?P<host>[A-Za-z0-9\-._~!$&'()*+,;=%]+|\[(?P<ip6>[0-9A-Fa-f:.]+|"
    r"v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+)\])(?::(?P<port>[0-9]+))?"
)


@settings(max_examples=2000)
@given(st.text("a1:[].v%f", max_size=16))
def test_host_grammar(host: str) -> None:
    match = _REFERENCE_HOST.fullmatch(host)
    if match is None:
        assert parse_host(host) is None
    elif parse_host(host) is not None:
        assert parse_host(host)[0] == match["host"]  # type: ignore[index]


_REFERENCE_RANGE = re.compile(r"[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*")


@settings(max_examples=2000)
@given(st.text(" \t0123-,x", max_size=12))
def test_range_elements(spec: str) -> None:
    reference = _REFERENCE_RANGE.fullmatch(spec)
    match = _RANGE_SPEC(spec)
    assert (match and match.groups()) == (reference and reference.groups())


def test_range_of_spaces_is_refused() -> None:
    """Quadratic before (two OWS runs around an empty number): minutes for 256 KB."""
    try:
        parse_range_header("bytes=" + " " * 256 * 1024, 10)
    except MalformedRangeHeader as error:
        assert error.content == "Range header: range must be requested"


@settings(max_examples=500)
@given(
    st.lists(st.sampled_from([b"a", b"=", b"&", b"%41", b"+", b"\xff"]), max_size=30).map(b"".join),
    st.integers(1, 7),
)
def test_urlencoded_chunking(body: bytes, size: int) -> None:
    """Fields found by one scan per chunk: the same fields whatever the chunking."""
    whole = UrlencodedParser()
    expected = whole.feed(body) + whole.close()
    parser = UrlencodedParser()
    fields = []
    for start in range(0, len(body), size):
        fields += parser.feed(body[start : start + size])
    assert fields + parser.close() == expected


def test_urlencoded_field_over_the_size_limit_inside_a_chunk() -> None:
    parser = UrlencodedParser(max_part_size=4)
    assert parser.feed(b"ab=cd&") == [("ab", "cd")]  # 4 bytes, the "=" not counted
    try:
        parser.feed(b"abc=de&")
    except Exception as error:
        assert str(error) == "Field exceeded maximum size of 0KB."


def events(body: bytes, size: int) -> list[object]:
    parser = MultipartParser(b"b")
    out: list[object] = []
    for start in range(0, len(body), size):
        out += parser.feed(body[start : start + size])
        if out and isinstance(out[-1], Exception):
            break  # the last event; the parser raises it from now on
    joined: list[object] = []
    for event in out:
        if isinstance(event, bytes) and joined and isinstance(joined[-1], bytes):
            joined[-1] += event
        else:
            joined.append(event if not isinstance(event, Exception) else str(event))
    return joined


@settings(max_examples=500)
@given(
    st.lists(st.sampled_from([b"\r\n--b", b"x", b"\r", b"\n", b"-", b" ", b"\t"]), max_size=20),
    st.integers(1, 9),
)
def test_multipart_false_delimiters(pieces: list[bytes], size: int) -> None:
    """Data holding delimiters that are not followed by CRLF, "--" or padding: found by a
    regex scan, the same events whatever the chunking."""
    body = b"--b\r\n\r\n" + b"".join(pieces) + b"\r\n--b--"
    assert events(body, size) == events(body, len(body))


def test_multipart_padding_and_false_delimiter() -> None:
    body = b"--b\r\n\r\nx\r\n--bx\r\n--b \t \r\n\r\ny\r\n--b--"
    assert events(body, len(body)) == [[], b"x\r\n--bx", None, [], b"y", None]
    assert events(body, 1) == events(body, len(body))
