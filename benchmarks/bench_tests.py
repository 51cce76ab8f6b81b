"""Benchmark: the default test suite's wall time, this checkout against a baseline commit, side by side.

For each Airflow version, runs pytest on the baseline commit (checked out in a temporary git
worktree) and on this checkout, ``--runs`` times each, interleaved (baseline, this, baseline,
this, ...) so a change in the machine's load falls on both. Each side runs pytest as its own
``scripts/test`` ran it: the baseline in one process by default (``--base-args``), this checkout
with pytest-xdist (``--head-args``, default what ``scripts/test`` passes). Both use the same
environment (``.venvs/airflow-VERSION``, built by ``./scripts/test``), so only the code and the
tests differ; the baseline's package is imported from its worktree (``PYTHONPATH``), not from
the editable install. The environment is this checkout's, so what it brings (e.g. bytecode
compiled at install, see ``scripts/lib.sh``) speeds up both sides and is not in the ratio. A run
that fails is reported and stops the benchmark: a faster red suite means nothing. Printed: every
run, the medians, and this checkout's median over the baseline's
(the goal of issue 12: at most 0.70, i.e. 30% less).

    python -m benchmarks.bench_tests --base b29f9f3                 # 3 runs each, Airflow 3.3.2 and 2.11.2
    python -m benchmarks.bench_tests --base b29f9f3 --runs 1 --versions 2.11.2

It runs the whole suite several times (about 20 minutes for the default), so ``benchmarks.run``
does not include it.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL = 0.70
#: What ``scripts/test`` passes to pytest today ("auto": a worker per core, plus one, tests/conftest.py).
HEAD_ARGS = "-n auto --dist worksteal"
_SUMMARY = re.compile(r"^=*\s*(\d+ passed.*) in [\d.]+s")


def _run(python: Path, cwd: Path, args: Sequence[str], pythonpath: Path | None) -> tuple[float, str]:
    """Run the suite once; return its wall seconds and pytest's summary line."""
    env = {**os.environ, "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    started = time.perf_counter()
    done = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if _SUMMARY.match(line.strip())]
    if done.returncode != 0 or not lines:
        raise SystemExit(
            f"the suite failed in {cwd} (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
        )
    match = _SUMMARY.match(lines[-1].strip())
    return seconds, match.group(1) if match else lines[-1]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print the figures (never fails on time: machines are noisy)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_tests", description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the baseline commit (e.g. the one a piece of work started from)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each side per version (default 3)")
    parser.add_argument("--versions", nargs="+", default=["3.3.2", "2.11.2"], help="Airflow versions")
    parser.add_argument("--base-args", default="", help="pytest arguments of the baseline (default: none)")
    parser.add_argument("--head-args", default=HEAD_ARGS, help=f"pytest arguments of this checkout ({HEAD_ARGS!r})")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    pythons = {version: ROOT / ".venvs" / f"airflow-{version}" / "bin" / "python" for version in args.versions}
    missing = [str(python) for python in pythons.values() if not python.exists()]
    if missing:
        parser.error(f"no environment {', '.join(missing)}: run ./scripts/test once first (it builds them)")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True)
    label = head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")
    with tempfile.TemporaryDirectory(prefix="etelecom-bench-tests-") as folder:
        base = Path(folder) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base], cwd=ROOT, check=True)
        try:
            print(
                f"baseline {args.base} (pytest {args.base_args or 'in one process'}) against this checkout, "
                f"{label} (pytest {args.head_args}); {args.runs} interleaved runs each",
                flush=True,
            )
            ratios = {}
            for version, python in pythons.items():
                walls: dict[str, list[float]] = {"baseline": [], "this": []}
                for run in range(1, args.runs + 1):
                    for side, cwd, extra, path in (
                        ("baseline", base, args.base_args, base),
                        ("this", ROOT, args.head_args, None),
                    ):
                        seconds, summary = _run(python, cwd, shlex.split(extra), path)
                        walls[side].append(seconds)
                        print(f"  Airflow {version}, run {run}, {side:8}: {seconds:6.1f} s  ({summary})", flush=True)
                before, after = statistics.median(walls["baseline"]), statistics.median(walls["this"])
                ratios[version] = after / before
                change = f"{abs(1 - after / before):.0%} {'less' if after <= before else 'more'}"
                print(
                    f"  Airflow {version}: median baseline {before:.1f} s, this {after:.1f} s: "
                    f"{after / before:.2f} of the baseline ({change}; goal <= {GOAL:.2f})",
                    flush=True,
                )
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
            subprocess.run(["git", "worktree", "prune"], cwd=ROOT, check=False)  # if the removal failed
    for version, ratio in ratios.items():
        print(f"Airflow {version}: this checkout's suite takes {ratio:.2f} of the baseline's wall time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
