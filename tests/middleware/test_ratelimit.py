"""starling.middleware.ratelimit: rules, keys, headers, 429, stores (memory and a real Redis),
outage policy and recovery."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from starling._backends.memory import MemoryBackend
from starling.applications import Starling
from starling.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starling.middleware import Middleware
from starling.middleware.authentication import AuthenticationMiddleware
from starling.middleware.ratelimit import (
    MemoryStore,
    RateLimit,
    RateLimitMiddleware,
    RedisStore,
    StoreUnavailable,
    authenticated_user,
    client_address,
    header,
)
from starling.requests import HTTPConnection, Request
from starling.responses import PlainTextResponse
from starling.routing import Route, WebSocketRoute
from starling.testclient import TestClient
from starling.websockets import WebSocket
from tests._redis_server import RedisServer
from tests.types import TestClientFactory

Store = MemoryStore | RedisStore


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hi")
    await websocket.close()


ROUTES = [
    Route("/", hello),
    Route("/api/{rest:path}", hello, methods=["GET", "POST"]),
    Route("/other", hello, methods=["GET", "POST"]),
    WebSocketRoute("/ws", ws),
]


def make_app(rules: list[RateLimit], **options: Any) -> Starling:
    return Starling(
        routes=ROUTES, middleware=[Middleware(RateLimitMiddleware, rules=rules, **options)]
    )


def backend_name(test_client_factory: TestClientFactory) -> str:
    backend: str = test_client_factory.keywords["backend"]  # type: ignore[attr-defined]
    return backend


@pytest.fixture(params=["memory", "redis"])
def store_factory(request: pytest.FixtureRequest) -> Callable[[], Store]:
    if request.param == "memory":
        return MemoryStore
    url: str = request.getfixturevalue("redis_url")
    prefix = f"test:{uuid.uuid4().hex}:"
    return lambda: RedisStore(url, prefix=prefix)


@pytest.fixture
def limited(
    store_factory: Callable[[], Store], test_client_factory: TestClientFactory
) -> Iterator[Callable[..., TestClient]]:
    """A client for an app limited by the given rules on each store."""
    clients: list[TestClient] = []

    def build(rules: list[RateLimit], **options: Any) -> TestClient:
        store = store_factory()
        app = make_app(rules, store=store, **options)
        if isinstance(store, RedisStore) and backend_name(test_client_factory) == "trio":
            with (
                pytest.raises(RuntimeError, match="RedisStore needs asyncio, but this app runs"),
                test_client_factory(app),
            ):
                pass  # pragma: no cover (startup fails)
            pytest.skip("redis-py is asyncio-only: refused at start-up on trio, as checked")
        client = test_client_factory(app).__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


# --- limits and headers ------------------------------------------------------------------------


def test_limit_then_429(limited: Callable[..., TestClient]) -> None:
    client = limited([RateLimit("3/minute")])
    for remaining in (2, 1, 0):
        response = client.get("/")
        assert response.status_code == 200 and response.text == "hello"
        assert response.headers["ratelimit-policy"] == '"3-per-minute";q=3;w=60'
        assert response.headers["ratelimit"] == f'"3-per-minute";r={remaining};t=60'
    refused = client.get("/")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "60"
    assert refused.headers["ratelimit"] == '"3-per-minute";r=0;t=60'
    assert refused.json() == {
        "type": "https://iana.org/assignments/http-problem-types#quota-exceeded",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "Rate limit exceeded; retry in 60 s.",
        "violated-policies": ["3-per-minute"],
    }


def test_rules_match_paths_and_methods(limited: Callable[..., TestClient]) -> None:
    client = limited([RateLimit("1/hour", path="/api/*", methods=["post"])])
    assert "ratelimit" not in client.get("/api/x").headers  # GET: not this rule's
    assert "ratelimit" not in client.post("/other").headers  # another path
    assert client.post("/api/x").status_code == 200
    assert client.post("/api/deeper/path").status_code == 429  # "*" spans segments
    assert client.get("/api/x").status_code == 200


def test_several_rules(limited: Callable[..., TestClient]) -> None:
    client = limited([RateLimit("2/second", name="burst"), RateLimit("5/2 minutes", name="steady")])
    response = client.get("/")
    assert response.headers["ratelimit-policy"] == '"burst";q=2;w=1, "steady";q=5;w=120'
    assert response.headers["ratelimit"] == '"burst";r=1;t=1, "steady";r=4;t=120'
    client.get("/")
    refused = client.get("/")
    assert refused.status_code == 429
    assert refused.json()["violated-policies"] == ["burst"]
    # the refused request did not use the steady quota
    assert refused.headers["ratelimit"].endswith('"steady";r=3;t=120')


def test_keys_per_rule(limited: Callable[..., TestClient]) -> None:
    client = limited(
        [
            RateLimit("1/minute", key=header("X-API-Key"), name="per-key"),
            RateLimit("100/minute", name="per-client"),
        ]
    )
    assert client.get("/", headers={"x-api-key": "a"}).status_code == 200
    assert client.get("/", headers={"x-api-key": "a"}).status_code == 429
    assert client.get("/", headers={"x-api-key": "b"}).status_code == 200
    # without the header, the per-key rule does not apply
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["ratelimit-policy"] == '"per-client";q=100;w=60'


def test_keys_that_try_to_collide(limited: Callable[..., TestClient]) -> None:
    client = limited([RateLimit("1/minute", key=header("X-Key"), name="k")])
    for value in ("k", "k:", ":k", "k:k", "a" * 8000, "a" * 7999, "é", "\u00e9 "):
        assert client.get("/", headers=[(b"x-key", value.encode())]).status_code == 200


def test_memory_keys_are_fixed_length_and_bounded(test_client_factory: TestClientFactory) -> None:
    store = MemoryStore(max_keys=5)
    app = make_app([RateLimit("10/minute", key=header("X-Key"), name="k")], store=store)
    with test_client_factory(app) as client:
        for n in range(20):
            client.get("/", headers={"x-key": str(n) * 1000})
    backend = store.backend
    assert isinstance(backend, MemoryBackend)
    assert len(backend) == 5
    assert {len(key) for key in backend._entries} == {len("k:") + 32}


def test_client_address_is_the_default_key(test_client_factory: TestClientFactory) -> None:
    app = make_app([RateLimit("1/minute")])
    with test_client_factory(app, client=("10.0.0.1", 1)) as first:
        assert first.get("/").status_code == 200
        assert first.get("/").status_code == 429
    with test_client_factory(app, client=("10.0.0.2", 1)) as second:
        assert second.get("/").status_code == 200


def test_key_functions() -> None:
    def connection(**scope: Any) -> HTTPConnection:
        return HTTPConnection({"type": "http", "headers": [], **scope})

    assert client_address(connection(client=("1.2.3.4", 5))) == "1.2.3.4"
    assert client_address(connection(client=None)) == "unknown"
    assert client_address(connection()) == "unknown"
    assert authenticated_user(connection()) is None
    assert authenticated_user(connection(user=SimpleUser("ada"))) == "ada"

    class Named(SimpleUser):
        @property
        def identity(self) -> str:
            raise NotImplementedError

    assert authenticated_user(connection(user=Named("bob"))) == "bob"
    assert header("X-A")(connection(headers=[(b"x-a", b"1")])) == "1"


def test_authenticated_user_key(test_client_factory: TestClientFactory) -> None:
    class TokenAuth(AuthenticationBackend):
        async def authenticate(
            self, conn: HTTPConnection
        ) -> tuple[AuthCredentials, SimpleUser] | None:
            token = conn.headers.get("authorization")
            return None if token is None else (AuthCredentials(["user"]), SimpleUser(token))

    app = Starling(
        routes=ROUTES,
        middleware=[
            Middleware(AuthenticationMiddleware, backend=TokenAuth()),
            Middleware(RateLimitMiddleware, rules=[RateLimit("1/minute", key=authenticated_user)]),
        ],
    )
    with test_client_factory(app) as client:
        assert client.get("/", headers={"authorization": "ada"}).status_code == 200
        assert client.get("/", headers={"authorization": "ada"}).status_code == 429
        assert client.get("/", headers={"authorization": "bob"}).status_code == 200
        assert "ratelimit" not in client.get("/").headers  # anonymous: not this rule's


def test_async_key_functions(test_client_factory: TestClientFactory) -> None:
    async def tenant(connection: HTTPConnection) -> str | None:
        return connection.query_params.get("tenant")

    app = make_app([RateLimit("1/minute")], key=tenant)
    app_rule = make_app([RateLimit("1/minute", key=tenant)])
    for each in (app, app_rule):
        with test_client_factory(each) as client:
            assert client.get("/?tenant=a").status_code == 200
            assert client.get("/?tenant=a").status_code == 429
            assert client.get("/?tenant=b").status_code == 200
            assert client.get("/").status_code == 200  # no key: not counted


def test_a_key_must_be_a_str(test_client_factory: TestClientFactory) -> None:
    app = make_app([RateLimit("1/minute", key=lambda connection: 42, name="bad")])  # type: ignore[arg-type,return-value]
    with test_client_factory(app) as client, pytest.raises(TypeError, match="'bad' returned int"):
        client.get("/")


def test_root_path_is_not_part_of_the_matched_path(test_client_factory: TestClientFactory) -> None:
    app = make_app([RateLimit("1/minute", path="/api/*")])
    with test_client_factory(app, root_path="/prefix") as client:
        assert client.get("/prefix/api/x").headers["ratelimit"].startswith('"1-per-minute";r=0')


def test_websockets_and_other_scopes_pass(test_client_factory: TestClientFactory) -> None:
    with test_client_factory(make_app([RateLimit("1/minute")])) as client:
        for _ in range(3):
            with client.websocket_connect("/ws") as websocket:
                assert websocket.receive_text() == "hi"


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "limit_count", "window", "name"),
    [
        ("100/minute", 100, 60, "100-per-minute"),
        ("5 per second", 5, 1, "5-per-second"),
        ("1000/DAY", 1000, 86400, "1000-per-day"),
        ("10/5 minutes", 10, 300, "10-per-5-minute"),
        (" 2 / 1 hours ", 2, 3600, "2-per-hour"),
    ],
)
def test_limit_grammar(limit: str, limit_count: int, window: int, name: str) -> None:
    rule = RateLimit(limit)
    assert (rule.limit, rule.window, rule.name) == (limit_count, window, name)
    assert repr(rule) == f"RateLimit({limit_count}/{window}s, path=None, name={name!r})"


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("100",), {}, "is not a limit; write it as '100/minute'"),
        (("100/fortnight",), {}, "is not a limit"),
        (("-1/minute",), {}, "is not a limit"),
        ((100,), {}, "is not a limit"),
        (("0/minute",), {}, "allows nothing"),
        (("1/0 minutes",), {}, "allows nothing"),
        (("1/minute",), {"path": "api/*"}, "must start with '/'"),
        (("1/minute",), {"name": 'a"b'}, "must be 1 to 64 letters"),
        (("1/minute",), {"name": ""}, "must be 1 to 64 letters"),
    ],
)
def test_bad_rules(args: tuple[Any, ...], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RateLimit(*args, **kwargs)


def test_bad_middleware_options() -> None:
    app = PlainTextResponse("x")
    with pytest.raises(TypeError, match="non-empty list of RateLimit"):
        RateLimitMiddleware(app, [])
    with pytest.raises(TypeError, match="non-empty list of RateLimit"):
        RateLimitMiddleware(app, ["1/minute"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="names must differ .*: 1-per-minute; give the rules"):
        RateLimitMiddleware(app, [RateLimit("1/minute"), RateLimit("1/minute", path="/a")])
    with pytest.raises(TypeError, match="store must be .*MemoryStore or RedisStore, not dict"):
        RateLimitMiddleware(app, [RateLimit("1/minute")], store={})  # type: ignore[arg-type]


# --- Redis: TTLs, outage policy, recovery --------------------------------------------------------


def test_redis_keys_carry_the_window_as_ttl(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    app = make_app([RateLimit("5/minute")], store=RedisStore(redis_url, prefix=prefix))
    with TestClient(app, backend="asyncio") as client:
        client.get("/")
    direct = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys: list[Any] = direct.keys(prefix + "*")  # str here; the stubs do not know it
        (key,) = keys
        assert key.startswith(f"{prefix}5-per-minute:")
        assert 55_000 < direct.pttl(key) <= 60_000
    finally:
        direct.close()


@pytest.mark.parametrize("fail_open", [True, False])
def test_redis_outage_policy_and_recovery(
    redis_server_factory: type[RedisServer], fail_open: bool, caplog: pytest.LogCaptureFixture
) -> None:
    server = redis_server_factory()
    server.start()
    store = RedisStore(server.url, timeout=0.3)
    app = make_app([RateLimit("2/minute")], store=store, fail_open=fail_open)
    caplog.set_level(logging.WARNING, "starling.middleware.ratelimit")
    with TestClient(app, backend="asyncio") as client:
        assert client.get("/").headers["ratelimit"] == '"2-per-minute";r=1;t=60'
        server.stop()
        for _ in range(3):
            response = client.get("/")
            if fail_open:
                assert response.status_code == 200 and "ratelimit" not in response.headers
            else:
                assert response.status_code == 503 and response.headers["retry-after"] == "1"
        server.start()  # an empty server: counting starts again, without a restart of the app
        assert client.get("/").headers["ratelimit"] == '"2-per-minute";r=1;t=60'
        client.get("/")
        assert client.get("/").status_code == 429
    lines = [record.getMessage() for record in caplog.records]
    where = f"RedisStore: Redis rate-limit script failed at {server.url}"
    if fail_open:
        assert len(lines) == 1  # logged once, not once per request
        assert lines[0].startswith(f"Rate-limit store unavailable, requests let through: {where}")
    else:
        assert len(lines) == 3
        assert all(
            line.startswith("Rate-limit store unavailable, request refused") for line in lines
        )


def test_redis_store_refused_on_trio_when_built_outside_a_loop(redis_url: str) -> None:
    app = RateLimitMiddleware(Starling(), [RateLimit("1/minute")], store=RedisStore(redis_url))
    with (
        pytest.raises(RuntimeError, match="lifespan.startup.failed: RedisStore needs asyncio"),
        TestClient(app, backend="trio"),
    ):
        pass  # pragma: no cover (startup fails)


def test_redis_store_connections_closed_at_shutdown(redis_url: str) -> None:
    store = RedisStore(redis_url, prefix=f"test:{uuid.uuid4().hex}:")
    with TestClient(make_app([RateLimit("5/minute")], store=store), backend="asyncio") as client:
        client.get("/")
        assert store.backend._client is not None  # type: ignore[union-attr]
    assert store.backend._client is None  # type: ignore[union-attr]


def test_store_unavailable_is_the_shared_error() -> None:
    from starling import sessions

    assert StoreUnavailable is sessions.StoreUnavailable
