"""Benchmark: what exactness costs (issue 19): the listing before and after its rewrite, side by side.

The listing was rewritten to trust only what eTelecom documents: it ends only on an empty page,
yields each id once (:class:`~airflow_provider_etelecom.client.seen.SeenIds`), moves on by date
bounds that read each page's last second whole until a second holding a whole page makes it learn
what the cursor holds, relies on order only while the pages came in ``created_at`` order. This
measures what that costs against a baseline commit (default ``effdc9b``, the code before the
rewrite) on a keyset platform (the simulator's defaults).

The baseline is checked out in a temporary git worktree (removed afterwards). Each case has one
simulator in its own process, run from *this* checkout (the same data for both sides). Each round
runs the bare sequential ``requests`` loop once (the speed-up's reference, shared by both sides),
then each side lists the range in its own fresh process with ``PYTHONPATH`` at its tree
(``benchmarks/_listing_child.py``), interleaved: base, new, base, new... Per side: seconds (wall,
and the client process's CPU), the ``ListRequestConsent`` requests the simulator answered, the
client's counters (probes, date-bound steps), splits, peak memory growth (``VmHWM``), and whether
it listed exactly the bare loop's ids, each once. Printed per case: every round, then medians and
the ratios new/base next to the targets. Nothing asserts on time (machines are noisy).

Cases (30,000 consents, 20 ms per request unless said):

* ``even`` / ``day`` / ``hour`` - benchmarks.bench_parallel's shapes over 8 parallel windows.
  Targets: the rewrite adds at most 10% requests; on ``day`` and ``hour`` the speed-up over the
  bare loop keeps at least 95% of the baseline's.
* ``seq-even-N`` / ``seq-hour-N`` - sequential listings of 250, 1,000 and 30,000 consents: how many
  requests per listing ending only on an empty page (and continuing by date bounds) adds
  (the issue: "at most one or two").
* ``mem-N`` - sequential listings of 10,000 and 200,000 consents (0 ms per request, one round):
  the peak grows by less than 30 MB from the one to the other. Plus the id set's own size per
  million ids (``SeenIds.nbytes()`` and its buffer), measured in this process.
* ``year`` (``--year``) - 300,000 consents over a year, 16 windows, 100 ms per request (about
  25 s per side per round): peak growth under 50 MB.

    python -m benchmarks.bench_platform_cost                 # every case but year, 3 rounds
    python -m benchmarks.bench_platform_cost --year --cases year
    python -m benchmarks.bench_platform_cost --quick         # hour, seq-hour, mem at 1k-5k: one round, ~30 s (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from array import array
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from benchmarks.bench_parallel import KEY, PAGE, Shape, bare_sequential, skewed_simulator

ROOT = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).with_name("_listing_child.py")
UTC = timezone.utc
SIDES = ("base", "new")
#: The issue's targets.
MAX_REQUESTS_RATIO = 1.10
MIN_SPEEDUP_RATIO = 0.95
MAX_MEMORY_GROWTH_MB = 30.0
MAX_YEAR_GROWTH_MB = 50.0
MAX_EXTRA_PER_LISTING = 2
QUICK_CASES = ("hour", "seq-hour-250", "seq-hour-3000")


@dataclass(frozen=True)
class Case:
    """One listing measured on both sides.

    :param workers: parallel windows (``None``: sequential).
    :param bare: run the bare loop each round (the speed-up's reference).
    :param rounds: rounds for this case (``None``: ``--runs``).
    """

    name: str
    group: str
    what: str
    shape: Shape
    workers: int | None
    latency_ms: float
    bare: bool = True
    rounds: int | None = None


def _month(n: int, burst: bool = False) -> Shape:
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 31, tzinfo=UTC)
    if burst:
        return Shape(start, end, n, 0.8, datetime(2026, 1, 17, tzinfo=UTC), 86_400)
    return Shape(start, end, n)


def _hour(n: int) -> Shape:
    day = datetime(2026, 1, 10, tzinfo=UTC)
    return Shape(day, day + timedelta(days=1), n, 0.95, day + timedelta(hours=14), 3_600)


def cases(quick: bool, year: bool, memory_latency_ms: float) -> list[Case]:
    """Return the cases of a full run, the year case only with ``year``.

    ``quick`` (CI, well under a minute: each listing is a fresh process importing Airflow) keeps one
    case of each kind at 3,000 consents: ``hour``, ``seq-hour-250``, ``seq-hour-3000``, ``mem-1000``
    and ``mem-5000``.
    """
    n = 3_000 if quick else 30_000
    listed: list[Case] = [
        Case("even", "parallel", f"{n:,} consents over 30 days, 8 windows", _month(n), 8, 20.0),
        Case("day", "parallel", f"{n:,} over 30 days, 80% on one day, 8 windows", _month(n, True), 8, 20.0),
        Case("hour", "parallel", f"{n:,} in one day, 95% in one hour, 8 windows", _hour(n), 8, 20.0),
    ]
    for size in (250, 1_000, n):
        listed.append(Case(f"seq-even-{size}", "sequential", f"{size:,} over 30 days", _month(size), None, 20.0))
    for size in (250, 1_000, n):
        what = f"{size:,} in one day, 95% in one hour"
        listed.append(Case(f"seq-hour-{size}", "sequential", what, _hour(size), None, 20.0))
    for size in (1_000, 5_000) if quick else (10_000, 200_000):
        what = f"{size:,} over 30 days, sequential, {memory_latency_ms:g} ms"
        listed.append(Case(f"mem-{size}", "memory", what, _month(size), None, memory_latency_ms, bare=False, rounds=1))
    if year:
        start = datetime(2025, 1, 1, tzinfo=UTC)
        shape = Shape(start, datetime(2026, 1, 1, tzinfo=UTC), 300_000)
        listed.append(Case("year", "year", "300,000 over a year, 16 windows, 100 ms", shape, 16, 100.0, bare=False))
    if quick:
        listed = [case for case in listed if case.name in QUICK_CASES or case.group in ("memory", "year")]
    return listed


# -- one side, one round -----------------------------------------------------------------------


def run_side(tree: Path, case: Case, base_url: str, folder: Path) -> dict[str, Any]:
    """List ``case``'s range once with the provider in ``tree``, in a fresh process; return its figures and ids."""
    ids_out = folder / "ids.bin"
    spec = {
        "base_url": base_url,
        "root_url": base_url.split("/v1/", 1)[0],
        "key": KEY,
        "start": case.shape.start.isoformat(),
        "end": case.shape.end.isoformat(),
        "workers": case.workers,
        "ids_out": str(ids_out),
    }
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "AIRFLOW_HOME": str(folder / "airflow-home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "PYTHONWARNINGS": "ignore",
    }
    proc = subprocess.run(
        [sys.executable, str(CHILD), json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(folder),
        check=False,
        timeout=3_600,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"{case.name} on {tree} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    if Path(result["package"]).resolve() != (tree / "airflow_provider_etelecom").resolve():
        raise RuntimeError(f"the child meant for {tree} imported the provider from {result['package']}")
    ids: array[int] = array("q")
    ids.frombytes(ids_out.read_bytes())
    ids_out.unlink()
    result["ids"] = ids
    return result


def _exact(ids: array[int], reference: set[int] | None, consents: int) -> bool:
    """Tell whether ``ids`` holds each of the ``consents`` ids once (and exactly ``reference``'s, if given)."""
    unique = set(ids)
    return len(ids) == len(unique) == consents and (reference is None or unique == reference)


def run_case(case: Case, trees: dict[str, Path], rounds: int, folder: Path) -> dict[str, Any]:
    """Run ``case`` for ``rounds`` interleaved rounds against one simulator; print every round and return them."""
    print(f"\n{case.name}: {case.what} ({rounds} round{'s' if rounds > 1 else ''})", flush=True)
    runs: list[dict[str, Any]] = []
    with skewed_simulator(case.shape, latency_ms=case.latency_ms, stderr=subprocess.DEVNULL) as base_url:
        for round_no in range(1, rounds + 1):
            row: dict[str, Any] = {}
            reference: set[int] | None = None
            if case.bare:
                started = time.perf_counter()
                bare_ids, bare_requests = bare_sequential(base_url, case.shape)
                row["bare"] = {"seconds": time.perf_counter() - started, "requests": bare_requests}
                reference = {int(i) for i in bare_ids}
            for side in SIDES:
                result = run_side(trees[side], case, base_url, folder)
                ids = result.pop("ids")
                result["exact"] = _exact(ids, reference, case.shape.consents)
                if reference is None:  # no bare loop: the sides are compared with each other
                    reference = set(ids)
                if "bare" in row:
                    result["speedup"] = row["bare"]["seconds"] / result["seconds"]
                row[side] = result
            runs.append(row)
            parts = [f"bare {row['bare']['seconds']:6.2f} s {row['bare']['requests']:>5} req"] if "bare" in row else []
            parts += [
                f"{side} {row[side]['seconds']:6.2f} s {row[side]['requests']:>5} req "
                f"+{row[side]['growth_mb']:.1f} MB{'' if row[side]['exact'] else ' IDS DIFFER'}"
                for side in SIDES
            ]
            print(f"  round {round_no}: " + " | ".join(parts), flush=True)
    return {"case": case, "runs": runs}


# -- summaries ---------------------------------------------------------------------------------


def _median(runs: list[dict[str, Any]], side: str, *path: str) -> float:
    values = []
    for row in runs:
        value: Any = row[side]
        for key in path:
            value = value.get(key, 0) if isinstance(value, dict) else 0
        values.append(value)
    return float(statistics.median(values))


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def summarize(done: dict[str, Any], *, quick: bool = False) -> dict[str, Any]:
    """Print a case's medians and ratios against its targets (not in a quick run: they are for full size)."""

    def verdict(met: bool) -> str:
        return "judged at full size" if quick else _verdict(met)

    case: Case = done["case"]
    runs = done["runs"]
    figures: dict[str, Any] = {"case": case.name, "group": case.group}
    print(
        f"  {'':5} {'seconds':>8} {'cpu s':>6} {'speed-up':>9} {'requests':>9} {'pages':>6} {'probes':>6} "
        f"{'resumes':>7} {'rereads':>7} {'no page':>7} {'splits':>6} {'growth MB':>9}  exact"
    )
    if case.bare:
        bare_s, bare_requests = _median(runs, "bare", "seconds"), _median(runs, "bare", "requests")
        print(f"  {'bare':5} {bare_s:8.2f} {'':>6} {'':>9} {bare_requests:9.0f}")
    for side in SIDES:
        med = {
            key: _median(runs, side, *path)
            for key, path in {
                "seconds": ("seconds",),
                "cpu_s": ("cpu_s",),
                "requests": ("requests",),
                "pages": ("client", "pages"),
                "probes": ("client", "probes"),
                "resumes": ("client", "resumes"),
                "rereads": ("client", "rereads"),
                "retries": ("client", "retries"),
                "splits": ("splits",),
                "growth_mb": ("growth_mb",),
                "peak_mb": ("peak_mb",),
            }.items()
        }
        if case.bare:
            med["speedup"] = _median(runs, side, "speedup")
            med["best_speedup"] = max(row[side]["speedup"] for row in runs)
        med["exact"] = all(row[side]["exact"] for row in runs)
        no_page = med["requests"] - med["pages"] - med["probes"]
        speedup = f"{med['speedup']:8.2f}x" if case.bare else f"{'':>9}"
        print(
            f"  {side:5} {med['seconds']:8.2f} {med['cpu_s']:6.2f} {speedup} {med['requests']:9.0f} "
            f"{med['pages']:6.0f} {med['probes']:6.0f} {med['resumes']:7.0f} {med['rereads']:7.0f} {no_page:7.0f} "
            f"{med['splits']:6.0f} {med['growth_mb']:9.1f}  {'yes' if med['exact'] else 'NO'}"
        )
        figures[side] = med
    base, new = figures["base"], figures["new"]
    figures["requests_ratio"] = new["requests"] / base["requests"]
    figures["extra_requests"] = new["requests"] - base["requests"]
    line = f"  new/base: requests {figures['requests_ratio']:.3f} ({figures['extra_requests']:+.0f})"
    if case.group == "parallel":
        line += f" (target <= {MAX_REQUESTS_RATIO:.2f}: {verdict(figures['requests_ratio'] <= MAX_REQUESTS_RATIO)})"
    if case.group == "sequential":
        met = figures["extra_requests"] <= MAX_EXTRA_PER_LISTING
        line += f" per listing (issue: at most {MAX_EXTRA_PER_LISTING}: {verdict(met)})"
    if case.bare:
        figures["speedup_ratio"] = new["speedup"] / base["speedup"]
        figures["best_speedup_ratio"] = new["best_speedup"] / base["best_speedup"]
        line += f"; speed-up {figures['speedup_ratio']:.3f}"
        if case.group == "parallel" and case.name != "even":
            line += f" (target >= {MIN_SPEEDUP_RATIO:.2f}: {verdict(figures['speedup_ratio'] >= MIN_SPEEDUP_RATIO)})"
        figures["seconds_ratio"] = new["seconds"] / base["seconds"]
        line += f" (best rounds: {figures['best_speedup_ratio']:.3f}); seconds {figures['seconds_ratio']:.3f}"
    if case.group == "year":
        pages = -(-case.shape.consents // PAGE)
        floor = pages * case.latency_ms / 1000
        line += f"; under the sequential floor ({floor:.0f} s): base {floor / base['seconds']:.1f}x, new "
        line += f"{floor / new['seconds']:.1f}x; growth new {new['growth_mb']:.1f} MB "
        line += f"(target < {MAX_YEAR_GROWTH_MB:.0f} MB: {verdict(new['growth_mb'] < MAX_YEAR_GROWTH_MB)})"
    print(line, flush=True)
    return figures


def memory_growth(figures: list[dict[str, Any]], *, quick: bool = False) -> dict[str, float]:
    """Print each side's peak growth from the smaller memory case to the larger; return them."""
    small, large = sorted((f for f in figures if f["group"] == "memory"), key=lambda f: int(f["case"].split("-")[1]))
    growth = {side: large[side]["peak_mb"] - small[side]["peak_mb"] for side in SIDES}
    print(f"\nPeak memory, {small['case']} -> {large['case']} (peak RSS of the child, VmHWM):")
    met = _verdict(growth["new"] < MAX_MEMORY_GROWTH_MB) if not quick else "judged at full size"
    for side in SIDES:
        target = f"  target < {MAX_MEMORY_GROWTH_MB:.0f} MB: {met}" if side == "new" else ""
        print(
            f"  {side:5} {small[side]['peak_mb']:6.1f} MB -> {large[side]['peak_mb']:6.1f} MB: {growth[side]:+.1f} MB "
            f"(each listing's own growth {small[side]['growth_mb']:+.1f} / {large[side]['growth_mb']:+.1f} MB){target}"
        )
    return growth


def seen_ids_size(count: int) -> dict[str, float]:
    """Fill a :class:`SeenIds` with ``count`` ids shaped like the simulator's, in pages of 100, newest first.

    Prints the sorted runs (``nbytes()``), the set buffer left at the end (the set and its ints, the
    most it holds is ``BUFFER`` ids) and tracemalloc's current and peak while filling (the merges'
    transient included), per million ids.
    """
    import random
    import sys as _sys

    from airflow_provider_etelecom.client.seen import BUFFER, SeenIds

    rng = random.Random(7)
    numbers, value = [], 1_200_000_000_000_000_000
    for _ in range(count):
        value += 1 + rng.randrange(1000)
        numbers.append(value)
    ids = [str(number) for number in reversed(numbers)]
    del numbers
    tracemalloc.start()
    seen = SeenIds()
    for at in range(0, count, PAGE):
        seen.add_new(ids[at : at + PAGE])
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    fresh = seen._fresh  # the buffer is private; a benchmark may look
    buffer = _sys.getsizeof(fresh) + sum(_sys.getsizeof(number) for number in fresh)
    full = set(range(2**62, 2**62 + BUFFER))
    full_buffer = _sys.getsizeof(full) + sum(_sys.getsizeof(number) for number in full)
    mb = 2**20
    result = {
        "ids": count,
        "runs_mb": seen.nbytes() / mb,
        "runs_mb_per_million": seen.nbytes() / (count - len(fresh)) * 1_000_000 / mb,
        "buffer_mb": buffer / mb,
        "buffer_ids": len(fresh),
        "full_buffer_mb": full_buffer / mb,
        "traced_mb": current / mb,
        "traced_peak_mb": peak / mb,
    }
    print(
        f"\nSeenIds, {count:,} ids added in pages of {PAGE}: sorted runs (nbytes) {result['runs_mb']:.2f} MB "
        f"({seen.nbytes() / (count - len(fresh)):.1f} bytes per id frozen), the set buffer "
        f"{result['buffer_mb']:.2f} MB "
        f"({len(fresh):,} ids; {result['full_buffer_mb']:.2f} MB at most, {BUFFER:,} ids); tracemalloc: "
        f"{result['traced_mb']:.2f} MB held, {result['traced_peak_mb']:.2f} MB peak while adding. Per million ids: "
        f"{result['runs_mb_per_million']:.2f} MB of runs plus a buffer of at most {result['full_buffer_mb']:.2f} MB"
    )
    return result


# -- the run -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_platform_cost", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--base", default="effdc9b", help="the baseline commit (default effdc9b: before the rewrite)")
    parser.add_argument(
        "--runs", type=int, default=None, help="interleaved rounds per case (default 3; 1 with --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="3,000 consents, one round, fewer cases (CI)")
    parser.add_argument("--year", action="store_true", help="add the 300,000-consent year case (16 windows, 100 ms)")
    parser.add_argument("--cases", nargs="*", help="only these cases (e.g. day hour seq-hour-30000 mem year)")
    parser.add_argument("--memory-latency-ms", type=float, default=0.0, help="latency of the memory cases (default 0)")
    args = parser.parse_args(argv)
    rounds = args.runs if args.runs is not None else (1 if args.quick else 3)
    if rounds < 1:
        parser.error("--runs must be at least 1")
    selected = [
        case
        for case in cases(args.quick, args.year, args.memory_latency_ms)
        if not args.cases
        or case.name in args.cases
        or case.group in args.cases
        or case.name.split("-")[0] in args.cases
    ]
    if not selected:
        parser.error(f"no case matches {args.cases}")
    known = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{args.base}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if known.returncode != 0:
        message = f"the baseline {args.base} is not in this clone (a shallow clone? `git fetch --unshallow`, or --base)"
        if args.quick:  # a smoke run in CI: say so, do not fail the other benchmarks
            print(f"skipped: {message}")
            return {"skipped": message}
        parser.error(message)
    # The simulator (started by skewed_simulator with this environment) runs from this checkout for both sides.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    label = head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")
    figures: dict[str, Any] = {"cases": []}
    with tempfile.TemporaryDirectory(prefix="etelecom-bench-cost-") as folder_name:
        folder = Path(folder_name)
        base = folder / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(base), args.base], cwd=ROOT, check=True)
        try:
            print(
                f"base = {args.base} (worktree), new = this checkout ({label}); simulator from this checkout, keyset "
                f"cursor (defaults), page {PAGE}; each listing in a fresh process, medians of the rounds. "
                f"speed-up = bare loop s / side s (median; best rounds: the ratio of each side's best speed-up); "
                f"cpu s = the client process's CPU during the listing; no page = requests - pages - probes (empty "
                f"pages that end a listing or window, retries); rereads = consents read again by a date-bound step"
            )
            trees = {"base": base, "new": ROOT}
            for case in selected:
                done = run_case(case, trees, case.rounds or rounds, folder)
                figures["cases"].append(summarize(done, quick=args.quick))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
            subprocess.run(["git", "worktree", "prune"], cwd=ROOT, check=False)
    if sum(1 for f in figures["cases"] if f["group"] == "memory") == 2:
        figures["memory_growth_mb"] = memory_growth(figures["cases"], quick=args.quick)
    if not args.cases or "mem" in args.cases or "memory" in args.cases:
        figures["seen_ids"] = seen_ids_size(100_000 if args.quick else 1_000_000)
    return figures


if __name__ == "__main__":
    main(sys.argv[1:])
