"""The WebSocket connection object, its state machine, and the close/disconnect signals."""

from __future__ import annotations

import enum
import json
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, cast

from starling import status
from starling.requests import HTTPConnection, StateT
from starling.types import Message, Receive, Scope, Send

if TYPE_CHECKING:
    from starling.responses import Response


class WebSocketState(enum.Enum):
    CONNECTING = 0
    CONNECTED = 1
    DISCONNECTED = 2
    RESPONSE = 3


class WebSocketDisconnect(Exception):
    # BaseException.__new__ already stores the positional args; Starlette's args match that.
    def __init__(self, code: int = 1000, reason: str | None = None) -> None:
        self.code = code
        self.reason = reason or ""


class WebSocketDisconnected(RuntimeError):
    """
    Raised when attempting to use a disconnected WebSocket.
    """


# PERF: module globals are cheaper to reach than enum members through their class.
_CONNECTING = WebSocketState.CONNECTING
_CONNECTED = WebSocketState.CONNECTED
_DISCONNECTED = WebSocketState.DISCONNECTED
_RESPONSE = WebSocketState.RESPONSE

# The message types each side may send in each state, built once (ASGI WebSocket spec).
_CLIENT_MESSAGES = frozenset({"websocket.receive", "websocket.disconnect"})
_OPENING_MESSAGES = {
    "websocket.accept": _CONNECTED,
    "websocket.close": _DISCONNECTED,
    "websocket.http.response.start": _RESPONSE,
}
_CONNECTED_MESSAGES = frozenset({"websocket.send", "websocket.close"})
_JSON_MODES = frozenset({"text", "binary"})


