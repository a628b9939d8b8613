"""starling's own public surface (beyond Starlette's) against snapshots checked in per module.

Each ``tests/api_snapshots/<module>.json`` pins the names and signatures of ``starling.<module>``
that Starlette 1.10 does not have: a whole new module (``sse``), or the names starling adds to a
Starlette module. Regenerate one on purpose with
``python scripts/snapshot_api.py --beyond <module> > tests/api_snapshots/<module>.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scripts.snapshot_api import describe_beyond

HERE = Path(__file__).parent
STARLETTE_SNAPSHOT: dict[str, Any] = json.loads((HERE / "api_snapshot.json").read_text())
SNAPSHOTS = sorted((HERE / "api_snapshots").glob("*.json"))


@pytest.mark.parametrize("path", SNAPSHOTS, ids=[path.stem for path in SNAPSHOTS])
def test_module_surface_matches_its_snapshot(path: Path) -> None:
    expected = json.loads(path.read_text())
    assert describe_beyond(path.stem, STARLETTE_SNAPSHOT) == expected


def test_a_snapshot_never_repeats_a_starlette_name() -> None:
    """Starlette's own names are pinned by test_api_surface.py, never twice."""
    for path in SNAPSHOTS:
        known = STARLETTE_SNAPSHOT.get(path.stem, {})
        assert not set(json.loads(path.read_text())) & set(known), path.name
