"""Sans-IO parsers for the proxy headers: RFC 7239 ``Forwarded``, ``X-Forwarded-*`` lists, and
the nodes (client and proxy addresses) they name. Text in, values out, no I/O.

RFC 7239 §4::

    Forwarded         = 1#forwarded-element
    forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )
    forwarded-pair    = token "=" value
    value             = token / quoted-string

and §6::

    node     = nodename [ ":" node-port ]
    nodename = IPv4address / "[" IPv6address "]" / "unknown" / obfnode
    obfnode  = "_" 1*( ALPHA / DIGIT / "." / "_" / "-" )
    node-port = port / obfport        (port = 1*5DIGIT, obfport like obfnode)

Where starling is more lenient than the grammar, and why:

- OWS (space, tab) is accepted around ``;`` and ``,``. Proxies and hand-written configurations
  emit ``for=1.2.3.4; proto=https``; the whitespace cannot change what a pair means.
- Empty list elements (``for=a,,for=b``) are skipped, as RFC 9110 §5.6.1 asks of recipients.
- Parameters other than for/by/proto/host are checked for syntax and otherwise ignored.
- ``X-Forwarded-For`` entries may also be a bare IPv6 address (``::1``), as proxies write them.

Where it is strict, and why (APPSEC): a ``Forwarded`` header with any syntax error, or with one
of for/by/proto/host twice in one element, is malformed as a whole (``None``). A proxy appends
its element to what the client sent, so a client's unterminated quoted-string could otherwise
swallow the proxy's element and put client text where the proxy's should be.

Bounds: the work is linear in the header's length (one forward scan, no backtracking: the
quoted-string pattern is written unrolled), and only the right-most ``MAX_HOPS`` elements are
kept; the caller learns whether any were dropped. Nothing here raises on any input.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections import deque

# The right-most hops kept from a chain. Real deployments have a handful of proxies; a chain
# longer than this whose kept hops are all trusted is ignored (its client cannot be known).
MAX_HOPS = 64

# A node longer than this is not one: "[" + 45-character IPv6 + "]:" + port is 53; obfuscated
# identifiers get some room. Checked first, so a huge entry costs nothing to refuse.
MAX_NODE_LENGTH = 100

# The Forwarded parameters starling reads; others are syntax-checked and dropped.
KNOWN_PARAMETERS = frozenset({"for", "by", "proto", "host"})

# RFC 9110 §5.6.2 token.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# RFC 9110 §5.6.4 quoted-string, unrolled ("normal* (special normal*)*") so that the regex
# engine never has two ways to match the same text: linear on any input.
_QDTEXT = r"[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]"
_QUOTED_PAIR = r"\\[\t \x21-\x7e\x80-\xff]"
_QUOTED = rf'"{_QDTEXT}*(?:{_QUOTED_PAIR}{_QDTEXT}*)*"'
_PAIR = re.compile(rf"({_TOKEN})=({_TOKEN}|{_QUOTED})")
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)

_OBF = r"_[A-Za-z0-9._\-]+"
# RFC 3986 §3.2.2 dec-octet: no leading zeros (read as octal by some parsers), at most 255.
# PERF: a valid match is already the address's canonical text, with no ipaddress object made
# (measured: ~4 µs less per hop than IPv4Address).
_DEC_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = rf"{_DEC_OCTET}(?:\.{_DEC_OCTET}){{3}}"
_NODE = re.compile(
    rf"(?:(?P<v4>{IPV4})|\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<unknown>(?i:unknown))|(?P<obf>{_OBF}))"
    rf"(?::(?P<port>[0-9]{{1,5}})|:{_OBF})?"
)
# An X-Forwarded-For entry may be a bare IPv6 address (it has no room for a port).
_BARE_IPV6 = re.compile(r"[0-9A-Fa-f:.]+")

Node = tuple[str, int | None]


def parse_forwarded(value: str) -> tuple[list[dict[str, str]], bool] | None:
    """The elements of a ``Forwarded`` header, left to right, and whether none were dropped.

    Each element maps the lower-cased names of the parameters in KNOWN_PARAMETERS to their
    unquoted values; only the right-most MAX_HOPS elements are kept. ``None`` when malformed.
    """
    kept: deque[dict[str, str]] = deque(maxlen=MAX_HOPS)
    count = 0
    element: dict[str, str] = {}
    has_pair = False
    after_pair = False
    position = 0
    end = len(value)
    while True:
        while position < end and value[position] in " \t":
            position += 1
        if position == end or value[position] == ",":
            if has_pair:
                kept.append(element)
                count += 1
            if position == end:
                return list(kept), count == len(kept)
            element, has_pair, after_pair = {}, False, False
            position += 1
        elif value[position] == ";":
            after_pair = False
            position += 1
        elif after_pair:
            return None  # two pairs with no ";" between them
        else:
            match = _PAIR.match(value, position)
            if match is None:
                return None
            name = match[1].lower()
            if name in KNOWN_PARAMETERS:
                if name in element:
                    return None  # RFC 7239 §4: at most once per element
                element[name] = _unquote(match[2])
            has_pair = after_pair = True
            position = match.end()


def _unquote(value: str) -> str:
    if value[0] != '"':
        return value
    inner = value[1:-1]
    return _UNESCAPE.sub(r"\1", inner) if "\\" in inner else inner


def parse_node(value: str) -> Node | None:
    """A ``Forwarded`` for/by node as (host, port): an IP address in its canonical form,
    ``"unknown"`` or an obfuscated identifier, and the port (``None`` when absent or obfuscated).
    ``None`` when the value is not a node.
    """
    if ":" not in value and canonical_ipv4(value) is not None:
        return value, None  # PERF: the usual node, a bare IPv4 address, without the regex
    match = _NODE.fullmatch(value) if len(value) <= MAX_NODE_LENGTH else None
    if match is None:
        return None
    host: str
    if match["v4"] is not None:
        host = match["v4"]
    elif match["v6"] is not None:
        try:
            host = str(ipaddress.IPv6Address(match["v6"]))
        except ValueError:
            return None
    elif match["unknown"] is not None:
        host = "unknown"
    else:
        host = match["obf"]
    port = match["port"]
    if port is None:
        return host, None
    number = int(port)
    return (host, number) if number <= 65535 else None


def canonical_ipv4(text: str) -> int | None:
    """The value of an IPv4 address written in its one canonical form (four decimal octets,
    no leading zeros), else None. PERF: two C calls, where ipaddress takes ~4 µs."""
    try:
        packed = socket.inet_pton(socket.AF_INET, text)
    except (OSError, UnicodeEncodeError, ValueError):
        return None
    # Platforms differ on leading zeros and the like: only the canonical spelling counts.
    return int.from_bytes(packed) if socket.inet_ntoa(packed) == text else None


def parse_x_forwarded_for_entry(value: str) -> Node | None:
    """One ``X-Forwarded-For`` entry: a node as in ``Forwarded``, or a bare IPv6 address."""
    if len(value) > MAX_NODE_LENGTH:
        return None
    if value.count(":") > 1 and _BARE_IPV6.fullmatch(value) is not None:
        try:
            return str(ipaddress.IPv6Address(value)), None
        except ValueError:
            return None
    return parse_node(value)


def split_list(value: str) -> tuple[list[str], bool]:
    """The right-most MAX_HOPS entries of a comma-separated header, left to right, OWS
    stripped and empty entries skipped, and whether none were dropped.

    PERF: ``rsplit`` with a limit scans from the right and stops, so a long forged prefix
    costs one slice, not a split into thousands of pieces.
    """
    pieces = value.rsplit(",", MAX_HOPS)
    complete = len(pieces) <= MAX_HOPS
    if not complete:
        del pieces[0]
    return [entry for piece in pieces if (entry := piece.strip(" \t"))], complete
