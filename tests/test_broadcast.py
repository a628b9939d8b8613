"""starling.broadcast with the memory:// backend, on asyncio and trio; what any backend shares
(the subscriber's bounded queue, validation, hostile channel names and messages)."""

from __future__ import annotations

import sys
from typing import Any

import anyio
import pytest

from starling.broadcast import (
    DEFAULT_MAX_QUEUE,
    MAX_CHANNEL_BYTES,
    Broadcast,
    BroadcastError,
    Event,
    SubscriberOverflow,
)

pytestmark = pytest.mark.anyio

ODD_CHANNELS = [
    "",
    "a b",
    "line\nbreak",
    "cr\rlf\r\n",
    "nul\x00byte",
    "glob*",
    "glob?",
    "[ab]",
    "\\*",
    "émoji 🐦",
    "x" * MAX_CHANNEL_BYTES,
]


async def test_publish_reaches_subscribers_in_order() -> None:
    async with (
        Broadcast() as broadcast,
        broadcast.subscribe("news") as first,
        broadcast.subscribe("news") as second,
    ):
        for number in range(50):
            await broadcast.publish("news", f"item {number}")
        for subscriber in (first, second):
            received = [(await anext(subscriber)).message for _ in range(50)]
            assert received == [f"item {number}" for number in range(50)]
            assert subscriber.pending == 0
            assert subscriber.dropped == 0


async def test_a_subscriber_hears_only_its_channels() -> None:
    async with Broadcast() as broadcast, broadcast.subscribe("a", "b", "a") as subscriber:
        assert subscriber.channels == ("a", "b")
        await broadcast.publish("c", "not for us")
        await broadcast.publish("b", "one")
        await broadcast.publish("a", b"two")
        assert await anext(subscriber) == Event("b", "one")
        assert await anext(subscriber) == Event("a", "two")
        assert subscriber.pending == 0


async def test_publishing_to_nobody_is_fine() -> None:
    async with Broadcast() as broadcast:
        await broadcast.publish("empty room", "hello?")


async def test_event_text_and_bytes() -> None:
    text = Event("c", "héllo")
    assert text.data == "héllo".encode()
    assert text.message == "héllo"
    raw = Event("c", "héllo".encode())
    assert raw.message == "héllo"
    assert raw == text
    assert hash(raw) == hash(text)
    assert raw != Event("d", "héllo")
    assert text != "héllo"
    assert repr(text) == "Event(channel='c', message='héllo')"
    assert repr(Event("c", b"\xff")) == "Event(channel='c', message=b'\\xff')"
    with pytest.raises(ValueError, match="not UTF-8 text; read event.data"):
        _ = Event("c", b"\xff").message
    assert Event("c", b"\xff").data == b"\xff"


async def test_bytes_messages_arrive_unchanged() -> None:
    payload = bytes(range(256))
    async with Broadcast() as broadcast, broadcast.subscribe("bin") as subscriber:
        await broadcast.publish("bin", payload)
        assert (await anext(subscriber)).data == payload


@pytest.mark.parametrize("channel", ODD_CHANNELS, ids=repr)
async def test_odd_channel_names_are_literal(channel: str) -> None:
    async with (
        Broadcast() as broadcast,
        broadcast.subscribe(channel) as mine,
        broadcast.subscribe("globe") as other,
    ):
        # a pattern-looking name matches only itself, and no name matches it
        await broadcast.publish(channel[:-1] or "y", "near miss")
        await broadcast.publish("globe", "other")
        await broadcast.publish(channel, "hit")
        assert await anext(mine) == Event(channel, "hit")
        assert await anext(other) == Event("globe", "other")
        assert mine.pending == other.pending == 0


