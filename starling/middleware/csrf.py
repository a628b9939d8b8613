"""Cross-site request forgery protection: cross-origin refusal plus a signed double-submit token.

Two defences, both on by default, for every request whose method is not safe (GET, HEAD,
OPTIONS and TRACE pass):

1. **Cross-origin refusal**, as Go 1.25's ``http.CrossOriginProtection``: a browser's
   ``Sec-Fetch-Site`` must be ``same-origin`` or ``none``; from a browser that sends no Fetch
   Metadata, an ``Origin`` header must name the request's own host. ``Origin: null`` (sandboxed
   frames, ``file:`` pages, some redirects) is refused. Trusted origins pass.
2. **A signed double-submit token**, for requests without Fetch Metadata (older browsers and
   non-browser clients): the ``csrftoken`` cookie holds a random secret signed with the app's
   secret, and the request must carry a token for that secret in the ``x-csrftoken`` header or
   the ``csrftoken`` form field. ``request.state.csrf_token`` holds a fresh token per request.

APPSEC: the cookie's signature covers a *binding* to the user's session (a random key kept in
``scope["session"]`` once the session holds anything, as set by SessionMiddleware or any
session middleware placed before this one). A cookie and token taken from another session, the
attacker's own included, fail the signature check; the cookie is re-issued whenever the binding
changes (log in, log out). Tokens are masked per response (BREACH) and compared in constant
time. Reading a form to find the token buffers at most ``max_body_size`` bytes, and the
messages read are replayed to the app unchanged, so the endpoint still gets the whole body.
"""

from __future__ import annotations

import base64
import re
from collections import deque
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal

from starling._cookie_header import build_set_cookie
from starling._cookies import parse_cookie_header
from starling._csrf import (
    FormTokenFinder,
    cookie_value,
    derive_key,
    mask,
    new_secret,
    read_cookie,
    token_matches,
)
from starling._urlparse import DEFAULT_PORTS as _DEFAULT_PORTS
from starling._urlparse import parse_host
from starling._utils import get_route_path
from starling.datastructures import Secret
from starling.requests import HTTPConnection
from starling.responses import PlainTextResponse
from starling.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# The session key under which the binding lives (a random, URL-safe string).
SESSION_KEY = "csrf.binding"
# A form body is searched for the token up to this many bytes by default.
MAX_BODY_SIZE = 1024 * 1024
# The cookie lives a year (as Django's), re-issued when the session changes.
COOKIE_MAX_AGE = 365 * 24 * 3600

