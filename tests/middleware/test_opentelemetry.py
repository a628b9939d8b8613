"""OpenTelemetryMiddleware: the SERVER span, its attributes, status, route and exclusions."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from starling.applications import Starling
from starling.compat import STARLETTE_API_VERSION
from starling.middleware import Middleware
from starling.middleware.opentelemetry import OpenTelemetryMiddleware
from starling.requests import Request
from starling.responses import PlainTextResponse, Response
from starling.routing import BaseRoute, Host, Mount, Route, WebSocketRoute
from starling.types import Message, Receive, Scope, Send
from starling.websockets import WebSocket

if TYPE_CHECKING:  # a Protocol named Test*: imported at run time, pytest would try to collect it
    from tests.types import TestClientFactory

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.shutdown()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


async def item(request: Request) -> Response:
    return PlainTextResponse("item", status_code=int(request.query_params.get("status", 200)))


async def boom(request: Request) -> Response:
    raise ValueError("boom")


async def raw(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("raw")(scope, receive, send)


async def websocket_endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hi")
    await websocket.close()


def make_app(
    provider: TracerProvider, extra_routes: Sequence[BaseRoute] = (), **options: Any
) -> Starling:
    sub = Starling(routes=[Route("/u/{id:int}", item)])
    return Starling(
        routes=[
            Route("/items/{id}", item, methods=["GET", "POST"]),
            Route("/boom", boom),
            Route("/health", item),
            WebSocketRoute("/ws", websocket_endpoint),
            Mount("/sub", sub),
            Mount("/raw", app=raw),
            Host("raw.example.com", app=raw),
            *extra_routes,
        ],
        middleware=[Middleware(OpenTelemetryMiddleware, tracer_provider=provider, **options)],
    )


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1
    span = spans[0]
    exporter.clear()
    return span


def test_request_span(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    test_client_factory: TestClientFactory,
) -> None:
    client = test_client_factory(make_app(provider))
    headers = {"user-agent": "UA", "traceparent": TRACEPARENT}
    assert client.get("/items/1?a=b", headers=headers).text == "item"
    span = only_span(exporter)
    assert span.name == "GET /items/{id}"
    assert span.kind == SpanKind.SERVER
    assert span.status.status_code == StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "url.path": "/items/1",
        "url.scheme": "http",
        "url.query": "a=b",
        "server.address": "testserver",
        "server.port": 80,
        "network.protocol.version": "1.1",
        "client.address": "testclient",
        "user_agent.original": "UA",
        "http.response.status_code": 200,
        "http.route": "/items/{id}",
    }
    # the caller's trace continues
    assert span.parent is not None
    assert span.parent.span_id == 0xB7AD6B7169203331
    assert span.context is not None
    assert span.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert span.instrumentation_scope is not None
    # Starlette's scope, so filters written for Starlette keep matching
    assert span.instrumentation_scope.name == "starlette"
    assert span.instrumentation_scope.version == STARLETTE_API_VERSION


def test_status(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    test_client_factory: TestClientFactory,
) -> None:
    client = test_client_factory(make_app(provider))
    client.post("/items/2?status=503", content=b"abc")
    span = only_span(exporter)
    assert span.name == "POST /items/{id}"
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description is None
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 503
    assert span.attributes["error.type"] == "503"
    assert span.parent is None

    # a 4xx is the client's mistake: not a server error
    client.get("/items/3?status=404")
    span = only_span(exporter)
    assert span.status.status_code == StatusCode.UNSET
    assert span.attributes is not None
    assert "error.type" not in span.attributes


def test_exception(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    test_client_factory: TestClientFactory,
) -> None:
    client = test_client_factory(make_app(provider))
    with pytest.raises(ValueError, match="boom"):
        client.get("/boom")
    span = only_span(exporter)
    assert span.name == "GET /boom"
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == "ValueError: boom"
    assert span.attributes is not None
    assert span.attributes["error.type"] == "ValueError"
    assert span.attributes["http.route"] == "/boom"
    # the 500 is sent by the error middleware outside this one: never seen here
    assert "http.response.status_code" not in span.attributes
    assert [event.name for event in span.events] == ["exception"]


@pytest.mark.parametrize(
    ("path", "name", "route"),
    [
        ("/sub/u/4", "GET /sub/u/{id}", "/sub/u/{id}"),
        ("/raw/anything", "GET /raw", "/raw"),
        ("/sub/nothing", "GET /sub", "/sub"),
        ("/nowhere", "GET", None),
    ],
)
def test_route(
    path: str,
    name: str,
    route: str | None,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    test_client_factory: TestClientFactory,
) -> None:
    test_client_factory(make_app(provider)).get(path)
    span = only_span(exporter)
    assert span.name == name
    assert span.attributes is not None
    assert span.attributes.get("http.route") == route


def test_catch_all_mount(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    test_client_factory: TestClientFactory,
) -> None:
    app = make_app(provider, extra_routes=[Mount("/", routes=[Route("/r/{z:path}", item)])])
    client = test_client_factory(app)
    assert client.get("/r/a/b").status_code == 200
    assert only_span(exporter).name == "GET /r/{z}"
    # matched by the Mount at "/", then nothing below it: the route is "/"
    assert client.get("/nowhere").status_code == 404
    span = only_span(exporter)
    assert span.name == "GET /"
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/"


def test_host_route_without_path(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    test_client_factory: TestClientFactory,
) -> None:
    client = test_client_factory(make_app(provider), base_url="http://raw.example.com")
    assert client.get("/x").text == "raw"
    span = only_span(exporter)
    assert span.name == "GET"
    assert span.attributes is not None
    assert "http.route" not in span.attributes


def test_methods(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    test_client_factory: TestClientFactory,
) -> None:
    client = test_client_factory(make_app(provider))
    # an invented method does not become a span name of its own
    assert client.request("FOO", "/items/5").status_code == 405
    span = only_span(exporter)
    assert span.name == "_OTHER /items/{id}"
    assert span.attributes is not None
    assert span.attributes["http.request.method"] == "_OTHER"
    assert span.attributes["http.request.method_original"] == "FOO"


@pytest.mark.parametrize(
    ("excluded", "traced"),
    [
        # a search anywhere in the URL, not a full match
        ("/health", ["/items/1"]),
        ("/health$, /items", ["/healthcheck-no"]),
        (["/items/\\d+$"], ["/health", "/healthcheck-no"]),
        (["testserver"], []),
        ("", ["/items/1", "/health", "/healthcheck-no"]),
        (",", ["/items/1", "/health", "/healthcheck-no"]),
    ],
)
def test_excluded_urls(
    excluded: str | list[str],
    traced: list[str],
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    test_client_factory: TestClientFactory,
) -> None:
    client = test_client_factory(make_app(provider, excluded_urls=excluded))
    for path in ("/items/1", "/health", "/healthcheck-no"):
        assert client.get(path).status_code in (200, 404)
    traced_paths = [span.attributes["url.path"] for span in exporter.get_finished_spans()]  # type: ignore[index]
    assert traced_paths == traced


def test_websocket_not_traced(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    test_client_factory: TestClientFactory,
) -> None:
    client = test_client_factory(make_app(provider))
    with client.websocket_connect("/ws") as websocket:
        assert websocket.receive_text() == "hi"
    with client:  # lifespan
        pass
    assert exporter.get_finished_spans() == ()


async def drive(middleware: OpenTelemetryMiddleware, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        raise AssertionError("unreachable")  # pragma: no cover (the apps read no body)

    async def send(message: Message) -> None:
        sent.append(message)

    await middleware(scope, receive, send)
    return sent


def http_scope(**extra: Any) -> Scope:
    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": "/p",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "scheme": "https",
    }
    scope.update(extra)
    return scope


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, {}),
        (
            {"headers": [(b"host", b"ex.com:8443")], "client": ("1.1.1.1", 5)},
            {"server.address": "ex.com", "server.port": 8443, "client.address": "1.1.1.1"},
        ),
        ({"headers": [(b"host", b"ex.com")]}, {"server.address": "ex.com"}),
        ({"server": ("srv", 9000)}, {"server.address": "srv", "server.port": 9000}),
        ({"headers": [(b"host", b"[::1]:99")]}, {"server.address": "::1", "server.port": 99}),
        (
            {"headers": [(b"host", b"ex.com")], "server": ("srv", 9000)},
            {"server.address": "ex.com", "server.port": 9000},
        ),
        ({"headers": [(b"host", b"bad host:x")]}, {}),
        ({"server": ("srv", None)}, {"server.address": "srv"}),
        ({"query_string": b"a=%20b&c=\xff"}, {"url.query": "a=%20b&c=%FF"}),
        ({"http_version": "2"}, {"network.protocol.version": "2"}),
        (
            {"headers": [(b"user-agent", b"first"), (b"user-agent", b"second")]},
            {"user_agent.original": "first"},
        ),
    ],
)
async def test_connection_attributes(
    extra: dict[str, Any],
    expected: dict[str, Any],
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("ok")(scope, receive, send)

    middleware = OpenTelemetryMiddleware(app, tracer_provider=provider)
    await drive(middleware, http_scope(**extra))
    span = only_span(exporter)
    base = {
        "http.request.method": "GET",
        "url.path": "/p",
        "url.scheme": "https",
        "http.response.status_code": 200,
    }
    assert dict(span.attributes or {}) == {**base, **expected}


@pytest.mark.anyio
async def test_lowercase_method(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("ok")(scope, receive, send)

    await drive(OpenTelemetryMiddleware(app, tracer_provider=provider), http_scope(method="get"))
    span = only_span(exporter)
    assert span.name == "GET"
    assert span.attributes is not None
    assert span.attributes["http.request.method"] == "GET"
    assert span.attributes["http.request.method_original"] == "get"


@pytest.mark.anyio
async def test_no_response(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        pass

    assert await drive(OpenTelemetryMiddleware(app, tracer_provider=provider), http_scope()) == []
    span = only_span(exporter)
    assert span.status.status_code == StatusCode.UNSET
    assert span.attributes is not None
    assert "http.response.status_code" not in span.attributes


@pytest.mark.anyio
async def test_global_provider_by_default() -> None:
    # no provider configured anywhere: the API's no-op tracer, and the request goes through
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("ok")(scope, receive, send)

    sent = await drive(OpenTelemetryMiddleware(app), http_scope())
    assert sent[0]["status"] == 200


def test_meter_provider_is_kept_but_unused(
    provider: TracerProvider, test_client_factory: TestClientFactory
) -> None:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    app = make_app(provider, meter_provider=meter_provider)
    assert test_client_factory(app).get("/items/1").status_code == 200
    assert reader.get_metrics_data() is None
    meter_provider.shutdown()


def test_opentelemetry_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.delitem(sys.modules, "starling.middleware.opentelemetry")
    message = r"^The `opentelemetry-api` package is required to use `OpenTelemetryMiddleware`\.$"
    with pytest.raises(ImportError, match=message) as info:
        import starling.middleware.opentelemetry  # noqa: F401
    assert info.value.__cause__ is None


def test_nested_instances_make_one_span(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    test_client_factory: TestClientFactory,
) -> None:
    traced = Middleware(OpenTelemetryMiddleware, tracer_provider=provider)
    sub = Starling(routes=[Route("/u/{id:int}", item)], middleware=[traced])
    app = Starling(routes=[Mount("/sub", sub)], middleware=[traced, traced])
    assert test_client_factory(app).get("/sub/u/1").status_code == 200
    assert only_span(exporter).name == "GET /sub/u/{id}"


def test_exclusion_reaches_nested_instances(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    test_client_factory: TestClientFactory,
) -> None:
    sub = Starling(
        routes=[Route("/health", item)],
        middleware=[Middleware(OpenTelemetryMiddleware, tracer_provider=provider)],
    )
    app = Starling(
        routes=[Mount("/sub", sub)],
        middleware=[
            Middleware(OpenTelemetryMiddleware, tracer_provider=provider, excluded_urls="/health")
        ],
    )
    assert test_client_factory(app).get("/sub/health").status_code == 200
    assert exporter.get_finished_spans() == ()


@pytest.mark.anyio
async def test_scope_marker(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    seen: list[object] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope.get("starlette.opentelemetry"))
        await PlainTextResponse("ok")(scope, receive, send)

    middleware = OpenTelemetryMiddleware(app, tracer_provider=provider)
    scope = http_scope()
    await drive(middleware, scope)
    # removed afterwards: the same scope sent again is a new request, with a span of its own
    assert "starlette.opentelemetry" not in scope
    await drive(middleware, scope)
    assert len(exporter.get_finished_spans()) == 2
    exporter.clear()
    # a falsy marker is no marker
    await drive(middleware, http_scope(**{"starlette.opentelemetry": False}))
    assert len(only_span(exporter).name) > 0
    # set by an instance further out: no span here, and the marker is left alone
    scope = http_scope(**{"starlette.opentelemetry": "outer"})
    await drive(middleware, scope)
    assert exporter.get_finished_spans() == ()
    assert scope["starlette.opentelemetry"] == "outer"
    assert seen == [True, True, True, "outer"]


@pytest.mark.anyio
async def test_marker_removed_on_error(provider: TracerProvider) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("boom")

    middleware = OpenTelemetryMiddleware(app, tracer_provider=provider)
    scope = http_scope()
    with pytest.raises(ValueError, match="boom"):
        await drive(middleware, scope)
    assert "starlette.opentelemetry" not in scope


@pytest.mark.anyio
async def test_provider_looked_up_at_first_request(
    monkeypatch: pytest.MonkeyPatch, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("ok")(scope, receive, send)

    lookups: list[TracerProvider] = []

    def get_tracer_provider() -> TracerProvider:
        lookups.append(provider)
        return provider

    monkeypatch.setattr(trace, "get_tracer_provider", get_tracer_provider)
    middleware = OpenTelemetryMiddleware(app)
    assert lookups == []  # configured after the app is built: still used
    await drive(middleware, http_scope())
    await drive(middleware, http_scope())
    assert len(lookups) == 1
    assert len(exporter.get_finished_spans()) == 2


@pytest.mark.anyio
async def test_noop_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    class Provider(trace.NoOpTracerProvider):
        def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
            raise AssertionError("unreachable")  # pragma: no cover (the test: not called)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("ok")(scope, receive, send)

    monkeypatch.setattr(trace, "get_tracer_provider", Provider)
    sent = await drive(OpenTelemetryMiddleware(app, excluded_urls="/p"), http_scope())
    assert sent[0]["status"] == 200
