"""starling.sessions: SessionStoreMiddleware over the memory, Redis and encrypted-cookie stores.

Redis is a real server (tests/_redis_server.py). redis-py is asyncio-only, so on trio the Redis
store must refuse to start with a clear error, which the trio runs check.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from starling import _sealed_cookie
from starling.applications import Starling
from starling.datastructures import Secret
from starling.middleware import Middleware
from starling.requests import Request
from starling.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starling.routing import Route, WebSocketRoute
from starling.sessions import (
    EncryptedCookieStore,
    MemoryStore,
    RedisStore,
    SessionCookieTooLarge,
    SessionStore,
    SessionStoreMiddleware,
    StoreUnavailable,
    regenerate,
)
from starling.testclient import TestClient
from starling.types import Receive, Scope, Send
from starling.websockets import WebSocket
from tests._redis_server import RedisServer
from tests.types import TestClientFactory

KEY = EncryptedCookieStore.generate_key()
OTHER_KEY = EncryptedCookieStore.generate_key()


async def view(request: Request) -> JSONResponse:
    return JSONResponse(dict(request.session))


async def update(request: Request) -> JSONResponse:
    request.session.update(await request.json())
    return JSONResponse(dict(request.session))


async def clear(request: Request) -> JSONResponse:
    request.session.clear()
    return JSONResponse({})


async def login(request: Request) -> JSONResponse:
    regenerate(request)
    request.session["user"] = "ada"
    return JSONResponse(dict(request.session))


async def plain(request: Request) -> PlainTextResponse:
    return PlainTextResponse("no session needed")


async def ws_view(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json(dict(websocket.session))
    await websocket.close()


ROUTES = [
    Route("/", view),
    Route("/update", update, methods=["POST"]),
    Route("/clear", clear, methods=["POST"]),
    Route("/login", login, methods=["POST"]),
    Route("/plain", plain),
    WebSocketRoute("/ws", ws_view),
]


def make_app(store: SessionStore, **options: Any) -> Starling:
    return Starling(
        routes=ROUTES, middleware=[Middleware(SessionStoreMiddleware, store=store, **options)]
    )


def sent(client: TestClient, method: str, path: str, cookie: str, **kwargs: Any) -> httpx.Response:
    """A request carrying exactly this session cookie (the client's jar emptied first)."""
    client.cookies.clear()
    return client.request(method, path, headers={"cookie": f"session={cookie}"}, **kwargs)


def backend_name(test_client_factory: TestClientFactory) -> str:
    backend: str = test_client_factory.keywords["backend"]  # type: ignore[attr-defined]
    return backend


@pytest.fixture(params=["memory", "redis", "encrypted"])
def store_factory(request: pytest.FixtureRequest) -> Callable[[], SessionStore]:
    kind = request.param
    if kind == "memory":
        return MemoryStore
    if kind == "encrypted":
        return lambda: EncryptedCookieStore(KEY)
    url: str = request.getfixturevalue("redis_url")
    prefix = f"test:{uuid.uuid4().hex}:"
    return lambda: RedisStore(url, prefix=prefix)


@pytest.fixture
def client(
    store_factory: Callable[[], SessionStore], test_client_factory: TestClientFactory
) -> Iterator[TestClient]:
    store = store_factory()
    app = make_app(store)
    if isinstance(store, RedisStore) and backend_name(test_client_factory) == "trio":
        with (
            pytest.raises(
                RuntimeError, match="RedisStore needs asyncio, but this app runs on trio"
            ),
            test_client_factory(app),
        ):
            pass  # pragma: no cover (startup fails)
        pytest.skip("redis-py is asyncio-only: refused at start-up on trio, as checked above")
    with test_client_factory(app) as client:
        yield client


# --- the session's life --------------------------------------------------------------------


def test_no_cookie_no_session_no_set_cookie(client: TestClient) -> None:
    response = client.get("/")
    assert response.json() == {}
    assert "set-cookie" not in response.headers
    assert response.headers["vary"] == "Cookie"


def test_written_then_read_back(client: TestClient) -> None:
    response = client.post("/update", json={"a": 1, "b": [1, "x"]})
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("session=")
    assert "HttpOnly" in cookie and "Max-Age=1209600" in cookie and "Path=/" in cookie
    assert "SameSite=lax" in cookie
    response = client.get("/")
    assert response.json() == {"a": 1, "b": [1, "x"]}
    # read and unchanged: nothing written back
    assert "set-cookie" not in response.headers
    assert response.headers["vary"] == "Cookie"


def test_untouched_session_has_no_vary(client: TestClient) -> None:
    client.post("/update", json={"a": 1})
    response = client.get("/plain")
    assert "vary" not in response.headers
    assert "set-cookie" not in response.headers


def test_cleared_session_expires_the_cookie(client: TestClient) -> None:
    client.post("/update", json={"a": 1})
    old = client.cookies["session"]
    response = client.post("/clear")
    assert response.headers["set-cookie"].startswith('session=""; expires=Thu, 01 Jan 1970')
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert "session" not in client.cookies
    # the old cookie, replayed, opens nothing (server-side stores deleted it)
    if not isinstance(client.app.user_middleware[0].kwargs["store"], EncryptedCookieStore):  # type: ignore[attr-defined]
        assert sent(client, "GET", "/", old).json() == {}


def test_clearing_an_absent_session_writes_nothing(client: TestClient) -> None:
    response = client.post("/clear")
    assert "set-cookie" not in response.headers


def test_regenerate_moves_the_session_and_drops_the_old_id(client: TestClient) -> None:
    client.post("/update", json={"cart": 3})
    before = client.cookies["session"]
    response = client.post("/login")
    assert response.json() == {"cart": 3, "user": "ada"}
    after = client.cookies["session"]
    assert after != before
    assert client.get("/").json() == {"cart": 3, "user": "ada"}
    if not isinstance(client.app.user_middleware[0].kwargs["store"], EncryptedCookieStore):  # type: ignore[attr-defined]
        client.cookies.clear()
        assert sent(client, "GET", "/", before).json() == {}


def test_regenerate_without_a_session_issues_one(client: TestClient) -> None:
    response = client.post("/login")
    assert response.json() == {"user": "ada"}
    assert client.get("/").json() == {"user": "ada"}


def test_websocket_reads_the_session(client: TestClient) -> None:
    client.post("/update", json={"a": 1})
    with client.websocket_connect("/ws") as websocket:
        assert websocket.receive_json() == {"a": 1}


# --- hostile cookies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "x",
        "A" * 43,  # the shape of an id, but not one we issued
        "A" * 42 + "!",
        "A" * 5000,
        "../../etc",
        "QUFB",
        "AQ",  # a version byte and nothing else
        base64.urlsafe_b64encode(b"\x01" + bytes(40)).decode().rstrip("="),
        "A",  # a length no base64 text has
    ],
)
def test_forged_cookies_open_nothing_and_are_never_adopted(client: TestClient, value: str) -> None:
    assert sent(client, "GET", "/", value).json() == {}
    client.cookies.clear()
    response = sent(client, "POST", "/update", value, json={"a": 1})
    assert response.headers["set-cookie"].split(";")[0] != f"session={value}"
    assert response.json() == {"a": 1}


