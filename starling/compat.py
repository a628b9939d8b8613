"""Run code written for Starlette on starling: ``import starlette.X`` gives ``starling.X``."""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
from types import ModuleType

import starling

# PERF: not `from typing import TYPE_CHECKING`: importing typing is most of what is left of the
# switch's start-up cost (mypy reads any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.abc import Loader as _LoaderBase
    from importlib.abc import MetaPathFinder as _FinderBase
else:
    _LoaderBase = _FinderBase = object

_ALIAS = "starlette"
_TARGET = "starling"

# The Starlette release whose API starling provides. Libraries that gate features on
# ``starlette.__version__`` read this, not starling's own version.
STARLETTE_API_VERSION = "1.10.0"


# PERF: at run time the loader and finder follow importlib's protocols without subclassing
# importlib.abc (only the type checker sees those bases): importing it (importlib.resources,
# tempfile, ...) cost 80-190 ms, under load, at every start of a process switched on by
# STARLING_AS_STARLETTE.


class _AliasLoader(_LoaderBase):
    """Hands the import system a module that is already loaded, under a second name."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return self.module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module ran when starling imported it."""


class _StarletteAliasFinder(_FinderBase):
    """Finds ``starlette.X`` by importing ``starling.X``: the same module object, two names."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(_ALIAS + "."):
            return None
        target_name = _TARGET + fullname[len(_ALIAS) :]
        try:
            module = importlib.import_module(target_name)
        except ModuleNotFoundError as exc:
            if exc.name != target_name:
                raise  # starling.X exists but itself failed to import something: say so
            return None
        # what importlib.util.spec_from_loader() builds for this loader, without importing it
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(module))


def _package_alias() -> ModuleType:
    """``starlette`` itself: starling's package under Starlette's name and version.

    Every submodule is starling's own module object; only the top package is a separate
    object, so that ``starlette.__version__`` can name the Starlette API that starling
    provides. Any other attribute is starling's.
    """
    package = ModuleType(_ALIAS, starling.__doc__)
    package.__version__ = STARLETTE_API_VERSION  # type: ignore[attr-defined]
    # starling's directory, for tools that locate the package on disk (blockbuster, say); the
    # alias finder comes first on sys.meta_path, so submodules are still starling's own
    package.__path__ = starling.__path__
    package.__file__ = starling.__file__
    package.__starling_alias__ = True  # type: ignore[attr-defined]

    def __getattr__(name: str) -> object:
        return getattr(starling, name)

    package.__getattr__ = __getattr__  # type: ignore[method-assign]
    return package


def _is_alias(name: str, module: ModuleType) -> bool:
    if name == _ALIAS:
        return getattr(module, "__starling_alias__", False) is True
    return module is sys.modules.get(_TARGET + name[len(_ALIAS) :])


def _foreign_starlette_modules() -> list[str]:
    """Names of modules in ``sys.modules`` that belong to a real Starlette, not to the alias."""
    foreign = []
    for name, module in list(sys.modules.items()):
        if name != _ALIAS and not name.startswith(_ALIAS + "."):
            continue
        if not _is_alias(name, module):
            foreign.append(name)
    return sorted(foreign)


def alias_starlette() -> None:
    """Make ``import starlette`` and ``import starlette.X`` return starling's modules.

    Call it before anything imports Starlette (first thing in your app or ``conftest.py``), so
    that code written for Starlette, FastAPI included, runs on starling unchanged. Calling it
    again does nothing more.
    """
    foreign = _foreign_starlette_modules()
    if foreign:
        raise RuntimeError(
            f"alias_starlette() was called after the real Starlette was imported "
            f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''} already in "
            f"sys.modules), so the two would be mixed. Call starling.compat.alias_starlette() "
            f"before anything imports starlette: first thing in your entry point or conftest.py."
        )
    if _ALIAS not in sys.modules:
        sys.modules[_ALIAS] = _package_alias()
    # Submodules starling has already loaded get their second name now; the finder serves
    # the rest on first import.
    for name, module in list(sys.modules.items()):
        if name.startswith(_TARGET + "."):
            sys.modules[_ALIAS + name[len(_TARGET) :]] = module
    if not any(isinstance(finder, _StarletteAliasFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _StarletteAliasFinder())
