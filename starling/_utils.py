"""Small helpers shared by several modules. FastAPI imports get_route_path and is_async_callable."""

from __future__ import annotations

import functools
import inspect
from typing import Any

from starling.types import Scope


def is_async_callable(obj: Any) -> Any:
    """True when calling ``obj`` returns an awaitable: coroutine functions, partials of them,
    and instances whose ``__call__`` is one."""
    while isinstance(obj, functools.partial):
        obj = obj.func
    if inspect.iscoroutinefunction(obj):
        return True
    return callable(obj) and inspect.iscoroutinefunction(obj.__call__)


def get_route_path(scope: Scope) -> str:
    """The part of ``scope["path"]`` below ``root_path``: what routing matches against."""
    path: str = scope["path"]
    root_path = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path):
        return path
    if len(path) == len(root_path):
        return ""
    # "/ab" is not under root "/a": only a segment boundary counts
    if path[len(root_path)] == "/":
        return path[len(root_path) :]
    return path