def test_a_replayed_cookie_after_a_change_still_reads_its_session(client: TestClient) -> None:
    # Server-side: the id is the same, the data is current. Cookie store: the old copy still
    # opens (documented: a cookie cannot be revoked before its expiry).
    client.post("/update", json={"n": 1})
    first = client.cookies["session"]
    client.post("/update", json={"n": 2})
    client.cookies.clear()
    assert sent(client, "GET", "/", first).json()["n"] in (1, 2)


# --- options ----------------------------------------------------------------------------------


def test_cookie_attributes(test_client_factory: TestClientFactory) -> None:
    app = make_app(
        MemoryStore(),
        cookie_name="sid",
        max_age=60,
        path="/app",
        domain="example.com",
        same_site="strict",
        https_only=True,
    )
    with test_client_factory(app, base_url="https://example.com") as client:
        cookie = client.post("/update", json={"a": 1}).headers["set-cookie"]
    name_value, *attributes = cookie.split("; ")
    assert name_value.startswith("sid=") and len(name_value) == 4 + 43
    assert attributes == [
        "Domain=example.com",
        "HttpOnly",
        "Max-Age=60",
        "Path=/app",
        "SameSite=strict",
        "Secure",
    ]


def test_rolling_writes_back_on_every_response(test_client_factory: TestClientFactory) -> None:
    with test_client_factory(make_app(MemoryStore(), rolling=True)) as client:
        assert "set-cookie" not in client.get("/").headers  # nothing to roll
        first = client.post("/update", json={"a": 1}).headers["set-cookie"]
        again = client.get("/").headers["set-cookie"]
        assert first == again  # the same id, its expiry renewed
        assert "set-cookie" not in client.get("/plain").headers  # not read, not rolled


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_age": 0}, "max_age must be a positive number of seconds"),
        ({"max_age": True}, "max_age must be a positive number of seconds"),
        ({"max_age": 1.5}, "max_age must be a positive number of seconds"),
        ({"path": "/; Domain=evil"}, "Invalid cookie attribute"),
        ({"same_site": "sometimes"}, "samesite must be"),
    ],
)
def test_misconfiguration_fails_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, AssertionError), match=message):
        SessionStoreMiddleware(PlainTextResponse("x"), MemoryStore(), **options)


