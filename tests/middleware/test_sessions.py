"""SessionMiddleware and Session: Starlette's cookie format, flags, and hostile cookies."""

from __future__ import annotations

import json
import logging
import sys
import time
from base64 import b64encode
from collections.abc import Callable
from typing import Any

import itsdangerous
import pytest

from starling.applications import Starling
from starling.datastructures import Secret
from starling.middleware import Middleware
from starling.middleware.sessions import MAX_COOKIE_SIZE, Session, SessionMiddleware
from starling.requests import Request
from starling.responses import JSONResponse, PlainTextResponse, Response
from starling.routing import Route, WebSocketRoute
from starling.types import Message, Receive, Scope, Send
from starling.websockets import WebSocket
from tests.types import TestClientFactory

SECRET = "example"
DEFAULT_ATTRS = "path=/; Max-Age=1209600; httponly"
DELETED = "session=null; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT; httponly; samesite=lax"

# Minted by Starlette 1.10 (secret "starling-compat-secret", timestamp 1763700000) for
# {"user": "alice", "roles": ["admin", "ops"], "n": 1, "uni": "é"}.
STARLETTE_SECRET = "starling-compat-secret"
STARLETTE_TIMESTAMP = 1763700000
STARLETTE_COOKIE = (
    "eyJ1c2VyIjogImFsaWNlIiwgInJvbGVzIjogWyJhZG1pbiIsICJvcHMiXSwgIm4iOiAxLCAidW5pIjogIlx1MDBlOSJ9"
    ".aR_tIA.uqF0BMprQ7wJxXEjSoJiZpboHRc"
)
STARLETTE_SESSION = {"user": "alice", "roles": ["admin", "ops"], "n": 1, "uni": "é"}


async def view_session(request: Request) -> JSONResponse:
    return JSONResponse({"session": dict(request.session)})


async def update_session(request: Request) -> JSONResponse:
    request.session.update(await request.json())
    return JSONResponse({"session": dict(request.session)})


async def clear_session(request: Request) -> JSONResponse:
    request.session.clear()
    return JSONResponse({"session": dict(request.session)})


