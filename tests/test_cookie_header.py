"""Set-Cookie values: Starlette's output (through SimpleCookie) byte for byte, and the hardening."""

from __future__ import annotations

import datetime as dt
import re
from http.cookies import CookieError, SimpleCookie
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from starling._cookie_header import build_set_cookie, quote_value

HTTP_DATE = r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT"


# Outputs observed on Starlette 1.10's Response.set_cookie.
@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        (("a",), {}, 'a=""; Path=/; SameSite=lax'),
        (("a", "b"), {}, "a=b; Path=/; SameSite=lax"),
        (("a", "b c"), {}, 'a="b c"; Path=/; SameSite=lax'),
        (("a", 'b"c'), {}, 'a="b\\"c"; Path=/; SameSite=lax'),
        (("a", "b;c"), {}, 'a="b\\073c"; Path=/; SameSite=lax'),
        (("a", "b,c"), {}, 'a="b\\054c"; Path=/; SameSite=lax'),
        (("a", "\u00e9"), {}, 'a="\\351"; Path=/; SameSite=lax'),
        (("a", "b\r\nX: y"), {}, 'a="b\\015\\012X: y"; Path=/; SameSite=lax'),
        (("a", "b"), {"max_age": 10}, "a=b; Max-Age=10; Path=/; SameSite=lax"),
        (("a", "b"), {"max_age": 0}, "a=b; Max-Age=0; Path=/; SameSite=lax"),
        (("a", "b"), {"max_age": -1}, "a=b; Max-Age=-1; Path=/; SameSite=lax"),
        (("a", "b"), {"max_age": "10"}, "a=b; Max-Age=10; Path=/; SameSite=lax"),
        (("a", "b"), {"max_age": 1.5}, "a=b; Max-Age=1.5; Path=/; SameSite=lax"),
        (("a", "b"), {"max_age": True}, "a=b; Max-Age=1; Path=/; SameSite=lax"),
        (("a", "b"), {"max_age": ""}, "a=b; Path=/; SameSite=lax"),
        (
            ("a", "b"),
            {"expires": "Thu, 01 Jan 1970 00:00:00 GMT"},
            "a=b; expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; SameSite=lax",
        ),
        (
            ("a", "b"),
            {"expires": dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)},
            "a=b; expires=Wed, 02 Jan 2030 03:04:05 GMT; Path=/; SameSite=lax",
        ),
        (("a", "b"), {"expires": 1.5}, "a=b; expires=1.5; Path=/; SameSite=lax"),
        (("a", "b"), {"expires": ""}, "a=b; Path=/; SameSite=lax"),
        (("a", "b"), {"path": None}, "a=b; SameSite=lax"),
        (("a", "b"), {"path": ""}, "a=b; SameSite=lax"),
        (("a", "b"), {"path": "/x y"}, "a=b; Path=/x y; SameSite=lax"),
        (("a", "b"), {"domain": "example.com"}, "a=b; Domain=example.com; Path=/; SameSite=lax"),
        (("a", "b"), {"domain": ""}, "a=b; Path=/; SameSite=lax"),
        (
            ("a", "b"),
            {"secure": True, "httponly": True},
            "a=b; HttpOnly; Path=/; SameSite=lax; Secure",
        ),
        (("a", "b"), {"secure": 0, "httponly": False}, "a=b; Path=/; SameSite=lax"),
        (("a", "b"), {"samesite": "strict"}, "a=b; Path=/; SameSite=strict"),
        (("a", "b"), {"samesite": "Strict"}, "a=b; Path=/; SameSite=Strict"),
        (("a", "b"), {"samesite": "NONE"}, "a=b; Path=/; SameSite=NONE"),
        (("a", "b"), {"samesite": None}, "a=b; Path=/"),
        (("a", 5), {}, "a=5; Path=/; SameSite=lax"),
        (
            ("a", "b"),
            {
                "max_age": 5,
                "expires": "x",
                "path": "/p",
                "domain": "d.com",
                "secure": True,
                "httponly": True,
                "samesite": "none",
            },
            "a=b; Domain=d.com; expires=x; HttpOnly; Max-Age=5; Path=/p; SameSite=none; Secure",
        ),
    ],
)
def test_matches_starlette(args: tuple[Any, ...], kwargs: dict[str, Any], expected: str) -> None:
    assert build_set_cookie(*args, **kwargs) == expected


