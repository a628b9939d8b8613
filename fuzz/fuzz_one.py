"""One fuzz target under atheris: ``python -m fuzz.fuzz_one TARGET [libFuzzer options] CORPUS...``.

Started by fuzz/run.py, one process per target (atheris never returns from ``Fuzz()``).
starling is instrumented for coverage as it is imported, so the fuzzer steers by the branches
of the parsers themselves.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["starling"]):
    from fuzz.targets import TARGETS


def main() -> None:  # pragma: no cover (runs only under atheris, in fuzz/run.py's processes)
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":  # pragma: no cover (see main)
    main()
