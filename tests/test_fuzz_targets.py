"""The fuzz targets (fuzz/targets.py) on their seed corpus, and the runner behind ``make fuzz``.

Every file in fuzz/corpus/<target>/ is a regression test: the seeds, and every input the
fuzzer found (saved there after the fix). The inputs it found are also pinned by name below.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fuzz import fuzz_one, run
from fuzz.targets import TARGETS
from starling.applications import Starling
from starling.requests import Request
from starling.responses import JSONResponse, Response
from starling.routing import Route
from tests.types import TestClientFactory

CORPUS = Path(run.__file__).parent / "corpus"
CASES = sorted(
    (directory.name, path) for directory in CORPUS.iterdir() for path in directory.iterdir()
)


@pytest.mark.parametrize(("target", "path"), CASES, ids=[f"{t}/{p.name}" for t, p in CASES])
def test_corpus_input(target: str, path: Path) -> None:
    TARGETS[target](path.read_bytes())


def test_every_target_has_a_seed_corpus_and_every_corpus_a_target() -> None:
    assert {directory.name for directory in CORPUS.iterdir()} == set(TARGETS)
    assert all(any((CORPUS / target).iterdir()) for target in TARGETS)


def test_the_empty_input() -> None:
    for target in TARGETS.values():
        target(b"")


def test_fuzz_one_imports_the_targets() -> None:
    assert fuzz_one.TARGETS is TARGETS  # type: ignore[attr-defined]


def test_command(tmp_path: Path) -> None:
    command = run.command("cookies", 7, tmp_path)
    assert command[:4] == [sys.executable, "-m", "fuzz.fuzz_one", "cookies"]
    assert "-max_total_time=7" in command
    assert command[-2:] == [str(tmp_path / "corpus" / "cookies"), str(CORPUS / "cookies")]
    assert (tmp_path / "corpus" / "cookies").is_dir()


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--list"]) == 0
    assert capsys.readouterr().out.split() == list(TARGETS)


def test_unknown_target(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run.main(["nope"])
    assert "unknown target(s) nope; --list shows them" in capsys.readouterr().err


def test_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.report([]) == 0
    assert run.report(["a", "b"]) == 1
    assert "findings in a, b" in capsys.readouterr().out


def test_a_short_real_run(capfd: pytest.CaptureFixture[str]) -> None:
    """atheris itself, for one second on one target: what `make fuzz` does for each."""
    assert run.main(["--seconds", "1", "host"]) == 0
    assert "fuzz: no findings" in capfd.readouterr().out


# --- what the fuzzer found, pinned -------------------------------------------------------------


def test_json_integer_past_the_digit_limit_is_a_400(
    test_client_factory: TestClientFactory,
) -> None:
    """json.loads raises a plain ValueError for an integer of more than 4300 digits: that was
    a 500 (it is in Starlette)."""

    async def endpoint(request: Request) -> Response:
        return JSONResponse(await request.json())

    client = test_client_factory(Starling(routes=[Route("/", endpoint, methods=["POST"])]))
    response = client.post("/", content=b"1" * 5000)
    assert response.status_code == 400
    assert "Exceeds the limit (4300 digits)" in response.text
    assert client.post("/", content=b"1" * 4300).json() == json.loads("1" * 4300)
