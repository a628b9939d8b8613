"""The sans-IO Range header parser and the multipart/byteranges framing."""

from __future__ import annotations

import contextlib
import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from starling._ranges import (
    MAX_RANGES,
    MalformedRangeHeader,
    RangeNotSatisfiable,
    generate_multipart,
    multipart_closing,
    multipart_part_header,
    parse_range_header,
)

MALFORMED = "Malformed range header."
NOT_BYTES = "Only support bytes range"
NO_RANGE = "Range header: range must be requested"
BACKWARDS = "Range header: start must be less than end"


# Outcomes observed on Starlette 1.10 for a 100-byte file.
@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-1", [(0, 2)]),
        ("bytes=0-", [(0, 100)]),
        ("bytes=99-", [(99, 100)]),
        ("bytes=-5", [(95, 100)]),
        ("bytes=-100", [(0, 100)]),
        ("bytes=-1000", [(0, 100)]),
        ("bytes=0-100", [(0, 100)]),
        ("bytes=0-1000", [(0, 100)]),
        ("bytes=5-5", [(5, 6)]),
        ("bytes=99-99", [(99, 100)]),
        ("Bytes=0-1", [(0, 2)]),
        ("BYTES=0-1", [(0, 2)]),
        (" bytes =0-1", [(0, 2)]),
        ("bytes= 0-1", [(0, 2)]),
        ("bytes=0-1 ", [(0, 2)]),
        ("bytes=0 - 1", [(0, 2)]),
        ("bytes=\t0-1", [(0, 2)]),
        ("bytes= -5", [(95, 100)]),
        ("bytes=5 -", [(5, 100)]),
        # several ranges: sorted, overlapping and adjacent ones merged
        ("bytes=0-1,3-4", [(0, 2), (3, 5)]),
        ("bytes=3-4,0-1", [(0, 2), (3, 5)]),
        ("bytes=0-1, 3-4", [(0, 2), (3, 5)]),
        ("bytes=0-1 ,\t3-4", [(0, 2), (3, 5)]),
        ("bytes=0-5,3-8", [(0, 9)]),
        ("bytes=0-5,6-8", [(0, 9)]),
        ("bytes=0-5,7-8", [(0, 6), (7, 9)]),
        ("bytes=0-4,1-2", [(0, 5)]),
        ("bytes=1-2,0-4", [(0, 5)]),
        ("bytes=0-1,0-1", [(0, 2)]),
        ("bytes=10-20,5-15,0-3", [(0, 4), (5, 21)]),
        ("bytes=-1,-2", [(98, 100)]),
        ("bytes=0-0,-1", [(0, 1), (99, 100)]),
        ("bytes=0-9,-5", [(0, 10), (95, 100)]),
        ("bytes=0-0,-100", [(0, 100)]),
        # unusable elements are skipped
        ("bytes=0-1,", [(0, 2)]),
        ("bytes=,0-1", [(0, 2)]),
        ("bytes=0-1,,3-4", [(0, 2), (3, 5)]),
        ("bytes=0-1,x", [(0, 2)]),
        ("bytes=0-1,-", [(0, 2)]),
        ("bytes=0-1,5", [(0, 2)]),
    ],
)
def test_parse(header: str, expected: list[tuple[int, int]]) -> None:
    assert parse_range_header(header, 100) == expected


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", MALFORMED),
        ("bytes", MALFORMED),
        ("items=0-1", NOT_BYTES),
        ("=0-1", NOT_BYTES),
        ("x,bytes=0-1", NOT_BYTES),
        ("bytes=", NO_RANGE),
        ("bytes=-", NO_RANGE),
        ("bytes=a-b", NO_RANGE),
        ("bytes=1-a", NO_RANGE),
        ("bytes=0x1-2", NO_RANGE),
        ("bytes==0-1", NO_RANGE),
        ("bytes=0-1=2", NO_RANGE),
        ("bytes=0-1;x", NO_RANGE),
        ("bytes=1", NO_RANGE),
        ("bytes=1-2-3", NO_RANGE),
        ("bytes=-5-", NO_RANGE),
        ("bytes=-1-2", NO_RANGE),
        ("bytes=5-2", BACKWARDS),
        ("bytes=5-4", BACKWARDS),
        ("bytes=0-1,5-2", BACKWARDS),
        ("bytes=5-2,0-1", BACKWARDS),
    ],
)
def test_malformed(header: str, message: str) -> None:
    with pytest.raises(MalformedRangeHeader) as info:
        parse_range_header(header, 100)
    assert info.value.content == message


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=100-", 100),
        ("bytes=100-200", 100),
        ("bytes=-0", 100),  # a zero-length suffix asks for nothing
        ("bytes=50-200,150-160", 100),  # one unsatisfiable range fails them all
        ("bytes=150-160,50-60", 100),
        ("bytes=150-160,5-2", 100),  # checked before the backwards range
        ("bytes=5-2,150-160", 100),
        ("bytes=0-0", 0),
        ("bytes=-1", 0),
        ("bytes=0-", 0),
    ],
)
def test_not_satisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as info:
        parse_range_header(header, size)
    assert info.value.max_size == size