def test_store_must_be_a_store() -> None:
    with pytest.raises(TypeError, match="store must be a session store .* not dict"):
        SessionStoreMiddleware(PlainTextResponse("x"), {})  # type: ignore[arg-type]


def test_values_must_be_json(test_client_factory: TestClientFactory) -> None:
    async def bad(request: Request) -> Response:
        request.session["when"] = object()
        return Response("")

    for store in (MemoryStore(), EncryptedCookieStore(KEY)):
        app = Starling(
            routes=[Route("/", bad)], middleware=[Middleware(SessionStoreMiddleware, store=store)]
        )
        with (
            test_client_factory(app) as client,
            pytest.raises(TypeError, match="Session values must be JSON-serializable"),
        ):
            client.get("/")


def test_regenerate_needs_the_middleware(test_client_factory: TestClientFactory) -> None:
    async def endpoint(request: Request) -> Response:
        regenerate(request)
        return Response("")  # pragma: no cover (regenerate raised)

    with (
        test_client_factory(Starling(routes=[Route("/", endpoint)])) as client,
        pytest.raises(RuntimeError, match="regenerate\\(\\) needs SessionStoreMiddleware"),
    ):
        client.get("/")


def test_a_store_of_your_own(test_client_factory: TestClientFactory) -> None:
    class DictStore(SessionStore):
        def __init__(self) -> None:
            self.data: dict[str, dict[str, Any]] = {}

        async def load(self, token: str) -> dict[str, Any] | None:
            return self.data.get(token)

        async def save(self, token: str | None, data: dict[str, Any], max_age: int) -> str:
            token = token or f"t{len(self.data)}"
            self.data[token] = data
            return token

    store = DictStore()
    with test_client_factory(make_app(store)) as client:
        client.post("/update", json={"a": 1})
        assert client.get("/").json() == {"a": 1}
        client.post("/clear")  # the base class's delete: nothing to do
    assert store.data == {"t0": {"a": 1}}


