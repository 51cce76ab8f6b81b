"""Benchmark: parallel windowed export vs the sequential listing.

100,000 consents spread over 30 days, 20 ms simulated latency per request (the simulator runs in
its own process). Lists the range with a bare sequential ``requests`` loop, with the hook
sequentially, and with the hook over 8 parallel windows; checks all three saw the same set of ids
and prints times, the ratio against the sequential bare loop (target >= 4x) and the sequential
floor (pages x latency), which no sequential client can beat.

    python -m benchmarks.bench_parallel           # 100k consents, 8 windows
    python -m benchmarks.bench_parallel --quick   # 10k consents, for CI
"""

from __future__ import annotations

import argparse
import json
import os
import time

import requests

from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from benchmarks._server import simulator_process

KEY = "bench-parallel-key-0123456789"
START, END = "2026-01-01T00:00:00Z", "2026-01-31T00:00:00Z"


def bare_sequential(base_url: str) -> list[str]:
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    ids: list[str] = []
    after = None
    while True:
        paging: dict[str, object] = {"limit": 100, **({"after": after} if after else {})}
        body = {"filter": {"date_from": START, "date_to": END}, "paging": paging}
        page = session.post(f"{base_url}.Zalo/ListRequestConsent", data=json.dumps(body)).json()
        consents = page.get("consents") or []
        ids.extend(c["id"] for c in consents)
        after = page.get("paging", {}).get("next")
        if not consents or not after or len(consents) < 100:
            return ids


def hook_listing(base_url: str, windows: int | None) -> list[str]:
    os.environ["AIRFLOW_CONN_ETELECOM_BENCH"] = json.dumps({"conn_type": "etelecom", "host": base_url, "password": KEY})
    hook = EtelecomHook("etelecom_bench")
    ids = [c["id"] for c in hook.list_consents(date_from=START, date_to=END, max_parallel_windows=windows)]
    hook.close()
    return ids


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consents", type=int, default=100_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="10,000 consents")
    args = parser.parse_args(argv)
    if args.quick:
        args.consents = 10_000
    sim_args = ["--consents", str(args.consents), "--latency-ms", str(args.latency_ms), "--start", START, "--end", END]
    with simulator_process(*sim_args, api_key=KEY) as base_url:
        hook_listing(base_url, None)  # warm the simulator's row cache so every run pays the same
        timings: dict[str, float] = {}
        id_sets = {}
        for name, run in (
            ("bare sequential", lambda: bare_sequential(base_url)),
            ("hook sequential", lambda: hook_listing(base_url, None)),
            (f"hook {args.windows} windows", lambda: hook_listing(base_url, args.windows)),
        ):
            started = time.perf_counter()
            ids = run()
            timings[name] = time.perf_counter() - started
            assert len(ids) == len(set(ids)) == args.consents, f"{name}: {len(ids)} ids, {len(set(ids))} unique"
            id_sets[name] = set(ids)
    assert len({frozenset(s) for s in id_sets.values()}) == 1, "the listings disagree"
    pages = -(-args.consents // 100)
    floor = pages * args.latency_ms / 1000
    base = timings["bare sequential"]
    print(f"{args.consents:,} consents over 30 days, {pages:,} pages, {args.latency_ms:g} ms latency per request")
    print(f"sequential floor (pages x latency): {floor:.1f} s")
    print(f"{'listing':<22} {'seconds':>8} {'speed-up vs bare':>17}")
    for name, seconds in timings.items():
        print(f"{name:<22} {seconds:>8.2f} {base / seconds:>16.1f}x")
    print("same set of ids: yes")
    return {"floor_s": floor, **{name: seconds for name, seconds in timings.items()}}


if __name__ == "__main__":
    main()
