"""Lifespan context helpers for Router: the no-op default and the deprecated generator forms."""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Generator
from types import TracebackType
from typing import Any

from starling._utils import warn_as_starlette


class _DefaultLifespan:
    """The lifespan of a Router given none: startup and shutdown do nothing."""

    def __init__(self, router: Any) -> None:
        self._router = router

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def __call__(self, app: object) -> _DefaultLifespan:
        return self


class _AsyncLiftContextManager:
    """A sync context manager used as an async one (for generator-function lifespans)."""

    def __init__(self, cm: contextlib.AbstractContextManager[Any]) -> None:
        self._cm = cm

    async def __aenter__(self) -> Any:
        return self._cm.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        return self._cm.__exit__(exc_type, exc_value, traceback)


def _wrap_gen_lifespan_context(
    lifespan_context: Callable[[Any], Generator[Any, Any, Any]],
) -> Callable[[Any], _AsyncLiftContextManager]:
    cmgr = contextlib.contextmanager(lifespan_context)

    @functools.wraps(cmgr)
    def wrapper(app: Any) -> _AsyncLiftContextManager:
        return _AsyncLiftContextManager(cmgr(app))

    return wrapper


def lifespan_context_for(router: Any, lifespan: Any) -> Any:
    """What ``Router.lifespan_context`` holds for the ``lifespan`` argument."""
    if lifespan is None:
        return _DefaultLifespan(router)
    if inspect.isasyncgenfunction(lifespan):
        warn_as_starlette(
            "async generator function lifespans are deprecated, "
            "use an @contextlib.asynccontextmanager function instead",
            "starlette.routing",
        )
        return contextlib.asynccontextmanager(lifespan)
    if inspect.isgeneratorfunction(lifespan):
        warn_as_starlette(
            "generator function lifespans are deprecated, "
            "use an @contextlib.asynccontextmanager function instead",
            "starlette.routing",
        )
        return _wrap_gen_lifespan_context(lifespan)
    return lifespan