async def untouched(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def looked_at(request: Request) -> PlainTextResponse:
    session: Session = request.scope["session"]
    session.mark_accessed()
    return PlainTextResponse("ok")


async def read_only(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(request.session.get("a")))


async def set_then_clear(request: Request) -> PlainTextResponse:
    request.session["a"] = 1
    request.session.clear()
    return PlainTextResponse("ok")


async def with_vary(request: Request) -> Response:
    request.session["a"] = 1
    response = Response("x", headers={"vary": "Accept-Encoding"})
    response.set_cookie("other", "1")
    return response


async def store_big(request: Request) -> PlainTextResponse:
    request.session["blob"] = "x" * int(request.query_params["size"])
    return PlainTextResponse("stored")


async def websocket_session(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json(dict(websocket.session))
    websocket.session["seen"] = True
    await websocket.close()


ROUTES = [
    Route("/view_session", view_session),
    Route("/update_session", update_session, methods=["POST"]),
    Route("/clear_session", clear_session, methods=["POST"]),
    Route("/untouched", untouched),
    Route("/looked_at", looked_at),
    Route("/read_only", read_only),
    Route("/set_then_clear", set_then_clear),
    Route("/with_vary", with_vary),
    Route("/store_big", store_big),
    WebSocketRoute("/ws", websocket_session),
]


def make_app(**options: Any) -> Starling:
    options.setdefault("secret_key", SECRET)
    return Starling(routes=ROUTES, middleware=[Middleware(SessionMiddleware, **options)])


def signed(payload: bytes, secret: str = SECRET) -> str:
    return itsdangerous.TimestampSigner(secret).sign(payload).decode()


def encoded(value: Any) -> bytes:
    return b64encode(json.dumps(value).encode())


# Session: which dict methods count as a change


MUTATIONS: list[tuple[str, Callable[[Session], Any], bool, dict[str, Any]]] = [
    ("setitem", lambda s: s.__setitem__("b", 2), True, {"a": 1, "b": 2}),
    ("delitem", lambda s: s.__delitem__("a"), True, {}),
    ("clear", lambda s: s.clear(), True, {}),
    ("pop", lambda s: s.pop("a"), True, {}),
    ("pop missing with default", lambda s: s.pop("zz", None), False, {"a": 1}),
    ("pop present with default", lambda s: s.pop("a", None), True, {}),
    ("popitem", lambda s: s.popitem(), True, {}),
    ("setdefault present", lambda s: s.setdefault("a"), False, {"a": 1}),
    ("setdefault missing", lambda s: s.setdefault("q", 3), True, {"a": 1, "q": 3}),
    ("update", lambda s: s.update({"x": 1}), True, {"a": 1, "x": 1}),
    ("update nothing", lambda s: s.update(), True, {"a": 1}),
    ("update kwargs", lambda s: s.update(x=1), True, {"a": 1, "x": 1}),
    ("ior", lambda s: s.__ior__({"x": 1}), True, {"a": 1, "x": 1}),
    ("get", lambda s: s.get("a"), False, {"a": 1}),
    ("getitem", lambda s: s["a"], False, {"a": 1}),
]


@pytest.mark.parametrize(
    ("operation", "expect_modified", "expected"),
    [pytest.param(op, mod, exp, id=name) for name, op, mod, exp in MUTATIONS],
)
def test_session_marks_changes(
    operation: Callable[[Session], Any], expect_modified: bool, expected: dict[str, Any]
) -> None:
    session = Session({"a": 1})
    operation(session)
    assert session.modified is expect_modified
    assert session.accessed is expect_modified
    assert session == expected


def test_session_ior_operator_keeps_the_type() -> None:
    session = Session({"a": 1})
    session |= {"b": 2}
    assert type(session) is Session
    assert session.modified


@pytest.mark.parametrize(
    "operation",
    [lambda s: s.pop("zz"), lambda s: s.popitem()],
    ids=["pop missing", "popitem empty"],
)
def test_session_failed_removal_is_no_change(operation: Callable[[Session], Any]) -> None:
    session = Session()
    with pytest.raises(KeyError):
        operation(session)
    assert not session.modified


def test_session_del_missing_counts_as_change() -> None:
    session = Session()
    with pytest.raises(KeyError):
        del session["x"]
    assert session.modified  # as in Starlette: marked before the lookup


def test_session_marks() -> None:
    session = Session()
    assert (session.accessed, session.modified) == (False, False)
    session.mark_accessed()
    assert (session.accessed, session.modified) == (True, False)
    session.mark_modified()
    assert (session.accessed, session.modified) == (True, True)
    assert isinstance(session, dict)


# The middleware


def test_session_round_trip(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app())
    assert client.get("/view_session").json() == {"session": {}}
    response = client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}
    set_cookie = response.headers["set-cookie"]
    value = set_cookie.split(";")[0].split("=", 1)[1]
    assert set_cookie == (f"session={value}; path=/; Max-Age=1209600; httponly; samesite=lax")
    assert response.headers["vary"] == "Cookie"
    assert client.get("/view_session").json() == {"session": {"some": "data"}}
    response = client.post("/clear_session")
    assert response.headers["set-cookie"] == DELETED
    assert client.get("/view_session").json() == {"session": {}}


def test_untouched_session_sends_no_headers(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app())
    client.post("/update_session", json={"a": 1})
    response = client.get("/untouched")
    assert "set-cookie" not in response.headers
    assert "vary" not in response.headers


def test_accessed_session_varies_on_cookie(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app())
    client.post("/update_session", json={"a": 1})
    response = client.get("/looked_at")
    assert response.headers["vary"] == "Cookie"
    assert "set-cookie" not in response.headers


def test_reading_request_session_varies_on_cookie(
    test_client_factory: TestClientFactory,
) -> None:
    client = test_client_factory(make_app())
    response = client.get("/read_only")
    assert response.headers.get("vary") == "Cookie"


def test_vary_merges_and_cookie_appends(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app())
    response = client.get("/with_vary")
    assert response.headers["vary"] == "Accept-Encoding, Cookie"
    cookies = response.headers.get_list("set-cookie")
    assert cookies[0] == "other=1; Path=/; SameSite=lax"
    assert cookies[1].startswith("session=")


def test_emptied_session_without_cookie_sends_nothing(
    test_client_factory: TestClientFactory,
) -> None:
    client = test_client_factory(make_app())
    response = client.get("/set_then_clear")
    assert "set-cookie" not in response.headers
    assert client.post("/clear_session").headers.get("set-cookie") is None


def test_cleared_empty_signed_session_deletes_cookie(
    test_client_factory: TestClientFactory,
) -> None:
    client = test_client_factory(make_app(), cookies={"session": signed(encoded({}))})
    assert client.get("/view_session").headers.get("set-cookie") is None
    assert client.post("/clear_session").headers["set-cookie"] == DELETED


@pytest.mark.parametrize(
    ("options", "attributes"),
    [
        ({"https_only": True}, "path=/; Max-Age=1209600; httponly; samesite=lax; secure"),
        (
            {"domain": "example.com"},
            "path=/; Max-Age=1209600; httponly; samesite=lax; domain=example.com",
        ),
        ({"partitioned": True}, "path=/; Max-Age=1209600; httponly; samesite=lax; partitioned"),
        ({"same_site": "strict"}, "path=/; Max-Age=1209600; httponly; samesite=strict"),
        ({"same_site": "none"}, "path=/; Max-Age=1209600; httponly; samesite=none"),
        ({"max_age": None}, "path=/; httponly; samesite=lax"),
        ({"max_age": 60, "path": "/"}, "path=/; Max-Age=60; httponly; samesite=lax"),
        (
            {"https_only": True, "domain": "d.test", "partitioned": True, "same_site": "strict"},
            f"{DEFAULT_ATTRS}; samesite=strict; secure; domain=d.test; partitioned",
        ),
    ],
)
def test_cookie_attributes(
    test_client_factory: TestClientFactory, options: dict[str, Any], attributes: str
) -> None:
    client = test_client_factory(make_app(**options), base_url="https://testserver")
    response = client.post("/update_session", json={"a": 1})
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.split("; ", 1)[1] == attributes


def test_deleted_cookie_keeps_the_flags(test_client_factory: TestClientFactory) -> None:
    app = make_app(https_only=True, domain="d.test", partitioned=True, session_cookie="sid")
    client = test_client_factory(app, cookies={"sid": signed(encoded({"a": 1}))})
    response = client.post("/clear_session")
    assert response.headers["set-cookie"] == (
        "sid=null; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT; httponly; samesite=lax; "
        "secure; domain=d.test; partitioned"
    )


def test_cookie_path_limits_the_session(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app(path="/update_session"))
    response = client.post("/update_session", json={"a": 1})
    assert "path=/update_session;" in response.headers["set-cookie"]
    # the browser does not send it to another path
    assert client.get("/view_session").json() == {"session": {}}


def test_custom_cookie_name_and_secret_object(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app(session_cookie="sid", secret_key=Secret(SECRET)))
    response = client.post("/update_session", json={"a": 1})
    assert response.headers["set-cookie"].startswith("sid=")
    value = response.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    # signed with str(Secret): the plain secret verifies it
    itsdangerous.TimestampSigner(SECRET).unsign(value)
    assert client.get("/view_session").json() == {"session": {"a": 1}}


def test_websocket_session(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app())
    client.post("/update_session", json={"a": 1})
    with client.websocket_connect("/ws") as websocket:
        assert websocket.receive_json() == {"a": 1}


def test_other_scope_types_pass_through(test_client_factory: TestClientFactory) -> None:
    with test_client_factory(make_app()) as client:  # runs the lifespan through the middleware
        assert client.get("/untouched").text == "ok"


# Compatibility with Starlette's cookies, both ways


def test_reads_a_cookie_minted_by_starlette(test_client_factory: TestClientFactory) -> None:
    app = make_app(secret_key=STARLETTE_SECRET, max_age=None)  # the fixture's time is fixed
    client = test_client_factory(app, cookies={"session": STARLETTE_COOKIE})
    assert client.get("/view_session").json() == {"session": STARLETTE_SESSION}


def test_mints_the_cookie_starlette_mints(
    test_client_factory: TestClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        itsdangerous.TimestampSigner, "get_timestamp", lambda self: STARLETTE_TIMESTAMP
    )
    client = test_client_factory(make_app(secret_key=STARLETTE_SECRET))
    response = client.post("/update_session", json=STARLETTE_SESSION)
    assert response.headers["set-cookie"] == (
        f"session={STARLETTE_COOKIE}; path=/; Max-Age=1209600; httponly; samesite=lax"
    )


# Hostile and stale cookies: always an empty session, never a 500


def _tampered() -> str:
    payload, timestamp, signature = signed(encoded({"admin": False})).split(".")
    forged = encoded({"admin": True}).decode()
    return f"{forged}.{timestamp}.{signature}"


HOSTILE_COOKIES = {
    "tampered payload": _tampered(),
    "signed with another key": signed(encoded({"admin": True}), secret="other"),
    "garbage": "!!!",
    "no signature": encoded({"admin": True}).decode(),
    "signed, not base64": signed(b"@@@@"),
    "signed, not json": signed(b64encode(b"nojson")),
    "signed, json list": signed(encoded([1, 2])),
    "signed, json number": signed(encoded(1)),
    "signed, not utf-8": signed(b64encode(b"\xff\xfe")),
    "empty": "",
}


@pytest.mark.parametrize("cookie", HOSTILE_COOKIES.values(), ids=HOSTILE_COOKIES.keys())
def test_hostile_cookie_reads_as_empty_session(
    test_client_factory: TestClientFactory, cookie: str
) -> None:
    client = test_client_factory(make_app(), cookies={"session": cookie})
    response = client.get("/view_session")
    assert response.status_code == 200
    assert response.json() == {"session": {}}
    # and an invalid cookie is not "deleted" by clearing: there was no session to end
    assert client.post("/clear_session").headers.get("set-cookie") is None


def signed_at(timestamp: int, value: Any) -> str:
    class Signer(itsdangerous.TimestampSigner):
        def get_timestamp(self) -> int:
            return timestamp

    return Signer(SECRET).sign(encoded(value)).decode()


def test_expired_cookie_reads_as_empty_session(test_client_factory: TestClientFactory) -> None:
    app = make_app(max_age=60)
    fresh = signed_at(int(time.time()) - 30, {"a": 1})
    assert test_client_factory(app, cookies={"session": fresh}).get("/view_session").json() == {
        "session": {"a": 1}
    }
    stale = signed_at(int(time.time()) - 120, {"a": 1})
    response = test_client_factory(app, cookies={"session": stale}).get("/view_session")
    assert response.status_code == 200
    assert response.json() == {"session": {}}


def test_cookie_from_the_future_reads_as_empty_session(
    test_client_factory: TestClientFactory,
) -> None:
    future = signed_at(int(time.time()) + 3600, {"a": 1})
    client = test_client_factory(make_app(), cookies={"session": future})
    assert client.get("/view_session").json() == {"session": {}}


def test_no_max_age_never_expires(test_client_factory: TestClientFactory) -> None:
    ancient = signed_at(1, {"a": 1})
    client = test_client_factory(make_app(max_age=None), cookies={"session": ancient})
    assert client.get("/view_session").json() == {"session": {"a": 1}}


# Oversized sessions: not sent (browsers would drop them and keep the old session)


def _cookie_length(size: int) -> int:
    return len("session=" + signed(encoded({"blob": "x" * size})))


def test_limit_is_exact(test_client_factory: TestClientFactory) -> None:
    largest = max(size for size in range(2900, 3100) if _cookie_length(size) <= MAX_COOKIE_SIZE)
    assert _cookie_length(largest) <= MAX_COOKIE_SIZE < _cookie_length(largest + 1)
    client = test_client_factory(make_app())
    cookie = client.get(f"/store_big?size={largest}").headers["set-cookie"].split(";")[0]
    assert len(cookie) == _cookie_length(largest)
    # one byte more: not sent, and the cookie just set is expired rather than kept stale
    assert client.get(f"/store_big?size={largest + 1}").headers["set-cookie"] == DELETED


def test_oversized_session_is_not_sent_and_old_cookie_expires(
    test_client_factory: TestClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = test_client_factory(make_app())
    client.post("/update_session", json={"role": "admin"})
    with caplog.at_level(logging.ERROR, logger="starling.middleware.sessions"):
        response = client.get("/store_big?size=5000")
    assert response.status_code == 200
    assert response.text == "stored"
    # The stale session (role=admin) must not survive: the cookie is expired instead.
    assert response.headers["set-cookie"] == DELETED
    assert client.get("/view_session").json() == {"session": {}}
    [record] = caplog.records
    assert "over the 4096 that browsers keep" in record.getMessage()


def test_oversized_new_session_sends_nothing(
    test_client_factory: TestClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = test_client_factory(make_app())
    with caplog.at_level(logging.ERROR, logger="starling.middleware.sessions"):
        response = client.get("/store_big?size=5000")
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert len(caplog.records) == 1


# Optional dependency


def test_missing_itsdangerous_is_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "itsdangerous", None)
    with pytest.raises(ImportError, match="pip install itsdangerous"):
        SessionMiddleware(untouched_app, secret_key=SECRET)


async def untouched_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Only its identity is used."""


@pytest.mark.anyio
async def test_response_without_session_access_is_forwarded_as_is() -> None:
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}  # pragma: no cover (never read)

    scope: Scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    await SessionMiddleware(app, secret_key=SECRET)(scope, receive, send)
    assert sent == [
        {"type": "http.response.start", "status": 204, "headers": []},
        {"type": "http.response.body", "body": b""},
    ]
    assert isinstance(scope["session"], Session)
