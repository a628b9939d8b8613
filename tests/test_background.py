"""background: single tasks, sync ones in a thread, and BackgroundTasks in order."""

from __future__ import annotations

import functools
import threading

import pytest

from starling.background import BackgroundTask, BackgroundTasks


def _off_main_thread() -> bool:
    return threading.current_thread() is not threading.main_thread()


@pytest.mark.anyio
async def test_async_task_runs_with_its_arguments() -> None:
    calls: list[tuple[str, int, int]] = []

    async def record(name: str, a: int, b: int = 0) -> None:
        calls.append((name, a, b))

    task = BackgroundTask(record, "async", 1, b=2)
    assert task.func is record
    assert task.args == ("async", 1)
    assert task.kwargs == {"b": 2}
    assert task.is_async is True
    await task()
    assert calls == [("async", 1, 2)]


@pytest.mark.anyio
async def test_sync_task_runs_in_a_thread() -> None:
    calls: list[tuple[int, bool]] = []

    def record(a: int) -> None:
        calls.append((a, _off_main_thread()))

    task = BackgroundTask(record, 7)
    assert task.is_async is False
    await task()
    assert calls == [(7, True)]


@pytest.mark.anyio
async def test_async_partials_and_callable_objects_are_awaited() -> None:
    calls: list[str] = []

    async def record(value: str) -> None:
        calls.append(value)

    class Recorder:
        async def __call__(self, value: str) -> None:
            calls.append(value)

    partial_task = BackgroundTask(functools.partial(record, "partial"))
    object_task = BackgroundTask(Recorder(), "object")
    assert partial_task.is_async and object_task.is_async
    await partial_task()
    await object_task()
    assert calls == ["partial", "object"]


@pytest.mark.anyio
async def test_tasks_run_in_order_added() -> None:
    calls: list[str] = []

    async def record_async(value: str) -> None:
        calls.append(value)

    def record_sync(value: str) -> None:
        calls.append(value)

    tasks = BackgroundTasks()
    assert tasks.tasks == []
    tasks.add_task(record_sync, "first")
    tasks.add_task(record_async, value="second")
    tasks.add_task(record_sync, "third")
    assert all(type(task) is BackgroundTask for task in tasks.tasks)
    await tasks()
    assert calls == ["first", "second", "third"]


@pytest.mark.anyio
async def test_tasks_given_at_construction_come_first() -> None:
    calls: list[int] = []

    async def record(value: int) -> None:
        calls.append(value)

    initial = (BackgroundTask(record, 1), BackgroundTask(record, 2))
    tasks = BackgroundTasks(tasks=initial)
    assert isinstance(tasks.tasks, list)
    tasks.add_task(record, 3)
    await tasks()
    assert calls == [1, 2, 3]


def test_tasks_list_is_a_copy() -> None:
    given = [BackgroundTask(print)]
    tasks = BackgroundTasks(given)
    tasks.add_task(print)
    assert len(given) == 1
    assert len(tasks.tasks) == 2


@pytest.mark.anyio
async def test_a_failing_task_stops_the_rest() -> None:
    calls: list[str] = []

    def fail() -> None:
        raise RuntimeError("task failed")

    async def record() -> None:
        calls.append("ran")  # pragma: no cover (must not run: the task before it fails)

    tasks = BackgroundTasks([BackgroundTask(fail), BackgroundTask(record)])
    with pytest.raises(RuntimeError, match="task failed"):
        await tasks()
    assert calls == []


@pytest.mark.anyio
async def test_empty_tasks_do_nothing() -> None:
    await BackgroundTasks()()
    await BackgroundTasks([])()


def test_background_tasks_is_a_background_task() -> None:
    assert issubclass(BackgroundTasks, BackgroundTask)
