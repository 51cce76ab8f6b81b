"""scripts/_local_airflow.py: stopping the components of the local Airflow (``./scripts/airflow-ui``, the e2e runs).

Real processes stand in for Airflow's components: a "scheduler" that, on SIGTERM, waits for the worker
it started (as LocalExecutor's ``end()`` joins its workers, which run tasks), and one that ignores SIGTERM.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import _local_airflow

#: On SIGTERM, wait for the worker child (in the same process group) before exiting.
WAITS_FOR_ITS_WORKER = """
import signal, subprocess, sys
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
def end(signum, frame):
    worker.wait()
    sys.exit(0)
signal.signal(signal.SIGTERM, end)
print("ready", flush=True)
signal.pause()
"""
IGNORES_SIGTERM = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(600)
"""


@pytest.fixture
def start() -> Iterator[object]:
    started: list[subprocess.Popen[str]] = []

    def _start(code: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        return proc

    yield _start
    for proc in started:
        _local_airflow._kill_group(proc.pid, 9)
        proc.wait()


def test_a_component_waiting_for_its_running_tasks_stops_with_them(
    start: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    scheduler = start(WAITS_FOR_ITS_WORKER)
    took = _local_airflow.stop_components({"scheduler": scheduler}, grace=30)
    assert scheduler.returncode == 0  # it ended by itself: its worker got the SIGTERM too
    assert took < 10
    out = capsys.readouterr().err
    assert "killing" not in out and "Airflow stopped in" in out


def test_a_component_that_does_not_stop_is_killed_after_the_grace_and_named(
    start: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    stubborn, quick = start(IGNORES_SIGTERM), start(WAITS_FOR_ITS_WORKER)
    took = _local_airflow.stop_components({"triggerer": stubborn, "scheduler": quick}, grace=1, report_every=0.5)
    assert stubborn.returncode == -9 and quick.returncode == 0
    assert 1 <= took < 10
    out = capsys.readouterr().err
    assert "Waiting for Airflow's triggerer to stop" in out
    assert "Airflow's triggerer did not stop within 1 s: killing its process group" in out
    assert "scheduler did not stop" not in out


def test_getting_started_states_the_stop_as_the_script_does() -> None:
    """docs/getting-started.md promises no time it cannot keep: the grace and the report interval are the script's."""
    import inspect

    page = (Path(__file__).resolve().parents[2] / "docs" / "getting-started.md").read_text(encoding="utf-8")
    grace = _local_airflow.STOP_GRACE
    every = inspect.signature(_local_airflow.stop_components).parameters["report_every"].default
    assert f"A component still running after {grace:.0f} s is killed" in page
    assert f"did not stop within {grace:.0f} s: killing its process\ngroup" in page
    assert f"Every {every:.0f} s it prints which" in page
    assert not re.search(r"about \d+[–-]\d+ s", page), "a stop time the script does not bound"
