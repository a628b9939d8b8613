"""Run tests/integration against FastAPI on the real Starlette: every expected response there
must be what Starlette gives, not only what starling gives.

The real Starlette 1.10 is installed in the dev environment (FastAPI depends on it), so:

    .venv/bin/python scripts/check_integration_on_starlette.py

copies the app and its tests to a temporary directory, replaces the conftest (which switches
to starling) with one that does not, points the tests' own starling imports at starlette, and
runs them without STARLING_AS_STARLETTE. The one test that checks starling is serving is left
out. Exit status: pytest's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).parent.parent
SOURCE = ROOT / "tests" / "integration"

CONFTEST = """
import functools

import pytest
import starlette
from starlette.testclient import TestClient

assert "starling" not in starlette.__file__, starlette.__file__


@pytest.fixture(params=["asyncio", "trio"])
def test_client_factory(request):
    return functools.partial(TestClient, backend=request.param)
"""

TYPES = """
class TestClientFactory:
    __test__ = False
"""


def main() -> int:
    with tempfile.TemporaryDirectory() as directory:
        target = Path(directory) / "tests" / "integration"
        shutil.copytree(SOURCE, target, ignore=shutil.ignore_patterns("__pycache__"))
        (target.parent / "__init__.py").write_text("")
        (target.parent / "types.py").write_text(TYPES)
        (target / "conftest.py").write_text(CONFTEST)
        (Path(directory) / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n")
        for test_file in target.glob("test_*.py"):
            text = test_file.read_text().replace("from starling.", "from starlette.")
            test_file.write_text(text)
        env = {k: v for k, v in os.environ.items() if k != "STARLING_AS_STARLETTE"}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        command += [
            "--deselect",
            "tests/integration/test_fastapi_app.py::test_fastapi_runs_on_starling",
        ]
        return subprocess.run([*command, "tests/integration"], cwd=directory, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
