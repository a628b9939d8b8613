"""The demo board in process, on asyncio and trio: every route, every refusal."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.board.app import Settings, create_app
from examples.board.messages import KEEP, MemoryMessages, Message, RedisMessages
from starling.applications import Starling
from starling.testclient import AsyncTestClient, TestClient
from tests.board.test_browser import png
from tests.types import TestClientFactory

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def _token(html: str) -> str:
    found = re.search(r'name="csrftoken" value="([^"]+)"', html)
    assert found is not None, "the page carries a CSRF token"
    return found.group(1)


def _client(factory: TestClientFactory, tmp_path: Path, **settings: object) -> TestClient:
    app = create_app(Settings(upload_dir=tmp_path / "uploads", **settings))  # type: ignore[arg-type]
    return factory(app)


def _signed_in(client: TestClient, name: str = "Ada") -> str:
    token = _token(client.get("/").text)
    response = client.post("/signin", data={"name": name, "csrftoken": token})
    assert response.status_code == 200  # after the 303 back to the board
    assert f'<strong id="me">{name}</strong>' in response.text
    return _token(response.text)


def test_the_board_asks_for_a_name(test_client_factory: TestClientFactory, tmp_path: Path) -> None:
    with _client(test_client_factory, tmp_path) as client:
        response = client.get("/")
        assert response.status_code == 200
        assert 'id="signin-form"' in response.text
        assert "Sign in to chat." in response.text
        # the batteries are on: security headers and a nonce on the script
        assert response.headers["x-content-type-options"] == "nosniff"
        nonce = re.search(r'<script [^>]*nonce="([^"]+)"', response.text)
        assert nonce is not None and nonce.group(1) in response.headers["content-security-policy"]
        assert client.get("/health").text == "ok"


def test_sign_in_post_and_sign_out(test_client_factory: TestClientFactory, tmp_path: Path) -> None:
    with _client(test_client_factory, tmp_path) as client:
        token = _signed_in(client)
        response = client.post(
            "/messages",
            data={"text": " Hello <b>board</b> ", "csrftoken": token},
            headers={"accept": "application/json"},
        )
        assert response.status_code == 201
        assert response.json() == {
            "id": 1,
            "author": "Ada",
            "text": "Hello <b>board</b>",
            "image": None,
        }
        page = client.get("/").text
        assert "Hello &lt;b&gt;board&lt;/b&gt;" in page  # escaped, never markup
        # a plain form post (no script) lands back on the board
        response = client.post("/messages", data={"text": "again", "csrftoken": token})
        assert response.status_code == 200 and "again" in response.text
        client.post("/signout", data={"csrftoken": token})
        assert 'id="signin-form"' in client.get("/").text


def test_an_image_is_saved_and_served(
    test_client_factory: TestClientFactory, tmp_path: Path
) -> None:
    with _client(test_client_factory, tmp_path) as client:
        token = _signed_in(client)
        response = client.post(
            "/messages",
            data={"text": "a picture", "csrftoken": token},
            files={"image": ("blue.png", png(), "image/png")},
            headers={"accept": "application/json"},
        )
        assert response.status_code == 201
        name = response.json()["image"]
        assert re.fullmatch(r"[0-9a-f]{32}\.png", name)
        served = client.get(f"/uploads/{name}")
        assert served.content == png() and "etag" in served.headers
        ranged = client.get(f"/uploads/{name}", headers={"range": "bytes=0-7"})
        assert ranged.status_code == 206 and ranged.content == b"\x89PNG\r\n\x1a\n"


def test_refusals(test_client_factory: TestClientFactory, tmp_path: Path) -> None:
    with _client(test_client_factory, tmp_path, posts_per_minute=3) as client:
        token = _token(client.get("/").text)
        assert client.post("/signin", data={"name": " ", "csrftoken": token}).status_code == 400
        assert (
            client.post("/signin", data={"name": "x" * 41, "csrftoken": token}).status_code == 400
        )
        response = client.post("/messages", data={"text": "hi", "csrftoken": token})
        assert response.status_code == 401 and response.text == "Sign in to post."
        token = _signed_in(client)
        response = client.post("/messages", data={"text": "", "csrftoken": token})
        assert response.status_code == 400
        fake = ("evil.png", b"<script>alert(1)</script>", "image/png")
        response = client.post(
            "/messages", data={"text": "x", "csrftoken": token}, files={"image": fake}
        )
        assert response.status_code == 415
        assert response.text == "The image must be a PNG, JPEG or GIF file."
        # the posting limit: 3 a minute here, the 4th POST is refused
        response = client.post("/messages", data={"text": "x", "csrftoken": token})
        assert response.status_code == 429 and "retry-after" in response.headers
        # without a token the post never reaches the endpoint
        response = client.post("/signout", data={})
        assert response.status_code == 403


def test_chat_needs_a_name(test_client_factory: TestClientFactory, tmp_path: Path) -> None:
    with _client(test_client_factory, tmp_path) as client:
        from starling.websockets import WebSocketDisconnect

        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/chat"):
            pass  # pragma: no cover (the connection is refused before this runs)
        assert refused.value.code == 1008
        _signed_in(client)
        with client.websocket_connect("/chat") as ada, client.websocket_connect("/chat") as ada2:
            ada.send_text("  hello  ")
            ada.send_text("   ")  # blank lines are not sent to anyone
            ada.send_text("x" * 400)
            assert json.loads(ada2.receive_text()) == {"author": "Ada", "text": "hello"}
            assert json.loads(ada.receive_text()) == {"author": "Ada", "text": "hello"}
            assert json.loads(ada2.receive_text())["text"] == "x" * 300


def _next_event(lines: Iterator[str]) -> dict[str, str]:
    """The fields of the next event in a stream that has no comment before it."""
    fields: dict[str, str] = {}
    for line in lines:  # pragma: no branch (a stream this test reads never ends first)
        if not line:
            return fields
        name, _, value = line.partition(": ")
        fields[name] = value
    raise AssertionError("the stream ended")  # pragma: no cover (only when the test fails)


def test_the_feed_streams_events(test_client_factory: TestClientFactory, tmp_path: Path) -> None:
    with _client(test_client_factory, tmp_path) as client:
        token = _signed_in(client)
        for text in ("one", "two"):
            client.post("/messages", data={"text": text, "csrftoken": token})
        with client.stream("GET", "/events", headers={"last-event-id": "1"}) as response:
            assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
            event = _next_event(response.iter_lines())
            assert (event["event"], event["id"]) == ("message", "2")
            assert json.loads(event["data"])["text"] == "two"
        with client.stream("GET", "/events", headers={"last-event-id": "x"}) as response:
            event = _next_event(response.iter_lines())
            assert json.loads(event["data"])["text"] == "one"


@pytest.mark.anyio
async def test_a_resumed_feed_skips_what_the_browser_saw(memory_board: Starling) -> None:
    """A browser that saw up to id 3 (before a restart, say) gets only newer messages."""
    async with AsyncTestClient(memory_board) as client:
        token = _token((await client.get("/")).text)
        token = _token((await client.post("/signin", data={"name": "A", "csrftoken": token})).text)
        async with client.stream("GET", "/events", headers={"last-event-id": "3"}) as feed:
            for number in range(1, 5):
                await client.post("/messages", data={"text": str(number), "csrftoken": token})
            lines = feed.aiter_lines()
            assert [await anext(lines) for _ in range(3)] == [
                "event: message",
                "id: 4",
                'data: {"id":4,"author":"A","text":"4","image":null}',
            ]


@pytest.mark.anyio
async def test_memory_messages_keep_the_newest() -> None:
    store = MemoryMessages()
    for number in range(KEEP + 5):
        await store.add("a", str(number), None)
    recent = await store.recent()
    assert len(recent) == KEEP and recent[-1].text == str(KEEP + 4)
    assert [m.id for m in await store.recent(after=KEEP + 4)] == [KEEP + 5]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # redis-py is asyncio-only
@pytest.mark.anyio
async def test_redis_messages(redis_url: str) -> None:
    store = RedisMessages(redis_url, prefix="test-board:")
    try:
        await store._redis.delete("test-board:messages", "test-board:next-id")
        first = await store.add("Ada", "hi", "x.png")
        assert first == Message(1, "Ada", "hi", "x.png")
        for _ in range(KEEP):
            await store.add("Bob", "more", None)
        recent = await store.recent()
        assert len(recent) == KEEP and recent[0].id == 2
        assert await store.recent(after=KEEP) == [Message(KEEP + 1, "Bob", "more", None)]
    finally:
        await store.close()


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REDIS_URL", "")
    monkeypatch.delenv("BOARD_SECRET", raising=False)
    monkeypatch.delenv("BOARD_UPLOAD_DIR", raising=False)
    default = Settings.from_environ()
    assert default.redis_url is None and len(default.secret) >= 32
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("BOARD_SECRET", "s3cret")
    monkeypatch.setenv("BOARD_UPLOAD_DIR", str(tmp_path))
    configured = Settings.from_environ()
    assert configured.redis_url == "redis://127.0.0.1:1/0"
    assert (configured.secret, configured.upload_dir) == ("s3cret", tmp_path)


async def _live_feed_round_trip(client: AsyncTestClient) -> None:
    """Sign in, open the feed, post: the new message arrives on the open stream (after any
    kept messages, which a new feed replays first)."""
    token = _token((await client.get("/")).text)
    page = await client.post("/signin", data={"name": "Ada", "csrftoken": token})
    token = _token(page.text)
    await client.post("/messages", data={"text": "kept", "csrftoken": token})
    async with client.stream("GET", "/events") as feed:
        posted = await client.post(
            "/messages", data={"text": "live", "csrftoken": token}, headers=JSON
        )
        assert posted.status_code == 201
        texts = []
        async for line in feed.aiter_lines():  # pragma: no branch (ends at the live message)
            if line.startswith("data: "):
                texts.append(json.loads(line.removeprefix("data: "))["text"])
                if texts[-1] == "live" or len(texts) > KEEP:
                    break
        assert texts[-1] == "live"


JSON = {"accept": "application/json"}


@pytest.fixture
def memory_board(tmp_path: Path) -> Starling:
    # built here, not in the async test: building reads the file system (blocking calls)
    return create_app(Settings(upload_dir=tmp_path))


@pytest.fixture
def redis_board(tmp_path: Path, redis_url: str) -> Starling:
    return create_app(Settings(redis_url=redis_url, upload_dir=tmp_path))


@pytest.mark.anyio
async def test_a_new_message_reaches_an_open_feed(memory_board: Starling) -> None:
    async with AsyncTestClient(memory_board) as client:
        await _live_feed_round_trip(client)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # redis-py is asyncio-only
@pytest.mark.anyio
async def test_the_board_on_redis(redis_board: Starling) -> None:
    async with AsyncTestClient(redis_board) as client:
        await _live_feed_round_trip(client)
