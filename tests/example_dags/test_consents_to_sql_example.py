"""The daily SQL load example DAG: it imports cleanly and runs end to end into SQLite."""

from __future__ import annotations

import json
import sqlite3
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from airflow_provider_etelecom.testing import EtelecomSimulator
from tests.example_dags.test_consents_examples import EXAMPLES, OUR_CODE, created_between, load, make_bag, run_dag

NAME = "etelecom_consents_to_sql_daily.py"
VN = ZoneInfo("Asia/Ho_Chi_Minh")


def test_example_imports_without_errors_or_warnings_from_our_code() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = make_bag(EXAMPLES / NAME)
    assert bag.import_errors == {}
    (dag,) = bag.dags.values()
    assert dag.dag_id == NAME.removesuffix(".py") and dag.catchup is False and dag.doc_md
    assert "CronDataIntervalTimetable" in type(dag.timetable).__name__
    task = dag.get_task("load_consents")
    assert task.retries >= 1 and task.create_table is True and task.lookback == timedelta(days=2)
    assert [w for w in caught if str(w.filename).startswith(OUR_CODE)] == []


def test_a_daily_run_upserts_the_day_and_its_lookback(
    airflow_db: str, etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sim = etelecom_connection
    path = tmp_path / "warehouse.db"
    monkeypatch.setenv("AIRFLOW_CONN_ETELECOM_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    dag = load(NAME)
    day = (sim.now().astimezone(VN) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    run = run_dag(dag, day)
    assert run.state == "success"
    with sqlite3.connect(path) as conn:
        rows = dict(conn.execute("SELECT id, reply_status FROM etelecom_consents").fetchall())
    start, end = (datetime.fromtimestamp(t.timestamp(), VN) for t in (run.data_interval_start, run.data_interval_end))
    assert end - start == timedelta(days=1)
    expected = created_between(sim, start - timedelta(days=2), end)
    assert expected
    assert rows == {c["id"]: c["reply_status"] for c in expected}