def test_other_scope_types_pass_through(test_client_factory: TestClientFactory) -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    middleware = SessionStoreMiddleware(app, MemoryStore())

    async def run() -> None:
        async def nothing() -> Any:
            return {}  # pragma: no cover (never received)

        async def ignore(message: Any) -> None:
            pass  # pragma: no cover (never sent)

        await middleware({"type": "custom"}, nothing, ignore)

    import anyio

    anyio.run(run, backend=backend_name(test_client_factory))
    assert seen == ["custom"]


# --- MemoryStore ------------------------------------------------------------------------------


def test_memory_store_is_bounded(test_client_factory: TestClientFactory) -> None:
    store = MemoryStore(max_sessions=3)
    with test_client_factory(make_app(store)) as client:
        cookies = []
        for n in range(5):
            client.cookies.clear()
            client.post("/update", json={"n": n})
            cookies.append(client.cookies["session"])
        assert len(store.backend) == 3  # type: ignore[arg-type]
        client.cookies.clear()
        assert sent(client, "GET", "/", cookies[0]).json() == {}  # dropped
        assert sent(client, "GET", "/", cookies[4]).json() == {"n": 4}


def test_memory_store_size_is_checked() -> None:
    with pytest.raises(ValueError, match="max_entries must be a positive int, got 0"):
        MemoryStore(max_sessions=0)


# --- EncryptedCookieStore -----------------------------------------------------------------------


def test_encrypted_cookie_is_opaque_and_rotates_keys(
    test_client_factory: TestClientFactory,
) -> None:
    with test_client_factory(make_app(EncryptedCookieStore(OTHER_KEY))) as client:
        client.post("/update", json={"secret": "pa55word"})
        old_cookie = client.cookies["session"]
    assert "pa55word" not in old_cookie
    assert b"pa55word" not in base64.urlsafe_b64decode(old_cookie + "==")
    # the new key seals, the old one still opens
    rotated = make_app(EncryptedCookieStore([KEY, OTHER_KEY]))
    with test_client_factory(rotated) as client:
        assert sent(client, "GET", "/", old_cookie).json() == {"secret": "pa55word"}
        sent(client, "POST", "/update", old_cookie, json={"more": 1})
        new_cookie = client.cookies["session"]
    # ... which no longer opens once the old key is retired; the new cookie still does
    retired = make_app(EncryptedCookieStore([KEY]))
    with test_client_factory(retired) as client:
        assert sent(client, "GET", "/", old_cookie).json() == {}
        client.cookies.clear()
        assert sent(client, "GET", "/", new_cookie).json() == {
            "secret": "pa55word",
            "more": 1,
        }


def test_encrypted_cookie_tampering_is_rejected(test_client_factory: TestClientFactory) -> None:
    with test_client_factory(make_app(EncryptedCookieStore(KEY))) as client:
        client.post("/update", json={"role": "user"})
        cookie = client.cookies["session"]
        client.cookies.clear()
        raw = bytearray(base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4)))
        for index in (0, 1, 13, len(raw) // 2, len(raw) - 1):  # version, nonce, body, tag
            forged = bytearray(raw)
            forged[index] ^= 1
            value = base64.urlsafe_b64encode(bytes(forged)).decode().rstrip("=")
            assert sent(client, "GET", "/", value).json() == {}
        # truncated, or with its tag cut off
        assert sent(client, "GET", "/", cookie[:-4]).json() == {}
        assert sent(client, "GET", "/", cookie + "AAAA").json() == {}


def _sealed_with(key: str, plaintext: bytes, aad: bytes = _sealed_cookie._AAD) -> str:
    nonce = os.urandom(12)
    raw = b"\x01" + nonce + AESGCM(_sealed_cookie.decode_key(key)).encrypt(nonce, plaintext, aad)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("plaintext", "aad", "opens"),
    [
        (b'[9999999999,{"a":1}]', _sealed_cookie._AAD, True),
        (b'[1,{"a":1}]', _sealed_cookie._AAD, False),  # expired: a replay after max_age
        (b'[9999999999,{"a":1}]', b"another purpose", False),  # sealed for something else
        (b"not json", _sealed_cookie._AAD, False),
        (b'{"a":1}', _sealed_cookie._AAD, False),
        (b'[9999999999,{"a":1},3]', _sealed_cookie._AAD, False),
        (b'["soon",{"a":1}]', _sealed_cookie._AAD, False),
        (b"[9999999999,[1]]", _sealed_cookie._AAD, False),
    ],
)
def test_encrypted_cookie_contents_are_checked(
    test_client_factory: TestClientFactory, plaintext: bytes, aad: bytes, opens: bool
) -> None:
    with test_client_factory(make_app(EncryptedCookieStore(KEY))) as client:
        response = sent(client, "GET", "/", _sealed_with(KEY, plaintext, aad))
        assert response.json() == ({"a": 1} if opens else {})