def test_partitioned_works_on_every_python() -> None:
    # Starlette raises ValueError before Python 3.14; 3.14's SimpleCookie prints it here
    assert build_set_cookie("a", "b", max_age=1, partitioned=True, secure=True) == (
        "a=b; Max-Age=1; Partitioned; Path=/; SameSite=lax; Secure"
    )


def test_integer_expires_counts_seconds_from_now() -> None:
    cookie = build_set_cookie("a", "b", expires=10)
    assert re.fullmatch(f"a=b; expires={HTTP_DATE}; Path=/; SameSite=lax", cookie)
    assert re.fullmatch(
        f'a=""; expires={HTTP_DATE}; Max-Age=0; Path=/; SameSite=lax',
        (build_set_cookie("a", max_age=0, expires=0)),
    )


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("a b", "Illegal key 'a b'"),
        ("a;b", "Illegal key 'a;b'"),
        ("a\r\nb", "Illegal key 'a\\r\\nb'"),
        ("", "Illegal key ''"),
        ("\u00e9", "Illegal key '\u00e9'"),
        ("expires", "Attempt to set a reserved key 'expires'"),
        ("Max-Age", "Attempt to set a reserved key 'Max-Age'"),
        ("SameSite", "Attempt to set a reserved key 'SameSite'"),
    ],
)
def test_bad_keys(key: str, message: str) -> None:
    with pytest.raises(CookieError, match=re.escape(message)):
        build_set_cookie(key, "v")


@pytest.mark.parametrize("samesite", ["bad", "", "laxx"])
def test_bad_samesite(samesite: str) -> None:
    with pytest.raises(AssertionError, match="samesite must be either 'strict', 'lax' or 'none'"):
        build_set_cookie("a", "b", samesite=samesite)


@pytest.mark.parametrize(
    "expires",
    [
        dt.datetime(2030, 1, 1),
        dt.datetime(2030, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    ],
)
def test_expires_must_be_utc(expires: dt.datetime) -> None:
    with pytest.raises(ValueError, match="usegmt option requires a UTC datetime"):
        build_set_cookie("a", "b", expires=expires)


def test_expires_is_checked_before_samesite() -> None:
    with pytest.raises(ValueError, match="UTC"):
        build_set_cookie("a", "b", expires=dt.datetime(2030, 1, 1), samesite="bad")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"path": "/; Domain=evil.example"},
        {"path": "/\r\nX-Injected: 1"},
        {"domain": "a.com; Secure"},
        {"expires": "x; HttpOnly"},
        {"max_age": "1; Domain=evil"},
        {"path": "/\x00"},
        {"domain": "a\x7f"},
    ],
)
def test_attribute_injection_is_refused(kwargs: dict[str, Any]) -> None:
    """APPSEC: Starlette writes these verbatim, adding attributes; starling raises."""
    with pytest.raises(ValueError, match="Invalid cookie attribute"):
        build_set_cookie("a", "b", **kwargs)


@given(st.text(alphabet=st.characters(max_codepoint=255)))
def test_quoted_value_reads_back_with_the_stdlib(value: str) -> None:
    """Whatever the value, the header has no CR, LF or ';' in it and SimpleCookie reads it back."""
    quoted = quote_value(value)
    assert not set(quoted) & {"\r", "\n", ";"}
    jar: SimpleCookie = SimpleCookie()
    jar.load(f"k={quoted}")
    assert jar["k"].value == value


@given(st.text(alphabet=st.characters(max_codepoint=255)))
def test_matches_simplecookie_quoting(value: str) -> None:
    jar: SimpleCookie = SimpleCookie()
    jar["k"] = value
    assert jar["k"].coded_value == quote_value(value)
