"""Parquet export: peak memory of ListConsentsOperator writing ``.parquet`` for a small and a large export.

Each export runs in its own subprocess (so its peak RSS, ``VmHWM``, is that export's alone) against
the simulator over loopback HTTP. Printed: seconds, peak RSS, file size and row groups for each
count, and the growth of the peak from the small to the large export. Target (issue 14): growth
from 10,000 to 200,000 consents under 40 MB, since memory is bounded by one row group
(``ROW_GROUP_ROWS`` consents) whatever the count. The JSONL.gz size of the same consents is
printed beside it for scale.

    python -m benchmarks.bench_parquet            # 10,000 vs 200,000 consents
    python -m benchmarks.bench_parquet --quick    # 1,000 vs 5,000 (CI smoke run)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

from benchmarks._child import run_child
from benchmarks.bench_operator import _rss_mb, _warm_up_filesystem

KEY = "bench-key-0123456789"
PAGE = 100
TARGET_GROWTH_MB = 40


def _child(base_url: str, out: str, pages: int) -> None:
    import logging

    logging.disable(logging.WARNING)
    import pyarrow.parquet as pq

    from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator

    os.environ["AIRFLOW_CONN_ETELECOM_BENCH"] = json.dumps({"conn_type": "etelecom", "host": base_url, "password": KEY})
    op = ListConsentsOperator(
        task_id="bench", etelecom_conn_id="etelecom_bench", output_path=f"file://{out}", max_pages=pages
    )
    _warm_up_filesystem(out)
    baseline = _rss_mb()
    start = time.perf_counter()
    result = op.execute({})  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    peak = _rss_mb()
    metadata = pq.ParquetFile(out).metadata
    figures = {
        "count": result["count"],
        "seconds": seconds,
        "baseline_mb": baseline,
        "peak_mb": peak,
        "bytes": os.path.getsize(out),
        "row_groups": metadata.num_row_groups,
        "rows": metadata.num_rows,
    }
    print("RESULT " + json.dumps(figures), flush=True)


def _run_child(base_url: str, pages: int, folder: str) -> dict[str, Any]:
    out = os.path.join(folder, f"consents-{pages}.parquet")
    result = run_child("benchmarks.bench_parquet", base_url, out, str(pages), folder=folder)
    os.remove(out)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print its figures; return them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts (CI smoke run)")
    parser.add_argument("--child", nargs=3, metavar=("BASE_URL", "OUT", "PAGES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        base_url, out, pages = args.child
        _child(base_url, out, int(pages))
        return {}

    import gzip

    from airflow_provider_etelecom.outputs.jsonl import dumps_line
    from airflow_provider_etelecom.testing import EtelecomSimulator

    small, large = (1_000, 5_000) if args.quick else (10_000, 200_000)
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-parquet-") as folder:
        print(f"Seeding the simulator with {large:,} consents...", flush=True)
        with EtelecomSimulator(consents=large, seed=11, api_key=KEY) as sim:
            jsonl_gz = len(gzip.compress("".join(dumps_line(c) + "\n" for c in sim.consents()).encode(), 6))
            print(f"\nListConsentsOperator to .parquet (zstd), page size {PAGE}:")
            print(f"{'consents':>10} {'seconds':>8} {'peak MB':>8} {'+MB':>7} {'file MB':>8} {'row groups':>10}")
            for count in (small, large):
                result = _run_child(sim.base_url, count // PAGE, folder)
                figures[count] = result
                print(
                    f"{result['count']:>10,} {result['seconds']:8.2f} {result['peak_mb']:8.1f} "
                    f"{result['peak_mb'] - result['baseline_mb']:7.1f} {result['bytes'] / 1e6:8.2f} "
                    f"{result['row_groups']:10d}"
                )
    growth = figures[large]["peak_mb"] - figures[small]["peak_mb"]
    figures["memory_growth_mb"] = growth
    print(f"\npeak memory growth {small:,} -> {large:,} consents = {growth:.1f} MB (target < {TARGET_GROWTH_MB} MB)")
    print(f"file size for {large:,}: Parquet {figures[large]['bytes'] / 1e6:.2f} MB, JSONL.gz {jsonl_gz / 1e6:.2f} MB")
    return figures


if __name__ == "__main__":
    main(sys.argv[1:])
