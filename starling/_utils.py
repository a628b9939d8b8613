"""Small helpers shared by several modules. FastAPI imports get_route_path and is_async_callable."""

from __future__ import annotations

import asyncio.coroutines
import functools
import inspect
import sys
import warnings
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc

# Starlette keeps these here; FastAPI and Starlette's own tests import them from this module.
from starling._awaitable import (  # noqa: F401
    AwaitableOrContextManager,
    AwaitableOrContextManagerWrapper,
)
from starling.exceptions import StarletteDeprecationWarning
from starling.types import Scope


def is_async_callable(obj: Any) -> Any:
    """True when calling ``obj`` returns an awaitable: coroutine functions, partials of them,
    and instances whose ``__call__`` is one."""
    while isinstance(obj, functools.partial):
        obj = obj.func
    if _is_coroutine_function(obj):
        return True
    return callable(obj) and _is_coroutine_function(obj.__call__)


# On Python 3.11, unittest.mock marks an autospec of an async function with asyncio's private
# marker rather than in a way inspect recognises; Starlette counts such mocks as async.
_ASYNCIO_COROUTINE_MARK = getattr(asyncio.coroutines, "_is_coroutine", object())


def _is_coroutine_function(obj: Any) -> bool:
    return inspect.iscoroutinefunction(obj) or (
        getattr(obj, "_is_coroutine", None) is _ASYNCIO_COROUTINE_MARK
    )


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


@asynccontextmanager
async def create_collapsing_task_group() -> AsyncGenerator[anyio.abc.TaskGroup, None]:
    """A task group whose group of one exception is raised as that exception.

    Only the group the task group itself made is unwrapped: an exception group raised by user
    code arrives intact (it is the one exception inside the task group's own group).
    """
    try:
        async with anyio.create_task_group() as task_group:
            yield task_group
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0]  # noqa: B904 (chaining "from" would replace its own cause)
        raise


def warn_as_starlette(message: str, module: str) -> None:
    """A StarletteDeprecationWarning attributed to Starlette's ``module`` ("starlette.routing"),
    as Starlette attributes it, so warning filters written for Starlette apps
    (``ignore:...:StarletteDeprecationWarning:starlette.routing``) keep matching."""
    frame = sys._getframe(1)
    warnings.warn_explicit(
        message,
        StarletteDeprecationWarning,
        frame.f_code.co_filename,
        frame.f_lineno,
        module=module,
        registry=frame.f_globals.setdefault("__warningregistry__", {}),
        module_globals=frame.f_globals,
    )