@pytest.mark.parametrize(
    ("channel", "error", "match"),
    [
        ("x" * (MAX_CHANNEL_BYTES + 1), ValueError, "1025 bytes long; the limit is 1024"),
        ("é" * (MAX_CHANNEL_BYTES // 2 + 1), ValueError, "1026 bytes long"),
        ("lone \ud800", ValueError, "not valid Unicode text"),
        (b"bytes", TypeError, "A channel name is a str, not bytes"),
        (None, TypeError, "not NoneType"),
    ],
)
async def test_bad_channel_names_are_refused(
    channel: Any, error: type[Exception], match: str
) -> None:
    async with Broadcast() as broadcast:
        with pytest.raises(error, match=match):
            await broadcast.publish(channel, "x")
        with pytest.raises(error, match=match):
            async with broadcast.subscribe("fine", channel):
                pass  # pragma: no cover (never entered)
        # the refused subscription left nothing behind
        async with broadcast.subscribe("fine") as subscriber:
            await broadcast.publish("fine", "ok")
            assert (await anext(subscriber)).message == "ok"


async def test_a_long_channel_name_is_cut_short_in_messages() -> None:
    async with Broadcast() as broadcast:
        with pytest.raises(ValueError) as info:
            await broadcast.publish("\n" * 5000, "x")
    message = str(info.value)
    assert "\n" not in message
    assert len(message) < 200
    assert "(5000 characters)" in message


async def test_message_size_limit() -> None:
    async with (
        Broadcast(max_message_size=1000) as broadcast,
        broadcast.subscribe("c") as subscriber,
    ):
        await broadcast.publish("c", "x" * 1000)
        await broadcast.publish("c", "é" * 500)  # 1000 bytes
        await broadcast.publish("c", b"x" * 1000)
        assert [len((await anext(subscriber)).data) for _ in range(3)] == [1000] * 3
        for too_big in ("x" * 1001, "é" * 501, b"x" * 1001, "x" * 100_000):
            with pytest.raises(ValueError, match="the limit is max_message_size=1000 bytes"):
                await broadcast.publish("c", too_big)
        assert subscriber.pending == 0


async def test_huge_message_with_the_default_limit() -> None:
    async with Broadcast() as broadcast, broadcast.subscribe("c") as subscriber:
        huge = "x" * (1024 * 1024)
        await broadcast.publish("c", huge)
        assert (await anext(subscriber)).message is huge  # never copied in one process
        with pytest.raises(ValueError, match="1048577 bytes"):
            await broadcast.publish("c", huge + "x")


@pytest.mark.parametrize("message", ["lone \udfff" * 300_000, 42, None])
async def test_bad_messages_are_refused(message: Any) -> None:
    async with Broadcast() as broadcast:
        with pytest.raises((ValueError, TypeError), match="not valid Unicode|str or bytes, not"):
            await broadcast.publish("c", message)


async def test_drop_oldest_keeps_the_newest_and_counts() -> None:
    async with Broadcast(max_queue=10) as broadcast, broadcast.subscribe("c") as subscriber:
        for number in range(10_000):
            await broadcast.publish("c", str(number))
            assert subscriber.pending <= 10  # bounded, whatever the publisher does
        assert subscriber.overflow == "drop_oldest"
        assert subscriber.dropped == 9_990
        received = [(await anext(subscriber)).message for _ in range(10)]
        assert received == [str(number) for number in range(9_990, 10_000)]


async def test_drop_newest_keeps_the_oldest_and_counts() -> None:
    async with (
        Broadcast(max_queue=3, overflow="drop_newest") as broadcast,
        broadcast.subscribe("c") as subscriber,
    ):
        for number in range(100):
            await broadcast.publish("c", str(number))
        assert subscriber.pending == 3
        assert subscriber.dropped == 97
        assert [(await anext(subscriber)).message for _ in range(3)] == ["0", "1", "2"]


async def test_disconnect_policy_ends_the_slow_subscriber() -> None:
    async with (
        Broadcast(max_queue=5, overflow="disconnect") as broadcast,
        broadcast.subscribe("c") as slow,
        broadcast.subscribe("c") as fast,
    ):
        for number in range(5):
            await broadcast.publish("c", str(number))
        assert (await anext(fast)).message == "0"
        await broadcast.publish("c", "5")  # the sixth event unread by `slow`
        assert slow.pending == 0  # its queue is freed at once
        assert slow.dropped == 1
        with pytest.raises(SubscriberOverflow, match="fell 5 events behind"):
            await anext(slow)
        with pytest.raises(SubscriberOverflow):  # it stays ended
            await anext(slow)
        assert (await anext(fast)).message == "1"
        await broadcast.publish("c", "6")
        assert [(await anext(fast)).message for _ in range(5)] == ["2", "3", "4", "5", "6"]
        assert fast.dropped == 0


async def test_queue_options_per_subscriber() -> None:
    async with Broadcast() as broadcast:
        async with broadcast.subscribe("c", max_queue=2, overflow="drop_newest") as subscriber:
            assert (subscriber.max_queue, subscriber.overflow) == (2, "drop_newest")
            for number in range(3):
                await broadcast.publish("c", str(number))
            assert subscriber.dropped == 1
        async with broadcast.subscribe("c") as default:
            assert (default.max_queue, default.overflow) == (DEFAULT_MAX_QUEUE, "drop_oldest")
        with pytest.raises(ValueError, match="max_queue must be a positive int, not 0"):
            async with broadcast.subscribe("c", max_queue=0):
                pass  # pragma: no cover (never entered)


async def test_a_waiting_subscriber_wakes_on_publish() -> None:
    received: list[str] = []
    async with Broadcast() as broadcast, anyio.create_task_group() as tasks:
        ready = anyio.Event()

        async def listen() -> None:
            async with broadcast.subscribe("c") as subscriber:
                ready.set()
                while len(received) < 3:
                    received.append((await anext(subscriber)).message)

        tasks.start_soon(listen)
        await ready.wait()
        with anyio.fail_after(5):
            for text in ("a", "b", "c"):
                await anyio.sleep(0.01)  # the listener is waiting each time
                await broadcast.publish("c", text)
    assert received == ["a", "b", "c"]


async def test_leaving_the_block_ends_the_subscription() -> None:
    async with Broadcast() as broadcast:
        async with broadcast.subscribe("c") as subscriber:
            await broadcast.publish("c", "kept")
        await broadcast.publish("c", "after")  # no longer delivered
        assert [event.message async for event in subscriber] == ["kept"]


async def test_disconnect_ends_every_iteration() -> None:
    broadcast = Broadcast()
    await broadcast.connect()
    ended = anyio.Event()

    async def listen() -> None:
        async with broadcast.subscribe("c") as subscriber:
            async for _ in subscriber:
                pass  # pragma: no cover (nothing is published)
        ended.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(listen)
        await anyio.sleep(0.01)
        await broadcast.disconnect()
        with anyio.fail_after(5):
            await ended.wait()
    await broadcast.disconnect()  # a second disconnect is harmless
    # and it connects again, with nothing left of before
    async with broadcast, broadcast.subscribe("c") as subscriber:
        await broadcast.publish("c", "again")
        assert (await anext(subscriber)).message == "again"


async def test_a_subscriber_cancelled_while_waiting_leaves_cleanly() -> None:
    async with Broadcast() as broadcast:
        with anyio.move_on_after(0.05):
            async with broadcast.subscribe("c") as subscriber:
                await anext(subscriber)
        async with broadcast.subscribe("c") as fresh:
            await broadcast.publish("c", "x")
            assert (await anext(fresh)).message == "x"
        assert subscriber.pending == 0


async def test_not_connected_is_a_clear_error() -> None:
    broadcast = Broadcast()
    with pytest.raises(BroadcastError, match=r"publish\(\): the broadcast is not connected"):
        await broadcast.publish("c", "x")
    with pytest.raises(BroadcastError, match=r"subscribe\(\): the broadcast is not connected"):
        async with broadcast.subscribe("c"):
            pass  # pragma: no cover (never entered)


async def test_connecting_twice_is_an_error() -> None:
    async with Broadcast() as broadcast:
        with pytest.raises(BroadcastError, match="already connected"):
            await broadcast.connect()


def test_repr() -> None:
    assert repr(Broadcast()) == "Broadcast('memory://')"


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("memory", "is not supported"),
        ("postgres://x", "is not supported"),
        ("kafka://x", "is not supported"),
        ("memory://somewhere", "takes nothing after"),
    ],
)
def test_bad_urls_fail_at_construction(url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Broadcast(url)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"max_queue": 0}, "max_queue must be a positive int"),
        ({"max_queue": 1.5}, "max_queue must be a positive int"),
        ({"overflow": "block"}, "overflow must be one of"),
        ({"max_message_size": 0}, "max_message_size must be a positive int"),
        ({"max_message_size": 2.0}, "max_message_size must be a positive int"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"timeout": float("nan")}, "timeout must be a positive number"),
        ({"health_check_interval": -1}, "health_check_interval must be a positive"),
    ],
)
def test_bad_options_fail_at_construction(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Broadcast(**options)


def test_redis_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ImportError, match=r"pip install 'starling\[redis\]'"):
        Broadcast("redis://127.0.0.1:6379/0")


def test_redis_on_trio_fails_at_construction() -> None:
    import trio

    async def build() -> None:
        Broadcast("redis://127.0.0.1:6379/0")

    with pytest.raises(RuntimeError, match="redis-py has no trio support"):
        trio.run(build)


def test_redis_built_outside_trio_fails_at_connect_on_trio() -> None:
    import trio

    broadcast = Broadcast("redis://127.0.0.1:6379/0")  # no loop running: cannot tell yet
    with pytest.raises(RuntimeError, match="memory://'\\) \\(one process\\) on trio"):
        trio.run(broadcast.connect)