def test_exception_attributes_match_starlette() -> None:
    malformed = MalformedRangeHeader()
    assert malformed.content == MALFORMED
    assert malformed.args == ()
    unsatisfiable = RangeNotSatisfiable(5)
    assert unsatisfiable.max_size == 5
    assert unsatisfiable.args == (5,)
    assert MalformedRangeHeader.__module__ == RangeNotSatisfiable.__module__ == "starling.responses"


@pytest.mark.parametrize(
    "header",
    [
        "bytes=+1-2",  # Starlette's int() reads these; only ASCII digits are digits here
        "bytes=1-+2",
        "bytes=1_0-20",
        "bytes=\u0663-5",
        "bytes=0--1",  # a negative last-pos
        "bytes=1-\n2",  # CR and LF are not OWS
        "bytes=0-\u00a05",
    ],
)
def test_stricter_than_starlette(header: str) -> None:
    with pytest.raises(MalformedRangeHeader) as info:
        parse_range_header(header, 100)
    assert info.value.content == NO_RANGE


def test_ranges_limit_counts_list_elements() -> None:
    at_limit = "bytes=" + ",".join(f"{i}-{i}" for i in range(MAX_RANGES))
    assert parse_range_header(at_limit, 1000) == [(0, MAX_RANGES)]
    over = "bytes=" + ",".join(f"{i}-{i}" for i in range(MAX_RANGES + 1))
    assert parse_range_header(over, 1000) == []
    # empty or unusable elements count too, and nothing past the count is parsed
    assert parse_range_header("bytes=" + "," * MAX_RANGES, 1000) == []
    assert parse_range_header("bytes=5-2" + "," * MAX_RANGES, 1000) == []
    with pytest.raises(MalformedRangeHeader):
        parse_range_header("bytes=" + "," * (MAX_RANGES - 1), 1000)


def test_custom_limit() -> None:
    assert parse_range_header("bytes=0-1,3-4", 100, max_ranges=2) == [(0, 2), (3, 5)]
    assert parse_range_header("bytes=0-1,3-4,6-7", 100, max_ranges=2) == []


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=" + "9" * 5000 + "-", None),
        ("bytes=0-" + "9" * 5000, [(0, 100)]),
        ("bytes=-" + "9" * 5000, [(0, 100)]),
        ("bytes=" + "0" * 5000 + "5-6", [(5, 7)]),  # leading zeros do not make it huge
        ("bytes=" + "0" * 5000 + "-" + "0" * 5000, [(0, 1)]),
        ("bytes=0-1," + "9" * 5000 + "-", None),
        ("bytes=999999999999999999-", None),  # exactly the digit limit
        ("bytes=0-999999999999999999", [(0, 100)]),
    ],
)
def test_huge_numbers_are_read_by_value(
    header: str, expected: list[tuple[int, int]] | None
) -> None:
    if expected is None:
        with pytest.raises(RangeNotSatisfiable):
            parse_range_header(header, 100)
    else:
        assert parse_range_header(header, 100) == expected


def test_huge_file_sizes() -> None:
    size = 10**20
    assert parse_range_header("bytes=-5", size) == [(size - 5, size)]
    assert parse_range_header("bytes=0-", size) == [(0, size)]
    # a position with more digits than any real file is "beyond the end"
    assert parse_range_header("bytes=5-" + "9" * 30, size) == [(5, size)]


def test_thousands_of_ranges_are_cheap() -> None:
    header = "bytes=" + ",".join(f"{i}-{i}" for i in range(20_000))
    started = time.perf_counter()
    assert parse_range_header(header, 10**9) == []
    assert time.perf_counter() - started < 0.5


def test_every_prefix_gives_a_result_or_a_documented_error() -> None:
    header = "bytes=0-1, 5-9,-3 ,20-"
    for end in range(len(header) + 1):
        with contextlib.suppress(MalformedRangeHeader, RangeNotSatisfiable):
            parse_range_header(header[:end], 100)


