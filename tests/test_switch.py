"""STARLING_AS_STARLETTE and starling-run: unchanged Starlette and FastAPI code on starling.

The switch acts at interpreter start-up (a .pth file), so most of these tests start real
interpreters and servers; the in-process ones cover the decisions those processes make.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

import starling
from starling import _run, _switch
from tests._processes import APPS, BIN, ROOT, environment, eventually, free_port, running

STARLING_DIR = Path(starling.__file__).parent
SHOW_STARLETTE = "import starlette, starlette.routing; print(starlette.routing.__file__)"


@pytest.fixture
def restore_imports() -> Iterator[None]:
    """sys.modules and sys.meta_path as they were, whatever the test aliased."""
    modules = dict(sys.modules)
    meta_path = list(sys.meta_path)
    yield
    sys.meta_path[:] = meta_path
    for name in [name for name in sys.modules if name not in modules]:
        del sys.modules[name]
    sys.modules.update(modules)


def python(code: str, *flags: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter of this environment, with ``env`` changes."""
    return subprocess.run(
        [sys.executable, *flags, "-c", code],
        capture_output=True,
        text=True,
        env=environment(**env),
        cwd=ROOT,
        timeout=60,
        check=False,
    )


# -- the variable ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "on", " 1 "])
def test_values_that_switch_on(value: str) -> None:
    assert _switch.is_on({"STARLING_AS_STARLETTE": value})


@pytest.mark.parametrize("value", ["0", "", "false", "No", "off", " "])
def test_values_that_leave_starlette_alone(value: str) -> None:
    assert not _switch.is_on({"STARLING_AS_STARLETTE": value})


def test_unset_is_off() -> None:
    assert not _switch.is_on({})


def test_a_value_neither_on_nor_off_is_refused() -> None:
    with pytest.raises(_switch.SwitchError) as info:
        _switch.is_on({"STARLING_AS_STARLETTE": "maybe"})
    assert str(info.value) == (
        "STARLING_AS_STARLETTE='maybe' is not understood. Set it to 1 to run starlette imports "
        "on starling, or to 0 (or unset it) to leave Starlette alone."
    )


@pytest.mark.usefixtures("restore_imports")
def test_switch_on_aliases() -> None:
    for name in [name for name in sys.modules if name.split(".")[0] == "starlette"]:
        del sys.modules[name]
    _switch.switch_on()
    import starlette.status

    assert starlette.status is sys.modules["starling.status"]


@pytest.mark.usefixtures("restore_imports")
@pytest.mark.parametrize(
    ("names", "shown"),
    [
        (["starlette"], "(starlette already in sys.modules)"),
        (["starlette", "starlette.a", "starlette.b", "starlette.c"], "(starlette, starlette.a, "),
    ],
)
def test_switch_on_refuses_after_the_real_starlette(names: list[str], shown: str) -> None:
    for name in names:
        sys.modules[name] = ModuleType(name)
    with pytest.raises(_switch.SwitchError) as info:
        _switch.switch_on()
    message = str(info.value)
    assert message.startswith("STARLING_AS_STARLETTE=1 could not switch this process to starling")
    assert shown in message
    assert "call starling.compat.alias_starlette() first thing" in message
    assert sys.modules["starlette"].__name__ == "starlette"
    assert not hasattr(sys.modules["starlette"], "__starling_alias__")


# -- the .pth file, in real interpreters -------------------------------------------------------


def test_variable_set_starlette_is_starling() -> None:
    code = SHOW_STARLETTE + "; print(starlette.__version__)"
    result = python(code, STARLING_AS_STARLETTE="yes")
    assert result.stderr == ""
    routing_file, version = result.stdout.split()
    # the real Starlette is installed here too (FastAPI needs it): starling wins anyway
    assert Path(routing_file) == STARLING_DIR / "routing.py"
    assert version == "1.10.0"


@pytest.mark.parametrize("value", ["0", "", None])
def test_variable_off_the_real_starlette_loads(value: str | None) -> None:
    result = python(SHOW_STARLETTE, STARLING_AS_STARLETTE=value)
    assert result.stderr == ""
    assert Path(result.stdout.strip()).parent.name == "starlette"


def test_variable_off_imports_nothing() -> None:
    """Unset, the .pth line costs an environ lookup: starling is not even imported."""
    result = python("import sys; print('starling' in sys.modules)", STARLING_AS_STARLETTE=None)
    assert result.stdout == "False\n"


def test_variable_not_understood_stops_the_interpreter() -> None:
    result = python("print('user code ran')", STARLING_AS_STARLETTE="maybe")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "starling: STARLING_AS_STARLETTE='maybe' is not understood. Set it to 1 to run starlette "
        "imports on starling, or to 0 (or unset it) to leave Starlette alone.\n"
    )


def test_starlette_imported_before_the_switch_stops_the_interpreter() -> None:
    """-S delays site (and its .pth files) until the code imports it, after Starlette."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.append({sysconfig.get_paths()["purelib"]!r})
        import starlette, site
        site.main()
        print("user code ran")
        """
    )
    result = python(code, "-S", STARLING_AS_STARLETTE="1")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        "starling: STARLING_AS_STARLETTE=1 could not switch this process to starling: the real "
        "Starlette was imported first (starlette already in sys.modules)"
    )


# -- starling-run ------------------------------------------------------------------------------


