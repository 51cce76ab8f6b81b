"""Benchmark: ``ListConsentsOperator`` export to a local JSONL file, against the stock alternatives.

Side by side, each in its own subprocess (so peak RSS is that export's alone), exporting the same
consents from the simulator to a local JSON Lines file:

* ``operator``  - ``ListConsentsOperator(output_path="file://...")``
* ``http``      - ``HttpOperator`` + ``pagination_function`` (apache-airflow-providers-http), a
  ``response_filter`` that flattens the pages, then the returned list written as JSONL (what a
  DAG author does with it)
* ``bare``      - a bare ``requests.Session`` loop writing JSONL as it goes

Printed per run: seconds, consents/s, peak RSS of the child (``VmHWM``) and its growth over
the child's RSS after imports, and TCP connections the simulator accepted. Then the operator's
peak RSS for a small and a large export (memory must stay flat), and a small export's fixed cost:
a cold operator (fresh process, nothing warmed up, as every mapped task of a backfill runs) against
the bare loop, 20,000 consents at 5 and at 20 ms per request (target: at most 1.2 for both).
Targets (issue 4): operator at least as fast as ``HttpOperator``, within 20% of the bare loop, and
peak(200k) - peak(10k) <= 30 MB.

    python -m benchmarks.bench_operator            # 100k compared, 10k vs 200k memory
    python -m benchmarks.bench_operator --quick    # a small smoke run for CI
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from typing import Any

from benchmarks._child import run_child

KEY = "bench-key-0123456789"
PAGE = 100
KINDS = ("operator", "http", "bare")


def _rss_mb() -> float:
    """Peak resident memory of this process, in MB.

    Linux's ``VmHWM`` belongs to the process image, so it starts afresh at ``exec``; ``ru_maxrss``
    does not (a child spawned by a big parent inherits the parent's high-water mark), so it is only
    the fallback where ``/proc`` is missing.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / (1024 * 1024)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


# -- children: one export each -------------------------------------------------------------------


def _child_operator(base_url: str, out: str, pages: int, cold: bool = False) -> int:
    os.environ["AIRFLOW_CONN_ETELECOM_BENCH"] = json.dumps({"conn_type": "etelecom", "host": base_url, "password": KEY})
    from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator

    op = ListConsentsOperator(
        task_id="bench", etelecom_conn_id="etelecom_bench", output_path=f"file://{out}", max_pages=pages
    )
    if not cold:
        _warm_up_filesystem(out)
    start = time.perf_counter()
    result = op.execute({})  # type: ignore[arg-type]
    _RESULT["seconds"] = time.perf_counter() - start
    return int(result["count"])


def _warm_up_filesystem(out: str) -> None:
    """Pay Airflow's one-off costs of a fresh process before timing: the filesystem registry, the
    hook-lineage collector (loaded on the first write; it loads plugins) and the secrets backends
    (first connection lookup). A long-lived worker has paid them before ``execute``."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    warm = ObjectStoragePath(f"file://{out}.warm-up")
    with warm.open("wb") as handle:
        handle.write(b"\n")
    warm.unlink()
    # The first connection lookup imports Airflow's secrets machinery; look up another connection.
    from airflow.providers.common.compat.sdk import BaseHook

    os.environ["AIRFLOW_CONN_WARM_UP"] = json.dumps({"conn_type": "etelecom", "host": "http://127.0.0.1:9"})
    BaseHook.get_connection("warm_up")


def _child_http(base_url: str, out: str, pages: int) -> int:
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    os.environ["AIRFLOW_CONN_HTTP_BENCH"] = json.dumps(
        {"conn_type": "http", "host": parts.hostname, "port": parts.port, "schema": "http"}
    )
    from airflow.providers.http.operators.http import HttpOperator

    seen = {"pages": 1}

    def next_page(response: Any) -> dict[str, Any] | None:
        body = response.json()
        cursor = (body.get("paging") or {}).get("next")
        if not body.get("consents") or not cursor or len(body["consents"]) < PAGE or seen["pages"] >= pages:
            return None
        seen["pages"] += 1
        return {"data": json.dumps({"paging": {"limit": PAGE, "after": cursor}})}

    op = HttpOperator(
        task_id="bench",
        http_conn_id="http_bench",
        endpoint=parts.path.lstrip("/") + ".Zalo/ListRequestConsent",
        method="POST",
        data=json.dumps({"paging": {"limit": PAGE}}),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        pagination_function=next_page,
        response_filter=lambda responses: [c for r in responses for c in r.json().get("consents") or []],
    )
    start = time.perf_counter()
    consents = op.execute({})  # type: ignore[arg-type]
    with open(out, "w", encoding="utf-8") as handle:
        for consent in consents:
            handle.write(json.dumps(consent, ensure_ascii=False, separators=(",", ":")) + "\n")
    _RESULT["seconds"] = time.perf_counter() - start
    return len(consents)


def _child_bare(base_url: str, out: str, pages: int) -> int:
    import requests

    start = time.perf_counter()
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    count, after, done = 0, None, 0
    with open(out, "w", encoding="utf-8") as handle:
        while done < pages:
            paging: dict[str, Any] = {"limit": PAGE}
            if after:
                paging["after"] = after
            body = session.post(f"{base_url}.Zalo/ListRequestConsent", data=json.dumps({"paging": paging})).json()
            consents = body.get("consents") or []
            if not consents:
                break
            handle.write("".join(json.dumps(c, ensure_ascii=False, separators=(",", ":")) + "\n" for c in consents))
            count += len(consents)
            done += 1
            after = (body.get("paging") or {}).get("next")
            if not after or len(consents) < PAGE:
                break
    session.close()
    _RESULT["seconds"] = time.perf_counter() - start
    return count


_RESULT: dict[str, Any] = {}
_CHILDREN = {
    "operator": _child_operator,
    # What every mapped task of a backfill pays: execute() in a fresh process, nothing warmed up
    # (the connection lookup, the output path's filesystem and the first write all included).
    "cold-operator": lambda base_url, out, pages: _child_operator(base_url, out, pages, cold=True),
    "http": _child_http,
    "bare": _child_bare,
}


def _child(kind: str, base_url: str, out: str, pages: int) -> None:
    import logging

    logging.disable(logging.WARNING)  # keep the child's stdout for the result line
    if kind in ("operator", "cold-operator"):
        import airflow_provider_etelecom.operators.list_consents  # noqa: F401 - imports before the baseline
    elif kind == "http":
        import airflow.providers.http.operators.http  # noqa: F401
    else:
        import requests  # noqa: F401
    _RESULT["baseline_mb"] = _rss_mb()
    _RESULT["count"] = _CHILDREN[kind](base_url, out, pages)
    _RESULT["peak_mb"] = _rss_mb()
    print("RESULT " + json.dumps(_RESULT), flush=True)


# -- parent ----------------------------------------------------------------------------------------


def _cold_start(sim: Any, folder: str, count: int, rounds: int) -> dict[float, float]:
    """A small export's fixed cost: a cold operator's execute() against the bare loop, at 5 and 20 ms."""
    print(f"\nCold operator (fresh process, nothing warmed up) vs bare loop, {count:,} consents, best of rounds:")
    ratios: dict[float, float] = {}
    latency_before = sim.latency_ms
    for latency in (5.0, 20.0):
        sim.latency_ms = latency
        best: dict[str, float] = {}
        for _ in range(rounds):
            for kind in ("cold-operator", "bare"):
                seconds = _run_child(sim, kind, count // PAGE, folder)["seconds"]
                best[kind] = min(best.get(kind, seconds), seconds)
        ratios[latency] = best["cold-operator"] / best["bare"]
        print(
            f"  {latency:4g} ms per request: cold operator {best['cold-operator']:.2f} s, "
            f"bare loop {best['bare']:.2f} s, ratio {ratios[latency]:.2f} (target <= 1.20)"
        )
    sim.latency_ms = latency_before
    return ratios


def _run_child(sim: Any, kind: str, pages: int, folder: str) -> dict[str, Any]:
    out = os.path.join(folder, f"{kind}-{pages}.jsonl")
    before = sim.stats.connections
    result = run_child("benchmarks.bench_operator", kind, sim.base_url, out, str(pages), folder=folder)
    result["connections"] = sim.stats.connections - before
    with open(out, "rb") as handle:
        result["lines"] = sum(1 for _ in handle)
    os.remove(out)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print the table; return the figures (for tests and CI)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts (CI smoke run)")
    parser.add_argument("--count", type=int, help="consents in the side-by-side export (default 100,000)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds, best time kept (default 3, quick 1)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="simulated latency per request")
    parser.add_argument("--child", nargs=4, metavar=("KIND", "BASE_URL", "OUT", "PAGES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, base_url, out, pages = args.child
        _child(kind, base_url, out, int(pages))
        return {}

    import importlib.util

    from airflow_provider_etelecom.testing import EtelecomSimulator

    kinds = [k for k in KINDS if k != "http" or importlib.util.find_spec("airflow.providers.http")]
    if "http" not in kinds:
        print("apache-airflow-providers-http is not installed (pip install '.[bench]'): HttpOperator skipped.")
    compare = args.count or (2_000 if args.quick else 100_000)
    small, large = (1_000, 5_000) if args.quick else (10_000, 200_000)
    total = max(compare, large)
    figures: dict[str, Any] = {"compare": {}, "memory": {}}
    with tempfile.TemporaryDirectory(prefix="bench-operator-") as folder:
        print(f"Seeding the simulator with {total:,} consents...", flush=True)
        with EtelecomSimulator(consents=total, seed=11, api_key=KEY, latency_ms=args.latency_ms) as sim:
            print(f"\nExport of {compare:,} consents to a local JSONL file (page size {PAGE}), best of rounds:")
            print(f"{'':10} {'seconds':>8} {'consents/s':>11} {'peak MB':>8} {'+MB':>7} {'TCP conns':>9} {'lines':>8}")
            rounds = args.rounds or (1 if args.quick else 3)
            for _ in range(rounds):  # interleaved, so a noisy machine hurts every side alike
                for kind in kinds:
                    result = _run_child(sim, kind, compare // PAGE, folder)
                    best = figures["compare"].get(kind)
                    if best is None or result["seconds"] < best["seconds"]:
                        figures["compare"][kind] = result
            for kind in kinds:
                result = figures["compare"][kind]
                print(
                    f"{kind:10} {result['seconds']:8.2f} {result['count'] / result['seconds']:11,.0f} "
                    f"{result['peak_mb']:8.1f} {result['peak_mb'] - result['baseline_mb']:7.1f} "
                    f"{result['connections']:9d} {result['lines']:8,d}"
                )
            ours = figures["compare"]["operator"]["seconds"]
            vs_bare = ours / figures["compare"]["bare"]["seconds"]
            figures["ratios"] = {"operator/bare": vs_bare}
            print()
            if "http" in kinds:
                vs_http = ours / figures["compare"]["http"]["seconds"]
                figures["ratios"]["operator/http"] = vs_http
                print(f"time operator/HttpOperator = {vs_http:.2f} (target <= 1.00)")
            print(f"time operator/bare loop    = {vs_bare:.2f} (target <= 1.20)")

            figures["cold"] = _cold_start(sim, folder, 2_000 if args.quick else 20_000, rounds)

            print(f"\nOperator peak memory, {small:,} vs {large:,} consents:")
            for count in (small, large):
                result = _run_child(sim, "operator", count // PAGE, folder)
                figures["memory"][count] = result
                print(f"  {count:>9,}: peak {result['peak_mb']:.1f} MB ({result['count']:,} exported)")
            growth = figures["memory"][large]["peak_mb"] - figures["memory"][small]["peak_mb"]
            figures["memory_growth_mb"] = growth
            print(f"  growth = {growth:.1f} MB (target <= 30 MB)")
    return figures


if __name__ == "__main__":
    main(sys.argv[1:])
