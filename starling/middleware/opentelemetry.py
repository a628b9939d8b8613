"""OpenTelemetry tracing: one SERVER span per HTTP request, with the HTTP semantic conventions.

Experimental, as in Starlette. Spans only: ``meter_provider`` is accepted and kept, but no
metrics are recorded (Starlette 1.10 records none either).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from starling.compat import STARLETTE_API_VERSION
from starling.datastructures import URL
from starling.routing import Mount
from starling.types import ASGIApp, Message, Receive, Scope, Send

try:
    from opentelemetry import metrics, propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # an optional dependency: say which one, at the import that needs it
    raise ImportError(
        "The `opentelemetry-api` package is required to use `OpenTelemetryMiddleware`."
    ) from None

# Semantic conventions (HTTP spans): these method names are kept, any other is reported as
# "_OTHER" with the original in http.request.method_original. APPSEC: a client inventing
# methods must not mint a new span name per request (Starlette uses the method as sent).
_KNOWN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY")
)

# Set in the scope by the outermost instance: an instance below it (a second middleware, a
# mounted app's own) sees it and adds no span of its own, and an excluded URL stays excluded.
_SCOPE_KEY = "starlette.opentelemetry"

# The instrumentation scope: Starlette's, so that dashboards and span filters written for
# Starlette keep matching.
_SCOPE_NAME = "starlette"

# "{id:int}" -> "{id}": a route template, not a pattern.
_strip_convertors = re.compile(r":\w+}").sub


def _http_route(scope: Scope) -> str | None:
    """The matched route's template, under the paths the Mounts above it consumed.

    The router leaves the innermost matched route in scope["route"] and the matched prefix in
    scope["root_path"]; for a Mount (of an app without routes, or where nothing matched below
    it) the prefix is the template.
    """
    route = scope.get("route")
    if route is None:
        return None
    root_path: str = scope.get("root_path", "")
    if isinstance(route, Mount):
        return root_path or "/"
    path = getattr(route, "path", None)
    if not isinstance(path, str):  # a Host in front of a plain ASGI app: no template
        return None
    return root_path + _strip_convertors("}", path)


def _request_attributes(scope: Scope, url: URL, method: str) -> dict[str, Any]:
    original = scope["method"]
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.path": scope["path"],
        "url.scheme": scope.get("scheme", "http"),
    }
    if scope.get("query_string"):
        attributes["url.query"] = url.query
    if original != method:
        attributes["http.request.method_original"] = original
    if url.hostname:
        attributes["server.address"] = url.hostname
        port = url.port
        if port is None and scope.get("server"):
            # no port in the Host header: the one the server listens on
            port = scope["server"][1]
        if port is not None:
            attributes["server.port"] = port
    if "http_version" in scope:
        attributes["network.protocol.version"] = scope["http_version"]
    client = scope.get("client")
    if client:
        attributes["client.address"] = client[0]
    for name, value in scope["headers"]:
        if name == b"user-agent":
            attributes["user_agent.original"] = value.decode("latin-1")
            break
    return attributes


def _carrier(scope: Scope) -> dict[str, str]:
    """Request headers for the propagator (traceparent, baggage...): the first of each wins."""
    carrier: dict[str, str] = {}
    for name, value in scope["headers"]:
        carrier.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return carrier


class OpenTelemetryMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        excluded_urls: str | Sequence[str] = (),
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self.app = app
        if isinstance(excluded_urls, str):
            excluded_urls = excluded_urls.split(",")
        # an empty pattern would match every URL and silently turn tracing off
        self._excluded_urls = tuple(
            re.compile(pattern.strip()) for pattern in excluded_urls if pattern.strip()
        )
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._tracer: trace.Tracer | None = None

    def _get_tracer(self) -> trace.Tracer | None:
        """The tracer, looked up at the first request (not at start-up, so that a provider
        configured after the app is built is used), or None under a no-op provider."""
        if self._tracer is None:
            provider = self._tracer_provider
            if provider is None:
                provider = self._tracer_provider = trace.get_tracer_provider()
            if isinstance(provider, trace.NoOpTracerProvider):
                return None  # tracing is off: skip the span machinery entirely
            self._tracer = provider.get_tracer(_SCOPE_NAME, STARLETTE_API_VERSION)
        return self._tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get(_SCOPE_KEY):
            await self.app(scope, receive, send)
            return
        scope[_SCOPE_KEY] = True
        try:
            await self._traced(scope, receive, send)
        finally:
            # the caller may send the same scope again (a retry, a test): that is a new request
            scope.pop(_SCOPE_KEY, None)

    async def _traced(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer = self._get_tracer()
        if tracer is None:
            await self.app(scope, receive, send)
            return
        url = URL(scope=scope)
        if self._excluded_urls:
            url_text = str(url)
            if any(pattern.search(url_text) for pattern in self._excluded_urls):
                await self.app(scope, receive, send)
                return

        upper = scope["method"].upper()
        method = upper if upper in _KNOWN_METHODS else "_OTHER"
        with tracer.start_as_current_span(
            method,
            context=propagate.extract(_carrier(scope)),
            kind=SpanKind.SERVER,
            attributes=_request_attributes(scope, url, method),
        ) as span:

            async def send_with_telemetry(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status_code = message["status"]
                    span.set_attribute("http.response.status_code", status_code)
                    if status_code >= 500:  # a 4xx is the client's error, not the server's
                        span.set_status(Status(StatusCode.ERROR))
                        span.set_attribute("error.type", str(status_code))
                await send(message)

            try:
                await self.app(scope, receive, send_with_telemetry)
            except Exception as exc:
                # the span records the exception and the ERROR status as it leaves the block
                span.set_attribute("error.type", type(exc).__qualname__)
                raise
            finally:
                route = _http_route(scope)
                if route is not None:
                    span.set_attribute("http.route", route)
                    span.update_name(f"{method} {route}")
