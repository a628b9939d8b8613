"""The storage backends the session and rate-limit stores share (starling/_backends/).

The rate-limit step (``hit``) is held to the same rules on memory and on a real Redis: a fixed
window started by the first counted request, refused requests not counted, every key with a
TTL, and atomic (concurrent hits never let more than the limit through).
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
import redis

from starling._backends.asynclib import current_async_library, require_asyncio
from starling._backends.errors import StoreUnavailable
from starling._backends.memory import MemoryBackend
from starling._backends.redis import RedisBackend, safe_location
from tests._redis_server import RedisServer

Backend = MemoryBackend | RedisBackend


@pytest.fixture(params=["memory", "redis"])
async def backend(
    request: pytest.FixtureRequest, anyio_backend: tuple[str, dict[str, Any]]
) -> AsyncIterator[Backend]:
    if request.param == "memory":
        yield MemoryBackend(1000)
        return
    if anyio_backend[0] == "trio":
        pytest.skip("redis-py is asyncio-only (refused on trio: see test_redis_refuses_trio)")
    made = RedisBackend(request.getfixturevalue("redis_url"), owner="test")
    try:
        yield made
    finally:
        await made.aclose()


def unique(name: str) -> str:
    return f"test:{uuid.uuid4().hex}:{name}"


# --- key-value -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_get_set_delete(backend: Backend) -> None:
    key = unique("kv")
    assert await backend.get(key) is None
    await backend.set(key, b"value", 60)
    assert await backend.get(key) == b"value"
    await backend.set(key, b"other", 60)
    assert await backend.get(key) == b"other"
    await backend.delete(key)
    assert await backend.get(key) is None
    await backend.delete(key)  # deleting what is not there is harmless


@pytest.mark.anyio
async def test_values_expire(backend: Backend) -> None:
    key = unique("ttl")
    await backend.set(key, b"brief", 0.05)
    await anyio.sleep(0.1)
    assert await backend.get(key) is None


@pytest.mark.anyio
async def test_memory_is_bounded_least_recently_used_first(anyio_backend: Any) -> None:
    memory = MemoryBackend(3)
    for name in "abc":
        await memory.set(name, name.encode(), 60)
    assert await memory.get("a") == b"a"  # "a" used: "b" is now the least recent
    await memory.set("d", b"d", 60)
    assert len(memory) == 3
    assert await memory.get("b") is None
    assert [await memory.get(name) for name in "acd"] == [b"a", b"c", b"d"]


@pytest.mark.anyio
async def test_memory_drops_expired_entries_as_it_writes(anyio_backend: Any) -> None:
    memory = MemoryBackend(100)
    for n in range(4):
        await memory.set(f"old{n}", b"x", 0.01)
    await anyio.sleep(0.02)
    await memory.set("new1", b"x", 60)  # drops two expired entries from the front
    assert len(memory) == 3
    await memory.set("new2", b"x", 60)
    assert len(memory) == 2
    await memory.set("new3", b"x", 60)  # the front is live: nothing more to drop
    assert len(memory) == 3


@pytest.mark.anyio
async def test_memory_size_must_be_positive(anyio_backend: Any) -> None:
    for size in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match="max_entries must be a positive int"):
            MemoryBackend(size)  # type: ignore[arg-type]
    memory = MemoryBackend(1)
    memory.check_async_library()  # any library will do
    await memory.aclose()  # nothing to close


# --- the rate-limit step ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_hit_counts_up_to_the_limit_then_refuses(backend: Backend) -> None:
    key = unique("hit")
    for n in range(1, 4):
        result = await backend.hit([key], [3], [60])
        assert result.allowed and result.counts == [n]
        assert 59 < result.resets[0] <= 60
    refused = await backend.hit([key], [3], [60])
    assert not refused.allowed and refused.counts == [3]


@pytest.mark.anyio
async def test_hit_window_restarts_after_it_ends(backend: Backend) -> None:
    key = unique("window")
    assert (await backend.hit([key], [1], [0.05])).allowed
    assert not (await backend.hit([key], [1], [0.05])).allowed
    await anyio.sleep(0.1)
    result = await backend.hit([key], [1], [0.05])
    assert result.allowed and result.counts == [1]


@pytest.mark.anyio
async def test_hit_on_several_keys_counts_none_when_one_refuses(backend: Backend) -> None:
    tight, loose = unique("tight"), unique("loose")
    assert (await backend.hit([tight, loose], [1, 10], [60, 60])).counts == [1, 1]
    refused = await backend.hit([tight, loose], [1, 10], [60, 60])
    assert not refused.allowed
    assert refused.counts == [1, 1]  # the loose key did not pay for the refused request
    assert (await backend.hit([loose], [10], [60])).counts == [2]


@pytest.mark.anyio
async def test_hit_is_atomic_under_concurrency(backend: Backend) -> None:
    key = unique("race")
    results: list[bool] = []

    async def one() -> None:
        results.append((await backend.hit([key], [25], [60])).allowed)

    async with anyio.create_task_group() as group:
        for _ in range(60):
            group.start_soon(one)
    assert results.count(True) == 25


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", [("asyncio", {})])
async def test_redis_counter_keys_always_carry_a_ttl(redis_url: str, anyio_backend: Any) -> None:
    backend = RedisBackend(redis_url, owner="test")
    key = unique("stray")
    direct = redis.Redis.from_url(redis_url)
    try:
        direct.set(key, b"99")  # a key without a TTL (not ours) is a new window, not 99 hits
        result = await backend.hit([key], [5], [60])
        assert result.allowed and result.counts == [1]
        assert 0 < direct.pttl(key) <= 60_000
    finally:
        direct.close()
        await backend.aclose()


# --- Redis: errors, outage, recovery, trio -------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", [("asyncio", {})])
async def test_redis_outage_and_recovery_on_every_operation(
    redis_server_factory: type[RedisServer], anyio_backend: Any
) -> None:
    server = redis_server_factory()
    server.start()
    backend = RedisBackend(server.url, owner="TestStore", timeout=0.3)
    try:
        await backend.set("k", b"v", 60)
        server.stop()
        operations = [
            ("GET", backend.get("k")),
            ("SET", backend.set("k", b"v", 60)),
            ("DEL", backend.delete("k")),
            ("rate-limit script", backend.hit(["k2"], [1], [60])),
        ]
        for name, operation in operations:
            with pytest.raises(StoreUnavailable) as caught:
                await operation
            assert str(caught.value).startswith(
                f"TestStore: Redis {name} failed at {server.url} (timeout 0.3 s): "
            )
        server.start()
        # the pooled connections the old server dropped are replaced without an error
        assert await backend.get("k") is None
        assert (await backend.hit(["k2"], [1], [60])).allowed  # the script is loaded again
    finally:
        await backend.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", [("asyncio", {})])
async def test_redis_nobody_listening(anyio_backend: Any) -> None:
    from tests._redis_server import free_port

    backend = RedisBackend(f"redis://127.0.0.1:{free_port()}/0", owner="TestStore", timeout=0.3)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="Redis GET failed at redis://127.0.0.1:"):
        await backend.get("k")
    assert time.monotonic() - started < 5
    await backend.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", [("asyncio", {})])
async def test_redis_client_follows_the_event_loop(redis_url: str, anyio_backend: Any) -> None:
    backend = RedisBackend(redis_url, owner="test")
    await backend.set(unique("loop"), b"x", 60)
    first = backend._client
    backend._loop = asyncio.new_event_loop()  # as if first used on a loop that has ended
    backend._loop.close()
    await backend.get(unique("loop"))
    assert backend._client is not first
    await first.aclose(close_connection_pool=True)
    await backend.aclose()
    await backend.aclose()  # closing twice is harmless


def test_redis_refuses_trio(redis_url: str) -> None:
    async def build() -> None:
        RedisBackend(redis_url, owner="RedisStore")

    with pytest.raises(RuntimeError) as caught:
        anyio.run(build, backend="trio")
    assert str(caught.value) == (
        "RedisStore needs asyncio, but this app runs on trio: redis-py's client is "
        "asyncio-only. Run the app on asyncio (the default of uvicorn, hypercorn and "
        "granian), or use an in-memory store (or EncryptedCookieStore for sessions)."
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://:secret@host:1/2", "redis://:***@host:1/2"),
        ("rediss://user:secret@host/0", "rediss://user:***@host/0"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
    ],
)
def test_locations_never_show_a_password(url: str, shown: str) -> None:
    assert safe_location(url) == shown


# --- which async library runs ----------------------------------------------------------------


def test_current_async_library(monkeypatch: pytest.MonkeyPatch) -> None:
    async def which() -> str | None:
        return current_async_library()

    assert anyio.run(which, backend="asyncio") == "asyncio"
    assert anyio.run(which, backend="trio") == "trio"
    assert current_async_library() is None
    require_asyncio("anything")  # nothing runs: nothing to refuse yet
    monkeypatch.delitem(sys.modules, "trio")
    assert current_async_library() is None
