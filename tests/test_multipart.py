"""starling._multipart: the sans-IO multipart/form-data parser and the parameter parser."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from python_multipart.multipart import MultipartParser as ReferenceParser
from python_multipart.multipart import MultipartState
from python_multipart.multipart import parse_options_header as reference_options

from starling._formerrors import MultiPartException
from starling._multipart import (
    MAX_BOUNDARY_LENGTH,
    MAX_HEADER_COUNT,
    MAX_HEADER_SIZE,
    MAX_SEMICOLONS,
    Event,
    MultipartParser,
    parse_options_header,
)


@pytest.fixture(autouse=True)
def quiet_python_multipart() -> Iterator[None]:
    """python-multipart logs a warning for each body it rejects; the tests reject many."""
    logger = logging.getLogger("python_multipart.multipart")
    logger.disabled = True
    yield
    logger.disabled = False


Part = tuple[list[tuple[bytes, bytes]], bytes]
Outcome = list[Part] | str

B = b"boundary"
CD = b'Content-Disposition: form-data; name="a"'


def body_of(*parts: tuple[list[bytes], bytes], boundary: bytes = B) -> bytes:
    body = b""
    for headers, data in parts:
        body += b"--" + boundary + b"\r\n" + b"".join(h + b"\r\n" for h in headers)
        body += b"\r\n" + data + b"\r\n"
    return body + b"--" + boundary + b"--\r\n"


def run(chunks: list[bytes], boundary: bytes = B) -> Outcome:
    """The finished parts, or the error message: the outcome to compare between chunkings."""
    parts: list[Part] = []
    try:
        parser = MultipartParser(boundary)
        headers: list[tuple[bytes, bytes]] = []
        data = b""
        for chunk in chunks:
            for event in parser.feed(chunk):
                if isinstance(event, list):
                    headers, data = event, b""
                elif isinstance(event, bytes):
                    assert event, "data events are never empty"
                    data += event
                elif isinstance(event, MultiPartException):
                    raise event
                else:
                    parts.append((headers, data))
        parser.close()
    except MultiPartException as exc:
        return message_of(exc)
    return parts


def message_of(error: MultiPartException) -> str:
    """The message, and the reason noted on Starlette's generic one."""
    return " ".join([error.message, *getattr(error, "__notes__", [])])


def bytewise(body: bytes) -> list[bytes]:
    return [body[index : index + 1] for index in range(len(body))]


def outcomes(body: bytes, boundary: bytes = B) -> Outcome:
    """Whole and byte by byte must agree; return the outcome."""
    whole = run([body], boundary)
    assert run(bytewise(body), boundary) == whole
    return whole


def invalid(reason: str) -> str:
    """Malformed data Starlette refuses too: its message, the reason in a note."""
    return f"Invalid multipart data. Reason: {reason}."


ENDED_EARLY = "the body ended before the final boundary"


def refused(reason: str) -> str:
    """Data Starlette accepts and starling refuses: the message says why."""
    return f"Invalid multipart data: {reason}."


# --- well-formed bodies ---------------------------------------------------------------------


def test_fields_and_files() -> None:
    body = body_of(
        ([CD], b"hello"),
        ([b'Content-Disposition: form-data; name="f"; filename="x"', b"Content-Type: a/b"], b"1"),
    )
    assert outcomes(body) == [
        ([(b"content-disposition", b'form-data; name="a"')], b"hello"),
        (
            [
                (b"content-disposition", b'form-data; name="f"; filename="x"'),
                (b"content-type", b"a/b"),
            ],
            b"1",
        ),
    ]


def test_header_names_lowered_values_keep_all_but_leading_spaces() -> None:
    body = body_of(([b"X-Mixed-Case:   \tvalue \t", b"x-empty:", b"X-LF: a\nb"], b""))
    assert outcomes(body) == [
        ([(b"x-mixed-case", b"\tvalue \t"), (b"x-empty", b""), (b"x-lf", b"a\nb")], b"")
    ]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n",
        b"--",
        b"\r\n--boundar",
        b"\r\n--boundaryx",
        b"\r\n--boundary-x",
        b"\r\n--boundary\rx",
        b"x\r\n--boundary\r",
        b"\r\r\n\r\n--",
        b"--boundary\r\n",  # not after a line break: data
    ],
)
def test_data_that_resembles_a_delimiter_is_data(data: bytes) -> None:
    assert outcomes(body_of(([CD], data))) == [([(b"content-disposition", CD[21:])], data)]


