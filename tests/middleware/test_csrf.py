"""CSRFMiddleware: cross-origin refusal (Sec-Fetch-Site, Origin), the signed double-submit
token bound to the session, exempt paths, form bodies read without losing them, and hostile
input (tampered, missing and replayed tokens, Origin: null)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from starling._csrf import cookie_value, derive_key, mask, new_secret
from starling.applications import Starling
from starling.middleware import Middleware
from starling.middleware.csrf import (
    SESSION_KEY,
    CSRFMiddleware,
    csrf_context,
    csrf_input,
)
from starling.middleware.sessions import SessionMiddleware
from starling.requests import Request
from starling.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starling.routing import Route, WebSocketRoute
from starling.templating import Jinja2Templates
from starling.testclient import TestClient
from starling.types import Message, Receive, Scope, Send
from starling.websockets import WebSocket
from tests.types import TestClientFactory

SECRET = "a-secret-for-the-csrf-tests-only"


async def form_page(request: Request) -> HTMLResponse:
    return HTMLResponse(f"<form method=post>{csrf_input(request)}</form>")


async def token(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.state.csrf_token)


async def submit(request: Request) -> JSONResponse:
    async with request.form() as form:
        return JSONResponse({key: val for key, val in form.items() if isinstance(val, str)})


async def upload(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"size": len(body), "sha256": hashlib.sha256(body).hexdigest()})


async def login(request: Request) -> PlainTextResponse:
    request.session["user"] = request.query_params.get("user", "alice")
    return PlainTextResponse("in")


async def logout(request: Request) -> PlainTextResponse:
    request.session.clear()
    return PlainTextResponse("out")


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hi")
    await websocket.close()


ROUTES = [
    Route("/form", form_page),
    Route("/token", token),
    Route("/submit", submit, methods=["POST", "PUT", "DELETE", "PATCH"]),
    Route("/upload", upload, methods=["POST"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/webhooks/{name}", upload, methods=["POST"]),
    Route("/api/{name}", upload, methods=["POST"]),
    Route("/{path:path}", upload, methods=["POST"]),
    WebSocketRoute("/ws", ws),
]


def make_app(**options: Any) -> Starling:
    return Starling(
        routes=ROUTES,
        middleware=[
            Middleware(SessionMiddleware, secret_key="session-secret"),
            Middleware(CSRFMiddleware, secret=SECRET, **options),
        ],
    )


def client_with_token(
    test_client_factory: TestClientFactory, **options: Any
) -> tuple[TestClient, str]:
    client = test_client_factory(make_app(**options))
    response = client.get("/token")
    assert "csrftoken" in client.cookies
    return client, response.text


def replace_csrf_cookie(client: TestClient, value: str) -> None:
    client.cookies.delete("csrftoken")
    client.cookies.set("csrftoken", value)


def refusal(response: Any) -> str:
    assert response.status_code == 403, response.text
    message: str = response.text
    assert message.startswith("CSRF check failed: ")
    return message


# -- safe methods and the token ------------------------------------------------------------


def test_safe_methods_pass_and_get_a_token(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app())
    response = client.get("/token")
    assert response.status_code == 200
    assert re.fullmatch(r"[A-Za-z0-9_-]{86}", response.text)
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith("csrftoken=")
    assert "Max-Age=31536000" in set_cookie
    assert "Path=/" in set_cookie
    assert "SameSite=lax" in set_cookie
    assert "Secure" not in set_cookie
    assert "HttpOnly" not in set_cookie
    # a valid cookie is not sent again; the token is fresh for every request
    again = client.get("/token")
    assert "set-cookie" not in again.headers
    assert again.text != response.text
    for method in ("HEAD", "OPTIONS"):
        assert client.request(method, "/token").status_code in (200, 405)


def test_a_token_in_the_header(test_client_factory: TestClientFactory) -> None:
    client, csrf_token = client_with_token(test_client_factory)
    response = client.post("/submit", data={"a": "1"}, headers={"x-csrftoken": csrf_token})
    assert response.json() == {"a": "1"}
    for method in ("PUT", "PATCH", "DELETE"):
        response = client.request(method, "/submit", headers={"X-CSRFToken": csrf_token})
        assert response.status_code == 200


def test_the_cookie_value_as_the_token(test_client_factory: TestClientFactory) -> None:
    """What a single-page app reading the (not HttpOnly) cookie sends back."""
    client, _ = client_with_token(test_client_factory)
    cookie = client.cookies["csrftoken"]
    assert client.post("/upload", headers={"x-csrftoken": cookie}).status_code == 200


def test_a_token_in_an_urlencoded_form(test_client_factory: TestClientFactory) -> None:
    client, csrf_token = client_with_token(test_client_factory)
    response = client.post("/submit", data={"a": "1", "csrftoken": csrf_token, "b": "é"})
    assert response.json() == {"a": "1", "csrftoken": csrf_token, "b": "é"}


def test_a_token_in_a_multipart_form(test_client_factory: TestClientFactory) -> None:
    client, csrf_token = client_with_token(test_client_factory)
    response = client.post(
        "/submit",
        data={"csrftoken": csrf_token, "name": "x"},
        files={"file": ("f.txt", b"data" * 1000, "text/plain")},
    )
    assert response.json() == {"csrftoken": csrf_token, "name": "x"}


def test_the_form_helper_and_the_template_context(
    test_client_factory: TestClientFactory, tmp_path: Path
) -> None:
    client = test_client_factory(make_app())
    page = client.get("/form").text
    match = re.fullmatch(
        r'<form method=post><input type="hidden" name="csrftoken" value="([\w-]+)"></form>', page
    )
    assert match is not None
    assert client.post("/submit", data={"csrftoken": match[1]}).status_code == 200

    (tmp_path / "form.html").write_text("{{ csrf_input }}|{{ csrf_token }}|{{ missing }}")
    templates = Jinja2Templates(directory=str(tmp_path), context_processors=[csrf_context])

    def render(request: Request) -> Response:  # sync: template loading reads files
        return templates.TemplateResponse(request, "form.html", {"missing": "-"})

    app = Starling(
        routes=[Route("/", render)], middleware=[Middleware(CSRFMiddleware, secret=SECRET)]
    )
    text = test_client_factory(app).get("/").text
    field, value, _ = text.split("|")
    assert field == f'<input type="hidden" name="csrftoken" value="{value}">'  # not escaped
    bare = Starling(routes=[Route("/", render)])
    assert test_client_factory(bare).get("/").text == "||-"


def test_the_form_helper_without_the_middleware(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(Starling(routes=[Route("/form", form_page)]))
    with pytest.raises(RuntimeError, match="add CSRFMiddleware to the application"):
        client.get("/form")


def test_a_custom_field_name_is_escaped_in_the_helper(
    test_client_factory: TestClientFactory,
) -> None:
    client = test_client_factory(make_app(field_name='tok"en', header_name="X-Token"))
    page = client.get("/form").text
    assert 'name="tok&quot;en"' in page
    csrf_token = client.get("/token").text
    assert client.post("/upload", headers={"x-token": csrf_token}).status_code == 200
    assert client.post("/submit", data={'tok"en': csrf_token}).status_code == 200


# -- refusals and their messages -----------------------------------------------------------


def test_missing_cookie(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app())
    message = refusal(client.post("/upload"))
    assert message == "CSRF check failed: the CSRF cookie 'csrftoken' is missing."


def test_missing_token(test_client_factory: TestClientFactory) -> None:
    client, _ = client_with_token(test_client_factory)
    assert refusal(client.post("/upload", content=b"{}")) == (
        "CSRF check failed: no CSRF token in the 'x-csrftoken' header or the 'csrftoken' "
        "form field."
    )
    assert "no CSRF token" in refusal(client.post("/submit", data={"other": "1"}))
    # a text/plain "form", as a cross-site page can send without a preflight
    plain = client.post("/submit", content=b"csrftoken=x", headers={"content-type": "text/plain"})
    assert "no CSRF token" in refusal(plain)


def test_tampered_tokens(test_client_factory: TestClientFactory) -> None:
    client, csrf_token = client_with_token(test_client_factory)
    flipped = csrf_token[:-1] + ("A" if csrf_token[-1] != "A" else "B")
    bad_tokens = [flipped, csrf_token[:-1], csrf_token + "A", "", "x" * 86, "a" * 10_000]
    for bad in [value.encode() for value in bad_tokens] + ["é".encode() * 43]:
        message = refusal(client.post("/upload", headers={b"x-csrftoken": bad}))
        assert message == "CSRF check failed: the CSRF token does not match the cookie."
    assert "does not match" in refusal(client.post("/submit", data={"csrftoken": flipped}))


def test_tampered_cookies(test_client_factory: TestClientFactory) -> None:
    client, csrf_token = client_with_token(test_client_factory)
    cookie = client.cookies["csrftoken"]
    for bad in [cookie[:-1] + ("A" if cookie[-1] != "A" else "B"), cookie[:-2], "garbage", ""]:
        replace_csrf_cookie(client, bad)
        message = refusal(client.post("/upload", headers={"x-csrftoken": csrf_token}))
        assert message == (
            "CSRF check failed: the CSRF cookie is invalid or belongs to another session."
        )
        # a safe request replaces the bad cookie
        assert client.get("/token").headers["set-cookie"].startswith("csrftoken=")


def test_a_cookie_signed_with_another_secret(test_client_factory: TestClientFactory) -> None:
    other, csrf_token = client_with_token(test_client_factory)
    other_secret = test_client_factory(
        Starling(routes=ROUTES, middleware=[Middleware(CSRFMiddleware, secret="y" * 32)])
    )
    replace_csrf_cookie(other_secret, other.cookies["csrftoken"])
    assert "invalid" in refusal(other_secret.post("/upload", headers={"x-csrftoken": csrf_token}))


def test_a_token_replayed_from_another_session_fails(
    test_client_factory: TestClientFactory,
) -> None:
    """The attacker logs in, takes his own valid cookie and token, and plants them in the
    victim's browser (cookie tossing from a sibling subdomain): the victim's session differs."""
    attacker = test_client_factory(make_app())
    attacker.get("/token")
    attacker.post("/login?user=mallory", headers={"x-csrftoken": attacker.cookies["csrftoken"]})
    attacker_token = attacker.get("/token").text
    attacker_cookie = attacker.cookies["csrftoken"]
    assert attacker.post("/upload", headers={"x-csrftoken": attacker_token}).status_code == 200

    victim = test_client_factory(make_app())
    victim.get("/token")
    victim.post("/login?user=alice", headers={"x-csrftoken": victim.cookies["csrftoken"]})
    victim.get("/token")
    replace_csrf_cookie(victim, attacker_cookie)
    message = refusal(victim.post("/upload", headers={"x-csrftoken": attacker_token}))
    assert "belongs to another session" in message


def test_the_cookie_is_renewed_when_the_session_changes(
    test_client_factory: TestClientFactory,
) -> None:
    client, csrf_token = client_with_token(test_client_factory)
    anonymous_cookie = client.cookies["csrftoken"]
    response = client.post("/login", headers={"x-csrftoken": csrf_token})
    assert response.status_code == 200
    # APPSEC: a new secret, not the anonymous one re-signed (it may have been planted)
    logged_in_cookie = client.cookies["csrftoken"]
    assert logged_in_cookie[:43] != anonymous_cookie[:43]
    stale = refusal(client.post("/upload", headers={"x-csrftoken": csrf_token}))
    assert stale == "CSRF check failed: the CSRF token does not match the cookie."
    # the anonymous cookie no longer verifies against the logged-in session
    cookies = {"session": client.cookies["session"], "csrftoken": anonymous_cookie}
    replayed = test_client_factory(make_app(), cookies=cookies)
    message = refusal(replayed.post("/upload", headers={"x-csrftoken": csrf_token}))
    assert "another session" in message
    fresh = client.get("/token").text
    assert client.post("/upload", headers={"x-csrftoken": fresh}).status_code == 200
    assert client.post("/logout", headers={"x-csrftoken": fresh}).status_code == 200
    assert client.cookies["csrftoken"][:43] != logged_in_cookie[:43]
    assert "does not match" in refusal(client.post("/upload", headers={"x-csrftoken": fresh}))


def test_a_session_that_already_holds_data_gets_a_binding(
    test_client_factory: TestClientFactory,
) -> None:
    seen: dict[str, Any] = {}

    async def peek(request: Request) -> PlainTextResponse:
        seen.update(request.session)
        return PlainTextResponse("ok")

    routes = [Route("/login", login, methods=["POST"]), Route("/peek", peek)]
    session_only = test_client_factory(
        Starling(routes=routes, middleware=[Middleware(SessionMiddleware, secret_key="s")])
    )
    session_only.post("/login")
    app = Starling(
        routes=routes,
        middleware=[
            Middleware(SessionMiddleware, secret_key="s"),
            Middleware(CSRFMiddleware, secret=SECRET),
        ],
    )
    client = test_client_factory(app, cookies=session_only.cookies)
    client.get("/peek")
    assert seen["user"] == "alice"
    assert isinstance(seen[SESSION_KEY], str) and len(seen[SESSION_KEY]) >= 43


def test_without_session_binding(test_client_factory: TestClientFactory) -> None:
    client, csrf_token = client_with_token(test_client_factory, bind_to_session=False)
    cookie = client.cookies["csrftoken"]
    assert client.post("/login", headers={"x-csrftoken": csrf_token}).status_code == 200
    assert client.cookies["csrftoken"] == cookie
    assert client.post("/upload", headers={"x-csrftoken": csrf_token}).status_code == 200


# -- cross-origin refusal ------------------------------------------------------------------


@pytest.mark.parametrize("site", ["same-origin", "none", "SAME-ORIGIN"])
def test_fetch_metadata_same_origin_needs_no_token(
    test_client_factory: TestClientFactory, site: str
) -> None:
    client = test_client_factory(make_app())
    response = client.post("/upload", headers={"sec-fetch-site": site})
    assert response.status_code == 200


@pytest.mark.parametrize("site", ["cross-site", "same-site", "bogus", ""])
def test_fetch_metadata_cross_origin_is_refused(
    test_client_factory: TestClientFactory, site: str
) -> None:
    client, csrf_token = client_with_token(test_client_factory)
    response = client.post("/upload", headers={"sec-fetch-site": site, "x-csrftoken": csrf_token})
    assert refusal(response) == (
        f"CSRF check failed: cross-origin request (Sec-Fetch-Site: {site})."
    )


def test_trusted_origins(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(
        make_app(trusted_origins=["https://app.example", "http://LOCALHOST:8080"])
    )
    headers = {"sec-fetch-site": "cross-site", "origin": "https://app.example"}
    assert client.post("/upload", headers=headers).status_code == 200
    headers["origin"] = "https://app.example:443"
    assert client.post("/upload", headers=headers).status_code == 200
    headers["origin"] = "https://evil.example"
    assert "cross-origin" in refusal(client.post("/upload", headers=headers))
    # without Fetch Metadata: a trusted origin passes the origin check, then needs a token
    old_browser = {"origin": "http://localhost:8080"}
    assert "no CSRF token" in refusal(client.post("/upload", headers=old_browser))


def test_origin_without_fetch_metadata(test_client_factory: TestClientFactory) -> None:
    client, csrf_token = client_with_token(test_client_factory)
    good = {"x-csrftoken": csrf_token}
    for origin in ["http://testserver", "https://testserver", "http://TESTSERVER:80"]:
        response = client.post("/upload", headers={**good, "origin": origin})
        assert response.status_code == 200, origin
    for origin in [
        "http://evil.example",
        "http://testserver:8080",
        "http://testserver.evil.example",
        "http://user@testserver",
        "testserver",
        "http://testserver/",
        "http://",
        "http://[::g]",
    ]:
        message = refusal(client.post("/upload", headers={**good, "origin": origin}))
        assert message == (
            f"CSRF check failed: Origin {origin!r} does not match the host 'testserver'."
        )


def test_origin_null_is_refused(test_client_factory: TestClientFactory) -> None:
    client, csrf_token = client_with_token(test_client_factory)
    response = client.post("/upload", headers={"origin": "null", "x-csrftoken": csrf_token})
    assert refusal(response) == (
        "CSRF check failed: Origin null (an opaque origin: a sandboxed frame, a file, "
        "or a redirect)."
    )
    trusted = test_client_factory(make_app(trusted_origins=["https://a.example"]))
    response = trusted.post("/upload", headers={"origin": "null", "sec-fetch-site": "cross-site"})
    assert "cross-origin" in refusal(response)


def test_origin_against_a_host_with_a_port(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app(), base_url="http://testserver:8000")
    csrf_token = client.get("/token").text
    headers = {"x-csrftoken": csrf_token, "origin": "http://testserver:8000"}
    assert client.post("/upload", headers=headers).status_code == 200
    headers["origin"] = "http://testserver"
    assert "does not match" in refusal(client.post("/upload", headers=headers))


@pytest.mark.anyio
async def test_origin_against_a_missing_or_bad_host() -> None:
    middleware = CSRFMiddleware(upload_app, SECRET)
    for host in [None, b"bad host", b"a@b"]:
        headers = [(b"origin", b"http://a")] + ([(b"host", host)] if host else [])
        sent = await call(middleware, headers)
        assert sent[0]["status"] == 403
    sent = await call(middleware, [(b"origin", "é".encode()), (b"host", b"a")])
    assert sent[1]["body"] == "CSRF check failed: Origin 'Ã©' does not match the host 'a'.".encode()


# -- token_required, exempt paths, other scopes --------------------------------------------


def test_token_always_required(test_client_factory: TestClientFactory) -> None:
    client, csrf_token = client_with_token(test_client_factory, token_required="always")
    same_origin = {"sec-fetch-site": "same-origin"}
    assert "no CSRF token" in refusal(client.post("/upload", headers=same_origin))
    headers = {**same_origin, "x-csrftoken": csrf_token}
    assert client.post("/upload", headers=headers).status_code == 200


def test_token_never_required(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app(token_required="never"))
    assert client.post("/upload").status_code == 200  # not a browser: Go's behaviour
    assert "cross-origin" in refusal(
        client.post("/upload", headers={"sec-fetch-site": "cross-site"})
    )


def test_exempt_paths(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(
        make_app(exempt_paths=["/webhooks/*", "/exact", re.compile(r"/api/v[0-9]+")])
    )
    cross = {"sec-fetch-site": "cross-site"}
    for path in ["/webhooks/stripe", "/exact", "/api/v2"]:
        assert client.post(path, headers=cross).status_code == 200, path
    for path in ["/webhooks", "/exact/more", "/api/v2x"]:
        assert client.post(path, headers=cross).status_code == 403, path


@pytest.mark.anyio
@pytest.mark.parametrize(
    "path",
    ["/webhooks/../admin", "/webhooks/./x", "/webhooks//x", "/webhooks/a\\b", "/webhooks/.."],
)
async def test_unnormalised_paths_are_never_exempt(path: str) -> None:
    """Clients normalise dot segments; a raw request line need not, nor a proxy behind."""
    middleware = CSRFMiddleware(upload_app, SECRET, exempt_paths=["/webhooks/*"])
    sent = await call(middleware, [(b"sec-fetch-site", b"cross-site")], path=path)
    assert sent[0]["status"] == 403
    sent = await call(middleware, [(b"sec-fetch-site", b"cross-site")], path="/webhooks/x")
    assert sent[0]["status"] == 200


def test_exempt_paths_are_below_the_root_path(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app(exempt_paths=["/webhooks/*"]), root_path="/app")
    response = client.post("/app/webhooks/x", headers={"sec-fetch-site": "cross-site"})
    assert response.status_code == 200


def test_websockets_and_lifespan_pass(test_client_factory: TestClientFactory) -> None:
    with test_client_factory(make_app()) as client, client.websocket_connect("/ws") as session:
        assert session.receive_text() == "hi"


def test_cookie_options(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app(), base_url="https://testserver")
    assert "Secure" in client.get("/token").headers["set-cookie"]
    host = test_client_factory(make_app(cookie_name="__Host-csrf"))
    set_cookie = host.get("/token").headers["set-cookie"]
    assert set_cookie.startswith("__Host-csrf=") and "Secure" in set_cookie
    custom = test_client_factory(
        make_app(
            cookie_secure=False,
            cookie_domain="example.com",
            cookie_path="/app",
            cookie_samesite="strict",
            cookie_httponly=True,
        ),
        base_url="https://testserver",
    )
    set_cookie = custom.get("/token").headers["set-cookie"]
    for part in ["Domain=example.com", "Path=/app", "SameSite=strict", "HttpOnly"]:
        assert part in set_cookie
    assert "Secure" not in set_cookie


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"secret": "short"}, "a secret of at least 16 bytes"),
        ({"secret": b""}, "a secret of at least 16 bytes"),
        ({"token_required": "sometimes"}, "token_required must be one of"),
        ({"trusted_origins": ["null"]}, "'null' can never be trusted"),
        ({"trusted_origins": ["https://a.example/path"]}, "is not an origin"),
        ({"trusted_origins": ["a.example"]}, "is not an origin"),
        ({"trusted_origins": ["ftp://a.example"]}, "is not an origin"),
        ({"trusted_origins": ["*"]}, "is not an origin"),
        ({"cookie_name": "__Host-x", "cookie_domain": "a.example"}, "must be Secure"),
        ({"cookie_name": "__Host-x", "cookie_secure": False}, "must be Secure"),
        ({"cookie_name": "__Host-x", "cookie_path": "/app"}, "must be Secure"),
        ({"max_body_size": 0}, "max_body_size must be a positive"),
    ],
)
def test_misconfiguration_fails_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CSRFMiddleware(upload_app, **{"secret": SECRET, **options})


def test_secrets_of_every_accepted_type() -> None:
    from starling.datastructures import Secret

    secrets: list[str | bytes | Secret] = [SECRET, SECRET.encode(), Secret(SECRET)]
    for secret in secrets:
        assert CSRFMiddleware(upload_app, secret).field_name == "csrftoken"


# -- form bodies, read in pieces -----------------------------------------------------------


async def upload_app(scope: Scope, receive: Receive, send: Send) -> None:
    response = await upload(Request(scope, receive))
    await response(scope, receive, send)


async def call(
    middleware: CSRFMiddleware,
    headers: list[tuple[bytes, bytes]],
    messages: list[Message] | None = None,
    path: str = "/upload",
) -> list[Message]:
    scope: Scope = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "query_string": b"",
        "headers": headers,
        "server": ("testserver", 80),
    }
    pending = list(messages or [{"type": "http.request", "body": b""}])
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0)  # reading past the messages given is a test failure

    async def send(message: Message) -> None:
        sent.append(message)

    await middleware(scope, receive, send)
    return sent


def credentials() -> tuple[list[tuple[bytes, bytes]], str]:
    """A cookie header (with no session) and a token for it, as a first GET gives them."""
    secret = new_secret()
    cookie = cookie_value(derive_key(SECRET.encode()), secret, b"")
    headers = [(b"host", b"testserver"), (b"cookie", f"csrftoken={cookie}".encode())]
    return headers, mask(secret)


def chunks_of(body: bytes, size: int) -> list[Message]:
    pieces = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    return [
        {"type": "http.request", "body": piece, "more_body": index < len(pieces) - 1}
        for index, piece in enumerate(pieces)
    ]


def response_json(sent: list[Message]) -> Any:
    assert sent[0]["status"] == 200, sent
    return json.loads(b"".join(message.get("body", b"") for message in sent[1:]))


@pytest.mark.anyio
@pytest.mark.parametrize("chunk_size", [1, 7, 64, 100_000])
async def test_the_endpoint_gets_the_whole_body_after_the_token_search(chunk_size: int) -> None:
    headers, csrf_token = credentials()
    boundary = "b0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrftoken"\r\n\r\n'
            f'{csrf_token}\r\n--{boundary}\r\nContent-Disposition: form-data; name="f"; '
            f'filename="f.bin"\r\n\r\n'
        ).encode()
        + bytes(range(256)) * 40
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = f"multipart/form-data; boundary={boundary}".encode()
    sent = await call(
        CSRFMiddleware(upload_app, SECRET),
        [*headers, (b"content-type", content_type)],
        chunks_of(body, chunk_size),
    )
    assert response_json(sent) == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


@pytest.mark.anyio
async def test_an_urlencoded_token_at_the_end_of_the_body() -> None:
    headers, csrf_token = credentials()
    body = b"a=" + b"x" * 50_000 + f"&csrftoken={csrf_token}".encode()
    sent = await call(
        CSRFMiddleware(upload_app, SECRET),
        [*headers, (b"content-type", b"application/x-www-form-urlencoded")],
        chunks_of(body, 1000),
    )
    assert response_json(sent)["size"] == len(body)


@pytest.mark.anyio
async def test_a_token_past_max_body_size_is_not_searched_for() -> None:
    headers, csrf_token = credentials()
    body = b"a=" + b"x" * 5000 + f"&csrftoken={csrf_token}".encode()
    form = [*headers, (b"content-type", b"application/x-www-form-urlencoded")]
    sent = await call(
        CSRFMiddleware(upload_app, SECRET, max_body_size=4096), form, chunks_of(body, 1000)
    )
    assert sent[0]["status"] == 403
    assert b"no CSRF token" in sent[1]["body"]
    sent = await call(
        CSRFMiddleware(upload_app, SECRET, max_body_size=8192), form, chunks_of(body, 1000)
    )
    assert sent[0]["status"] == 200


@pytest.mark.anyio
async def test_a_client_that_leaves_during_the_search() -> None:
    headers, _ = credentials()
    form = [*headers, (b"content-type", b"application/x-www-form-urlencoded")]
    messages: list[Message] = [
        {"type": "http.request", "body": b"a=1", "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent = await call(CSRFMiddleware(upload_app, SECRET), form, messages)
    assert sent[0]["status"] == 403


@pytest.mark.anyio
async def test_a_malformed_multipart_body_has_no_token() -> None:
    headers, csrf_token = credentials()
    form = [*headers, (b"content-type", b"multipart/form-data; boundary=x")]
    body = b"--x\r\nno colon here\r\n\r\n" + csrf_token.encode()
    sent = await call(CSRFMiddleware(upload_app, SECRET), form, chunks_of(body, 5))
    assert sent[0]["status"] == 403


@pytest.mark.anyio
async def test_the_header_wins_without_reading_the_body() -> None:
    headers, csrf_token = credentials()
    form = [
        *headers,
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"x-csrftoken", csrf_token.encode()),
    ]
    body = b"csrftoken=wrong&" + b"x" * 10_000
    sent = await call(CSRFMiddleware(upload_app, SECRET), form, chunks_of(body, 333))
    assert response_json(sent)["size"] == len(body)


@pytest.mark.anyio
async def test_several_cookie_headers_are_read_together() -> None:
    headers, csrf_token = credentials()
    split = [
        (b"host", b"testserver"),
        (b"cookie", b"a=1"),
        headers[1],
        (b"x-csrftoken", csrf_token.encode()),
    ]
    sent = await call(CSRFMiddleware(upload_app, SECRET), split)
    assert sent[0]["status"] == 200


@pytest.mark.anyio
async def test_the_servers_state_dict_is_used() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await PlainTextResponse("ok")(scope, receive, send)

    scope: Scope = {"type": "http", "method": "GET", "headers": [], "state": {"k": 1}}
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:  # pragma: no cover (never read)
        return {"type": "http.request"}

    await CSRFMiddleware(app, SECRET, bind_to_session=False)(scope, receive, send)
    assert set(seen[0]["state"]) == {"k", "csrf_token", "csrf_field_name"}
    assert any(name == b"set-cookie" for name, _ in sent[0]["headers"])


def test_the_docs_example_does_what_the_docs_say(test_client_factory: TestClientFactory) -> None:
    page = (Path(__file__).parents[2] / "docs" / "csrf.md").read_text()
    namespace: dict[str, Any] = {}
    exec(page.split("```python\n")[1].split("```")[0], namespace)
    client = test_client_factory(namespace["app"])
    form = client.get("/")
    assert form.status_code == 200
    csrf_token = re.search(r'name="csrftoken" value="([^"]+)"', form.text)
    assert csrf_token is not None
    posted = client.post("/", data={"csrftoken": csrf_token[1], "comment": "hello"})
    assert posted.text == "Thanks for: hello"
    forged = test_client_factory(namespace["app"]).post(
        "/", data={"comment": "hi"}, headers={"origin": "https://evil.example"}
    )
    assert forged.status_code == 403
