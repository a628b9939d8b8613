"""URL pieces from an ASGI scope, validated: the Host header, the path and the query string.

The authority of ``request.url`` comes from a validated Host header or the server address, and
never from the path: the URL is assembled from components, not by concatenating strings and
parsing the result again (CVE-2026-54282, where a scope path of ``@evil.com`` moved the
authority so that ``url.hostname`` became ``evil.com``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import quote

from starling._percent import unquote_text

# A request with more query pairs than this is read up to the limit; the rest are ignored.
# Far above what a real URL carries (servers cap the request line at a few tens of kB).
MAX_QUERY_PARAMS = 10_000

# A Host port written with more digits than this is malformed. Leading zeros are allowed, as
# in Starlette ("h:0080"), but a port of thousands of digits would make int() raise, in
# parse_host and again in url.port.
MAX_PORT_DIGITS = 16

# Default ports per scheme; a server port equal to the default is left out of the netloc.
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

# RFC 3986 §3.2.2 reg-name: unreserved / pct-encoded / sub-delims. Starlette accepts a lone
# "%" too (it does not check pct-encoding), so do we: "%" cannot move the authority.
_REG_NAME = r"[A-Za-z0-9\-._~!$&'()*+,;=%]+"
# RFC 3986 §3.2.2 IPvFuture: "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ).
_IPV_FUTURE = r"v[0-9A-Fa-f]++\.[A-Za-z0-9\-._~!$&'()*+,;=:]++"
# PERF: possessive quantifiers: a hostile "[::::..." fails in one pass, without backtracking.
_HOST_RE = re.compile(
    rf"(?P<host>{_REG_NAME}+|\[(?P<ip6>[0-9A-Fa-f:.]++|{_IPV_FUTURE})\])(?::(?P<port>[0-9]++))?"
)
# What a host taken from the server tuple may keep; anything else is percent-encoded, so that
# it cannot move the port, path, query, fragment or userinfo boundary.
_HOST_SAFE = "!$&'()*+,;=-._~%"
_REG_NAME_RE = re.compile(_REG_NAME)
# An IPv6 address as servers report it, with an optional RFC 6874 zone ID.
_IPV6_RE = re.compile(r"[0-9A-Fa-f:.]+(?:%[A-Za-z0-9\-._~]+)?")
# In a path "?" and "#" would start the query or fragment, and "\\" be read as "/" by browsers;
# tab, CR and LF are dropped (below). PERF: one scan to skip both on the usual path and query.
_PATH_SPECIAL = re.compile(r"[?#\\\t\r\n]")
_QUERY_SPECIAL = re.compile(r"[#\t\r\n]")
# Bytes 0x80-0xFF, read as latin-1, percent-encoded as quote() writes them.
_PERCENT_ENCODE_HIGH = {code: f"%{code:02X}" for code in range(0x80, 0x100)}


def _strip(text: str) -> str:
    """Drop tab, CR and LF, as urlsplit drops them from anywhere in a URL (WHATWG): the scope
    path and query are read the same way, so request.url.path matches str(request.url) parsed.

    PERF: str.replace runs in C at memchr speed whatever the count; translate() with a table
    leaves its ASCII fast path and takes a dict look-up per character.
    """
    return text.replace("\t", "").replace("\r", "").replace("\n", "")


def parse_host(value: str) -> tuple[str, int | None] | None:
    """Split a Host header into (host, port), or None when it is not a valid RFC 3986 host.

    IPv6 hosts keep their brackets. The port must be at most 65535; leading zeros are allowed.
    """
    match = _HOST_RE.fullmatch(value)
    if match is None:
        return None
    ip6 = match["ip6"]
    if ip6 is not None and ip6[0] != "v":
        try:
            ipaddress.IPv6Address(ip6)
        except ValueError:
            return None
    port = match["port"]
    if port is None:
        return match["host"], None
    if len(port) > MAX_PORT_DIGITS:
        return None
    number = int(port)
    if number > 65535:
        return None
    return match["host"], number


def host_header(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The first ``host`` header when it is a valid host, else None (fall back to the server)."""
    for key, value in headers:
        if key == b"host":
            text = value.decode("latin-1")
            return text if parse_host(text) is not None else None
    return None


def server_netloc(scheme: str, host: str, port: int | None) -> str:
    """The netloc for a server address, leaving out the scheme's default port."""
    if _REG_NAME_RE.fullmatch(host) is None:
        # The server tuple is not client input, but it must not move the authority either.
        host = f"[{host}]" if _is_ipv6(host) else quote(host, safe=_HOST_SAFE)
    if port is None or port == DEFAULT_PORTS.get(scheme):
        return host
    return f"{host}:{port}"


def _is_ipv6(host: str) -> bool:
    """An IPv6 address, optionally with a zone ID made of unreserved characters."""
    if _IPV6_RE.fullmatch(host) is None:
        return False
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def scope_path(path: str, has_netloc: bool) -> str:
    """The path as it appears in a URL: rooted, with "?", "#" and "\\" escaped.

    Without an authority a path starting with "//" would read as one, so its second slash is
    escaped.
    """
    if _PATH_SPECIAL.search(path):
        path = _strip(path).replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
    if path and path[0] != "/":
        path = "/" + path
    if not has_netloc and path.startswith("//"):
        path = "/%2F" + path[2:]
    return path


def scope_query(query_string: bytes) -> str:
    """The query string as text: UTF-8 as sent, with bytes that are not UTF-8 percent-encoded.

    A "#" would start a fragment, so it is escaped too.
    """
    try:
        query = query_string.decode("utf-8")
    except UnicodeDecodeError:
        # quote(query_string, safe=bytes(range(0x80))), in C (PERF: quote() takes a Python
        # step per byte)
        query = query_string.decode("latin-1").translate(_PERCENT_ENCODE_HIGH)
    if _QUERY_SPECIAL.search(query):
        query = _strip(query).replace("#", "%23")
    return query


def parse_query(query: str) -> list[tuple[str, str]]:
    """``parse_qsl(query, keep_blank_values=True)``, reading at most MAX_QUERY_PARAMS fields.

    Lenient like the stdlib: malformed percent-escapes are kept or replaced, never an error.
    PERF: about twice as fast as parse_qsl, which checks its options on every call; escapes
    are decoded in C (starling._percent), so a query of ``%`` signs costs what any query does.
    """
    pairs = []
    for field in query.split("&", MAX_QUERY_PARAMS)[:MAX_QUERY_PARAMS]:
        if not field:
            continue
        name, _, value = field.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = unquote_text(name)
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = unquote_text(value)
        pairs.append((name, value))
    return pairs