def test_part_without_headers_and_empty_parts() -> None:
    body = b"--boundary\r\n\r\n\r\n--boundary\r\n\r\nx\r\n--boundary--"
    assert outcomes(body) == [([], b""), ([], b"x")]


def test_empty_form_and_empty_body() -> None:
    assert outcomes(b"--boundary--") == []
    assert outcomes(b"--boundary--\r\nepilogue") == []
    assert outcomes(b"") == []
    assert outcomes(b"\r\n\n\r") == []
    assert outcomes(b"\r\npreamble") == []


def test_preamble_after_a_line_break_and_epilogue_are_ignored() -> None:
    expected = [([(b"content-disposition", CD[21:])], b"x")]
    body = body_of(([CD], b"x")) + b"epilogue --boundary\r\n junk"
    assert outcomes(b"\r\n\n" + body) == expected
    assert outcomes(b"\r\npreamble text\r\n" + body) == expected
    assert run([b"\r\npre", b"amble", b"", b"text" + body]) == expected


def test_transport_padding_after_a_delimiter() -> None:
    body = b"--boundary\r\n\r\nx\r\n--boundary \t \r\n\r\ny\r\n--boundary--"
    assert outcomes(body) == [([], b"x"), ([], b"y")]


def test_complete_tells_whether_the_final_boundary_was_read() -> None:
    parser = MultipartParser(B)
    parser.feed(b"--boundary\r\n\r\nx")
    assert not parser.complete
    parser.feed(b"\r\n--boundary--")
    assert parser.complete
    assert parser.feed(b"anything after the end") == []
    parser.close()


def test_large_data_is_passed_through_without_copies() -> None:
    parser = MultipartParser(B)
    parser.feed(b"--boundary\r\n\r\n")
    chunk = bytes(range(256)) * 256
    (event,) = parser.feed(chunk)
    assert event is chunk


def test_a_partial_delimiter_is_held_back_only_while_it_may_complete() -> None:
    parser = MultipartParser(B)
    parser.feed(b"--boundary\r\n\r\n")
    assert parser.feed(b"abc\r\n--boun") == [b"abc"]
    assert parser.feed(b"cy") == [b"\r\n--bouncy"]
    assert parser.feed(b"\r") == []
    assert parser.feed(b"x") == [b"\rx"]


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("boundary", "message"),
    [
        (b"", "Missing boundary in multipart."),
        (b"x" * (MAX_BOUNDARY_LENGTH + 1), refused("the boundary is longer than 70 bytes")),
        (b"x" * 256, refused("the boundary is longer than 70 bytes")),
        (b"x" * 257, invalid("the boundary is longer than 256 bytes")),
        (b"a\rb", refused("the boundary contains a line break")),
        (b"a\nb", refused("the boundary contains a line break")),
    ],
)
def test_bad_boundaries(boundary: bytes, message: str) -> None:
    with pytest.raises(MultiPartException) as info:
        MultipartParser(boundary)
    assert message_of(info.value) == message


def test_longest_boundary_is_accepted() -> None:
    boundary = b"x" * MAX_BOUNDARY_LENGTH
    assert outcomes(body_of(([], b"1"), boundary=boundary), boundary) == [([], b"1")]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"preamble\r\n--boundary--", "the body does not start with the boundary"),
        (b"--boundarx\r\n", "the body does not start with the boundary"),
        (b"\r\n-x", "the body does not start with the boundary"),
        (b"\r\npreamble-x", "the body does not start with the boundary"),
        (b"--boundary \r\n\r\n\r\n--boundary--", "expected CRLF after the boundary"),
        (b"--boundary-x", "expected CRLF after the boundary"),
        (b"--boundary\x00", "expected CRLF after the boundary"),
        (b"--boundary\r\n\r\nx\r\n--boundary  x", "expected CRLF after the boundary padding"),
        (b"--boundary\r\n\r\nx\r\n--boundary  x\r\n", "expected CRLF after the boundary padding"),
        (b"--boundary\r\n\r\nx\r\n--boundary \rx", "expected CRLF after the boundary padding"),
        (b"--boundary\r\nno colon\r\n\r\n", "malformed part header"),
        (b"--boundary\r\n: empty name\r\n\r\n", "malformed part header"),
        (b"--boundary\r\nBad Name: x\r\n\r\n", "malformed part header"),
        (b"--boundary\r\nA: x\r\n folded\r\n\r\n", "malformed part header"),
        (b"--boundary\r\nA: x\ry\r\n\r\n", "a CR not followed by LF in a part header"),
        (b"--boundary\r\n" + b"A: 1\r\n" * 9 + b"\r\n", "a part has more than 8 headers"),
        (
            b"--boundary\r\nA: " + b"x" * (MAX_HEADER_SIZE - 2) + b"\r\n\r\n",
            "a part header line is longer than 4224 bytes",
        ),
        (b"--boundary", ENDED_EARLY),
        (b"--boundary\r\n", ENDED_EARLY),
        (b"--boundary\r\nA: 1", ENDED_EARLY),
        (b"--boundary\r\n\r\nxyz", ENDED_EARLY),
        (b"--boundary\r\n\r\nxyz\r\n--boundary", ENDED_EARLY),
        (b"--boundary\r\n\r\nxyz\r\n--boundary-", ENDED_EARLY),
        (b"--boundary\r\n\r\nxyz\r\n--boundary  ", ENDED_EARLY),
        (b"--bound", ENDED_EARLY),
        # Cut short inside a header block that python-multipart has already refused.
        (b"--boundary\r\nA: 1\r\nno colon\r\nB", "malformed part header"),
        (b"--boundary\r\nA: 1\r\nBad Name", "malformed part header"),
        (b"--boundary\r\nA: 1\r\n: x", "malformed part header"),
        (b"--boundary\r\nA: x\ry", "malformed part header"),
        (
            b"--boundary\r\nA: " + b"x" * MAX_HEADER_SIZE,
            "a part header line is longer than 4224 bytes",
        ),
        (b"--boundary\r\nA: 1\r\nB: 2\r", ENDED_EARLY),
        (b"--boundary\r\nA: 1\r\nB", ENDED_EARLY),
    ],
)
def test_malformed_bodies(body: bytes, reason: str) -> None:
    message = refused(reason) if reason == ENDED_EARLY else invalid(reason)
    assert outcomes(body) == message


