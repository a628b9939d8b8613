"""datastructures: URL (from strings, components and hostile scopes), headers, multidicts,
query params, uploads and the small value types, checked against Starlette 1.10's behaviour."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import starling.datastructures as datastructures
from starling._urlparse import parse_host
from starling.concurrency import run_in_threadpool
from starling.datastructures import (
    URL,
    Address,
    CommaSeparatedStrings,
    FormData,
    Headers,
    ImmutableMultiDict,
    MultiDict,
    MutableHeaders,
    QueryParams,
    Secret,
    State,
    UploadFile,
    URLPath,
)
from starling.types import Scope


def http_scope(
    path: str = "/p",
    query_string: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    server: tuple[str, int | None] | None = ("s.com", 80),
    scheme: str = "http",
) -> Scope:
    scope: Scope = {
        "type": "http",
        "scheme": scheme,
        "path": path,
        "query_string": query_string,
        "headers": headers or [],
    }
    if server is not None:
        scope["server"] = server
    return scope


# --- URL from a string -------------------------------------------------------------------------


def test_url_components() -> None:
    url = URL("https://user:pw@Example.COM:8443/pa%20th;x?q=1&r=2#frag")
    assert url.scheme == "https"
    assert url.netloc == "user:pw@Example.COM:8443"
    assert url.path == "/pa%20th;x"
    assert url.query == "q=1&r=2"
    assert url.fragment == "frag"
    assert url.username == "user"
    assert url.password == "pw"
    assert url.hostname == "example.com"
    assert url.port == 8443
    assert url.is_secure
    assert url.components == urlsplit(str(url))
    assert str(url) == "https://user:pw@Example.COM:8443/pa%20th;x?q=1&r=2#frag"


def test_url_empty_and_relative() -> None:
    assert str(URL()) == ""
    assert repr(URL()) == "URL('')"
    url = URL("/x")
    assert url.hostname is None
    assert url.port is None
    assert url.netloc == ""


def test_url_user_info_stays_percent_encoded() -> None:
    url = URL("http://u%40x:p%3A@h")
    assert (url.username, url.password) == ("u%40x", "p%3A")


def test_url_ipv6() -> None:
    url = URL("http://[::1]:8/")
    assert url.hostname == "::1"
    assert url.port == 8


def test_url_bad_port_raises_on_access() -> None:
    with pytest.raises(ValueError, match="Port could not be cast to integer value as 'abc'"):
        URL("http://x:abc/").port  # noqa: B018


@pytest.mark.parametrize(
    ("scheme", "secure"),
    [("http", False), ("https", True), ("ws", False), ("wss", True), ("HTTPS", True)],
)
def test_url_is_secure(scheme: str, secure: bool) -> None:
    assert URL(f"{scheme}://x").is_secure is secure


def test_url_repr_hides_password() -> None:
    url = URL("https://user:pw@Example.COM:8443/pa%20th;x?q=1&r=2#frag")
    assert repr(url) == "URL('https://user:********@Example.COM:8443/pa%20th;x?q=1&r=2#frag')"
    assert repr(URL("http://user@x.com/")) == "URL('http://user@x.com/')"
    assert repr(URL("http://:pw@x.com/")) == "URL('http://:********@x.com/')"
    assert repr(URL("http://x.com/")) == "URL('http://x.com/')"


def test_url_equality() -> None:
    url = URL("http://x.com/a?b=1")
    assert url == "http://x.com/a?b=1"
    assert url == URL("http://x.com/a?b=1")
    assert url != URL("http://x.com/a")
    assert url != 1
    with pytest.raises(TypeError, match="unhashable"):
        hash(url)


BASE = "https://user:pw@Example.COM:8443/pa%20th;x?q=1&r=2#frag"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"hostname": "other.org"}, "https://user:pw@other.org:8443/pa%20th;x?q=1&r=2#frag"),
        ({"port": 1}, "https://user:pw@Example.COM:1/pa%20th;x?q=1&r=2#frag"),
        ({"port": None}, "https://user:pw@Example.COM/pa%20th;x?q=1&r=2#frag"),
        ({"username": "bob"}, "https://bob:pw@Example.COM:8443/pa%20th;x?q=1&r=2#frag"),
        ({"password": "x"}, "https://user:x@Example.COM:8443/pa%20th;x?q=1&r=2#frag"),
        ({"username": None}, "https://Example.COM:8443/pa%20th;x?q=1&r=2#frag"),
        ({"password": None}, "https://user@Example.COM:8443/pa%20th;x?q=1&r=2#frag"),
        ({"scheme": "http"}, "http://user:pw@Example.COM:8443/pa%20th;x?q=1&r=2#frag"),
        ({"netloc": "n.com"}, "https://n.com/pa%20th;x?q=1&r=2#frag"),
        ({"path": "/x"}, "https://user:pw@Example.COM:8443/x?q=1&r=2#frag"),
        ({"path": "x"}, "https://user:pw@Example.COM:8443/x?q=1&r=2#frag"),
        ({"query": ""}, "https://user:pw@Example.COM:8443/pa%20th;x#frag"),
        ({"fragment": ""}, "https://user:pw@Example.COM:8443/pa%20th;x?q=1&r=2"),
        ({"hostname": None}, BASE),
    ],
)
def test_url_replace(changes: dict[str, Any], expected: str) -> None:
    replaced = URL(BASE).replace(**changes)
    assert isinstance(replaced, URL)
    assert str(replaced) == expected


@pytest.mark.parametrize(
    ("url", "changes", "expected"),
    [
        ("http://[::1]:80/", {"port": 81}, "http://[::1]:81/"),
        ("http://[::1]/", {"port": 81}, "http://[::1]:81/"),
        ("http://x.com:80/", {"hostname": "::1"}, "http://[::1]:80/"),
        ("http://x.com:80/", {"hostname": "[::1]"}, "http://[::1]:80/"),
        ("http://x.com/", {"username": "u"}, "http://u@x.com/"),
        # Without a username there is no userinfo to put a password in.
        ("http://x.com/", {"password": "u"}, "http://x.com/"),
        ("http://u:p@x.com:5/", {"hostname": None}, "http://u:p@x.com:5/"),
        ("/path?x=1", {"hostname": "h.com"}, "//h.com/path?x=1"),
        ("/path?x=1", {"port": 5}, "//:5/path?x=1"),
    ],
)
def test_url_replace_netloc_edge_cases(url: str, changes: dict[str, Any], expected: str) -> None:
    assert str(URL(url).replace(**changes)) == expected


@pytest.mark.parametrize(
    ("changes", "expected_netloc", "expected_hostname"),
    [
        # Starlette gives "a@b:c:d@h", whose hostname reads as "h" only by luck.
        ({"username": "a@b", "password": "c:d"}, "a%40b:c:d@h", "h"),
        ({"username": "a:b"}, "a%3Ab@h", "h"),
        ({"password": "p/evil.com?#"}, "h", "h"),
        # The stdlib lowercases a hostname only up to its first "%".
        ({"hostname": "evil.com/x?y#z"}, "evil.com%2Fx%3Fy%23z", "evil.com%2Fx%3Fy%23z"),
        ({"hostname": "a@evil.com"}, "a%40evil.com", "a%40evil.com"),
        ({"hostname": "a\\evil.com"}, "a%5Cevil.com", "a%5Cevil.com"),
    ],
)
def test_url_replace_escapes_delimiters(
    changes: dict[str, Any], expected_netloc: str, expected_hostname: str
) -> None:
    url = URL("http://h/").replace(**changes)
    assert url.netloc == expected_netloc
    assert url.hostname == expected_hostname
    assert url.path == "/"


_userinfo_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E))


@given(_userinfo_text, st.none() | _userinfo_text)
def test_url_replace_userinfo_cannot_move_authority(username: str, password: str | None) -> None:
    url = URL("http://h:8/p?q#f").replace(username=username, password=password)
    assert (url.hostname, url.port, url.path, url.query, url.fragment) == ("h", 8, "/p", "q", "f")


def test_url_replace_password_escapes_keep_path() -> None:
    url = URL("http://u@h/p").replace(password="a/b?c#d@e")
    assert url.netloc == "u:a%2Fb%3Fc%23d%40e@h"
    assert url.password == "a%2Fb%3Fc%23d%40e"
    assert url.path == "/p"


def test_url_replace_unknown_field() -> None:
    with pytest.raises(ValueError, match=r"Got unexpected field names: \['foo'\]"):
        URL("http://x/").replace(foo="x")


def test_url_from_components() -> None:
    url = URL(scheme="https", netloc="h.com", path="/x", query="a=1", fragment="f")
    assert str(url) == "https://h.com/x?a=1#f"
    assert str(URL(scheme="https", hostname="h.com", path="/x")) == "https://h.com/x"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: URL("http://a.com", scheme="https"), 'Cannot set both "url" and "**components".'),
        (lambda: URL(scope=http_scope(), scheme="https"), 'Cannot set both "scope" and "**'),
        (lambda: URL("http://a", scope=http_scope()), 'Cannot set both "url" and "scope".'),
    ],
)
def test_url_argument_conflicts(make: Callable[[], URL], message: str) -> None:
    with pytest.raises(AssertionError) as info:
        make()
    assert str(info.value).startswith(message)


def test_url_query_param_helpers() -> None:
    url = URL(BASE)
    assert str(url.include_query_params(q=3, z="a b")) == (
        "https://user:pw@Example.COM:8443/pa%20th;x?r=2&q=3&z=a+b#frag"
    )
    assert str(url.include_query_params(q=[1, 2])) == (
        "https://user:pw@Example.COM:8443/pa%20th;x?r=2&q=%5B1%2C+2%5D#frag"
    )
    assert (
        str(url.replace_query_params(z=1)) == "https://user:pw@Example.COM:8443/pa%20th;x?z=1#frag"
    )
    assert (
        str(url.remove_query_params("q")) == "https://user:pw@Example.COM:8443/pa%20th;x?r=2#frag"
    )
    assert str(url.remove_query_params(["q", "r"])) == (
        "https://user:pw@Example.COM:8443/pa%20th;x#frag"
    )
    assert str(url.remove_query_params("zz")) == BASE


def test_url_query_param_helpers_keep_blank_values() -> None:
    url = URL("/p?a=&b=1")
    assert str(url.include_query_params(c=2)) == "/p?a=&b=1&c=2"


# --- URL from a scope --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (http_scope(), "http://s.com/p"),
        (http_scope(server=("s.com", 8080)), "http://s.com:8080/p"),
        (http_scope(server=("s.com", 443), scheme="https"), "https://s.com/p"),
        (http_scope(server=("s.com", 80), scheme="https"), "https://s.com:80/p"),
        (http_scope(scheme="ws"), "ws://s.com/p"),
        (http_scope(scheme="wss", server=("s.com", 443)), "wss://s.com/p"),
        (http_scope(server=None), "/p"),
        (http_scope(server=("", 80)), "/p"),
        (http_scope(headers=[(b"host", b"h.com:1")]), "http://h.com:1/p"),
        (http_scope(headers=[(b"host", b"H.COM")]), "http://H.COM/p"),
        (http_scope(headers=[(b"host", b"[::1]:8000")]), "http://[::1]:8000/p"),
        (http_scope(headers=[(b"host", b"h.com:000080")]), "http://h.com:000080/p"),
        # The first Host header wins; names are matched exactly, as ASGI sends them lowercased.
        (http_scope(headers=[(b"host", b"a.com"), (b"host", b"b.com")]), "http://a.com/p"),
        (http_scope(headers=[(b"Host", b"a.com")]), "http://s.com/p"),
        (http_scope(headers=[(b"host", b"h.com")], server=None, scheme="https"), "https://h.com/p"),
        (http_scope(server=("::1", 8000)), "http://[::1]:8000/p"),
        (http_scope(server=("::1", 80)), "http://[::1]/p"),
        (http_scope(path=""), "http://s.com"),
        (http_scope(query_string=b"a=1&b=2"), "http://s.com/p?a=1&b=2"),
        (http_scope(path="/a b/é"), "http://s.com/a b/é"),
        (http_scope(path="/a;b,c!$&'()*+=:@~%20"), "http://s.com/a;b,c!$&'()*+=:@~%20"),
        # Starlette raises KeyError for a scheme without a default port; we keep the port.
        (http_scope(scheme="git"), "git://s.com:80/p"),
        # Starlette gives "http://s.com:None/p", whose .port raises.
        (http_scope(server=("s.com", None)), "http://s.com/p"),
    ],
)
def test_url_from_scope(scope: Scope, expected: str) -> None:
    url = URL(scope=scope)
    assert str(url) == expected
    assert url.components == urlsplit(expected)


def test_url_private_text_attribute() -> None:
    # Starlette keeps the text in URL._url and some code reads it.
    assert URL("http://x/")._url == "http://x/"
    assert URL(scope=http_scope())._url == "http://s.com/p"


def test_url_from_scope_properties() -> None:
    url = URL(scope=http_scope(headers=[(b"host", b"H.COM:8")], query_string=b"x=1"))
    assert url.scheme == "http"
    assert url.netloc == "H.COM:8"
    assert url.hostname == "h.com"
    assert url.port == 8
    assert url.path == "/p"
    assert url.query == "x=1"
    assert url.fragment == ""
    assert url == "http://H.COM:8/p?x=1"


def test_url_from_minimal_scope() -> None:
    # Keys the ASGI spec makes optional fall back to their defaults.
    assert str(URL(scope={"type": "http", "path": "/", "server": ("s", 1)})) == "http://s:1/"
    assert str(URL(scope={"type": "http", "path": "/"})) == "/"


@pytest.mark.parametrize(
    "host",
    [
        b"a@evil.com",
        b"evil.com/x",
        b"evil.com?x",
        b"evil.com#x",
        b"evil.com\\x",
        b"",
        b"a b",
        b" h.com",
        b"h.com:abc",
        b"h.com:",
        b"h.com:99999",
        b"h.com:65536",
        # Starlette accepts this one, and then url.port raises (int() digit limit).
        b"h.com:" + b"0" * 5000 + b"80",
        b"h.com:" + b"9" * 5000,
        b"h.com:1:2",
        b":80",
        b"[::1",
        b"[zz]",
        b"[::1]x",
        b"[::1]:",
        b"[fe80::1%eth0]",
        b"\xe9.com",
        b"a\tb",
        b"a\x00b",
        b'a"b',
        b"a<b",
        b"a{b",
        b"a|b",
        b"a^b",
        b"a`b",
        b"a[b",
        b"evil.com\r\nx",
    ],
)
def test_url_from_scope_rejects_malformed_host_header(host: bytes) -> None:
    url = URL(scope=http_scope(headers=[(b"host", host)]))
    assert str(url) == "http://s.com/p"
    assert url.hostname == "s.com"


def test_url_from_scope_malformed_host_without_server_is_relative() -> None:
    url = URL(scope=http_scope(headers=[(b"host", b"a@b")], server=None, path="/x"))
    assert str(url) == "/x"
    assert url.hostname is None


@pytest.mark.parametrize(
    ("path", "expected_path"),
    [
        # CVE-2026-54282: without the leading "/" this became "http://s.com@evil.com".
        ("@evil.com", "/@evil.com"),
        ("evil.com", "/evil.com"),
        ("//evil.com/x", "//evil.com/x"),
        ("\\\\evil.com", "/%5C%5Cevil.com"),
        ("/a?b#c", "/a%3Fb%23c"),
        (":80@evil.com", "/:80@evil.com"),
        ("/a\tb\r\nc", "/abc"),
    ],
)
def test_url_from_scope_path_cannot_move_authority(path: str, expected_path: str) -> None:
    url = URL(scope=http_scope(path=path))
    assert url.hostname == "s.com"
    assert url.netloc == "s.com"
    assert url.path == expected_path
    assert url.query == ""
    assert urlsplit(str(url)) == url.components


def test_url_from_scope_without_authority_escapes_double_slash() -> None:
    # "//evil.com/x" alone would read as a network-path reference to evil.com.
    url = URL(scope=http_scope(path="//evil.com/x", server=None))
    assert str(url) == "/%2Fevil.com/x"
    assert url.hostname is None
    assert URL(str(url)).hostname is None


@pytest.mark.parametrize(
    ("query_string", "expected_query"),
    [
        (b"a=%zz", "a=%zz"),
        (b"a=%C3%A9", "a=%C3%A9"),
        (b"a=\xc3\xa9", "a=é"),
        # Not UTF-8: Starlette raises UnicodeDecodeError (a 500); the bytes are escaped.
        (b"a=\xe9", "a=%E9"),
        (b"a=\xe9 b", "a=%E9 b"),
        # Starlette lets "#" start a fragment.
        (b"a=1#x", "a=1%23x"),
        (b"a=1\r\n", "a=1"),
    ],
)
def test_url_from_scope_query(query_string: bytes, expected_query: str) -> None:
    url = URL(scope=http_scope(query_string=query_string))
    assert url.query == expected_query
    assert url.fragment == ""
    assert urlsplit(str(url)) == url.components


def test_url_from_scope_escapes_server_host() -> None:
    # The server tuple is not client input, but it must not move the authority either.
    url = URL(scope=http_scope(server=("e@vil.com/", 80)))
    assert str(url) == "http://e%40vil.com%2F/p"
    assert url.path == "/p"


def _expected_hostnames(host: bytes | None, server: bool) -> set[str | None]:
    allowed: set[str | None] = {"srv.example"} if server else {None}
    if host is not None:
        text = host.decode("latin-1")
        if parse_host(text) is not None:
            allowed = {urlsplit("//" + text).hostname}
    return allowed


@settings(max_examples=500)
@given(
    path=st.text(),
    query_string=st.binary(),
    host=st.none() | st.binary(max_size=24) | st.from_regex(rb"\A[a-z0-9.@:/?#\[\]]{0,20}\Z"),
    scheme=st.sampled_from(["http", "https", "ws", "wss"]),
    server=st.booleans(),
)
def test_url_from_scope_property(
    path: str, query_string: bytes, host: bytes | None, scheme: str, server: bool
) -> None:
    headers = [] if host is None else [(b"host", host)]
    scope = http_scope(path, query_string, headers, ("srv.example", 8000) if server else None)
    scope["scheme"] = scheme
    url = URL(scope=scope)
    # What str(url) says is exactly what the components say: nothing is re-read differently.
    assert urlsplit(str(url)) == url.components
    assert url.hostname in _expected_hostnames(host, server)
    assert url.fragment == ""


@settings(max_examples=300)
@given(
    host=st.text(max_size=16) | st.sampled_from(["::1", "fe80::1%eth0", "fe80::1%a/b", "a:b"]),
    port=st.none() | st.integers(0, 65535),
    path=st.text(max_size=16),
)
def test_url_from_scope_server_property(host: str, port: int | None, path: str) -> None:
    url = URL(scope=http_scope(path, server=(host, port)))
    assert urlsplit(str(url)) == url.components
    assert not set(url.netloc) & set("/?#@\\")
    assert url.port == (None if port in (None, 80) else port)


# --- URLPath -----------------------------------------------------------------------------------


def test_urlpath() -> None:
    path = URLPath("/x", protocol="http", host="h")
    assert isinstance(path, str)
    assert path == "/x"
    assert (path.protocol, path.host) == ("http", "h")
    assert URLPath("/x").__dict__ == {"protocol": "", "host": ""}
    with pytest.raises(AssertionError):
        URLPath("/x", "ftp")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            URLPath("/x"),
            ["https://b.com:8/root/x", "http://b.com/r/x", "wss://w.com/x", "ws://w.com/x"]
            + ["http://b.com/x", "/rel/x"],
        ),
        (
            URLPath("/x", "http"),
            ["https://b.com:8/root/x", "http://b.com/r/x", "https://w.com/x", "http://w.com/x"]
            + ["http://b.com/x", "http:///rel/x"],
        ),
        (
            URLPath("/x", "websocket"),
            ["wss://b.com:8/root/x", "ws://b.com/r/x", "wss://w.com/x", "ws://w.com/x"]
            + ["ws://b.com/x", "ws:///rel/x"],
        ),
        (
            URLPath("/x", "http", "o.com"),
            ["https://o.com/root/x", "http://o.com/r/x", "https://o.com/x", "http://o.com/x"]
            + ["http://o.com/x", "http://o.com/rel/x"],
        ),
        (
            URLPath("x"),
            ["https://b.com:8/rootx", "http://b.com/rx", "wss://w.com/x", "ws://w.com/x"]
            + ["http://b.com/x", "/relx"],
        ),
    ],
)
def test_urlpath_make_absolute_url(path: URLPath, expected: list[str]) -> None:
    bases: list[str | URL] = [
        URL("https://b.com:8/root/"),
        "http://b.com/r",
        URL("wss://w.com/"),
        URL("ws://w.com/"),
        URL("http://b.com"),
        "/rel",
    ]
    results = [path.make_absolute_url(base) for base in bases]
    assert all(isinstance(result, URL) for result in results)
    assert [str(result) for result in results] == expected


# --- Headers -----------------------------------------------------------------------------------


def test_headers_from_mapping() -> None:
    headers = Headers({"a": "1", "B": "2"})
    assert headers.raw == [(b"a", b"1"), (b"b", b"2")]
    assert headers["A"] == headers["a"] == "1"
    assert headers.get("b") == "2"
    assert headers.get("z") is None
    assert headers.get("z", "d") == "d"
    assert headers.get("A", "d") == "1"
    assert "B" in headers
    assert "z" not in headers
    assert headers.keys() == ["a", "b"]
    assert headers.values() == ["1", "2"]
    assert headers.items() == [("a", "1"), ("b", "2")]
    assert list(headers) == ["a", "b"]
    assert len(headers) == 2
    assert repr(headers) == "Headers({'a': '1', 'b': '2'})"
    with pytest.raises(KeyError, match="zz"):
        headers["zz"]


def test_headers_repeated_keys() -> None:
    headers = Headers(raw=[(b"a", b"1"), (b"b", b"2"), (b"a", b"3")])
    assert headers.keys() == ["a", "b", "a"]
    assert headers.values() == ["1", "2", "3"]
    assert headers["a"] == "1"
    assert headers.getlist("A") == ["1", "3"]
    assert headers.getlist("z") == []
    assert len(headers) == 3
    assert dict(headers) == {"a": "1", "b": "2"}
    assert repr(headers) == "Headers(raw=[(b'a', b'1'), (b'b', b'2'), (b'a', b'3')])"


def test_headers_latin1() -> None:
    assert Headers({"a": "é"}).raw == [(b"a", b"\xe9")]
    assert Headers(raw=[(b"a", b"\xe9\xff")])["a"] == "é\xff"
    with pytest.raises(UnicodeEncodeError):
        Headers({"a": "€"})


def test_headers_non_str_key() -> None:
    headers = Headers()
    with pytest.raises(AttributeError):
        cast(Any, 1) in headers  # noqa: B015
    with pytest.raises(AttributeError):
        headers[1]  # type: ignore[index]
    assert repr(headers) == "Headers({})"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"headers": {"a": "1"}, "raw": []}, 'Cannot set both "headers" and "raw".'),
        ({"headers": {"a": "1"}, "scope": {}}, 'Cannot set both "headers" and "scope".'),
        ({"raw": [], "scope": {}}, 'Cannot set both "raw" and "scope".'),
    ],
)
def test_headers_one_source_only(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        Headers(**kwargs)


def test_headers_share_raw_and_scope_lists() -> None:
    raw = [(b"a", b"1")]
    headers = Headers(raw=raw)
    raw.append((b"x", b"2"))
    assert "x" in headers
    # .raw is a copy for the immutable class.
    assert headers.raw is not raw
    headers.raw.append((b"z", b"3"))
    assert "z" not in headers

    scope: Scope = {"headers": [(b"Host", b"x")]}
    from_scope = Headers(scope=scope)
    scope["headers"].append((b"y", b"1"))
    assert "y" in from_scope
    # Names from the scope are used as sent: ASGI servers send them lowercased.
    assert "host" not in from_scope


def test_headers_equality() -> None:
    assert Headers({"a": "1"}) == Headers(raw=[(b"a", b"1")])
    assert Headers(raw=[(b"a", b"1"), (b"b", b"2")]) == Headers(raw=[(b"b", b"2"), (b"a", b"1")])
    assert Headers({"a": "1"}) == MutableHeaders({"a": "1"})
    assert Headers({"a": "1"}) != {"a": "1"}
    assert Headers({"a": "1"}) != [("a", "1")]
    with pytest.raises(TypeError, match="unhashable"):
        hash(Headers())


def test_headers_mutablecopy() -> None:
    headers = Headers({"a": "1"})
    copy = headers.mutablecopy()
    assert type(copy) is MutableHeaders
    copy["q"] = "1"
    assert "q" not in headers


def test_mutable_headers_set_and_delete() -> None:
    headers = MutableHeaders({"a": "1"})
    headers["X-Y"] = "v"
    headers.append("x-Y", "w")
    assert headers.raw == [(b"a", b"1"), (b"x-y", b"v"), (b"x-y", b"w")]
    headers["x-y"] = "z"
    assert headers.raw == [(b"a", b"1"), (b"x-y", b"z")]
    del headers["X-Y"]
    assert headers.raw == [(b"a", b"1")]
    del headers["missing"]
    assert repr(headers) == "MutableHeaders({'a': '1'})"
    with pytest.raises(UnicodeEncodeError):
        headers["a"] = "€"


def test_mutable_headers_set_keeps_first_position() -> None:
    headers = MutableHeaders(raw=[(b"b", b"0"), (b"a", b"1"), (b"b", b"2"), (b"a", b"3")])
    headers["a"] = "x"
    assert headers.raw == [(b"b", b"0"), (b"a", b"x"), (b"b", b"2")]


def test_mutable_headers_setdefault() -> None:
    headers = MutableHeaders(raw=[(b"a", b"1"), (b"a", b"2")])
    assert headers.setdefault("A", "9") == "1"
    assert headers.setdefault("New", "9") == "9"
    assert headers.raw == [(b"a", b"1"), (b"a", b"2"), (b"new", b"9")]


def test_mutable_headers_update() -> None:
    headers = MutableHeaders(raw=[(b"a", b"1"), (b"a", b"0")])
    headers.update({"A": "2", "c": "3"})
    assert headers.raw == [(b"a", b"2"), (b"c", b"3")]


def test_mutable_headers_add_vary_header() -> None:
    headers = MutableHeaders()
    headers.add_vary_header("Accept")
    headers.add_vary_header("Cookie")
    assert headers.raw == [(b"vary", b"Accept, Cookie")]
    several = MutableHeaders(raw=[(b"vary", b"A"), (b"vary", b"B")])
    several.add_vary_header("X")
    assert several.raw == [(b"vary", b"A, B, X")]


def test_mutable_headers_or() -> None:
    headers = MutableHeaders({"a": "1"})
    merged = headers | {"z": "1"}
    assert type(merged) is MutableHeaders
    assert merged.raw == [(b"a", b"1"), (b"z", b"1")]
    assert headers.raw == [(b"a", b"1")]
    assert (headers | Headers({"a": "2"})).raw == [(b"a", b"2")]
    assert (headers | QueryParams("a=3")).raw == [(b"a", b"3")]
    with pytest.raises(TypeError, match="Expected a mapping but got int"):
        headers | 1  # type: ignore[operator]


def test_mutable_headers_ior() -> None:
    headers = MutableHeaders({"a": "1"})
    same = headers
    headers |= {"b": "2"}
    assert headers is same
    assert headers.raw == [(b"a", b"1"), (b"b", b"2")]
    with pytest.raises(TypeError, match="Expected a mapping but got int"):
        headers |= 5  # type: ignore[arg-type]


def test_mutable_headers_raw_is_live() -> None:
    raw = [(b"a", b"1")]
    headers = MutableHeaders(raw=raw)
    assert headers.raw is raw
    headers["b"] = "2"
    assert raw == [(b"a", b"1"), (b"b", b"2")]


def test_mutable_headers_edit_the_scope() -> None:
    scope: Scope = {"type": "http", "headers": [(b"a", b"1")]}
    headers = MutableHeaders(scope=scope)
    headers["b"] = "2"
    assert headers.raw is scope["headers"]
    assert scope["headers"] == [(b"a", b"1"), (b"b", b"2")]

    # A server may send a tuple: it becomes a list in the scope so edits land there.
    tuple_scope: Scope = {"type": "http", "headers": ((b"a", b"1"),)}
    MutableHeaders(scope=tuple_scope)["b"] = "2"
    assert tuple_scope["headers"] == [(b"a", b"1"), (b"b", b"2")]


# --- ImmutableMultiDict / MultiDict ------------------------------------------------------------


def test_immutable_multidict_construction() -> None:
    pairs = [("a", 1), ("a", 2)]
    assert ImmutableMultiDict().multi_items() == []
    assert ImmutableMultiDict({"a": 1}).multi_items() == [("a", 1)]
    assert ImmutableMultiDict(pairs).multi_items() == pairs
    assert ImmutableMultiDict(ImmutableMultiDict(pairs)).multi_items() == pairs
    assert ImmutableMultiDict(a=1).multi_items() == [("a", 1)]
    assert ImmutableMultiDict({"a": 1}, b=2).multi_items() == [("a", 1), ("b", 2)]
    assert ImmutableMultiDict([("a", 1)], a=2).multi_items() == pairs
    assert ImmutableMultiDict(QueryParams("a=1&a=2")).multi_items() == [("a", "1"), ("a", "2")]
    assert ImmutableMultiDict(Headers({"a": "1"})).multi_items() == [("a", "1")]
    assert ImmutableMultiDict(iter(pairs)).multi_items() == pairs


def test_immutable_multidict_bad_arguments() -> None:
    with pytest.raises(AssertionError, match="Too many arguments."):
        ImmutableMultiDict({"a": 1}, {"b": 2})
    with pytest.raises(ValueError, match="not enough values to unpack"):
        ImmutableMultiDict("ab")  # type: ignore[arg-type]


def test_immutable_multidict_access() -> None:
    data = ImmutableMultiDict([("a", "1"), ("b", "2"), ("a", "3")])
    assert data["a"] == "3"
    assert data.get("a") == "3"
    assert data.get("z") is None
    assert data.getlist("a") == ["1", "3"]
    assert data.getlist("z") == []
    assert list(data.keys()) == ["a", "b"]
    assert list(data.values()) == ["3", "2"]
    assert list(data.items()) == [("a", "3"), ("b", "2")]
    assert data.multi_items() == [("a", "1"), ("b", "2"), ("a", "3")]
    assert list(data) == ["a", "b"]
    assert len(data) == 2
    assert "a" in data
    assert cast(Any, 1) not in data
    assert repr(data) == "ImmutableMultiDict([('a', '1'), ('b', '2'), ('a', '3')])"
    assert str(data) == repr(data)
    with pytest.raises(KeyError, match="z"):
        data["z"]
    with pytest.raises(TypeError, match="unhashable"):
        hash(data)
    assert not hasattr(data, "__setitem__")


def test_immutable_multidict_multi_items_is_a_copy() -> None:
    data = ImmutableMultiDict([("a", "1")])
    data.multi_items().append(("b", "2"))
    assert data.multi_items() == [("a", "1")]


def test_immutable_multidict_equality() -> None:
    data = ImmutableMultiDict([("a", "1"), ("b", "2"), ("a", "3")])
    # Order across keys does not matter; the order of one key's values does.
    assert data == ImmutableMultiDict([("a", "1"), ("b", "2"), ("a", "3")])
    assert data == ImmutableMultiDict([("b", "2"), ("a", "1"), ("a", "3")])
    assert data != ImmutableMultiDict([("a", "3"), ("b", "2"), ("a", "1")])
    # Only the same class compares equal; plain dicts and lists never do.
    assert data != {"a": "3", "b": "2"}
    assert data != [("a", "1")]
    assert ImmutableMultiDict({"a": "1"}) != MultiDict({"a": "1"})
    assert ImmutableMultiDict({"a": "1"}) != QueryParams({"a": "1"})
    assert QueryParams("a=1") != ImmutableMultiDict({"a": "1"})
    assert FormData({"a": "1"}) != ImmutableMultiDict({"a": "1"})
    assert ImmutableMultiDict({"a": 1}).__eq__(3) is False
    # Mixed key types cannot be ordered, as in Starlette.
    with pytest.raises(TypeError):
        ImmutableMultiDict([(1, "a"), ("a", "b")]) == ImmutableMultiDict([(1, "a"), ("a", "b")])  # noqa: B015


def test_multidict_mutations() -> None:
    data = MultiDict([("a", "1"), ("b", "2"), ("a", "3")])
    data["a"] = "x"
    assert data.multi_items() == [("b", "2"), ("a", "x")]
    data.append("b", "4")
    assert data.multi_items() == [("b", "2"), ("a", "x"), ("b", "4")]
    assert data["b"] == "4"
    assert data.setdefault("c", "5") == "5"
    assert data.setdefault("c", "6") == "5"
    assert data.multi_items() == [("b", "2"), ("a", "x"), ("b", "4"), ("c", "5")]
    assert data.pop("b") == "4"
    assert data.multi_items() == [("a", "x"), ("c", "5")]
    assert data.pop("zz") is None
    assert data.pop("zz", "d") == "d"
    assert data.popitem() == ("c", "5")
    assert data.multi_items() == [("a", "x")]


def test_multidict_setlist_and_poplist() -> None:
    data = MultiDict([("a", "x")])
    data.setlist("k", ["1", "2"])
    assert data.multi_items() == [("a", "x"), ("k", "1"), ("k", "2")]
    assert data["k"] == "2"
    data.setlist("k", [])
    assert data.multi_items() == [("a", "x")]
    assert "k" not in data
    data.setlist("a", ["p", "q"])
    data.append("z", "z")
    data.setlist("a", ["r"])
    assert data.multi_items() == [("z", "z"), ("a", "r")]
    assert data.poplist("a") == ["r"]
    assert data.poplist("nope") == []
    assert data.multi_items() == [("z", "z")]


def test_multidict_update_delete_clear() -> None:
    data = MultiDict([("z", "z")])
    data.update([("z", "1"), ("z", "2"), ("y", "3")])
    assert data.multi_items() == [("z", "1"), ("z", "2"), ("y", "3")]
    data.update({"q": "1"}, w="2")
    assert data.multi_items() == [("z", "1"), ("z", "2"), ("y", "3"), ("q", "1"), ("w", "2")]
    del data["z"]
    assert data.multi_items() == [("y", "3"), ("q", "1"), ("w", "2")]
    with pytest.raises(KeyError, match="z"):
        del data["z"]
    data.clear()
    assert data.multi_items() == []
    assert len(data) == 0


def test_multidict_update_from_multidict() -> None:
    data = MultiDict([("a", "1"), ("b", "2"), ("a", "3")])
    data.update(MultiDict([("a", "9"), ("a", "8")]))
    assert data.multi_items() == [("b", "2"), ("a", "9"), ("a", "8")]
    with pytest.raises(AssertionError, match="Too many arguments."):
        data.update({}, {})


def test_multidict_popitem_removes_every_value() -> None:
    data = MultiDict([("a", "1"), ("b", "2"), ("b", "3")])
    assert data.popitem() == ("b", "3")
    assert data.multi_items() == [("a", "1")]
    with pytest.raises(KeyError, match="dictionary is empty"):
        MultiDict().popitem()


def test_multidict_repr_and_hash() -> None:
    assert repr(MultiDict([("a", "1"), ("a", "2")])) == "MultiDict([('a', '1'), ('a', '2')])"
    with pytest.raises(TypeError, match="unhashable"):
        hash(MultiDict())


def test_multidict_setitem_new_key_goes_last() -> None:
    data = MultiDict([("a", "1"), ("b", "2"), ("a", "3")])
    data["b"] = "x"
    assert data.multi_items() == [("a", "1"), ("a", "3"), ("b", "x")]


# --- QueryParams -------------------------------------------------------------------------------


def test_query_params_from_string() -> None:
    params = QueryParams("a=1&b=2&a=3")
    assert params["a"] == "3"
    assert params.getlist("a") == ["1", "3"]
    assert params.multi_items() == [("a", "1"), ("b", "2"), ("a", "3")]
    assert str(params) == "a=1&b=2&a=3"
    assert repr(params) == "QueryParams('a=1&b=2&a=3')"
    assert not hasattr(params, "__setitem__")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"a=1&b=%C3%A9", [("a", "1"), ("b", "é")]),
        # Bytes are read as latin-1.
        (b"a=\xe9", [("a", "é")]),
        ("a&b=&=c&&=&c=d=e", [("a", ""), ("b", ""), ("", "c"), ("", ""), ("c", "d=e")]),
        ("a+b=c+d%20e", [("a b", "c d e")]),
        ("a=%zz&b=%E9&c=%&d=%C3", [("a", "%zz"), ("b", "\ufffd"), ("c", "%"), ("d", "\ufffd")]),
        ("a=1;b=2", [("a", "1;b=2")]),
        ("?a=1", [("?a", "1")]),
        ("a=\x00", [("a", "\x00")]),
        ("", []),
        (b"", []),
    ],
)
def test_query_params_parsing(value: str | bytes, expected: list[tuple[str, str]]) -> None:
    assert QueryParams(value).multi_items() == expected


def test_query_params_from_values() -> None:
    assert str(QueryParams(a="1", b="2")) == "a=1&b=2"
    assert QueryParams({"a": 1}).multi_items() == [("a", "1")]
    assert str(QueryParams([("a", 1), ("a", None)])) == "a=1&a=None"
    assert str(QueryParams([("a", 1), ("b", True)])) == "a=1&b=True"
    assert str(QueryParams({"a b": "c&d=e/é"})) == "a+b=c%26d%3De%2F%C3%A9"
    assert str(QueryParams(MultiDict([("a", "1"), ("a", "2")]))) == "a=1&a=2"
    assert str(QueryParams(QueryParams("a=1"))) == "a=1"
    assert str(QueryParams("a=1", b="2")) == "a=1&b=2"
    assert str(QueryParams(b"a=1", b=2)) == "a=1&b=2"
    assert QueryParams(b"a=1", b=2)["b"] == "2"
    assert str(QueryParams()) == ""


def test_query_params_equality() -> None:
    assert QueryParams("a=1") == QueryParams({"a": "1"})
    assert QueryParams("a=1&b=2") == QueryParams("b=2&a=1")
    assert QueryParams("a=1&a=2") != QueryParams("a=2&a=1")


def test_query_params_bad_arguments() -> None:
    with pytest.raises(AssertionError, match="Too many arguments."):
        QueryParams("a=1", "b")
    with pytest.raises(TypeError, match="not iterable"):
        QueryParams(5)  # type: ignore[arg-type]


_param_text = st.text(st.characters(codec="utf-8"))


@given(st.lists(st.tuples(_param_text, _param_text), max_size=8))
def test_query_params_round_trip(pairs: list[tuple[str, str]]) -> None:
    params = QueryParams(pairs)
    assert QueryParams(str(params)).multi_items() == pairs
    assert str(QueryParams(str(params))) == str(params)


@given(st.text())
def test_query_params_match_parse_qsl(query: str) -> None:
    assert QueryParams(query).multi_items() == parse_qsl(query, keep_blank_values=True)


@given(st.binary())
def test_query_params_bytes_never_raise(query: bytes) -> None:
    params = QueryParams(query)
    assert params.multi_items() == parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    assert QueryParams(str(params)) == params


@given(st.lists(st.tuples(_param_text, _param_text), max_size=6), _param_text, _param_text)
def test_url_include_query_params_property(
    pairs: list[tuple[str, str]], key: str, value: str
) -> None:
    url = URL("http://h/p").replace(query=urlencode(pairs)).include_query_params(**{key: value})
    assert QueryParams(url.query).getlist(key) == [value]
    assert url.hostname == "h"
    assert url.path == "/p"


# --- UploadFile / FormData ---------------------------------------------------------------------


def make_spooled(max_size: int = 0) -> BinaryIO:
    """A SpooledTemporaryFile typed as the BinaryIO that UploadFile takes."""
    return cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=max_size))


class ThreadpoolSpy:
    """Records the calls UploadFile sends to the threadpool, then runs them there."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, func: Callable[..., Any], *args: Any) -> Any:
        self.calls.append(func.__name__)
        return await run_in_threadpool(func, *args)


