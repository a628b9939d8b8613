"""Write the public-API snapshot that tests/test_api_surface.py checks starling against.

Run it in an environment where the reference Starlette is installed (never starling's own):

    python scripts/snapshot_api.py > tests/api_snapshot.json

starling's own modules (and the names it adds to Starlette's) are pinned the same way, one file
per module, by tests/test_api_surface_beyond.py:

    python scripts/snapshot_api.py --beyond sse > tests/api_snapshots/sse.json

Only names and signatures are recorded: a public name is any module attribute not starting
with an underscore that is defined in that module (or, for the private modules FastAPI reads,
the few names it imports).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import sys
from typing import Any

MODULES = [
    "applications",
    "authentication",
    "background",
    "concurrency",
    "config",
    "convertors",
    "datastructures",
    "endpoints",
    "exceptions",
    "formparsers",
    "requests",
    "responses",
    "routing",
    "schemas",
    "staticfiles",
    "status",
    "templating",
    "testclient",
    "types",
    "websockets",
    "middleware",
    "middleware.authentication",
    "middleware.base",
    "middleware.body_limit",
    "middleware.cors",
    "middleware.errors",
    "middleware.exceptions",
    "middleware.gzip",
    "middleware.opentelemetry",
    "middleware.httpsredirect",
    "middleware.sessions",
    "middleware.trustedhost",
    "middleware.wsgi",
]
PRIVATE_NAMES = {
    "_utils": ["get_route_path", "is_async_callable"],
    "_exception_handler": ["wrap_app_handling_exceptions"],
}


def signature_of(obj: Any) -> list[list[str]] | None:
    """Each parameter as [name, kind, default]; the default is its repr, or "" for none."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    params = []
    for param in signature.parameters.values():
        if param.default is param.empty:
            default = ""
        elif isinstance(param.default, os._Environ):
            default = "<os.environ>"  # never record the machine's environment
        else:
            default = repr(param.default)
        # functions and sentinels print with their address
        default = re.sub(r" at 0x[0-9a-f]+", "", default)
        default = default.replace("httpx2.", "httpx.")  # either library may be installed
        params.append([param.name, param.kind.name, default])
    return params


def describe(obj: Any) -> dict[str, Any]:
    if inspect.isclass(obj):
        methods = {}
        for name, member in vars(obj).items():
            if name.startswith("_") and name not in ("__init__", "__call__"):
                continue
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if inspect.isfunction(member):
                methods[name] = signature_of(member)
            elif isinstance(member, property):
                methods[name] = "property"
        return {"kind": "class", "methods": methods}
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return {"kind": "function", "signature": signature_of(obj)}
    if isinstance(obj, (int, str, float, bytes)):
        return {"kind": "constant", "value": obj if not isinstance(obj, bytes) else obj.decode()}
    if type(obj).__name__ in ("TypeVar", "ParamSpec"):
        return {"kind": "typevar"}
    return {"kind": "other"}


def describe_module(module: Any, short: str) -> dict[str, Any]:
    """Every public name defined in ``module`` (``short`` is its name below the package)."""
    names: dict[str, Any] = {}
    for name, obj in vars(module).items():
        if name.startswith("_"):
            continue
        if inspect.ismodule(obj) or name == "TYPE_CHECKING":
            continue
        defined_in = getattr(obj, "__module__", None)
        # type aliases (Scope, Receive, ...) are generic-alias instances, not classes
        alias = short == "types" and not inspect.isclass(obj) and name not in ("Any",)
        if defined_in is not None and defined_in != module.__name__ and not alias:
            continue
        names[name] = describe(obj)
    return names


def describe_beyond(short: str, starlette_snapshot: dict[str, Any]) -> dict[str, Any]:
    """starling's own names in ``starling.<short>``: what Starlette's snapshot does not hold.

    A module Starlette lacks (``sse``, ``middleware.csrf``) is described whole; a Starlette
    module starling extends (``testclient`` with ``AsyncTestClient``) only by its extra names.
    """
    module = importlib.import_module(f"starling.{short}")
    known = starlette_snapshot.get(short, {})
    return {
        name: info for name, info in describe_module(module, short).items() if name not in known
    }


def main() -> None:
    if sys.argv[1:2] == ["--beyond"]:
        # python scripts/snapshot_api.py --beyond sse > tests/api_snapshots/sse.json
        with open(os.path.join(os.path.dirname(__file__), "..", "tests", "api_snapshot.json")) as f:
            starlette_snapshot = json.load(f)
        json.dump(
            describe_beyond(sys.argv[2], starlette_snapshot), sys.stdout, indent=1, sort_keys=True
        )
        sys.stdout.write("\n")
        return
    result: dict[str, Any] = {}
    for short in MODULES:
        module = importlib.import_module(f"starlette.{short}")
        result[short] = describe_module(module, short)
    for short, wanted in PRIVATE_NAMES.items():
        module = importlib.import_module(f"starlette.{short}")
        result[short] = {name: describe(getattr(module, name)) for name in wanted}
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