def test_starling_run_execs_with_the_variable() -> None:
    code = SHOW_STARLETTE + "; import os; print(os.environ['STARLING_AS_STARLETTE'])"
    result = subprocess.run(
        [BIN / "starling-run", "python", "-c", code],
        capture_output=True,
        text=True,
        env=environment(STARLING_AS_STARLETTE=None),
        timeout=60,
        check=False,
    )
    assert result.stderr == ""
    routing_file, value = result.stdout.split()
    assert Path(routing_file) == STARLING_DIR / "routing.py"
    assert value == "1"


def test_starling_run_passes_the_exit_status_on() -> None:
    result = subprocess.run([BIN / "starling-run", "python", "-c", "exit(7)"], timeout=60)
    assert result.returncode == 7


def test_prepare_uses_this_environments_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")  # only the interpreter's own directory can provide it
    prepared = _run.prepare(["uvicorn", "--version"])
    assert prepared == (
        str(BIN / "uvicorn"),
        [str(BIN / "uvicorn"), "--version"],
        {**environment(), "STARLING_AS_STARLETTE": "1"},
    )


def test_prepare_takes_a_path(tmp_path: Path) -> None:
    script = tmp_path / "serve"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    prepared = _run.prepare([str(script)])
    assert not isinstance(prepared, int)
    assert prepared[0] == str(script)


def test_prepare_falls_back_to_path() -> None:
    prepared = _run.prepare(["sh", "-c", "true"])
    assert not isinstance(prepared, int)
    assert Path(prepared[0]).name == "sh"


def test_no_command_shows_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run.prepare([]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("usage: starling-run COMMAND [ARGS...]\n")


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run.prepare([flag]) == 0
    assert "starling-run uvicorn main:app --workers 4" in capsys.readouterr().out


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run.prepare(["no-such-command-here"]) == 127
    assert capsys.readouterr().err == (
        f"starling-run: command not found: 'no-such-command-here' (looked in {BIN} and on "
        f"PATH). Install it, or give its path.\n"
    )


# -- servers, workers and test runs that never heard of starling --------------------------------


def probe(port: int) -> dict[str, object]:
    # a fresh connection each time, so that several workers each get a turn
    response = httpx.get(
        f"http://127.0.0.1:{port}/probe", timeout=10, headers={"connection": "close"}
    )
    assert response.status_code == 200
    data: dict[str, object] = response.json()
    return data


def assert_served_by_starling(data: dict[str, object]) -> None:
    assert data["starlette_file"] == str(STARLING_DIR / "__init__.py")
    assert data["starlette_version"] == "1.10.0"
    assert data["request_class"] == "starling.requests.Request"


def test_uvicorn_under_the_variable() -> None:
    port = free_port()
    command: list[str | Path] = [
        BIN / "uvicorn",
        "--app-dir",
        APPS,
        "probe:app",
        "--port",
        str(port),
    ]
    with running(command, port, environment(STARLING_AS_STARLETTE="1")):
        assert_served_by_starling(probe(port))


def test_uvicorn_without_the_variable_serves_starlette() -> None:
    """The same command without the switch: the probe tells the two apart."""
    port = free_port()
    command: list[str | Path] = [
        BIN / "uvicorn",
        "--app-dir",
        APPS,
        "probe:app",
        "--port",
        str(port),
    ]
    with running(command, port, environment(STARLING_AS_STARLETTE=None)):
        data = probe(port)
    assert Path(str(data["starlette_file"])).parent.name == "starlette"
    assert data["request_class"] == "starlette.requests.Request"


def test_fastapi_run_under_starling_run() -> None:
    port = free_port()
    command: list[str | Path] = [BIN / "starling-run", "fastapi", "run", APPS / "probe.py"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with running(command, port, environment(STARLING_AS_STARLETTE=None)):
        assert_served_by_starling(probe(port))


def test_two_uvicorn_workers_both_on_starling() -> None:
    port = free_port()
    command: list[str | Path] = [BIN / "starling-run", "uvicorn", "--app-dir", APPS, "probe:app"]
    command += ["--port", str(port), "--workers", "2"]
    seen: dict[object, dict[str, object]] = {}

    def both_workers_answered() -> bool:
        data = probe(port)
        seen[data["pid"]] = data
        return len(seen) == 2

    with running(command, port, environment(STARLING_AS_STARLETTE=None)) as server:
        assert eventually(both_workers_answered, timeout=30)
    assert server.pid not in seen  # the answers came from the two worker processes
    for data in seen.values():
        assert_served_by_starling(data)


FASTAPI_TESTS = """
import starlette
from fastapi import FastAPI
from fastapi.testclient import TestClient

app = FastAPI()


@app.get("/items/{item_id}")
def read_item(item_id: int, q: str | None = None) -> dict[str, object]:
    return {"item_id": item_id, "q": q}


def test_read_item() -> None:
    client = TestClient(app)
    response = client.get("/items/3", params={"q": "x"})
    assert response.json() == {"item_id": 3, "q": "x"}


def test_runs_on_starling() -> None:
    print("starlette is", starlette.__file__)
    assert TestClient.__module__ == "starling.testclient"
"""


def test_pytest_run_of_a_fastapi_test_file(tmp_path: Path) -> None:
    (tmp_path / "test_app.py").write_text(FASTAPI_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not this repository's configuration
    result = subprocess.run(
        [BIN / "starling-run", "pytest", "-q", "-s", "-p", "no:cacheprovider", "test_app.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        # PERF: without the plugins installed here (hypothesis, anyio, ...): seconds saved
        env=environment(STARLING_AS_STARLETTE=None, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"starlette is {STARLING_DIR / '__init__.py'}\n" in result.stdout
    assert "2 passed" in result.stdout
