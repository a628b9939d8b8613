"""A path parameter's value, made safe to put in a built path: no value restructures the URL.

``url_path_for``/``url_for`` put each value (its convertor's ``to_string``) in the route's
path. A value must come back unchanged when the server decodes the path and routes it, and
must never add a query, a fragment, a path segment or a host. So, in every value:

- ``?`` ``#`` (a query or fragment would start), ``%`` (the server would decode what follows:
  ``%2F`` becomes a separator), ``\\`` (browsers read it as ``/``), ASCII controls and DEL (URL
  parsers drop tab, CR and LF wherever they are, WHATWG) are percent-encoded; the server
  decodes each back to the character it was;
- ``/`` is kept only where the convertor's regex matches the value (``path``), since ``%2F``
  would be decoded to a ``/`` the route does not match: elsewhere it is refused;
- a segment ``.`` or ``..`` is refused: clients resolve it away ("/files/a/../b" is requested
  as "/files/b"), and its percent-encoded forms are resolved too (WHATWG), so no encoding can
  keep it.

Everything else (space, ``{``, ``}``, non-ASCII text...) is left as it is, as in Starlette:
clients encode it, servers decode it back. A Host route's parameters must write a plain host
name (check_host_values). See docs/compatibility.md ("URL building").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from starling.convertors import Convertor

# APPSEC: the characters above, each to its %XX escape.
_ESCAPED = "%?#\\\x7f" + "".join(chr(code) for code in range(0x20))
_ESCAPES = {char: f"%{ord(char):02X}" for char in _ESCAPED}
_TO_ESCAPE = re.compile(r"[%?#\\\x00-\x1f\x7f]")
_DOT_SEGMENT = re.compile(r"(?:^|/)\.\.?(?:/|$)")
# The path convertor's regex: it matches every value, "/" or not.
_ANYTHING = ".*"
# RFC 3986 reg-name without pct-encoded: what a host parameter may write.
_HOST_VALUE = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=]+")


class UnsafePathValue(ValueError):
    """A value that no encoding can put in a URL without changing what the URL means."""


def _refused(name: str, value: str, reason: str) -> UnsafePathValue:
    return UnsafePathValue(f"Cannot build a URL with path parameter {name}={value!r}: {reason}")


def path_value(name: str, value: str, regex: str) -> str:
    """``value`` (a convertor's ``to_string`` output, for a convertor matching ``regex``) as
    it is written in a built path. Raises UnsafePathValue when no way of writing it is safe."""
    # PERF: each check scans only for its own character first (a "path" value has "/" in it
    # and needs no regex for that; most values need no escape at all).
    if "/" in value and regex != _ANYTHING and re.fullmatch(regex, value) is None:
        raise _refused(
            name,
            value,
            'its convertor does not match "/", so the value would not route back to the '
            'same route. Use a "path" convertor for values with "/" in them.',
        )
    if "." in value and _DOT_SEGMENT.search(value) is not None:
        raise _refused(
            name,
            value,
            'a "." or ".." segment is resolved away by clients, so the link would lead '
            "elsewhere. Reject or rewrite such values before building the URL.",
        )
    if _TO_ESCAPE.search(value) is None:
        return value
    return _TO_ESCAPE.sub(_escape, value)


def _escape(match: re.Match[str]) -> str:
    return _ESCAPES[match.group()]


def check_host_values(convertors: Mapping[str, Convertor[Any]], params: Mapping[str, Any]) -> None:
    """Refuse a Host route's parameter that would not write a plain host name (a value with
    "@", ":", "/", "[" or any other character that could move the URL's authority)."""
    for name, convertor in convertors.items():
        if name in params:
            value = convertor.to_string(params[name])
            if _HOST_VALUE.fullmatch(value) is None:
                raise UnsafePathValue(
                    f"Cannot build a URL with host parameter {name}={value!r}: it would not be "
                    "part of a valid host name (RFC 3986 reg-name), and could move the URL's "
                    "authority. Use only letters, digits, '-' and '.' in host parameters."
                )
