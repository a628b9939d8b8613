"""starling's public names and signatures against a snapshot of Starlette 1.10's.

The snapshot (tests/api_snapshot.json) is made by scripts/snapshot_api.py in an environment
with the reference Starlette installed; it holds names and signatures only. Every intentional
difference is listed below with its reason, and each listed difference must still be one.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import warnings
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

from starling.exceptions import StarletteDeprecationWarning

SNAPSHOT: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "api_snapshot.json").read_text()
)

# (module, name) -> why starling's value differs on purpose (the name itself must exist).
_OWN_MARKUP = "the debug page's markup, styles and script are starling's own text"
DIFFERENCES: dict[tuple[str, str], str] = {
    ("middleware.errors", "CENTER_LINE"): _OWN_MARKUP,
    ("middleware.errors", "FRAME_TEMPLATE"): _OWN_MARKUP,
    ("middleware.errors", "JS"): _OWN_MARKUP,
    ("middleware.errors", "LINE"): _OWN_MARKUP,
    ("middleware.errors", "STYLES"): _OWN_MARKUP,
    ("middleware.errors", "TEMPLATE"): _OWN_MARKUP,
}

# (module, class, method) -> the parameters starling adds to a Starlette
# signature, each keyword-only and optional, so that every call written for Starlette means the
# same. The rest of the signature must still be Starlette's exactly; each added parameter must
# still exist (test_added_parameters_are_keyword_only_and_optional).
ADDED_PARAMETERS: dict[tuple[str, str, str], tuple[str, ...]] = {
    # per-call upload limits beyond Starlette's (docs/uploads.md)
    ("requests", "Request", "form"): ("max_file_size", "spool_max_size"),
}


def _import(module_name: str) -> Any:
    """``starling.<module_name>``; the deprecated wsgi module warns on import, as Starlette's."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", r"starlette\.middleware\.wsgi is deprecated", StarletteDeprecationWarning
        )
        return importlib.import_module(f"starling.{module_name}")


def _present_modules() -> list[str]:
    return sorted(SNAPSHOT)


def _entries(module_name: str) -> list[tuple[str, str, Any]]:
    rows = []
    for name, info in SNAPSHOT[module_name].items():
        rows.append((module_name, name, info))
    return rows


ALL_ENTRIES = [row for module in _present_modules() for row in _entries(module)]


def _params(obj: Any, added: tuple[str, ...] = ()) -> list[list[str]] | None:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # pragma: no cover (some builtins have no signature)
        return None
    params = []
    for param in signature.parameters.values():
        if param.name in added:  # starling's own (ADDED_PARAMETERS)
            continue
        if param.default is param.empty:
            default = ""
        elif isinstance(param.default, os._Environ):
            default = "<os.environ>"
        else:
            default = repr(param.default)
        default = re.sub(r" at 0x[0-9a-f]+", "", default)
        # reprs of starling's own objects name its package where Starlette's name theirs
        default = default.replace("starling.", "starlette.")
        # the test client's sentinels come from httpx2 or httpx, whichever is installed
        default = default.replace("httpx2.", "httpx.")
        params.append([param.name, param.kind.name, default])
    return params


@pytest.mark.parametrize(
    ("module_name", "name", "info"), ALL_ENTRIES, ids=[f"{m}:{n}" for m, n, _ in ALL_ENTRIES]
)
def test_public_name_matches_starlette(module_name: str, name: str, info: Any) -> None:
    if (module_name, name) in DIFFERENCES:
        return
    module = _import(module_name)
    assert hasattr(module, name), f"starling.{module_name} lacks {name}"
    obj = getattr(module, name)
    kind = info["kind"]
    if kind == "class":
        assert inspect.isclass(obj), f"{module_name}.{name} should be a class"
        for member, expected in info["methods"].items():
            assert hasattr(obj, member), f"{module_name}.{name} lacks {member}"
            if expected == "property":
                static = inspect.getattr_static(obj, member)
                assert isinstance(static, (property, cached_property)), f"{name}.{member}"
            else:
                added = ADDED_PARAMETERS.get((module_name, name, member), ())
                assert _params(getattr(obj, member), added) == expected, f"{name}.{member}"
    elif kind == "function":
        assert callable(obj)
        assert _params(obj) == info["signature"], f"{module_name}.{name}"
    elif kind == "constant":
        assert obj == info["value"], f"{module_name}.{name}"


@pytest.mark.parametrize(("module_name", "name"), sorted(DIFFERENCES))
def test_listed_difference_is_real(module_name: str, name: str) -> None:
    """A difference that no longer differs must leave the list."""
    module = _import(module_name)
    info = SNAPSHOT[module_name][name]
    assert info["kind"] == "constant"
    # the name is there, with starling's own value
    assert getattr(module, name) != info["value"]


@pytest.mark.parametrize(("module_name", "name", "member"), sorted(ADDED_PARAMETERS))
def test_added_parameters_are_keyword_only_and_optional(
    module_name: str, name: str, member: str
) -> None:
    """Each parameter starling adds exists, is keyword-only with a default, and is not one of
    Starlette's (else it would not be an addition)."""
    obj = getattr(_import(module_name), name)
    parameters = inspect.signature(getattr(obj, member)).parameters
    starlette = SNAPSHOT[module_name][name]["methods"][member]
    for added in ADDED_PARAMETERS[(module_name, name, member)]:
        assert parameters[added].kind is inspect.Parameter.KEYWORD_ONLY, added
        assert parameters[added].default is not inspect.Parameter.empty, added
        assert added not in [row[0] for row in starlette], added
