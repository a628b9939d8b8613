"""The board on two processes sharing one real Redis, as ``make demo WORKERS=2`` runs it: a
message posted through one reaches a live feed and a chat opened on the other."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests._processes import environment, free_port, running


def _serve(port: int, redis_url: str, uploads: Path) -> object:
    command = [sys.executable, "-m", "uvicorn", "--factory", "examples.board.app:create_app"]
    env = environment(
        REDIS_URL=redis_url, BOARD_SECRET="shared-by-both-workers", BOARD_UPLOAD_DIR=str(uploads)
    )
    return running([*command, "--host", "127.0.0.1", "--port", str(port)], port, env)


@pytest.fixture
def two_workers(redis_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    first, second = free_port(), free_port()
    with _serve(first, redis_url, tmp_path), _serve(second, redis_url, tmp_path):  # type: ignore[attr-defined]
        yield f"http://127.0.0.1:{first}", f"http://127.0.0.1:{second}"


def _token(html: str) -> str:
    found = re.search(r'name="csrftoken" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def _arrives(lines: Iterator[str], text: str, seconds: float = 20) -> bool:
    """Whether a message event with ``text`` comes on the stream within ``seconds`` (the board
    pings idle streams, so a line comes at least every few seconds)."""
    deadline = time.monotonic() + seconds
    for line in lines:  # pragma: no branch (the stream never ends: found, or out of time)
        if line.startswith("data: ") and json.loads(line.removeprefix("data: "))["text"] == text:
            return True
        if time.monotonic() > deadline:  # pragma: no cover (only when the message is lost)
            return False
    return False  # pragma: no cover (the stream never ends)


def test_a_post_on_one_worker_reaches_the_other(two_workers: tuple[str, str]) -> None:
    one, other = two_workers
    with httpx.Client(base_url=one, timeout=10, follow_redirects=True) as ada:
        response = ada.post("/signin", data={"name": "Ada", "csrftoken": _token(ada.get("/").text)})
        token = _token(response.text)
        session = ada.cookies["board"]
        cookie = {"cookie": f"board={session}"}
        with (
            httpx.Client(base_url=other, timeout=10, cookies={"board": session}) as same_user,
            same_user.stream("GET", "/events") as feed,
            connect(f"ws://{one.removeprefix('http://')}/chat", additional_headers=cookie) as here,
            connect(
                f"ws://{other.removeprefix('http://')}/chat", additional_headers=cookie
            ) as there,
        ):
            # The session made on one worker is known on the other (it lives in Redis) ...
            assert '<strong id="me">Ada</strong>' in same_user.get("/").text
            posted = ada.post(
                "/messages",
                data={"text": "across workers", "csrftoken": token},
                headers={"accept": "application/json"},
            )
            assert posted.status_code == 201
            # ... the message posted on the first reaches the feed on the second (after the
            # ones kept from earlier, which a new feed replays) ...
            assert _arrives(feed.iter_lines(), "across workers")
            # ... and a chat line said on one reaches a chat on the other.
            here.send("hello from the first worker")
            expected = {"author": "Ada", "text": "hello from the first worker"}
            assert json.loads(there.recv(timeout=10)) == expected
