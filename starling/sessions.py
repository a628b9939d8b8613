"""Sessions kept server-side (in memory or in Redis) or sealed in an encrypted cookie.

``SessionStoreMiddleware(app, store)`` puts the session in ``scope["session"]``, the same dict
API as Starlette's ``SessionMiddleware`` (which stays as it is). Stores:

- ``MemoryStore(max_sessions=...)``: one process, bounded; the cookie holds a random id;
- ``RedisStore(url_or_client)``: every worker shares it; the cookie holds a random id;
- ``EncryptedCookieStore(keys)``: no server state; the session is AES-256-GCM sealed in the
  cookie, encrypted with the first key and opened with any (key rotation).

Round trips to the store: none without a session cookie; one to read a session (at request
start); one more to write it back, only when it changed (or always, with ``rolling=True``).
An emptied session is deleted from the store and its cookie expired. ``regenerate(request)``
(at login) moves the session to a new id and deletes the old one (session fixation).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from starling import _sealed_cookie
from starling._backends.errors import StoreUnavailable as StoreUnavailable
from starling._backends.memory import MemoryBackend
from starling._backends.redis import DEFAULT_MAX_CONNECTIONS as _MAX_CONNECTIONS
from starling._backends.redis import DEFAULT_TIMEOUT as _TIMEOUT
from starling._backends.redis import RedisBackend
from starling._cookie_header import build_set_cookie
from starling.datastructures import MutableHeaders, Secret
from starling.middleware.sessions import Session
from starling.requests import HTTPConnection
from starling.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:  # pragma: no cover (imports for the type checker only)
    from redis.asyncio import Redis

    from starling.requests import Request

# Browsers drop, without a word, a cookie whose name and value exceed 4096 bytes.
MAX_COOKIE_SIZE = 4096
_FOURTEEN_DAYS = 14 * 24 * 60 * 60
_STATE_KEY = "starling.sessions"
# A session id is 32 random bytes, URL-safe base64 without padding: 43 characters.
_is_session_id = re.compile(r"[A-Za-z0-9_-]{43}").fullmatch

logger = logging.getLogger("starling.sessions")


class SessionCookieTooLarge(ValueError):
    """The session does not fit in a cookie a browser keeps (4,096 bytes)."""


class SessionStore:
    """What ``SessionStoreMiddleware`` needs from a store; subclass it for a store of your own.

    A *token* is the cookie's value: an id for server-side stores, the sealed session for
    ``EncryptedCookieStore``.
    """

    async def load(self, token: str) -> dict[str, Any] | None:
        """The session behind ``token``, or None when there is none (unknown, forged, expired)."""
        raise NotImplementedError

    async def save(self, token: str | None, data: dict[str, Any], max_age: int) -> str:
        """Keep ``data`` for ``max_age`` seconds under ``token`` (a new one when None, or when
        the store issues a new token on every save); return the cookie's new value."""
        raise NotImplementedError

    async def delete(self, token: str) -> None:
        """Forget the session behind ``token`` (nothing to do for a cookie-only store)."""

    def check_async_library(self) -> None:
        """Raise a clear error when the running async library cannot serve this store."""

    async def aclose(self) -> None:
        """Release connections (called at lifespan shutdown)."""


class _ServerSideStore(SessionStore):
    """Sessions kept in a backend under a random id; the cookie holds only the id."""

    def __init__(self, backend: MemoryBackend | RedisBackend, prefix: str) -> None:
        self.backend = backend
        self.prefix = prefix

    def _key(self, session_id: str) -> str:
        # APPSEC: the key is a hash of the id, so whoever can read the store (a replica, a
        # dump, KEYS) sees no cookie value that would open a session. Ids are checked against
        # their exact shape first: a forged or oversized cookie never reaches the store.
        return self.prefix + hashlib.sha256(session_id.encode("ascii")).hexdigest()

    async def load(self, token: str) -> dict[str, Any] | None:
        if not _is_session_id(token):
            return None
        raw = await self.backend.get(self._key(token))
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError:  # not written by us (a shared prefix): read as empty
            return None
        return data if isinstance(data, dict) else None

    async def save(self, token: str | None, data: dict[str, Any], max_age: int) -> str:
        if token is None:
            token = secrets.token_urlsafe(32)
        await self.backend.set(self._key(token), _dumps(data), max_age)
        return token

    async def delete(self, token: str) -> None:
        if _is_session_id(token):
            await self.backend.delete(self._key(token))

    def check_async_library(self) -> None:
        self.backend.check_async_library()

    async def aclose(self) -> None:
        await self.backend.aclose()


