"""The value ``Request.form()`` returns: awaited for the form, or entered to close it after."""

from __future__ import annotations

from collections.abc import Awaitable, Generator
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar


class SupportsAsyncClose(Protocol):
    async def close(self) -> None: ...


SupportsAsyncCloseType = TypeVar("SupportsAsyncCloseType", bound=SupportsAsyncClose)
T = TypeVar("T", covariant=True)


class AwaitableOrContextManager(Protocol[T]):
    def __await__(self) -> Generator[Any, None, T]: ...

    async def __aenter__(self) -> T: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...


class AwaitableOrContextManagerWrapper(Generic[SupportsAsyncCloseType]):
    """``await request.form()`` or ``async with request.form() as form:`` (closed at exit)."""

    __slots__ = ("aw", "entered")

    def __init__(self, aw: Awaitable[SupportsAsyncCloseType]) -> None:
        self.aw = aw

    def __await__(self) -> Generator[Any, None, SupportsAsyncCloseType]:
        return self.aw.__await__()

    async def __aenter__(self) -> SupportsAsyncCloseType:
        self.entered = await self.aw
        return self.entered

    async def __aexit__(self, *args: Any) -> None:
        await self.entered.close()
