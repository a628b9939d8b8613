"""Responses: header building, cookies, streaming, files and ranges, as Starlette 1.10 does them."""

from __future__ import annotations

import array
import datetime as dt
import json
import os
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from http.cookies import CookieError
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from starling.background import BackgroundTask
from starling.datastructures import URL, Headers, MutableHeaders
from starling.requests import ClientDisconnect
from starling.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    MalformedRangeHeader,
    PlainTextResponse,
    RangeNotSatisfiable,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starling.types import Message, Receive, Scope, Send

if TYPE_CHECKING:  # a Protocol named Test*: imported at run time, pytest would try to collect it
    from tests.types import TestClientFactory

HTTP_DATE = r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT"


def http_scope(*headers: tuple[str, str], method: str = "GET", **extra: Any) -> Scope:
    scope: Scope = {
        "type": "http",
        "method": method,
        "path": "/",
        "headers": [(name.encode(), value.encode()) for name, value in headers],
    }
    scope.update(extra)
    return scope


async def never_receive() -> Message:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")  # pragma: no cover (sleep_forever never returns)


async def call(
    app: Any, scope: Scope, receive: Receive = never_receive, send_error: Exception | None = None
) -> list[Message]:
    """Run ``app`` as the server would and return what it sent."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)
        if send_error is not None and message["type"] == "http.response.body":
            raise send_error

    await app(scope, receive, send)
    return sent


def decoded(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw]


# --- Response: body and headers -----------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "body", "length"),
    [
        (None, b"", "0"),
        (b"xy", b"xy", "2"),
        ("\u00e9", "\u00e9".encode(), "2"),
        (memoryview(b"abc"), b"abc", "3"),
        (memoryview(array.array("i", [1, 2])), array.array("i", [1, 2]).tobytes(), "8"),
    ],
)
def test_body_types(content: Any, body: bytes, length: str) -> None:
    response = Response(content)
    assert bytes(response.body) == body
    assert response.raw_headers == [(b"content-length", length.encode())]


@pytest.mark.parametrize("content", [1, [1], {"a": 1}, bytearray(b"x")])
def test_other_body_types_fail_as_in_starlette(content: Any) -> None:
    with pytest.raises(AttributeError, match="has no attribute 'encode'"):
        Response(content)


def test_instance_attributes() -> None:
    response = Response("x", headers={"a": "b"})
    assert vars(response) == {
        "status_code": 200,
        "background": None,
        "body": b"x",
        "raw_headers": [(b"a", b"b"), (b"content-length", b"1")],
    }
    assert Response.media_type is None
    assert Response.charset == "utf-8"
    assert Response("x", media_type="text/x").media_type == "text/x"


@pytest.mark.parametrize(
    ("media_type", "content_type"),
    [
        ("text/plain", "text/plain; charset=utf-8"),
        ("text/csv", "text/csv; charset=utf-8"),
        ("text/plain; charset=latin-1", "text/plain; charset=latin-1"),
        ("text/plain;CHARSET=x", "text/plain;CHARSET=x"),
        ("Text/Plain", "Text/Plain"),  # the prefix test is case-sensitive, as in Starlette
        ("textual/x", "textual/x"),
        ("application/json", "application/json"),
        ("image/svg+xml", "image/svg+xml"),
    ],
)
def test_content_type(media_type: str, content_type: str) -> None:
    response = Response("x", media_type=media_type)
    assert response.raw_headers == [
        (b"content-length", b"1"),
        (b"content-type", content_type.encode()),
    ]


def test_content_type_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import starling.responses

    monkeypatch.setattr(starling.responses, "_CONTENT_TYPES_CACHE_SIZE", 0)
    response = Response("x", media_type="text/made-up-per-request")
    assert response.raw_headers[1] == (b"content-type", b"text/made-up-per-request; charset=utf-8")
    assert ("text/made-up-per-request", "utf-8") not in starling.responses._content_types


def test_charset_of_a_subclass() -> None:
    class Latin1Response(Response):
        media_type = "text/plain"
        charset = "latin-1"

    response = Latin1Response("\u00e9")
    assert response.body == b"\xe9"
    assert response.raw_headers[1] == (b"content-type", b"text/plain; charset=latin-1")


def test_user_headers_come_first_and_win() -> None:
    response = Response("x", media_type="text/html", headers={"X-A": "1", "Content-Type": "foo"})
    assert response.raw_headers == [
        (b"x-a", b"1"),
        (b"content-type", b"foo"),
        (b"content-length", b"1"),
    ]
    response = Response("x", media_type="text/html", headers={"X-A": "1", "content-length": "5"})
    assert response.raw_headers == [
        (b"x-a", b"1"),
        (b"content-length", b"5"),
        (b"content-type", b"text/html; charset=utf-8"),
    ]


def test_headers_from_starling_headers_objects() -> None:
    assert Response("x", headers=Headers({"A": "b"})).raw_headers[0] == (b"a", b"b")
    assert Response("x", headers=MutableHeaders({"A": "b"})).raw_headers[0] == (b"a", b"b")


@pytest.mark.parametrize("status_code", [100, 101, 199, 204, 304])
def test_no_content_length_without_a_body(status_code: int) -> None:
    assert Response(b"abc", status_code=status_code).raw_headers == []
    assert Response(status_code=status_code, media_type="text/plain").raw_headers == [
        (b"content-type", b"text/plain; charset=utf-8")
    ]


@pytest.mark.parametrize("status_code", [200, 205, 404, 500])
def test_content_length_with_a_body(status_code: int) -> None:
    assert Response(status_code=status_code).raw_headers == [(b"content-length", b"0")]


def test_a_given_content_length_is_kept_even_without_a_body() -> None:
    response = Response(b"abc", status_code=304, headers={"content-length": "3"})
    assert response.raw_headers == [(b"content-length", b"3")]


def test_header_values_are_latin_1() -> None:
    assert Response("x", headers={"X": "\u00e9"}).raw_headers[0] == (b"x", b"\xe9")
    with pytest.raises(UnicodeEncodeError):
        Response("x", headers={"X": "\u20ac"})


@pytest.mark.parametrize("value", ["a\r\nSet-Cookie: x=1", "a\nb", "a\rb", "a\x00b", "a\x7f"])
def test_control_characters_in_header_values_are_refused(value: str) -> None:
    """APPSEC: Starlette passes CR/LF through to the server; starling raises."""
    with pytest.raises(ValueError, match="Invalid HTTP header value"):
        Response("x", headers={"X": value})


def test_tab_is_allowed_in_header_values() -> None:
    assert Response("x", headers={"X": "a\tb"}).raw_headers[0] == (b"x", b"a\tb")


@pytest.mark.parametrize("value", ["a\r\nSet-Cookie: x=1", "a\nb", "a\rb", "a\x00b", "a\x7f"])
@pytest.mark.parametrize("how", ["setitem", "setdefault", "append", "update"])
def test_headers_set_later_are_checked_too(value: str, how: str) -> None:
    """APPSEC: response.headers[...] and friends refuse what the constructor refuses."""
    response = Response("x")
    before = list(response.raw_headers)
    headers = response.headers
    with pytest.raises(ValueError, match="Invalid HTTP header value"):
        if how == "setitem":
            headers["X"] = value
        elif how == "setdefault":
            headers.setdefault("X", value)
        elif how == "append":
            headers.append("X", value)
        else:
            headers.update({"X": value})
    with pytest.raises(ValueError, match="Invalid HTTP header name"):
        headers["a b"] = "fine"
    assert response.raw_headers == before
    headers["X-Ok"] = "a\tb \u00e9"
    assert response.raw_headers[-1] == (b"x-ok", b"a\tb \xe9")


@pytest.mark.parametrize("name", ["X\r\n", "a b", "a:b", "", "a\x00", "\u00e9"])
def test_invalid_header_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="Invalid HTTP header name"):
        Response("x", headers={name: "v"})


def test_media_type_with_control_characters_is_refused() -> None:
    with pytest.raises(ValueError, match="Invalid HTTP header value"):
        Response("x", media_type="text/plain\r\nX-Injected: 1")


def test_headers_property_edits_the_raw_list() -> None:
    response = Response("x", headers={"a": "b"})
    headers = response.headers
    assert isinstance(headers, MutableHeaders)
    assert headers.raw is response.raw_headers
    assert response.headers is headers
    headers["c"] = "d"
    assert response.raw_headers[-1] == (b"c", b"d")
    # a replaced list is followed (Starlette would keep showing the old one)
    response.raw_headers = [(b"z", b"1")]
    assert dict(response.headers) == {"z": "1"}


def test_init_headers_can_be_called_again() -> None:
    response = Response("x")
    response.body = b"yyyy"
    response.init_headers({"q": "1"})
    assert response.raw_headers == [(b"q", b"1"), (b"content-length", b"4")]


# --- Response: sending ----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_call_sends_start_and_body_then_runs_the_background(method: str) -> None:
    events: list[str] = []
    response = Response("hi", headers={"a": "b"}, background=BackgroundTask(events.append, "bg"))
    sent = await call(response, http_scope(method=method))
    # the body goes out on HEAD too: stripping it is the server's job, as in Starlette
    assert sent == [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"a", b"b"), (b"content-length", b"2")],
        },
        {"type": "http.response.body", "body": b"hi"},
    ]
    assert events == ["bg"]


@pytest.mark.anyio
async def test_call_on_a_websocket_scope_denies_the_handshake() -> None:
    sent = await call(Response("no", status_code=403), {"type": "websocket", "path": "/"})
    assert [message["type"] for message in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[0]["status"] == 403


def test_response_as_an_app(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(Response("hello", media_type="text/plain"))
    response = client.get("/")
    assert response.status_code == 200
    assert response.text == "hello"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-length"] == "5"


def test_head_response_has_no_body(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(Response("hello"))
    response = client.head("/")
    assert response.headers["content-length"] == "5"
    assert response.content == b""


def test_background_runs_after_the_response(test_client_factory: TestClientFactory) -> None:
    events: list[str] = []

    async def task(name: str) -> None:
        events.append(name)

    client = test_client_factory(Response("x", background=BackgroundTask(task, "done")))
    assert client.get("/").text == "x"
    assert events == ["done"]


# --- Cookies ----------------------------------------------------------------------------------


def test_set_cookie(test_client_factory: TestClientFactory) -> None:
    response = Response("ok", headers={"x": "1"})
    response.set_cookie(
        "session",
        "abc",
        max_age=10,
        expires=dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        path="/p",
        domain="testserver.local",
        secure=True,
        httponly=True,
        samesite="none",
    )
    response.set_cookie("other", "b c")
    assert decoded(response.raw_headers) == [
        ("x", "1"),
        ("content-length", "2"),
        (
            "set-cookie",
            "session=abc; Domain=testserver.local; expires=Wed, 02 Jan 2030 03:04:05 GMT; "
            "HttpOnly; Max-Age=10; Path=/p; SameSite=none; Secure",
        ),
        ("set-cookie", 'other="b c"; Path=/; SameSite=lax'),
    ]
    client = test_client_factory(response)
    assert client.get("/").headers.get_list("set-cookie") == [
        value for name, value in decoded(response.raw_headers) if name == "set-cookie"
    ]


def test_cookie_reaches_the_client(test_client_factory: TestClientFactory) -> None:
    response = Response("ok")
    response.set_cookie("mycookie", "myvalue", path="/")
    client = test_client_factory(response)
    assert client.get("/").cookies["mycookie"] == "myvalue"


def test_set_cookie_errors() -> None:
    response = Response()
    with pytest.raises(CookieError, match="Illegal key"):
        response.set_cookie("a b", "v")
    with pytest.raises(AssertionError, match="samesite must be either"):
        response.set_cookie("a", "v", samesite="bad")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Invalid cookie attribute"):
        response.set_cookie("a", "v", path="/; Domain=evil.example")
    with pytest.raises(UnicodeEncodeError):
        response.set_cookie("a", "\u20ac")
    assert response.raw_headers == [(b"content-length", b"0")]


def test_partitioned_cookie() -> None:
    response = Response()
    response.set_cookie("a", "b", secure=True, partitioned=True)
    assert response.headers["set-cookie"] == "a=b; Partitioned; Path=/; SameSite=lax; Secure"


def test_delete_cookie() -> None:
    response = Response()
    response.delete_cookie("a")
    cookie = response.headers["set-cookie"]
    assert re.fullmatch(f'a=""; expires={HTTP_DATE}; Max-Age=0; Path=/; SameSite=lax', cookie)
    response = Response()
    response.delete_cookie(
        "a",
        path="/x",
        domain="d.example",
        secure=True,
        httponly=True,
        samesite="strict",
        partitioned=True,
    )
    assert re.fullmatch(
        f'a=""; Domain=d.example; expires={HTTP_DATE}; HttpOnly; Max-Age=0; Partitioned; '
        "Path=/x; SameSite=strict; Secure",
        response.headers["set-cookie"],
    )


def test_delete_cookie_reaches_the_client(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = Response("x")
        if scope["path"] == "/set":
            response.set_cookie("mycookie", "myvalue")
        else:
            response.delete_cookie("mycookie")
        await response(scope, receive, send)

    client = test_client_factory(app)
    assert client.get("/set").cookies["mycookie"] == "myvalue"
    assert not client.get("/delete").cookies.get("mycookie")


# --- HTML, plain text, JSON -----------------------------------------------------------------


def test_html_and_plain_text(test_client_factory: TestClientFactory) -> None:
    html = test_client_factory(HTMLResponse("<p>\u00e9</p>")).get("/")
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert html.text == "<p>\u00e9</p>"
    plain = test_client_factory(PlainTextResponse(b"x")).get("/")
    assert plain.headers["content-type"] == "text/plain; charset=utf-8"
    assert plain.content == b"x"


def test_json(test_client_factory: TestClientFactory) -> None:
    content = {"a": [1, 2.5, None, True, "\u00e9\u2028"], "b": {}}
    response = JSONResponse(content)
    assert response.body == '{"a":[1,2.5,null,true,"\u00e9\u2028"],"b":{}}'.encode()
    assert response.raw_headers == [
        (b"content-length", b"38"),
        (b"content-type", b"application/json"),
    ]
    client = test_client_factory(response)
    assert client.get("/").json() == content


def test_json_options() -> None:
    assert JSONResponse(None).body == b"null"
    assert JSONResponse({1: 2}).body == b'{"1":2}'
    response = JSONResponse({"a": 1}, 201, {"x": "y"}, "application/vnd+json")
    assert response.status_code == 201
    assert response.raw_headers == [
        (b"x", b"y"),
        (b"content-length", b"7"),
        (b"content-type", b"application/vnd+json"),
    ]
    assert JSONResponse.render(JSONResponse({}), [1]) == b"[1]"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_json_refuses_nan(value: float) -> None:
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        JSONResponse({"x": value})


def test_json_errors() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        JSONResponse(object())
    with pytest.raises(UnicodeEncodeError):
        JSONResponse("\ud800")


def _cycle() -> Any:
    looped: dict[str, Any] = {"a": [1]}
    looped["a"].append(looped)
    return looped


def _deep() -> Any:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    return deep


@pytest.mark.parametrize("make", [_cycle, _deep], ids=["cycle", "deep"])
def test_json_fails_as_json_dumps_does(make: Any) -> None:
    # A cycle is json's ValueError, a nesting too deep its RecursionError: as json.dumps.
    content = make()
    with pytest.raises((ValueError, RecursionError)) as expected:
        json.dumps(content)
    with pytest.raises(expected.type, match=re.escape(str(expected.value))):
        JSONResponse(content)


class _SlowPath(Response):
    """Response with render and init_headers its own (calling Response's): no fast path."""

    def render(self, content: Any) -> bytes | memoryview:
        return super().render(content)

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        super().init_headers(headers)


class _SlowJSON(JSONResponse):
    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        super().init_headers(headers)


@settings(max_examples=300)
@given(
    content=st.one_of(st.text(), st.binary(), st.none()),
    status_code=st.sampled_from([200, 201, 204, 304, 100]),
    media_type=st.sampled_from([None, "text/plain", "text/html", "application/x"]),
    charset=st.sampled_from(["utf-8", "utf-16"]),
    class_media_type=st.sampled_from([None, "text/x"]),
)
def test_the_fast_path_builds_what_render_and_init_headers_build(
    content: Any, status_code: int, media_type: str | None, charset: str, class_media_type: Any
) -> None:
    pairs: list[tuple[type[Response], type[Response]]] = [(Response, _SlowPath)]
    if not isinstance(content, bytes):
        pairs.append((JSONResponse, _SlowJSON))
    for fast_class, slow_class in pairs:
        attributes = {"charset": charset, "media_type": class_media_type}
        fast_class = type("Fast", (fast_class,), attributes)
        slow_class = type("Slow", (slow_class,), attributes)
        fast = fast_class(content, status_code, media_type=media_type)
        slow = slow_class(content, status_code, media_type=media_type)
        assert (fast.body, fast.raw_headers) == (slow.body, slow.raw_headers)


# --- Redirects ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("/a b", "/a%20b"),
        ("/\u00e9", "/%C3%A9"),
        ("/%20x", "/%20x"),
        ("/a?b=c d&e=\u00e9#f g", "/a?b=c%20d&e=%C3%A9#f%20g"),
        ("http://ex.com/a b?x=1", "http://ex.com/a%20b?x=1"),
        ("/a%zz", "/a%zz"),
        ("/a\r\nb", "/a%0D%0Ab"),
        ("/~!$&'()*+,;=:@[]", "/~!$&'()*+,;=:@[]"),
        ('/"<>\\^`{|}', "/%22%3C%3E%5C%5E%60%7B%7C%7D"),
        ("/a\tb\x00", "/a%09b%00"),
        ("", ""),
        (URL("/x y"), "/x%20y"),
    ],
)
def test_redirect_location(url: str | URL, location: str) -> None:
    response = RedirectResponse(url)
    assert response.status_code == 307
    assert response.body == b""
    assert decoded(response.raw_headers) == [("content-length", "0"), ("location", location)]


