"""Header names and values an application sets, encoded and checked (RFC 9110).

A name must be a token; a value may hold no control character but HTAB. APPSEC: a CR or LF in
either would let a value add headers of its own (response splitting), so both are refused
with a ValueError where the application sets them: a response's ``headers=`` argument, and
``MutableHeaders`` (``response.headers[...]``, middleware editing a scope's headers).
"""

from __future__ import annotations

import re

# RFC 9110 §5.1 field-name = token (names are lower-cased before the check).
_is_header_name = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+").fullmatch
# RFC 9110 §5.5 field-value: no control characters but HTAB.
_find_control_char = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]").search


def header_name(key: str) -> bytes:
    """``key`` lower-cased and latin-1 encoded; ValueError unless it is a token."""
    name = key.lower().encode("latin-1")
    # PERF: most names are letters, digits and dashes; the regex checks the rest
    if not (name.replace(b"-", b"").isalnum() or _is_header_name(name)):
        raise ValueError(f"Invalid HTTP header name {key!r}")
    return name


def header_value(value: str) -> bytes:
    """``value`` latin-1 encoded; ValueError if it holds a control character other than tab."""
    encoded = value.encode("latin-1")
    # PERF: str.isprintable() is a C fast path; it is False for tab and for non-ASCII spaces,
    # which are valid, so the regex has the last word
    if not value.isprintable() and _find_control_char(encoded):
        raise ValueError(f"Invalid HTTP header value {value!r}: control characters are not allowed")
    return encoded
