"""Cross-Origin Resource Sharing: preflight answers and CORS headers on simple responses.

Everything that depends only on the configuration (the allowed header list, the preflight and
simple response headers) is built once in ``__init__``; a request only looks up its Origin and,
for a preflight, its Access-Control-Request-* headers.

APPSEC: an Origin is only ever echoed back when it is a plausible serialized origin (visible
ASCII, no whitespace, at most MAX_ORIGIN_LENGTH characters), and requested headers are only
echoed when they are header names; Starlette echoes whatever the client sent.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence

from starling.datastructures import Headers, MutableHeaders
from starling.responses import PlainTextResponse, Response
from starling.types import ASGIApp, Message, Receive, Scope, Send

ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY")
SAFELISTED_HEADERS = {"Accept", "Accept-Language", "Content-Language", "Content-Type"}

# An origin longer than this is never allowed: a real one is a scheme, a host of at most 253
# characters and a port; the bound also caps the input of a user's allow_origin_regex.
MAX_ORIGIN_LENGTH = 2048
# A preflight asking for more headers than this is refused: a browser lists the non-safelisted
# headers of one request, a handful.
MAX_REQUESTED_HEADERS = 256
# RFC 6454 §6.2 serialized origin, read loosely: visible ASCII only. CR, LF, spaces and
# non-ASCII can never be part of one, and must never be echoed into a response header.
_ORIGIN_CHARS_RE = re.compile(r"[!-~]+")
# RFC 9110 §5.6.1/§5.6.2: a comma-separated list of header-name tokens with optional spaces.
_HEADER_LIST_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z, \t]*")

_VARY_PREFLIGHT = (
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
    "Access-Control-Request-Private-Network"
)


class CORSMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        allow_origins: Sequence[str] = (),
        allow_methods: Sequence[str] = ("GET",),
        allow_headers: Sequence[str] = (),
        allow_credentials: bool = False,
        allow_origin_regex: str | None = None,
        allow_private_network: bool = False,
        expose_headers: Sequence[str] = (),
        max_age: int = 600,
    ) -> None:
        if "*" in allow_methods:
            allow_methods = ALL_METHODS
        allow_all_origins = "*" in allow_origins
        allow_all_headers = "*" in allow_headers
        # Sorted like Starlette: the safelisted headers are always allowed.
        header_names = sorted(SAFELISTED_HEADERS | set(allow_headers))

        self.app = app
        self.allow_origins = allow_origins
        self.allow_methods = allow_methods
        self.allow_headers = [name.lower() for name in header_names]
        self.allow_all_origins = allow_all_origins
        self.allow_all_headers = allow_all_headers
        self.allow_credentials = allow_credentials
        # With credentials a browser refuses "*": the request's origin must be echoed.
        self.preflight_explicit_allow_origin = not allow_all_origins or allow_credentials
        self.allow_origin_regex = (
            None if allow_origin_regex is None else re.compile(allow_origin_regex)
        )
        self.allow_private_network = allow_private_network
        self.simple_headers = _simple_headers(allow_all_origins, allow_credentials, expose_headers)
        self.preflight_headers = _preflight_headers(
            allow_all_origins,
            self.preflight_explicit_allow_origin,
            allow_methods,
            max_age,
            None if allow_all_headers else header_names,
            allow_credentials,
        )
        self._simple_raw = {
            name.lower().encode("latin-1"): value.encode("latin-1")
            for name, value in self.simple_headers.items()
        }
        self._allowed_origins = frozenset(self.allow_origins)
        self._allowed_header_set = frozenset(self.allow_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if (
            scope["method"] == "OPTIONS"
            and "access-control-request-method" in headers
            and "origin" in headers
        ):
            response = self.preflight_response(request_headers=headers)
            await response(scope, receive, send)
            return
        await self.simple_response(scope, receive, send, request_headers=headers)

    def is_allowed_origin(self, origin: str) -> bool:
        if len(origin) > MAX_ORIGIN_LENGTH or _ORIGIN_CHARS_RE.fullmatch(origin) is None:
            return False
        if self.allow_all_origins:
            return True
        if self.allow_origin_regex is not None and self.allow_origin_regex.fullmatch(origin):
            return True
        return origin in self._allowed_origins

    def preflight_response(self, request_headers: Headers) -> Response:
        origin = request_headers["origin"]
        requested_method = request_headers["access-control-request-method"]
        requested_headers = request_headers.get("access-control-request-headers")
        headers = dict(self.preflight_headers)
        failures = []

        if self.is_allowed_origin(origin=origin):
            if self.preflight_explicit_allow_origin:
                headers["Access-Control-Allow-Origin"] = origin
        else:
            failures.append("origin")
        if requested_method not in self.allow_methods:
            failures.append("method")
        if requested_headers is not None:
            if not self._headers_allowed(requested_headers):
                failures.append("headers")
            elif self.allow_all_headers:
                headers["Access-Control-Allow-Headers"] = requested_headers
        if "access-control-request-private-network" in request_headers:
            if self.allow_private_network:
                headers["Access-Control-Allow-Private-Network"] = "true"
            else:
                failures.append("private-network")

        if failures:
            return PlainTextResponse(
                "Disallowed CORS " + ", ".join(failures), status_code=400, headers=headers
            )
        return PlainTextResponse("OK", status_code=200, headers=headers)

    def _headers_allowed(self, requested_headers: str) -> bool:
        if self.allow_all_headers:
            # Echoed back as sent, so it must be a list of header names and nothing else.
            return _HEADER_LIST_RE.fullmatch(requested_headers) is not None
        # Every listed name must be allowed; an empty item (",,") is not a header name.
        names = requested_headers.lower().split(",", MAX_REQUESTED_HEADERS)
        if len(names) > MAX_REQUESTED_HEADERS:
            return False
        allowed = self._allowed_header_set
        return all(name.strip() in allowed for name in names)

    async def simple_response(
        self, scope: Scope, receive: Receive, send: Send, request_headers: Headers
    ) -> None:
        send = functools.partial(self.send, send=send, request_headers=request_headers)
        await self.app(scope, receive, send)

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        if message["type"] != "http.response.start":
            await send(message)
            return
        origin = request_headers.get("origin")
        updates = self._simple_raw
        if origin is None:
            updates = {}
        elif self.preflight_explicit_allow_origin and self.is_allowed_origin(origin):
            # What allow_explicit_origin does, without a MutableHeaders per response.
            updates = {**updates, b"access-control-allow-origin": origin.encode("latin-1")}
        # A new list: an app may send the same header list every time (a cached Response).
        message["headers"] = _merge_headers(message.get("headers", ()), updates)
        await send(message)

    @staticmethod
    def allow_explicit_origin(headers: MutableHeaders, origin: str) -> None:
        headers["Access-Control-Allow-Origin"] = origin
        headers.add_vary_header("Origin")


def _merge_headers(
    raw: Iterable[tuple[bytes, bytes]], updates: dict[bytes, bytes]
) -> list[tuple[bytes, bytes]]:
    """``raw`` with each header of ``updates`` set and "Origin" added to Vary, in one pass.

    The same result as MutableHeaders: ``update(updates)`` then ``add_vary_header("Origin")``.
    A set header takes the place of its first occurrence (later ones are dropped) or goes at the
    end; Vary gathers every existing value at the place of the first one.
    """
    headers: list[tuple[bytes, bytes]] = []
    pending = dict(updates)
    varies: list[bytes] = []
    vary_index = -1
    for item in raw:
        key = item[0]
        if key in updates:
            if key in pending:
                headers.append((key, pending.pop(key)))
        elif key == b"vary":
            if vary_index < 0:
                vary_index = len(headers)
                headers.append(item)
            varies.append(item[1])
        else:
            headers.append(item)
    headers.extend(pending.items())
    varies.append(b"Origin")
    vary = (b"vary", b", ".join(varies))
    if vary_index < 0:
        headers.append(vary)
    else:
        headers[vary_index] = vary
    return headers


def _simple_headers(
    allow_all_origins: bool, allow_credentials: bool, expose_headers: Sequence[str]
) -> dict[str, str]:
    headers = {}
    if allow_all_origins:
        headers["Access-Control-Allow-Origin"] = "*"
    if allow_credentials:
        headers["Access-Control-Allow-Credentials"] = "true"
    if expose_headers:
        headers["Access-Control-Expose-Headers"] = ", ".join(expose_headers)
    return headers


def _preflight_headers(
    allow_all_origins: bool,
    explicit_allow_origin: bool,
    allow_methods: Sequence[str],
    max_age: int,
    header_names: list[str] | None,
    allow_credentials: bool,
) -> dict[str, str]:
    headers = {"Vary": _VARY_PREFLIGHT}
    if allow_all_origins and not explicit_allow_origin:
        headers["Access-Control-Allow-Origin"] = "*"
    headers["Access-Control-Allow-Methods"] = ", ".join(allow_methods)
    headers["Access-Control-Max-Age"] = str(max_age)
    if header_names is not None:
        headers["Access-Control-Allow-Headers"] = ", ".join(header_names)
    if allow_credentials:
        headers["Access-Control-Allow-Credentials"] = "true"
    return headers
