"""Users, credentials, the backend interface, and ``requires`` to guard endpoints by scope."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec
from urllib.parse import urlencode

from starling._utils import is_async_callable
from starling.exceptions import HTTPException
from starling.requests import HTTPConnection, Request
from starling.responses import RedirectResponse
from starling.websockets import WebSocket

_P = ParamSpec("_P")


def has_required_scope(conn: HTTPConnection, scopes: Sequence[str]) -> bool:
    """True when the connection's credentials hold every one of ``scopes``."""
    granted = conn.auth.scopes
    return all(scope in granted for scope in scopes)


def _connection_parameter(func: Callable[..., Any]) -> tuple[str, int]:
    """The name ("request" or "websocket") and position of the first such parameter."""
    for index, name in enumerate(inspect.signature(func).parameters):
        if name == "request" or name == "websocket":
            return name, index
    raise Exception(f'No "request" or "websocket" argument on function "{func}"')


def _argument(
    name: str, index: int, kind: type[Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """The connection passed to the endpoint, by keyword or by position, checked for its type."""
    value = kwargs.get(name, args[index] if index < len(args) else None)
    if not isinstance(value, kind):
        # Raised, not asserted, so that `python -O` keeps the check.
        raise AssertionError(
            f"Parameter with name '{name}' is required to be of type "
            f"'{kind.__name__}' not '{type(value).__name__}'"
        )
    return value


def requires(
    scopes: str | Sequence[str],
    status_code: int = 403,
    redirect: str | None = None,
) -> Callable[[Callable[_P, Any]], Callable[_P, Any]]:
    """Let the endpoint run only for connections whose credentials hold every one of ``scopes``.

    An HTTP request without them gets ``HTTPException(status_code)``, or with ``redirect`` a 303
    to that route, with the original URL in ``?next=``; a WebSocket is closed.
    """
    scopes_list = [scopes] if isinstance(scopes, str) else list(scopes)

    def decorator(func: Callable[_P, Any]) -> Callable[_P, Any]:
        name, index = _connection_parameter(func)
        if name == "websocket":
            return _websocket_wrapper(func, index, scopes_list)
        if is_async_callable(func):
            return _async_request_wrapper(func, index, scopes_list, status_code, redirect)
        return _sync_request_wrapper(func, index, scopes_list, status_code, redirect)

    return decorator


def _websocket_wrapper(func: Callable[_P, Any], index: int, scopes: list[str]) -> Callable[_P, Any]:
    @functools.wraps(func)
    async def websocket_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> None:
        websocket = _argument("websocket", index, WebSocket, args, kwargs)
        if not has_required_scope(websocket, scopes):
            await websocket.close()
        else:
            await func(*args, **kwargs)

    return websocket_wrapper


def _denied(request: Request, status_code: int, redirect: str | None) -> RedirectResponse:
    """The redirect for a request without the scopes; raises HTTPException with no redirect."""
    if redirect is None:
        raise HTTPException(status_code=status_code)
    next_query = urlencode({"next": str(request.url)})
    return RedirectResponse(url=f"{request.url_for(redirect)}?{next_query}", status_code=303)


def _async_request_wrapper(
    func: Callable[_P, Any], index: int, scopes: list[str], status_code: int, redirect: str | None
) -> Callable[_P, Any]:
    @functools.wraps(func)
    async def async_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
        request = _argument("request", index, Request, args, kwargs)
        if not has_required_scope(request, scopes):
            return _denied(request, status_code, redirect)
        return await func(*args, **kwargs)

    return async_wrapper


def _sync_request_wrapper(
    func: Callable[_P, Any], index: int, scopes: list[str], status_code: int, redirect: str | None
) -> Callable[_P, Any]:
    @functools.wraps(func)
    def sync_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
        request = _argument("request", index, Request, args, kwargs)
        if not has_required_scope(request, scopes):
            return _denied(request, status_code, redirect)
        return func(*args, **kwargs)

    return sync_wrapper


class AuthenticationError(Exception):
    """Raised by a backend for credentials that are present but wrong (answered with 400)."""


class AuthenticationBackend:
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        """The connection's credentials and user, or None when it carries none."""
        raise NotImplementedError()


class AuthCredentials:
    def __init__(self, scopes: Sequence[str] | None = None):
        self.scopes = [] if scopes is None else list(scopes)


class BaseUser:
    @property
    def is_authenticated(self) -> bool:
        raise NotImplementedError()

    @property
    def display_name(self) -> str:
        raise NotImplementedError()

    @property
    def identity(self) -> str:
        raise NotImplementedError()


class SimpleUser(BaseUser):
    def __init__(self, username: str) -> None:
        self.username = username

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.username

    @property
    def identity(self) -> str:
        return self.username


class UnauthenticatedUser(BaseUser):
    @property
    def is_authenticated(self) -> bool:
        return False

    @property
    def display_name(self) -> str:
        return ""

    @property
    def identity(self) -> str:
        return ""