TokenRequired = Literal["without-fetch-metadata", "always", "never"]
_TOKEN_REQUIRED = ("without-fetch-metadata", "always", "never")
_FETCH_SITE_ALLOWED = frozenset({"same-origin", "none"})
_ORIGIN = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<netloc>[^/?#@\s]+)")
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# Paths an exemption must not be fooled by: dot segments, empty segments, backslashes.
_UNNORMALISED = re.compile(r"(?:^|/)\.\.?(?:/|$)|//|\\")


class CSRFMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        secret: str | bytes | Secret,
        *,
        cookie_name: str = "csrftoken",
        header_name: str = "x-csrftoken",
        field_name: str = "csrftoken",
        trusted_origins: Iterable[str] = (),
        exempt_paths: Iterable[str | re.Pattern[str]] = (),
        token_required: TokenRequired = "without-fetch-metadata",
        bind_to_session: bool = True,
        cookie_path: str = "/",
        cookie_domain: str | None = None,
        cookie_secure: bool | None = None,
        cookie_samesite: Literal["lax", "strict", "none"] = "lax",
        cookie_httponly: bool = False,
        max_body_size: int = MAX_BODY_SIZE,
    ) -> None:
        secret_bytes = secret if isinstance(secret, bytes) else str(secret).encode("utf-8")
        if len(secret_bytes) < 16:
            raise ValueError(
                "CSRFMiddleware needs a secret of at least 16 bytes: generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'` and keep it "
                "out of the source."
            )
        if token_required not in _TOKEN_REQUIRED:
            raise ValueError(
                f"token_required must be one of {', '.join(map(repr, _TOKEN_REQUIRED))}, "
                f"not {token_required!r}."
            )
        if cookie_name.startswith("__Host-") and (
            cookie_secure is False or cookie_domain is not None or cookie_path != "/"
        ):
            raise ValueError(
                "A '__Host-' cookie must be Secure, with Path=/ and no Domain: leave "
                "cookie_secure, cookie_domain and cookie_path at their defaults."
            )
        # The Set-Cookie header is built once per secure flag here, so names and attributes
        # are checked at construction (build_set_cookie refuses bad ones).
        self._cookie_attributes = {
            "max_age": COOKIE_MAX_AGE,
            "path": cookie_path,
            "domain": cookie_domain,
            "httponly": cookie_httponly,
            "samesite": cookie_samesite,
        }
        build_set_cookie(cookie_name, "x", **self._cookie_attributes)  # type: ignore[arg-type]
        if not max_body_size > 0:
            raise ValueError("max_body_size must be a positive number of bytes.")
        self.app = app
        self._key = derive_key(secret_bytes)
        self.cookie_name = cookie_name
        self.header_name = header_name.lower().encode("latin-1")
        self.field_name = field_name
        self.trusted_origins = frozenset(_trusted_origin(origin) for origin in trusted_origins)
        self._exact_exempt: set[str] = set()
        self._prefix_exempt: list[str] = []
        self._pattern_exempt: list[re.Pattern[str]] = []
        for path in exempt_paths:
            if isinstance(path, re.Pattern):
                self._pattern_exempt.append(path)
            elif path.endswith("*"):
                self._prefix_exempt.append(path[:-1])
            else:
                self._exact_exempt.add(path)
        self.token_required = token_required
        self.bind_to_session = bind_to_session
        # None: Secure on https requests only.
        self.cookie_secure = True if cookie_name.startswith("__Host-") else cookie_secure
        self.max_body_size = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = _RequestHeaders(scope["headers"], self.header_name)
        binding = self._binding(scope)
        cookies = parse_cookie_header(request.cookie) if request.cookie else {}
        cookie = cookies.get(self.cookie_name)
        secret = read_cookie(self._key, cookie, binding) if cookie is not None else None
        issue = secret is None
        if secret is None:
            secret = new_secret()
        if scope["method"] not in SAFE_METHODS and not self._is_exempt(scope):
            failure = self._cross_origin_failure(scope, request)
            if failure is None and self._needs_token(request):
                if cookie is None:
                    failure = f"the CSRF cookie {self.cookie_name!r} is missing"
                elif issue:
                    failure = "the CSRF cookie is invalid or belongs to another session"
                else:
                    token = request.token
                    if token is None and request.is_form:
                        token, receive = await self._form_token(request, receive)
                    if token is None:
                        failure = (
                            f"no CSRF token in the {self.header_name.decode()!r} header or the "
                            f"{self.field_name!r} form field"
                        )
                    elif not token_matches(token, secret, cookie):
                        failure = "the CSRF token does not match the cookie"
            if failure is not None:
                response = PlainTextResponse(f"CSRF check failed: {failure}.", status_code=403)
                await response(scope, receive, send)
                return
        # The request's own state dict, as request.state uses (it lives in the scope).
        scope.setdefault("state", {})["csrf_token"] = mask(secret)
        scope["state"]["csrf_field_name"] = self.field_name

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                new_binding = self._binding(scope)
                if new_binding != binding:
                    # APPSEC: a new secret, never the old one re-signed: the old one may have
                    # been planted by an attacker who knows it (cookie tossing before login).
                    message = self._with_cookie(message, scope, new_binding, new_secret())
                elif issue:
                    message = self._with_cookie(message, scope, binding, secret)
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _binding(self, scope: Scope) -> bytes:
        """The session binding: empty until the session holds something, then its key."""
        session = scope.get("session") if self.bind_to_session else None
        if not isinstance(session, MutableMapping) or not session:
            return b""
        key = session.get(SESSION_KEY)
        if not isinstance(key, str):
            key = session[SESSION_KEY] = base64.urlsafe_b64encode(new_secret()).decode()
        return key.encode("utf-8")

    def _is_exempt(self, scope: Scope) -> bool:
        if not (self._exact_exempt or self._prefix_exempt or self._pattern_exempt):
            return False
        path = get_route_path(scope)
        if _UNNORMALISED.search(path):
            return False  # APPSEC: "/webhooks/../admin" is not under "/webhooks/"
        return (
            path in self._exact_exempt
            or any(path.startswith(prefix) for prefix in self._prefix_exempt)
            or any(pattern.fullmatch(path) for pattern in self._pattern_exempt)
        )

    def _cross_origin_failure(self, scope: Scope, request: _RequestHeaders) -> str | None:
        site = request.fetch_site
        if site is not None:
            if site in _FETCH_SITE_ALLOWED:
                return None
            if request.origin is not None and _origin_key(request.origin) in self.trusted_origins:
                return None
            return f"cross-origin request (Sec-Fetch-Site: {site})"
        origin = request.origin
        if origin is None:
            return None  # not a browser, or a same-origin request from an old one
        if origin == "null":
            return "Origin null (an opaque origin: a sandboxed frame, a file, or a redirect)"
        key = _origin_key(origin)
        if key is not None and (key in self.trusted_origins or _same_host(key, scope, request)):
            return None
        return f"Origin {origin[:100]!r} does not match the host {request.host[:100]!r}"

    def _needs_token(self, request: _RequestHeaders) -> bool:
        if self.token_required == "always":
            return True
        return self.token_required == "without-fetch-metadata" and request.fetch_site is None

    async def _form_token(
        self, request: _RequestHeaders, receive: Receive
    ) -> tuple[str | None, Receive]:
        """The token field of the form body, and a receive that replays what was read."""
        finder = FormTokenFinder(request.content_type, self.field_name)
        read: deque[Message] = deque()
        size = 0
        token = None
        while True:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                break  # the client left: nothing to find
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_body_size:
                break  # APPSEC: bounded; the token belongs near the start of a form
            token = finder.feed(body)
            if token is not None or finder.broken:
                break
            if not message.get("more_body", False):
                token = finder.close()
                break

        async def replay() -> Message:
            if read:
                return read.popleft()
            return await receive()

        return token, replay

    def _with_cookie(
        self, message: Message, scope: Scope, binding: bytes, secret: bytes
    ) -> Message:
        secure = self.cookie_secure
        if secure is None:
            secure = scope.get("scheme") == "https"
        header = build_set_cookie(
            self.cookie_name,
            cookie_value(self._key, secret, binding),
            secure=secure,
            **self._cookie_attributes,  # type: ignore[arg-type]
        )
        headers = [*message.get("headers", ()), (b"set-cookie", header.encode("latin-1"))]
        return {**message, "headers": headers}


