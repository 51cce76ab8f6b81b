"""Benchmark: parallel windows with adaptive splitting vs the bare sequential loop, on skewed data.

Each case runs the simulator in its own process (20 ms latency per request) and lists the range
with a bare sequential ``requests`` loop and with the hook over 8 parallel windows, side by side
in one run; it checks both saw the same set of ids and prints seconds, the speed-up over the bare
loop next to the ideal one (``min(workers, pages)``), requests relative to the sequential listing
(target: at most 5% more), and the number of splits with per-worker pages and idle seconds:

* ``even``  - 30,000 consents spread evenly over 30 days
* ``day``   - the same, 80% of them created on one day of the 30
* ``hour``  - 30,000 consents in one day, 95% of them in one hour
* ``faults`` / ``inclusive`` - the ``day`` data again, under injected faults (500s, cut
  connections, truncated bodies, 429s) and with an inclusive ``date_to``: same ids as sequential

The full run adds 300,000 consents over a year at 100 ms with 16 workers, against the computed
sequential floor (pages x latency; the bare loop would take over 5 minutes), with the listing's
peak memory growth measured in a child process. Target: at least 10x under the floor, < 50 MB.

    python -m benchmarks.bench_parallel           # every case
    python -m benchmarks.bench_parallel --quick   # 3,000 consents per case, no year case (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests

from airflow_provider_etelecom.client import ClientStats
from airflow_provider_etelecom.client.parallel import ParallelStats
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.testing import SimulatorProcess

KEY = "bench-parallel-key-0123456789"
UTC = timezone.utc
PAGE = 100


@dataclass(frozen=True)
class Shape:
    """How a case's consents are spread: ``burst_share`` of them in ``[burst_start, +burst_span_s)``.

    Mirrors the simulator's coming ``burst_share``/``burst_start``/``burst_span_s`` switches, so
    :func:`skewed_simulator` becomes three command-line flags once they land.
    """

    start: datetime
    end: datetime
    consents: int
    burst_share: float = 0.0
    burst_start: datetime | None = None
    burst_span_s: float = 0.0


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@contextmanager
def skewed_simulator(shape: Shape, *extra: str, latency_ms: float, seed: int = 5, stderr: Any = None) -> Iterator[str]:
    """Start a simulator process holding ``shape``'s consents; yield its shop base URL.

    ``stderr`` is the simulator's (``subprocess.DEVNULL`` silences its start-up line).

    The even part is seeded by the simulator; the burst is inserted through the control endpoint
    ``/_simulator/insert`` in buckets of whole seconds (a few consents share each second, as ties
    do on the real platform).
    """
    burst = round(shape.consents * shape.burst_share)
    args = ["--consents", str(shape.consents - burst), "--start", _iso(shape.start), "--end", _iso(shape.end)]
    with SimulatorProcess(*args, "--latency-ms", str(latency_ms), *extra, api_key=KEY, stderr=stderr) as sim:
        if burst:
            assert shape.burst_start is not None
            root = sim.root_url
            rng = random.Random(seed)
            seconds = Counter(int(rng.random() * shape.burst_span_s) for _ in range(burst))
            with requests.Session() as control:
                for offset, count in sorted(seconds.items()):
                    created = _iso(shape.burst_start + timedelta(seconds=offset))
                    answer = control.post(f"{root}/_simulator/insert", json={"count": count, "created_at": created})
                    answer.raise_for_status()
        yield sim.base_url


def bare_sequential(base_url: str, shape: Shape) -> tuple[list[str], int]:
    """List the range with a bare ``requests`` loop; return the ids and the number of requests."""
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    ids: list[str] = []
    after, sent = None, 0
    while True:
        paging: dict[str, object] = {"limit": PAGE, **({"after": after} if after else {})}
        body = {"filter": {"date_from": _iso(shape.start), "date_to": _iso(shape.end)}, "paging": paging}
        page = session.post(f"{base_url}.Zalo/ListRequestConsent", data=json.dumps(body)).json()
        sent += 1
        consents = page.get("consents") or []
        ids.extend(c["id"] for c in consents)
        after = page.get("paging", {}).get("next")
        if not consents or not after or len(consents) < PAGE:
            return ids, sent


def hook_parallel(
    base_url: str, shape: Shape, workers: int, ids: list[str] | array[int] | None = None
) -> tuple[list[str] | array[int], ClientStats, ParallelStats]:
    """List the range through the hook over ``workers`` parallel windows; collect the ids into ``ids``."""
    os.environ["AIRFLOW_CONN_ETELECOM_BENCH"] = json.dumps(
        {"conn_type": "etelecom", "host": base_url, "password": KEY, "extra": {"max_retries": 10}}
    )
    hook = EtelecomHook("etelecom_bench")
    report = ParallelStats()
    query = hook.build_query(date_from=shape.start, date_to=shape.end)
    collected: Any = [] if ids is None else ids
    convert = int if isinstance(collected, array) else str
    for page in hook.iter_query_pages(query, max_parallel_windows=workers, parallel_stats=report):
        collected.extend(convert(c["id"]) for c in page["consents"])
    stats = hook.client.stats
    hook.close()
    return collected, stats, report


def _timed(run: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def run_case(name: str, shape: Shape, workers: int, latency_ms: float, *extra: str) -> dict[str, Any]:
    """Run one case side by side; print and return its figures."""
    # The bare loop has no retries: it always runs against the plain platform (the same data).
    with skewed_simulator(shape, latency_ms=latency_ms) as base_url:
        bare_s, (bare_ids, bare_requests) = _timed(lambda: bare_sequential(base_url, shape))
        if not extra:
            par_s, (ids, stats, report) = _timed(lambda: hook_parallel(base_url, shape, workers))
    if extra:  # faults or a platform switch: the parallel listing runs against that platform
        with skewed_simulator(shape, *extra, latency_ms=latency_ms) as base_url:
            par_s, (ids, stats, report) = _timed(lambda: hook_parallel(base_url, shape, workers))
    same = len(ids) == len(set(ids)) and set(ids) == set(bare_ids) and len(bare_ids) == shape.consents
    pages = -(-shape.consents // PAGE)
    figures = {
        "case": name,
        "bare_s": bare_s,
        "parallel_s": par_s,
        "speedup": bare_s / par_s,
        "ideal": min(workers, pages),
        "requests_ratio": (stats.requests - stats.retries) / bare_requests,
        "retries": stats.retries,
        "splits": report.splits,
        "same_ids": same,
        "workers": report.describe(),
    }
    print(
        f"{name:<10} {bare_s:>7.2f} {par_s:>8.2f} {figures['speedup']:>7.1f}x {figures['ideal']:>5}x "
        f"{stats.requests - stats.retries:>5}/{bare_requests:<5} {100 * (figures['requests_ratio'] - 1):>+6.1f}% "
        f"{report.splits:>6} {stats.retries:>7}  {'yes' if same else 'NO'}",
        flush=True,
    )
    print(f"{'':10} {report.describe()}", flush=True)
    if not same:
        raise AssertionError(f"{name}: the parallel listing's ids differ from the sequential listing's")
    return figures


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _child_year(base_url: str, start: str, end: str, workers: int) -> None:
    """In a fresh process: list the year over ``workers`` windows; print seconds, count and peak growth."""
    shape = Shape(datetime.fromisoformat(start), datetime.fromisoformat(end), 0)
    hook_parallel(base_url, Shape(shape.start, shape.start + timedelta(days=1), 0), 2)  # imports, connection
    baseline = _rss_mb()
    # Ids as int64 in one array (2.4 MB for 300,000): the benchmark's own bookkeeping must not
    # count as the listing's memory.
    ids: array[int] = array("q")
    seconds, (_, stats, report) = _timed(lambda: hook_parallel(base_url, shape, workers, ids))
    growth = _rss_mb() - baseline
    result = {
        "seconds": seconds,
        "count": len(ids),
        "unique": len(set(ids)),
        "requests": stats.requests,
        "growth_mb": growth,
        "workers": report.describe(),
        "splits": report.splits,
    }
    print("RESULT " + json.dumps(result), flush=True)


def run_year(consents: int, workers: int, latency_ms: float) -> dict[str, Any]:
    """300,000 consents over a year: time against the computed sequential floor, in a child process."""
    shape = Shape(datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), consents)
    with skewed_simulator(shape, latency_ms=latency_ms) as base_url:
        command = [sys.executable, "-m", "benchmarks.bench_parallel", "--child-year", base_url]
        command += [shape.start.isoformat(), shape.end.isoformat(), str(workers)]
        proc = subprocess.run(
            command, capture_output=True, text=True, check=False, cwd=str(Path(__file__).resolve().parents[1])
        )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"year child failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    pages = -(-consents // PAGE)
    floor = pages * latency_ms / 1000
    same = result["count"] == result["unique"] == consents
    print(f"\n{consents:,} consents over a year, {pages:,} pages, {latency_ms:g} ms per request, {workers} workers:")
    print(
        f"  parallel {result['seconds']:.1f} s; sequential floor (pages x latency) {floor:.0f} s; "
        f"{floor / result['seconds']:.1f}x under the floor (target >= 10x)"
    )
    print(
        f"  requests {result['requests']:,} vs {pages:,} pages sequentially "
        f"({100 * (result['requests'] / pages - 1):+.1f}%); {result['splits']} splits; every id once: "
        f"{'yes' if same else 'NO'}"
    )
    print(f"  peak memory growth {result['growth_mb']:.1f} MB (target < 50 MB)")
    print(f"  {result['workers']}")
    if not same:
        raise AssertionError("year case: ids missing or repeated")
    return {"floor_s": floor, "under_floor": floor / result["seconds"], **result}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consents", type=int, default=30_000, help="consents per skewed case")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="3,000 consents per case, no year case")
    parser.add_argument("--cases", nargs="*", help="only these cases (even, day, hour, faults, inclusive, year)")
    parser.add_argument("--child-year", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_year:
        base_url, start, end, workers = args.child_year
        _child_year(base_url, start, end, int(workers))
        return {}
    n = 3_000 if args.quick else args.consents
    month = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 31, tzinfo=UTC))
    day = (datetime(2026, 1, 10, tzinfo=UTC), datetime(2026, 1, 11, tzinfo=UTC))
    campaign = Shape(*month, n, 0.8, datetime(2026, 1, 17, tzinfo=UTC), 86_400)
    cases = [
        ("even", Shape(*month, n), ()),
        ("day", campaign, ()),
        ("hour", Shape(*day, n, 0.95, datetime(2026, 1, 10, 14, tzinfo=UTC), 3_600), ()),
        (
            "faults",
            campaign,
            (
                "--error-rate",
                "0.05",
                "--drop-rate",
                "0.01",
                "--truncate-rate",
                "0.01",
                "--rate-limit-rate",
                "0.01",
                "--retry-after",
                "0.2",
                "--fault-seed",
                "3",
            ),
        ),
        ("inclusive", campaign, ("--date-to-inclusive",)),
    ]
    print(
        f"{n:,} consents per case, {args.workers} workers, {args.latency_ms:g} ms per request "
        f"(bare = bare sequential requests loop; speed-up = bare / parallel; ideal = min(workers, pages); "
        f"requests = parallel requests without retries / sequential requests)"
    )
    print(
        f"{'case':<10} {'bare s':>7} {'parallel':>8} {'speed-up':>8} {'ideal':>6} {'requests':>11} "
        f"{'extra':>7} {'splits':>6} {'retries':>7}  same ids"
    )
    wanted = set(args.cases) if args.cases else {*(name for name, _, _ in cases), "year"}
    figures: dict[str, Any] = {
        "cases": [
            run_case(name, shape, args.workers, args.latency_ms, *extra)
            for name, shape, extra in cases
            if name in wanted
        ]
    }
    if not args.quick and "year" in wanted:
        figures["year"] = run_year(300_000, 16, 100.0)
    return figures


if __name__ == "__main__":
    main(sys.argv[1:])
