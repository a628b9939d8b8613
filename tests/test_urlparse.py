"""_urlparse: the Host grammar (as Starlette 1.10 accepts it), scope paths and query strings,
and the bounded query parser against the stdlib."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from starling import _urlparse
from starling._urlparse import (
    MAX_PORT_DIGITS,
    MAX_QUERY_PARAMS,
    host_header,
    parse_host,
    parse_query,
    scope_path,
    scope_query,
    server_netloc,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("h.com", ("h.com", None)),
        ("H.COM:8", ("H.COM", 8)),
        ("h_x.com", ("h_x.com", None)),
        ("1.2.3.4:5", ("1.2.3.4", 5)),
        ("1.2.3.999", ("1.2.3.999", None)),
        ("h.com:0", ("h.com", 0)),
        ("h.com:65535", ("h.com", 65535)),
        ("h.com:000000", ("h.com", 0)),
        ("h.com:0000080", ("h.com", 80)),
        ("h.com:" + "0" * 14 + "80", ("h.com", 80)),
        ("-a.com", ("-a.com", None)),
        ("a..b", ("a..b", None)),
        ("h.com.", ("h.com.", None)),
        # sub-delims and "%" are reg-name characters; none of them ends the authority.
        ("a!$&'()*+,;=~b", ("a!$&'()*+,;=~b", None)),
        ("%41.com", ("%41.com", None)),
        ("a%zz", ("a%zz", None)),
        ("[::1]:65535", ("[::1]", 65535)),
        ("[::]", ("[::]", None)),
        ("[1:2:3:4:5:6:7:8]", ("[1:2:3:4:5:6:7:8]", None)),
        ("[::ffff:1.2.3.4]", ("[::ffff:1.2.3.4]", None)),
        ("[v1.x:y]", ("[v1.x:y]", None)),
        ("[vF.a]", ("[vF.a]", None)),
    ],
)
def test_parse_host_accepts(value: str, expected: tuple[str, int | None]) -> None:
    assert parse_host(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "h.com:65536",
        "h.com:" + "0" * 15 + "80",
        "h.com:" + "0" * 5000 + "80",
        "h.com:" + "9" * 5000,
        "h.com:99999",
        "h.com:",
        "h.com:+80",
        "h.com: 80",
        "h.com:-1",
        "h.com:\u0661",
        "\u0661",
        "é",
        ":80",
        "h.com:1:2",
        " h.com",
        "h.com ",
        "h.com\t",
        "a@evil.com",
        "evil.com/x",
        "evil.com?x",
        "evil.com#x",
        "evil.com\\x",
        "[::1%25eth0]",
        "[fe80::1%eth0]",
        "[1::2::3]",
        "[12345::]",
        "[v.a]",
        "[V1.a]",
        "[:]",
        "[]",
        "[1:2:3:4:5:6:7:8:9]",
        "[::1.2.3.4.5]",
        "[g::]",
        "[::1] ",
        "[::1]:80:80",
        "[::ffff:1.2.3]",
        "[::1",
        "[::1]x",
    ],
)
def test_parse_host_rejects(value: str) -> None:
    assert parse_host(value) is None


@given(st.text(max_size=30))
def test_parse_host_never_raises_and_keeps_the_authority(value: str) -> None:
    parsed = parse_host(value)
    if parsed is not None:
        host, port = parsed
        assert not any(c in host for c in "@/?#\\ ")
        assert port is None or 0 <= port <= 65535


def test_port_digit_limit() -> None:
    assert MAX_PORT_DIGITS == 16
    assert parse_host("h:" + "0" * (MAX_PORT_DIGITS - 1) + "1") == ("h", 1)
    assert parse_host("h:" + "0" * MAX_PORT_DIGITS + "1") is None


def test_host_header_first_wins() -> None:
    assert host_header([(b"a", b"1"), (b"host", b"x.com"), (b"host", b"y.com")]) == "x.com"
    assert host_header([(b"host", b"x@y"), (b"host", b"y.com")]) is None
    assert host_header([(b"Host", b"x.com")]) is None
    assert host_header([]) is None
    assert host_header([(b"host", b"\xe9")]) is None


@pytest.mark.parametrize(
    ("scheme", "host", "port", "expected"),
    [
        ("http", "s.com", 80, "s.com"),
        ("http", "s.com", 443, "s.com:443"),
        ("https", "s.com", 443, "s.com"),
        ("ws", "s.com", 80, "s.com"),
        ("wss", "s.com", 443, "s.com"),
        ("git", "s.com", 80, "s.com:80"),
        ("http", "s.com", None, "s.com"),
        ("http", "::1", 80, "[::1]"),
        ("http", "::1", 8000, "[::1]:8000"),
        ("http", "e@vil.com/", 80, "e%40vil.com%2F"),
        ("http", "/tmp/app.sock", None, "%2Ftmp%2Fapp.sock"),
        ("http", "fe80::1%eth0", 80, "[fe80::1%eth0]"),
        ("http", "a/b:c", 80, "a%2Fb%3Ac"),
        ("http", "fe80::1%a/b", 80, "fe80%3A%3A1%a%2Fb"),
        ("http", "1::2::3", 80, "1%3A%3A2%3A%3A3"),
        ("http", "h.com:80", 80, "h.com%3A80"),
    ],
)
def test_server_netloc(scheme: str, host: str, port: int | None, expected: str) -> None:
    assert server_netloc(scheme, host, port) == expected


@pytest.mark.parametrize(
    ("path", "has_netloc", "expected"),
    [
        ("/a", True, "/a"),
        ("", True, ""),
        ("", False, ""),
        ("@evil.com", True, "/@evil.com"),
        ("//evil.com", True, "//evil.com"),
        ("//evil.com", False, "/%2Fevil.com"),
        ("evil.com", False, "/evil.com"),
        ("/a?b#c\\d", True, "/a%3Fb%23c%5Cd"),
        ("/a\tb\rc\nd", True, "/abcd"),
        ("\n//evil.com", False, "/%2Fevil.com"),
    ],
)
def test_scope_path(path: str, has_netloc: bool, expected: str) -> None:
    assert scope_path(path, has_netloc) == expected


@pytest.mark.parametrize(
    ("query_string", "expected"),
    [
        (b"", ""),
        (b"a=1&b=2", "a=1&b=2"),
        (b"a=\xc3\xa9", "a=é"),
        (b"a=\xe9&b=\xc3\xa9", "a=%E9&b=%C3%A9"),
        (b"a=%zz", "a=%zz"),
        (b"a=1#x", "a=1%23x"),
        (b"a\t=1\r\n", "a=1"),
    ],
)
def test_scope_query(query_string: bytes, expected: str) -> None:
    assert scope_query(query_string) == expected


@given(st.binary())
def test_scope_query_is_always_text_without_fragment(query_string: bytes) -> None:
    query = scope_query(query_string)
    assert "#" not in query
    assert not any(c in query for c in "\t\r\n")


@given(st.text())
def test_parse_query_matches_parse_qsl(query: str) -> None:
    assert parse_query(query) == parse_qsl(query, keep_blank_values=True)


@given(st.text(alphabet="a=&%+2C3E9F ;é"))
def test_parse_query_matches_parse_qsl_on_delimiters(query: str) -> None:
    assert parse_query(query) == parse_qsl(query, keep_blank_values=True)


def test_parse_query_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    assert MAX_QUERY_PARAMS == 10_000
    monkeypatch.setattr(_urlparse, "MAX_QUERY_PARAMS", 3)
    assert parse_query("a=1&b=2") == [("a", "1"), ("b", "2")]
    assert parse_query("a=1&b=2&c=3") == [("a", "1"), ("b", "2"), ("c", "3")]
    assert parse_query("a=1&b=2&c=3&d=4&e=5") == [("a", "1"), ("b", "2"), ("c", "3")]
    # Empty segments count toward the limit: it bounds the work, not just the result.
    assert parse_query("&&&a=1") == []


def test_parse_query_limit_at_default() -> None:
    query = "&".join(f"k{i}=v" for i in range(MAX_QUERY_PARAMS + 5))
    pairs = parse_query(query)
    assert len(pairs) == MAX_QUERY_PARAMS
    assert pairs[-1] == (f"k{MAX_QUERY_PARAMS - 1}", "v")


_REG_NAME_CHARS = set(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=%"
)


@pytest.mark.parametrize("byte", range(256))
def test_parse_host_each_byte(byte: int) -> None:
    char = chr(byte)
    expected = ("a" + char + "b", None) if char in _REG_NAME_CHARS else None
    assert parse_host("a" + char + "b") == expected


@pytest.mark.parametrize("byte", range(256))
def test_scope_path_and_query_each_byte(byte: int) -> None:
    path = scope_path("/a" + chr(byte) + "b", True)
    assert path.startswith("/a")
    assert not any(c in path for c in "?#\\\t\r\n")
    query = scope_query(b"a" + bytes([byte]) + b"b")
    assert not any(c in query for c in "#\t\r\n")
    # A lone byte >= 0x80 is never UTF-8: it is percent-encoded.
    assert query.isascii()
