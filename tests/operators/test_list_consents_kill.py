"""A SIGTERM'd export, in a real Airflow task process: no temporary file left, nothing published.

``airflow dags test`` runs each task with the task runner's own SIGTERM handling, as ``airflow
tasks test`` does: on Airflow 3 the handler the supervised task process installs (``on_kill()``,
then ``execute`` goes on; the supervisor forwards a pod's SIGTERM to that process), on Airflow 2
the handler that calls ``on_kill()`` and raises ``AirflowTaskTerminated``. One DAG run holds both
exports, the sequential one and the one over parallel windows, each on its own slow simulator, so
each is still paging when its signal arrives: one Airflow start-up for the two (each costs about
ten seconds of CPU on Airflow 3).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airflow_provider_etelecom.testing import EtelecomSimulator
from tests.conftest import SECRET_KEY, without_masking_requests
from tests.operators.test_list_consents import load_dag_file

LIST = "Zalo/ListRequestConsent"
#: Bounds for waiting on the subprocess (never a fixed sleep): Airflow's start-up, then its exit.
START_DEADLINE_S = 120.0
EXIT_DEADLINE_S = 60.0
#: The two exports, in the order the DAG runs them (a chain), with their parallel windows.
EXPORTS = {"sequential": None, "parallel_windows": 2}

#: A fresh Airflow interpreter: among the longest tests, so run first (tests/conftest.py).
pytestmark = pytest.mark.slow

DAG_SOURCE = """
from datetime import datetime, timezone

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator

with DAG({dag_id!r}, schedule=None, start_date=datetime(2020, 1, 1, tzinfo=timezone.utc)) as dag:
    exports = [
        ListConsentsOperator(
            task_id=name,
            etelecom_conn_id="etelecom_" + name,
            page_size=10,
            date_from="2000-01-01T00:00:00Z",
            date_to="2100-01-01T00:00:00Z",
            max_parallel_windows=parallel,
            output_path={folder!r} + "/" + name + "/consents.jsonl",
            trigger_rule="all_done",  # the second runs after the first has failed, as meant
        )
        for name, parallel in {exports!r}.items()
    ]
    exports[0] >> exports[1]
"""


@pytest.fixture
def slow_simulators(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, EtelecomSimulator]]:
    """One simulator per export: 500 consents in pages of 10, 100 ms a request (about 5 s each)."""
    simulators: dict[str, EtelecomSimulator] = {}
    try:
        for name in EXPORTS:
            sim = EtelecomSimulator(consents=500, seed=7, api_key=SECRET_KEY, latency_ms=100).start()
            simulators[name] = sim
            conn = {"conn_type": "etelecom", "host": sim.base_url, "password": sim.api_key}
            monkeypatch.setenv(f"AIRFLOW_CONN_ETELECOM_{name.upper()}", json.dumps(conn))
        yield simulators
    finally:
        for sim in simulators.values():
            sim.stop()


def _wait_for(condition: Callable[[], object], proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the DAG run exited ({proc.returncode}) before {what}:\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {what} within {START_DEADLINE_S:.0f} s:\n{log.read_text()[-4000:]}")
        time.sleep(0.05)  # polling a condition, bounded by the deadline above


def _run_and_stop(command: list[str], exports: dict[str, EtelecomSimulator], folder: Path, log: Path) -> str:
    """Run an Airflow command, SIGTERM each export in turn once it is paging; return the log."""

    def temps(name: str) -> list[str]:
        return sorted(p.name for p in (folder / name).glob("*.tmp-*")) if (folder / name).exists() else []

    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("airflow")), *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ),
        )
    try:
        for name, sim in exports.items():
            paging = lambda name=name, sim=sim: temps(name) and sim.stats.count(method=LIST) >= 3  # noqa: E731
            _wait_for(paging, proc, log, f"{name} paging")
            proc.send_signal(signal.SIGTERM)
            # This export gives up (its temporary file removed) before the next one starts.
            warning = f"ListConsentsOperator {name} was told to stop"
            stopped = lambda name=name, warning=warning: warning in log.read_text() and not temps(name)  # noqa: E731
            _wait_for(stopped, proc, log, f"{name} stopping")
        proc.wait(timeout=EXIT_DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    # Each export's task failed (`tasks test` and `dags test` exit 0 on Airflow 3 either way).
    assert text.count("Task failed with exception") >= len(exports), text[-4000:]
    for name in exports:
        assert temps(name) == [], text[-4000:]
    return text


def test_sigterm_removes_the_temporary_file_and_publishes_nothing(
    airflow_db: str, slow_simulators: dict[str, EtelecomSimulator], tmp_path: Path
) -> None:
    from airflow.providers.common.compat.sdk import AIRFLOW_V_3_0_PLUS

    dag_id = "test_list_consents_sigterm"
    folder = tmp_path / "out"
    load_dag_file(dag_id, DAG_SOURCE.format(dag_id=dag_id, exports=EXPORTS, folder=f"file://{folder}"))
    if AIRFLOW_V_3_0_PLUS:  # one process runs both tasks, each stopped by its own signal
        texts = [_run_and_stop(["dags", "test", dag_id, "2026-01-01"], slow_simulators, folder, tmp_path / "run.log")]
    else:  # Airflow 2's `dags test` ends at the first task a signal stopped: one `tasks test` per export
        texts = [
            _run_and_stop(["tasks", "test", dag_id, name, "2026-01-01"], {name: sim}, folder, tmp_path / f"{name}.log")
            for name, sim in slow_simulators.items()
        ]
    text = "\n".join(texts)
    for name, sim in slow_simulators.items():
        assert not (folder / name / "consents.jsonl").exists(), text[-4000:]
        # It stopped paging instead of finishing the export (51 pages) after the signal.
        assert sim.stats.count(method=LIST) < 51, name
    assert SECRET_KEY not in without_masking_requests(text)
