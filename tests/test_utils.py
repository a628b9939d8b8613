"""_utils: is_async_callable over the shapes endpoints come in; get_route_path under root_path."""

from __future__ import annotations

import asyncio
import functools
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest

from starling._utils import create_collapsing_task_group, get_route_path, is_async_callable


async def async_function() -> None: ...


def sync_function() -> None: ...


async def async_generator() -> AsyncIterator[int]:
    yield 1  # pragma: no cover (only inspected, never iterated)


class AsyncCallable:
    async def __call__(self) -> None: ...

    async def method(self) -> None: ...


class SyncCallable:
    def __call__(self) -> None: ...


class StaticAsyncCall:
    @staticmethod
    async def __call__() -> None: ...


class NotCallable:
    pass


def _instance_attribute_call() -> NotCallable:
    # __call__ set on the instance does not make it callable: Python looks it up on the type.
    obj = NotCallable()
    vars(obj)["__call__"] = async_function
    return obj


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (async_function, True),
        (sync_function, False),
        (async_generator, False),
        (AsyncCallable(), True),
        (AsyncCallable, True),  # Starlette's answer: the class's __call__ is inspected
        (AsyncCallable().method, True),
        (AsyncCallable.method, True),
        (SyncCallable(), False),
        (StaticAsyncCall(), True),
        (functools.partial(async_function), True),
        (functools.partial(functools.partial(async_function)), True),
        (functools.partial(sync_function), False),
        (functools.partial(AsyncCallable()), True),
        (functools.partial(SyncCallable()), False),
        (lambda: None, False),
        (asyncio.sleep, True),
        (_instance_attribute_call(), False),
        (None, False),
        (1, False),
    ],
)
def test_is_async_callable(obj: Any, expected: bool) -> None:
    assert is_async_callable(obj) is expected


@pytest.mark.parametrize(
    ("path", "root_path", "expected"),
    [
        ("/a/b", "", "/a/b"),
        ("/a/b", "/a", "/b"),
        ("/a", "/a", ""),
        ("/a/", "/a", "/"),
        ("/ab", "/a", "/ab"),  # not under "/a": only a segment boundary counts
        ("/b", "/a", "/b"),
        ("/x/a/b", "/a", "/x/a/b"),
        ("/a/b/c", "/a/b", "/c"),
        ("/a/bc", "/a/b", "/a/bc"),
        ("/A/b", "/a", "/A/b"),  # case-sensitive
        ("/a%2Fb", "/a", "/a%2Fb"),
        ("/a", "/a/b", "/a"),
        ("/a/b", "/a/", "/a/b"),
        ("/a//b", "/a/", "/b"),
        ("/", "/", ""),
        ("/", "/a", "/"),
        ("", "", ""),
        ("", "/a", ""),
    ],
)
def test_get_route_path(path: str, root_path: str, expected: str) -> None:
    assert get_route_path({"path": path, "root_path": root_path}) == expected


def test_get_route_path_without_root_path() -> None:
    assert get_route_path({"path": "/a/b"}) == "/a/b"


def test_get_route_path_ignores_other_keys() -> None:
    scope = {"path": "/a/b", "root_path": "/a", "route_root_path": "/a/b"}
    assert get_route_path(scope) == "/b"


def test_get_route_path_requires_path() -> None:
    with pytest.raises(KeyError):
        get_route_path({"root_path": "/a"})


async def _fail(error: BaseException) -> None:
    raise error


@pytest.mark.anyio
async def test_collapsing_task_group_unwraps_a_single_error() -> None:
    cause = KeyError("cause")
    error = ValueError("one")
    error.__cause__ = cause
    with pytest.raises(ValueError) as info:
        async with create_collapsing_task_group() as task_group:
            task_group.start_soon(_fail, error)
    assert info.value is error
    assert info.value.__cause__ is cause  # the error's own chain is kept
    assert isinstance(info.value.__context__, BaseExceptionGroup)


@pytest.mark.anyio
async def test_collapsing_task_group_keeps_several_errors_grouped() -> None:
    with pytest.raises(BaseExceptionGroup) as info:
        async with create_collapsing_task_group() as task_group:
            task_group.start_soon(_fail, ValueError("a"))
            task_group.start_soon(_fail, KeyError("b"))
    assert sorted(type(error).__name__ for error in info.value.exceptions) == [
        "KeyError",
        "ValueError",
    ]


@pytest.mark.anyio
async def test_collapsing_task_group_leaves_user_groups_intact() -> None:
    mine = ExceptionGroup("mine", [ValueError("x")])
    with pytest.raises(ExceptionGroup) as info:
        async with create_collapsing_task_group() as task_group:
            task_group.start_soon(_fail, mine)
    # (a backend may hand back a derived copy of the group, so compare its content)
    assert info.value.message == "mine"
    assert [type(error) for error in info.value.exceptions] == [ValueError]


@pytest.mark.anyio
async def test_collapsing_task_group_without_errors() -> None:
    done: list[int] = []

    async def work() -> None:
        done.append(1)

    async with create_collapsing_task_group() as task_group:
        task_group.start_soon(work)
    assert done == [1]


def test_warnings_are_attributed_as_starlette_attributes_them() -> None:
    from starling._utils import warn_as_starlette
    from starling.exceptions import StarletteDeprecationWarning

    # a filter written for a Starlette app, naming Starlette's module, matches
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "old thing", StarletteDeprecationWarning, r"starlette\.routing"
        )
        warn_as_starlette("old thing", "starlette.routing")
    with pytest.warns(StarletteDeprecationWarning, match="^old thing$") as record:
        warn_as_starlette("old thing", "starlette.routing")
    assert record[0].filename == __file__


def test_an_autospec_of_an_async_function_is_async() -> None:
    from unittest.mock import create_autospec

    async def async_func() -> None: ...  # pragma: no cover (only its signature is used)

    def sync_func() -> None: ...  # pragma: no cover (only its signature is used)

    assert is_async_callable(create_autospec(async_func))
    assert not is_async_callable(create_autospec(sync_func))
