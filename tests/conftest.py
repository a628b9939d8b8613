from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

import pytest
from blockbuster import BlockBuster, blockbuster_ctx
from hypothesis import settings

from starling.testclient import TestClient
from tests.types import TestClientFactory

# CI runs each property test on the same examples every time, so coverage and results do not
# depend on chance; local runs keep exploring (and remember failures in .hypothesis/).
settings.register_profile("ci", derandomize=True, database=None)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """A blocking call (file or socket I/O, time.sleep) made by starling on the event loop fails
    the test; test code setting up files is not policed."""
    with blockbuster_ctx("starling") as detector:
        yield detector


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("trio", {}), id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Every test that uses the client factory (or anyio directly) runs on both backends."""
    backend: tuple[str, dict[str, Any]] = request.param
    return backend


@pytest.fixture
def test_client_factory(
    anyio_backend: tuple[str, dict[str, Any]],
) -> TestClientFactory:
    name, options = anyio_backend
    return functools.partial(TestClient, backend=name, backend_options=options)  # type: ignore[arg-type]


# Real components as fixtures: Redis (tests/_redis_server.py), Chromium (tests/_browser.py).
pytest_plugins = ["tests._redis_server", "tests._browser"]
