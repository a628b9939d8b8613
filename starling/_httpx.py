"""The HTTP client library under the TestClient: httpx2 when installed, else httpx.

Starlette 1.10 builds its TestClient on httpx2 and falls back to httpx; test suites written for
it import `httpx2` and check against its classes, so starling picks the same library. The two
share one API, so the code is type-checked against httpx's.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

__all__ = ["CANDIDATES", "MISSING", "httpx", "httpx_client", "httpx_types", "load"]

CANDIDATES = ("httpx2", "httpx")

MISSING = (
    "The starling.testclient module requires the httpx2 (or httpx) package to be installed.\n"
    "You can install it with:\n"
    "    $ pip install httpx2\n"
    'or with starling\'s extras: pip install "starling[full]"'
)


def load() -> tuple[ModuleType, ModuleType, ModuleType]:
    """The client module, with its private ``_client`` and ``_types`` modules."""
    for name in CANDIDATES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        client = importlib.import_module(f"{name}._client")
        types = importlib.import_module(f"{name}._types")
        return module, client, types
    raise RuntimeError(MISSING)


if TYPE_CHECKING:
    import httpx
    from httpx import _client as httpx_client
    from httpx import _types as httpx_types
else:
    httpx, httpx_client, httpx_types = load()