@pytest.fixture
def disk_file() -> Iterator[BinaryIO]:
    # Opened outside the event loop: creating a file on disk is blocking I/O.
    with tempfile.TemporaryFile() as file:
        yield file


@pytest.fixture
def threadpool(monkeypatch: pytest.MonkeyPatch) -> ThreadpoolSpy:
    spy = ThreadpoolSpy()
    monkeypatch.setattr(datastructures, "run_in_threadpool", spy)
    return spy


def test_upload_file_attributes() -> None:
    headers = Headers({"content-type": "text/plain"})
    upload = UploadFile(io.BytesIO(b"hello"), filename="x.txt", headers=headers)
    assert upload.filename == "x.txt"
    assert upload.size is None
    assert upload.content_type == "text/plain"
    assert upload.headers is headers
    assert repr(upload) == (
        "UploadFile(filename='x.txt', size=None, headers=Headers({'content-type': 'text/plain'}))"
    )
    bare = UploadFile(io.BytesIO(), size=3)
    assert (bare.filename, bare.size, bare.content_type) == (None, 3, None)
    assert bare.headers == Headers()
    assert UploadFile(io.BytesIO(), headers=Headers({"Content-Type": "x/y"})).content_type == "x/y"


@pytest.mark.anyio
async def test_upload_file_in_memory_stays_on_the_loop(threadpool: ThreadpoolSpy) -> None:
    spooled = make_spooled(max_size=100)
    upload = UploadFile(spooled, size=0)
    await upload.write(b"hello")
    assert upload.size == 5
    await upload.seek(0)
    assert await upload.read(2) == b"he"
    assert await upload.read() == b"llo"
    await upload.close()
    assert spooled.closed
    assert threadpool.calls == []


