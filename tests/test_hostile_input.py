"""Hostile requests against a whole app: whatever bytes a client sends in the path, query string,
headers, cookies, Host or JSON body, the answer is never a 500.

The app's endpoint touches everything a typical endpoint reads (url, base_url, headers,
query_params, cookies, client, path_params, json), so a parser that raises on odd input fails
here even if its own tests missed the case.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from starling.applications import Starling
from starling.requests import Request
from starling.responses import JSONResponse
from starling.routing import Route
from starling.types import Message


async def inspect_everything(request: Request) -> JSONResponse:
    body: Any = None
    if request.method == "POST":
        body = await request.json()
    return JSONResponse(
        {
            "url": str(request.url),
            "base_url": str(request.base_url),
            "host": request.url.hostname,
            "port": request.url.port,
            "headers": list(request.headers.items()),
            "query": list(request.query_params.multi_items()),
            "cookies": request.cookies,
            "client": request.client and request.client.host,
            "params": {key: str(value) for key, value in request.path_params.items()},
            "body": body,
            "for": str(request.url_for("item", id=1)),
        }
    )


app = Starling(
    routes=[
        Route("/", inspect_everything, methods=["GET", "POST"]),
        Route("/items/{id:int}", inspect_everything, name="item"),
        Route("/files/{name:path}", inspect_everything),
        Route("/{slug}", inspect_everything, methods=["GET", "POST"]),
    ]
)

header_bytes = st.binary(max_size=60)
header_name = st.sampled_from(
    [b"host", b"cookie", b"content-type", b"x-forwarded-for", b"accept", b"user-agent"]
) | st.binary(min_size=1, max_size=12)
paths = st.one_of(
    st.sampled_from(["/", "/items/1", "/items/" + "9" * 5000, "/files/a/../b", "/x"]),
    st.text(max_size=40).map(lambda text: "/" + text),
    st.text(max_size=40),
)


async def call(scope: dict[str, Any], body: bytes) -> list[Message]:
    sent: list[Message] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        if messages:
            return messages.pop()
        await anyio.sleep_forever()  # pragma: no cover (the app never waits for a disconnect)
        raise AssertionError  # pragma: no cover

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "POST"]),
    path=paths,
    query=st.binary(max_size=60),
    headers=st.lists(st.tuples(header_name, header_bytes), max_size=6),
    body=st.binary(max_size=60) | st.sampled_from([b'{"a": 1}', b"[" * 5000, b"\xff\xfe"]),
    server=st.sampled_from([("testserver", 80), ("::1", 8000), None, ("a@b", None)]),
)
def test_no_request_is_a_server_error(
    method: str,
    path: str,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    server: tuple[str, int | None] | None,
) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "root_path": "",
        "query_string": query,
        "headers": [(name.lower(), value) for name, value in headers],
        "client": ("203.0.113.9", 4000),
        "server": server,
    }
    sent = anyio.run(call, scope, body)
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] in (200, 307, 400, 404, 405), sent
    # whatever was parsed, the response itself is well formed
    assert sent[-1]["type"] == "http.response.body"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"host", b"evil.com/../x")], "testserver"),
        ([(b"host", b"a@evil.com")], "testserver"),
        ([(b"host", b"ok.example:99999")], "testserver"),
        ([(b"host", b"[::1]:8000")], "::1"),
    ],
)
def test_hostile_host_never_moves_the_authority(
    headers: list[tuple[bytes, bytes]], expected: str
) -> None:
    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "query_string": b"",
        "headers": headers,
        "server": ("testserver", 80),
    }
    sent = anyio.run(call, scope, b"")
    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"])["host"] == expected
