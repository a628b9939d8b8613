"""Building ``Set-Cookie`` header values, byte for byte as Starlette does through SimpleCookie.

Starlette fills an ``http.cookies.SimpleCookie`` and prints it. That output is kept exactly:

- the name must be a cookie "legal key" and not an attribute name (``http.cookies.CookieError``);
- a value made only of legal characters is written as is; any other value (including ``""``) is
  double-quoted, with ``"`` and ``\\`` backslash-escaped and other bytes outside
  ``_UNESCAPED`` written as a backslash and three octal digits, so CR, LF and ``;`` cannot
  escape the value;
- attributes follow in the alphabetical order of their lower-case names, and one whose value is
  ``""`` is left out.

APPSEC: SimpleCookie writes ``path``, ``domain`` and string ``expires``/``max_age`` verbatim, so
``path="/; Domain=evil"`` adds an attribute. Here such values (``;`` or a control character)
raise ValueError. ``partitioned=True`` works on every Python, not only 3.14+.
"""

from __future__ import annotations

import re
import string
import time
from datetime import datetime
from email.utils import format_datetime, formatdate
from http.cookies import CookieError
from typing import Any

_LEGAL = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~:"
_UNESCAPED = _LEGAL + " ()/<=>?@[]{}"
_is_legal = re.compile(f"[{re.escape(_LEGAL)}]+").fullmatch

# Characters below 256 that a quoted value cannot hold literally: \ooo octal escapes.
_ESCAPES = {n: f"\\{n:03o}" for n in range(256) if chr(n) not in _UNESCAPED}
_ESCAPES[ord('"')] = '\\"'
_ESCAPES[ord("\\")] = "\\\\"

# SimpleCookie's attribute names on Python 3.11-3.13: a cookie cannot be called one of these.
_RESERVED = frozenset(
    ("expires", "path", "comment", "domain", "max-age", "secure", "httponly", "version", "samesite")
)
_SAMESITE = frozenset(("strict", "lax", "none"))
# A ';' would start a new attribute; control characters would break the header line.
_UNSAFE_ATTRIBUTE = re.compile(r"[;\x00-\x1f\x7f]").search


def quote_value(value: str) -> str:
    if _is_legal(value):
        return value
    return '"' + value.translate(_ESCAPES) + '"'


def _check_key(key: str) -> None:
    if key.lower() in _RESERVED:
        raise CookieError(f"Attempt to set a reserved key {key!r}")
    if not _is_legal(key):
        raise CookieError(f"Illegal key {key!r}")


def _attribute(label: str, value: Any) -> str:
    text = str(value)
    if _UNSAFE_ATTRIBUTE(text):
        raise ValueError(f"Invalid cookie attribute {label}={text!r}: no ';' or control characters")
    return f"{label}={text}"


def _expires(expires: datetime | str | int) -> str:
    if isinstance(expires, datetime):
        # raises "usegmt option requires a UTC datetime" for naive or non-UTC datetimes
        return format_datetime(expires, usegmt=True)
    if isinstance(expires, int):
        # seconds from now, as SimpleCookie reads an int
        return formatdate(time.time() + expires, usegmt=True)
    return str(expires)


def build_set_cookie(
    key: str,
    value: str = "",
    max_age: Any = None,
    expires: datetime | str | int | None = None,
    path: str | None = "/",
    domain: str | None = None,
    secure: bool = False,
    httponly: bool = False,
    samesite: str | None = "lax",
    partitioned: bool = False,
) -> str:
    """One ``Set-Cookie`` header value, with Starlette's ``set_cookie`` arguments."""
    _check_key(key)
    # the same order of checks as Starlette: the name, then expires, then samesite
    expires_text = None if expires is None or expires == "" else _expires(expires)
    if samesite is not None and samesite.lower() not in _SAMESITE:
        # Starlette asserts; raised explicitly so that `python -O` cannot skip the check
        raise AssertionError("samesite must be either 'strict', 'lax' or 'none'")
    parts = [f"{key}={quote_value(str(value))}"]
    # alphabetical by attribute name, as SimpleCookie prints them
    if domain is not None and domain != "":
        parts.append(_attribute("Domain", domain))
    if expires_text is not None:
        parts.append(_attribute("expires", expires_text))
    if httponly:
        parts.append("HttpOnly")
    if max_age is not None and max_age != "":
        # an int is printed as one (True as 1); anything else as its str()
        parts.append(_attribute("Max-Age", int(max_age) if isinstance(max_age, int) else max_age))
    if partitioned:
        parts.append("Partitioned")
    if path is not None and path != "":
        parts.append(_attribute("Path", path))
    if samesite is not None:
        parts.append(f"SameSite={samesite}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)
