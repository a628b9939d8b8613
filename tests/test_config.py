"""Config: environment and .env lookups, casting, prefixes; Environ's read-then-write guard."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import pytest

from starling.config import Config, Environ, EnvironError, environ, undefined


def _write(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / ".env"
    path.write_text(text, encoding=encoding)
    return path


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("tRuE", True),
        ("1", True),
        ("false", False),
        ("False", False),
        ("0", False),
    ],
)
def test_bool_cast_accepts_the_four_words(value: str, expected: bool) -> None:
    config = Config(environ={"FLAG": value})
    assert config("FLAG", cast=bool) is expected


@pytest.mark.parametrize("value", ["yes", "no", "", " true", "1.5", "2"])
def test_bool_cast_rejects_other_strings(value: str) -> None:
    config = Config(environ={"FLAG": value})
    with pytest.raises(ValueError) as info:
        config("FLAG", cast=bool)
    assert str(info.value) == f"Config 'FLAG' has value '{value}'. Not a valid bool."


def test_bool_cast_of_a_non_string_default_uses_truthiness() -> None:
    config = Config(environ={})
    assert config("A", cast=bool, default=2) is True
    assert config("A", cast=bool, default=0) is False
    assert config("A", cast=bool, default=[]) is False
    assert config("A", cast=bool, default=True) is True


def test_string_default_is_cast_like_a_found_value() -> None:
    config = Config(environ={})
    assert config("A", cast=bool, default="true") is True
    assert config("A", cast=int, default="5") == 5
    with pytest.raises(ValueError, match=r"^Config 'A' has value 'x'\. Not a valid bool\.$"):
        config("A", cast=bool, default="x")


def test_none_is_never_cast() -> None:
    config = Config(environ={})
    assert config("A", default=None) is None
    assert config("A", cast=int, default=None) is None
    assert config("A", cast=bool, default=None) is None


def test_other_casts() -> None:
    config = Config(environ={"INT": "42", "FLOAT": "1.5", "TEXT": "it's"})
    assert config("INT", cast=int) == 42
    assert config("FLOAT", cast=float) == 1.5
    assert config("INT", cast=str) == "42"
    assert config("INT", cast=lambda v: v * 2) == "4242"
    assert config("INT") == "42"
    assert config.get("TEXT") == "it's"


def test_cast_error_names_key_value_and_cast() -> None:
    config = Config(environ={"TEXT": "it's", "EMPTY": ""})
    with pytest.raises(ValueError) as info:
        config("TEXT", cast=int)
    # The value is quoted as is, not repr()'d, and the original error stays as the context.
    assert str(info.value) == "Config 'TEXT' has value 'it's'. Not a valid int."
    assert isinstance(info.value.__context__, ValueError)
    with pytest.raises(ValueError, match=r"^Config 'EMPTY' has value ''\. Not a valid int\.$"):
        config("EMPTY", cast=int)


def test_type_error_in_cast_becomes_value_error() -> None:
    class Port:
        def __init__(self, value: str) -> None:
            raise TypeError("bad")

    config = Config(environ={"PORT": "x"})
    with pytest.raises(ValueError, match=r"^Config 'PORT' has value 'x'\. Not a valid Port\.$"):
        config("PORT", cast=Port)


def test_cast_without_a_name_is_named_by_its_type() -> None:
    # Starlette raises AttributeError here (no __name__); starling names the type instead.
    class Caster:
        def __call__(self, value: str) -> int:
            raise ValueError(value)

    config = Config(environ={"N": "x"})
    with pytest.raises(ValueError, match=r"Not a valid partial\.$"):
        config("N", cast=functools.partial(int, base=10))
    with pytest.raises(ValueError, match=r"Not a valid Caster\.$"):
        config("N", cast=Caster())


def test_other_errors_in_cast_propagate() -> None:
    def explode(value: str) -> int:
        raise ZeroDivisionError(value)

    config = Config(environ={"N": "1"})
    with pytest.raises(ZeroDivisionError):
        config("N", cast=explode)


def test_missing_key() -> None:
    config = Config(environ={})
    with pytest.raises(KeyError) as info:
        config("MISSING")
    assert info.value.args == ("Config 'MISSING' is missing, and has no default.",)
    with pytest.raises(KeyError):
        config.get("MISSING", default=undefined)


def test_non_string_environ_values_pass_through() -> None:
    config = Config(environ={"N": 5, "Z": None})  # type: ignore[dict-item]
    assert config("N") == 5  # type: ignore[comparison-overlap]
    assert config("N", cast=bool) is True
    assert config("Z", cast=int) is None


def test_env_file_parsing(tmp_path: Path) -> None:
    text = (
        "# a comment\n"
        "A=1\n"
        "  B = 2  \n"
        'C="quoted"\n'
        "D='single'\n"
        "E=a=b=c\n"
        "\n"
        "NO_EQUALS_SIGN\n"
        "   # indented comment\n"
        "G=x # not a comment\n"
        'H="unterminated\n'
        "I=\n"
        "export J=1\n"
        'K="a" b\n'
        ' M=\t"tab"\t\n'
        "=empty\n"
        'N="\n'
        "O='\"mixed\"'\n"
        'P = " inner "\n'
        'Q=""\n'
        "R=''\n"
        "S=\"a'\n"
        'T=""x""\n'
        "U=a\\nb\n"
        "CRLF=x\r\n"
        "A=last wins\n"
    )
    config = Config(_write(tmp_path, text), environ={})
    assert config.file_values == {
        "A": "last wins",
        "B": "2",
        "C": "quoted",
        "D": "single",
        "E": "a=b=c",
        "G": "x # not a comment",
        "H": '"unterminated',
        "I": "",
        "export J": "1",
        "K": '"a" b',
        "M": "tab",
        "": "empty",
        "N": '"',
        "O": '"mixed"',
        "P": " inner ",
        "Q": "",
        "R": "",
        "S": "\"a'",
        "T": '"x"',
        "U": "a\\nb",
        "CRLF": "x",
    }
    assert config("C") == "quoted"


def test_env_file_as_str_and_encoding(tmp_path: Path) -> None:
    path = _write(tmp_path, "NAME=\xe9t\xe9\n", encoding="latin-1")
    assert Config(str(path), environ={}, encoding="latin-1")("NAME") == "\xe9t\xe9"
    with pytest.raises(UnicodeDecodeError):
        Config(path, environ={})


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "A=file\nB=file\n")
    config = Config(path, environ={"A": "env"})
    assert config("A") == "env"
    assert config("B") == "file"


def test_missing_env_file_warns(tmp_path: Path) -> None:
    missing = tmp_path / "missing.env"
    with pytest.warns(UserWarning, match=r"^Config file '.*missing\.env' not found\.$") as record:
        config = Config(missing, environ={})
    assert len(record) == 1
    assert record[0].filename == __file__  # points at the caller, not at starling
    assert config.file_values == {}


def test_directory_as_env_file_warns(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="not found"):
        Config(tmp_path, environ={})


def test_env_prefix(tmp_path: Path) -> None:
    path = _write(tmp_path, "APP_FROM_FILE=file\nBARE=file\n")
    config = Config(path, environ={"APP_A": "env", "A": "bare"}, env_prefix="APP_")
    assert config.env_prefix == "APP_"
    assert config("A") == "env"
    assert config("FROM_FILE") == "file"
    with pytest.raises(KeyError, match="Config 'APP_BARE' is missing"):
        config("BARE")
    with pytest.raises(ValueError, match=r"^Config 'APP_A' has value 'env'\. Not a valid int\.$"):
        config("A", cast=int)


def test_call_and_get_agree() -> None:
    config = Config(environ={"A": "1"})
    assert config("A", int, 0) == config.get("A", int, 0) == 1
    assert config("B", int, 0) == config.get("B", int, 0) == 0


def test_default_environ_is_the_module_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "STARLING_TEST_CONFIG_DEFAULT_ENVIRON"
    monkeypatch.setenv(key, "from-os")
    config = Config()
    assert config.environ is environ
    assert config(key) == "from-os"


def test_environ_wraps_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "STARLING_TEST_ENVIRON_WRAPS_OS"
    monkeypatch.delenv(key, raising=False)
    wrapper = Environ()
    wrapper[key] = "set"
    try:
        assert os.environ[key] == "set"
    finally:
        del wrapper[key]
    assert key not in os.environ


def test_environ_set_and_delete_before_reading() -> None:
    backing: dict[str, str] = {"A": "1"}
    wrapper = Environ(backing)
    wrapper["B"] = "2"
    del wrapper["A"]
    assert backing == {"B": "2"}
    assert list(wrapper) == ["B"]
    assert len(wrapper) == 1
    # Iterating and counting read no value, so the key can still change.
    wrapper["B"] = "3"
    assert backing == {"B": "3"}


def test_environ_refuses_change_after_read() -> None:
    wrapper = Environ({"A": "1"})
    assert wrapper["A"] == "1"
    with pytest.raises(EnvironError) as info:
        wrapper["A"] = "2"
    assert str(info.value) == "Attempting to set environ['A'], but the value has already been read."
    with pytest.raises(EnvironError) as info:
        del wrapper["A"]
    assert (
        str(info.value) == "Attempting to delete environ['A'], but the value has already been read."
    )


def test_environ_reading_a_missing_key_counts_as_read() -> None:
    wrapper = Environ({})
    with pytest.raises(KeyError):
        wrapper["MISSING"]
    assert wrapper.get("OTHER") is None
    assert "THIRD" not in wrapper
    for key in ("MISSING", "OTHER", "THIRD"):
        with pytest.raises(EnvironError, match=rf"^Attempting to set environ\['{key}'\]"):
            wrapper[key] = "late"


def test_environ_delete_of_unread_missing_key_is_key_error() -> None:
    wrapper = Environ({})
    with pytest.raises(KeyError):
        del wrapper["NOPE"]


def test_environ_mutable_mapping_helpers_respect_the_guard() -> None:
    wrapper = Environ({"K": "v"})
    with pytest.raises(EnvironError):
        wrapper.setdefault("NEW", "w")  # setdefault looks the key up before setting it
    with pytest.raises(EnvironError, match="delete"):
        wrapper.pop("K")


def test_config_lookup_marks_environ_keys_read() -> None:
    config = Config(environ=Environ({"X": "1"}))
    assert config("X") == "1"
    assert config("Y", default=None) is None
    assert isinstance(config.environ, Environ)
    with pytest.raises(EnvironError):
        config.environ["X"] = "2"
    with pytest.raises(EnvironError):
        config.environ["Y"] = "2"


def test_undefined_is_a_class() -> None:
    assert isinstance(undefined, type)
    assert Config.get.__defaults__ == (None, undefined)


def _typed_usage(config: Config) -> list[Any]:
    """The overloads type-check for the common call shapes (checked by mypy, run below)."""
    text: str = config("A", default="x")
    maybe: str | None = config("A", default=None)
    number: int = config("N", cast=int)
    either: int | str = config("A", default=1)
    return [text, maybe, number, either]


def test_typed_usage() -> None:
    assert _typed_usage(Config(environ={"A": "a", "N": "1"})) == ["a", "a", 1, "a"]
