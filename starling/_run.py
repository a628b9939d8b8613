"""``starling-run``: run a command with ``STARLING_AS_STARLETTE=1``, like ``ddtrace-run``.

    starling-run uvicorn main:app --workers 4
    starling-run fastapi run main.py
    starling-run pytest

The command replaces this process (``os.execvpe``), so signals, exit status and the terminal go
straight to it; the variable reaches it and every subprocess it starts.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence

from starling._switch import ENV_VAR

USAGE = f"""\
usage: starling-run COMMAND [ARGS...]

Run COMMAND with {ENV_VAR}=1, so that every Python process it starts imports starling
whenever code asks for starlette. Examples:

    starling-run uvicorn main:app --workers 4
    starling-run fastapi run main.py
    starling-run pytest
"""


def find_command(name: str) -> str | None:
    """``name`` beside this interpreter first, then on PATH.

    starling-run belongs to the environment starling is installed in: ``.venv/bin/starling-run
    uvicorn ...`` must run that environment's uvicorn (whose interpreter has the switch), not
    another one that comes first on PATH and would silently run the real Starlette.
    """
    if os.sep not in name:
        found = shutil.which(name, path=os.path.dirname(sys.executable))
        if found is not None:
            return found
    return shutil.which(name)


def prepare(argv: Sequence[str]) -> tuple[str, list[str], dict[str, str]] | int:
    """What to exec (path, argv, environment), or the exit status when there is nothing to."""
    args = list(argv)
    if not args:
        sys.stderr.write(USAGE)
        return 2
    if args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0
    executable = find_command(args[0])
    if executable is None:
        sys.stderr.write(
            f"starling-run: command not found: {args[0]!r} (looked in "
            f"{os.path.dirname(sys.executable)} and on PATH). Install it, or give its path.\n"
        )
        return 127
    # argv[0] is the full path: an interpreter finds its virtualenv (pyvenv.cfg) from argv[0],
    # so a bare "python" would become whichever python comes first on PATH.
    return executable, [executable, *args[1:]], {**os.environ, ENV_VAR: "1"}


def main() -> int:  # pragma: no cover - replaces the process: tests/test_switch.py runs it
    prepared = prepare(sys.argv[1:])
    if isinstance(prepared, int):
        return prepared
    os.execve(*prepared)
