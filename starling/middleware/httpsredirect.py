"""Redirect every plain http:// and ws:// request to https:// and wss:// on the same host.

APPSEC: the redirect target is assembled from validated components (starling._urlparse): the
host is the request's valid Host header, or the server address when the header is missing or
malformed, and the path always follows that authority, so neither a hostile Host header nor a
path such as "//evil.com" can send the client to another host.
"""

from __future__ import annotations

from starling.datastructures import URL
from starling.responses import PlainTextResponse, RedirectResponse
from starling.types import ASGIApp, Receive, Scope, Send

# The scheme each insecure scheme is redirected to; scopes with any other scheme pass.
_SECURE_SCHEMES = {"http": "https", "ws": "wss"}
# The scheme a scope without one has (ASGI's default for each scope type).
_DEFAULT_SCHEMES = {"http": "http", "websocket": "ws"}
# Ports left out of the redirect: the defaults of http and https (and so of ws and wss).
_DROPPED_PORTS = frozenset({80, 443})


class HTTPSRedirectMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type not in _DEFAULT_SCHEMES:
            await self.app(scope, receive, send)
            return
        secure_scheme = _SECURE_SCHEMES.get(scope.get("scheme", _DEFAULT_SCHEMES[scope_type]))
        if secure_scheme is None:
            await self.app(scope, receive, send)
            return
        _, netloc, path, query, _ = URL(scope=scope).components
        if not netloc:
            # Neither a valid Host header nor a server address: nowhere safe to redirect to.
            response = PlainTextResponse("Invalid host header", status_code=400)
            await response(scope, receive, send)
            return
        url = f"{secure_scheme}://{_without_default_port(netloc)}{path}"
        if query:
            url = f"{url}?{query}"
        await RedirectResponse(url, status_code=307)(scope, receive, send)


def _without_default_port(netloc: str) -> str:
    """The netloc without a ":80" or ":443" port; IPv6 brackets are kept."""
    host, separator, port = netloc.rpartition(":")
    # A validated netloc's port is ASCII digits; "[::1]" has no port ("1]" is not digits).
    if separator and port.isascii() and port.isdigit() and int(port) in _DROPPED_PORTS:
        return host
    return netloc
