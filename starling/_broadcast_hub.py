"""The local fan-out both broadcast backends share: which subscribers of this process listen to
which channel, and handing each published message to them.

The memory backend calls ``deliver`` from ``publish``; the Redis backend calls it from the task
that reads its pub/sub connection. Either way it never waits: each subscriber's own bounded
queue decides what happens when that subscriber is slow, so one slow client cannot hold up the
others (or the Redis connection, which Redis itself would drop once its output buffer filled).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, Protocol, TypeVar

EventT = TypeVar("EventT")
EventT_contra = TypeVar("EventT_contra", contravariant=True)


class Receiver(Protocol[EventT_contra]):
    """What the hub needs of a subscriber (``starling.broadcast.Subscriber``)."""

    def _deliver(self, event: EventT_contra) -> None: ...

    def _end(self, error: BaseException | None) -> None: ...


class Hub(Generic[EventT]):
    """Channels (by their UTF-8 bytes, as Redis names them) to their local subscribers."""

    def __init__(self, make_event: Callable[[str, str | bytes], EventT]) -> None:
        self._make_event = make_event
        self._names: dict[bytes, str] = {}
        self._receivers: dict[bytes, set[Receiver[EventT]]] = {}

    def __contains__(self, key: bytes) -> bool:
        return key in self._receivers

    def keys(self) -> list[bytes]:
        return list(self._receivers)

    def add(self, receiver: Receiver[EventT], channels: dict[bytes, str]) -> list[bytes]:
        """Listen on ``channels``; returns the ones nobody here listened to before."""
        new = []
        for key, name in channels.items():
            receivers = self._receivers.get(key)
            if receivers is None:
                receivers = self._receivers[key] = set()
                self._names[key] = name
                new.append(key)
            receivers.add(receiver)
        return new

    def remove(self, receiver: Receiver[EventT], keys: Iterable[bytes]) -> list[bytes]:
        """Stop listening on ``keys``; returns the ones nobody here listens to any more."""
        gone = []
        for key in keys:
            receivers = self._receivers.get(key)
            if receivers is None:  # already gone: the hub was closed meanwhile
                continue
            receivers.discard(receiver)
            if not receivers:
                del self._receivers[key], self._names[key]
                gone.append(key)
        return gone

    def deliver(self, key: bytes, message: str | bytes) -> None:
        receivers = self._receivers.get(key)
        if receivers:
            # One event object for every subscriber: a message is held once in memory however
            # many subscribers queue it.
            event = self._make_event(self._names[key], message)
            for receiver in receivers:
                receiver._deliver(event)

    def close(self) -> None:
        """End every subscription (their iteration stops) and forget them."""
        receivers = {receiver for group in self._receivers.values() for receiver in group}
        self._receivers.clear()
        self._names.clear()
        for receiver in receivers:
            receiver._end(None)
