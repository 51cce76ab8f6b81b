"""A SIGTERM'd export, in a real Airflow task process: no temporary file left, nothing published.

``airflow tasks test`` runs the task with the task runner's own SIGTERM handling: on Airflow 3
the handler the supervised task process installs (``on_kill()``, then ``execute`` goes on; the
supervisor forwards a pod's SIGTERM to that process), on Airflow 2 the handler that calls
``on_kill()`` and raises ``AirflowTaskTerminated``. The simulator answers slowly, so the export
is still paging when the signal arrives.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_etelecom.testing import EtelecomSimulator
from tests.conftest import SECRET_KEY
from tests.operators.test_list_consents import load_dag_file

LIST = "Zalo/ListRequestConsent"
#: Bounds for waiting on the subprocess (never a fixed sleep): Airflow's start-up, then its exit.
START_DEADLINE_S = 120.0
EXIT_DEADLINE_S = 60.0

#: A fresh Airflow interpreter per run: among the longest tests, so run first (tests/conftest.py).
pytestmark = pytest.mark.slow

DAG_SOURCE = """
from datetime import datetime, timezone

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator

with DAG({dag_id!r}, schedule=None, start_date=datetime(2020, 1, 1, tzinfo=timezone.utc)) as dag:
    ListConsentsOperator(
        task_id="export",
        page_size=10,
        date_from="2000-01-01T00:00:00Z",
        date_to="2100-01-01T00:00:00Z",
        max_parallel_windows={parallel!r},
        output_path={output_path!r},
    )
"""


@pytest.fixture
def etelecom_simulator_options() -> dict[str, object]:
    # 500 consents in pages of 10, 100 ms a request: about 5 s sequentially, so a SIGTERM lands mid-export.
    return {"consents": 500, "seed": 7, "api_key": SECRET_KEY, "latency_ms": 100}


def _wait_for(condition: Any, proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the task exited ({proc.returncode}) before {what}:\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {what} within {START_DEADLINE_S:.0f} s:\n{log.read_text()[-4000:]}")
        time.sleep(0.05)  # polling a condition, bounded by the deadline above


@pytest.mark.parametrize("parallel", [None, 2], ids=["sequential", "parallel-windows"])
def test_sigterm_removes_the_temporary_file_and_publishes_nothing(
    airflow_db: str, etelecom_connection: EtelecomSimulator, tmp_path: Path, parallel: int | None
) -> None:
    sim = etelecom_connection
    dag_id = f"test_list_consents_sigterm_{'parallel' if parallel else 'sequential'}"
    target = tmp_path / "out" / "consents.jsonl"
    load_dag_file(dag_id, DAG_SOURCE.format(dag_id=dag_id, parallel=parallel, output_path=f"file://{target}"))
    log = tmp_path / "task.log"
    airflow = str(Path(sys.executable).with_name("airflow"))
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [airflow, "tasks", "test", dag_id, "export", "2026-01-01"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ),
        )
    try:
        temps = lambda: sorted(p.name for p in target.parent.glob("*.tmp-*")) if target.parent.exists() else []  # noqa: E731
        _wait_for(lambda: temps() and sim.stats.count(method=LIST) >= 3, proc, log, "temporary file and pages")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=EXIT_DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "Task failed with exception" in text, text[-4000:]  # `tasks test` exits 0 on Airflow 3 either way
    assert temps() == [], text[-4000:]
    assert not target.exists(), text[-4000:]
    assert "told to stop" in text
    # It stopped paging instead of finishing the export (51 pages) after the signal.
    assert sim.stats.count(method=LIST) < 51
    assert SECRET_KEY not in text
