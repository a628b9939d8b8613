"""Path parameter convertors: the regex a parameter matches, and its value <-> string mapping."""

from __future__ import annotations

import math
import uuid
from typing import Any, ClassVar, Generic, TypeVar

T = TypeVar("T")


class Convertor(Generic[T]):
    regex: ClassVar[str] = ""

    def convert(self, value: str) -> T:
        raise NotImplementedError()

    def to_string(self, value: T) -> str:
        raise NotImplementedError()


class StringConvertor(Convertor[str]):
    regex = "[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        value = str(value)
        # APPSEC: raised, not asserted: `python -O` strips asserts, and a "/" or an empty
        # value would then change the built path's segments. Starlette's type and messages.
        if "/" in value:
            raise AssertionError("May not contain path separators")
        if not value:
            raise AssertionError("Must not be empty")
        return value


class PathConvertor(Convertor[str]):
    regex = ".*"

    def convert(self, value: str) -> str:
        return str(value)

    def to_string(self, value: str) -> str:
        return str(value)


class _NoSuchValue(ValueError):
    """A path segment that fits a convertor's regex but names no value of its type.

    Route matching reads it as "this route does not match" and goes on to the next route;
    any other error from ``convert`` propagates, as in Starlette.
    """


class IntegerConvertor(Convertor[int]):
    regex = "[0-9]+"

    def convert(self, value: str) -> int:
        try:
            return int(value)
        except ValueError:
            # More digits than sys.get_int_max_str_digits(): Starlette lets the ValueError
            # become a 500. No resource has such an id: the route does not match (a 404).
            raise _NoSuchValue(f"{len(value)} digits is beyond any integer id") from None

    def to_string(self, value: int) -> str:
        value = int(value)
        assert value >= 0, "Negative integers are not supported"
        return str(value)


class FloatConvertor(Convertor[float]):
    regex = r"[0-9]+(\.[0-9]+)?"

    def convert(self, value: str) -> float:
        return float(value)

    def to_string(self, value: float) -> str:
        value = float(value)
        assert not math.isnan(value), "NaN values are not supported"
        assert not math.isinf(value), "Infinite values are not supported"
        assert value >= 0.0, "Negative floats are not supported"
        return (f"{value:0.20f}").rstrip("0").rstrip(".")


class UUIDConvertor(Convertor[uuid.UUID]):
    regex = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"

    def convert(self, value: str) -> uuid.UUID:
        return uuid.UUID(value)

    def to_string(self, value: uuid.UUID) -> str:
        return str(value)


CONVERTOR_TYPES: dict[str, Convertor[Any]] = {
    "str": StringConvertor(),
    "path": PathConvertor(),
    "int": IntegerConvertor(),
    "float": FloatConvertor(),
    "uuid": UUIDConvertor(),
}


def register_url_convertor(key: str, convertor: Convertor[Any]) -> None:
    """Make ``{name:key}`` usable in route paths, converting with ``convertor``."""
    CONVERTOR_TYPES[key] = convertor
