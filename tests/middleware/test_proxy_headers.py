"""ProxyHeadersMiddleware: trusted peers, the right-most untrusted hop, Forwarded and
X-Forwarded-*, and hostile values that must change nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from starling.applications import Starling
from starling.middleware import Middleware
from starling.middleware.httpsredirect import HTTPSRedirectMiddleware
from starling.middleware.proxy_headers import MAX_PREFIX_LENGTH, ProxyHeadersMiddleware
from starling.requests import Request
from starling.responses import JSONResponse
from starling.routing import Route, WebSocketRoute
from starling.types import Message, Receive, Scope, Send
from starling.websockets import WebSocket
from tests.types import TestClientFactory

PEER = ("127.0.0.1", 4321)


async def drive(
    middleware_options: dict[str, Any] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
    host: bytes | None = b"internal:8000",
    **scope_values: Any,
) -> tuple[Scope, Scope]:
    """The scope the app behind the middleware sees, and the scope that went in."""
    scope: Scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [*([(b"host", host)] if host is not None else []), *(headers or [])],
        "server": ("10.1.1.1", 8000),
        "client": PEER,
        **scope_values,
    }
    original = {**scope, "headers": list(scope["headers"])}
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    async def receive() -> Message:  # pragma: no cover (never read)
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:  # pragma: no cover (nothing is sent)
        pass

    await ProxyHeadersMiddleware(app, **(middleware_options or {}))(scope, receive, send)
    assert scope == original, "the server's scope must never be edited"
    return seen[0], scope


async def url_and_client(headers: list[tuple[bytes, bytes]], **options: Any) -> tuple[str, Any]:
    scope, _ = await drive(options, headers)
    return str(Request(scope).url), scope["client"]


# -- who is trusted -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_untrusted_peer_headers_are_ignored() -> None:
    headers = [
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"evil.example"),
        (b"forwarded", b"for=5.6.7.8;proto=https;host=evil.example"),
    ]
    for client in [("203.0.113.9", 1), ("testclient", 50000), None, ("", 0)]:
        seen, original = await drive(None, headers, client=client)
        assert seen is original
        options = {"trusted_hosts": ["127.0.0.1", "10.0.0.0/8"]}
        seen, original = await drive(options, headers, client=client)
        assert seen is original


@pytest.mark.anyio
async def test_trusted_peer_gives_the_client() -> None:
    url, client = await url_and_client([(b"x-forwarded-for", b"203.0.113.9")])
    assert client == ("203.0.113.9", 0)
    assert url == "http://internal:8000/"


@pytest.mark.anyio
async def test_forged_chain_left_of_the_first_untrusted_hop_is_ignored() -> None:
    # The client sent "6.6.6.6, 127.0.0.1"; our proxy appended the address it saw.
    forged = b"6.6.6.6, 127.0.0.1, 203.0.113.9"
    _, client = await url_and_client([(b"x-forwarded-for", forged)])
    assert client == ("203.0.113.9", 0)
    # With a trusted network of proxies, walk past each of them.
    chain = b"6.6.6.6, 203.0.113.9:555, 10.0.0.2, 10.0.0.1"
    _, client = await url_and_client(
        [(b"x-forwarded-for", chain)], trusted_hosts=["127.0.0.1", "10.0.0.0/8"]
    )
    assert client == ("203.0.113.9", 555)


@pytest.mark.anyio
async def test_several_header_lines_are_one_list() -> None:
    headers = [(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"203.0.113.9, ::1")]
    _, client = await url_and_client(headers)
    assert client == ("203.0.113.9", 0)


@pytest.mark.anyio
async def test_trust_all_takes_the_left_most_hop() -> None:
    _, client = await url_and_client(
        [(b"x-forwarded-for", b"203.0.113.9, 198.51.100.1")], trusted_hosts="*"
    )
    assert client == ("203.0.113.9", 0)
    seen, _ = await drive({"trusted_hosts": ["*"]}, [(b"x-forwarded-for", b"1.1.1.1")], client=None)
    assert seen["client"] == ("1.1.1.1", 0)


@pytest.mark.anyio
async def test_every_hop_trusted_gives_the_left_most() -> None:
    _, client = await url_and_client(
        [(b"x-forwarded-for", b"10.0.0.3, 10.0.0.2")], trusted_hosts="127.0.0.1, 10.0.0.0/8"
    )
    assert client == ("10.0.0.3", 0)


@pytest.mark.anyio
async def test_ipv6_peers_and_hops() -> None:
    seen, _ = await drive(
        {"trusted_hosts": ["2001:db8::/32"]},
        [(b"x-forwarded-for", b"[2001:db9::5]:80, 2001:db8::7")],
        client=("2001:db8::1", 1),
    )
    assert seen["client"] == ("2001:db9::5", 80)
    for peer in ["not:an:address", "2001:db9::1", "10.0.0.1"]:  # none of them trusted
        seen, original = await drive(
            {"trusted_hosts": ["2001:db8::/32"]},
            [(b"x-forwarded-for", b"1.2.3.4")],
            client=(peer, 1),
        )
        assert seen is original


def test_misconfiguration_fails_at_construction() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None: ...  # pragma: no cover

    with pytest.raises(ValueError, match="'proxy.example' is not an IP address or network"):
        ProxyHeadersMiddleware(app, trusted_hosts=["proxy.example"])
    with pytest.raises(ValueError, match="proxy_headers must be one of 'auto', 'forwarded'"):
        ProxyHeadersMiddleware(app, proxy_headers="legacy")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_other_scope_types_pass_untouched() -> None:
    seen, original = await drive(
        {"trusted_hosts": "*"}, [(b"x-forwarded-for", b"1.2.3.4")], type="lifespan"
    )
    assert seen is original


# -- scheme, host, port, prefix ------------------------------------------------------------


@pytest.mark.anyio
async def test_x_forwarded_proto_host_and_port() -> None:
    url, _ = await url_and_client(
        [(b"x-forwarded-proto", b"HTTPS"), (b"x-forwarded-host", b"www.example.com")]
    )
    assert url == "https://www.example.com/"
    url, _ = await url_and_client(
        [
            (b"x-forwarded-proto", b"https"),
            (b"x-forwarded-host", b"www.example.com:8443"),
            (b"x-forwarded-port", b"443"),
        ]
    )
    assert url == "https://www.example.com/"
    url, _ = await url_and_client([(b"x-forwarded-port", b"8080")])
    assert url == "http://internal:8080/"
    url, _ = await url_and_client([(b"x-forwarded-host", b"[::1]:9000")])
    assert url == "http://[::1]:9000/"


@pytest.mark.anyio
async def test_the_host_header_is_replaced_not_duplicated() -> None:
    scope, _ = await drive(None, [(b"x-forwarded-host", b"example.com"), (b"accept", b"*/*")])
    assert scope["headers"] == [
        (b"host", b"example.com"),
        (b"x-forwarded-host", b"example.com"),
        (b"accept", b"*/*"),
    ]


@pytest.mark.anyio
async def test_per_hop_values_follow_the_client_hop() -> None:
    # Two proxies appended: the edge one (10.0.0.5) saw https from the client.
    headers = [
        (b"x-forwarded-for", b"203.0.113.9, 10.0.0.5"),
        (b"x-forwarded-proto", b"https, http"),
        (b"x-forwarded-host", b"public.example, internal.lb"),
    ]
    url, client = await url_and_client(headers, trusted_hosts=["127.0.0.1", "10.0.0.0/8"])
    assert (url, client) == ("https://public.example/", ("203.0.113.9", 0))
    # A proxy that overwrote rather than appended: the single value is used.
    url, _ = await url_and_client(
        [(b"x-forwarded-for", b"203.0.113.9, 10.0.0.5"), (b"x-forwarded-proto", b"https")],
        trusted_hosts=["127.0.0.1", "10.0.0.0/8"],
    )
    assert url == "https://internal:8000/"


@pytest.mark.anyio
async def test_websocket_schemes() -> None:
    for proto, scheme in [(b"https", "wss"), (b"wss", "wss"), (b"http", "ws"), (b"ws", "ws")]:
        seen, _ = await drive(None, [(b"x-forwarded-proto", proto)], type="websocket", scheme="ws")
        assert seen["scheme"] == scheme
    seen, _ = await drive(None, [(b"x-forwarded-proto", b"wss")])
    assert seen["scheme"] == "https"
    seen, _ = await drive(None, [(b"x-forwarded-proto", b"https")], type="websocket")
    assert seen["scheme"] == "wss"  # no scheme in the scope: the websocket default applies
    scope: dict[str, Any] = {"type": "http"}
    seen, _ = await drive(None, [(b"x-forwarded-host", b"h:80")], **scope)
    assert seen["headers"][0] == (b"host", b"h")


@pytest.mark.anyio
async def test_x_forwarded_prefix_sets_the_root_path() -> None:
    seen, _ = await drive(
        None, [(b"x-forwarded-prefix", b"/api/v1/")], path="/users", raw_path=b"/users"
    )
    assert (seen["root_path"], seen["path"], seen["raw_path"]) == (
        "/api/v1",
        "/api/v1/users",
        b"/api/v1/users",
    )
    assert str(Request(seen).url) == "http://internal:8000/api/v1/users"
    seen, _ = await drive(None, [(b"x-forwarded-prefix", b"/caf%C3%A9")], raw_path=None)
    assert (seen["root_path"], seen["raw_path"]) == ("/café", None)
    seen, _ = await drive(
        None, [(b"x-forwarded-prefix", b"/p")], root_path="/inner", path="/inner/x"
    )
    assert (seen["root_path"], seen["path"]) == ("/p/inner", "/p/inner/x")


# -- Forwarded ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_forwarded_for_proto_host_by() -> None:
    value = b'for=6.6.6.6, for="[2001:db8::9]:4711";proto=https;host=shop.example;by=192.0.2.1'
    seen, _ = await drive(None, [(b"forwarded", value)])
    assert seen["client"] == ("2001:db8::9", 4711)
    assert seen["scheme"] == "https"
    assert seen["server"] == ("192.0.2.1", 443)
    assert str(Request(seen).url) == "https://shop.example/"
    seen, _ = await drive(None, [(b"forwarded", b'for=1.1.1.1;by="[::2]:8080"')])
    assert seen["server"] == ("::2", 8080)


@pytest.mark.anyio
async def test_forwarded_hidden_and_unknown_clients() -> None:
    seen, _ = await drive(None, [(b"forwarded", b"for=_hidden;by=_proxy")])
    assert seen["client"] == ("_hidden", 0)
    assert seen["server"] == ("10.1.1.1", 8000)  # an obfuscated "by" is no address
    seen, _ = await drive(None, [(b"forwarded", b'for="unknown:_p"')])
    assert seen["client"] == ("unknown", 0)


@pytest.mark.anyio
async def test_forwarded_element_without_for_keeps_the_peer() -> None:
    seen, _ = await drive(None, [(b"forwarded", b"for=1.1.1.1, proto=https")])
    assert seen["client"] == PEER
    assert seen["scheme"] == "https"


@pytest.mark.anyio
async def test_forwarded_walks_trusted_hops() -> None:
    value = b"for=6.6.6.6, for=203.0.113.9;proto=https, for=10.0.0.1;proto=http"
    seen, _ = await drive({"trusted_hosts": ["127.0.0.1", "10.0.0.0/8"]}, [(b"forwarded", value)])
    assert (seen["client"], seen["scheme"]) == (("203.0.113.9", 0), "https")


@pytest.mark.anyio
async def test_which_header_family_is_read() -> None:
    both = [
        (b"forwarded", b"for=1.1.1.1;proto=https"),
        (b"x-forwarded-for", b"2.2.2.2"),
    ]
    seen, _ = await drive(None, both)
    assert seen["client"] == ("2.2.2.2", 0)
    assert seen["scheme"] == "http"
    seen, _ = await drive({"proxy_headers": "forwarded"}, both)
    assert (seen["client"], seen["scheme"]) == (("1.1.1.1", 0), "https")
    seen, _ = await drive({"proxy_headers": "x-forwarded"}, both)
    assert seen["client"] == ("2.2.2.2", 0)
    seen, original = await drive({"proxy_headers": "x-forwarded"}, both[:1])
    assert seen is original
    seen, original = await drive({"proxy_headers": "forwarded"}, both[1:])
    assert seen is original
    seen, original = await drive(None, [(b"accept", b"*/*")])
    assert seen is original


# -- hostile values -------------------------------------------------------------------------

HOSTILE_HOSTS = [
    b"evil.example/path",
    b"user@evil.example",
    b"evil.example:99999",
    b"evil example",
    b"evil.example\r\nX-Injected: 1",
    b"",
    b"a" * 300,
    b"[::g]",
    b"evil.example?x",
    b"evil.example#x",
    b"\xff\xfe",
]


@pytest.mark.anyio
@pytest.mark.parametrize("host", HOSTILE_HOSTS)
async def test_hostile_hosts_never_change_the_authority(host: bytes) -> None:
    url, _ = await url_and_client([(b"x-forwarded-host", host)])
    assert url == "http://internal:8000/"
    quoted = b'"' + host.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    url, _ = await url_and_client([(b"forwarded", b"for=1.2.3.4;host=" + quoted)])
    assert url == "http://internal:8000/"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "port", [b"99999", b"-1", b"80a", b"", b"1e3", b"\xd9\xa1", b"0x50", b"123456"]
)
async def test_hostile_ports_are_ignored(port: bytes) -> None:
    url, _ = await url_and_client([(b"x-forwarded-port", port)])
    assert url == "http://internal:8000/"
    url, _ = await url_and_client(
        [(b"x-forwarded-host", b"example.com:81"), (b"x-forwarded-port", port)]
    )
    assert url == "http://example.com:81/"


@pytest.mark.anyio
async def test_a_forwarded_port_with_no_valid_host_changes_nothing() -> None:
    for host in [None, b"bad host"]:
        scope, original = await drive(None, [(b"x-forwarded-port", b"8443")], host=host)
        assert scope is original


@pytest.mark.anyio
@pytest.mark.parametrize(
    "proto", [b"javascript", b"ftp", b"https://evil", b"", b"http s", b"\xff", b"HTTPS\x00"]
)
async def test_hostile_schemes_are_ignored(proto: bytes) -> None:
    seen, _ = await drive(None, [(b"x-forwarded-proto", proto)])
    assert seen["scheme"] == "http"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "prefix",
    [
        b"api",  # no leading "/"
        b"/",
        b"//evil.example",
        b"/a//b",
        b"/a/../b",
        b"/..",
        b"/a/./b",
        b"/%2e%2e",
        b"/%2E%2E/x",
        b"/a%2Fb",
        b"/a%00b",
        b"/a%0d%0aX: y",
        b"/a%3Fx",
        b"/a%23x",
        b"/a%5Cb",
        b"/a%ffb",
        b"/a b",
        b"/a?b",
        b"/a\\b",
        b"http://evil.example/",
        b"/" + b"a" * MAX_PREFIX_LENGTH,
        b"/\xc3\xa9",
    ],
)
async def test_hostile_prefixes_are_ignored(prefix: bytes) -> None:
    seen, _ = await drive(None, [(b"x-forwarded-prefix", prefix)])
    assert (seen["root_path"], seen["path"]) == ("", "/")


@pytest.mark.anyio
@pytest.mark.parametrize(
    "chain",
    [
        b"garbage",
        b"1.2.3.4, garbage",
        b"1.2.3.4, 127.0.0.1, not-an-ip",
        b"1.2.3.4:99999",
        b",".join([b"127.0.0.1"] * 200),  # too many hops, every one trusted
        b"1.2.3.4\r\n",
        b"",
        b"<script>",
    ],
)
async def test_broken_x_forwarded_for_chains_change_nothing(chain: bytes) -> None:
    headers = [
        (b"x-forwarded-for", chain),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"evil.example"),
    ]
    seen, original = await drive(None, headers)
    assert seen is original


@pytest.mark.anyio
async def test_a_long_forged_prefix_does_not_hide_the_client() -> None:
    forged = b", ".join([b"6.6.6.6"] * 5000) + b", 203.0.113.9"
    _, client = await url_and_client([(b"x-forwarded-for", forged)])
    assert client == ("203.0.113.9", 0)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "value",
    [
        b'for="1.2.3.4',  # a client's unterminated quote swallowing the proxy's element
        b"for=1.2.3.4;for=5.6.7.8",
        b"for=garbage",
        b"for=1.2.3.4 for=5.6.7.8",
        b",".join([b"for=127.0.0.1"] * 200),
        b"for=1.2.3.4;host=evil.example\x00",
    ],
)
async def test_broken_forwarded_headers_change_nothing(value: bytes) -> None:
    seen, original = await drive(None, [(b"forwarded", value)])
    assert seen is original


# -- through an app -------------------------------------------------------------------------


async def describe(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "url": str(request.url),
            "client": list(request.client or ()),
            "url_for": str(request.url_for("describe")),
            "root_path": request.scope["root_path"],
        }
    )


async def ws_describe(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"url": str(websocket.url), "client": list(websocket.client or ())})
    await websocket.close()


def proxied_app(*middleware: Middleware) -> Starling:
    return Starling(
        routes=[Route("/describe", describe), WebSocketRoute("/ws", ws_describe)],
        middleware=[Middleware(ProxyHeadersMiddleware, trusted_hosts=["127.0.0.1"]), *middleware],
    )


def test_url_for_behind_a_proxy(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(proxied_app(), client=("127.0.0.1", 123))
    response = client.get(
        "/describe",
        headers={
            "x-forwarded-for": "203.0.113.9",
            "x-forwarded-proto": "https",
            "x-forwarded-host": "example.com",
            "x-forwarded-prefix": "/app",
        },
    )
    assert response.json() == {
        "url": "https://example.com/app/describe",
        "client": ["203.0.113.9", 0],
        "url_for": "https://example.com/app/describe",
        "root_path": "/app",
    }


def test_websocket_behind_a_proxy(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(proxied_app(), client=("127.0.0.1", 123))
    headers = {"forwarded": 'for="[2001:db8::1]";proto=https;host=example.com'}
    with client.websocket_connect("/ws", headers=headers) as websocket:
        assert websocket.receive_json() == {
            "url": "wss://example.com/ws",
            "client": ["2001:db8::1", 0],
        }


def test_https_redirect_behind_a_proxy(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(
        proxied_app(Middleware(HTTPSRedirectMiddleware)), client=("127.0.0.1", 123)
    )
    secure = client.get(
        "/describe", headers={"x-forwarded-proto": "https", "x-forwarded-host": "example.com"}
    )
    assert secure.status_code == 200
    plain = client.get(
        "/describe?a=1",
        headers={"x-forwarded-proto": "http", "x-forwarded-host": "example.com"},
        follow_redirects=False,
    )
    assert plain.status_code == 307
    assert plain.headers["location"] == "https://example.com/describe?a=1"
    # From an untrusted peer the forwarded scheme is ignored: redirected to the real host.
    untrusted = test_client_factory(proxied_app(Middleware(HTTPSRedirectMiddleware)))
    response = untrusted.get(
        "/describe",
        headers={"x-forwarded-proto": "https", "x-forwarded-host": "evil.example"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "https://testserver/describe"


def test_the_docs_example_does_what_the_docs_say(test_client_factory: TestClientFactory) -> None:
    page = (Path(__file__).parents[2] / "docs" / "proxy_headers.md").read_text()
    namespace: dict[str, Any] = {}
    exec(page.split("```python\n")[1].split("```")[0], namespace)
    client = test_client_factory(namespace["app"], client=("127.0.0.1", 5555))
    response = client.get(
        "/whoami",
        headers={
            "x-forwarded-for": "203.0.113.9",
            "x-forwarded-proto": "https",
            "x-forwarded-host": "shop.example",
            "x-forwarded-prefix": "/store",
        },
    )
    documented = page.split("```console\n")[1].split("```")[0].splitlines()[-1]
    assert response.json() == json.loads(documented)
