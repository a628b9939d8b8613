"""concurrency: thread offloading, context propagation, the deprecated first-complete helper."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest

from starling.concurrency import iterate_in_threadpool, run_in_threadpool, run_until_first_complete
from starling.exceptions import StarletteDeprecationWarning

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")

DEPRECATED = r"^run_until_first_complete is deprecated and will be removed in a future version\.$"


def _describe(a: int, b: int = 0, *, c: int = 0) -> tuple[int, int, int, bool]:
    return a, b, c, threading.current_thread() is not threading.main_thread()


@pytest.mark.anyio
async def test_run_in_threadpool_passes_args_and_kwargs() -> None:
    assert await run_in_threadpool(_describe, 1, 2, c=3) == (1, 2, 3, True)
    assert await run_in_threadpool(_describe, a=4) == (4, 0, 0, True)


@pytest.mark.anyio
async def test_run_in_threadpool_propagates_exceptions() -> None:
    def fail() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        await run_in_threadpool(fail)


@pytest.mark.anyio
async def test_run_in_threadpool_copies_context_into_the_thread() -> None:
    def read_then_write() -> str:
        seen = request_id.get()
        request_id.set("set-in-thread")
        return seen

    token = request_id.set("outer")
    try:
        assert await run_in_threadpool(read_then_write) == "outer"
        # The thread ran in a copy: its write does not leak back, as in Starlette (anyio).
        assert request_id.get() == "outer"
    finally:
        request_id.reset(token)


def _thread_report() -> Iterator[bool | str]:
    yield threading.current_thread() is not threading.main_thread()
    yield request_id.get()


@pytest.mark.anyio
async def test_iterate_in_threadpool_steps_in_a_worker_thread() -> None:
    token = request_id.set("outer")
    try:
        assert [item async for item in iterate_in_threadpool(_thread_report())] == [True, "outer"]
    finally:
        request_id.reset(token)


@pytest.mark.anyio
async def test_iterate_in_threadpool_accepts_iterables() -> None:
    assert [item async for item in iterate_in_threadpool([1, 2, 3])] == [1, 2, 3]
    empty: list[int] = []
    assert [item async for item in iterate_in_threadpool(empty)] == []


@pytest.mark.anyio
async def test_iterate_in_threadpool_stop_iteration_with_value_ends_cleanly() -> None:
    class StopsWithValue:
        def __iter__(self) -> StopsWithValue:
            return self

        def __next__(self) -> int:
            raise StopIteration("ignored")

    assert [item async for item in iterate_in_threadpool(StopsWithValue())] == []


@pytest.mark.anyio
async def test_iterate_in_threadpool_propagates_iterator_errors() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise RuntimeError("iterator failed")

    seen = []
    with pytest.raises(RuntimeError, match="iterator failed"):
        async for item in iterate_in_threadpool(broken()):
            seen.append(item)
    assert seen == [1]


@pytest.mark.anyio
async def test_iterate_in_threadpool_rejects_non_iterables_when_iterated() -> None:
    iterator: AsyncIterator[int] = iterate_in_threadpool(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not iterable"):
        await iterator.__anext__()


@pytest.mark.anyio
async def test_run_until_first_complete_cancels_the_rest() -> None:
    log: list[str] = []

    async def fast(tag: str) -> None:
        log.append(f"done {tag}")

    async def slow(tag: str) -> None:
        try:
            await anyio.sleep(10)
        finally:
            log.append(f"stopped {tag}")

    with pytest.warns(StarletteDeprecationWarning, match=DEPRECATED), anyio.fail_after(5):
        await run_until_first_complete((slow, {"tag": "a"}), (fast, {"tag": "b"}))
    assert log == ["done b", "stopped a"]


@pytest.mark.anyio
async def test_run_until_first_complete_without_tasks() -> None:
    with pytest.warns(StarletteDeprecationWarning, match=DEPRECATED):
        await run_until_first_complete()


@pytest.mark.anyio
async def test_run_until_first_complete_propagates_errors_in_a_group() -> None:
    async def fail() -> None:
        raise ValueError("task failed")

    with (
        pytest.warns(StarletteDeprecationWarning, match=DEPRECATED),
        pytest.raises(ExceptionGroup) as info,
    ):
        await run_until_first_complete((fail, {}))
    assert [str(exc) for exc in info.value.exceptions] == ["task failed"]
