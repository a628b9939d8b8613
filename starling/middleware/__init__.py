"""Middleware: a middleware class (or factory) with the arguments to build it around an app."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ParamSpec, Protocol

from starling.types import ASGIApp

P = ParamSpec("P")


class _MiddlewareFactory(Protocol[P]):
    def __call__(self, app: ASGIApp, /, *args: P.args, **kwargs: P.kwargs) -> ASGIApp: ...


class Middleware:
    def __init__(self, cls: _MiddlewareFactory[P], *args: P.args, **kwargs: P.kwargs) -> None:
        self.cls = cls
        self.args = args
        self.kwargs = kwargs

    def __iter__(self) -> Iterator[Any]:
        as_tuple = (self.cls, self.args, self.kwargs)
        return iter(as_tuple)

    def __repr__(self) -> str:
        class_name = self.__class__.__name__
        name = getattr(self.cls, "__name__", "")
        options = [f"{value!r}" for value in self.args]
        options += [f"{key}={value!r}" for key, value in self.kwargs.items()]
        return f"{class_name}({', '.join([name, *options])})"
