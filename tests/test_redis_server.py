"""The Redis fixture itself: a real server that answers, stops and comes back on its port."""

from __future__ import annotations

import socket

import pytest

from tests._redis_server import RedisServer


def _ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16)


def test_shared_server_answers(redis_url: str) -> None:
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    assert _ping(port) == b"+PONG\r\n"


def test_own_server_stops_and_restarts_on_the_same_port(
    redis_server_factory: type[RedisServer],
) -> None:
    server = redis_server_factory()
    server.start()
    assert _ping(server.port) == b"+PONG\r\n"
    server.stop()
    with pytest.raises(OSError):
        _ping(server.port)
    server.stop()  # stopping a stopped server is harmless
    server.start()
    assert _ping(server.port) == b"+PONG\r\n"
