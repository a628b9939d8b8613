"""Read the client address, scheme, host and path prefix that a trusted reverse proxy forwards.

Behind a proxy the ASGI server sees the proxy's connection: its address, plain http, an internal
host name. ``ProxyHeadersMiddleware`` puts back what the client used, taken from RFC 7239
``Forwarded`` or from ``X-Forwarded-For``/``-Proto``/``-Host``/``-Port``/``-Prefix``, so that
``request.client``, ``request.url``, ``url_for`` and ``HTTPSRedirectMiddleware`` are right.

APPSEC:

- Only a request whose peer (``scope["client"]``) is a trusted host is read; from anyone else
  the headers are ignored, since any client can send them.
- The client is the right-most untrusted hop: every proxy appends the address it received the
  request from, so the hops left of the first untrusted one (counting from the right) may be
  forged by the client and are never used.
- One family of headers is read per request. ``"auto"`` reads ``X-Forwarded-*`` when any is
  present and ``Forwarded`` otherwise: the common proxies (nginx, HAProxy by default, Traefik,
  Caddy, cloud load balancers) write ``X-Forwarded-*`` and pass a client's ``Forwarded``
  through untouched, so preferring ``Forwarded`` would let a client choose its own address.
- Malformed or hostile values are ignored, never an error: a broken chain changes nothing, a
  host must be a valid RFC 3986 host (no userinfo, path or spaces), a scheme one of
  http/https/ws/wss, a prefix a clean absolute path (no ``..``, no ``//`` start). The scope
  given to the app is a copy; the server's is never edited.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Literal
from urllib.parse import unquote

from starling._forwarded import (
    Node,
    canonical_ipv4,
    parse_forwarded,
    parse_node,
    parse_x_forwarded_for_entry,
    split_list,
)
from starling._urlparse import DEFAULT_PORTS as _DEFAULT_PORTS
from starling._urlparse import parse_host
from starling.types import ASGIApp, Receive, Scope, Send

ProxyHeaders = Literal["auto", "forwarded", "x-forwarded"]

# RFC 1035 §2.3.4: a host name has at most 253 characters.
MAX_HOST_LENGTH = 253
# A forwarded path prefix longer than this is ignored (a mount point, not a URL).
MAX_PREFIX_LENGTH = 1024

_HANDLED_SCOPES = frozenset({"http", "websocket"})
_PROXY_HEADERS = ("auto", "forwarded", "x-forwarded")
_X_FORWARDED = frozenset(
    {
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-forwarded-prefix",
    }
)
# The scheme a forwarded protocol gives, per scope type: a proxy in front of a WebSocket
# usually says "https", which for that scope means "wss".
_SCHEMES = {
    "http": {"http": "http", "https": "https", "ws": "http", "wss": "https"},
    "websocket": {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"},
}
# RFC 3986 path segments (pchar), at least one character each; "%" escapes are decoded later.
_PREFIX = re.compile(r"(?:/[A-Za-z0-9\-._~!$&'()*+;=:@%]+)+/?")
# In a decoded prefix these would end the path, start a query, or read as "/" in browsers.
_PREFIX_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f?#\\]")
_PORT = re.compile(r"[0-9]{1,5}")
_MISSING = ("", None)  # a Forwarded element without a "for" parameter


class ProxyHeadersMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        trusted_hosts: str | Iterable[str] = ("127.0.0.1", "::1"),
        *,
        proxy_headers: ProxyHeaders = "auto",
    ) -> None:
        if proxy_headers not in _PROXY_HEADERS:
            raise ValueError(
                f"proxy_headers must be one of {', '.join(map(repr, _PROXY_HEADERS))}, "
                f"not {proxy_headers!r}."
            )
        self.app = app
        self.proxy_headers = proxy_headers
        if isinstance(trusted_hosts, str):
            trusted_hosts = trusted_hosts.split(",")
        entries = [entry.strip() for entry in trusted_hosts]
        self.trust_all = "*" in entries
        networks = [_network(entry) for entry in entries if entry != "*"]
        # PERF: a peer equal to a trusted address is found by one set lookup, without parsing.
        self._addresses = frozenset(
            str(network.network_address) for network in networks if network.num_addresses == 1
        )
        wide = [network for network in networks if network.num_addresses > 1]
        # PERF: IPv4 networks as (address, mask) integers, matched without an ipaddress object.
        self._v4_networks = tuple(
            (int(network.network_address), int(network.netmask))
            for network in wide
            if network.version == 4
        )
        self._v6_networks = tuple(network for network in wide if network.version == 6)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in _HANDLED_SCOPES:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        if self.trust_all or (client is not None and self._trusts(client[0])):
            scope = self._forwarded_scope(scope)
        await self.app(scope, receive, send)

    def _trusts(self, host: str) -> bool:
        if self.trust_all or host in self._addresses:
            return True
        if ":" not in host:
            value = canonical_ipv4(host) if self._v4_networks else None
            if value is None:
                return False
            return any(value & mask == network for network, mask in self._v4_networks)
        if not self._v6_networks:
            return False
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return any(address in network for network in self._v6_networks)

    def _forwarded_scope(self, scope: Scope) -> Scope:
        """The scope as the client sent it, or ``scope`` itself when nothing usable is forwarded."""
        forwarded: list[bytes] = []
        x_forwarded: dict[bytes, list[bytes]] = {}
        for key, value in scope["headers"]:
            if key == b"forwarded":
                forwarded.append(value)
            elif key in _X_FORWARDED:
                x_forwarded.setdefault(key, []).append(value)
        use_x = self.proxy_headers == "x-forwarded" or (
            self.proxy_headers == "auto" and bool(x_forwarded)
        )
        if use_x:
            if x_forwarded:
                return self._apply_x_forwarded(scope, x_forwarded)
        elif forwarded:
            return self._apply_forwarded(scope, _joined(forwarded))
        return scope

    def _apply_forwarded(self, scope: Scope, value: str) -> Scope:
        parsed = parse_forwarded(value)
        if parsed is None:
            return scope
        elements, complete = parsed
        nodes = [
            parse_node(element["for"]) if "for" in element else _MISSING for element in elements
        ]
        hop = self._client_hop(nodes, complete)
        if hop is None:
            return scope
        index, node = hop
        element = elements[index]
        changes = _Changes(scope)
        changes.client(node)
        changes.scheme(element.get("proto"))
        changes.host(element.get("host"), None)
        if "by" in element:
            changes.server(parse_node(element["by"]))
        return changes.result()

    def _apply_x_forwarded(self, scope: Scope, headers: dict[bytes, list[bytes]]) -> Scope:
        changes = _Changes(scope)
        hop = 0  # counted from the right: 0 is the proxy that connected to us
        if b"x-forwarded-for" in headers:
            entries, complete = split_list(_joined(headers[b"x-forwarded-for"]))
            nodes = [parse_x_forwarded_for_entry(entry) for entry in entries]
            client_hop = self._client_hop(nodes, complete)
            if client_hop is None:
                return scope  # APPSEC: a broken chain tells nothing about the other headers
            index, node = client_hop
            hop = len(nodes) - 1 - index
            changes.client(node)
        changes.scheme(_hop_value(headers.get(b"x-forwarded-proto"), hop))
        changes.host(
            _hop_value(headers.get(b"x-forwarded-host"), hop),
            _hop_value(headers.get(b"x-forwarded-port"), hop),
        )
        changes.prefix(_hop_value(headers.get(b"x-forwarded-prefix"), hop))
        return changes.result()

    def _client_hop(self, nodes: Sequence[Node | None], complete: bool) -> tuple[int, Node] | None:
        """The right-most untrusted hop and its index; ``None`` when the chain is unusable."""
        node: Node | None = None
        for index in range(len(nodes) - 1, -1, -1):
            node = nodes[index]
            if node is None:
                return None  # malformed where a trusted proxy wrote: the chain is broken
            if node is _MISSING or not self._trusts(node[0]):
                return index, node
        # Every hop is trusted: the left-most is the client, if it is the real left end.
        return (0, node) if complete and node is not None else None


class _Changes:
    """The scope keys a forwarded request changes, applied to a copy of the scope at the end."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.updates: dict[str, object] = {}
        self.new_scheme: str = scope.get("scheme") or (
            "ws" if scope["type"] == "websocket" else "http"
        )
        self.netloc: str | None = None

    def client(self, node: Node) -> None:
        host, port = node
        if host:  # a Forwarded element without "for" keeps the peer
            self.updates["client"] = (host, port or 0)

    def scheme(self, proto: str | None) -> None:
        scheme = _SCHEMES[self.scope["type"]].get(proto.lower()) if proto else None
        if scheme is not None:
            self.new_scheme = self.updates["scheme"] = scheme

    def host(self, host: str | None, port: str | None) -> None:
        """A forwarded host and/or port; the port alone applies to the request's own Host."""
        if host is not None:
            parsed = parse_host(host)
            if parsed is None or len(parsed[0]) > MAX_HOST_LENGTH:
                return  # APPSEC: never a host with userinfo, a path or spaces
        elif port is not None:
            parsed = _current_host(self.scope)
            if parsed is None:
                return
        else:
            return
        name, number = parsed
        if port is not None and _PORT.fullmatch(port) is not None and int(port) <= 65535:
            number = int(port)
        elif host is None:
            return  # only a port was forwarded, and it is not one
        if number is None or number == _DEFAULT_PORTS.get(self.new_scheme):
            self.netloc = name
        else:
            self.netloc = f"{name}:{number}"

    def server(self, node: Node | None) -> None:
        if node is not None and (":" in node[0] or node[0][0].isdigit()):
            port = node[1] if node[1] is not None else _DEFAULT_PORTS[self.new_scheme]
            self.updates["server"] = (node[0], port)

    def prefix(self, value: str | None) -> None:
        if value is None:
            return
        prefix = _valid_prefix(value)
        if prefix is None:
            return
        scope = self.scope
        self.updates["root_path"] = prefix + scope.get("root_path", "")
        self.updates["path"] = prefix + scope["path"]
        raw_path = scope.get("raw_path")
        if raw_path is not None:
            # The prefix as sent: ASCII, since _PREFIX admits nothing else.
            self.updates["raw_path"] = value.rstrip("/").encode("ascii") + raw_path

    def result(self) -> Scope:
        if self.netloc is None and not self.updates:
            return self.scope
        scope = {**self.scope, **self.updates}
        if self.netloc is not None:
            host = (b"host", self.netloc.encode("ascii"))
            headers = [header for header in self.scope["headers"] if header[0] != b"host"]
            scope["headers"] = [host, *headers]
        return scope


