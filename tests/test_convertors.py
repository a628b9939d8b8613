"""convertors: each built-in convertor's regex, conversion both ways and its errors, and
registering a custom convertor."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from starling import convertors
from starling.convertors import (
    CONVERTOR_TYPES,
    Convertor,
    FloatConvertor,
    IntegerConvertor,
    PathConvertor,
    StringConvertor,
    UUIDConvertor,
    register_url_convertor,
)


@pytest.fixture
def restore_convertor_types() -> Iterator[None]:
    saved = dict(CONVERTOR_TYPES)
    yield
    CONVERTOR_TYPES.clear()
    CONVERTOR_TYPES.update(saved)


def test_convertor_types() -> None:
    assert {key: type(value) for key, value in CONVERTOR_TYPES.items()} == {
        "str": StringConvertor,
        "path": PathConvertor,
        "int": IntegerConvertor,
        "float": FloatConvertor,
        "uuid": UUIDConvertor,
    }
    assert {key: value.regex for key, value in CONVERTOR_TYPES.items()} == {
        "str": "[^/]+",
        "path": ".*",
        "int": "[0-9]+",
        "float": r"[0-9]+(\.[0-9]+)?",
        "uuid": "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}",
    }


def test_base_convertor() -> None:
    assert Convertor.regex == ""
    with pytest.raises(NotImplementedError):
        Convertor[Any]().convert("x")
    with pytest.raises(NotImplementedError):
        Convertor[Any]().to_string("x")


def test_string_convertor() -> None:
    convertor = StringConvertor()
    assert convertor.convert("a") == "a"
    assert convertor.to_string("a") == "a"
    assert convertor.to_string(5) == "5"  # type: ignore[arg-type]
    with pytest.raises(AssertionError, match="May not contain path separators"):
        convertor.to_string("a/b")
    with pytest.raises(AssertionError, match="Must not be empty"):
        convertor.to_string("")


def test_path_convertor() -> None:
    convertor = PathConvertor()
    assert convertor.convert("a/b") == "a/b"
    assert convertor.to_string("a/b") == "a/b"
    assert convertor.to_string("") == ""
    assert convertor.to_string(5) == "5"  # type: ignore[arg-type]


def test_integer_convertor() -> None:
    convertor = IntegerConvertor()
    assert convertor.convert("12") == 12
    assert convertor.convert("007") == 7
    assert convertor.to_string(12) == "12"
    assert convertor.to_string(0) == "0"
    assert convertor.to_string(-0) == "0"
    assert convertor.to_string("5") == "5"  # type: ignore[arg-type]
    assert convertor.to_string(5.7) == "5"  # type: ignore[arg-type]
    assert convertor.to_string(True) == "1"
    with pytest.raises(AssertionError, match="Negative integers are not supported"):
        convertor.to_string(-1)
    with pytest.raises(ValueError, match="invalid literal"):
        convertor.to_string("x")  # type: ignore[arg-type]


@pytest.mark.parametrize("digits", ["1" * 5000, "0" * 5000 + "1"])
def test_integer_convertor_too_many_digits_is_not_found(digits: str) -> None:
    # Starlette lets int()'s digit limit escape as a ValueError, a 500 for any client.
    assert re.fullmatch(IntegerConvertor.regex, digits)
    with pytest.raises(ValueError, match=r"^\d+ digits is beyond any integer id$"):
        IntegerConvertor().convert(digits)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.5, "1.5"),
        (1.0, "1"),
        (3, "3"),
        (0.0, "0"),
        (-0.0, "-0"),
        (0.1, "0.10000000000000000555"),
        (1 / 3, "0.33333333333333331483"),
        (1e20, "100000000000000000000"),
        (1e-20, "0.00000000000000000001"),
        (1e-5, "0.00001"),
        ("1.5", "1.5"),
    ],
)
def test_float_convertor_to_string(value: Any, expected: str) -> None:
    assert FloatConvertor().to_string(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1.0, "Negative floats are not supported"),
        (math.nan, "NaN values are not supported"),
        (-math.nan, "NaN values are not supported"),
        (math.inf, "Infinite values are not supported"),
        (-math.inf, "Infinite values are not supported"),
    ],
)
def test_float_convertor_rejects(value: float, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        FloatConvertor().to_string(value)


def test_float_convertor_convert() -> None:
    convertor = FloatConvertor()
    assert convertor.convert("1.5") == 1.5
    assert convertor.convert("1") == 1.0
    assert convertor.convert("9" * 400) == math.inf


@given(st.floats(min_value=0, allow_nan=False, allow_infinity=False))
def test_float_convertor_round_trip(value: float) -> None:
    convertor = FloatConvertor()
    text = convertor.to_string(value)
    assert re.fullmatch(convertor.regex, text)
    assert convertor.convert(text) == pytest.approx(value, rel=1e-15, abs=1e-20)


@given(st.integers(min_value=0, max_value=10**100))
def test_integer_convertor_round_trip(value: int) -> None:
    convertor = IntegerConvertor()
    text = convertor.to_string(value)
    assert re.fullmatch(convertor.regex, text)
    assert convertor.convert(text) == value


def test_uuid_convertor() -> None:
    convertor = UUIDConvertor()
    value = uuid.UUID("12345678-1234-1234-1234-123456789abc")
    assert convertor.convert("12345678-1234-1234-1234-123456789abc") == value
    assert convertor.convert("123456781234123412341234567890AB") == uuid.UUID(
        "12345678-1234-1234-1234-1234567890ab"
    )
    assert convertor.to_string(uuid.UUID(int=5)) == "00000000-0000-0000-0000-000000000005"
    assert convertor.to_string("x") == "x"  # type: ignore[arg-type]


@given(st.uuids())
def test_uuid_convertor_round_trip(value: uuid.UUID) -> None:
    convertor = UUIDConvertor()
    text = convertor.to_string(value)
    assert re.fullmatch(convertor.regex, text)
    assert convertor.convert(text) == value


class TwoDigits(Convertor[int]):
    regex = "[0-9]{2}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return f"{value:02d}"


@pytest.mark.usefixtures("restore_convertor_types")
def test_register_url_convertor() -> None:
    convertor = TwoDigits()
    register_url_convertor("two", convertor)
    assert CONVERTOR_TYPES["two"] is convertor
    assert convertors.CONVERTOR_TYPES is CONVERTOR_TYPES
    assert convertor.convert("07") == 7
    assert convertor.to_string(7) == "07"


def test_convertor_is_generic() -> None:
    assert Convertor[int].__origin__ is Convertor  # type: ignore[attr-defined]
    assert Convertor.__parameters__ == (convertors.T,)  # type: ignore[attr-defined]
