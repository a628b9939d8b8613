"""Lenient, bounded parsing of the Cookie request header, matching Starlette's reading.

Browsers do not follow any cookie RFC to the letter, so (like Starlette, and unlike
``http.cookies.SimpleCookie``) this parser never rejects input: it splits on ``;``, takes the
first ``=`` as the separator, strips whitespace and unquotes double-quoted values. A piece
without ``=`` is stored under the key ``""``; a later duplicate wins. It never raises.
"""

from __future__ import annotations

import re

# APPSEC: at most this many ``;``-separated pieces are read; the rest of the header is ignored.
# Browsers cap cookies at roughly 150-180 per domain, so real headers stay far below it.
MAX_COOKIES = 1000

# The escapes of a quoted cookie value (RFC 2109 style, as the stdlib writes them): a backslash
# and three octal digits whose value fits a byte, or a backslash before any other character
# except a newline (``.`` without DOTALL, as in the stdlib reader this mirrors). Captured, so
# re.split returns [text, escape, text, escape, ..., text].
_split_escapes = re.compile(r"\\([0-3][0-7][0-7]|.)").split
# An escape's character: three octal digits by value; any other escape is the character itself.
_OCTAL = {f"{code:03o}": chr(code) for code in range(256)}


def unquote_cookie_value(value: str) -> str:
    """Undo the quoting of a ``"..."`` cookie value; anything else comes back unchanged.

    Equivalent to the stdlib's private ``http.cookies._unquote`` (which Starlette calls), in one
    linear pass. A backslash that ends the value stays; ``\\400`` is not octal, so it reads as
    ``400``.
    """
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    inner = value[1:-1]
    if "\\" not in inner:  # PERF: the common quoted value has no escapes
        return inner
    # APPSEC: escapes replaced through a table in C, not by a Python call each, so a value
    # made of escapes costs about what any value of its size does (measured: a 1 MB value of
    # "\\\\" took 400 times longer than a 1 MB header of plain cookies with a callback).
    pieces = _split_escapes(inner)
    escapes = pieces[1::2]
    pieces[1::2] = map(_OCTAL.get, escapes, escapes)
    return "".join(pieces)


def parse_cookie_header(cookie_string: str) -> dict[str, str]:
    """The cookies of a ``Cookie`` header value, as a dict; see the module docstring."""
    cookies: dict[str, str] = {}
    pieces = cookie_string.split(";", MAX_COOKIES)
    if len(pieces) > MAX_COOKIES:
        del pieces[MAX_COOKIES:]  # the unsplit tail beyond the limit
    for piece in pieces:
        key, sep, value = piece.partition("=")
        if not sep:  # a bare value, as some clients send: Starlette keys it by ""
            key, value = "", key
        key = key.strip()
        value = value.strip()
        if key or value:
            cookies[key] = unquote_cookie_value(value)
    return cookies
