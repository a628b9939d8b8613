"""The Accept-Encoding parser and the choice of coding: RFC 9110 §12.5.3, byte by byte, with
Hypothesis, hostile headers (thousands of members, absurd q-values) and cost checks."""

from __future__ import annotations

import string
import time
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from starling._accept_encoding import (
    MAX_ACCEPT_ENCODING_ITEMS,
    MAX_MEMBER_LENGTH,
    choose_coding,
    parse_accept_encoding,
)

PREFERENCE = ("zstd", "br", "gzip")
TOKEN_CHARS = set(b"!#$%&'*+-.^_`|~" + (string.ascii_letters + string.digits).encode())


def parse(value: bytes) -> dict[str, int]:
    return parse_accept_encoding([value])


@pytest.mark.parametrize(
    ("header", "weights"),
    [
        (b"gzip", {"gzip": 1000}),
        (b"gzip, deflate, br, zstd", {"gzip": 1000, "deflate": 1000, "br": 1000, "zstd": 1000}),
        (b"GZip;Q=0.5", {"gzip": 500}),
        (b"br;q=1.000, gzip;q=0.001", {"br": 1000, "gzip": 1}),
        (b"gzip;q=0", {"gzip": 0}),
        (b"gzip;q=0.", {"gzip": 0}),
        (b"gzip;q=1.", {"gzip": 1000}),
        (b"gzip ; q=0.25", {"gzip": 250}),
        (b"gzip\t;\tq=0.7\t", {"gzip": 700}),
        (b"*;q=0.1, identity;q=0", {"*": 100, "identity": 0}),
        (b"x-gzip", {"gzip": 1000}),
        (b"gzip;q=0.2, x-gzip", {"gzip": 200}),
        (b"gzip;q=0.2, gzip;q=0.9", {"gzip": 200}),  # the first mention wins
        (b"", {}),
        (b" , ,, gzip ,", {"gzip": 1000}),
    ],
)
def test_parse(header: bytes, weights: dict[str, int]) -> None:
    assert parse(header) == weights


@pytest.mark.parametrize(
    "member",
    [
        b"gzip;q=2",
        b"gzip;q=1.1",
        b"gzip;q=1.0001",
        b"gzip;q=0.0001",
        b"gzip;q=-1",
        b"gzip;q=1e308",
        b"gzip;q=nan",
        b"gzip;q=inf",
        b"gzip;q=.5",
        b"gzip;q=00.5",
        b"gzip;q= 0.5",
        b"gzip;q =0.5",
        b"gzip;q=",
        b"gzip;",
        b"gzip;level=1",
        b"gzip;q=0.5;q=0.5",
        b"gzip;q=0.5;x=y",
        b"gz ip",
        b"gzip\r",
        b"gzip\x0b",
        b"gzip\x00",
        b'"gzip"',
        b"g\xe9zip",
        b"gzip;q=0.\xb5",
        b"gzip;q=\xbd",
        b"gzip;q=\xd9\xa1",  # a non-ASCII digit
    ],
)
def test_a_member_off_the_grammar_is_ignored_alone(member: bytes) -> None:
    assert parse(member + b", br") == {"br": 1000}


def test_several_headers_are_one_list() -> None:
    assert parse_accept_encoding([b"gzip", b"br;q=0.5"]) == {"gzip": 1000, "br": 500}
    assert parse_accept_encoding([]) == {}


@pytest.mark.parametrize("byte", range(256))
def test_every_byte_in_a_coding(byte: int) -> None:
    value = bytes([byte])
    weights = parse(b"g" + value + b"zip")
    if byte in TOKEN_CHARS:
        assert weights == {("g" + value.decode() + "zip").lower(): 1000}
    elif byte == ord(","):
        assert weights == {"g": 1000, "zip": 1000}
    else:
        assert weights == {}  # not a token (";" starts a parameter that is no weight)


@pytest.mark.parametrize("byte", range(256))
def test_every_byte_around_the_semicolon(byte: int) -> None:
    value = bytes([byte])
    weights = parse(b"gzip" + value + b";" + value + b"q=0.5")
    if value in (b" ", b"\t"):
        assert weights == {"gzip": 500}
    elif byte in TOKEN_CHARS:
        assert weights == {}  # "gzipX;Xq=0.5": the parameter is not q
    elif value == b",":
        assert weights == {"gzip": 1000}
    else:
        assert weights == {}


@pytest.mark.parametrize("byte", range(256))
def test_every_byte_in_a_qvalue(byte: int) -> None:
    weights = parse(b"gzip;q=0." + bytes([byte]))
    if chr(byte).isdigit() and byte < 128:
        assert weights == {"gzip": (byte - ord("0")) * 100}
    elif byte in (ord(" "), ord("\t")):
        assert weights == {"gzip": 0}  # trailing whitespace
    elif byte == ord(","):
        assert weights == {"gzip": 0}
    else:
        assert weights == {}