class WebSocket(HTTPConnection[StateT]):
    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        super().__init__(scope)
        assert scope["type"] == "websocket"
        self._receive = receive
        self._send = send
        self.client_state = _CONNECTING
        self.application_state = _CONNECTING

    async def receive(self) -> Message:
        """Receive the next ASGI message from the client, checking it against the state machine."""
        state = self.client_state
        if state is _CONNECTING:
            message = await self._receive()
            message_type = message["type"]
            if message_type != "websocket.connect":
                raise RuntimeError(
                    f'Expected ASGI message "websocket.connect", but got {message_type!r}'
                )
            self.client_state = _CONNECTED
            return message
        if state is _CONNECTED:
            message = await self._receive()
            message_type = message["type"]
            if message_type not in _CLIENT_MESSAGES:
                raise RuntimeError(
                    'Expected ASGI message "websocket.receive" or "websocket.disconnect", '
                    f"but got {message_type!r}"
                )
            if message_type == "websocket.disconnect":
                self.client_state = _DISCONNECTED
            return message
        raise WebSocketDisconnected(
            'Cannot call "receive" once a disconnect message has been received.'
        )

    async def send(self, message: Message) -> None:
        """Send an ASGI message to the client, checking it against the state machine."""
        state = self.application_state
        if state is _CONNECTED:
            message_type = message["type"]
            if message_type not in _CONNECTED_MESSAGES:
                raise RuntimeError(
                    'Expected ASGI message "websocket.send" or "websocket.close", '
                    f"but got {message_type!r}"
                )
            if message_type == "websocket.close":
                self.application_state = _DISCONNECTED
            try:
                await self._send(message)
            except OSError as exc:
                # The transport is gone: report it as an abnormal closure (RFC 6455 code 1006).
                self.application_state = _DISCONNECTED
                raise WebSocketDisconnect(code=status.WS_1006_ABNORMAL_CLOSURE) from exc
        elif state is _CONNECTING:
            message_type = message["type"]
            next_state = _OPENING_MESSAGES.get(message_type)
            if next_state is None:
                raise RuntimeError(
                    'Expected ASGI message "websocket.accept", "websocket.close" or '
                    f'"websocket.http.response.start", but got {message_type!r}'
                )
            self.application_state = next_state
            await self._send(message)
        elif state is _RESPONSE:
            message_type = message["type"]
            if message_type != "websocket.http.response.body":
                raise RuntimeError(
                    'Expected ASGI message "websocket.http.response.body", '
                    f"but got {message_type!r}"
                )
            if not message.get("more_body", False):
                self.application_state = _DISCONNECTED
            await self._send(message)
        else:
            raise WebSocketDisconnected('Cannot call "send" once a close message has been sent.')

    async def accept(
        self,
        subprotocol: str | None = None,
        headers: Iterable[tuple[bytes, bytes]] | None = None,
    ) -> None:
        headers = headers or []
        if self.client_state is _CONNECTING:
            # The handshake request arrives as "websocket.connect"; it must be read first.
            await self.receive()
        await self.send(
            {"type": "websocket.accept", "subprotocol": subprotocol, "headers": headers}
        )

    def _raise_on_disconnect(self, message: Message) -> None:
        if message["type"] == "websocket.disconnect":
            # ASGI: a server that got no close code "should set this to 1005"; some omit it.
            code = message.get("code", status.WS_1005_NO_STATUS_RCVD)
            raise WebSocketDisconnect(code, message.get("reason"))

    # PERF: the receive_* helpers repeat these three lines rather than share a coroutine:
    # one more await layer per message is a measurable share of an echo round trip.

    async def receive_text(self) -> str:
        if self.application_state is not _CONNECTED:
            raise _not_accepted()
        message = await self.receive()
        if message["type"] == "websocket.disconnect":
            self._raise_on_disconnect(message)
        return cast(str, message["text"])

    async def receive_bytes(self) -> bytes:
        if self.application_state is not _CONNECTED:
            raise _not_accepted()
        message = await self.receive()
        if message["type"] == "websocket.disconnect":
            self._raise_on_disconnect(message)
        return cast(bytes, message["bytes"])

    async def receive_json(self, mode: str = "text") -> Any:
        if mode not in _JSON_MODES:
            raise RuntimeError('The "mode" argument should be "text" or "binary".')
        if self.application_state is not _CONNECTED:
            raise _not_accepted()
        message = await self.receive()
        if message["type"] == "websocket.disconnect":
            self._raise_on_disconnect(message)
        text = message["text"] if mode == "text" else message["bytes"].decode("utf-8")
        return json.loads(text)

    async def iter_text(self) -> AsyncIterator[str]:
        try:
            while True:
                yield await self.receive_text()
        except WebSocketDisconnect:
            pass

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        try:
            while True:
                yield await self.receive_bytes()
        except WebSocketDisconnect:
            pass

    async def iter_json(self) -> AsyncIterator[Any]:
        try:
            while True:
                yield await self.receive_json()
        except WebSocketDisconnect:
            pass

    async def send_text(self, data: str) -> None:
        await self.send({"type": "websocket.send", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        await self.send({"type": "websocket.send", "bytes": data})

    async def send_json(self, data: Any, mode: str = "text") -> None:
        if mode not in _JSON_MODES:
            raise RuntimeError('The "mode" argument should be "text" or "binary".')
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        if mode == "text":
            await self.send({"type": "websocket.send", "text": text})
        else:
            await self.send({"type": "websocket.send", "bytes": text.encode("utf-8")})

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        await self.send({"type": "websocket.close", "code": code, "reason": reason or ""})

    async def send_denial_response(self, response: Response) -> None:
        if "websocket.http.response" not in (self.scope.get("extensions") or {}):
            raise RuntimeError(
                "The server doesn't support the Websocket Denial Response extension."
            )
        await response(self.scope, self.receive, self.send)


def _not_accepted() -> WebSocketDisconnected:
    return WebSocketDisconnected('WebSocket is not connected. Need to call "accept" first.')


class WebSocketClose:
    def __init__(self, code: int = 1000, reason: str | None = None) -> None:
        self.code = code
        self.reason = reason or ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "websocket.close", "code": self.code, "reason": self.reason})
