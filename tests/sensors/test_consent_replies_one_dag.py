"""ConsentReplySensor through Airflow (``dag.test()``): reschedule and deferrable give the same XCom."""

from __future__ import annotations

import json
import os
import runpy
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.testing import EtelecomSimulator
from tests.conftest import SECRET_KEY

OA = "4239023413265392134"
PHONE = "0912000333"

DAG_SOURCE = """
import json
from datetime import datetime, timezone

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_etelecom.sensors.consent_replies import ConsentReplySensor

with DAG(dag_id={dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)) as dag:
    wait = ConsentReplySensor(
        task_id="wait", consent_id={consent_id!r}, phone={phone!r}, oa_id={oa_id!r}, poke_interval=1, timeout=60,
        **{kwargs!r}
    )

    @task
    def record(consent):
        with open({out!r}, "w") as handle:
            json.dump(consent, handle)

    record(wait.output)
"""


@pytest.fixture(autouse=True)
def sequential_executor_on_airflow_2(monkeypatch: pytest.MonkeyPatch) -> None:
    # Airflow 2's reschedule dependency loads the configured executor; unit-test mode names the
    # LocalExecutor, which refuses SQLite. dag.test() runs tasks in-process whatever it names.
    from airflow.providers.common.compat.sdk import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "SequentialExecutor")


@pytest.fixture
def etelecom_simulator_options() -> dict[str, object]:
    # The customer agrees two (real) seconds after the request.
    return {"consents": 50, "seed": 7, "api_key": SECRET_KEY, "auto_reply_after_s": 2}


def run(dag_id: str, consent_id: str, tmp_path: Path, **sensor_kwargs: Any) -> tuple[str, Any]:
    """Write the DAG into the dags folder (Airflow 3's dag.test() re-parses the file) and run it."""
    out = tmp_path / f"{dag_id}.json"
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dag_id}.py"
    path.write_text(
        DAG_SOURCE.format(
            dag_id=dag_id, consent_id=consent_id, phone=PHONE, oa_id=OA, kwargs=sensor_kwargs, out=str(out)
        )
    )
    dag_run = runpy.run_path(str(path))["dag"].test()
    return str(dag_run.state), json.loads(out.read_text()) if out.exists() else None


@pytest.mark.parametrize(
    ("mode", "kwargs"),
    [
        ("reschedule", {"mode": "reschedule"}),
        ("deferrable", {"deferrable": True}),
    ],
)
def test_modes_push_the_consent(
    airflow_db: str, etelecom_connection: EtelecomSimulator, mode: str, kwargs: dict[str, Any], tmp_path: Path
) -> None:
    sim = etelecom_connection
    consent = EtelecomHook().request_consent(oa_id=OA, phone=PHONE, call_type="audio", reason_code="update_order")
    state, seen = run(f"consent_sensor_{mode}", consent["id"], tmp_path, **kwargs)
    assert state == "success"
    assert seen["id"] == consent["id"] and seen["reply_status"] == "P"
    assert sim.consent(consent["id"])["reply_status"] == "P"  # type: ignore[index]


def test_deferrable_refusal_fails_the_task(
    airflow_db: str, etelecom_connection: EtelecomSimulator, tmp_path: Path
) -> None:
    consent = EtelecomHook().request_consent(oa_id=OA, phone=PHONE, call_type="audio", reason_code="update_order")
    etelecom_connection.auto_reply_after_s = None
    etelecom_connection.reply(consent["id"], "N")
    state, seen = run("consent_sensor_refused", consent["id"], tmp_path, deferrable=True, failure_statuses=["N"])
    assert state == "failed" and seen is None
