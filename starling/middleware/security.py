"""Security response headers with safe defaults, one keyword per header, in the spirit of
helmet (Node) and Django's SecurityMiddleware.

Every keyword takes the header's value as a string, or ``None`` to leave that header out. A
header the app set itself is never replaced. ``Strict-Transport-Security`` goes only on
responses to https requests (RFC 6797 §7.2: a user agent ignores it over plain http, and it
would only mislead). ``Content-Security-Policy`` can be a ``ContentSecurityPolicy``, a mapping of
directives, or a string; a ``'nonce-{nonce}'`` source in it is filled with a fresh nonce per
request, which the app reads from ``request.state.csp_nonce`` (in a Jinja2 template:
``<script nonce="{{ request.state.csp_nonce }}">``).

APPSEC: every value is checked when the middleware is built: a CR, LF or other control
character (header injection) or a ``;``/``,`` inside a CSP source (a new directive, or a
second policy) is a ``ValueError`` naming the keyword, never a broken header at run time.
PERF: the header list is encoded once; a request pays one set of header names and, only when
the policy has a nonce, one ``secrets.token_urlsafe`` call.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from starling.types import ASGIApp, Message, Receive, Scope, Send

# Where the per-request nonce goes in a policy: ``script-src 'self' 'nonce-{nonce}'``.
NONCE = "'nonce-{nonce}'"
_NONCE_SLOT = "{nonce}"
# Bytes of randomness per nonce (CSP3 §2.3.1 asks for at least 128 bits).
NONCE_BYTES = 16

# A directive's sources: a space-separated string, several strings, True for a directive
# without a value (``upgrade-insecure-requests``), None or False to leave it out.
DirectiveValue = str | Iterable[str] | bool | None

# helmet's default policy, with a nonce for inline scripts. Styles keep 'unsafe-inline' (as
# helmet does): a nonce in style-src would make browsers ignore it and break inline styles.
DEFAULT_CSP_DIRECTIVES: Mapping[str, DirectiveValue] = MappingProxyType(
    {
        "default-src": "'self'",
        "base-uri": "'self'",
        "font-src": "'self' https: data:",
        "form-action": "'self'",
        "frame-ancestors": "'self'",
        "img-src": "'self' data:",
        "object-src": "'none'",
        "script-src": f"'self' {NONCE}",
        "script-src-attr": "'none'",
        "style-src": "'self' https: 'unsafe-inline'",
        "upgrade-insecure-requests": True,
    }
)

# CSP3 §2.2.1: directive-name = 1*( ALPHA / DIGIT / "-" ).
_DIRECTIVE_NAME = re.compile(r"[A-Za-z0-9-]+")
# CSP3 §2.2.1: a directive value is visible ASCII other than ";" and ","; sources are split on
# spaces. Stricter than any byte a header can carry, so nothing here can inject.
_SOURCE = re.compile(r"[\x21-\x2b\x2d-\x3a\x3c-\x7e]+")
_SPACES = re.compile(r"[ \t]+")
# RFC 9110 §5.5 field-value: visible characters, spaces and tabs; never CR, LF or NUL.
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


class ContentSecurityPolicy:
    """A Content-Security-Policy built from directives.

    ``ContentSecurityPolicy()`` is the default policy; keywords change it, with ``_`` for
    ``-`` (``script_src=["'self'", NONCE, "https://cdn.example"]``), and ``None`` removes a
    directive. Pass a mapping first to start from it instead of the default, e.g.
    ``ContentSecurityPolicy({"default-src": "'self'"}, img_src="*")``.
    """

    def __init__(
        self,
        directives: Mapping[str, DirectiveValue] | None = None,
        /,
        **changes: DirectiveValue,
    ) -> None:
        merged = dict(DEFAULT_CSP_DIRECTIVES if directives is None else directives)
        merged.update({name.replace("_", "-"): value for name, value in changes.items()})
        self.directives: dict[str, tuple[str, ...]] = {}
        for name, value in merged.items():
            sources = _sources(name, value)
            if sources is not None:
                self.directives[name.lower()] = sources

    def __str__(self) -> str:
        return "; ".join(" ".join((name, *sources)) for name, sources in self.directives.items())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    @property
    def uses_nonce(self) -> bool:
        return _NONCE_SLOT in str(self)


def _sources(name: str, value: DirectiveValue) -> tuple[str, ...] | None:
    if _DIRECTIVE_NAME.fullmatch(name) is None:
        raise ValueError(f"{name!r} is not a CSP directive name (letters, digits and '-').")
    if value is None or value is False:
        return None
    if value is True:
        return ()
    # Split on spaces and tabs only: a CR or LF stays in a source, and is refused there.
    sources = tuple(_SPACES.split(value.strip(" \t")) if isinstance(value, str) else value)
    for source in sources:
        if not isinstance(source, str) or _SOURCE.fullmatch(source) is None:
            raise ValueError(
                f"CSP directive {name!r}: source {source!r} must be visible ASCII without "
                f"spaces, ';' or ',' (those would start another directive or policy)."
            )
    return sources


PolicyValue = ContentSecurityPolicy | Mapping[str, DirectiveValue] | str | None

_DEFAULT_POLICY = ContentSecurityPolicy()


class SecurityHeadersMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        hsts: str | None = "max-age=31536000; includeSubDomains",
        content_security_policy: PolicyValue = _DEFAULT_POLICY,
        content_security_policy_report_only: PolicyValue = None,
        frame_options: str | None = "DENY",
        content_type_options: str | None = "nosniff",
        referrer_policy: str | None = "no-referrer",
        cross_origin_opener_policy: str | None = "same-origin",
        cross_origin_resource_policy: str | None = "same-origin",
        cross_origin_embedder_policy: str | None = None,
        permissions_policy: str | None = None,
        origin_agent_cluster: str | None = "?1",
        dns_prefetch_control: str | None = "off",
        download_options: str | None = "noopen",
        permitted_cross_domain_policies: str | None = "none",
        xss_protection: str | None = "0",
    ) -> None:
        self.app = app
        plain = [
            ("x-frame-options", "frame_options", frame_options),
            ("x-content-type-options", "content_type_options", content_type_options),
            ("referrer-policy", "referrer_policy", referrer_policy),
            (
                "cross-origin-opener-policy",
                "cross_origin_opener_policy",
                cross_origin_opener_policy,
            ),
            (
                "cross-origin-resource-policy",
                "cross_origin_resource_policy",
                cross_origin_resource_policy,
            ),
            (
                "cross-origin-embedder-policy",
                "cross_origin_embedder_policy",
                cross_origin_embedder_policy,
            ),
            ("permissions-policy", "permissions_policy", permissions_policy),
            ("origin-agent-cluster", "origin_agent_cluster", origin_agent_cluster),
            ("x-dns-prefetch-control", "dns_prefetch_control", dns_prefetch_control),
            ("x-download-options", "download_options", download_options),
            (
                "x-permitted-cross-domain-policies",
                "permitted_cross_domain_policies",
                permitted_cross_domain_policies,
            ),
            ("x-xss-protection", "xss_protection", xss_protection),
        ]
        self._headers: list[tuple[bytes, bytes]] = [
            (name.encode("latin-1"), _field_value(keyword, value))
            for name, keyword, value in plain
            if value is not None
        ]
        self._hsts = (
            None if hsts is None else (b"strict-transport-security", _field_value("hsts", hsts))
        )
        # A policy with a nonce is kept as the text around each "{nonce}"; one without, encoded.
        self._nonced: list[tuple[bytes, list[str]]] = []
        for name, keyword, policy in [
            (b"content-security-policy", "content_security_policy", content_security_policy),
            (
                b"content-security-policy-report-only",
                "content_security_policy_report_only",
                content_security_policy_report_only,
            ),
        ]:
            text = _policy_text(keyword, policy)
            if text is None:
                continue
            if _NONCE_SLOT in text:
                self._nonced.append((name, text.split(_NONCE_SLOT)))
            else:
                self._headers.append((name, text.encode("latin-1")))
        self._https_headers = self._headers if self._hsts is None else [*self._headers, self._hsts]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = self._https_headers if scope.get("scheme") == "https" else self._headers
        if self._nonced:
            nonce = secrets.token_urlsafe(NONCE_BYTES)
            # The request's own state dict, as request.state uses (it lives in the scope).
            scope.setdefault("state", {})["csp_nonce"] = nonce
            headers = [
                *headers,
                *((name, nonce.join(parts).encode("latin-1")) for name, parts in self._nonced),
            ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = _with_missing(message, headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _with_missing(message: Message, headers: list[tuple[bytes, bytes]]) -> Message:
    """The start message with each of ``headers`` the app did not set itself."""
    own = message.get("headers", ())
    present = {name.lower() for name, _ in own}
    missing = [header for header in headers if header[0] not in present]
    if not missing:
        return message
    return {**message, "headers": [*own, *missing]}


def _field_value(keyword: str, value: str) -> bytes:
    if not isinstance(value, str) or _FIELD_VALUE.fullmatch(value) is None:
        raise ValueError(
            f"{keyword}={value!r} is not a valid header value: use a string of visible "
            f"characters and spaces (no CR, LF or other control characters), or None to omit it."
        )
    return value.strip(" \t").encode("latin-1")


def _policy_text(keyword: str, policy: PolicyValue) -> str | None:
    if policy is None:
        return None
    if isinstance(policy, str):
        text = _field_value(keyword, policy).decode("latin-1")
    else:
        if not isinstance(policy, ContentSecurityPolicy):
            policy = ContentSecurityPolicy(policy)
        text = str(policy)
    if not text:
        raise ValueError(f"{keyword} has no directives: pass None to leave the header out.")
    return text