def test_redirect_replaces_a_given_location() -> None:
    response = RedirectResponse("/x", 301, {"a": "b", "location": "zz"})
    assert response.raw_headers == [(b"a", b"b"), (b"location", b"/x"), (b"content-length", b"0")]
    response = RedirectResponse("/x", headers={"LOCATION": "a"})
    assert response.raw_headers == [(b"location", b"/x"), (b"content-length", b"0")]


def test_redirect_replaces_every_location() -> None:
    response = RedirectResponse(
        "/x", headers=Headers(raw=[(b"location", b"a"), (b"location", b"b")])
    )
    assert response.raw_headers == [(b"location", b"/x"), (b"content-length", b"0")]


def test_redirect_is_followed(test_client_factory: TestClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/":
            response: Response = PlainTextResponse("hello, world")
        else:
            response = RedirectResponse("/")
        await response(scope, receive, send)

    client = test_client_factory(app)
    response = client.get("/redirect")
    assert response.text == "hello, world"
    assert response.url == "http://testserver/"


# --- Streaming -----------------------------------------------------------------------------


def test_streaming_headers_and_attributes() -> None:
    response = StreamingResponse(iter([]), media_type="text/x")
    assert set(vars(response)) == {
        "body_iterator",
        "status_code",
        "media_type",
        "background",
        "raw_headers",
    }
    assert response.raw_headers == [(b"content-type", b"text/x; charset=utf-8")]
    assert StreamingResponse(iter([])).raw_headers == []
    assert StreamingResponse(iter([])).media_type is None
    given = StreamingResponse(iter([]), headers={"content-length": "3"})
    assert given.raw_headers == [(b"content-length", b"3")]


def sync_chunks() -> Iterator[str | bytes | memoryview]:
    yield "\u00e9"
    yield b"b"
    yield memoryview(b"c")


async def async_chunks() -> AsyncIterator[str]:
    for number in range(3):
        yield str(number)
        await anyio.sleep(0)


def test_streaming_sync_iterator(test_client_factory: TestClientFactory) -> None:
    events: list[str] = []
    response = StreamingResponse(
        sync_chunks(), media_type="text/plain", background=BackgroundTask(events.append, "bg")
    )
    client = test_client_factory(response)
    result = client.get("/")
    assert result.content == "\u00e9bc".encode()
    assert result.headers["content-type"] == "text/plain; charset=utf-8"
    assert events == ["bg"]


def test_streaming_async_iterator(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(StreamingResponse(async_chunks()))
    assert client.get("/").text == "012"


def test_streaming_list_and_custom_charset(test_client_factory: TestClientFactory) -> None:
    class Latin1Stream(StreamingResponse):
        charset = "latin-1"

    client = test_client_factory(Latin1Stream(["\u00e9", "x"]))
    assert client.get("/").content == b"\xe9x"


@pytest.mark.anyio
async def test_streaming_messages() -> None:
    sent = await call(StreamingResponse(sync_chunks()), http_scope())
    assert [(m["type"], bytes(m.get("body", b"")), m.get("more_body")) for m in sent] == [
        ("http.response.start", b"", None),
        ("http.response.body", "\u00e9".encode(), True),
        ("http.response.body", b"b", True),
        ("http.response.body", b"c", True),
        ("http.response.body", b"", False),
    ]


@pytest.mark.anyio
async def test_streaming_on_a_websocket_scope() -> None:
    sent = await call(StreamingResponse(["a"]), {"type": "websocket", "path": "/"})
    assert [message["type"] for message in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
        "websocket.http.response.body",
    ]


def slow_chunks(events: list[str]) -> AsyncIterator[str]:
    async def chunks() -> AsyncIterator[str]:
        number = 0
        while True:  # endless: only a disconnect stops it
            events.append(f"chunk {number}")
            yield str(number)
            number += 1
            await anyio.sleep(0.01)

    return chunks()


@pytest.mark.anyio
@pytest.mark.parametrize("asgi", [{}, {"spec_version": "2.0"}, {"spec_version": "2.3"}])
async def test_streaming_stops_when_the_client_disconnects(asgi: dict[str, str]) -> None:
    events: list[str] = []
    receive_calls = 0

    async def receive() -> Message:
        nonlocal receive_calls
        receive_calls += 1
        if receive_calls == 1:
            return {"type": "http.request", "body": b"", "more_body": False}
        await anyio.sleep(0.025)
        return {"type": "http.disconnect"}

    response = StreamingResponse(
        slow_chunks(events), background=BackgroundTask(events.append, "bg")
    )
    scope = http_scope(asgi=asgi) if asgi else http_scope()
    sent = await call(response, scope, receive)
    assert 1 < len(sent) < 10
    assert sent[-1]["more_body"] is True  # cut off, never finished
    assert events[-1] == "bg"  # the background still runs, as in Starlette


@pytest.mark.anyio
@pytest.mark.parametrize("version", ["abc", "", None, 2.4, ["2", "4"]])
async def test_unreadable_spec_version_listens_for_disconnect(version: Any) -> None:
    async def receive() -> Message:
        return {"type": "http.disconnect"}

    sent = await call(
        StreamingResponse(slow_chunks([])), http_scope(asgi={"spec_version": version}), receive
    )
    assert len(sent) < 5


@pytest.mark.anyio
@pytest.mark.parametrize("version", ["2.4", "2.10", "3.0"])
async def test_spec_2_4_relies_on_send_errors(version: str) -> None:
    events: list[str] = []
    response = StreamingResponse(["a", "b"], background=BackgroundTask(events.append, "bg"))

    # no listener: a receive that would say "disconnected" is never called
    async def receive() -> Message:
        raise AssertionError("receive() must not be called")  # pragma: no cover (the point)

    scope = http_scope(asgi={"spec_version": version})
    sent = await call(response, scope, receive)
    assert [m.get("body") for m in sent[1:]] == [b"a", b"b", b""]
    assert events == ["bg"]

    failing = StreamingResponse(["a", "b"], background=BackgroundTask(events.append, "bg2"))
    with pytest.raises(ClientDisconnect) as info:
        await call(failing, scope, receive, send_error=OSError("gone"))
    assert isinstance(info.value.__cause__, OSError)
    assert events == ["bg"]  # no background after a disconnect


@pytest.mark.anyio
async def test_spec_2_4_an_iterator_oserror_is_not_a_disconnect() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"a"
        raise OSError("disk on fire")

    scope = http_scope(asgi={"spec_version": "2.4"})
    with pytest.raises(OSError, match="disk on fire") as info:
        await call(StreamingResponse(chunks()), scope)
    assert not isinstance(info.value, ClientDisconnect)


@pytest.mark.anyio
@pytest.mark.parametrize("version", ["2.0", "2.4"])
async def test_streaming_errors_are_not_wrapped_in_groups(version: str) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"a"
        raise KeyError("boom")

    scope = http_scope(asgi={"spec_version": version})
    with pytest.raises(KeyError, match="boom") as info:
        await call(StreamingResponse(chunks()), scope)
    assert not isinstance(info.value.__context__, BaseExceptionGroup)


@pytest.mark.anyio
async def test_spec_2_0_send_oserror_propagates() -> None:
    with pytest.raises(OSError, match="x"):
        await call(StreamingResponse(["a"]), http_scope(), send_error=OSError("x"))


@pytest.mark.anyio
async def test_listen_for_disconnect_ignores_other_messages() -> None:
    messages: list[Message] = [
        {"type": "http.request", "body": b"x", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": False},
        {"type": "http.disconnect"},
    ]

    async def receive() -> Message:
        return messages.pop(0)

    await StreamingResponse([]).listen_for_disconnect(receive)
    assert messages == []


# --- Files ---------------------------------------------------------------------------------


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "example.txt"
    path.write_bytes(b"hello world 0123456789")
    return path


def expected_etag(path: Path) -> str:
    import hashlib

    result = os.stat(path)
    base = f"{result.st_mtime}-{result.st_size}".encode()
    return '"' + hashlib.md5(base, usedforsecurity=False).hexdigest() + '"'


def test_file_response(test_client_factory: TestClientFactory, text_file: Path) -> None:
    events: list[str] = []
    client = test_client_factory(
        FileResponse(text_file, background=BackgroundTask(events.append, "bg"))
    )
    response = client.get("/")
    assert response.status_code == 200
    assert response.content == b"hello world 0123456789"
    assert list(response.headers.items()) == [
        ("content-type", "text/plain; charset=utf-8"),
        ("accept-ranges", "bytes"),
        ("content-length", "22"),
        ("last-modified", response.headers["last-modified"]),
        ("etag", expected_etag(text_file)),
    ]
    assert re.fullmatch(HTTP_DATE, response.headers["last-modified"])
    assert events == ["bg"]


def test_file_response_head(test_client_factory: TestClientFactory, text_file: Path) -> None:
    client = test_client_factory(FileResponse(text_file))
    response = client.head("/")
    assert response.content == b""
    assert response.headers["content-length"] == "22"


def test_file_response_attributes(text_file: Path) -> None:
    response = FileResponse(text_file, media_type="x/y")
    assert vars(response) == {
        "path": text_file,
        "status_code": 200,
        "filename": None,
        "media_type": "x/y",
        "background": None,
        "raw_headers": [(b"content-type", b"x/y"), (b"accept-ranges", b"bytes")],
        "stat_result": None,
    }
    assert FileResponse.chunk_size == 64 * 1024
    assert FileResponse.max_ranges == 100


@pytest.mark.parametrize(
    ("path", "filename", "content_type"),
    [
        ("/x.png", None, "image/png"),
        ("/x", None, "application/octet-stream"),
        ("/x", "f.html", "text/html; charset=utf-8"),
        ("/x.tar.gz", None, "application/x-tar"),
        ("/x.txt", "f.unknownext", "application/octet-stream"),
    ],
)
def test_file_media_type_guess(path: str, filename: str | None, content_type: str) -> None:
    response = FileResponse(path, filename=filename)
    assert response.headers["content-type"] == content_type


@pytest.mark.parametrize(
    ("filename", "disposition"),
    [
        ("a.txt", 'attachment; filename="a.txt"'),
        ("dir/a.txt", 'attachment; filename="dir/a.txt"'),
        ("\u00e9 b.txt", "attachment; filename*=utf-8''%C3%A9%20b.txt"),
        ('a"b;c.txt', "attachment; filename*=utf-8''a%22b%3Bc.txt"),
        ("a b%.txt", "attachment; filename*=utf-8''a%20b%25.txt"),
        ("x\r\ny.txt", "attachment; filename*=utf-8''x%0D%0Ay.txt"),
    ],
)
def test_content_disposition(filename: str, disposition: str) -> None:
    response = FileResponse("/x.txt", filename=filename)
    assert decoded(response.raw_headers) == [
        ("content-type", "text/plain; charset=utf-8"),
        ("accept-ranges", "bytes"),
        ("content-disposition", disposition),
    ]


def test_content_disposition_inline_and_given_headers(
    test_client_factory: TestClientFactory, text_file: Path
) -> None:
    response = FileResponse(
        text_file,
        headers={"x": "y", "accept-ranges": "none", "content-disposition": "kept"},
        media_type="text/x",
        filename="\u00e9.txt",
        content_disposition_type="inline",
    )
    assert decoded(response.raw_headers) == [
        ("x", "y"),
        ("accept-ranges", "none"),
        ("content-disposition", "kept"),
        ("content-type", "text/x; charset=utf-8"),
    ]
    inline = FileResponse(text_file, filename="a.txt", content_disposition_type="inline")
    client = test_client_factory(inline)
    assert client.get("/").headers["content-disposition"] == 'inline; filename="a.txt"'
    with pytest.raises(ValueError, match="Invalid HTTP header value"):
        FileResponse(text_file, filename="a.txt", content_disposition_type="inline\r\nX: y")


def test_file_with_stat_result(test_client_factory: TestClientFactory, text_file: Path) -> None:
    stat_result = os.stat(text_file)
    response = FileResponse(text_file, stat_result=stat_result, headers={"etag": "given"})
    assert decoded(response.raw_headers)[:5] == [
        ("etag", "given"),
        ("content-type", "text/plain; charset=utf-8"),
        ("accept-ranges", "bytes"),
        ("content-length", "22"),
        ("last-modified", response.headers["last-modified"]),
    ]
    client = test_client_factory(response)
    assert client.get("/").content == b"hello world 0123456789"
    assert client.get("/", headers={"range": "bytes=0-1", "if-range": "given"}).content == b"he"


def test_set_stat_headers_keeps_given_values(text_file: Path) -> None:
    response = FileResponse(text_file, headers={"content-length": "3"})
    response.set_stat_headers(os.stat(text_file))
    assert [name for name, _ in decoded(response.raw_headers)] == [
        "content-length",
        "content-type",
        "accept-ranges",
        "last-modified",
        "etag",
    ]
    assert response.headers["content-length"] == "3"


def test_file_response_is_reusable(test_client_factory: TestClientFactory, text_file: Path) -> None:
    """Starlette stores a call's stat and range headers on the instance; starling does not."""
    response = FileResponse(text_file)
    before = list(response.raw_headers)
    client = test_client_factory(response)
    first = client.get("/", headers={"range": "bytes=0-1,5-6"})
    assert first.status_code == 206
    text_file.write_bytes(b"changed")
    second = client.get("/")
    assert second.content == b"changed"
    assert second.headers["content-length"] == "7"
    assert second.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.raw_headers == before


def test_missing_file(test_client_factory: TestClientFactory, tmp_path: Path) -> None:
    events: list[str] = []
    path = tmp_path / "nope.txt"
    client = test_client_factory(FileResponse(path, background=BackgroundTask(events.append, "x")))
    with pytest.raises(
        RuntimeError, match=f"^File at path {re.escape(str(path))} does not exist.$"
    ):
        client.get("/")
    assert events == []


def test_directory(test_client_factory: TestClientFactory, tmp_path: Path) -> None:
    client = test_client_factory(FileResponse(tmp_path))
    with pytest.raises(
        RuntimeError, match=f"^File at path {re.escape(str(tmp_path))} is not a file.$"
    ):
        client.get("/")


@pytest.mark.anyio
async def test_file_vanished_after_stat(text_file: Path) -> None:
    """With a stat_result the file is opened before the start message, so nothing half-sent."""
    stat_result = os.stat(text_file)
    text_file.unlink()
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)  # pragma: no cover (nothing must be sent)

    response = FileResponse(text_file, stat_result=stat_result)
    with pytest.raises(FileNotFoundError):
        await response(http_scope(), never_receive, send)
    assert sent == []


@pytest.mark.anyio
async def test_file_without_method_in_scope(text_file: Path) -> None:
    with pytest.raises(KeyError, match="method"):
        await call(FileResponse(text_file), {"type": "http", "headers": []})


@pytest.mark.anyio
async def test_file_chunks(tmp_path: Path) -> None:
    path = tmp_path / "two"
    path.write_bytes(b"x" * (2 * FileResponse.chunk_size))
    sent = await call(FileResponse(path), http_scope())
    assert [(len(m["body"]), m["more_body"]) for m in sent[1:]] == [
        (FileResponse.chunk_size, True),
        (FileResponse.chunk_size, True),
        (0, False),
    ]
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    sent = await call(FileResponse(empty), http_scope())
    assert sent[1:] == [{"type": "http.response.body", "body": b"", "more_body": False}]


@pytest.mark.anyio
async def test_file_head_messages(text_file: Path) -> None:
    sent = await call(FileResponse(text_file), http_scope(method="head"))
    assert sent[1:] == [{"type": "http.response.body", "body": b"", "more_body": False}]


@pytest.mark.anyio
async def test_pathsend(text_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(text_file.parent)
    events: list[str] = []
    response = FileResponse("example.txt", background=BackgroundTask(events.append, "bg"))
    scope = http_scope(extensions={"http.response.pathsend": {}})
    sent = await call(response, scope)
    # the extension wants an absolute path (Starlette sends the path as given)
    assert sent[1] == {"type": "http.response.pathsend", "path": str(text_file)}
    assert len(sent) == 2
    assert events == ["bg"]
    head = await call(
        response, http_scope(method="HEAD", extensions={"http.response.pathsend": {}})
    )
    assert head[1] == {"type": "http.response.body", "body": b"", "more_body": False}
    absolute = await call(FileResponse(text_file), scope)
    assert absolute[1] == {"type": "http.response.pathsend", "path": str(text_file)}


@pytest.mark.anyio
async def test_pathsend_is_not_used_for_ranges(text_file: Path) -> None:
    scope = http_scope(("range", "bytes=0-1"), extensions={"http.response.pathsend": {}})
    sent = await call(FileResponse(text_file), scope)
    assert sent[0]["status"] == 206
    assert sent[1] == {"type": "http.response.body", "body": b"he", "more_body": False}


@pytest.mark.anyio
async def test_file_on_a_websocket_scope(text_file: Path) -> None:
    scope = {"type": "websocket", "path": "/", "headers": [(b"range", b"bytes=0-1")]}
    sent = await call(FileResponse(text_file), scope)
    assert [m["type"] for m in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[0]["status"] == 206
    scope = {"type": "websocket", "path": "/", "headers": [(b"range", b"bytes=500-")]}
    sent = await call(FileResponse(text_file), scope)
    assert [m["type"] for m in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[0]["status"] == 416


@pytest.mark.anyio
@pytest.mark.parametrize("asgi", [{}, {"spec_version": "2.0"}])
async def test_file_stops_when_the_client_disconnects(tmp_path: Path, asgi: dict[str, str]) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * (FileResponse.chunk_size * 50))
    events: list[str] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        await anyio.sleep(0.001)

    sent: list[Message] = []
    response = FileResponse(path, background=BackgroundTask(events.append, "bg"))
    await response(http_scope(asgi=asgi), receive, send)
    assert len(sent) < 50
    assert events == ["bg"]


@pytest.mark.anyio
async def test_file_spec_2_4_sends_everything(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * (FileResponse.chunk_size * 3))

    async def receive() -> Message:
        raise AssertionError("receive() must not be called")  # pragma: no cover (the point)

    sent = await call(FileResponse(path), http_scope(asgi={"spec_version": "2.4"}), receive)
    assert len(sent) == 5
    with pytest.raises(OSError, match="x"):
        await call(
            FileResponse(path), http_scope(asgi={"spec_version": "2.4"}), send_error=OSError("x")
        )


# --- Ranges --------------------------------------------------------------------------------


def test_single_range(test_client_factory: TestClientFactory, text_file: Path) -> None:
    client = test_client_factory(FileResponse(text_file, headers={"content-length": "7"}))
    response = client.get("/", headers={"range": "bytes=0-1"})
    assert response.status_code == 206
    assert response.content == b"he"
    assert [name for name in response.headers] == [
        "content-length",
        "content-type",
        "accept-ranges",
        "last-modified",
        "etag",
        "content-range",
    ]
    assert response.headers["content-length"] == "2"
    assert response.headers["content-range"] == "bytes 0-1/22"


@pytest.mark.parametrize(
    ("header", "content", "content_range"),
    [
        ("bytes=10-", b"d 0123456789", "bytes 10-21/22"),
        ("bytes=-3", b"789", "bytes 19-21/22"),
        ("bytes=0-5,3-8", b"hello wor", "bytes 0-8/22"),  # merged into one
        ("bytes=21-1000", b"9", "bytes 21-21/22"),
    ],
)
def test_single_range_forms(
    test_client_factory: TestClientFactory,
    text_file: Path,
    header: str,
    content: bytes,
    content_range: str,
) -> None:
    client = test_client_factory(FileResponse(text_file))
    response = client.get("/", headers={"range": header})
    assert response.status_code == 206
    assert response.content == content
    assert response.headers["content-range"] == content_range
    assert response.headers["content-length"] == str(len(content))


def test_multiple_ranges(test_client_factory: TestClientFactory, text_file: Path) -> None:
    client = test_client_factory(FileResponse(text_file, headers={"x": "y"}))
    response = client.get("/", headers={"range": "bytes=0-1,5-6"})
    assert response.status_code == 206
    content_type = response.headers["content-type"]
    match = re.fullmatch("multipart/byteranges; boundary=([0-9a-f]{26})", content_type)
    assert match is not None
    boundary = match.group(1)
    assert (
        response.content
        == (
            f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Range: bytes 0-1/22\r\n\r\nhe\r\n"
            f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Range: bytes 5-6/22\r\n\r\n w\r\n"
            f"--{boundary}--"
        ).encode()
    )
    assert response.headers["content-length"] == "242" == str(len(response.content))
    assert [name for name in response.headers] == [
        "x",
        "content-type",
        "accept-ranges",
        "content-length",
        "last-modified",
        "etag",
    ]


def test_multiple_ranges_use_the_given_content_type(
    test_client_factory: TestClientFactory, text_file: Path
) -> None:
    response = FileResponse(text_file, headers={"content-type": "foo", "content-length": "3"})
    client = test_client_factory(response)
    result = client.get("/", headers={"range": "bytes=0-1,3-4,10-"})
    assert result.content.count(b"Content-Type: foo\r\n") == 3
    assert result.content.endswith(
        b"\r\nd 0123456789\r\n--" + result.headers["content-type"][-26:].encode() + b"--"
    )
    assert result.headers["content-length"] == str(len(result.content))
    assert [name for name in result.headers][:2] == ["content-type", "content-length"]


@pytest.mark.anyio
async def test_range_chunks(tmp_path: Path) -> None:
    path = tmp_path / "two"
    path.write_bytes(bytes(range(256)) * 512)
    size = 256 * 512
    sent = await call(FileResponse(path), http_scope(("range", "bytes=0-70000")))
    assert [(len(m["body"]), m["more_body"]) for m in sent[1:]] == [(65536, True), (4465, False)]
    sent = await call(FileResponse(path), http_scope(("range", "bytes=0-70000,70002-")))
    lengths = [len(m["body"]) for m in sent[1:]]
    assert lengths[1:4] == [65536, 4465, 2]
    assert lengths[5:7] == [size - 70002, 2]
    assert [m["more_body"] for m in sent[1:]] == [True] * (len(sent) - 2) + [False]
    body = b"".join(m["body"] for m in sent[1:])
    assert bytes(range(256)) * 2 in body


@pytest.mark.anyio
async def test_range_head(text_file: Path) -> None:
    for header in ["bytes=0-1", "bytes=0-1,5-6"]:
        sent = await call(FileResponse(text_file), http_scope(("range", header), method="HEAD"))
        assert sent[0]["status"] == 206
        assert sent[1:] == [{"type": "http.response.body", "body": b"", "more_body": False}]


@pytest.mark.anyio
async def test_range_of_a_file_that_shrank(tmp_path: Path) -> None:
    path = tmp_path / "shrinks"
    path.write_bytes(b"0123456789")
    stat_result = os.stat(path)
    path.write_bytes(b"0123")
    sent = await call(
        FileResponse(path, stat_result=stat_result), http_scope(("range", "bytes=2-8"))
    )
    assert [(m["body"], m["more_body"]) for m in sent[1:]] == [(b"23", True), (b"", False)]
    # mid multipart the promised Content-Length cannot be kept: an error, as in Starlette
    with pytest.raises(RuntimeError, match=r"^File at path .*shrinks is shorter than expected\.$"):
        await call(
            FileResponse(path, stat_result=stat_result), http_scope(("range", "bytes=0-0,2-8"))
        )


def test_weak_if_range_never_matches(
    test_client_factory: TestClientFactory, tmp_path: Path
) -> None:
    path = tmp_path / "weak.txt"
    path.write_bytes(b"file content")
    weak = 'W/"a_weak_etag"'
    client = test_client_factory(FileResponse(path, headers={"etag": weak}))
    response = client.get("/", headers={"range": "bytes=0-4", "if-range": weak})
    assert (response.status_code, response.content) == (200, b"file content")
    strong = client.get("/", headers={"range": "bytes=0-4"}).headers["etag"]
    assert strong == weak  # the response's own (weak) tag
    plain = test_client_factory(FileResponse(path))
    etag = plain.get("/").headers["etag"]
    assert plain.get("/", headers={"range": "bytes=0-4", "if-range": etag}).status_code == 206
    response = plain.get("/", headers={"range": "bytes=0-4", "if-range": "W/" + etag})
    assert response.status_code == 200


@pytest.mark.anyio
async def test_head_and_denial_responses_do_not_listen_for_a_disconnect(text_file: Path) -> None:
    """Nothing is streamed, so receive() is never called (it may not speak HTTP)."""
    sent: list[Message] = []

    async def receive() -> Message:
        raise AssertionError("receive() must not be called")  # pragma: no cover

    async def send(message: Message) -> None:
        sent.append(message)

    await FileResponse(text_file)({"type": "http", "method": "HEAD", "headers": []}, receive, send)
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    sent.clear()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"denied"

    await StreamingResponse(chunks(), status_code=403)({"type": "websocket"}, receive, send)
    assert [message["type"] for message in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
        "websocket.http.response.body",
    ]


def test_non_contiguous_memoryview(test_client_factory: TestClientFactory) -> None:
    strided = memoryview(b"abcdef")[::2]
    response = Response(strided)
    assert response.body == b"ace"
    contiguous = memoryview(b"abc")
    assert Response(contiguous).body is contiguous
    client = test_client_factory(response)
    result = client.get("/")
    assert (result.content, result.headers["content-length"]) == (b"ace", "3")


def test_range_not_satisfiable(test_client_factory: TestClientFactory, text_file: Path) -> None:
    events: list[str] = []
    client = test_client_factory(
        FileResponse(text_file, background=BackgroundTask(events.append, "x"))
    )
    response = client.get("/", headers={"range": "bytes=500-"})
    assert response.status_code == 416
    assert list(response.headers.items()) == [
        ("content-range", "bytes */22"),
        ("content-length", "0"),
        ("content-type", "text/plain; charset=utf-8"),
    ]
    assert response.content == b""
    assert events == []


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("bytes=5-2", "Range header: start must be less than end"),
        ("items=1-2", "Only support bytes range"),
        ("", "Malformed range header."),
        ("bytes=x", "Range header: range must be requested"),
    ],
)
def test_malformed_range(
    test_client_factory: TestClientFactory, text_file: Path, header: str, message: str
) -> None:
    client = test_client_factory(FileResponse(text_file))
    response = client.get("/", headers={"range": header})
    assert response.status_code == 400
    assert response.text == message
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.anyio
async def test_malformed_range_on_head_still_has_its_body(text_file: Path) -> None:
    sent = await call(FileResponse(text_file), http_scope(("range", "bytes=5-1"), method="HEAD"))
    assert sent[0]["status"] == 400
    assert sent[1]["body"] == b"Range header: start must be less than end"


def test_too_many_ranges_send_the_whole_file(
    test_client_factory: TestClientFactory, text_file: Path
) -> None:
    client = test_client_factory(FileResponse(text_file))
    header = "bytes=" + ",".join(f"{i}-{i}" for i in range(101))
    response = client.get("/", headers={"range": header})
    assert response.status_code == 200
    assert response.content == b"hello world 0123456789"


def test_max_ranges_of_a_subclass(test_client_factory: TestClientFactory, text_file: Path) -> None:
    class FewRanges(FileResponse):
        max_ranges = 1

    client = test_client_factory(FewRanges(text_file))
    assert client.get("/", headers={"range": "bytes=0-1"}).status_code == 206
    assert client.get("/", headers={"range": "bytes=0-1,4-5"}).status_code == 200


@pytest.mark.parametrize(("method", "status_code"), [("POST", 200), ("PUT", 200), ("OPTIONS", 200)])
def test_ranges_only_for_get_and_head(
    test_client_factory: TestClientFactory, text_file: Path, method: str, status_code: int
) -> None:
    client = test_client_factory(FileResponse(text_file))
    response = client.request(method, "/", headers={"range": "bytes=0-1"})
    assert response.status_code == status_code
    assert response.content == b"hello world 0123456789"


@pytest.mark.parametrize("status_code", [201, 206, 299, 404])
def test_ranges_only_for_200(
    test_client_factory: TestClientFactory, text_file: Path, status_code: int
) -> None:
    client = test_client_factory(FileResponse(text_file, status_code=status_code))
    response = client.get("/", headers={"range": "bytes=0-1"})
    assert response.status_code == status_code
    assert response.content == b"hello world 0123456789"


def test_first_range_header_wins(test_client_factory: TestClientFactory, text_file: Path) -> None:
    etag = expected_etag(text_file).encode()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        later = [(b"range", b"bytes=2-3"), (b"if-range", etag)]
        scope["headers"] = [*scope["headers"], *later]
        await FileResponse(text_file)(scope, receive, send)

    client = test_client_factory(app)
    assert client.get("/", headers={"range": "bytes=0-1"}).content == b"he"
    response = client.get("/", headers={"range": "bytes=0-1", "if-range": '"x"'})
    assert response.status_code == 200


def test_if_range(test_client_factory: TestClientFactory, text_file: Path) -> None:
    client = test_client_factory(FileResponse(text_file))
    plain = client.get("/")
    etag = plain.headers["etag"]
    last_modified = plain.headers["last-modified"]
    mtime = os.stat(text_file).st_mtime
    from email.utils import formatdate

    for if_range, status_code in [
        (etag, 206),
        (last_modified, 206),
        (etag.strip('"'), 200),
        ("W/" + etag, 200),
        ('"other"', 200),
        (formatdate(mtime + 100, usegmt=True), 200),
        (formatdate(mtime - 100, usegmt=True), 200),
        ("garbage", 200),
        (f"{etag}, {etag}", 200),
    ]:
        response = client.get("/", headers={"range": "bytes=0-1", "if-range": if_range})
        assert response.status_code == status_code, if_range
    # If-Range without Range does nothing
    assert client.get("/", headers={"if-range": etag}).status_code == 200


def test_public_exceptions() -> None:
    assert MalformedRangeHeader().content == "Malformed range header."
    assert RangeNotSatisfiable(3).max_size == 3


def test_generate_multipart(text_file: Path) -> None:
    response = FileResponse(text_file)
    length, part_header = response.generate_multipart([(0, 2), (5, 7)], "BOUND", 22, "text/plain")
    assert length == 149
    assert part_header(0, 2) == (
        b"--BOUND\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/22\r\n\r\n"
    )


@pytest.mark.anyio
async def test_headers_removed_by_the_application(text_file: Path) -> None:
    """Without content-type the parts say so; without an ETag an If-Range can only be a date."""
    response = FileResponse(text_file, stat_result=os.stat(text_file))
    del response.headers["content-type"]
    del response.headers["etag"]
    sent = await call(response, http_scope(("range", "bytes=0-1,5-6")))
    assert b"\r\nContent-Type: \r\n" in sent[1]["body"]
    sent = await call(response, http_scope(("range", "bytes=0-1"), ("if-range", '"x"')))
    assert sent[0]["status"] == 200


def test_json_response_honours_a_replaced_json_dumps(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real_dumps = json.dumps

    def watching_dumps(obj: Any, **kwargs: Any) -> str:
        calls.append((obj, kwargs))
        return real_dumps(obj, **kwargs)

    monkeypatch.setattr(json, "dumps", watching_dumps)
    assert JSONResponse({"a": "é"}).body == '{"a":"é"}'.encode()
    assert calls == [
        (
            {"a": "é"},
            {"ensure_ascii": False, "allow_nan": False, "indent": None, "separators": (",", ":")},
        )
    ]
    monkeypatch.undo()
    assert JSONResponse({"a": 1}).body == b'{"a":1}'
    assert len(calls) == 1  # the real json.dumps is not called through the patch any more


def test_mime_types_are_loaded_at_import() -> None:
    """So the first FileResponse does not read the system's MIME files on the event loop."""
    import mimetypes

    assert mimetypes.inited
