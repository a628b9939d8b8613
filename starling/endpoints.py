"""Class-based endpoints: HTTP handlers per method, and WebSocket handlers per event."""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from typing import Any, Literal

from starling import status
from starling._utils import is_async_callable
from starling.concurrency import run_in_threadpool
from starling.exceptions import HTTPException
from starling.requests import Request
from starling.responses import PlainTextResponse, Response
from starling.types import Message, Receive, Scope, Send
from starling.websockets import WebSocket

# Every method an endpoint may handle, in the order the Allow header lists them.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "QUERY")


class HTTPEndpoint:
    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        self.scope = scope
        self.receive = receive
        self.send = send
        self._allowed_methods = [
            method for method in _METHODS if getattr(self, method.lower(), None) is not None
        ]
        # A GET handler also answers HEAD (the server drops the body).
        if "HEAD" not in self._allowed_methods and "GET" in self._allowed_methods:
            self._allowed_methods.insert(1, "HEAD")

    def __await__(self) -> Generator[Any, None, None]:
        return self.dispatch().__await__()

    async def dispatch(self) -> None:
        request: Request[Any] = Request(self.scope, receive=self.receive, send=self.send)
        handler = self._handler(request.method)
        if handler is None:
            # PERF: the built-in 405 is cheap and sync-safe; no thread hop for it.
            response = self.method_not_allowed(request)
        elif is_async_callable(handler):
            response = await handler(request)
        else:
            response = await run_in_threadpool(handler, request)
        await response(self.scope, self.receive, self.send)

    def _handler(self, method: str) -> Callable[[Request[Any]], Any] | None:
        """The handler for ``method``, or None when it is the built-in 405 response."""
        if method not in self._allowed_methods:
            method_not_allowed = self.method_not_allowed
            if getattr(method_not_allowed, "__func__", None) is HTTPEndpoint.method_not_allowed:
                return None
            return method_not_allowed
        name = "get" if method == "HEAD" and getattr(self, "head", None) is None else method.lower()
        handler: Callable[[Request[Any]], Any] = getattr(self, name)
        return handler

    def method_not_allowed(self, request: Request[Any]) -> Response:
        # Inside an app, let its exception handlers render the 405; a bare endpoint answers itself.
        headers = {"Allow": ", ".join(self._allowed_methods)}
        if "app" in self.scope:
            raise HTTPException(status_code=405, headers=headers)
        return PlainTextResponse("Method Not Allowed", status_code=405, headers=headers)


class WebSocketEndpoint:
    encoding: Literal["text", "bytes", "json"] | None = None

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "websocket"
        self.scope = scope
        self.receive = receive
        self.send = send

    def __await__(self) -> Generator[Any, None, None]:
        return self.dispatch().__await__()

    async def dispatch(self) -> None:
        websocket: WebSocket[Any] = WebSocket(self.scope, receive=self.receive, send=self.send)
        await self.on_connect(websocket)

        close_code = status.WS_1000_NORMAL_CLOSURE
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.receive":
                    data = await self.decode(websocket, message)
                    await self.on_receive(websocket, data)
                elif message["type"] == "websocket.disconnect":
                    close_code = int(message.get("code") or status.WS_1000_NORMAL_CLOSURE)
                    break
        except Exception:
            close_code = status.WS_1011_INTERNAL_ERROR
            raise
        finally:
            await self.on_disconnect(websocket, close_code)

    async def decode(self, websocket: WebSocket[Any], message: Message) -> Any:
        if self.encoding == "text":
            if message.get("text") is None:
                await websocket.close(code=status.WS_1003_UNSUPPORTED_DATA)
                raise RuntimeError("Expected text websocket messages, but got bytes")
            return message["text"]

        if self.encoding == "bytes":
            if message.get("bytes") is None:
                await websocket.close(code=status.WS_1003_UNSUPPORTED_DATA)
                raise RuntimeError("Expected bytes websocket messages, but got text")
            return message["bytes"]

        if self.encoding == "json":
            return await self._decode_json(websocket, message)

        if self.encoding is not None:
            raise AssertionError(f"Unsupported 'encoding' attribute {self.encoding}")
        text = message.get("text")
        return text if text is not None else message["bytes"]

    async def _decode_json(self, websocket: WebSocket[Any], message: Message) -> Any:
        text = message.get("text")
        try:
            # APPSEC: invalid UTF-8 and too-deep nesting are the client's fault like bad
            # syntax is, so they close with 1003 too rather than escaping as a server error.
            if text is None:
                text = message["bytes"].decode("utf-8")
            return json.loads(text)
        except (ValueError, RecursionError) as exc:
            await websocket.close(code=status.WS_1003_UNSUPPORTED_DATA)
            raise RuntimeError("Malformed JSON data received.") from exc

    async def on_connect(self, websocket: WebSocket[Any]) -> None:
        """Override to handle an incoming websocket connection"""
        await websocket.accept()

    async def on_receive(self, websocket: WebSocket[Any], data: Any) -> None:
        """Override to handle an incoming websocket message"""

    async def on_disconnect(self, websocket: WebSocket[Any], close_code: int) -> None:
        """Override to handle a disconnecting websocket"""
