"""ServerErrorMiddleware: the outermost layer, turning an unhandled exception into a 500."""

# It always re-raises after responding, so the server logs the error and the TestClient can
# surface it, except when the error is the client leaving (see _client_left). The debug page
# is starling's own markup (APPSEC: everything taken from the exception, its message, file
# names and source lines, is HTML-escaped before it is shown).

from __future__ import annotations

import html
import inspect
import logging
import traceback
from typing import Any

from starling._exception_handler import ResponseTracker
from starling._surfaced import note_quiet_disconnect
from starling._utils import is_async_callable
from starling.concurrency import run_in_threadpool
from starling.requests import ClientDisconnect, Request
from starling.responses import HTMLResponse, PlainTextResponse, Response
from starling.types import ASGIApp, ExceptionHandler, Receive, Scope, Send
from starling.websockets import WebSocketDisconnect

_logger = logging.getLogger(__name__)

STYLES = """
body {
    margin: 0;
    padding: 1.5rem 2rem;
    font-family: system-ui, -apple-system, "Segoe UI", sans-serif;
    background: #fafaf7;
    color: #1d1f21;
}
h1 {
    margin: 0 0 0.25rem;
    font-size: 1.1rem;
    color: #8a1c1c;
}
h2 {
    margin: 0 0 1.25rem;
    font-size: 1.4rem;
    word-break: break-word;
}
.trace {
    border-left: 4px solid #8a1c1c;
    background: #ffffff;
}
.trace-heading {
    margin: 0;
    padding: 0.5rem 1rem;
    font-weight: 600;
    background: #f1e4e4;
}
.frame {
    border-top: 1px solid #e6e0e0;
}
.frame-header {
    margin: 0;
    padding: 0.5rem 1rem;
    font-size: 0.9rem;
}
.frame-file {
    font-family: ui-monospace, Menlo, Consolas, monospace;
}
.toggle {
    float: right;
    min-width: 1.8rem;
    border: 1px solid #c9bcbc;
    border-radius: 3px;
    background: #ffffff;
    cursor: pointer;
}
.source {
    margin: 0;
    padding: 0.25rem 0 0.5rem;
    font-family: ui-monospace, Menlo, Consolas, monospace;
    font-size: 0.85rem;
    background: #f6f6f2;
}
.source.is-collapsed {
    display: none;
}
.source-line {
    margin: 0;
    padding: 0 1rem;
    white-space: pre;
    overflow-x: auto;
}
.source-line.is-current {
    background: #f7d9d9;
    font-weight: 600;
}
.line-number {
    display: inline-block;
    min-width: 3.5rem;
    color: #8c8c8c;
    user-select: none;
}
"""

JS = """
<script>
    function toggleFrame(button) {
        const source = document.getElementById(button.dataset.target);
        const collapsed = source.classList.toggle("is-collapsed");
        button.textContent = collapsed ? "+" : "\\u2212";
        button.setAttribute("aria-expanded", String(!collapsed));
    }
</script>
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Server error (debug)</title>
<style>
{styles}
</style>
</head>
<body>
<h1>500 Internal Server Error</h1>
<h2>{error}</h2>
<section class="trace">
<p class="trace-heading">Traceback, most recent call first</p>
{exc_html}
</section>
{js}
</body>
</html>
"""

FRAME_TEMPLATE = """
<div class="frame">
<p class="frame-header">
<button type="button" class="toggle" data-target="{frame_filename}:{frame_lineno}"
 onclick="toggleFrame(this)">{collapse_button}</button>
<span class="frame-file">{frame_filename}</span> at line <strong>{frame_lineno}</strong>,
in <code>{frame_name}</code>
</p>
<div class="source{collapsed}" id="{frame_filename}:{frame_lineno}">{code_context}</div>
</div>
"""

LINE = """
<p class="source-line"><span class="line-number">{lineno}</span>{line}</p>
"""

CENTER_LINE = """
<p class="source-line is-current"><span class="line-number">{lineno}</span>{line}</p>
"""

_COLLAPSED_CLASS = " is-collapsed"
_EXPAND_LABEL = "+"
_COLLAPSE_LABEL = "&minus;"