def test_encrypted_cookie_from_another_key_is_rejected(
    test_client_factory: TestClientFactory,
) -> None:
    foreign = _sealed_with(OTHER_KEY, b'[9999999999,{"admin":true}]')
    with test_client_factory(make_app(EncryptedCookieStore(KEY))) as client:
        assert sent(client, "GET", "/", foreign).json() == {}


def test_encrypted_cookie_over_4096_bytes_is_an_error(
    test_client_factory: TestClientFactory,
) -> None:
    with test_client_factory(make_app(EncryptedCookieStore(KEY))) as client:
        client.post("/update", json={"a": "x" * 2000})  # fits
        with pytest.raises(SessionCookieTooLarge, match="would be 4\\d\\d\\d bytes, over the 4096"):
            client.post("/update", json={"b": "y" * 1200})
    with test_client_factory(
        make_app(EncryptedCookieStore(KEY)), raise_server_exceptions=False
    ) as client:
        response = client.post("/update", json={"b": "y" * 4000})
        assert response.status_code == 500
        assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    "keys",
    [
        KEY,
        base64.urlsafe_b64decode(KEY + "="),
        Secret(KEY),
        base64.b64encode(base64.urlsafe_b64decode(KEY + "=")).decode(),
        [KEY, OTHER_KEY],
    ],
)
def test_encrypted_cookie_key_forms(keys: Any, test_client_factory: TestClientFactory) -> None:
    with test_client_factory(make_app(EncryptedCookieStore(keys))) as client:
        client.post("/update", json={"a": 1})
        assert client.get("/").json() == {"a": 1}


@pytest.mark.parametrize("key", ["", "short", "A" * 44, b"\x00" * 31, "!" * 43, 12345])
def test_encrypted_cookie_bad_keys(key: Any) -> None:
    with pytest.raises(ValueError, match="keys are 32 random bytes .*generate_key"):
        EncryptedCookieStore(key)


def test_encrypted_cookie_needs_a_key() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        EncryptedCookieStore([])


# --- Redis: shape of what is stored, outage and recovery, trio ----------------------------------


@pytest.mark.anyio
async def test_redis_keys_are_hashed_ids_with_a_ttl(redis_url: str, anyio_backend: Any) -> None:
    if anyio_backend[0] == "trio":
        with pytest.raises(RuntimeError, match="RedisStore needs asyncio"):
            RedisStore(redis_url)
        return
    prefix = f"test:{uuid.uuid4().hex}:"
    store = RedisStore(redis_url, prefix=prefix)
    token = await store.save(None, {"a": 1}, 60)
    direct = redis.Redis.from_url(redis_url)
    try:
        (key,) = direct.keys(prefix + "*")
        assert token.encode() not in key  # the cookie value is not the key
        assert 55 < direct.ttl(key) <= 60
        assert json.loads(direct.get(key)) == {"a": 1}  # type: ignore[arg-type]
        # data under our prefix that we did not write reads as no session
        direct.set(key, b"\xff not json")
        assert await store.load(token) is None
        direct.set(key, b"[1, 2]")
        assert await store.load(token) is None
        await store.delete(token)
        assert direct.keys(prefix + "*") == []
        await store.delete("not-an-id")  # never reaches Redis
    finally:
        direct.close()
        await store.aclose()


