from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import starling
from starling import compat
from tests.types import TestClientFactory

SNAPSHOT_MODULES = sorted(json.loads((Path(__file__).parent / "api_snapshot.json").read_text()))


@pytest.fixture(autouse=True)
def restore_imports() -> Iterator[None]:
    """Each test may alias starlette; afterwards sys.modules and sys.meta_path are as before."""
    modules = dict(sys.modules)
    meta_path = list(sys.meta_path)
    yield
    sys.meta_path[:] = meta_path
    for name in [name for name in sys.modules if name not in modules]:
        del sys.modules[name]
    sys.modules.update(modules)
    # A test may re-import a starling submodule; put the original back on its package too.
    for name, module in modules.items():
        if name.startswith("starling."):
            parent, _, child = name.rpartition(".")
            setattr(sys.modules[parent], child, module)


def available_starling_modules() -> list[str]:
    """Every public module, imported (the deprecated wsgi module warns, as Starlette's does)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"starlette\.middleware\.wsgi is deprecated")
        for name in SNAPSHOT_MODULES:
            importlib.import_module(f"starling.{name}")
    return list(SNAPSHOT_MODULES)


def test_starlette_is_starling() -> None:
    compat.alias_starlette()
    import starlette

    # the package reports the Starlette API version it stands for (libraries gate on it) ...
    assert starlette.__version__ == compat.STARLETTE_API_VERSION == "1.10.0"
    assert starlette.__name__ == "starlette"
    assert starlette.__path__ == starling.__path__  # tools find the files where they are
    assert starlette.__file__ == starling.__file__
    # ... and everything else is starling's
    assert starlette.compat is compat
    assert starlette.__doc__ == starling.__doc__
    with pytest.raises(AttributeError):
        starlette.no_such_name  # noqa: B018


def test_every_public_module_is_the_same_object() -> None:
    names = available_starling_modules()
    assert {"status", "types", "exceptions", "testclient", "middleware"} <= set(names)
    compat.alias_starlette()
    for name in names:
        assert importlib.import_module(f"starlette.{name}") is sys.modules[f"starling.{name}"]


def test_module_imported_after_aliasing() -> None:
    compat.alias_starlette()
    # Forget starling.status under both names: the next import finds it through the alias.
    sys.modules.pop("starling.status", None)
    sys.modules.pop("starlette.status", None)
    import starlette.status

    assert starlette.status is sys.modules["starling.status"]
    assert starlette.status.HTTP_200_OK == 200
    from starlette import status

    assert status is starlette.status


def test_nested_module_imported_after_aliasing() -> None:
    compat.alias_starlette()
    sys.modules.pop("starling.middleware.errors", None)
    sys.modules.pop("starlette.middleware.errors", None)
    from starlette.middleware.errors import (
        ServerErrorMiddleware,
    )

    module = sys.modules["starlette.middleware.errors"]
    assert module is sys.modules["starling.middleware.errors"]
    assert ServerErrorMiddleware is module.ServerErrorMiddleware


def test_private_modules_are_aliased_too() -> None:
    compat.alias_starlette()
    from starlette._utils import get_route_path

    from starling import _utils

    assert get_route_path is _utils.get_route_path


def test_missing_module_is_not_found() -> None:
    compat.alias_starlette()
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("starlette.does_not_exist")


def test_broken_module_reports_its_own_missing_dependency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compat.alias_starlette()

    def import_module(name: str) -> ModuleType:
        raise ModuleNotFoundError("No module named 'jinja2'", name="jinja2")

    monkeypatch.setattr(importlib, "import_module", import_module)
    with pytest.raises(ModuleNotFoundError, match="jinja2"):
        compat._StarletteAliasFinder().find_spec("starlette.templating")


def test_finder_ignores_other_names() -> None:
    finder = compat._StarletteAliasFinder()
    assert finder.find_spec("os") is None
    assert finder.find_spec("starlettex.y") is None


def test_idempotent() -> None:
    compat.alias_starlette()
    compat.alias_starlette()
    finders = [f for f in sys.meta_path if isinstance(f, compat._StarletteAliasFinder)]
    assert len(finders) == 1
    assert sys.modules["starlette"].__starling_alias__ is True


@pytest.mark.parametrize(
    ("names", "shown"),
    [
        (["starlette"], "(starlette already in sys.modules)"),
        (
            ["starlette", "starlette.a", "starlette.b", "starlette.c"],
            "(starlette, starlette.a, starlette.b, ... already in sys.modules)",
        ),
    ],
)
def test_refuses_when_real_starlette_is_loaded(names: list[str], shown: str) -> None:
    for name in names:
        sys.modules[name] = ModuleType(name)
    with pytest.raises(RuntimeError) as info:
        compat.alias_starlette()
    message = str(info.value)
    assert message.startswith("alias_starlette() was called after the real Starlette")
    assert shown in message
    assert "before anything imports starlette" in message
    assert not hasattr(sys.modules["starlette"], "__starling_alias__")  # nothing was changed


def test_refuses_when_only_a_submodule_is_real() -> None:
    compat.alias_starlette()
    sys.modules["starlette.routing"] = ModuleType("starlette.routing")
    with pytest.raises(RuntimeError, match=r"\(starlette\.routing already"):
        compat.alias_starlette()


HELLO_WORLD = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def homepage(request):
    return JSONResponse({'hello': 'world'})


app = Starlette(debug=True, routes=[
    Route('/', homepage),
])
"""

TESTCLIENT_EXAMPLE = """
from starlette.testclient import TestClient

client = TestClient(app)
response = client.get('/')
assert response.status_code == 200
"""


def test_starlette_readme_runs_unchanged(test_client_factory: TestClientFactory) -> None:
    compat.alias_starlette()
    namespace: dict[str, Any] = {}
    exec(HELLO_WORLD, namespace)
    exec(TESTCLIENT_EXAMPLE, namespace)

    from starling.applications import Starling
    from starling.testclient import TestClient

    assert namespace["Starlette"] is Starling
    assert namespace["TestClient"] is TestClient
    assert isinstance(namespace["app"], Starling)
    assert namespace["response"].json() == {"hello": "world"}
    # And on both backends.
    assert test_client_factory(namespace["app"]).get("/").json() == {"hello": "world"}


def test_fresh_interpreter() -> None:
    """In a new process, nothing imported yet: the whole path from alias to app."""
    code = textwrap.dedent(
        """
        from starling.compat import alias_starlette
        alias_starlette()
        import starlette.applications, starling.applications, starlette.middleware.errors
        import starling.middleware.errors
        assert starlette.applications.Starlette is starling.applications.Starling
        assert starlette.middleware.errors is starling.middleware.errors
        """
    )
    code += HELLO_WORLD + TESTCLIENT_EXAMPLE + "print(response.json())\n"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        check=False,
    )
    assert result.stderr == ""
    assert result.stdout == "{'hello': 'world'}\n"
