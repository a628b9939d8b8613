"""CORSMiddleware: preflight answers, simple responses, Vary, credentials and hostile Origins."""

from __future__ import annotations

from typing import Any

import pytest

from starling.applications import Starling
from starling.datastructures import Headers, MutableHeaders
from starling.middleware import Middleware
from starling.middleware.cors import (
    ALL_METHODS,
    MAX_ORIGIN_LENGTH,
    MAX_REQUESTED_HEADERS,
    SAFELISTED_HEADERS,
    CORSMiddleware,
)
from starling.requests import Request
from starling.responses import PlainTextResponse, Response
from starling.routing import Route
from starling.types import Message, Receive, Scope, Send
from tests.types import TestClientFactory

VARY_PREFLIGHT = (
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
    "Access-Control-Request-Private-Network"
)


def homepage(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Homepage", headers={"X-Custom": "1"})


def make_app(**options: Any) -> Starling:
    return Starling(
        routes=[Route("/", homepage, methods=["GET", "POST", "OPTIONS"])],
        middleware=[Middleware(CORSMiddleware, **options)],
    )


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
    )
    await send({"type": "http.response.body", "body": b"hello"})


async def drive(
    app: CORSMiddleware, headers: list[tuple[bytes, bytes]], method: str = "GET"
) -> list[Message]:
    """Call the middleware as a server would, with raw headers a client library refuses."""
    scope: Scope = {"type": "http", "method": method, "path": "/", "headers": headers}
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}  # pragma: no cover (never read)

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def test_public_constants() -> None:
    assert ALL_METHODS == ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY")
    assert {"Accept", "Accept-Language", "Content-Language", "Content-Type"} == SAFELISTED_HEADERS


def test_configuration_is_worked_out_once() -> None:
    middleware = CORSMiddleware(
        hello, allow_origins=("https://a.com",), allow_headers=["Z", "A", "x-b"]
    )
    assert middleware.allow_origins == ("https://a.com",)
    assert middleware.allow_methods == ("GET",)
    assert middleware.allow_headers == [
        "a",
        "accept",
        "accept-language",
        "content-language",
        "content-type",
        "z",
        "x-b",
    ]
    assert middleware.simple_headers == {}
    assert middleware.preflight_headers == {
        "Vary": VARY_PREFLIGHT,
        "Access-Control-Allow-Methods": "GET",
        "Access-Control-Max-Age": "600",
        "Access-Control-Allow-Headers": "A, Accept, Accept-Language, Content-Language, "
        "Content-Type, Z, x-b",
    }
    assert middleware.preflight_explicit_allow_origin is True
    assert middleware.allow_origin_regex is None


def test_wildcards_configuration() -> None:
    middleware = CORSMiddleware(
        hello,
        allow_origins=["*"],
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["X-A", "X-B"],
        allow_origin_regex=r"https://.*",
        max_age=10,
    )
    assert middleware.allow_methods == ALL_METHODS
    assert middleware.allow_all_origins and middleware.allow_all_headers
    assert middleware.preflight_explicit_allow_origin is False
    assert middleware.allow_origin_regex is not None
    assert middleware.simple_headers == {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Expose-Headers": "X-A, X-B",
    }
    assert middleware.preflight_headers == {
        "Vary": VARY_PREFLIGHT,
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": ", ".join(ALL_METHODS),
        "Access-Control-Max-Age": "10",
    }


def test_simple_request_allowed_origin(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app(allow_origins=["https://example.org"]))
    response = client.get("/", headers={"Origin": "https://example.org"})
    assert response.status_code == 200
    assert response.text == "Homepage"
    assert response.headers["access-control-allow-origin"] == "https://example.org"
    assert response.headers["vary"] == "Origin"
    assert response.headers["x-custom"] == "1"
    assert "access-control-allow-credentials" not in response.headers


