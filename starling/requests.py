"""The incoming connection (HTTPConnection) and HTTP request (Request) an endpoint reads."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from typing import Any, Generic, NoReturn, cast

import anyio

from starling._awaitable import AwaitableOrContextManager, AwaitableOrContextManagerWrapper
from starling._cookies import parse_cookie_header
from starling._formerrors import MultiPartException
from starling._urlencoded import UrlencodedParser
from starling.datastructures import (
    URL,
    Address,
    FormData,
    Headers,
    QueryParams,
    State,
    UploadFile,
    _form_data,
)
from starling.exceptions import HTTPException
from starling.types import Message, Receive, Scope, Send

# A TypeVar default makes an unparameterised Request(...) a Request[State], as in Starlette.
# typing_extensions comes with anyio on the Pythons whose typing lacks TypeVar defaults.
if sys.version_info >= (3, 13):  # pragma: no cover (the tests run on 3.11)
    from typing import TypeVar
else:
    from typing_extensions import TypeVar

# Request headers copied into an HTTP/2 server push: the pushed response should be negotiated
# the way the page itself was.
SERVER_PUSH_HEADERS_TO_COPY = {
    "accept",
    "accept-encoding",
    "accept-language",
    "cache-control",
    "user-agent",
}
# The same names in a fixed order (Starlette's order follows set iteration, which varies by
# process), so the pushed headers are reproducible.
_PUSH_HEADER_ORDER = tuple(sorted(SERVER_PUSH_HEADERS_TO_COPY))

_FORM_URLENCODED = "application/x-www-form-urlencoded"
_FORM_MULTIPART = "multipart/form-data"

StateT = TypeVar("StateT", bound=Mapping[str, Any] | State, default=State)


def cookie_parser(cookie_string: str) -> dict[str, str]:
    """Parse a ``Cookie`` header value into a dict, leniently, as browsers send it.

    Splits on ``;`` and then on the first ``=``; a piece without ``=`` is stored under ``""``;
    keys and values are stripped and a ``"quoted"`` value is unquoted; a later duplicate wins.
    At most ``starling._cookies.MAX_COOKIES`` pieces are read. Never raises.
    """
    return parse_cookie_header(cookie_string)


class ClientDisconnect(Exception):
    pass


class HTTPConnection(Mapping[str, Any], Generic[StateT]):
    """What HTTP requests and WebSocket connections share: URL, headers, cookies, client...

    A read-only mapping over the ASGI scope. Everything is parsed on first access and cached on
    the object, so building one is cheap.
    """

    # Two connections are equal only when they are the same object (not Mapping's
    # item-by-item comparison), so they stay hashable.
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __init__(self, scope: Scope, receive: Receive | None = None) -> None:
        assert scope["type"] in ("http", "websocket")
        self.scope = scope

    def __getitem__(self, key: str) -> Any:
        return self.scope[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.scope)

    def __len__(self) -> int:
        return len(self.scope)

    @property
    def app(self) -> Any:
        return self.scope["app"]

    # PERF: each cached property looks itself up in __dict__ rather than catching the
    # AttributeError of a missing attribute, which costs more on the (common) first access.
    # The attribute names are Starlette's, for code that pokes at them.

    @property
    def url(self) -> URL:
        url: URL | None = self.__dict__.get("_url")
        if url is None:
            url = self._url = URL(scope=self.scope)
        return url

    @property
    def base_url(self) -> URL:
        base_url: URL | None = self.__dict__.get("_base_url")
        if base_url is None:
            base_url = self._base_url = URL(scope=self._base_url_scope())
        return base_url

    def _base_url_scope(self) -> Scope:
        # The application's root: under a Mount, "app_root_path" keeps the outer root path
        # while "root_path" grows, so url_for() builds from the top application.
        scope = self.scope
        root_path: str = scope.get("app_root_path", scope.get("root_path", ""))
        path = root_path if root_path.endswith("/") else root_path + "/"
        return {**scope, "path": path, "query_string": b"", "root_path": root_path}

    @property
    def headers(self) -> Headers:
        headers: Headers | None = self.__dict__.get("_headers")
        if headers is None:
            headers = self._headers = Headers(scope=self.scope)
        return headers

    @property
    def query_params(self) -> QueryParams:
        query_params: QueryParams | None = self.__dict__.get("_query_params")
        if query_params is None:
            query_params = self._query_params = QueryParams(self.scope["query_string"])
        return query_params

    @property
    def path_params(self) -> dict[str, Any]:
        path_params: dict[str, Any] = self.scope.get("path_params", {})
        return path_params

    @property
    def cookies(self) -> dict[str, str]:
        cookies: dict[str, str] | None = self.__dict__.get("_cookies")
        if cookies is None:
            # Several Cookie headers (HTTP/2 splits them) read as one.
            cookies = self._cookies = parse_cookie_header("; ".join(self.headers.getlist("cookie")))
        return cookies

    @property
    def client(self) -> Address | None:
        # Not cached: proxy-header middleware may rewrite scope["client"] after construction.
        host_port = self.scope.get("client")
        if host_port is not None:
            return Address(*host_port)
        return None

    @property
    def session(self) -> dict[str, Any]:
        assert "session" in self.scope, (
            "SessionMiddleware must be installed to access request.session"
        )
        session: dict[str, Any] = self.scope["session"]
        # A session that was read varies the response by cookie (SessionMiddleware's Session
        # records it); any other mapping is returned as it is.
        mark_accessed = getattr(session, "mark_accessed", None)
        if mark_accessed is not None:
            mark_accessed()
        return session

    @property
    def auth(self) -> Any:
        assert "auth" in self.scope, (
            "AuthenticationMiddleware must be installed to access request.auth"
        )
        return self.scope["auth"]

    @property
    def user(self) -> Any:
        assert "user" in self.scope, (
            "AuthenticationMiddleware must be installed to access request.user"
        )
        return self.scope["user"]

    @property
    def state(self) -> StateT:
        state: State | None = self.__dict__.get("_state")
        if state is None:
            # The dict lives in the scope so that middleware and the endpoint share it; the
            # lifespan state is copied into it per request by the server.
            state = self._state = State(self.scope.setdefault("state", {}))
        return cast(StateT, state)

    def url_for(self, name: str, /, **path_params: Any) -> URL:
        provider = self.scope.get("router") or self.scope.get("app")
        if provider is None:
            raise RuntimeError(
                "The `url_for` method can only be used inside a Starlette application "
                "or with a router."
            )
        url_path = provider.url_path_for(name, **path_params)
        absolute: URL = url_path.make_absolute_url(base_url=self.base_url)
        return absolute


async def empty_receive() -> NoReturn:
    raise RuntimeError("Receive channel has not been made available")


async def empty_send(message: Message) -> NoReturn:
    raise RuntimeError("Send channel has not been made available")


class Request(HTTPConnection[StateT]):
    """An HTTP request: the connection plus its method and body (streamed, or read whole)."""

    # PERF: the initial state as class attributes, set on the instance only when it changes
    # (measured: three stores fewer per request, ~0.05 µs).
    _form: FormData | None = None
    _stream_consumed = False
    _is_disconnected = False

    def __init__(
        self, scope: Scope, receive: Receive = empty_receive, send: Send = empty_send
    ) -> None:
        # PERF: HTTPConnection.__init__ inlined; this runs once per request.
        assert scope["type"] == "http"
        self.scope = scope
        self._receive = receive
        self._send = send

    @property
    def method(self) -> str:
        method: str = self.scope["method"]
        return method

    @property
    def receive(self) -> Receive:
        return self._receive

    async def stream(self) -> AsyncGenerator[bytes, None]:
        """Yield the body as it arrives (empty chunks skipped), then a final ``b""``.

        Once read to the end it cannot be read again, unless ``body()`` cached it first.
        """
        async for chunk in _BodyChunks(self):
            yield chunk

    async def body(self) -> bytes:
        body: bytes | None = self.__dict__.get("_body")
        if body is None:
            chunks = [chunk async for chunk in _body_chunks(self)]
            body = self._body = b"".join(chunks)
        return body

    async def json(self) -> Any:
        """The body decoded as JSON, cached.

        A malformed body raises ``json.JSONDecodeError`` and one that is not UTF-8 (or UTF-16/32)
        ``UnicodeDecodeError``, as in Starlette; both are also ``HTTPException(400)``, so an app
        that does not catch them answers 400, not 500.
        """
        if "_json" not in self.__dict__:  # JSON null is a value too, so test the key
            self._json = _loads(await self.body())
        return self._json

    def form(
        self,
        *,
        max_files: int | float = 1000,
        max_fields: int | float = 1000,
        max_part_size: int = 1024 * 1024,
        max_file_size: int | None = None,
        spool_max_size: int | None = None,
    ) -> AwaitableOrContextManager[FormData]:
        """The parsed form, cached. Await it, or ``async with`` it to close its files after.

        Starlette's limits (``max_files``, ``max_fields``, ``max_part_size``: over one, a 400)
        apply to urlencoded and multipart bodies alike. Beyond Starlette, for uploads:
        ``max_file_size`` bounds each file (bytes; over it, a 413) and ``spool_max_size`` is
        the size past which a file is written to disk; left at None, both are
        ``MultiPartParser``'s class attributes (no per-file limit, 1 MiB in memory).
        """
        if max_file_size is not None or spool_max_size is not None:
            _check_upload_limits(max_file_size, spool_max_size)
        return AwaitableOrContextManagerWrapper(
            self._get_form(
                max_files=max_files,
                max_fields=max_fields,
                max_part_size=max_part_size,
                uploads=(max_file_size, spool_max_size),
            )
        )

    async def _get_form(
        self,
        *,
        max_files: int | float,
        max_fields: int | float,
        max_part_size: int,
        uploads: tuple[int | None, int | None] = (None, None),
    ) -> FormData:
        if self._form is None:
            content_type = _media_type(self.headers.get("content-type", ""))
            try:
                if content_type == _FORM_MULTIPART:
                    self._form = await _multipart_form(
                        self, max_files, max_fields, max_part_size, uploads
                    )
                elif content_type == _FORM_URLENCODED:
                    self._form = await self._urlencoded_form(max_fields, max_part_size)
                else:
                    self._form = FormData()
            except MultiPartException as exc:
                # Inside an application the client gets a 400 (a 413 for a file over
                # max_file_size); a bare Request lets the error through.
                if "app" in self.scope:
                    status_code = getattr(exc, "status_code", 400)
                    raise HTTPException(status_code=status_code, detail=exc.message) from exc
                raise
        return self._form

    async def _urlencoded_form(self, max_fields: int | float, max_part_size: int) -> FormData:
        parser = UrlencodedParser(max_fields, max_part_size)
        fields: list[tuple[str, str | UploadFile]] = []
        stream = _body_chunks(self)
        try:
            async for chunk in stream:
                fields += parser.feed(chunk)
        finally:
            await _close_stream(stream)
        fields += parser.close()
        return _form_data(fields)

    async def close(self) -> None:
        if self._form is not None:
            await self._form.close()

    async def is_disconnected(self) -> bool:
        """Whether the client has gone, without waiting: a pending message is taken if ready.

        As in Starlette, a body message taken here is not replayed to ``stream()``.
        """
        if not self._is_disconnected:
            message: Message = {}
            # A cancelled scope: receive() returns only what it has without waiting.
            with anyio.CancelScope() as cancel_scope:
                cancel_scope.cancel()
                message = await self._receive()
            if message.get("type") == "http.disconnect":
                self._is_disconnected = True
        return self._is_disconnected

    async def send_push_promise(self, path: str) -> None:
        """Ask an HTTP/2 server to push ``path``; a no-op unless the server supports it."""
        if "http.response.push" in self.scope.get("extensions", {}):
            headers = self.headers
            raw_headers = [
                (name.encode("latin-1"), value.encode("latin-1"))
                for name in _PUSH_HEADER_ORDER
                for value in headers.getlist(name)
            ]
            await self._send({"type": "http.response.push", "path": path, "headers": raw_headers})

    async def send_early_hints(self, link: str, /, *additional_links: str) -> None:
        """Send a 103 Early Hints with these ``Link`` values; a no-op unless supported."""
        if "http.response.early_hint" in self.scope.get("extensions", {}):
            links = [value.encode("latin-1") for value in (link, *additional_links)]
            await self._send({"type": "http.response.early_hint", "links": links})


class MalformedJSONBody(json.JSONDecodeError, HTTPException):
    """Still the ``json.JSONDecodeError`` apps catch; left uncaught, a 400 rather than a 500."""

    def __init__(self, error: json.JSONDecodeError) -> None:
        json.JSONDecodeError.__init__(self, error.msg, error.doc, error.pos)
        HTTPException.__init__(self, 400, f"Malformed JSON in the request body: {error}.")

    __str__ = BaseException.__str__
    __repr__ = BaseException.__repr__


class UndecodableJSONBody(UnicodeDecodeError, HTTPException):
    """Still the ``UnicodeDecodeError`` apps catch; left uncaught, a 400 rather than a 500."""

    def __init__(self, error: UnicodeDecodeError) -> None:
        UnicodeDecodeError.__init__(
            self, error.encoding, error.object, error.start, error.end, error.reason
        )
        HTTPException.__init__(
            self, 400, "The JSON request body is not valid UTF-8, UTF-16 or UTF-32 text."
        )

    __str__ = UnicodeDecodeError.__str__
    __repr__ = BaseException.__repr__


def _loads(body: bytes) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError as error:
        raise MalformedJSONBody(error) from None
    except UnicodeDecodeError as error:
        raise UndecodableJSONBody(error) from None
    except ValueError as error:
        # APPSEC: an integer of more than sys.get_int_max_str_digits() digits (4300 by default)
        # raises a plain ValueError; it is malformed input, not a server fault (Starlette: 500).
        too_long = json.JSONDecodeError(str(error), body.decode("latin-1"), 0)
        raise MalformedJSONBody(too_long) from None
    except RecursionError:
        # APPSEC: "[[[[..." nested past the interpreter's recursion limit is malformed input,
        # not a server fault: report it the way other malformed JSON is reported (Starlette
        # lets the RecursionError through, a 500 even where apps handle bad JSON).
        too_deep = json.JSONDecodeError("JSON nested too deeply", body.decode("latin-1"), 0)
        raise MalformedJSONBody(too_deep) from None


def _media_type(content_type: str) -> str:
    # "Type/Subtype; param=..." -> "type/subtype"; parameters (charset) do not matter here.
    # Only RFC 9110 OWS (space, tab) is stripped, as python-multipart does for Starlette.
    return content_type.partition(";")[0].strip(" \t").lower()


_NOT_STARTED, _READING, _CACHED, _LAST, _DONE = range(5)


class _BodyChunks:
    """The body's chunks as they arrive (empty ones skipped), then a final ``b""``: what
    ``Request.stream()`` yields, as a plain async iterator.

    A cached body (``body()`` read it) is given whole; otherwise ``http.request`` messages are
    read until one says there is no more body, ``http.disconnect`` raises ClientDisconnect,
    and a stream read to the end cannot be read again.

    PERF: body(), form() and the form parsers iterate this directly when the request's class
    keeps Request.stream (see _body_chunks()): an async generator costs the event loop's
    first-iteration hook, a weak reference kept until it is closed, and an ``aclosing``
    around it (measured: ~1.5 µs per form or body read).
    """

    __slots__ = ("_request", "_state")

    def __init__(self, request: Request[Any]) -> None:
        self._request = request
        self._state = _NOT_STARTED

    def __aiter__(self) -> _BodyChunks:
        return self

    async def __anext__(self) -> bytes:
        request = self._request
        state = self._state
        if state == _NOT_STARTED:
            body: bytes | None = request.__dict__.get("_body")
            if body is not None:
                self._state = _CACHED
                return body
            if request._stream_consumed:
                raise RuntimeError("Stream consumed")
            state = self._state = _READING
        if state == _READING:
            while not request._stream_consumed:
                message = await request._receive()
                message_type = message["type"]
                if message_type == "http.request":
                    chunk: bytes = message.get("body", b"")
                    if not message.get("more_body", False):
                        request._stream_consumed = True
                    if chunk:
                        return chunk
                elif message_type == "http.disconnect":
                    request._is_disconnected = True
                    raise ClientDisconnect()
            state = _CACHED
        if state == _CACHED:
            self._state = _DONE
            return b""
        raise StopAsyncIteration


def _body_chunks(request: Request[Any]) -> AsyncIterator[bytes]:
    """``request.stream()``, or the same chunks from _BodyChunks when that is what it yields."""
    if type(request).stream is Request.stream:
        return _BodyChunks(request)
    return request.stream()


async def _close_stream(stream: AsyncIterator[bytes]) -> None:
    """Close what _body_chunks() returned: a limit error may stop a read early, and a
    subclass's stream() generator must not be left to the garbage collector (trio warns)."""
    if type(stream) is not _BodyChunks:
        await cast(AsyncGenerator[bytes, None], stream).aclose()


