from __future__ import annotations

import inspect
import re
import string
import threading
from typing import TYPE_CHECKING, Any

import pytest

from starling.middleware import errors
from starling.middleware.errors import ServerErrorMiddleware
from starling.requests import Request
from starling.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starling.types import Message, Receive, Scope, Send

if TYPE_CHECKING:
    from tests.types import TestClientFactory

XSS = "<script>alert('x')</script>"


def nested_failure() -> None:
    raise ValueError(XSS)


async def failing_app(scope: Scope, receive: Receive, send: Send) -> None:
    nested_failure()


async def fail_after_start(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise RuntimeError("midway")


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("ok")(scope, receive, send)


def test_passes_responses_through(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(ServerErrorMiddleware(ok_app))
    assert client.get("/").text == "ok"


@pytest.mark.parametrize("accept", [None, "text/html", "application/json"])
def test_production_error_is_plain(test_client_factory: TestClientFactory, accept: Any) -> None:
    client = test_client_factory(ServerErrorMiddleware(failing_app), raise_server_exceptions=False)
    response = client.get("/", headers={"accept": accept} if accept else {})
    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


def test_exception_is_reraised_after_responding(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(ServerErrorMiddleware(failing_app))
    with pytest.raises(ValueError, match="alert"):
        client.get("/")


@pytest.mark.parametrize("accept", [None, "application/json", "*/*"])
def test_debug_plain_text_traceback(test_client_factory: TestClientFactory, accept: Any) -> None:
    app = ServerErrorMiddleware(failing_app, debug=True)
    client = test_client_factory(app, raise_server_exceptions=False)
    response = client.get("/", headers={"accept": accept} if accept else {})
    assert response.status_code == 500
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text.startswith("Traceback (most recent call last):\n")
    assert "in nested_failure" in response.text
    assert response.text.endswith(f"ValueError: {XSS}\n")


@pytest.mark.parametrize(
    "accept", ["text/html", "text/html;q=0.1, */*", "application/xhtml+xml,text/html"]
)
def test_debug_html_traceback(test_client_factory: TestClientFactory, accept: str) -> None:
    app = ServerErrorMiddleware(failing_app, debug=True)
    client = test_client_factory(app, raise_server_exceptions=False)
    response = client.get("/", headers={"accept": accept})
    assert response.status_code == 500
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert "<script>alert" not in page
    assert "ValueError: &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    names = re.findall(r"in <code>([^<]*)</code>", page)
    assert names[:2] == ["nested_failure", "failing_app"]  # innermost first


def test_handler_replaces_the_500(test_client_factory: TestClientFactory) -> None:
    threads: list[threading.Thread] = []

    def handler(request: Request, exc: Exception) -> Response:
        threads.append(threading.current_thread())
        return JSONResponse({"error": str(exc), "path": request.url.path}, status_code=503)

    app = ServerErrorMiddleware(failing_app, handler=handler)
    client = test_client_factory(app, raise_server_exceptions=False)
    response = client.get("/here")
    assert response.status_code == 503
    assert response.json() == {"error": XSS, "path": "/here"}
    assert threads[0] is not threading.current_thread()  # sync handlers go to a thread


def test_async_handler(test_client_factory: TestClientFactory) -> None:
    async def handler(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("async handler", status_code=500)

    app = ServerErrorMiddleware(failing_app, handler=handler)
    client = test_client_factory(app, raise_server_exceptions=False)
    assert client.get("/").text == "async handler"


def test_debug_wins_over_handler(test_client_factory: TestClientFactory) -> None:
    def handler(request: Request, exc: Exception) -> Response:
        raise AssertionError("not called in debug mode")  # pragma: no cover (must not run)

    app = ServerErrorMiddleware(failing_app, handler=handler, debug=True)
    client = test_client_factory(app, raise_server_exceptions=False)
    assert client.get("/").text.startswith("Traceback")


def test_response_already_started(test_client_factory: TestClientFactory) -> None:
    calls: list[str] = []

    def handler(request: Request, exc: Exception) -> Response:
        calls.append(str(exc))  # a handler that logs still hears about it
        return PlainTextResponse("unsent", status_code=500)

    client = test_client_factory(ServerErrorMiddleware(fail_after_start, handler=handler))
    with pytest.raises(RuntimeError, match="midway"):
        client.get("/")
    assert calls == ["midway"]
    client = test_client_factory(
        ServerErrorMiddleware(fail_after_start, handler=handler), raise_server_exceptions=False
    )
    response = client.get("/")
    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.anyio
@pytest.mark.parametrize("scope_type", ["websocket", "lifespan"])
async def test_other_scopes_are_not_handled(scope_type: str) -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "probe"}

    async def echo_then_fail(scope: Scope, receive: Receive, send: Send) -> None:
        await send(await receive())
        raise ValueError("not mine to handle")

    with pytest.raises(ValueError):
        await ServerErrorMiddleware(echo_then_fail)({"type": scope_type}, receive, send)
    assert sent == [{"type": "probe"}]  # no 500 added


def test_error_response() -> None:
    middleware = ServerErrorMiddleware(ok_app)
    response = middleware.error_response(Request({"type": "http", "headers": []}), ValueError())
    assert isinstance(response, PlainTextResponse)
    assert (response.status_code, response.body) == (500, b"Internal Server Error")


def test_debug_response_picks_html_or_text() -> None:
    middleware = ServerErrorMiddleware(ok_app, debug=True)
    exc = _caught(nested_failure)
    html_request = Request({"type": "http", "headers": [(b"accept", b"text/html")]})
    text_request = Request({"type": "http", "headers": []})
    assert isinstance(middleware.debug_response(html_request, exc), HTMLResponse)
    response = middleware.debug_response(text_request, exc)
    assert isinstance(response, PlainTextResponse)
    assert response.status_code == 500


def _caught(func: Any) -> Exception:
    try:
        func()
    except Exception as exc:
        return exc
    raise AssertionError("did not raise")  # pragma: no cover (func always raises)


def test_generate_html_escapes_everything() -> None:
    code = compile("def evil():\n    raise KeyError('<img src=x>')\n", "<b>file</b>.py", "exec")
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    exc = _caught(namespace["evil"])
    page = ServerErrorMiddleware(ok_app).generate_html(exc)
    assert "<img" not in page
    assert "<b>file" not in page
    assert "&lt;b&gt;file&lt;/b&gt;.py" in page
    assert "KeyError: &#x27;&lt;img src=x&gt;&#x27;" in page


def test_generate_html_frames_and_collapsing() -> None:
    page = ServerErrorMiddleware(ok_app).generate_html(_caught(nested_failure), limit=3)
    frames = re.findall(r'<div class="source( is-collapsed)?"', page)
    assert frames == ["", " is-collapsed"]  # innermost open, callers collapsed
    assert page.count("source-line is-current") == 2
    assert "raise ValueError(XSS)" in page
    assert page.startswith("<!DOCTYPE html>")
    assert errors.JS in page and errors.STYLES in page


def test_generate_html_without_traceback() -> None:
    page = ServerErrorMiddleware(ok_app).generate_html(ValueError("never raised"))
    assert "ValueError: never raised" in page
    assert 'class="frame"' not in page


def test_generate_html_survives_a_broken_str() -> None:
    class BrokenError(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str")

    page = ServerErrorMiddleware(ok_app).generate_html(BrokenError())
    assert "BrokenError: &lt;exception str() failed&gt;" in page


def test_generate_plain_text_includes_the_chain() -> None:
    def chained() -> None:
        try:
            nested_failure()
        except ValueError as exc:
            raise KeyError("outer") from exc

    text = ServerErrorMiddleware(ok_app).generate_plain_text(_caught(chained))
    assert "The above exception was the direct cause" in text
    assert text.endswith("KeyError: 'outer'\n")


def test_format_line() -> None:
    middleware = ServerErrorMiddleware(ok_app)
    plain = middleware.format_line(0, "    x = '<b>'\n", 10, 2)
    assert plain == errors.LINE.format(lineno=8, line="    x = &#x27;&lt;b&gt;&#x27;")
    center = middleware.format_line(2, "    raise X\n", 10, 2)
    assert center == errors.CENTER_LINE.format(lineno=10, line="    raise X")


def test_generate_frame_html_without_source() -> None:
    frame = inspect.FrameInfo(None, "<string>", 3, "<module>", None, None)  # type: ignore[arg-type]
    html = ServerErrorMiddleware(ok_app).generate_frame_html(frame, is_collapsed=True)
    assert '<div class="source is-collapsed" id="&lt;string&gt;:3"></div>' in html
    assert "in <code>&lt;module&gt;</code>" in html


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_templates_have_starlettes_placeholders() -> None:
    assert _placeholders(errors.TEMPLATE) == {"styles", "js", "error", "exc_html"}
    assert _placeholders(errors.FRAME_TEMPLATE) == {
        "frame_filename",
        "frame_lineno",
        "frame_name",
        "collapse_button",
        "collapsed",
        "code_context",
    }
    assert _placeholders(errors.LINE) == {"lineno", "line"}
    assert _placeholders(errors.CENTER_LINE) == {"lineno", "line"}
    assert isinstance(errors.STYLES, str) and isinstance(errors.JS, str)
