"""status: every constant against Starlette 1.10's values, and the deprecated aliases."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest

from starling import status
from starling.exceptions import StarletteDeprecationWarning

_SNAPSHOT = json.loads((Path(__file__).parent / "api_snapshot.json").read_text())["status"]
REFERENCE = {name: info["value"] for name, info in _SNAPSHOT.items() if info["kind"] == "constant"}

DEPRECATED = {
    "HTTP_413_REQUEST_ENTITY_TOO_LARGE": "HTTP_413_CONTENT_TOO_LARGE",
    "HTTP_414_REQUEST_URI_TOO_LONG": "HTTP_414_URI_TOO_LONG",
    "HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE": "HTTP_416_RANGE_NOT_SATISFIABLE",
    "HTTP_422_UNPROCESSABLE_ENTITY": "HTTP_422_UNPROCESSABLE_CONTENT",
}


def test_reference_has_every_code() -> None:
    # Guards the table below against an empty or truncated snapshot.
    assert len(REFERENCE) == 78
    assert sum(name.startswith("WS_") for name in REFERENCE) == 15


def test_all_lists_exactly_the_reference_names() -> None:
    assert sorted(status.__all__) == sorted(REFERENCE)
    assert len(set(status.__all__)) == len(status.__all__)


@pytest.mark.parametrize(("name", "value"), sorted(REFERENCE.items()))
def test_constant_matches_reference(name: str, value: int) -> None:
    assert getattr(status, name) == value
    assert type(getattr(status, name)) is int
    # The number in the name is the value: catches a copy-paste slip in either table.
    match = re.fullmatch(r"(?:HTTP|WS)_(\d+)_[A-Z_]+", name)
    assert match is not None
    assert int(match.group(1)) == value


@pytest.mark.parametrize(("old", "new"), sorted(DEPRECATED.items()))
def test_deprecated_name_warns_and_returns_the_new_value(old: str, new: str) -> None:
    message = f"'{old}' is deprecated. Use '{new}' instead."
    with pytest.warns(StarletteDeprecationWarning) as record:
        value = getattr(status, old)
    assert value == getattr(status, new)
    assert len(record) == 1
    assert str(record[0].message) == message
    assert record[0].filename == __file__  # blames the line that used the old name


def test_deprecated_name_warns_on_from_import() -> None:
    with pytest.warns(StarletteDeprecationWarning, match="HTTP_422_UNPROCESSABLE_CONTENT"):
        from starling.status import HTTP_422_UNPROCESSABLE_ENTITY
    assert HTTP_422_UNPROCESSABLE_ENTITY == 422


def test_deprecation_warning_is_a_user_warning() -> None:
    assert issubclass(StarletteDeprecationWarning, UserWarning)


def test_current_names_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert status.HTTP_422_UNPROCESSABLE_CONTENT == 422


@pytest.mark.parametrize("name", ["NOPE", "HTTP_999_MADE_UP", "WS_1004_NO_STATUS_RCVD"])
def test_unknown_attribute_raises(name: str) -> None:
    with pytest.raises(AttributeError) as info:
        getattr(status, name)
    assert str(info.value) == f"module 'starling.status' has no attribute '{name}'"
    assert not hasattr(status, name)


def test_dir_lists_current_and_deprecated_names_sorted() -> None:
    listing = dir(status)
    assert listing == sorted(listing)
    assert set(listing) == set(REFERENCE) | set(DEPRECATED)