def _check_upload_limits(max_file_size: int | None, spool_max_size: int | None) -> None:
    for name, value in (("max_file_size", max_file_size), ("spool_max_size", spool_max_size)):
        if value is not None and (type(value) is not int or value < 0):
            raise ValueError(
                f"request.form({name}=...) takes a number of bytes (an int, 0 or more) or "
                f"None for MultiPartParser's default, not {value!r}."
            )


async def _multipart_form(
    request: Request[Any],
    max_files: int | float,
    max_fields: int | float,
    max_part_size: int,
    uploads: tuple[int | None, int | None],
) -> FormData:
    # Imported here: the multipart parser is a separate module, loaded by the first upload
    # (PERF: later uploads find it in sys.modules without import_module's machinery).
    formparsers = sys.modules.get("starling.formparsers")
    if formparsers is None:
        try:
            formparsers = importlib.import_module("starling.formparsers")
        except ImportError as exc:
            raise RuntimeError(
                "Parsing multipart/form-data needs starling.formparsers, which is not available."
            ) from exc
    stream = _body_chunks(request)
    try:
        parser = formparsers.MultiPartParser(
            request.headers,
            stream,
            max_files=max_files,
            max_fields=max_fields,
            max_part_size=max_part_size,
        )
        max_file_size, spool_max_size = uploads
        if max_file_size is not None:
            parser.max_file_size = max_file_size
        if spool_max_size is not None:
            parser.spool_max_size = spool_max_size
        form: FormData = await parser.parse()
    finally:
        await _close_stream(stream)
    return form
