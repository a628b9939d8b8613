"""Reject requests whose Host header is not one of the allowed hosts (Host header attacks).

Patterns are exact hosts ("example.com", "[::1]") or domain wildcards ("*.example.com", which
matches any subdomain but not example.com itself); "*" allows every host. Matching is
case-insensitive and ignores the port. With ``www_redirect``, a request for "example.com" is
redirected to "www.example.com" when only the latter is allowed.

APPSEC: the Host header is parsed as an RFC 3986 host (see starling._urlparse.parse_host), so
a value carrying "@", "/", spaces or CR/LF is never allowed, and a host name longer than
MAX_HOST_LENGTH is refused before matching. As in Starlette, the port only has to be ASCII
digits: its value does not change which host was asked for, and request.url ignores a port
above 65535 (it falls back to the server address).
"""

from __future__ import annotations

from collections.abc import Sequence

from starling._urlparse import parse_host
from starling.datastructures import URL
from starling.responses import PlainTextResponse, RedirectResponse, Response
from starling.types import ASGIApp, Receive, Scope, Send

ENFORCE_DOMAIN_WILDCARD = "Domain wildcard patterns must be like '*.example.com'."

# RFC 1035 §2.3.4: a domain name has at most 253 characters (255 octets on the wire); a
# bracketed IPv6 literal is shorter.
MAX_HOST_LENGTH = 253

_HANDLED_SCOPES = frozenset({"http", "websocket"})


def _check_pattern(pattern: str) -> None:
    # AssertionError as in Starlette, but raised, so that it holds under ``python -O`` too.
    if "*" in pattern[1:]:
        raise AssertionError(ENFORCE_DOMAIN_WILDCARD)
    if pattern.startswith("*") and pattern != "*" and not pattern.startswith("*."):
        raise AssertionError(ENFORCE_DOMAIN_WILDCARD)


class TrustedHostMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        allowed_hosts: Sequence[str] | None = None,
        www_redirect: bool = True,
    ) -> None:
        if allowed_hosts is None:
            allowed_hosts = ["*"]
        for pattern in allowed_hosts:
            _check_pattern(pattern)
        self.app = app
        self.allowed_hosts = [pattern.lower() for pattern in allowed_hosts]
        self.allow_any = "*" in self.allowed_hosts
        self.www_redirect = www_redirect
        # An IPv6 address must be allowed in its Host form, "[::1]" (as in Starlette).
        self._exact = frozenset(
            pattern for pattern in self.allowed_hosts if not pattern.startswith("*")
        )
        # "*.example.com" -> ".example.com": a suffix match, so never the bare domain.
        self._suffixes = tuple(
            pattern[1:] for pattern in self.allowed_hosts if pattern.startswith("*.")
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allow_any or scope["type"] not in _HANDLED_SCOPES:
            await self.app(scope, receive, send)
            return
        host = _request_host(scope)
        if host is not None and self._is_allowed(host):
            await self.app(scope, receive, send)
            return
        response: Response
        if host is not None and self.www_redirect and self._redirects_to_www(host):
            url = URL(scope=scope)
            # The netloc is the validated Host header, so only "www." changes; or the server
            # address when the port is out of range (as Starlette): never a client's choice.
            www_url = url.replace(netloc="www." + url.netloc)
            response = RedirectResponse(str(www_url), status_code=307)
        else:
            response = PlainTextResponse("Invalid host header", status_code=400)
        await response(scope, receive, send)

    def _is_allowed(self, host: str) -> bool:
        return host in self._exact or (bool(self._suffixes) and host.endswith(self._suffixes))

    def _redirects_to_www(self, host: str) -> bool:
        # Only to a host the app allows by name, so never somewhere a client chose.
        return not host.startswith("[") and "www." + host in self._exact


def _request_host(scope: Scope) -> str | None:
    """The first Host header's host in lower case, without the port; None when invalid."""
    for key, value in scope["headers"]:
        if key == b"host":
            return _host_of(value.decode("latin-1"))
    return None


def _host_of(value: str) -> str | None:
    host, colon, port = value.rpartition(":")
    if colon and port.isascii() and port.isdigit():
        # Any run of digits, as Starlette: "h:65536" still names host "h".
        value = host
    parsed = parse_host(value)
    if parsed is None or parsed[1] is not None or len(parsed[0]) > MAX_HOST_LENGTH:
        return None
    return parsed[0].lower()
