"""Signed-cookie sessions in Starlette's cookie format, so sessions survive a move from Starlette.

The cookie value is ``TimestampSigner(secret).sign(base64(json(session)))`` with itsdangerous'
defaults. A cookie that is missing, tampered with, expired or undecodable reads as an empty
session, never an error. Only a session that was changed is written back; one emptied after it
was loaded from a valid cookie deletes the cookie. ``Vary: Cookie`` goes on every response whose
session was looked at.
"""

from __future__ import annotations

import json
import logging
from base64 import b64decode, b64encode
from typing import TYPE_CHECKING, Any, Literal

from starling.datastructures import MutableHeaders, Secret
from starling.requests import HTTPConnection
from starling.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:  # pragma: no cover (imports for the type checker only)
    import itsdangerous

# Browsers drop, without a word, a cookie whose name and value exceed 4096 bytes, and keep the
# previous one: a session update that silently does not happen. See _session_cookie.
MAX_COOKIE_SIZE = 4096

_DELETED_VALUE = "null; path={path}; expires=Thu, 01 Jan 1970 00:00:00 GMT; {flags}"

logger = logging.getLogger("starling.middleware.sessions")


def _import_itsdangerous() -> Any:
    try:
        import itsdangerous
    except ImportError as exc:
        raise ImportError(
            "SessionMiddleware signs its cookies with itsdangerous, which is not installed. "
            "Install it with `pip install itsdangerous` (or `pip install starling[full]`)."
        ) from exc
    return itsdangerous


class Session(dict[str, Any]):
    """The session dict: every mutating method records that it must be written back."""

    accessed: bool = False
    modified: bool = False

    def mark_accessed(self) -> None:
        self.accessed = True

    def mark_modified(self) -> None:
        self.accessed = True
        self.modified = True

    def __setitem__(self, key: str, value: Any) -> None:
        self.mark_modified()
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.mark_modified()
        super().__delitem__(key)

    def clear(self) -> None:
        self.mark_modified()
        super().clear()

    def pop(self, key: str, *args: Any) -> Any:
        # A missing key changes nothing, whether it raises or returns the default.
        if key in self:
            self.mark_modified()
        return super().pop(key, *args)

    def popitem(self) -> tuple[str, Any]:
        item = super().popitem()  # raises KeyError on an empty session, changing nothing
        self.mark_modified()
        return item

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self.mark_modified()
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.mark_modified()
        super().update(*args, **kwargs)

    def __ior__(self, other: Any) -> Session:  # type: ignore[override,misc]
        self.mark_modified()
        return super().__ior__(other)


class SessionMiddleware:
    """Keep ``scope["session"]`` in a signed cookie."""

    def __init__(
        self,
        app: ASGIApp,
        secret_key: str | Secret,
        session_cookie: str = "session",
        max_age: int | None = 14 * 24 * 60 * 60,  # 14 days, in seconds
        path: str = "/",
        same_site: Literal["lax", "strict", "none"] = "lax",
        https_only: bool = False,
        domain: str | None = None,
        partitioned: bool = False,
    ) -> None:
        signing = _import_itsdangerous()
        self.app = app
        self.signer: itsdangerous.TimestampSigner = signing.TimestampSigner(str(secret_key))
        self._bad_signature: type[Exception] = signing.BadSignature
        self.session_cookie = session_cookie
        self.max_age = max_age
        self.path = path
        flags = f"httponly; samesite={same_site}"
        if https_only:  # the cookie then only travels over HTTPS
            flags += "; secure"
        if domain is not None:
            flags += f"; domain={domain}"
        if partitioned:
            flags += "; partitioned"
        self.security_flags = flags
        # Attributes of the Set-Cookie line, after the value: built once.
        max_age_attr = "" if max_age is None else f"Max-Age={max_age}; "
        self._set_attrs = f"; path={path}; {max_age_attr}{flags}"
        deleted = _DELETED_VALUE.format(path=path, flags=flags)
        self._deleted_cookie = f"{session_cookie}={deleted}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type != "http" and scope_type != "websocket":
            await self.app(scope, receive, send)
            return
        session, loaded = self._load(HTTPConnection(scope).cookies.get(self.session_cookie))
        scope["session"] = session
        if scope_type == "websocket":  # no response headers to carry a cookie
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start" and session.accessed:
                self._add_headers(message, session, loaded)
            await send(message)

        await self.app(scope, receive, send_wrapper)

    def _load(self, cookie: str | None) -> tuple[Session, bool]:
        """The session in ``cookie``, and whether it held a valid one."""
        if not cookie:
            return Session(), False
        try:
            data = self.signer.unsign(cookie.encode("utf-8"), max_age=self.max_age)
            value = json.loads(b64decode(data))
        except self._bad_signature:  # tampered, expired, or not ours
            return Session(), False
        except ValueError:  # signed with our key but not base64 JSON: read as empty
            return Session(), False
        if not isinstance(value, dict):
            return Session(), False
        return Session(value), True

    def _add_headers(self, message: Message, session: Session, loaded: bool) -> None:
        headers = MutableHeaders(scope=message)
        headers.add_vary_header("Cookie")
        if not session.modified:
            return
        cookie = self._session_cookie(session) if session else None
        if cookie is not None:
            headers.append("Set-Cookie", cookie)
        elif loaded:  # the browser holds a session we no longer want: expire it
            headers.append("Set-Cookie", self._deleted_cookie)

    def _session_cookie(self, session: Session) -> str | None:
        """The Set-Cookie value for ``session``; None when it is too large for a browser.

        Starlette sends an oversized cookie anyway; the browser then ignores it and keeps the
        old session (a logout or a permission downgrade silently undone). We log an error and
        expire the cookie instead, so the client never keeps stale session data.
        """
        data = b64encode(json.dumps(session).encode("utf-8"))
        value = self.signer.sign(data).decode("utf-8")
        if len(self.session_cookie) + 1 + len(value) > MAX_COOKIE_SIZE:
            logger.error(
                "Session cookie %r not sent: %d bytes signed, over the %d that browsers keep. "
                "Store less in the session (e.g. an id, with the data server-side).",
                self.session_cookie,
                len(self.session_cookie) + 1 + len(value),
                MAX_COOKIE_SIZE,
            )
            return None
        return f"{self.session_cookie}={value}{self._set_attrs}"