class ServerErrorMiddleware:
    def __init__(
        self, app: ASGIApp, handler: ExceptionHandler | None = None, debug: bool = False
    ) -> None:
        self.app = app
        self.handler = handler
        self.debug = debug

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # PERF: a try block costs nothing until something is raised (Python 3.11+).
            try:
                await self.app(scope, receive, send)
            except WebSocketDisconnect as exc:
                # The peer left (or the app ended the session by raising it): nothing to report
                # to the server; a test client still sees it, as with Starlette.
                _client_left(scope, exc)
                note_quiet_disconnect(exc)
            return

        # PERF: a tracker (not a closure): ExceptionMiddleware right inside reuses its flag.
        tracker = ResponseTracker(send)
        try:
            await self.app(scope, receive, tracker.send)
        except Exception as exc:
            if await self._respond(exc, scope, receive, send, tracker.started):
                # Re-raise so the server logs it and the test client can surface it.
                raise

    async def _respond(
        self, exc: Exception, scope: Scope, receive: Receive, send: Send, started: bool
    ) -> bool:
        """Run the handler for ``exc``; send its response when none has started.

        Returns whether the caller must re-raise ``exc``: False when it is the client leaving,
        for which nothing is run or sent (Starling.__call__'s fused stack calls this too).
        """
        if isinstance(exc, ClientDisconnect):
            _client_left(scope, exc)
            return False
        response = await self._response_for(Request(scope), exc)
        if not started:
            await response(scope, receive, send)
        return True

    async def _response_for(self, request: Request, exc: Exception) -> Response:
        # A handler runs even when the response has started: it may only be logging.
        if self.debug:
            # The traceback reads source files (linecache): keep that off the event loop.
            return await run_in_threadpool(self.debug_response, request, exc)
        if self.handler is None:
            return self.error_response(request, exc)
        response: Any
        if is_async_callable(self.handler):
            response = await self.handler(request, exc)
        else:
            response = await run_in_threadpool(self.handler, request, exc)
        return response  # type: ignore[no-any-return]

    def format_line(self, index: int, line: str, frame_lineno: int, frame_index: int) -> str:
        values = {
            "line": html.escape(line.rstrip("\r\n")),
            "lineno": (frame_lineno - frame_index) + index,
        }
        if index == frame_index:
            return CENTER_LINE.format(**values)
        return LINE.format(**values)

    def generate_frame_html(self, frame: inspect.FrameInfo, is_collapsed: bool) -> str:
        code_context = "".join(
            self.format_line(index, line, frame.lineno, frame.index)  # type: ignore[arg-type]
            for index, line in enumerate(frame.code_context or [])
        )
        values = {
            "frame_filename": html.escape(frame.filename),
            "frame_lineno": frame.lineno,
            "frame_name": html.escape(frame.function),
            "code_context": code_context,
            "collapsed": _COLLAPSED_CLASS if is_collapsed else "",
            "collapse_button": _EXPAND_LABEL if is_collapsed else _COLLAPSE_LABEL,
        }
        return FRAME_TEMPLATE.format(**values)

    def generate_html(self, exc: Exception, limit: int = 7) -> str:
        frames = inspect.getinnerframes(exc.__traceback__, limit) if exc.__traceback__ else []
        # Innermost frame first and open; the callers below it start collapsed.
        exc_html = "".join(
            self.generate_frame_html(frame, is_collapsed=position > 0)
            for position, frame in enumerate(reversed(frames))
        )
        error = html.escape(f"{type(exc).__name__}: {_safe_str(exc)}")
        return TEMPLATE.format(styles=STYLES, js=JS, error=error, exc_html=exc_html)

    def generate_plain_text(self, exc: Exception) -> str:
        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))

    def debug_response(self, request: Request, exc: Exception) -> Response:
        accept = request.headers.get("accept", "")
        if "text/html" in accept:
            return HTMLResponse(self.generate_html(exc), status_code=500)
        return PlainTextResponse(self.generate_plain_text(exc), status_code=500)

    def error_response(self, request: Request, exc: Exception) -> Response:
        return PlainTextResponse("Internal Server Error", status_code=500)


def _client_left(scope: Scope, exc: ClientDisconnect | WebSocketDisconnect) -> None:
    """A client that left is not a server error: one debug line, no traceback, no 500.

    APPSEC: a flood of cut uploads or dropped WebSockets would otherwise log a traceback
    each ("Exception in ASGI application"), burying the real errors. An app that wants to
    know registers an exception handler for ClientDisconnect (or WebSocketDisconnect): the
    ExceptionMiddleware runs it before anything reaches this layer.
    """
    # %r: the path is decoded from the request and may hold line breaks (log injection).
    _logger.debug(
        "Client left before the response completed (%s): %s %r",
        type(exc).__name__,
        scope.get("method", "WEBSOCKET"),
        scope.get("path", ""),
    )


def _safe_str(exc: Exception) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not turn the error page into a second error
        return "<exception str() failed>"