@pytest.mark.anyio
async def test_upload_file_rollover_runs_in_threadpool(threadpool: ThreadpoolSpy) -> None:
    spooled = make_spooled(max_size=5)
    upload = UploadFile(spooled)
    await upload.write(b"0123")
    assert threadpool.calls == []
    # This write makes the file roll over to disk: it must not block the event loop.
    await upload.write(b"456789")
    assert threadpool.calls == ["write"]
    assert spooled._rolled  # type: ignore[attr-defined]
    assert upload.size is None
    await upload.seek(0)
    assert await upload.read() == b"0123456789"
    await upload.close()
    assert threadpool.calls == ["write", "seek", "read", "close"]
    assert spooled.closed


@pytest.mark.anyio
async def test_upload_file_other_files_use_threadpool(threadpool: ThreadpoolSpy) -> None:
    # A file that is not a SpooledTemporaryFile may be on disk: its I/O goes to a thread.
    upload = UploadFile(io.BytesIO(b"hello"), size=5)
    assert await upload.read() == b"hello"
    await upload.write(b"!!")
    assert upload.size == 7
    await upload.seek(0)
    assert await upload.read() == b"hello!!"
    await upload.close()
    assert threadpool.calls == ["read", "write", "seek", "read", "close"]


@pytest.mark.anyio
async def test_upload_file_on_disk(disk_file: BinaryIO, threadpool: ThreadpoolSpy) -> None:
    upload = UploadFile(disk_file)
    await upload.write(b"data")
    await upload.seek(0)
    assert await upload.read() == b"data"
    await upload.close()
    assert disk_file.closed
    assert threadpool.calls == ["write", "seek", "read", "close"]


