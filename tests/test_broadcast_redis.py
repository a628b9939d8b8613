"""starling.broadcast on a real Redis server: across Broadcast instances (as across processes),
hostile channel names, and Redis going down, hanging and coming back.

asyncio only: redis-py has no trio support (tests/test_broadcast.py checks the trio refusal).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis

from starling.broadcast import Broadcast, BroadcastUnavailable, Event, Subscriber
from tests._redis_server import RedisServer
from tests.test_broadcast import ODD_CHANNELS

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("asyncio", {})


@pytest.fixture
async def pair(redis_url: str) -> AsyncIterator[tuple[Broadcast, Broadcast]]:
    """Two broadcasts on one Redis: what two worker processes have."""
    async with Broadcast(redis_url) as first, Broadcast(redis_url) as second:
        yield first, second


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    with anyio.fail_after(seconds):
        while not await check():
            await anyio.sleep(0.02)


async def subscribers_in_redis(url: str, channel: str) -> int:
    async with Redis.from_url(url) as admin:
        counts = await admin.pubsub_numsub(channel)
        return int(counts[0][1])


async def test_a_message_reaches_the_other_broadcast_in_order(
    pair: tuple[Broadcast, Broadcast],
) -> None:
    publisher, receiver = pair
    async with receiver.subscribe("orders", max_queue=200) as subscriber:
        for number in range(200):
            await publisher.publish("orders", f"order {number}")
        with anyio.fail_after(10):
            received = [(await anext(subscriber)).message for _ in range(200)]
    assert received == [f"order {number}" for number in range(200)]


async def test_subscribe_returns_once_redis_confirmed_it(
    pair: tuple[Broadcast, Broadcast],
) -> None:
    publisher, receiver = pair
    for number in range(20):
        async with receiver.subscribe(f"fresh:{number}") as subscriber:
            await publisher.publish(f"fresh:{number}", "first")  # published right away
            with anyio.fail_after(5):
                assert (await anext(subscriber)).message == "first"


@pytest.mark.parametrize(
    "channel",
    [*ODD_CHANNELS, "x\r\nPUBLISH injected boom\r\n", "*"],
    ids=repr,
)
async def test_odd_channel_names_are_literal_in_redis(
    pair: tuple[Broadcast, Broadcast], redis_url: str, channel: str
) -> None:
    publisher, receiver = pair
    async with (
        receiver.subscribe(channel) as mine,
        receiver.subscribe("globe", "injected") as other,
    ):
        await publisher.publish(channel[:-1] or "y", "near miss")
        await publisher.publish("globe", "other")
        await publisher.publish(channel, "hit")
        with anyio.fail_after(5):
            assert await anext(mine) == Event(channel, "hit")
            assert await anext(other) == Event("globe", "other")
        assert mine.pending == other.pending == 0
        assert await subscribers_in_redis(redis_url, channel) == 1
        async with Redis.from_url(redis_url) as admin:
            assert await admin.pubsub_numpat() == 0  # never a pattern subscription


async def test_huge_and_binary_messages_cross_redis(pair: tuple[Broadcast, Broadcast]) -> None:
    publisher, receiver = pair
    huge = bytes(range(256)) * 4096  # 1 MiB, every byte value
    async with receiver.subscribe("big") as subscriber:
        await publisher.publish("big", huge)
        await publisher.publish("big", "é" * 10)
        with anyio.fail_after(10):
            assert (await anext(subscriber)).data == huge
            event = await anext(subscriber)
        assert event.message == "é" * 10
        with pytest.raises(ValueError, match="not UTF-8"):
            _ = Event("big", huge).message


async def test_the_last_subscriber_leaving_unsubscribes_in_redis(
    pair: tuple[Broadcast, Broadcast], redis_url: str
) -> None:
    _, receiver = pair
    async with receiver.subscribe("shared") as first:
        async with receiver.subscribe("shared"):
            # one Redis subscription per process, however many local subscribers
            assert await subscribers_in_redis(redis_url, "shared") == 1
        assert await subscribers_in_redis(redis_url, "shared") == 1
        assert first.pending == 0

    async def released() -> bool:
        return await subscribers_in_redis(redis_url, "shared") == 0

    await eventually(released)


async def test_leaving_and_coming_back_quickly(
    pair: tuple[Broadcast, Broadcast], redis_url: str
) -> None:
    publisher, receiver = pair
    for _ in range(30):
        async with receiver.subscribe("flap"):
            pass
    # a subscription cancelled before Redis confirmed it, then a new one at once
    with anyio.move_on_after(0):
        async with receiver.subscribe("flap"):
            pass  # pragma: no cover (cancelled before entering)
    async with receiver.subscribe("flap") as subscriber:
        await publisher.publish("flap", "still here")
        with anyio.fail_after(5):
            assert (await anext(subscriber)).message == "still here"
        assert await subscribers_in_redis(redis_url, "flap") == 1


async def test_a_slow_subscriber_stays_bounded(pair: tuple[Broadcast, Broadcast]) -> None:
    publisher, receiver = pair
    async with (
        receiver.subscribe("firehose", max_queue=5) as slow,
        receiver.subscribe("firehose", max_queue=1000) as fast,
    ):
        for number in range(300):
            await publisher.publish("firehose", str(number))
        with anyio.fail_after(10):
            assert [(await anext(fast)).message for _ in range(300)][-1] == "299"
        assert slow.pending == 5
        assert slow.dropped == 295
        assert [(await anext(slow)).message for _ in range(5)] == [
            "295",
            "296",
            "297",
            "298",
            "299",
        ]


# -- Redis down, hanging, restarting: a server of the test's own


@pytest.fixture
def server(redis_server_factory: type[RedisServer]) -> RedisServer:
    own = redis_server_factory()
    own.start()
    return own


async def test_publish_while_redis_is_down_says_where_it_was_expected(server: RedisServer) -> None:
    async with Broadcast(server.url, timeout=1) as broadcast:
        server.stop()
        with anyio.fail_after(3), pytest.raises(BroadcastUnavailable) as info:
            await broadcast.publish("news", "lost")
    message = str(info.value)
    assert "could not publish to channel 'news'" in message
    assert f"Redis expected at {server.url}" in message
    assert "timeout=1" in message


async def test_the_url_password_never_shows(server: RedisServer) -> None:
    url = f"redis://user:s3cret@127.0.0.1:{server.port}/0"
    server.stop()
    broadcast = Broadcast(url, timeout=0.2)
    assert repr(broadcast) == f"Broadcast('redis://user:***@127.0.0.1:{server.port}/0')"
    async with broadcast:
        with pytest.raises(BroadcastUnavailable) as info:
            await broadcast.publish("c", "x")
        with pytest.raises(BroadcastUnavailable) as subscribing:
            async with broadcast.subscribe("c"):
                pass  # pragma: no cover (never entered)
    for error in (info.value, subscribing.value):
        assert "s3cret" not in str(error)
        assert f"redis://user:***@127.0.0.1:{server.port}/0" in str(error)


async def test_subscriptions_come_back_after_a_restart(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="starling.broadcast")
    async with (
        Broadcast(server.url, timeout=1) as publisher,
        Broadcast(server.url, timeout=1) as receiver,
        receiver.subscribe("news") as subscriber,
    ):
        await publisher.publish("news", "before")
        with anyio.fail_after(5):
            assert (await anext(subscriber)).message == "before"
        server.stop()
        with pytest.raises(BroadcastUnavailable):
            await publisher.publish("news", "during")
        server.start()

        async def delivered() -> bool:
            # each try may land before the receiver has re-subscribed: pub/sub keeps nothing
            try:
                await publisher.publish("news", "after")
            except BroadcastUnavailable:  # pragma: no cover (only if the restart is slow)
                return False
            with anyio.move_on_after(0.2):
                return (await anext(subscriber)).message == "after"
            return False

        await eventually(delivered)
    assert f"Broadcast lost its Redis connection to {server.url} (ConnectionError" in caplog.text
    assert caplog.text.count(f"Broadcast connected to Redis at {server.url}.") >= 3


async def test_starting_while_redis_is_down(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.stop()
    async with Broadcast(server.url, timeout=0.3) as broadcast:
        with pytest.raises(BroadcastUnavailable, match="there is no connection to it"):
            async with broadcast.subscribe("news"):
                pass  # pragma: no cover (never entered)
        server.start()

        async def subscribed() -> bool:
            try:
                async with broadcast.subscribe("news") as subscriber:
                    await broadcast.publish("news", "up")
                    return (await anext(subscriber)).message == "up"
            except BroadcastUnavailable:  # pragma: no cover (only if reconnecting is slow)
                return False

        await eventually(subscribed)
    assert f"could not reach Redis at {server.url} within 0.3s" in caplog.text


async def pause_every_client(admin: Redis, milliseconds: int) -> None:
    """Make the server hang (every command waits) for a while: a slow or stuck Redis."""
    await admin.execute_command("CLIENT", "PAUSE", str(milliseconds), "ALL")  # type: ignore[no-untyped-call]


async def delivered_again(broadcast: Broadcast, subscriber: Subscriber) -> bool:
    """Publish once more; True when the subscriber gets it (Redis is fully back)."""
    try:
        await broadcast.publish("news", "moving again")
    except BroadcastUnavailable:
        return False
    with anyio.move_on_after(0.2):
        return (await anext(subscriber)).message == "moving again"
    return False  # pragma: no cover (only if re-subscribing is slow)


async def test_a_hanging_redis_times_out_and_is_used_again(server: RedisServer) -> None:
    async with (
        Broadcast(server.url, timeout=0.3, health_check_interval=60) as broadcast,
        broadcast.subscribe("news") as subscriber,
        Redis.from_url(server.url) as admin,
    ):
        await pause_every_client(admin, milliseconds=1000)
        started = anyio.current_time()
        with pytest.raises(BroadcastUnavailable, match="it did not answer in time"):
            await broadcast.publish("news", "stuck")
        assert anyio.current_time() - started < 0.9
        with pytest.raises(BroadcastUnavailable, match="did not confirm the subscription in time"):
            async with broadcast.subscribe("other"):
                pass  # pragma: no cover (never entered)
        await eventually(lambda: delivered_again(broadcast, subscriber))


async def test_a_quiet_healthy_connection_is_kept(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        Broadcast(server.url, timeout=0.3, health_check_interval=0.05) as broadcast,
        broadcast.subscribe("news") as subscriber,
    ):
        await anyio.sleep(0.5)  # several PINGs, each answered
        await broadcast.publish("news", "still connected")
        with anyio.fail_after(5):
            assert (await anext(subscriber)).message == "still connected"
    assert "lost its Redis connection" not in caplog.text


async def test_a_silent_connection_is_noticed_and_replaced(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="starling.broadcast")
    async with (
        Broadcast(server.url, timeout=0.3, health_check_interval=0.1) as broadcast,
        broadcast.subscribe("news") as subscriber,
        Redis.from_url(server.url) as admin,
    ):
        await pause_every_client(admin, milliseconds=1000)

        async def noticed() -> bool:
            return "(TimeoutError: no answer to PING within 0.3s)" in caplog.text

        await eventually(noticed)
        await eventually(lambda: delivered_again(broadcast, subscriber))
