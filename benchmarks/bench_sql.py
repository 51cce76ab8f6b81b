"""Benchmark: the load step of ConsentsToSqlOperator vs common.sql's insert_rows, into PostgreSQL.

The same consents (from the simulator's data set, as the API serves them) go into two fresh tables
of one throwaway PostgreSQL server, over the same driver:

Neither side lists: both start from the same list of consent dicts, as the API returned them (the
listing is the same HTTP work for either, so it is left out of both), and each timing includes
building what its side sends from those dicts:

* ``transfer``    - the code ConsentsToSqlOperator runs after listing (``_TableLoad``): check the
  table, create the session's staging table, stage each batch of 5,000 consents
  (``sql_table.copy_batch`` text into ``COPY``), then the one merge in id order guarded by
  ``updated_at``, committed, and close the session;
* ``insert_rows`` - rows built the obvious way (each consent's values in column order, the zero
  time as ``None``; PostgreSQL parses the time text, as for the transfer), fed as a generator to
  ``PostgresHook.insert_rows(rows, replace=True, replace_index="id", executemany=True,
  commit_every=5000)``: an upsert that always overwrites, committed in chunks.

The two run as interleaved pairs (``--pairs``, default 5; the order alternates within pairs), each
run on its own table dropped and created afresh, in two scenarios: ``fresh`` (an empty table, the
issue's figure) and ``reload`` (the table already holds the same consents, as after a daily run's
lookback re-read). A ``CHECKPOINT`` precedes every timed run. After each pair both tables must hold
the same rows (an md5 of their text). Printed: every pair, the median ratio per scenario (target:
at least 5x), and the peak Python memory of each side (tracemalloc, on separate untimed runs):
flat for the transfer, which holds one batch at a time. ``--profile`` prints cProfile's top
entries of the transfer's load.

    python -m benchmarks.bench_sql            # 100,000 consents
    python -m benchmarks.bench_sql --quick    # 5,000 consents, a smoke run for CI
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

TARGET = 5.0
PAIRS = 5
#: What each scenario's tables hold before a timed run.
SCENARIOS = {
    "fresh": "into an empty table, created afresh before each run (the issue's figure)",
    "reload": "the same consents again into a table already holding them (a daily run's lookback re-read)",
}


ZERO_TIME = "0001-01-01T00:00:00Z"
BATCH = 5_000


def _rows(consents: list[dict[str, Any]]) -> Iterator[tuple[Any, ...]]:
    """insert_rows' rows, the obvious way: the values in column order, the platform's zero time as NULL."""
    from airflow_provider_etelecom.client.models import CONSENT_FIELD_NAMES

    for consent in consents:
        yield tuple(None if value == ZERO_TIME else value for value in map(consent.get, CONSENT_FIELD_NAMES))


def _peak_mb(step: Callable[[], None]) -> float:
    """Peak Python memory of one run (traced apart from the timed runs: tracemalloc slows Python code)."""
    tracemalloc.start()
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def _server_processes(backend_pid: int) -> Callable[[], list[int]]:
    """Return a function listing the PostgreSQL server's processes (the postmaster's children, itself included)."""

    def parent(pid: int) -> int:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])

    if not Path("/proc/self/stat").exists():  # not Linux: the server's CPU is not measured (printed as 0)
        return lambda: []
    postmaster = parent(backend_pid)

    def processes() -> list[int]:
        found = [postmaster]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with suppress(OSError, IndexError, ValueError):
                    if parent(int(entry.name)) == postmaster:
                        found.append(int(entry.name))
        return found

    return processes


def _cpu_seconds(pids: list[int]) -> float:
    """CPU seconds (user + system) the server's processes used so far.

    ``pids[0]`` is the postmaster: its count includes the children it has reaped, so a session
    that ends within a run (each side opens and closes its own) is counted in full.
    """
    total = 0
    for index, pid in enumerate(pids):
        with suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(field) for field in fields[11 : 15 if index == 0 else 13])
    return total / os.sysconf("SC_CLK_TCK")


def run(
    consents: int, pairs: int = PAIRS, profile: bool = False, echo: Callable[[str], None] = print
) -> dict[str, Any]:
    """Load ``consents`` consents both ways, ``pairs`` times each, interleaved; return the figures.

    Each timed run starts from the same state: its table dropped and created again (empty, for
    ``fresh``) or created and filled with the same consents by an untimed load (``reload``), then a
    ``CHECKPOINT`` so that neither side pays for the other's dirty pages. Within a pair the order
    alternates (transfer first in even pairs, insert_rows first in odd ones), so drift in the
    machine's load falls on both sides alike. After every run both tables must hold the same rows.
    """
    from airflow.providers.postgres.hooks.postgres import USE_PSYCOPG3, PostgresHook

    from airflow_provider_etelecom.client.models import CONSENT_FIELD_NAMES
    from airflow_provider_etelecom.testing import EtelecomSimulator
    from airflow_provider_etelecom.testing.postgres import run_postgres
    from airflow_provider_etelecom.transfers import sql_table
    from airflow_provider_etelecom.transfers.consents_to_sql import _TableLoad

    with EtelecomSimulator(consents=consents, seed=7) as sim:
        served = sim.consents()
    log = logging.getLogger("benchmarks.bench_sql")
    result: dict[str, Any] = {"consents": len(served), "pairs": {}, "medians": {}}
    with run_postgres() as server:
        conn = {"conn_type": "postgres", "host": server.host, "port": server.port, "login": server.user}
        os.environ["AIRFLOW_CONN_BENCH_PG"] = json.dumps({**conn, "schema": "postgres"})
        hook = PostgresHook(postgres_conn_id="bench_pg")
        quiet = logging.getLogger("benchmarks.bench_sql.hook")
        quiet.setLevel(logging.WARNING)
        hook._log = quiet  # insert_rows logs a line per commit: printing it would slow the baseline

        def transfer(table: str = "via_transfer") -> None:
            load = _TableLoad(hook, "postgres", sql_table.parse_table_name(table), False, log)
            load.check_table()
            for start in range(0, len(served), BATCH):
                load.stage_consents(served[start : start + BATCH])  # type: ignore[arg-type]
            load.merge()
            load.close()

        def insert_rows(table: str = "via_insert_rows") -> None:
            hook.insert_rows(
                table,
                _rows(served),
                target_fields=list(CONSENT_FIELD_NAMES),
                replace=True,
                replace_index="id",
                executemany=True,
                commit_every=5000,
            )

        admin = hook.get_conn()
        admin.autocommit = True

        def sql(statement: str) -> tuple[Any, ...]:
            cursor = admin.cursor()
            try:
                cursor.execute(statement)
                return tuple(cursor.fetchone() or ()) if cursor.description else ()
            finally:
                cursor.close()

        def prepare(table: str, scenario: str) -> None:
            sql(f'DROP TABLE IF EXISTS "{table}"')
            sql(sql_table.create_table_sql("postgres", sql_table.parse_table_name(table)))
            if scenario == "reload":
                transfer(table)
            sql("CHECKPOINT")

        server_pids = _server_processes(int(sql("SELECT pg_backend_pid()")[0]))

        def timed(step: Callable[[str], None], table: str, scenario: str) -> tuple[float, float]:
            """Wall seconds of ``step``, and the CPU seconds it cost this process and the server together."""
            prepare(table, scenario)
            cpu = time.process_time() + _cpu_seconds(server_pids())
            started = time.perf_counter()
            step(table)
            wall = time.perf_counter() - started
            return wall, time.process_time() + _cpu_seconds(server_pids()) - cpu

        def digest(table: str) -> tuple[int, str]:
            count, md5 = sql(f"SELECT count(*), md5(string_agg(t::text, E'\\n' ORDER BY t.id)) FROM \"{table}\" t")
            return int(count), str(md5)

        expected = len({c["id"] for c in served})
        for scenario in SCENARIOS:
            echo(f"  {scenario}: {SCENARIOS[scenario]}")
            rows = []
            for index in range(pairs):
                sides = [("transfer", transfer, "via_transfer"), ("insert_rows", insert_rows, "via_insert_rows")]
                if index % 2:
                    sides.reverse()
                measured = {name: timed(step, table, scenario) for name, step, table in sides}
                seconds = {name: wall for name, (wall, _) in measured.items()}
                cpu = {name: used for name, (_, used) in measured.items()}
                digests = [digest("via_transfer"), digest("via_insert_rows")]
                assert digests[0] == digests[1], f"the two loads stored different values ({scenario}, pair {index + 1})"
                assert digests[0][0] == expected, digests
                ratio = seconds["insert_rows"] / seconds["transfer"]
                cpu_ratio = cpu["insert_rows"] / cpu["transfer"]
                rows.append(
                    (seconds["transfer"], seconds["insert_rows"], ratio, cpu["transfer"], cpu["insert_rows"], cpu_ratio)
                )
                echo(
                    f"    pair {index + 1} ({sides[0][0]} first): transfer {seconds['transfer']:6.2f} s  "
                    f"insert_rows {seconds['insert_rows']:6.2f} s  ratio {ratio:5.1f}x   CPU: transfer "
                    f"{cpu['transfer']:5.2f} s  insert_rows {cpu['insert_rows']:5.2f} s  ratio {cpu_ratio:4.1f}x"
                )
            result["pairs"][scenario] = rows
            result["medians"][scenario] = tuple(statistics.median(column) for column in zip(*rows, strict=True))
            echo(
                f"    median of {pairs}: transfer {result['medians'][scenario][0]:.2f} s  insert_rows "
                f"{result['medians'][scenario][1]:.2f} s  ratio {result['medians'][scenario][2]:.1f}x "
                f"(range {min(r[2] for r in rows):.1f}x to {max(r[2] for r in rows):.1f}x); CPU ratio "
                f"{result['medians'][scenario][5]:.1f}x"
            )
        prepare("via_transfer", "fresh")
        result["transfer_mb"] = _peak_mb(transfer)
        prepare("via_insert_rows", "fresh")
        result["insert_rows_mb"] = _peak_mb(insert_rows)
        if profile:
            prepare("via_transfer", "fresh")
            result["profile"] = _profile(transfer)
        admin.close()
    result["driver"] = "psycopg 3" if USE_PSYCOPG3 else "psycopg2"
    return result


def _profile(step: Callable[[], None]) -> str:
    import cProfile
    import io
    import pstats

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
    parser.add_argument("--pairs", type=int, default=PAIRS, help=f"interleaved pairs per scenario (default {PAIRS})")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top entries of the transfer's load")
    args = parser.parse_args(argv)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    logging.getLogger("airflow").setLevel(logging.WARNING)
    n = args.consents or (5_000 if args.quick else 100_000)
    print(f"{n} consents into PostgreSQL, load step only on both sides (neither lists: both start from the same")
    print("  consent dicts; each time includes building its rows/COPY text from them)")
    print("  transfer: check table, stage (COPY text per 5,000), one merge, commit")
    print("  insert_rows: rows as tuples in column order (zero time -> None), upsert, commit every 5,000")
    print(f"  {args.pairs} interleaved pairs per scenario, each run on a table created afresh, then CHECKPOINT")
    result = run(n, pairs=args.pairs, profile=args.profile, echo=lambda line: print(line, flush=True))
    print(f"driver: {result['driver']}")
    for scenario, (fast, slow, ratio, fast_cpu, slow_cpu, cpu_ratio) in result["medians"].items():
        print(
            f"{scenario}: median ratio {ratio:.1f}x (target >= {TARGET:.0f}x); medians transfer {fast:.2f} s "
            f"({n / fast:.0f} rows/s), insert_rows {slow:.2f} s ({n / slow:.0f} rows/s); CPU (this process + "
            f"the server) transfer {fast_cpu:.2f} s, insert_rows {slow_cpu:.2f} s: {cpu_ratio:.1f}x"
        )
    print(f"peak Python memory: transfer {result['transfer_mb']:.1f} MB, insert_rows {result['insert_rows_mb']:.1f} MB")
    if result.get("profile"):
        print(result["profile"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
