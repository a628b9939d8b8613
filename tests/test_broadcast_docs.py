"""docs/broadcast.md: its first example runs as it is (memory://), and prints what it says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).parent.parent / "docs" / "broadcast.md"


def test_the_first_example_runs() -> None:
    first = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert first is not None
    result = subprocess.run(
        [sys.executable, "-c", first.group(1)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "news Hello, subscribers!\nb'bytes work too'\n"


def test_the_chat_shown_is_the_example_that_is_tested() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.DOTALL)
    chat = next(block for block in blocks if "async def chat(" in block)
    shown = chat.split("# connected in the lifespan, as above\n\n\n", 1)[1]
    example = (DOCS.parent.parent / "examples" / "broadcast_chat.py").read_text()
    assert shown in example
