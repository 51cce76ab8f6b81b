"""Benchmark: the load step of ConsentsToSqlOperator vs common.sql's insert_rows, into PostgreSQL.

The same consents (from the simulator's data set, as the API serves them) go into two fresh tables
of one throwaway PostgreSQL server, over the same driver:

Both sides start from the same list of consent dicts, as the API returned them (the listing itself
is not timed), and each timing includes building what its side sends from those dicts:

* ``transfer``    - the code ConsentsToSqlOperator runs after listing (``_TableLoad``): check the
  table, create the session's staging table, per batch of 5,000 consents render the ``COPY`` text
  (``sql_table.copy_batch``) and write it in one ``COPY``, then the one merge in id order guarded
  by ``updated_at``, committed, and close the session;
* ``insert_rows`` - rows built the obvious way (each consent's values in column order, the zero
  time as ``None``; PostgreSQL parses the time text, as for the transfer), fed as a generator to
  ``PostgresHook.insert_rows(rows, replace=True, replace_index="id", executemany=True,
  commit_every=5000)``: an upsert that always overwrites, committed in chunks.

After the timed runs both tables must hold the same rows (checked on an md5 of their text).

Printed: seconds and rows/s each way, the ratio (target: at least 5x faster), and the peak Python
memory of each (tracemalloc, on a second run: the timed run is untraced): flat for the transfer,
which holds one batch at a time. ``--profile`` prints cProfile's top entries of the transfer's
load (a third run).

    python -m benchmarks.bench_sql            # 100,000 consents
    python -m benchmarks.bench_sql --quick    # 5,000 consents, a smoke run for CI
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from typing import Any

TARGET = 5.0


ZERO_TIME = "0001-01-01T00:00:00Z"
BATCH = 5_000


def _rows(consents: list[dict[str, Any]]) -> Iterator[tuple[Any, ...]]:
    """insert_rows' rows, the obvious way: the values in column order, the platform's zero time as NULL."""
    from airflow_provider_etelecom.utils.sql_table import COLUMN_NAMES

    for consent in consents:
        yield tuple(None if value == ZERO_TIME else value for value in map(consent.get, COLUMN_NAMES))


def _measure(step: Callable[[], None], reset: Callable[[], None]) -> tuple[float, float]:
    """Time one run untraced (tracemalloc slows Python code), then trace a second one for its peak."""
    started = time.perf_counter()
    step()
    elapsed = time.perf_counter() - started
    reset()
    tracemalloc.start()
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return elapsed, peak / 2**20


def run(consents: int, profile: bool = False) -> dict[str, Any]:
    """Load ``consents`` consents both ways into a fresh server; return the figures."""
    from airflow.providers.postgres.hooks.postgres import USE_PSYCOPG3, PostgresHook

    from airflow_provider_etelecom.testing import EtelecomSimulator
    from airflow_provider_etelecom.testing.postgres import run_postgres
    from airflow_provider_etelecom.transfers.consents_to_sql import _TableLoad
    from airflow_provider_etelecom.utils import sql_table

    with EtelecomSimulator(consents=consents, seed=7) as sim:
        served = sim.consents()
    log = logging.getLogger("benchmarks.bench_sql")
    with run_postgres() as server:
        conn = {"conn_type": "postgres", "host": server.host, "port": server.port, "login": server.user}
        os.environ["AIRFLOW_CONN_BENCH_PG"] = json.dumps({**conn, "schema": "postgres"})
        hook = PostgresHook(postgres_conn_id="bench_pg")
        for name in ("via_transfer", "via_insert_rows"):
            hook.run(sql_table.create_table_sql("postgres", sql_table.parse_table_name(name)))

        def transfer() -> None:
            load = _TableLoad(hook, "postgres", sql_table.parse_table_name("via_transfer"), False, log)
            load.check_table()
            for start in range(0, len(served), BATCH):
                load.stage_consents(served[start : start + BATCH])  # type: ignore[arg-type]
            load.merge()
            load.close()

        def insert_rows() -> None:
            hook.insert_rows(
                "via_insert_rows",
                _rows(served),
                target_fields=list(sql_table.COLUMN_NAMES),
                replace=True,
                replace_index="id",
                executemany=True,
                commit_every=5000,
            )

        fast_s, fast_mb = _measure(transfer, lambda: hook.run("TRUNCATE via_transfer"))
        slow_s, slow_mb = _measure(insert_rows, lambda: hook.run("TRUNCATE via_insert_rows"))
        counts = [hook.get_first(f"SELECT count(*) FROM {name}")[0] for name in ("via_transfer", "via_insert_rows")]
        digests = [
            hook.get_first(f"SELECT md5(string_agg(t::text, E'\\n' ORDER BY t.id)) FROM {name} t")[0]
            for name in ("via_transfer", "via_insert_rows")
        ]
        top = _profile(transfer, lambda: hook.run("TRUNCATE via_transfer")) if profile else ""
    assert counts == [len({c["id"] for c in served})] * 2, counts
    assert digests[0] == digests[1], "the two loads stored different values"
    return {
        "consents": len(served),
        "driver": "psycopg 3" if USE_PSYCOPG3 else "psycopg2",
        "transfer_s": fast_s,
        "insert_rows_s": slow_s,
        "transfer_mb": fast_mb,
        "insert_rows_mb": slow_mb,
        "ratio": slow_s / fast_s if fast_s else float("inf"),
        "profile": top,
    }


def _profile(step: Callable[[], None], reset: Callable[[], None]) -> str:
    import cProfile
    import io
    import pstats

    reset()
    profiler = cProfile.Profile()
    profiler.runcall(step)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the figures (never fails on time: machines are noisy)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_sql", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 consents instead of 100,000")
    parser.add_argument("--consents", type=int, default=None, help="consents to load (default 100000, quick 5000)")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top entries of the transfer's load")
    args = parser.parse_args(argv)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    logging.getLogger("airflow").setLevel(logging.WARNING)
    result = run(args.consents or (5_000 if args.quick else 100_000), profile=args.profile)
    n = result["consents"]
    print(f"{n} consents into PostgreSQL over {result['driver']}, load step only (the listing is not timed)")
    print("  both from the same consent dicts; each time includes building its rows/COPY text from them")
    print("  transfer: check table, stage (COPY text per 5,000, one COPY each), one merge, commit")
    print("  insert_rows: rows as tuples in column order (zero time -> None), upsert, commit every 5,000")
    for name in ("transfer", "insert_rows"):
        seconds, peak = result[f"{name}_s"], result[f"{name}_mb"]
        print(f"{name:>12}: {seconds:7.2f} s  {n / seconds:9.0f} rows/s  peak Python memory {peak:6.1f} MB")
    print(f"ratio: the transfer's load is {result['ratio']:.1f}x faster than insert_rows (target >= {TARGET:.0f}x)")
    if result["profile"]:
        print(result["profile"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