def test_simple_request_disallowed_origin(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(
        make_app(
            allow_origins=["https://example.org"], allow_credentials=True, expose_headers=["X-A"]
        )
    )
    response = client.get("/", headers={"Origin": "https://evil.org"})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    # Starlette sends the configuration headers for any Origin; only the origin is withheld.
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-expose-headers"] == "X-A"
    assert response.headers["vary"] == "Origin"


def test_no_origin_still_varies(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app(allow_origins=["*"], allow_credentials=True))
    response = client.get("/")
    assert response.headers["vary"] == "Origin"
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-credentials" not in response.headers


def test_wildcard_origin_without_credentials(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app(allow_origins=["*"], expose_headers=["X-A"]))
    response = client.get("/", headers={"Origin": "https://any.org", "Cookie": "a=b"})
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-expose-headers"] == "X-A"
    assert response.headers["vary"] == "Origin"


def test_wildcard_origin_with_credentials_echoes(test_client_factory: TestClientFactory) -> None:
    # Browsers refuse "*" on a credentialed response, so the origin is echoed (cookie or not).
    client = test_client_factory(make_app(allow_origins=["*"], allow_credentials=True))
    for headers in ({"Origin": "https://any.org"}, {"Origin": "https://any.org", "Cookie": "a=b"}):
        response = client.get("/", headers=headers)
        assert response.headers["access-control-allow-origin"] == "https://any.org"
        assert response.headers["access-control-allow-credentials"] == "true"
        assert response.headers["vary"] == "Origin"


@pytest.mark.anyio
async def test_simple_response_header_order() -> None:
    app = CORSMiddleware(hello, allow_origins=["*"], allow_credentials=True, expose_headers=["X-A"])
    sent = await drive(app, [(b"origin", b"https://b.com")])
    assert sent[0]["headers"] == [
        (b"content-length", b"5"),
        (b"access-control-allow-origin", b"https://b.com"),
        (b"access-control-allow-credentials", b"true"),
        (b"access-control-expose-headers", b"X-A"),
        (b"vary", b"Origin"),
    ]
    assert sent[1] == {"type": "http.response.body", "body": b"hello"}


def test_origin_regex_is_anchored(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app(allow_origin_regex=r"https://.*\.example\.org"))
    response = client.get("/", headers={"Origin": "https://api.example.org"})
    assert response.headers["access-control-allow-origin"] == "https://api.example.org"
    for origin in ("https://api.example.org.evil.com", "xhttps://api.example.org"):
        response = client.get("/", headers={"Origin": origin})
        assert "access-control-allow-origin" not in response.headers


def test_origin_regex_and_list(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(
        make_app(allow_origins=["https://b.com"], allow_origin_regex=r"https://a.*")
    )
    for origin in ("https://b.com", "https://abc.com"):
        response = client.get("/", headers={"Origin": origin})
        assert response.headers["access-control-allow-origin"] == origin


def test_existing_vary_is_extended(test_client_factory: TestClientFactory) -> None:
    def varied(request: Request) -> Response:
        return Response("x", headers={"Vary": "Accept-Encoding"})

    app = Starling(
        routes=[Route("/", varied)],
        middleware=[Middleware(CORSMiddleware, allow_origins=["https://a.com"])],
    )
    client = test_client_factory(app)
    response = client.get("/", headers={"Origin": "https://a.com"})
    assert response.headers["vary"] == "Accept-Encoding, Origin"
    response = client.get("/")
    assert response.headers["vary"] == "Accept-Encoding, Origin"


@pytest.mark.anyio
async def test_shared_response_headers_are_not_mutated() -> None:
    cached = PlainTextResponse("same object every time")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await cached(scope, receive, send)

    middleware = CORSMiddleware(app, allow_origins=["https://a.com"])
    before = list(cached.raw_headers)
    for _ in range(2):
        sent = await drive(middleware, [(b"origin", b"https://a.com")])
        assert sent[0]["headers"][-1] == (b"vary", b"Origin")
    assert cached.raw_headers == before


def test_preflight_allowed(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(
        make_app(allow_origins=["https://a.com"], allow_headers=["X-Foo"], max_age=30)
    )
    response = client.options(
        "/",
        headers={
            "Origin": "https://a.com",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": " X-FOO ,  accept ",
        },
    )
    assert response.status_code == 200
    assert response.text == "OK"
    assert response.headers["access-control-allow-origin"] == "https://a.com"
    assert response.headers["access-control-allow-methods"] == "GET"
    assert response.headers["access-control-max-age"] == "30"
    assert response.headers["access-control-allow-headers"] == (
        "Accept, Accept-Language, Content-Language, Content-Type, X-Foo"
    )
    assert response.headers["vary"] == VARY_PREFLIGHT
    assert "x-custom" not in response.headers  # answered by the middleware, not the endpoint


@pytest.mark.anyio
async def test_preflight_header_order() -> None:
    app = CORSMiddleware(
        hello,
        allow_origins=["*"],
        allow_headers=["*"],
        allow_credentials=True,
        allow_private_network=True,
    )
    sent = await drive(
        app,
        [
            (b"origin", b"https://a.com"),
            (b"access-control-request-method", b"GET"),
            (b"access-control-request-headers", b"X-a"),
            (b"access-control-request-private-network", b"true"),
        ],
        method="OPTIONS",
    )
    assert sent[0]["status"] == 200
    assert sent[0]["headers"] == [
        (b"vary", VARY_PREFLIGHT.encode()),
        (b"access-control-allow-methods", b"GET"),
        (b"access-control-max-age", b"600"),
        (b"access-control-allow-credentials", b"true"),
        (b"access-control-allow-origin", b"https://a.com"),
        (b"access-control-allow-headers", b"X-a"),
        (b"access-control-allow-private-network", b"true"),
        (b"content-length", b"2"),
        (b"content-type", b"text/plain; charset=utf-8"),
    ]


@pytest.mark.parametrize(
    ("headers", "message", "allowed_origin"),
    [
        (
            {"Origin": "https://b.com", "Access-Control-Request-Method": "POST"},
            "Disallowed CORS origin, method",
            None,
        ),
        (
            {"Origin": "https://a.com", "Access-Control-Request-Method": "post"},
            "Disallowed CORS method",
            "https://a.com",
        ),
        (
            {
                "Origin": "https://a.com",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "x-bar",
            },
            "Disallowed CORS headers",
            "https://a.com",
        ),
        (
            {
                "Origin": "https://a.com",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "x-foo,,accept",
            },
            "Disallowed CORS headers",
            "https://a.com",
        ),
        (
            {
                "Origin": "https://a.com",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "",
            },
            "Disallowed CORS headers",
            "https://a.com",
        ),
        (
            {
                "Origin": "https://a.com",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Private-Network": "true",
            },
            "Disallowed CORS private-network",
            "https://a.com",
        ),
        (
            {
                "Origin": "https://x.com",
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "X-a",
                "Access-Control-Request-Private-Network": "true",
            },
            "Disallowed CORS origin, method, headers, private-network",
            None,
        ),
    ],
)
def test_preflight_disallowed(
    test_client_factory: TestClientFactory,
    headers: dict[str, str],
    message: str,
    allowed_origin: str | None,
) -> None:
    client = test_client_factory(make_app(allow_origins=["https://a.com"], allow_headers=["X-Foo"]))
    response = client.options("/", headers=headers)
    assert response.status_code == 400
    assert response.text == message
    assert response.headers.get("access-control-allow-origin") == allowed_origin
    assert response.headers["access-control-allow-methods"] == "GET"
    assert response.headers["vary"] == VARY_PREFLIGHT


def test_preflight_wildcards(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(
        make_app(allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])
    )
    headers = {
        "Origin": "https://a.com",
        "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "x-bar, X-Baz",
    }
    response = client.options("/", headers=headers)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-headers"] == "x-bar, X-Baz"
    response = client.options("/", headers={**headers, "Access-Control-Request-Method": "FOO"})
    assert response.status_code == 400
    assert response.text == "Disallowed CORS method"
    assert response.headers["access-control-allow-origin"] == "*"


def test_preflight_all_headers_echoes_empty_list(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app(allow_origins=["https://a.com"], allow_headers=["*"]))
    response = client.options(
        "/",
        headers={
            "Origin": "https://a.com",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-headers"] == ""


def test_preflight_with_credentials_echoes_origin(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app(allow_origins=["*"], allow_credentials=True))
    response = client.options(
        "/", headers={"Origin": "https://a.com", "Access-Control-Request-Method": "PUT"}
    )
    assert response.status_code == 400
    assert response.text == "Disallowed CORS method"
    assert response.headers["access-control-allow-origin"] == "https://a.com"
    assert response.headers["access-control-allow-credentials"] == "true"


def test_private_network(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(
        make_app(allow_origins=["https://a.com"], allow_private_network=True)
    )
    for value in ("true", "false"):
        response = client.options(
            "/",
            headers={
                "Origin": "https://a.com",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Private-Network": value,
            },
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-private-network"] == "true"


def test_options_that_is_not_a_preflight(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app(allow_origins=["*"]))
    # No Access-Control-Request-Method, or no Origin: the endpoint answers.
    response = client.options("/", headers={"Origin": "https://a.com"})
    assert response.text == "Homepage"
    assert response.headers["access-control-allow-origin"] == "*"
    response = client.options("/", headers={"Access-Control-Request-Method": "GET"})
    assert response.text == "Homepage"
    assert response.headers["vary"] == "Origin"


def test_public_methods() -> None:
    middleware = CORSMiddleware(hello, allow_origins=["https://a.com"])
    assert middleware.is_allowed_origin("https://a.com")
    assert not middleware.is_allowed_origin("https://b.com")
    response = middleware.preflight_response(
        Headers({"origin": "https://a.com", "access-control-request-method": "GET"})
    )
    assert isinstance(response, PlainTextResponse)
    assert response.status_code == 200
    headers = MutableHeaders(raw=[(b"vary", b"Accept")])
    assert CORSMiddleware.allow_explicit_origin(headers, "https://x") is None
    assert headers.raw == [
        (b"vary", b"Accept, Origin"),
        (b"access-control-allow-origin", b"https://x"),
    ]


@pytest.mark.anyio
async def test_send_passes_other_messages() -> None:
    middleware = CORSMiddleware(hello, allow_origins=["https://a.com"])
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    body: Message = {"type": "http.response.body", "body": b"x"}
    await middleware.send(body, send, Headers({"origin": "https://a.com"}))
    assert sent == [body]
    # "headers" is optional in an ASGI response start.
    start: Message = {"type": "http.response.start", "status": 204}
    await middleware.send(start, send, Headers({"origin": "https://a.com"}))
    assert sent[-1]["headers"] == [
        (b"access-control-allow-origin", b"https://a.com"),
        (b"vary", b"Origin"),
    ]


@pytest.mark.parametrize(
    "origin",
    [
        b"https://a.com\r\nSet-Cookie: x=1",
        b"https://a.com\n",
        b"https://a .com",
        b"https://\xc3\xa9.com",
        b"",
        b"https://" + b"a" * MAX_ORIGIN_LENGTH + b".com",
    ],
)
@pytest.mark.anyio
async def test_hostile_origin_is_never_echoed(origin: bytes) -> None:
    # Starlette echoes any Origin under "*" with credentials, CR/LF included.
    app = CORSMiddleware(
        hello, allow_origins=["*"], allow_credentials=True, allow_origin_regex=r"https://.*"
    )
    sent = await drive(app, [(b"origin", origin)])
    values = [value for _, value in sent[0]["headers"]]
    assert origin not in values
    assert (b"access-control-allow-origin", b"*") in sent[0]["headers"]

    preflight = await drive(
        app, [(b"origin", origin), (b"access-control-request-method", b"GET")], method="OPTIONS"
    )
    assert preflight[0]["status"] == 400
    assert preflight[1]["body"] == b"Disallowed CORS origin"
    assert origin not in [value for _, value in preflight[0]["headers"]]


@pytest.mark.anyio
async def test_hostile_origin_against_a_regex() -> None:
    app = CORSMiddleware(hello, allow_origin_regex=r"https://.*")
    sent = await drive(app, [(b"origin", b"https://a.com\r")])
    assert sent[0]["headers"] == [(b"content-length", b"5"), (b"vary", b"Origin")]


@pytest.mark.anyio
async def test_hostile_requested_headers_are_never_echoed() -> None:
    app = CORSMiddleware(hello, allow_origins=["https://a.com"], allow_headers=["*"])
    sent = await drive(
        app,
        [
            (b"origin", b"https://a.com"),
            (b"access-control-request-method", b"GET"),
            (b"access-control-request-headers", b"x-a\r\nSet-Cookie: x=1"),
        ],
        method="OPTIONS",
    )
    assert sent[0]["status"] == 400
    assert sent[1]["body"] == b"Disallowed CORS headers"
    assert not any(name == b"access-control-allow-headers" for name, _ in sent[0]["headers"])


@pytest.mark.anyio
async def test_first_origin_header_counts() -> None:
    app = CORSMiddleware(hello, allow_origins=["https://a.com"])
    sent = await drive(app, [(b"origin", b"https://b.com"), (b"origin", b"https://a.com")])
    assert (b"access-control-allow-origin", b"https://a.com") not in sent[0]["headers"]


@pytest.mark.anyio
async def test_other_scopes_pass_through() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    middleware = CORSMiddleware(app, allow_origins=["https://a.com"])
    for scope_type in ("websocket", "lifespan"):
        scope: Scope = {"type": scope_type, "headers": [(b"origin", b"https://evil.com")]}
        await middleware(scope, None, None)  # type: ignore[arg-type]
        assert seen[-1] is scope


def test_websocket_is_not_touched(test_client_factory: TestClientFactory) -> None:
    async def ws_app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close"})

    client = test_client_factory(CORSMiddleware(ws_app, allow_origins=["https://a.com"]))
    with client.websocket_connect("/", headers={"Origin": "https://evil.com"}):
        pass


@pytest.mark.anyio
async def test_repeated_response_headers() -> None:
    # As MutableHeaders would: a set header replaces its first copy, Vary values are joined.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"access-control-allow-origin", b"x"),
            (b"vary", b"A"),
            (b"access-control-allow-origin", b"y"),
            (b"vary", b"B"),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    sent = await drive(
        CORSMiddleware(app, allow_origins=["https://a.com"]), [(b"origin", b"https://a.com")]
    )
    assert sent[0]["headers"] == [
        (b"access-control-allow-origin", b"https://a.com"),
        (b"vary", b"A, B, Origin"),
        (b"content-length", b"0"),
    ]


def test_requested_headers_limit(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app(allow_origins=["https://a.com"]))
    headers = {"Origin": "https://a.com", "Access-Control-Request-Method": "GET"}
    names = ",".join(["accept"] * MAX_REQUESTED_HEADERS)
    response = client.options("/", headers={**headers, "Access-Control-Request-Headers": names})
    assert response.status_code == 200
    names += ",accept"
    response = client.options("/", headers={**headers, "Access-Control-Request-Headers": names})
    assert response.status_code == 400
    assert response.text == "Disallowed CORS headers"