@pytest.mark.anyio
async def test_form_data_close() -> None:
    first = UploadFile(make_spooled())
    second = UploadFile(make_spooled())
    form = FormData([("a", "1"), ("f", first), ("g", second)])
    await form.close()
    assert first.file.closed
    assert second.file.closed


def test_form_data() -> None:
    form = FormData([("a", "1"), ("a", "2")], b="3")
    assert form.getlist("a") == ["1", "2"]
    assert repr(FormData({"a": "1"})) == "FormData([('a', '1')])"
    assert FormData({"a": "1"}) == FormData([("a", "1")])


# --- Address, State, Secret, CommaSeparatedStrings ---------------------------------------------


def test_address() -> None:
    address = Address("h", 1)
    assert address == ("h", 1)
    assert (address.host, address.port) == ("h", 1)
    assert repr(address) == "Address(host='h', port=1)"
    assert Address._fields == ("host", "port")


def test_state_attributes() -> None:
    state = State()
    state.x = 1
    assert state.x == 1
    assert state._state == {"x": 1}
    del state.x
    assert state._state == {}
    with pytest.raises(AttributeError, match="'State' object has no attribute 'foo'"):
        state.foo  # noqa: B018
    with pytest.raises(KeyError, match="nope"):
        del state.nope


def test_state_subclass_message() -> None:
    class Custom(State):
        pass

    with pytest.raises(AttributeError, match="'Custom' object has no attribute 'foo'"):
        Custom().foo  # noqa: B018