def test_header_line_and_count_at_the_limits() -> None:
    longest = b"A: " + b"x" * (MAX_HEADER_SIZE - 3)
    headers = [longest] * MAX_HEADER_COUNT
    parts = outcomes(body_of((headers, b"")))
    assert isinstance(parts, list)
    assert len(parts[0][0]) == MAX_HEADER_COUNT


def test_headers_that_never_end_are_cut_off() -> None:
    parser = MultipartParser(B)
    parser.feed(b"--boundary\r\nA: 1\r\n")
    events: list[Event] = []
    while not events:
        events = parser.feed(b"x" * 1000)
    (error,) = events
    assert isinstance(error, MultiPartException)
    assert message_of(error) == invalid("the part headers are too large")
    parser = MultipartParser(B)
    parser.feed(b"--boundary\r\n")
    (error,) = parser.feed(b"x" * 40_000)
    assert isinstance(error, MultiPartException)
    assert message_of(error) == invalid("the part headers are too large")


def test_an_error_comes_after_the_events_before_it_then_stays() -> None:
    parser = MultipartParser(B)
    events = parser.feed(b"--boundary\r\n\r\nx\r\n--boundary\r\nno colon\r\n\r\n")
    assert events[:3] == [[], b"x", None]
    error = events[3]
    assert isinstance(error, MultiPartException)
    assert len(events) == 4
    with pytest.raises(MultiPartException) as info:
        parser.feed(b"more")
    assert info.value is error
    with pytest.raises(MultiPartException) as info:
        parser.close()
    assert info.value is error


# --- hostile bodies stay linear --------------------------------------------------------------


def seconds(body: bytes, chunk_size: int) -> float:
    """The best of three runs of the parser alone over ``body`` cut into ``chunk_size`` bytes."""
    chunks = [body[index : index + chunk_size] for index in range(0, len(body), chunk_size)]
    best = float("inf")
    for _ in range(3):
        parser = MultipartParser(B)
        start = time.perf_counter()
        for chunk in chunks:
            parser.feed(chunk)
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize(
    "piece",
    [
        b"\r\n--boundar",  # a delimiter that almost matches, over and over
        b"\r\n--boundaryx",  # one that matches, then is data
        b"\r",
        b"\r\n-",
    ],
)
@pytest.mark.parametrize(("chunk_size", "count"), [(1 << 30, 100_000), (7, 10_000), (1, 2_000)])
def test_near_delimiters_take_linear_time(piece: bytes, chunk_size: int, count: int) -> None:
    head = b"--boundary\r\n\r\n"

    def ratio() -> float:
        small = seconds(head + piece * count, chunk_size)
        return seconds(head + piece * count * 10, chunk_size) / small

    # ten times the body: about ten times the time (quadratic would be a hundred); measured up
    # to three times, lazily, as a busy machine can slow one measurement
    assert any(ratio() < 40 for _ in range(3))