def _outage_app(url: str, timeout: float = 0.3) -> Starling:
    return make_app(RedisStore(url, prefix="outage:", timeout=timeout))


def test_redis_outage_and_recovery(redis_server_factory: type[RedisServer]) -> None:
    server = redis_server_factory()
    server.start()
    with TestClient(_outage_app(server.url), backend="asyncio") as client:
        client.post("/update", json={"a": 1})
        assert client.get("/").json() == {"a": 1}
        server.stop()
        # what does not need the session still works, with the cookie sent
        response = client.get("/plain")
        assert response.status_code == 200 and response.text == "no session needed"
        # what needs it gets a 503, not a 500
        response = client.get("/")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        # a write at response time fails the same way
        client.cookies.clear()
        response = client.post("/update", json={"b": 2})
        assert response.status_code == 503 and "set-cookie" not in response.headers
        server.start()  # an empty server: the old session is gone, the store works again
        assert client.get("/").json() == {}
        client.post("/update", json={"c": 3})
        assert client.get("/").json() == {"c": 3}


def test_redis_outage_is_logged_with_where_redis_was_expected(
    redis_server_factory: type[RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = redis_server_factory()
    server.start()
    password_url = server.url.replace("redis://", "redis://:hunter2@")
    with TestClient(_outage_app(server.url), backend="asyncio") as client:
        client.post("/update", json={"a": 1})
        server.stop()
        client.get("/")
    assert f"RedisStore: Redis GET failed at {server.url}" in caplog.text
    # the password never appears in a message
    store = RedisStore(password_url)
    assert store.backend.location == f"redis://:***@127.0.0.1:{server.port}/0"


def test_redis_slow_server_times_out(redis_server_factory: type[RedisServer]) -> None:
    server = redis_server_factory()
    server.start()
    process = server._process
    assert process is not None
    with TestClient(_outage_app(server.url, timeout=0.2), backend="asyncio") as client:
        client.post("/update", json={"a": 1})
        os.kill(process.pid, signal.SIGSTOP)  # the server hangs: connections stay open
        try:
            response = client.get("/")
            assert response.status_code == 503
            assert client.get("/plain").status_code == 200
        finally:
            os.kill(process.pid, signal.SIGCONT)
        assert client.get("/").json() == {"a": 1}  # answered again: used again


def test_redis_error_after_the_response_started_propagates(redis_url: str) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first"
        raise StoreUnavailable("lost mid-stream")

    async def streaming(request: Request) -> StreamingResponse:
        return StreamingResponse(chunks())

    app = SessionStoreMiddleware(Starling(routes=[Route("/", streaming)]), RedisStore(redis_url))
    with (
        TestClient(app, backend="asyncio") as client,
        pytest.raises(StoreUnavailable, match="lost mid-stream"),
    ):
        client.get("/")


def test_redis_store_closes_its_connections_at_shutdown(redis_url: str) -> None:
    store = RedisStore(redis_url, prefix=f"test:{uuid.uuid4().hex}:")
    with TestClient(make_app(store), backend="asyncio") as client:
        client.post("/update", json={"a": 1})
        assert store.backend._client is not None  # type: ignore[union-attr]
    assert store.backend._client is None  # type: ignore[union-attr]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", [("asyncio", {})])
async def test_redis_store_with_a_client_of_your_own(redis_url: str, anyio_backend: Any) -> None:
    import redis.asyncio
    from redis.driver_info import DriverInfo

    own = redis.asyncio.Redis.from_url(
        redis_url, driver_info=DriverInfo(name="redis-py", lib_version=redis.__version__)
    )
    store = RedisStore(own, prefix=f"test:{uuid.uuid4().hex}:")
    assert store.backend.location == redis_url
    token = await store.save(None, {"a": 1}, 60)
    assert await store.load(token) == {"a": 1}
    await store.aclose()  # yours: not closed here
    assert await own.ping() is True
    await own.aclose()


def test_redis_store_on_trio_fails_at_startup_when_built_outside_a_loop(redis_url: str) -> None:
    # Built at import time (no event loop yet): the lifespan startup refuses to start.
    app = SessionStoreMiddleware(Starling(), RedisStore(redis_url))
    with (
        pytest.raises(RuntimeError, match="lifespan.startup.failed: RedisStore needs asyncio"),
        TestClient(app, backend="trio"),
    ):
        pass  # pragma: no cover (startup fails)


@pytest.mark.parametrize(
    ("argument", "error", "message"),
    [
        ("http://localhost", ValueError, "is not a Redis URL"),
        ("localhost:6379", ValueError, "is not a Redis URL"),
        ("redis://:pw@host:1/0x", None, None),
        (6379, TypeError, "takes a Redis URL \\(str\\) or a redis.asyncio.Redis client, not int"),
        (redis.Redis(), TypeError, "not Redis"),  # the sync client
    ],
)
def test_redis_store_arguments(argument: Any, error: type[Exception] | None, message: str) -> None:
    if error is None:
        RedisStore(argument)  # checked as a URL; parsed by redis-py on first use
        return
    with pytest.raises(error, match=message):
        RedisStore(argument)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": 0}, "timeout must be a positive number of seconds"),
        ({"timeout": True}, "timeout must be a positive number of seconds"),
        ({"max_connections": 0}, "max_connections must be a positive int"),
    ],
)
def test_redis_store_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RedisStore("redis://localhost", **options)


