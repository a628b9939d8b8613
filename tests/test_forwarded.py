"""The proxy-header parsers (starling._forwarded): RFC 7239 Forwarded, X-Forwarded-* lists and
nodes, whole, byte by byte, with Hypothesis, with hostile input, and for cost."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from starling._forwarded import (
    MAX_HOPS,
    parse_forwarded,
    parse_node,
    parse_x_forwarded_for_entry,
    split_list,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", []),
        ("for=192.0.2.43", [{"for": "192.0.2.43"}]),
        # RFC 7239 §4 and §7.1 examples
        ('for="_gazonk"', [{"for": "_gazonk"}]),
        ('For="[2001:db8:cafe::17]:4711"', [{"for": "[2001:db8:cafe::17]:4711"}]),
        (
            "for=192.0.2.60;proto=http;by=203.0.113.43",
            [{"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"}],
        ),
        ("for=192.0.2.43, for=198.51.100.17", [{"for": "192.0.2.43"}, {"for": "198.51.100.17"}]),
        # lenient: OWS around ";" and ",", empty elements and empty pairs
        (
            " for=a ; proto=https ,, ;host=h; ",
            [{"for": "a", "proto": "https"}, {"host": "h"}],
        ),
        ("for=a;;proto=b", [{"for": "a", "proto": "b"}]),
        (",,,", []),
        # quoted-pairs are unescaped; commas and semicolons inside quotes are data
        (r'host="a\"b\\c", for="x,y;z"', [{"host": 'a"b\\c'}, {"for": "x,y;z"}]),
        # extension parameters: checked, then dropped; an element of only those has no hop
        ("ext=1;for=a, other=2", [{"for": "a"}, {}]),
        ("FOR=a;PROTO=https;Host=h;BY=b", [{"for": "a", "proto": "https", "host": "h", "by": "b"}]),
        ('for=""', [{"for": ""}]),
        ("ext=1;ext=2;for=a", [{"for": "a"}]),
    ],
)
def test_forwarded_values(value: str, expected: list[dict[str, str]]) -> None:
    assert parse_forwarded(value) == (expected, True)


@pytest.mark.parametrize(
    "value",
    [
        "for",
        "for=",
        "=a",
        "for=a b=c",
        "for=a for=b",
        "for=a;for=b",  # a parameter twice in one element
        "for=a;FOR=b",
        'for="unterminated',
        'for="a", for="b',
        'for="a"b',
        "for=a=b",
        "for=[::1]",  # "[" is not a token character: IPv6 nodes must be quoted
        'for="\x00"',
        'for="a\\\x01"',
        "for=a\r\nb=c",
        "for=\x80",
        "for =a",
        "for= a",
        "for=a;@",
        '"for"=a',
    ],
)
def test_malformed_forwarded_values(value: str) -> None:
    assert parse_forwarded(value) is None


def test_only_the_right_most_hops_are_kept() -> None:
    value = ", ".join(f"for=10.0.0.{i % 250}" for i in range(MAX_HOPS + 10))
    parsed = parse_forwarded(value)
    assert parsed is not None
    elements, complete = parsed
    assert not complete
    assert len(elements) == MAX_HOPS
    assert elements[-1] == {"for": f"10.0.0.{(MAX_HOPS + 9) % 250}"}
    exact = ", ".join(["for=a"] * MAX_HOPS)
    assert parse_forwarded(exact) == ([{"for": "a"}] * MAX_HOPS, True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("192.0.2.43", ("192.0.2.43", None)),
        ("192.0.2.43:4711", ("192.0.2.43", 4711)),
        ("192.0.2.43:_port-1", ("192.0.2.43", None)),
        ("[2001:DB8:cafe::17]:4711", ("2001:db8:cafe::17", 4711)),
        ("[::1]", ("::1", None)),
        ("unknown", ("unknown", None)),
        ("UNKNOWN:80", ("unknown", 80)),
        ("_hidden", ("_hidden", None)),
        ("_a.b-c_d:_x", ("_a.b-c_d", None)),
        ("1.2.3.4:65535", ("1.2.3.4", 65535)),
        ("1.2.3.4:0", ("1.2.3.4", 0)),
    ],
)
def test_nodes(value: str, expected: tuple[str, int | None]) -> None:
    assert parse_node(value) == expected
    assert parse_x_forwarded_for_entry(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        "01.2.3.4",  # leading zeros: octal to some parsers
        "1.2.3.4:65536",
        "1.2.3.4:123456",
        "1.2.3.4:",
        "1.2.3.4:-1",
        "[::1",
        "[::g]",
        "[1.2.3.4]",
        "[fe80::1%eth0]",
        "_",
        "_a b",
        "host.example",
        "unknownx",
        "1.2.3.4 ",
        "user@1.2.3.4",
        "١.٢.٣.٤",  # Arabic-Indic digits
        ":::",
        "::1:80:x",
        "_" + "a" * 200,  # longer than MAX_NODE_LENGTH
        ":" * 200,
    ],
)
def test_malformed_nodes(value: str) -> None:
    assert parse_node(value) is None
    assert parse_x_forwarded_for_entry(value) is None


def test_bare_ipv6_only_in_x_forwarded_for() -> None:
    assert parse_node("2001:db8::1") is None
    assert parse_x_forwarded_for_entry("2001:DB8::1") == ("2001:db8::1", None)
    assert parse_x_forwarded_for_entry("::1") == ("::1", None)
    assert parse_x_forwarded_for_entry("1::2::3") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ([], True)),
        ("a", (["a"], True)),
        (" a ,\tb,, c ,", (["a", "b", "c"], True)),
        (",".join(str(i) for i in range(MAX_HOPS)), ([str(i) for i in range(MAX_HOPS)], True)),
        (
            ",".join(str(i) for i in range(MAX_HOPS + 1)),
            ([str(i) for i in range(1, MAX_HOPS + 1)], False),
        ),
        ("x," * 10_000 + "last", (["x"] * (MAX_HOPS - 1) + ["last"], False)),
    ],
)
def test_split_list(value: str, expected: tuple[list[str], bool]) -> None:
    assert split_list(value) == expected


# -- byte by byte --------------------------------------------------------------------------

SAMPLE = ' for=192.0.2.60;proto=https;by="[2001:db8::1]:80", For="_x\\"y";host=a.example ,'


def test_every_prefix_is_a_result_or_malformed() -> None:
    """Cut anywhere: never an exception, and a cut at an element boundary reads that prefix."""
    whole = parse_forwarded(SAMPLE)
    assert whole is not None
    for end in range(len(SAMPLE) + 1):
        parsed = parse_forwarded(SAMPLE[:end])
        if parsed is not None:
            elements, complete = parsed
            assert complete
            assert len(elements) <= len(whole[0])
    boundary = SAMPLE.index(",", SAMPLE.index("80"))
    assert parse_forwarded(SAMPLE[:boundary]) == (whole[0][:1], True)


@pytest.mark.parametrize("position", range(len(SAMPLE)))
def test_every_byte_at_every_position(position: int) -> None:
    """Each of the 256 latin-1 characters in each position: a result or None, never an error;
    a result keeps the known parameters only, and never more elements than commas allow."""
    for code in range(256):
        value = SAMPLE[:position] + chr(code) + SAMPLE[position + 1 :]
        parsed = parse_forwarded(value)
        if parsed is not None:
            assert len(parsed[0]) <= value.count(",") + 1
            for element in parsed[0]:
                assert set(element) <= {"for", "by", "proto", "host"}
        for entry in split_list(value)[0]:
            parse_x_forwarded_for_entry(entry)
            parse_node(entry)


def test_trailing_data_after_a_valid_header() -> None:
    base = "for=1.2.3.4;proto=https"
    assert parse_forwarded(base + ",") == ([{"for": "1.2.3.4", "proto": "https"}], True)
    assert parse_forwarded(base + ";") == ([{"for": "1.2.3.4", "proto": "https"}], True)
    for trailer in [" x", '"', "=", ";=", ",=", ";for=5", "\x00", "\r\n"]:
        assert parse_forwarded(base + trailer) is None, trailer


# -- Hypothesis ----------------------------------------------------------------------------

TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
QUOTABLE = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
PARAMETER = st.sampled_from(["for", "by", "proto", "host", "ext", "secret-x"])
VALUE = st.text(TCHARS, min_size=1, max_size=8) | st.text(QUOTABLE, max_size=8)
ELEMENT = st.dictionaries(PARAMETER, VALUE, min_size=1, max_size=5)


def _serialise(value: str) -> str:
    if value and all(character in TCHARS for character in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _header(elements: list[dict[str, str]], pair_sep: str, list_sep: str) -> str:
    return list_sep.join(
        pair_sep.join(f"{name}={_serialise(text)}" for name, text in element.items())
        for element in elements
    )


@settings(max_examples=200)
@given(
    st.lists(ELEMENT, max_size=6),
    st.sampled_from([";", " ; ", ";\t"]),
    st.sampled_from([",", ", ", " ,\t", ",,"]),
)
def test_serialised_elements_read_back(
    elements: list[dict[str, str]], pair_sep: str, list_sep: str
) -> None:
    known = [
        {name: text for name, text in element.items() if name in ("for", "by", "proto", "host")}
        for element in elements
    ]
    assert parse_forwarded(_header(elements, pair_sep, list_sep)) == (known, True)


@settings(max_examples=1000)
@given(st.text(st.characters(codec="latin-1"), max_size=60))
def test_arbitrary_text_never_raises(value: str) -> None:
    parsed = parse_forwarded(value)
    assert parsed is None or len(parsed[0]) <= MAX_HOPS
    entries, _ = split_list(value)
    assert len(entries) <= MAX_HOPS + 1
    for entry in entries:
        node = parse_x_forwarded_for_entry(entry)
        assert node is None or node[1] is None or 0 <= node[1] <= 65535


@settings(max_examples=200)
@given(st.ip_addresses(), st.none() | st.integers(0, 65535))
def test_every_ip_address_reads_as_itself(address: object, port: int | None) -> None:
    text = str(address)
    node = f"[{text}]" if ":" in text else text
    if port is not None:
        node = f"{node}:{port}"
    assert parse_node(node) == (text, port)
    assert parse_x_forwarded_for_entry(node) == (text, port)


# -- cost ----------------------------------------------------------------------------------


def _cost(parse: Callable[[str], object], value: str) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        parse(value)
        best = min(best, time.perf_counter() - started)
    return max(best, 1e-6)


SIZE = 200_000
BENIGN = ("for=192.0.2.43;proto=https, " * SIZE)[:SIZE]


@pytest.mark.parametrize(
    "hostile",
    [
        'for="' + "a\\" * (SIZE // 2),  # unterminated quoted-string of escapes
        'for="' + "\\a" * (SIZE // 2) + '"',
        ";" * SIZE,
        "," * SIZE,
        " " * SIZE,
        ("x=y;" * SIZE)[:SIZE],
        ("ext=" + '"",' * SIZE)[:SIZE],
        "for=" + "a" * SIZE,
        ("for=a;" * SIZE)[:SIZE],
    ],
    ids=[
        "unterminated",
        "escapes",
        "semicolons",
        "commas",
        "spaces",
        "pairs",
        "quotes",
        "long",
        "dup",
    ],
)
def test_forwarded_cost_is_linear(hostile: str) -> None:
    """A degenerate header costs about what a benign one of the same size costs."""
    assert _cost(parse_forwarded, hostile) < 10 * _cost(parse_forwarded, BENIGN)


@pytest.mark.parametrize(
    "hostile", ["," * SIZE, " " * SIZE, ("1," * SIZE)[:SIZE], "1" * SIZE, (":" * SIZE)]
)
def test_x_forwarded_for_cost_is_bounded(hostile: str) -> None:
    def parse(value: str) -> None:
        for entry in split_list(value)[0]:
            parse_x_forwarded_for_entry(entry)

    benign = ("192.0.2.43, " * SIZE)[:SIZE]
    assert _cost(parse, hostile) < 10 * _cost(parse, benign)
