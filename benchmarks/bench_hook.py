"""Benchmark: ``EtelecomHook.list_consents`` against a bare ``requests.Session`` loop.

Both list the same simulator (page size 100) at 0 ms and 20 ms simulated latency; the script
prints consents/s for each, the ratio hook/bare (target >= 0.9) and the TCP connections each
listing opened (target: 1). Runs interleaved, best of N, so a noisy machine hurts both sides alike.
The simulator runs in its own process: in-process, its threads would compete with the client for
the GIL and the figures would measure both.

    python -m benchmarks.bench_hook            # 20,000 consents, 3 rounds
    python -m benchmarks.bench_hook --quick    # a smoke run for CI
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable

import requests

from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.testing import SimulatorProcess

KEY = "bench-key-0123456789"


def bare_loop(base_url: str) -> int:
    """The simplest correct client: one session, follow ``next`` until an empty or short page."""
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    count, after = 0, None
    while True:
        paging: dict[str, object] = {"limit": 100}
        if after:
            paging["after"] = after
        body = session.post(f"{base_url}.Zalo/ListRequestConsent", data=json.dumps({"paging": paging})).json()
        consents = body.get("consents") or []
        count += len(consents)
        after = body.get("paging", {}).get("next")
        if not consents or not after or len(consents) < 100:
            session.close()
            return count


def hook_loop(base_url: str) -> int:
    os.environ["AIRFLOW_CONN_ETELECOM_BENCH"] = json.dumps({"conn_type": "etelecom", "host": base_url, "password": KEY})
    hook = EtelecomHook("etelecom_bench")
    count = sum(1 for _ in hook.list_consents())
    hook.close()
    return count


def connections(base_url: str) -> int:
    root = base_url.rsplit("/v1/", 1)[0]
    return int(requests.get(f"{root}/_simulator/stats", timeout=10).json()["connections"])


def measure(base_url: str, run: Callable[[str], int]) -> tuple[float, int, int]:
    before = connections(base_url)
    start = time.perf_counter()
    count = run(base_url)
    elapsed = time.perf_counter() - start
    # the stats call itself opens one connection
    return elapsed, count, connections(base_url) - before - 1


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consents", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latencies", default="0,20", help="simulated latency per request, ms")
    parser.add_argument("--quick", action="store_true", help="2,000 consents, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.consents, args.rounds = 2_000, 1
    results: dict[str, dict[str, float]] = {}
    print(f"list_consents vs bare requests loop: {args.consents:,} consents, page size 100, best of {args.rounds}")
    print(f"{'latency':>8} {'bare c/s':>10} {'hook c/s':>10} {'ratio':>7} {'bare conns':>11} {'hook conns':>11}")
    for latency in (float(x) for x in args.latencies.split(",")):
        sim_args = ("--consents", str(args.consents), "--seed", "1", "--latency-ms", str(latency))
        with SimulatorProcess(*sim_args, api_key=KEY) as sim:
            base_url = sim.base_url
            best = {"bare": float("inf"), "hook": float("inf")}
            conns = {"bare": 0, "hook": 0}
            for _ in range(args.rounds):
                for name, run in (("bare", bare_loop), ("hook", hook_loop)):
                    seconds, count, opened = measure(base_url, run)
                    assert count == args.consents, f"{name} listed {count} of {args.consents}"
                    best[name] = min(best[name], seconds)
                    conns[name] = opened
        bare_rate, hook_rate = args.consents / best["bare"], args.consents / best["hook"]
        ratio = hook_rate / bare_rate
        results[f"{latency:g}ms"] = {
            "bare_per_s": bare_rate,
            "hook_per_s": hook_rate,
            "ratio": ratio,
            "bare_connections": conns["bare"],
            "hook_connections": conns["hook"],
        }
        print(
            f"{latency:>6g}ms {bare_rate:>10,.0f} {hook_rate:>10,.0f} {ratio:>7.2f} "
            f"{conns['bare']:>11} {conns['hook']:>11}"
        )
    return results


if __name__ == "__main__":
    main()