def test_trailing_unusable_elements_change_nothing() -> None:
    expected = parse_range_header("bytes=0-1,5-9", 100)
    for trailer in [",", ", ", ",x", ",-", ",,,", ", 1-a", ",1-2-3"]:
        assert parse_range_header("bytes=0-1,5-9" + trailer, 100) == expected


_header_text = st.text(alphabet=st.sampled_from("bytes=Bytes0123456789-, \t+_x;\u0663\n"))
_range_set_text = st.text(alphabet=st.sampled_from("0123456789--,, \t+x"))
_header_text = _header_text | st.builds(lambda range_set: "bytes=" + range_set, _range_set_text)


@given(header=_header_text, size=st.integers(min_value=0, max_value=10**6))
@example(header="bytes=0-1,5-6", size=100)
@example(header="x", size=1)
def test_only_documented_errors(header: str, size: int) -> None:
    try:
        ranges = parse_range_header(header, size)
    except (MalformedRangeHeader, RangeNotSatisfiable):
        return
    # sorted, disjoint, not touching, inside the file
    previous_end = -1
    for start, end in ranges:
        assert 0 <= start < end <= size
        assert start > previous_end
        previous_end = end


@given(header=st.text(), size=st.integers(min_value=0, max_value=2**70))
def test_only_documented_errors_on_any_text(header: str, size: int) -> None:
    with contextlib.suppress(MalformedRangeHeader, RangeNotSatisfiable):
        parse_range_header(header, size)


_spec = st.one_of(
    st.tuples(st.integers(0, 120), st.none() | st.integers(0, 120)),
    st.tuples(st.none(), st.integers(1, 120)),
)


@given(specs=st.lists(_spec, min_size=1, max_size=8), size=st.integers(1, 100))
@example(specs=[(5, 2)], size=10)  # backwards
@example(specs=[(50, None)], size=10)  # unsatisfiable
@example(specs=[(0, 1), (None, 3)], size=10)
def test_covers_exactly_the_requested_bytes(
    specs: list[tuple[int | None, int | None]], size: int
) -> None:
    """Against a model: the set of byte offsets each element asks for."""
    text = ",".join(f"{'' if a is None else a}-{'' if b is None else b}" for a, b in specs)
    wanted: set[int] = set()
    unsatisfiable = backwards = False
    for first, last in specs:
        if first is None:
            assert last is not None
            start, end = max(0, size - last), size
        else:
            start, end = first, size if last is None else min(last + 1, size)
        unsatisfiable |= start >= size
        backwards |= start >= end
        wanted.update(range(start, end))
    if unsatisfiable:
        with pytest.raises(RangeNotSatisfiable):
            parse_range_header("bytes=" + text, size)
    elif backwards:
        with pytest.raises(MalformedRangeHeader):
            parse_range_header("bytes=" + text, size)
    else:
        ranges = parse_range_header("bytes=" + text, size)
        covered = [offset for start, end in ranges for offset in range(start, end)]
        assert covered == sorted(wanted)


def test_multipart_framing() -> None:
    header = multipart_part_header("B", "text/plain", 0, 2, 22)
    assert header == b"--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/22\r\n\r\n"
    assert multipart_closing("B") == b"--B--"


@given(
    ranges=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 10**4)), max_size=5),
    content_type=st.sampled_from(["text/plain; charset=utf-8", "application/octet-stream", ""]),
)
def test_multipart_length_matches_the_body(
    ranges: list[tuple[int, int]], content_type: str
) -> None:
    ranges = [(start, start + length) for start, length in ranges]
    length, part_header = generate_multipart(
        ranges, "0123456789abcdef0123456789", 10**7, content_type
    )
    body = b"".join(part_header(s, e) + b"x" * (e - s) + b"\r\n" for s, e in ranges)
    body += multipart_closing("0123456789abcdef0123456789")
    assert length == len(body)


def test_multipart_length_matches_starlette() -> None:
    # 2 ranges of 2 bytes of a 22-byte text file: Starlette sends content-length 242
    length, _ = generate_multipart(
        [(0, 2), (5, 7)], "95299d4b27d6e39bdb68362fc7", 22, "text/plain; charset=utf-8"
    )
    assert length == 242
    length, part_header = generate_multipart([(0, 2), (5, 7)], "BOUND", 22, "text/plain")
    assert length == 149
    assert part_header(5, 7) == (
        b"--BOUND\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-6/22\r\n\r\n"
    )
