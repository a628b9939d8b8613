"""Settings read from the environment and an optional ``.env`` file, with casting."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any, TypeVar, overload

T = TypeVar("T")

# Strings a ``cast=bool`` accepts, compared case-insensitively; anything else is an error.
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
_QUOTES = ("'", '"')


class undefined:
    """Marks "no default given": ``None`` is a legitimate default."""


class EnvironError(Exception):
    pass


class Environ(MutableMapping[str, str]):
    """``os.environ`` that refuses to change a key once the application has read it.

    A setting read at import time and changed later (often by a test) would leave the two
    halves of the program disagreeing; failing loudly at the change is easier to debug.
    """

    def __init__(self, environ: MutableMapping[str, str] = os.environ):
        self._environ = environ
        self._has_been_read: set[Any] = set()

    def __getitem__(self, key: Any) -> Any:
        # Recorded before the lookup: a key read while absent must not appear later either.
        self._has_been_read.add(key)
        return self._environ.__getitem__(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        if key in self._has_been_read:
            raise EnvironError(_already_read("set", key))
        self._environ.__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        if key in self._has_been_read:
            raise EnvironError(_already_read("delete", key))
        self._environ.__delitem__(key)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)


def _already_read(action: str, key: Any) -> str:
    return f"Attempting to {action} environ['{key}'], but the value has already been read."


environ = Environ()


class Config:
    def __init__(
        self,
        env_file: str | Path | None = None,
        environ: Mapping[str, str] = environ,
        env_prefix: str = "",
        encoding: str = "utf-8",
    ) -> None:
        self.environ = environ
        self.env_prefix = env_prefix
        self.file_values: dict[str, str] = {}
        if env_file is not None:
            if os.path.isfile(env_file):
                self.file_values = self._read_file(env_file, encoding)
            else:
                warnings.warn(f"Config file '{env_file}' not found.", stacklevel=2)

    @overload
    def __call__(self, key: str, *, default: None) -> str | None: ...

    @overload
    def __call__(self, key: str, cast: type[T], default: T = ...) -> T: ...

    @overload
    def __call__(self, key: str, cast: type[str] = ..., default: str = ...) -> str: ...

    @overload
    def __call__(self, key: str, cast: Callable[[Any], T] = ..., default: Any = ...) -> T: ...

    @overload
    def __call__(self, key: str, cast: type[str] = ..., default: T = ...) -> T | str: ...

    def __call__(
        self, key: str, cast: Callable[[Any], Any] | None = None, default: Any = undefined
    ) -> Any:
        return self.get(key, cast, default)

    def get(
        self, key: str, cast: Callable[[Any], Any] | None = None, default: Any = undefined
    ) -> Any:
        key = self.env_prefix + key
        # The environment wins over the file, so a deployment can override a checked-in .env.
        if key in self.environ:
            return self._perform_cast(key, self.environ[key], cast)
        if key in self.file_values:
            return self._perform_cast(key, self.file_values[key], cast)
        if default is not undefined:
            return self._perform_cast(key, default, cast)
        raise KeyError(f"Config '{key}' is missing, and has no default.")

    def _read_file(self, file_name: str | Path, encoding: str) -> dict[str, str]:
        with open(file_name, encoding=encoding) as file:
            return _parse_env_lines(file)

    def _perform_cast(self, key: str, value: Any, cast: Callable[[Any], Any] | None = None) -> Any:
        if cast is None or value is None:
            return value
        if cast is bool and isinstance(value, str):
            boolean = _BOOLEANS.get(value.lower())
            if boolean is None:
                raise ValueError(f"Config '{key}' has value '{value}'. Not a valid bool.")
            return boolean
        try:
            return cast(value)
        except (TypeError, ValueError):
            # A partial or a callable instance has no __name__; name its type instead.
            name = getattr(cast, "__name__", type(cast).__name__)
            # Implicit chaining, as in Starlette: the cast's own error stays as __context__.
            raise ValueError(f"Config '{key}' has value '{value}'. Not a valid {name}.")  # noqa: B904


def _parse_env_lines(lines: Iterable[str]) -> dict[str, str]:
    """``KEY=value`` lines; blank lines, ``#`` comments and lines without ``=`` are skipped.

    Only one pair of matching quotes around the whole value is removed: there are no
    escapes, no inline comments and no ``export`` keyword, as in Starlette.
    """
    values: dict[str, str] = {}
    for raw_line in lines:
        line = raw_line.strip()
        if line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        values[key.strip()] = _unquote(value.strip())
    return values


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in _QUOTES:
        return value[1:-1]
    return value