class MemoryStore(_ServerSideStore):
    """Sessions in this process's memory: at most ``max_sessions``, the least recently used
    dropped first, each expiring ``max_age`` seconds after it was last written. One process
    only: with several workers, use ``RedisStore``."""

    def __init__(self, max_sessions: int = 10_000) -> None:
        super().__init__(MemoryBackend(max_sessions), prefix="")


class RedisStore(_ServerSideStore):
    """Sessions in Redis, shared by every worker, each key with the session's TTL.

    ``url_or_client``: ``"redis://host:6379/0"`` (a client is made on first use and closed at
    lifespan shutdown), or a ``redis.asyncio.Redis`` of your own (shared, never closed here).
    Every operation gives up after ``timeout`` seconds with ``StoreUnavailable``. asyncio only.
    """

    def __init__(
        self,
        url_or_client: str | Redis,
        prefix: str = "starling:session:",
        *,
        timeout: float = _TIMEOUT,
        max_connections: int = _MAX_CONNECTIONS,
    ) -> None:
        backend = RedisBackend(
            url_or_client, owner="RedisStore", timeout=timeout, max_connections=max_connections
        )
        super().__init__(backend, prefix)


class EncryptedCookieStore(SessionStore):
    """The whole session in the cookie, AES-256-GCM encrypted and authenticated: nothing kept
    server-side, any number of workers, no store to reach.

    ``keys``: one key or several, each 32 random bytes (or their base64 text; see
    ``generate_key``). The first seals; all open, so a key is rotated by putting a new one
    first and dropping the old one once ``max_age`` has passed. A cookie cannot be revoked
    before it expires: ``regenerate`` issues a new one, but a copy of the old one stays valid
    until its expiry, which is sealed inside it.
    """

    def __init__(self, keys: str | bytes | Secret | Sequence[str | bytes | Secret]) -> None:
        try:
            from cryptography.exceptions import InvalidTag
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError as exc:  # pragma: no cover (the crypto extra is installed for tests)
            raise ImportError(
                "EncryptedCookieStore needs the cryptography package, which is not installed. "
                "Install it with `pip install starling[crypto]`."
            ) from exc
        given = list(keys) if isinstance(keys, list | tuple) else [keys]
        if not given:
            raise ValueError("EncryptedCookieStore needs at least one key")
        decoded = [_sealed_cookie.decode_key(str(k) if isinstance(k, Secret) else k) for k in given]
        self._ciphers = [AESGCM(key) for key in decoded]
        self._invalid_tag: type[Exception] = InvalidTag

    @staticmethod
    def generate_key() -> str:
        """A new random key, as URL-safe base64 text (keep it secret: in the environment)."""
        return secrets.token_urlsafe(_sealed_cookie.KEY_BYTES)

    async def load(self, token: str) -> dict[str, Any] | None:
        return _sealed_cookie.unseal(self._ciphers, self._invalid_tag, token, time.time())

    async def save(self, token: str | None, data: dict[str, Any], max_age: int) -> str:
        _dumps(data)  # the same clear error as the other stores for values JSON cannot hold
        return _sealed_cookie.seal(self._ciphers[0], data, int(time.time()) + max_age)


def _dumps(data: dict[str, Any]) -> bytes:
    try:
        return json.dumps(data, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"Session values must be JSON-serializable (str, int, float, bool, None, lists and "
            f"dicts of them): {exc}"
        ) from exc


class _Unavailable(Session):
    """The session of a request whose store did not answer: the app runs, and only touching
    the session fails (with the store's error; the middleware answers 503)."""

    def __init__(self, error: StoreUnavailable) -> None:
        super().__init__()
        self.error = error

    def mark_accessed(self) -> None:
        raise StoreUnavailable(f"The session could not be loaded: {self.error}")

    def mark_modified(self) -> None:
        self.mark_accessed()


class _State:
    """What the middleware knows about one request's session, in the scope for regenerate."""

    __slots__ = ("token", "regenerate")

    def __init__(self, token: str | None) -> None:
        self.token = token  # the cookie's value when it opened a session, else None
        self.regenerate = False


