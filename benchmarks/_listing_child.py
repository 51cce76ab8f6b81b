"""One measured listing in a fresh process, for benchmarks that compare two trees of the provider.

Run by path, not as a module, with ``PYTHONPATH`` at the tree to measure::

    PYTHONPATH=/path/to/tree python benchmarks/_listing_child.py '{"base_url": ..., ...}'

It imports nothing from ``benchmarks`` (a baseline tree may not have this file) and only the hook
API that every tree since parallel windows has: ``EtelecomHook.build_query`` and
``iter_query_pages(max_parallel_windows=, parallel_stats=)``. It warms up (imports, connection
lookup) on an empty range before the data, then lists ``[start, end)`` with a fresh hook (so no
lesson of the warm-up carries over), writing the ids as int64 to ``ids_out`` as pages arrive (the
benchmark's bookkeeping stays out of the listing's memory). Prints one ``RESULT {json}`` line:
seconds (wall, and the process's CPU), ``ListRequestConsent`` requests as the simulator counted
them, the client's counters, peak RSS (``VmHWM``) and its growth over the RSS before the listing,
and where the package was imported from (the caller checks it is the tree it meant).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from array import array
from datetime import datetime, timedelta
from typing import Any

CONN_ID = "etelecom_bench_cost"
LIST_METHOD = "Zalo/ListRequestConsent"


def _hwm_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _listing_requests(root_url: str) -> int:
    """Return the ``ListRequestConsent`` requests the simulator has answered (every status)."""
    with urllib.request.urlopen(f"{root_url}/_simulator/stats", timeout=30) as answer:
        counts: dict[str, int] = json.loads(answer.read())["requests"]
    return sum(n for key, n in counts.items() if key.rsplit(" ", 1)[0] == LIST_METHOD)


def main(spec: dict[str, Any]) -> None:
    """List the range described by ``spec`` once and print the figures."""
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
        {"conn_type": "etelecom", "host": spec["base_url"], "password": spec["key"], "extra": {"max_retries": 10}}
    )
    import airflow_provider_etelecom
    from airflow_provider_etelecom.client.parallel import ParallelStats
    from airflow_provider_etelecom.hooks.etelecom import EtelecomHook

    start, end = datetime.fromisoformat(spec["start"]), datetime.fromisoformat(spec["end"])
    workers = spec["workers"]

    def listing(hook: Any, date_from: datetime, date_to: datetime, out: Any = None, report: Any = None) -> None:
        query = hook.build_query(date_from=date_from, date_to=date_to)
        for page in hook.iter_query_pages(query, max_parallel_windows=workers, parallel_stats=report):
            if out is not None:
                array("q", [int(consent["id"]) for consent in page["consents"]]).tofile(out)

    warm = EtelecomHook(CONN_ID)
    listing(warm, start - timedelta(days=2), start - timedelta(days=1))
    warm.close()
    hook = EtelecomHook(CONN_ID)
    before = hook.client.stats.as_dict()  # the connection is looked up here, before the clock starts
    requests_before = _listing_requests(spec["root_url"])
    report = ParallelStats() if workers else None
    baseline_mb = _hwm_mb()
    with open(spec["ids_out"], "wb") as out:
        started, cpu_started = time.perf_counter(), time.process_time()
        listing(hook, start, end, out, report)
        seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    peak_mb = _hwm_mb()
    requests = _listing_requests(spec["root_url"]) - requests_before
    after = hook.client.stats.as_dict()
    hook.close()
    result = {
        "package": os.path.dirname(os.path.abspath(airflow_provider_etelecom.__file__)),
        "seconds": seconds,
        "cpu_s": cpu_s,
        "requests": requests,
        "client": {name: value - before.get(name, 0) for name, value in after.items()},
        "splits": report.splits if report is not None else 0,
        "baseline_mb": baseline_mb,
        "peak_mb": peak_mb,
        "growth_mb": peak_mb - baseline_mb,
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