def test_redis_unix_socket_client_location() -> None:
    import redis.asyncio

    store = RedisStore(redis.asyncio.Redis(unix_socket_path="/tmp/redis.sock"))
    assert store.backend.location == "unix:///tmp/redis.sock"


def test_unloaded_session_written_directly_is_a_503(
    redis_server_factory: type[RedisServer],
) -> None:
    async def direct(request: Request) -> Response:
        request.scope["session"]["a"] = 1  # not through request.session
        return Response("")  # pragma: no cover (the write raised)

    server = redis_server_factory()
    server.start()
    store = RedisStore(server.url, timeout=0.3)
    app = Starling(
        routes=[Route("/", direct), Route("/update", update, methods=["POST"])],
        middleware=[Middleware(SessionStoreMiddleware, store=store)],
    )
    with TestClient(app, backend="asyncio") as client:
        client.post("/update", json={"a": 0})
        server.stop()
        assert client.get("/").status_code == 503


def test_regenerate_then_clear_expires_the_cookie(test_client_factory: TestClientFactory) -> None:
    async def logout(request: Request) -> Response:
        regenerate(request)
        request.session.clear()
        return Response("")

    app = Starling(
        routes=[Route("/logout", logout), Route("/update", update, methods=["POST"])],
        middleware=[Middleware(SessionStoreMiddleware, store=MemoryStore())],
    )
    with test_client_factory(app) as client:
        response = sent(client, "GET", "/logout", "A" * 43)  # a session we never issued
        assert response.headers["set-cookie"].startswith('session=""')
        client.post("/update", json={"a": 1})
        old = client.cookies["session"]
        response = client.get("/logout")
        assert response.headers["set-cookie"].startswith('session=""')
        assert sent(client, "GET", "/logout", old).headers["set-cookie"].startswith('session=""')


def test_redis_store_used_on_trio_after_construction_outside_a_loop(redis_url: str) -> None:
    import trio

    store = RedisStore(redis_url)  # no loop running: nothing to check yet

    async def use() -> None:
        await store.load("A" * 43)

    with pytest.raises(RuntimeError, match="RedisStore needs asyncio, but this app runs on trio"):
        trio.run(use)