def test_only_the_first_members_are_read() -> None:
    members = [b"unknown%d" % n for n in range(MAX_ACCEPT_ENCODING_ITEMS - 1)]
    assert "gzip" in parse(b", ".join([*members, b"gzip"]))
    assert "gzip" not in parse(b", ".join([*members, b"x", b"gzip"]))
    assert len(parse(b", ".join(b"c%d" % n for n in range(10_000)))) == MAX_ACCEPT_ENCODING_ITEMS


def test_an_overlong_member_is_skipped() -> None:
    padded = b"gzip;" + b" " * (MAX_MEMBER_LENGTH - 8) + b"q=1"
    assert len(padded) == MAX_MEMBER_LENGTH
    assert parse(padded + b", br") == {"gzip": 1000, "br": 1000}
    assert parse(b" " + padded + b", br") == {"br": 1000}


codings = st.sampled_from(["gzip", "br", "zstd", "deflate", "identity", "*", "compress", "x-y"])
qvalues = st.sampled_from([0, 1, 500, 1000]) | st.integers(0, 1000)


def _qvalue(thousandths: int) -> str:
    if thousandths == 1000:
        return "1"
    return "0." + f"{thousandths:03d}".rstrip("0") if thousandths else "0"


@given(
    st.lists(st.tuples(codings, qvalues | st.none()), max_size=8),
    st.sampled_from([",", ", ", " ,\t", ",,"]),
    st.booleans(),
)
def test_a_written_header_reads_back(
    members: list[tuple[str, int | None]], separator: str, upper: bool
) -> None:
    written = separator.join(
        (coding.upper() if upper else coding) + ("" if q is None else f";q={_qvalue(q)}")
        for coding, q in members
    )
    expected: dict[str, int] = {}
    for coding, q in members:
        expected.setdefault(coding, 1000 if q is None else q)
    assert parse(written.encode()) == expected


@given(st.lists(st.binary(max_size=30), max_size=5))
def test_any_bytes_parse_to_bounded_weights(values: list[bytes]) -> None:
    weights = parse_accept_encoding(values)
    assert len(weights) <= MAX_ACCEPT_ENCODING_ITEMS
    for coding, quality in weights.items():
        assert 0 <= quality <= 1000
        assert coding == coding.lower() and set(coding.encode()) <= TOKEN_CHARS


@given(st.binary(max_size=40), st.binary(max_size=40))
def test_two_headers_equal_their_join(first: bytes, second: bytes) -> None:
    assert parse_accept_encoding([first, second]) == parse(first + b"," + second)


@pytest.mark.parametrize(
    ("header", "chosen"),
    [
        (b"gzip, br, zstd", "zstd"),
        (b"gzip, br", "br"),
        (b"gzip", "gzip"),
        (b"deflate", None),
        (b"br;q=0.5, gzip", "gzip"),
        (b"zstd;q=0.9, br;q=0.9, gzip;q=0.95", "gzip"),
        (b"zstd;q=0.9, br;q=0.9", "zstd"),
        (b"*", "zstd"),
        (b"*;q=0.5, br", "br"),
        (b"*, zstd;q=0, br;q=0", "gzip"),
        (b"*;q=0", None),
        (b"gzip;q=0", None),
        (b"identity", None),
        (b"identity;q=0.5, gzip", "gzip"),
        (b"identity, gzip;q=0.5", None),  # the client would rather have the body as it is
        (b"identity, gzip", "gzip"),  # a tie: compressing wins
        (b"", None),
    ],
)
def test_choose_coding(header: bytes, chosen: str | None) -> None:
    assert choose_coding(parse(header), PREFERENCE) == chosen


def test_the_preference_order_is_the_callers() -> None:
    assert choose_coding(parse(b"gzip, br, zstd"), ("gzip", "br")) == "gzip"
    assert choose_coding(parse(b"zstd"), ("gzip", "br")) is None


def _cost(function: Callable[[], object], repeat: int = 20) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize(
    "degenerate",
    [
        b"," * 100_000,
        b" " * 100_000,
        b";" * 100_000,
        b"a" * 100_000,
        b"gzip;q=" + b"0" * 100_000,
        b"gzip;q=0." + b"9" * 100_000,
        b"gzip;" + b" " * 100_000 + b"q=1",
        b"gzip;q=0.5," * 9_000,
        b"\xff" * 100_000,
    ],
    ids=["commas", "spaces", "semicolons", "one-token", "q-zeros", "q-digits", "ows", "many", "hi"],
)
def test_a_hostile_header_costs_what_a_benign_one_of_its_size_costs(degenerate: bytes) -> None:
    benign = (b"gzip, deflate, br, zstd, " * 5_000)[: len(degenerate)]
    assert _cost(lambda: parse(degenerate)) < 10 * _cost(lambda: parse(benign))