def regenerate(request: Request) -> None:
    """Move the session to a new id when the response is sent, deleting the old one.

    Call it when the user's privileges change (login, logout, sudo): a session id planted
    before login (session fixation) then opens nothing after it.
    """
    state = request.scope.get(_STATE_KEY)
    if not isinstance(state, _State):
        raise RuntimeError("regenerate() needs SessionStoreMiddleware installed")
    state.regenerate = True
    request.session  # noqa: B018 (marks the session accessed, so Vary: Cookie is sent)
    request.scope["session"].mark_modified()


class SessionStoreMiddleware:
    """Keep ``scope["session"]`` in ``store``, found again through a cookie."""

    def __init__(
        self,
        app: ASGIApp,
        store: SessionStore,
        *,
        cookie_name: str = "session",
        max_age: int = _FOURTEEN_DAYS,
        rolling: bool = False,
        path: str = "/",
        domain: str | None = None,
        same_site: Literal["lax", "strict", "none"] = "lax",
        https_only: bool = False,
    ) -> None:
        if not isinstance(store, SessionStore):
            raise TypeError(
                "store must be a session store (MemoryStore, RedisStore, EncryptedCookieStore "
                f"or a SessionStore subclass), not {type(store).__name__}"
            )
        if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 1:
            raise ValueError(f"max_age must be a positive number of seconds, got {max_age!r}")
        store.check_async_library()
        self.app = app
        self.store = store
        self.cookie_name = cookie_name
        self.max_age = max_age
        self.rolling = rolling
        # Built once (and checked: name, path, domain, same_site); the value is spliced in.
        template = build_set_cookie(
            cookie_name,
            "v",
            max_age=max_age,
            path=path,
            domain=domain,
            secure=https_only,
            httponly=True,
            samesite=same_site,
        )
        self._attributes = template[len(cookie_name) + 4 :]  # after "name=v; "
        self._deleted = build_set_cookie(
            cookie_name,
            "",
            max_age=0,
            expires="Thu, 01 Jan 1970 00:00:00 GMT",
            path=path,
            domain=domain,
            secure=https_only,
            httponly=True,
            samesite=same_site,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope_type != "http" and scope_type != "websocket":
            await self.app(scope, receive, send)
            return
        token = HTTPConnection(scope).cookies.get(self.cookie_name)
        session, state = await self._load(token)
        scope["session"] = session
        scope[_STATE_KEY] = state
        if scope_type == "websocket":  # no response headers to carry a cookie
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                if session.accessed or state.regenerate:
                    await self._write_back(message, session, state)
                started = True  # after the write-back: a store failure can still be a 503
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except StoreUnavailable as exc:
            if started:
                raise
            logger.error("Session store unavailable: %s", exc)
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", b"19"),
                        (b"retry-after", b"1"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b"Service Unavailable"})

    async def _load(self, token: str | None) -> tuple[Session, _State]:
        if not token:
            return Session(), _State(None)
        try:
            data = await self.store.load(token)
        except StoreUnavailable as exc:
            logger.warning("Session not loaded (the app runs on without it): %s", exc)
            return _Unavailable(exc), _State(None)
        if data is None:
            # APPSEC: a token that opens nothing (forged, expired, another app's) is never
            # adopted: a session written on this response gets a new id.
            return Session(), _State(None)
        return Session(data), _State(token)

    async def _write_back(self, message: Message, session: Session, state: _State) -> None:
        headers = MutableHeaders(scope=message)
        headers.add_vary_header("Cookie")
        token = state.token
        if state.regenerate and token is not None:
            await self.store.delete(token)
            token = state.token = None
        elif not (session.modified or (self.rolling and session)):
            return
        if session:
            token = await self.store.save(token, dict(session), self.max_age)
            size = len(self.cookie_name) + 1 + len(token)
            if size > MAX_COOKIE_SIZE:
                raise SessionCookieTooLarge(
                    f"The session cookie {self.cookie_name!r} would be {size} bytes, over the "
                    f"{MAX_COOKIE_SIZE} a browser keeps (it would silently keep the old one). "
                    "Keep less in the session, or keep it server-side with RedisStore."
                )
            headers.append("set-cookie", f"{self.cookie_name}={token}; {self._attributes}")
        elif token is not None:
            await self.store.delete(token)
            headers.append("set-cookie", self._deleted)
        elif state.regenerate:
            headers.append("set-cookie", self._deleted)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the store can run here at startup; close its connections at shutdown."""

        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.store.aclose()
            await send(message)

        try:
            self.store.check_async_library()
        except RuntimeError as exc:  # the server reports it and does not start
            await receive()  # lifespan.startup
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await self.app(scope, receive, lifespan_send)
