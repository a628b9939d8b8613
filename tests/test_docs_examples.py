"""The examples in the docs pages of the request-handling batteries run as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.types import TestClientFactory

DOCS = Path(__file__).parent.parent / "docs"


def python_blocks(page: str) -> list[str]:
    """The ```python blocks of docs/<page>, in order."""
    text = (DOCS / page).read_text()
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)


def run_block(page: str, index: int = 0) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": f"docs_{page.removesuffix('.md')}"}
    exec(compile(python_blocks(page)[index], f"docs/{page}", "exec"), namespace)
    return namespace


def test_uploads_example(test_client_factory: TestClientFactory) -> None:
    app = run_block("uploads.md")["app"]
    with test_client_factory(app) as client:
        files = {"avatar": ("me.png", b"\x89PNG" + b"x" * 100)}
        response = client.post("/avatar", files=files)
        assert response.json() == {"filename": "me.png", "size": 104}
        too_big = {"avatar": ("me.png", b"x" * (2 * 1024 * 1024 + 1))}
        response = client.post("/avatar", files=too_big)
        assert response.status_code == 413
        assert "max_file_size" in response.text


@pytest.mark.anyio
async def test_testing_example() -> None:
    await run_block("testing.md")["test_app"]()
