"""The request-and-wait example DAG: imports cleanly and runs end to end against the simulator."""

from __future__ import annotations

import os
import runpy
import shutil
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_etelecom.testing import EtelecomSimulator
from tests.conftest import SECRET_KEY

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "etelecom_request_and_wait.py"
SEND = "Zalo/RequestConsent"


@pytest.fixture
def etelecom_simulator_options() -> dict[str, object]:
    # The customer answers three (real) seconds after the request.
    return {"consents": 50, "seed": 7, "api_key": SECRET_KEY, "auto_reply_after_s": 3}


@pytest.fixture(autouse=True)
def sequential_executor_on_airflow_2(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.common.compat.sdk import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "SequentialExecutor")


def load_example(monkeypatch: pytest.MonkeyPatch, mode: str) -> Any:
    """Put the example in the dags folder (Airflow 3's dag.test() re-parses the file) and load it."""
    monkeypatch.setenv("ETELECOM_EXAMPLE_SENSOR_MODE", mode)
    monkeypatch.setenv("ETELECOM_EXAMPLE_POKE_INTERVAL", "1")
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE, folder / EXAMPLE.name)
    return runpy.run_path(str(folder / EXAMPLE.name))["dag"]


def states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def test_example_imports_without_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ETELECOM_EXAMPLE_SENSOR_MODE", raising=False)
    dag = runpy.run_path(str(EXAMPLE))["dag"]
    assert dag.dag_id == "etelecom_request_and_wait"
    assert dag.get_task("wait_for_reply").deferrable is True
    assert set(dag.task_ids) == {
        "request_consent",
        "wait_for_reply",
        "branch_on_reply",
        "schedule_call",
        "record_refusal",
    }


@pytest.mark.parametrize("mode", ["deferrable", "poke"])
def test_agreed_goes_to_schedule_call(
    airflow_db: str, etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    sim = etelecom_connection
    dag = load_example(monkeypatch, mode)
    assert dag.get_task("wait_for_reply").deferrable is (mode == "deferrable")
    dag_run = dag.test()
    assert str(dag_run.state) == "success"
    assert states(dag_run) == {
        "request_consent": "success",
        "wait_for_reply": "success",
        "branch_on_reply": "success",
        "schedule_call": "success",
        "record_refusal": "skipped",
    }
    assert sim.stats.count(method=SEND) == 1


@pytest.mark.parametrize(
    "etelecom_simulator_options",
    [{"consents": 50, "seed": 7, "api_key": SECRET_KEY, "auto_reply_after_s": 3, "auto_reply_status": "N"}],
)
def test_refused_goes_to_record_refusal(
    airflow_db: str, etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    dag = load_example(monkeypatch, "deferrable")
    dag_run = dag.test()
    assert states(dag_run)["schedule_call"] == "skipped"
    assert states(dag_run)["record_refusal"] == "success"