class _RequestHeaders:
    """The request headers the checks read, found in one pass."""

    __slots__ = ("content_type", "cookie", "fetch_site", "host", "origin", "token")

    def __init__(self, headers: Iterable[tuple[bytes, bytes]], token_header: bytes) -> None:
        self.cookie = ""
        self.fetch_site: str | None = None
        self.origin: str | None = None
        self.host = ""
        self.content_type = ""
        self.token: str | None = None
        cookies = []
        for name, value in headers:
            if name == b"cookie":
                cookies.append(value.decode("latin-1"))
            elif name == b"sec-fetch-site" and self.fetch_site is None:
                self.fetch_site = value.decode("latin-1").strip().lower()
            elif name == b"origin" and self.origin is None:
                self.origin = value.decode("latin-1").strip()
            elif name == b"host" and not self.host:
                self.host = value.decode("latin-1")
            elif name == b"content-type" and not self.content_type:
                self.content_type = value.decode("latin-1")
            elif name == token_header and self.token is None:
                self.token = value.decode("latin-1").strip()
        if cookies:
            self.cookie = "; ".join(cookies)

    @property
    def is_form(self) -> bool:
        return self.content_type.lower().lstrip().startswith(_FORM_TYPES)


def _origin_key(origin: str) -> str | None:
    """``scheme://host[:port]`` lower-cased, without the scheme's default port; None when the
    value is not a serialised origin."""
    match = _ORIGIN.fullmatch(origin)
    if match is None:
        return None
    scheme = match["scheme"].lower()
    parsed = parse_host(match["netloc"])
    if parsed is None:
        return None
    host, port = parsed
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host.lower()}"
    return f"{scheme}://{host.lower()}:{port}"


def _same_host(origin_key: str, scope: Scope, request: _RequestHeaders) -> bool:
    """Whether the origin names the Host the request was sent to (as Go compares them: by
    host and port, whatever the scheme, which a TLS-terminating proxy may hide)."""
    parsed = parse_host(request.host)
    if parsed is None:
        return False
    scheme, _, netloc = origin_key.partition("://")
    host, port = parsed
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return netloc == host.lower()
    return netloc == f"{host.lower()}:{port}"


def _trusted_origin(origin: str) -> str:
    key = _origin_key(origin.strip()) if origin != "null" else None
    if key is None or key.partition("://")[0] not in ("http", "https"):
        raise ValueError(
            f"trusted_origins entry {origin!r} is not an origin: use 'https://host' or "
            f"'https://host:port', without a path ('null' can never be trusted)."
        )
    return key


def csrf_input(request: HTTPConnection) -> Any:
    """A hidden form field carrying this request's CSRF token, ready for a template:
    ``{{ csrf_input(request) }}`` (marked safe for Jinja2's autoescaping)."""
    state = request.scope.get("state", {})
    token = state.get("csrf_token")
    if token is None:
        raise RuntimeError("No CSRF token for this request: add CSRFMiddleware to the application.")
    # The token is base64url and the field name was given by the app; escape it all the same.
    name = _escape(state.get("csrf_field_name", "csrftoken"))
    return _Markup(f'<input type="hidden" name="{name}" value="{_escape(token)}">')


def csrf_context(request: HTTPConnection) -> dict[str, Any]:
    """A Jinja2Templates context processor: ``csrf_token`` and ``csrf_input`` in templates."""
    state = request.scope.get("state", {})
    if "csrf_token" not in state:
        return {}
    return {"csrf_token": state["csrf_token"], "csrf_input": csrf_input(request)}


class _Markup(str):
    """A string Jinja2 (and MarkupSafe) will not escape again: the ``__html__`` protocol."""

    __slots__ = ()

    def __html__(self) -> str:
        return str(self)


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#x27;")
    )
