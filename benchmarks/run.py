"""Run every benchmark and print its figures: the one command behind docs/benchmarks.md.

    python -m benchmarks.run            # full runs (about 20 minutes on 2 cores)
    python -m benchmarks.run --quick    # small runs: checks the scripts work (CI does this)
    python -m benchmarks.run hook parallel   # a selection

The test suite's own wall time against a baseline commit is benchmarks.bench_tests (it runs the
whole suite several times, so it is run alone).

Benchmarks print figures and ratios against a baseline run side by side; they never assert on
time (machines are noisy), so a slow machine prints worse ratios rather than failing.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time

BENCHMARKS = {
    "hook": "benchmarks.bench_hook",
    "operator": "benchmarks.bench_operator",
    "parallel": "benchmarks.bench_parallel",
    "batch": "benchmarks.bench_batch",
    "parquet": "benchmarks.bench_parquet",
    "sql": "benchmarks.bench_sql",
    "watcher": "benchmarks.bench_watcher",
    "shared_poll": "benchmarks.bench_shared_poll",
    "reliability": "benchmarks.reliability",
    "platform_cost": "benchmarks.bench_platform_cost",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="small runs, for CI")
    args = parser.parse_args(argv)
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="etelecom-bench-airflow-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    for name in args.names or list(BENCHMARKS):
        print(f"\n=== {name} ({BENCHMARKS[name]}) ===", flush=True)
        started = time.perf_counter()
        module = importlib.import_module(BENCHMARKS[name])
        module.main(["--quick"] if args.quick else [])
        print(f"--- {name}: {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