def test_state_shares_its_dict() -> None:
    backing: dict[str, Any] = {"a": 1}
    state = State(backing)
    state.z = 2
    assert backing == {"a": 1, "z": 2}
    assert state.a == 1


def test_state_mapping_access() -> None:
    state = State({"a": 1})
    state["b"] = 2
    assert state["b"] == 2
    assert list(state) == ["a", "b"]
    assert len(state) == 2
    del state["a"]
    assert state._state == {"b": 2}
    assert State({"a": 1}) != State({"a": 1})


def test_secret() -> None:
    secret = Secret("pw")
    assert repr(secret) == "Secret('**********')"
    assert str(secret) == "pw"
    assert bool(secret)
    assert not Secret("")
    assert secret != Secret("pw")
    assert isinstance(hash(secret), int)


@pytest.mark.parametrize(
    ("value", "items"),
    [
        ("a, b ,c", ["a", "b", "c"]),
        (["x", "y"], ["x", "y"]),
        ("", []),
        ('"a,b", c', ["a,b", "c"]),
        ("a,,b, ,", ["a", "b", ""]),
        ("'a b' c, d", ["a b c", "d"]),
        ("a b, c d", ["a b", "c d"]),
        ("a\nb, c", ["a\nb", "c"]),
        ("a\\,b, c", ["a,b", "c"]),
    ],
)
def test_comma_separated_strings(value: str | list[str], items: list[str]) -> None:
    strings = CommaSeparatedStrings(value)
    assert list(strings) == items
    assert len(strings) == len(items)
    assert repr(strings) == f"CommaSeparatedStrings({items!r})"


