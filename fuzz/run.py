"""Run the coverage-guided fuzzer (atheris, libFuzzer) on each parser for a bounded time.

    python -m fuzz.run                      # every target, FUZZ_SECONDS (default 20) each
    python -m fuzz.run --seconds 3600 multipart cookies
    python -m fuzz.run --list

Each target runs in its own process: atheris never returns from ``Fuzz()``. The seed corpus
in fuzz/corpus/<target>/ is read, never written; what the fuzzer discovers goes to
.fuzz/corpus/<target>/ (kept between runs, so a long run continues where the last one
stopped), and an input that breaks a target is saved as .fuzz/<target>-crash-<sha1>. Copy such
an input into fuzz/corpus/<target>/ and add a regression test: tests/test_fuzz_targets.py runs
every corpus file through its target.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "corpus"
WORK = ROOT / ".fuzz"
DEFAULT_SECONDS = 20
# libFuzzer's input size cap: large enough for every grammar, small enough to run fast.
MAX_INPUT_BYTES = 4096


def command(target: str, seconds: int, work: Path = WORK) -> list[str]:
    """The command that fuzzes ``target`` for ``seconds``, with its corpus and artifact paths."""
    discovered = work / "corpus" / target
    discovered.mkdir(parents=True, exist_ok=True)
    return [
        sys.executable,
        "-m",
        "fuzz.fuzz_one",
        target,
        f"-max_total_time={seconds}",
        f"-max_len={MAX_INPUT_BYTES}",
        f"-artifact_prefix={work}/{target}-",
        "-print_final_stats=1",
        str(discovered),
        str(SEEDS / target),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("targets", nargs="*", help="targets to run (default: all)")
    parser.add_argument(
        "--seconds",
        type=int,
        default=int(os.environ.get("FUZZ_SECONDS", DEFAULT_SECONDS)),
        help="time per target (default: $FUZZ_SECONDS or %(default)s)",
    )
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    options = parser.parse_args(argv)
    if options.list:
        print("\n".join(TARGETS))
        return 0
    unknown = sorted(set(options.targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; --list shows them")
    targets = options.targets or list(TARGETS)
    failed = [target for target in targets if fuzz(target, options.seconds) != 0]
    return report(failed)


def fuzz(target: str, seconds: int) -> int:
    """Fuzz one target in its own process; its exit status (0: nothing found)."""
    print(f"fuzz: {target} for {seconds} s", flush=True)
    # bounded: libFuzzer stops itself at max_total_time; the timeout is a safety net
    return subprocess.run(command(target, seconds), cwd=ROOT, timeout=seconds + 120).returncode


def report(failed: list[str]) -> int:
    if failed:
        print(f"fuzz: findings in {', '.join(failed)} (inputs saved under {WORK})")
        return 1
    print("fuzz: no findings")
    return 0


if __name__ == "__main__":  # pragma: no cover (run as a script; main() is tested)
    sys.exit(main())