def test_headers_sent_byte_by_byte_take_linear_time() -> None:
    header = b"--boundary\r\nA: " + b"x" * 4000 + b"\r\n"
    small = header * 100 + b"\r\n"
    parser = MultipartParser(B)
    start = time.perf_counter()
    with pytest.raises(MultiPartException):
        list(map(parser.feed, bytewise(small)))
    assert time.perf_counter() - start < 5


# --- chunking never matters ------------------------------------------------------------------


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A multipart body, well-formed or nearly so, and its boundary."""
    boundary = draw(
        st.text("abcXYZ019'()+_,-./:=? ", min_size=1, max_size=MAX_BOUNDARY_LENGTH).map(str.encode)
    )
    fragments = st.sampled_from(
        [
            b"\r\n",
            b"\r",
            b"\n",
            b"-",
            b"--",
            b" ",
            b"\t",
            b"\r\n--" + boundary,
            b"\r\n--" + boundary[:-1],
            b"--" + boundary,
            boundary,
            b"\r\n\r\n",
        ]
    ) | st.binary(max_size=6)
    payloads = st.lists(fragments, max_size=6).map(b"".join)
    header_lines = st.one_of(
        st.just(b'Content-Disposition: form-data; name="f"'),
        st.just(b"Content-Type: text/plain"),
        st.builds(
            lambda name, value: name + b":" + value,
            st.sampled_from([b"X-A", b"x", b"", b"bad name", b"A\t"]),
            payloads,
        ),
    )
    parts = draw(
        st.lists(st.tuples(st.lists(header_lines, max_size=3), payloads), min_size=0, max_size=4)
    )
    body = draw(st.sampled_from([b"", b"\r\n", b"\n", b"\r\n\r\n"]))
    separators = st.sampled_from([b"\r\n", b"\r\n", b" \r\n", b"\t\r\n", b"x"])
    for index, (headers, payload) in enumerate(parts):
        body += (b"--" if index == 0 else b"\r\n--") + boundary + draw(separators)
        body += b"".join(line + b"\r\n" for line in headers) + b"\r\n" + payload
    body += (b"\r\n--" if parts else b"--") + boundary + b"--"
    body += draw(st.sampled_from([b"", b"\r\n", b"\r\nepilogue"]))
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(body)))
        body = body[:cut]
    if draw(st.booleans()):
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(min_size=1, max_size=3)) + body[at:]
    return body, boundary


def split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(body), *(cut % (len(body) + 1) for cut in cuts)})
    return [body[start:end] for start, end in zip(points, points[1:], strict=False)]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(bodies(), st.lists(st.integers(0, 10_000), max_size=12))
def test_any_chunking_gives_the_same_outcome(case: tuple[bytes, bytes], cuts: list[int]) -> None:
    body, boundary = case
    whole = run([body], boundary)
    assert run(split(body, cuts), boundary) == whole
    assert run(bytewise(body), boundary) == whole


# --- differential: python-multipart, which Starlette runs ------------------------------------


def reference(body: bytes, boundary: bytes, chunks: list[bytes]) -> tuple[Outcome, bool]:
    """python-multipart's finished parts (or its error) and whether it read the final boundary."""
    parts: list[Part] = []
    current: dict[str, Any] = {}

    def on_part_begin() -> None:
        current.update(headers=[], data=b"", name=b"", value=b"")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        current["name"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        current["value"] += data[start:end]

    def on_header_end() -> None:
        current["headers"].append((current["name"].lower(), current["value"]))
        current.update(name=b"", value=b"")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        current["data"] += data[start:end]

    def on_part_end() -> None:
        parts.append((current["headers"], current["data"]))

    parser = ReferenceParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        for chunk in chunks:
            parser.write(chunk)
    except Exception as exc:  # python-multipart's parse errors
        return str(exc), False
    return parts, parser.state == MultipartState.END


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(bodies(), st.lists(st.integers(0, 10_000), max_size=12))
@example((b"\r\nab--0\r\n\r\n\r\n--0--", b"0"), [3])
@example((b"--0\x00", b"0"), [])
def test_same_parts_as_python_multipart(case: tuple[bytes, bytes], cuts: list[int]) -> None:
    body, boundary = case
    chunks = split(body, cuts)
    expected, complete = reference(body, boundary, chunks)
    ours = run(chunks, boundary)
    if isinstance(expected, str) and not isinstance(ours, str):
        # python-multipart skips a preamble after a leading line break only within the first
        # chunk; starling whatever the chunking, as python-multipart does for the whole body.
        expected, complete = reference(body, boundary, [body])
    if isinstance(expected, str):
        # Both reject, and starling says what Starlette says; a body both malformed and cut
        # short may instead be reported as cut short (python-multipart can refuse a preamble
        # or header byte that starling only judges once more of the body has come).
        assert isinstance(ours, str), (expected, ours)
        assert ours.startswith("Invalid multipart data. ") or ours == refused(ENDED_EARLY)
    elif complete:
        assert ours == expected
    else:
        # python-multipart keeps the parts that ended before a body that stops short; starling
        # rejects such a body (an empty one, or only line breaks, is an empty form for both).
        assert ours == refused(ENDED_EARLY) or ours == expected == []


def test_differential_driver_sees_both_outcomes() -> None:
    body = body_of(([CD], b"x"))
    assert reference(body, B, [body]) == ([([(b"content-disposition", CD[21:])], b"x")], True)
    assert reference(b"--boundary\r\n\r\nx", B, [b"--boundary\r\n\r\nx"]) == ([], False)
    message, complete = reference(b"nope", B, [b"nope"])
    assert isinstance(message, str) and not complete


# --- parameters: Content-Type and Content-Disposition ----------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ("", {})),
        (" Multipart/Form-Data\t", ("multipart/form-data", {})),
        ("multipart/form-data; boundary=B", ("multipart/form-data", {"boundary": "B"})),
        ('form-data; name="a;b"; filename="c"', ("form-data", {"name": "a;b", "filename": "c"})),
        ('form-data; NAME = "x"', ("form-data", {"name": "x"})),
        ('form-data; name="a\\"b\\\\c"', ("form-data", {"name": 'a"b\\c'})),
        ("form-data; name=x; name*=UTF-8''y", ("form-data", {"name": "x"})),
        ("form-data; filename*=UTF-8''%E2%82%AC", ("form-data", {})),
        ('form-data; filename="C:\\\\dir\\\\f.txt"', ("form-data", {"filename": "f.txt"})),
        ('form-data; filename="\\\\\\\\srv\\\\f.txt"', ("form-data", {"filename": "f.txt"})),
        ("form-data; name", ("form-data", {"name": ""})),
        ("form-data;", ("form-data", {"": ""})),
        ('form-data; name="open', ("form-data", {"name": '"open'})),
    ],
)
def test_parse_options_header(value: str, expected: tuple[str, dict[str, str]]) -> None:
    assert parse_options_header(value) == expected