def test_comma_separated_strings_sequence() -> None:
    strings = CommaSeparatedStrings("a, b ,c")
    assert strings[0] == "a"
    assert strings[1:] == ["b", "c"]
    assert "b" in strings
    assert str(strings) == "'a', 'b', 'c'"
    assert str(CommaSeparatedStrings(["a'b", "c"])) == "\"a'b\", 'c'"
    assert CommaSeparatedStrings("a") != CommaSeparatedStrings("a")
    with pytest.raises(ValueError, match="No closing quotation"):
        CommaSeparatedStrings('"a, b')


@pytest.mark.parametrize(
    ("hostname", "expected"),
    [
        ("example.org:8080", "https://example.org:8080/path"),  # pasted in, as Starlette does
        ("::1", "https://[::1]/path"),
        ("fe80::1%eth0", "https://[fe80::1%eth0]/path"),
        ("a:b:c", "https://a%3Ab%3Ac/path"),  # neither: the colons cannot become a port
        ("evil.com:80@x", "https://evil.com%3A80%40x/path"),
    ],
)
def test_url_replace_hostname_with_colons(hostname: str, expected: str) -> None:
    url = URL("https://example.org:8443/path").replace(hostname=hostname, port=None)
    assert url == expected
    assert url.path == "/path"


def test_parsers_build_form_data_as_the_constructor_does() -> None:
    from starling.datastructures import _form_data

    upload = UploadFile(io.BytesIO(b""), filename="f")
    items: list[tuple[str, UploadFile | str]] = [("a", "1"), ("f", upload), ("a", "2")]
    form = _form_data(items)
    assert form == FormData(items)
    assert form.multi_items() == items and form["a"] == "2" and form.getlist("a") == ["1", "2"]
    items.append(("b", "3"))  # the form keeps its own list
    assert "b" not in form and len(form.multi_items()) == 3
