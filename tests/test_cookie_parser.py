"""starling._cookies: the Cookie header reading behind request.cookies and cookie_parser."""

from __future__ import annotations

import http.cookies

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from starling._cookies import MAX_COOKIES, parse_cookie_header, unquote_cookie_value
from starling.requests import cookie_parser

# (header, what Starlette 1.10's cookie_parser returns), recorded by running the reference.
STARLETTE_CASES = [
    ("", {}),
    ("a=b", {"a": "b"}),
    ("a=b; c=d", {"a": "b", "c": "d"}),
    ("a", {"": "a"}),
    ("a=", {"a": ""}),
    ("=b", {"": "b"}),
    ("a=b=c", {"a": "b=c"}),
    (" a = b ", {"a": "b"}),
    ("a=b;;c=d", {"a": "b", "c": "d"}),
    ("a=b; a=c", {"a": "c"}),
    ('"a"="b"', {'"a"': "b"}),
    ('a="b"', {"a": "b"}),
    ('a="b', {"a": '"b'}),
    ('a=b"', {"a": 'b"'}),
    ('a="b\\"c"', {"a": 'b"c'}),
    ('a="\\101"', {"a": "A"}),
    ('a="\\012"', {"a": "\n"}),
    ('a="\\400"', {"a": "400"}),
    ('a="\\8"', {"a": "8"}),
    ('a="\\\\"', {"a": "\\"}),
    ('a="\\', {"a": '"\\'}),
    ('a="x\\"', {"a": "x\\"}),
    ('a=""', {"a": ""}),
    ('a="', {"a": '"'}),
    ("a='b'", {"a": "'b'"}),
    ("a=b; ;", {"a": "b"}),
    (";", {}),
    ("a;b", {"": "b"}),
    ("a;b;c=d", {"": "b", "c": "d"}),
    ("a=b; b", {"a": "b", "": "b"}),
    ("\ta=b\t", {"a": "b"}),
    ("a=\t b", {"a": "b"}),
    ("a=b\n", {"a": "b"}),
    ("a b=c", {"a b": "c"}),
    ("a=b c", {"a": "b c"}),
    ("a=%20", {"a": "%20"}),
    ("a=\\101", {"a": "\\101"}),
    ('a="\\101\\"', {"a": "A\\"}),
    ('a=" "', {"a": " "}),
    ('a="\\1"', {"a": "1"}),
    ('a="\\12"', {"a": "12"}),
    ('a="\\1234"', {"a": "S4"}),
    ('a="\\777"', {"a": "777"}),
    ('a="\\377"', {"a": "ÿ"}),
    ('a="\\0"', {"a": "0"}),
    ('a="\\000"', {"a": "\x00"}),
    ('a="\\x41"', {"a": "x41"}),
    ('a="a\\b"', {"a": "ab"}),
    ("\x00=\x00", {"\x00": "\x00"}),
    ("a=b\r\nc=d", {"a": "b\r\nc=d"}),
    ("a=é", {"a": "é"}),
    (" = ", {}),
    ("a=b; =c", {"a": "b", "": "c"}),
    (" ;a", {"": "a"}),
    ("  ", {}),
    ("a\x0b=b\x0c", {"a": "b"}),
    ("a\x1f=b", {"a": "b"}),
    ("a=\xa0b\xa0", {"a": "b"}),
    ('a="b"c"', {"a": 'b"c'}),
    ('a=""""', {"a": '""'}),
    ('a="\\"', {"a": "\\"}),
    ('"=x', {'"': "x"}),
    ('a= "b" ', {"a": "b"}),
    ('a="\\"b\\""', {"a": '"b"'}),
    ('a="\\\n"', {"a": "\\\n"}),
]


@pytest.mark.parametrize(("header", "expected"), STARLETTE_CASES)
def test_matches_starlette(header: str, expected: dict[str, str]) -> None:
    assert parse_cookie_header(header) == expected
    assert cookie_parser(header) == expected


# The stdlib's reader (private, which is why starling has its own) is the reference here.
stdlib_unquote = http.cookies._unquote

quoted_text = st.text(alphabet=st.sampled_from('\\"01234789ab\n\x00é€')).map(lambda s: f'"{s}"')


@given(st.one_of(quoted_text, st.text()))
@example('"\\')  # too short to be quoted once the quote is the backslash's
@example('"\\"')
@example('"\\0377"')
def test_unquote_matches_stdlib(value: str) -> None:
    assert unquote_cookie_value(value) == stdlib_unquote(value)


@given(st.text())
def test_never_raises_and_keys_values_are_stripped(header: str) -> None:
    cookies = parse_cookie_header(header)
    for key, value in cookies.items():
        assert key == key.strip()
        assert ";" not in key
        assert ";" not in value
    assert len(cookies) <= MAX_COOKIES


simple_names = st.text(alphabet="abcxyz_-", min_size=1, max_size=5)
simple_values = st.text(alphabet="abc123%/", max_size=5)


@given(st.lists(st.tuples(simple_names, simple_values), max_size=10))
def test_well_formed_header_round_trips(pairs: list[tuple[str, str]]) -> None:
    header = "; ".join(f"{name}={value}" for name, value in pairs)
    assert parse_cookie_header(header) == dict(pairs)


def test_pieces_beyond_the_limit_are_ignored() -> None:
    pieces = [f"c{index}=v" for index in range(MAX_COOKIES + 5)]
    cookies = parse_cookie_header("; ".join(pieces))
    assert len(cookies) == MAX_COOKIES
    assert cookies[f"c{MAX_COOKIES - 1}"] == "v"
    assert f"c{MAX_COOKIES}" not in cookies


def test_exactly_the_limit_is_read_whole() -> None:
    cookies = parse_cookie_header(";".join(f"c{index}=v" for index in range(MAX_COOKIES)))
    assert len(cookies) == MAX_COOKIES


def test_quoted_value_without_escapes_is_unwrapped() -> None:
    assert unquote_cookie_value('"plain value"') == "plain value"
