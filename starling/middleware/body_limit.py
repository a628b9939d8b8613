"""A limit on the size of an HTTP request body, for the whole app or per Router/Mount/Route.

The outermost ``RequestBodyLimitMiddleware`` of a request installs one
``RequestBodyLimitResponder``, which wraps ``receive`` and ``send`` and counts body bytes. Every
nested ``RequestBodyLimitMiddleware`` only replaces the limit, so the innermost one wins: an app
can keep a small default and allow larger bodies on an upload route. The limit in force is also
in ``scope["starlette.max_body_size"]`` (FastAPI reads it).

A body over the limit makes ``receive()`` raise an ``HTTPException(413)`` subclass, which the
app's exception handlers may turn into a response; when nothing handles it and no response has
started, the responder answers ``413 Content Too Large`` itself. A declared ``Content-Length``
over the limit fails the first ``receive()`` without reading, and turns whatever response the app
starts into the 413, so an endpoint that never reads the body cannot accept it either.
"""

from __future__ import annotations

from starling.exceptions import HTTPException
from starling.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_SIZE_SCOPE_KEY = "starlette.max_body_size"
_BODY_LIMIT_RESPONDER_SCOPE_KEY = "starlette._body_limit_responder"

# What PlainTextResponse("Content Too Large", status_code=413) sends, built once.
_TOO_LARGE_BODY = b"Content Too Large"
_TOO_LARGE_START: Message = {
    "type": "http.response.start",
    "status": 413,
    "headers": [
        (b"content-length", str(len(_TOO_LARGE_BODY)).encode("latin-1")),
        (b"content-type", b"text/plain; charset=utf-8"),
    ],
}


class _Missing:
    """The type of ``_MISSING``: "no value", where None is a value."""


_MISSING = _Missing()


class _RequestBodyTooLarge(HTTPException):
    """Raised by ``receive()`` once the body is over the limit."""

    def __init__(self) -> None:
        super().__init__(status_code=413, detail="Content Too Large")


class _RequestBodyLimitResponseSent(Exception):
    """Raised by ``send()`` when the 413 went out in place of the app's response."""


def _get_content_length(scope: Scope) -> int | None:
    """The first Content-Length header as an int, None when absent or not a number.

    Read leniently (``int()`` accepts "+6" and " 6 ") as in Starlette: the value only decides
    an early rejection, and the bytes that really arrive are counted anyway.
    """
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value.decode("latin-1"))
            except ValueError:  # not a number, or more digits than int() takes
                return None
    return None


async def _send_too_large(send: Send) -> None:
    await send(dict(_TOO_LARGE_START, headers=list(_TOO_LARGE_START["headers"])))
    await send({"type": "http.response.body", "body": _TOO_LARGE_BODY})


class RequestBodyLimitMiddleware:
    """Limit the total size of an HTTP request body."""

    def __init__(self, app: ASGIApp, max_body_size: int) -> None:
        self.app = app
        self.max_body_size = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        responder = scope.get(_BODY_LIMIT_RESPONDER_SCOPE_KEY)
        if responder is None:
            await RequestBodyLimitResponder(self.app, self.max_body_size)(scope, receive, send)
            return
        # An outer limit already wraps receive/send: the innermost limit wins.
        responder.max_body_size = self.max_body_size
        scope[MAX_BODY_SIZE_SCOPE_KEY] = self.max_body_size
        if responder.total_size > self.max_body_size:
            # Bytes read before this limit took over (a middleware that read and cached the
            # body) are already over it: the app gets the 413 when it asks for the body.
            receive = _over_the_limit
        await self.app(scope, receive, send)


async def _over_the_limit() -> Message:
    raise _RequestBodyTooLarge()


class RequestBodyLimitResponder:
    """One request's body counter: wraps ``receive`` and ``send`` for ``app``."""

    def __init__(self, app: ASGIApp, max_body_size: int) -> None:
        self.app = app
        self.max_body_size = max_body_size
        self._scope: Scope | None = None
        self._receive: Receive | None = None
        self._send: Send | None = None
        self.content_length: int | None = None
        self.total_size = 0
        self.response_started = False
        self._too_large_sent = False

    @property
    def scope(self) -> Scope:
        assert self._scope is not None
        return self._scope

    @property
    def receive(self) -> Receive:
        assert self._receive is not None
        return self._receive

    @property
    def send(self) -> Send:
        assert self._send is not None
        return self._send

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A copy: the caller's scope does not see this request's limit.
        scope = {
            **scope,
            MAX_BODY_SIZE_SCOPE_KEY: self.max_body_size,
            _BODY_LIMIT_RESPONDER_SCOPE_KEY: self,
        }
        self._scope = scope
        self._receive = receive
        self._send = send
        self.content_length = _get_content_length(scope)
        try:
            await self.app(scope, self.receive_with_limit, self.send_with_limit)
        except _RequestBodyLimitResponseSent:
            return
        except _RequestBodyTooLarge:
            if self._too_large_sent:
                return
            if self.response_started:
                raise
            self._too_large_sent = True
            await _send_too_large(send)

    def _declared_too_large(self) -> bool:
        length = self.content_length
        return length is not None and length > self.max_body_size

    async def receive_with_limit(self) -> Message:
        if self._declared_too_large():
            raise _RequestBodyTooLarge()
        message = await self.receive()
        if message["type"] == "http.request":
            self.total_size += len(message.get("body", b""))
            if self.total_size > self.max_body_size:
                raise _RequestBodyTooLarge()
        return message

    async def send_with_limit(self, message: Message) -> None:
        if self._too_large_sent:
            # The 413 is complete: nothing of the app's response may follow it.
            raise _RequestBodyLimitResponseSent()
        if message["type"] == "http.response.start":
            if self._declared_too_large():
                self._too_large_sent = True
                await _send_too_large(self.send)
                raise _RequestBodyLimitResponseSent()
            self.response_started = True
        await self.send(message)