def _network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        raise ValueError(
            f"trusted_hosts entry {entry!r} is not an IP address or network: use addresses "
            f"such as '127.0.0.1' or '::1', networks such as '10.0.0.0/8', or '*'."
        ) from None


def _joined(values: list[bytes]) -> str:
    """Several header lines as one comma-separated list (RFC 9110 §5.3)."""
    return b",".join(values).decode("latin-1")


def _hop_value(values: list[bytes] | None, hop: int) -> str | None:
    """The entry of a per-hop list written by the proxy ``hop`` places from the right, or the
    left-most one when the list is shorter (proxies often overwrite rather than append)."""
    if values is None:
        return None
    entries, _ = split_list(_joined(values))
    if not entries:
        return None
    return entries[max(len(entries) - 1 - hop, 0)]


def _current_host(scope: Scope) -> tuple[str, int | None] | None:
    for key, value in scope["headers"]:
        if key == b"host":
            return parse_host(value.decode("latin-1"))
    return None


def _valid_prefix(value: str) -> str | None:
    """The decoded path prefix, without a trailing "/", or None when it is unsafe or empty."""
    if len(value) > MAX_PREFIX_LENGTH or _PREFIX.fullmatch(value) is None:
        return None
    encoded = value.rstrip("/")
    try:
        decoded = unquote(encoded, errors="strict") if "%" in encoded else encoded
    except UnicodeDecodeError:
        return None
    segments = decoded.split("/")
    # APPSEC: "%2F" must not add segments, "%2E%2E" must not climb, controls must not cut.
    if len(segments) != encoded.count("/") + 1 or _PREFIX_FORBIDDEN.search(decoded):
        return None
    if any(segment in (".", "..") for segment in segments[1:]):
        return None
    return decoded
