"""SecurityHeadersMiddleware and ContentSecurityPolicy: defaults, one keyword per header, HSTS on
https only, the per-request nonce, headers the app set, and values that would inject."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from starling.applications import Starling
from starling.middleware import Middleware
from starling.middleware.security import (
    DEFAULT_CSP_DIRECTIVES,
    NONCE,
    ContentSecurityPolicy,
    SecurityHeadersMiddleware,
)
from starling.requests import Request
from starling.responses import PlainTextResponse, Response, StreamingResponse
from starling.routing import Route, WebSocketRoute
from starling.templating import Jinja2Templates
from starling.types import Message, Receive, Scope, Send
from starling.websockets import WebSocket
from tests.types import TestClientFactory

DEFAULT_CSP = (
    "default-src 'self'; base-uri 'self'; font-src 'self' https: data:; form-action 'self'; "
    "frame-ancestors 'self'; img-src 'self' data:; object-src 'none'; "
    "script-src 'self' 'nonce-{nonce}'; script-src-attr 'none'; "
    "style-src 'self' https: 'unsafe-inline'; upgrade-insecure-requests"
)
DEFAULTS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "origin-agent-cluster": "?1",
    "x-dns-prefetch-control": "off",
    "x-download-options": "noopen",
    "x-permitted-cross-domain-policies": "none",
    "x-xss-protection": "0",
}
KEYWORDS = {
    "frame_options": "x-frame-options",
    "content_type_options": "x-content-type-options",
    "referrer_policy": "referrer-policy",
    "cross_origin_opener_policy": "cross-origin-opener-policy",
    "cross_origin_resource_policy": "cross-origin-resource-policy",
    "cross_origin_embedder_policy": "cross-origin-embedder-policy",
    "permissions_policy": "permissions-policy",
    "origin_agent_cluster": "origin-agent-cluster",
    "dns_prefetch_control": "x-dns-prefetch-control",
    "download_options": "x-download-options",
    "permitted_cross_domain_policies": "x-permitted-cross-domain-policies",
    "xss_protection": "x-xss-protection",
    "hsts": "strict-transport-security",
    "content_security_policy": "content-security-policy",
    "content_security_policy_report_only": "content-security-policy-report-only",
}


async def nonce_page(request: Request) -> PlainTextResponse:
    # no nonce when the policy has none (or is turned off)
    return PlainTextResponse(getattr(request.state, "csp_nonce", "-"))


async def own_headers(request: Request) -> Response:
    return Response(
        "own",
        headers={
            "X-Frame-Options": "SAMEORIGIN",
            "Content-Security-Policy": "default-src 'none'",
            "Strict-Transport-Security": "max-age=60",
        },
    )


async def stream(request: Request) -> StreamingResponse:
    async def chunks() -> Any:
        yield b"one,"
        yield b"two"

    return StreamingResponse(chunks())


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hi")
    await websocket.close()


def make_app(**options: Any) -> Starling:
    return Starling(
        routes=[
            Route("/", nonce_page),
            Route("/own", own_headers),
            Route("/stream", stream),
            WebSocketRoute("/ws", ws),
        ],
        middleware=[Middleware(SecurityHeadersMiddleware, **options)],
    )


def test_defaults_on_http(test_client_factory: TestClientFactory) -> None:
    response = test_client_factory(make_app()).get("/")
    for name, value in DEFAULTS.items():
        assert response.headers[name] == value
    assert "strict-transport-security" not in response.headers
    assert "cross-origin-embedder-policy" not in response.headers
    assert "permissions-policy" not in response.headers
    assert response.headers["content-security-policy"] == DEFAULT_CSP.format(nonce=response.text)


def test_hsts_only_on_https(test_client_factory: TestClientFactory) -> None:
    secure = test_client_factory(make_app(), base_url="https://testserver").get("/")
    assert secure.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    preload = make_app(hsts="max-age=63072000; includeSubDomains; preload")
    response = test_client_factory(preload, base_url="https://testserver").get("/")
    assert response.headers["strict-transport-security"].endswith("; preload")
    plain = test_client_factory(preload).get("/")
    assert "strict-transport-security" not in plain.headers


def test_a_fresh_nonce_per_request(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app())
    nonces = [client.get("/").text for _ in range(5)]
    assert len(set(nonces)) == 5
    for nonce in nonces:
        # 16 random bytes, base64url: a valid CSP base64-value of 128 bits
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", nonce)


def test_the_nonce_in_a_jinja2_template(
    test_client_factory: TestClientFactory, tmp_path: Path
) -> None:
    (tmp_path / "page.html").write_text(
        '<script nonce="{{ request.state.csp_nonce }}">go()</script>'
    )
    templates = Jinja2Templates(directory=str(tmp_path))

    def page(request: Request) -> Response:  # sync: template loading reads files
        return templates.TemplateResponse(request, "page.html")

    app = Starling(routes=[Route("/", page)], middleware=[Middleware(SecurityHeadersMiddleware)])
    response = test_client_factory(app).get("/")
    nonce = re.fullmatch(r'<script nonce="([^"]+)">go\(\)</script>', response.text)
    assert nonce is not None
    assert f"'nonce-{nonce[1]}'" in response.headers["content-security-policy"]


@pytest.mark.parametrize("keyword", sorted(KEYWORDS))
def test_every_header_can_be_turned_off(
    test_client_factory: TestClientFactory, keyword: str
) -> None:
    client = test_client_factory(make_app(**{keyword: None}), base_url="https://testserver")
    response = client.get("/")
    assert KEYWORDS[keyword] not in response.headers
    others = set(DEFAULTS) | {"strict-transport-security", "content-security-policy"}
    for name in others - {KEYWORDS[keyword]}:
        assert name in response.headers


@pytest.mark.parametrize("keyword", sorted(KEYWORDS))
def test_every_header_can_be_changed(test_client_factory: TestClientFactory, keyword: str) -> None:
    value = "default-src 'none'" if "content_security" in keyword else "custom-value"
    client = test_client_factory(make_app(**{keyword: value}), base_url="https://testserver")
    assert client.get("/").headers[KEYWORDS[keyword]] == value


def test_headers_the_app_set_are_kept(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app(), base_url="https://testserver")
    response = client.get("/own")
    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert response.headers.get_list("content-security-policy") == ["default-src 'none'"]
    assert response.headers.get_list("strict-transport-security") == ["max-age=60"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_streaming_responses_get_the_headers_once(test_client_factory: TestClientFactory) -> None:
    response = test_client_factory(make_app()).get("/stream")
    assert response.text == "one,two"
    assert response.headers.get_list("x-frame-options") == ["DENY"]


def test_websockets_and_lifespan_pass_through(test_client_factory: TestClientFactory) -> None:
    with test_client_factory(make_app()) as client, client.websocket_connect("/ws") as session:
        assert session.receive_text() == "hi"


def test_report_only_shares_the_nonce(test_client_factory: TestClientFactory) -> None:
    app = make_app(
        content_security_policy="script-src 'nonce-{nonce}'",
        content_security_policy_report_only=ContentSecurityPolicy(
            {"script-src": ["'self'", NONCE], "report-to": "csp"}
        ),
    )
    response = test_client_factory(app).get("/")
    nonce = response.text
    assert response.headers["content-security-policy"] == f"script-src 'nonce-{nonce}'"
    assert response.headers["content-security-policy-report-only"] == (
        f"script-src 'self' 'nonce-{nonce}'; report-to csp"
    )


@pytest.mark.anyio
async def test_without_a_nonce_nothing_is_added_to_the_state() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await send({"type": "http.response.start", "status": 204, "headers": ((b"a", b"b"),)})
        await send({"type": "http.response.body", "body": b""})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:  # pragma: no cover (never read)
        return {"type": "http.request"}

    middleware = SecurityHeadersMiddleware(app, content_security_policy="default-src 'self'")
    scope: Scope = {"type": "http", "scheme": "http", "headers": []}
    await middleware(scope, receive, send)
    assert "state" not in seen[0]
    # ASGI allows a tuple of headers: the app's are kept first, ours follow.
    assert sent[0]["headers"][0] == (b"a", b"b")
    assert (b"content-security-policy", b"default-src 'self'") in sent[0]["headers"]
    assert sent[1] == {"type": "http.response.body", "body": b""}


@pytest.mark.anyio
async def test_a_start_message_with_every_header_set_is_passed_as_is() -> None:
    every = [(name.encode(), b"app") for name in KEYWORDS.values()]
    start: Message = {"type": "http.response.start", "status": 200, "headers": every}
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start)

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:  # pragma: no cover (never read)
        return {"type": "http.request"}

    scope: Scope = {"type": "http", "scheme": "https", "headers": [], "state": {"k": 1}}
    await SecurityHeadersMiddleware(app)(scope, receive, send)
    assert sent == [start]
    assert set(scope["state"]) == {"k", "csp_nonce"}


# -- the policy builder -------------------------------------------------------------------


def test_the_default_policy() -> None:
    policy = ContentSecurityPolicy()
    assert str(policy) == DEFAULT_CSP
    assert policy.uses_nonce
    assert repr(policy) == f"ContentSecurityPolicy({DEFAULT_CSP!r})"
    assert dict(DEFAULT_CSP_DIRECTIVES)["object-src"] == "'none'"


def test_changing_the_default_policy() -> None:
    policy = ContentSecurityPolicy(
        script_src=["'self'", NONCE, "https://cdn.example"],
        upgrade_insecure_requests=None,
        img_src=False,
        connect_src="'self' wss://live.example",
    )
    text = str(policy)
    assert "script-src 'self' 'nonce-{nonce}' https://cdn.example" in text
    assert "upgrade-insecure-requests" not in text
    assert "img-src" not in text
    assert text.endswith("; connect-src 'self' wss://live.example")


def test_a_policy_from_scratch() -> None:
    policy = ContentSecurityPolicy({"Default-Src": "'none'"}, block_all_mixed_content=True)
    assert str(policy) == "default-src 'none'; block-all-mixed-content"
    assert not policy.uses_nonce


@pytest.mark.parametrize(
    ("directives", "message"),
    [
        ({"script src": "'self'"}, "is not a CSP directive name"),
        ({"script;src": "'self'"}, "is not a CSP directive name"),
        ({"": "'self'"}, "is not a CSP directive name"),
        ({"script-src": "'self'; img-src *"}, "must be visible ASCII"),
        ({"script-src": "'self', default-src *"}, "must be visible ASCII"),
        ({"script-src": "'self'\r\nSet-Cookie: a=b"}, "must be visible ASCII"),
        ({"script-src": ["'self' https:"]}, "must be visible ASCII"),
        ({"script-src": ["\x00"]}, "must be visible ASCII"),
        ({"script-src": ["é"]}, "must be visible ASCII"),
        ({"script-src": [b"'self'"]}, "must be visible ASCII"),
        ({"script-src": [""]}, "must be visible ASCII"),
    ],
)
def test_policy_values_that_would_inject(directives: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ContentSecurityPolicy(directives)


@pytest.mark.parametrize(
    "value",
    ["DENY\r\nSet-Cookie: session=evil", "a\nb", "a\x00", "\x7f", 1, b"DENY"],
)
@pytest.mark.parametrize("keyword", sorted(KEYWORDS))
def test_header_values_that_would_inject_fail_at_construction(keyword: str, value: Any) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None: ...  # pragma: no cover

    if "content_security" in keyword and not isinstance(value, str):
        return  # a non-string policy is a mapping of directives: covered above
    with pytest.raises(ValueError, match=rf"{keyword}=.* is not a valid header value"):
        SecurityHeadersMiddleware(app, **{keyword: value})


@pytest.mark.parametrize("policy", ["", "  ", {}, ContentSecurityPolicy({})])
def test_an_empty_policy_is_a_configuration_error(policy: Any) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None: ...  # pragma: no cover

    with pytest.raises(ValueError, match="content_security_policy has no directives"):
        SecurityHeadersMiddleware(app, content_security_policy=policy)


def test_the_docs_example_does_what_the_docs_say(test_client_factory: TestClientFactory) -> None:
    page = (Path(__file__).parents[2] / "docs" / "security_headers.md").read_text()
    namespace: dict[str, Any] = {}
    exec(page.split("```python\n")[1].split("```")[0], namespace)
    client = test_client_factory(namespace["app"], base_url="https://testserver")
    response = client.get("/")
    nonce = re.search(r'nonce="([^"]+)"', response.text)
    assert nonce is not None
    documented = json.loads(page.split("```json\n")[1].split("```")[0])
    for name, value in documented.items():
        assert response.headers[name] == value.replace("NONCE", nonce[1]), name
