"""AuthenticationMiddleware: ask a backend who is connecting, then set ``scope["auth"/"user"]``."""

from __future__ import annotations

from collections.abc import Callable

from starling.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    UnauthenticatedUser,
)
from starling.requests import HTTPConnection
from starling.responses import PlainTextResponse, Response
from starling.types import ASGIApp, Message, Receive, Scope, Send

# Starlette closes a WebSocket whose credentials fail with the normal code, 1000.
_WEBSOCKET_CLOSE: Message = {"type": "websocket.close", "code": 1000}


class AuthenticationMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        backend: AuthenticationBackend,
        on_error: Callable[[HTTPConnection, AuthenticationError], Response] | None = None,
    ) -> None:
        self.app = app
        self.backend = backend
        self.on_error: Callable[[HTTPConnection, AuthenticationError], Response] = (
            on_error if on_error is not None else self.default_on_error
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type != "http" and scope_type != "websocket":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        try:
            auth_result = await self.backend.authenticate(conn)
        except AuthenticationError as exc:
            response = self.on_error(conn, exc)
            if scope_type == "websocket":
                await send(dict(_WEBSOCKET_CLOSE))
            else:
                await response(scope, receive, send)
            return
        if auth_result is None:
            auth_result = AuthCredentials(), UnauthenticatedUser()
        scope["auth"], scope["user"] = auth_result
        await self.app(scope, receive, send)

    @staticmethod
    def default_on_error(conn: HTTPConnection, exc: Exception) -> Response:
        return PlainTextResponse(str(exc), status_code=400)