@settings(max_examples=2000)
@given(st.text('ab=;" \\\t*:Ff', max_size=40))
def test_parse_options_header_matches_python_multipart(value: str) -> None:
    content_type, options = parse_options_header(value)
    assert reference_options(value) == (
        content_type.encode("latin-1"),
        {key.encode("latin-1"): param.encode("latin-1") for key, param in options.items()},
    )


def test_parse_options_header_refuses_a_flood_of_semicolons() -> None:
    """The Python steps are bounded: more than MAX_SEMICOLONS ";" is refused, quoted or not
    (their cost is compared with benign headers in tests/test_parser_cost.py)."""
    at_limit = 'form-data; name="' + ";" * (MAX_SEMICOLONS - 1) + '"'
    assert parse_options_header(at_limit) == ("form-data", {"name": ";" * (MAX_SEMICOLONS - 1)})
    for value in ('form-data; name="' + ";" * MAX_SEMICOLONS, "form-data" + ";" * 129):
        with pytest.raises(MultiPartException, match="more than 128 semicolons"):
            parse_options_header(value)


def test_every_two_cut_chunking_gives_the_same_outcome() -> None:
    """Deterministic companion of the Hypothesis test: a body of several parts (with data that
    resembles delimiters, transport padding and an epilogue) cut at every pair of positions."""
    body = body_of(
        ([CD], b"one\r\n--boundar\r\n--boundaryx"),
        ([CD, b"Content-Type: text/plain"], b""),
        ([b'Content-Disposition: form-data; name="f"; filename="f.txt"'], b"x\r\n-"),
    )
    # transport padding after the third delimiter, and an epilogue after the final one
    third = body.index(b"--boundary\r\n", body.index(b"--boundary\r\n", 1) + 1)
    body = body[:third] + b"--boundary \t" + body[third + len(b"--boundary") :]
    body = body[:-2] + b"\r\nepilogue"
    whole = run([body])
    assert isinstance(whole, list) and len(whole) == 3
    for first in range(len(body) + 1):
        for second in range(first, len(body) + 1, 7):
            chunks = [body[:first], body[first:second], body[second:]]
            assert run(chunks) == whole, (first, second)
