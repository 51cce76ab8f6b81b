"""OpenLineage events of ConsentsToSqlOperator in a real DAG run, through the provider's file transport.

As for ListConsentsOperator (tests/operators/test_list_consents_lineage.py), the DAG runs with
``dag.test()`` in a fresh interpreter, so that the OpenLineage provider's plugin and its listener
are loaded as in a deployment. The run loads one SQLite file twice (created, then upserted), one
PostgreSQL database, and fails one load mid-listing; the events must name each table once, with
OpenLineage's naming, and never the session's staging table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_etelecom.testing import EtelecomSimulator
from airflow_provider_etelecom.transfers import sql_table
from tests.conftest import SECRET_KEY, only, run_dag_for_lineage

pytest.importorskip("airflow.providers.openlineage", reason="the test extra installs the OpenLineage provider")

LISTING = "Zalo/ListRequestConsent?connection="

#: A fresh Airflow interpreter per run: among the longest tests, so run first (tests/conftest.py).
pytestmark = pytest.mark.slow

DAG_SOURCE = """
from datetime import datetime, timezone

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_etelecom.transfers.consents_to_sql import ConsentsToSqlOperator

with DAG("sql_lineage", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False) as dag:
    created = ConsentsToSqlOperator(task_id="created", sql_conn_id="lite", table="consents", create_table=True)
    upsert = ConsentsToSqlOperator(task_id="upsert", sql_conn_id="lite", table="consents")
    created >> upsert
    ConsentsToSqlOperator(task_id="pg", sql_conn_id="warehouse", table="consents", create_table=True)
    ConsentsToSqlOperator(
        task_id="fails", etelecom_conn_id="etelecom_flaky", sql_conn_id="lite", table="other", create_table=True
    )
"""


@pytest.fixture
def flaky_simulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[EtelecomSimulator]:
    """A second shop whose third page fails, with no retries: the load on it fails mid-listing."""
    with EtelecomSimulator(consents=500, seed=3, api_key=SECRET_KEY) as sim:
        conn = {"conn_type": "etelecom", "host": sim.base_url, "password": sim.api_key, "extra": {"max_retries": 0}}
        monkeypatch.setenv("AIRFLOW_CONN_ETELECOM_FLAKY", json.dumps(conn))
        sim.script_faults(["none", "none", "503"])
        yield sim


@pytest.fixture
def lineage_run(
    airflow_db: str,
    etelecom_connection: EtelecomSimulator,
    flaky_simulator: EtelecomSimulator,
    postgres_db: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """Run the DAG once with OpenLineage's file transport; return the events by job and type."""
    lite = tmp_path / "lite.db"
    monkeypatch.setenv("AIRFLOW_CONN_LITE", json.dumps({"conn_type": "sqlite", "host": str(lite)}))
    events, by_job, text = run_dag_for_lineage("sql_lineage.py", DAG_SOURCE, tmp_path)
    pg = json.loads(os.environ["AIRFLOW_CONN_WAREHOUSE"])
    return {"events": events, "by_job": by_job, "text": text, "lite": lite, "pg": pg, "flaky": flaky_simulator}


def test_sql_lineage_of_a_real_dag_run(lineage_run: dict[str, Any], etelecom_connection: EtelecomSimulator) -> None:
    by_job, lite, pg = lineage_run["by_job"], lineage_run["lite"], lineage_run["pg"]
    namespace = etelecom_connection.base_url.rstrip("/")
    lite_namespace = f"sqlite://{lite.resolve()}"

    # SQLite, created: the listing in, the table out with its SQL schema, the rows merged, CREATE.
    complete = only(by_job["sql_lineage.created"]["COMPLETE"])
    (listing,) = complete["inputs"]
    assert (listing["namespace"], listing["name"]) == (namespace, f"{LISTING}etelecom_default")
    (output,) = complete["outputs"]
    assert (output["namespace"], output["name"]) == (lite_namespace, "consents")
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 500
    assert output["facets"]["lifecycleStateChange"]["lifecycleStateChange"] == "CREATE"
    types = {f["name"]: f["type"] for f in output["facets"]["schema"]["fields"]}
    assert types == sql_table.column_types("sqlite")

    # The same table upserted again with the same consents: the same dataset, no row written (the
    # values are the same), no lifecycle change.
    upsert = only(by_job["sql_lineage.upsert"]["COMPLETE"])
    (again,) = upsert["outputs"]
    assert (again["namespace"], again["name"]) == (lite_namespace, "consents")
    assert again["outputFacets"]["outputStatistics"]["rowCount"] == 0
    assert "lifecycleStateChange" not in again["facets"]

    # PostgreSQL: postgres://host:port and database.schema.table, the schema resolved by the server.
    pg_complete = only(by_job["sql_lineage.pg"]["COMPLETE"])
    (pg_output,) = pg_complete["outputs"]
    assert (pg_output["namespace"], pg_output["name"]) == (
        f"postgres://{pg['host']}:{pg['port']}",
        f"{pg['schema']}.public.consents",
    )
    assert {f["name"]: f["type"] for f in pg_output["facets"]["schema"]["fields"]} == sql_table.column_types("postgres")
    assert pg_output["outputFacets"]["outputStatistics"]["rowCount"] == 500
    pg_start = only(by_job["sql_lineage.pg"]["START"])
    assert [(o["namespace"], o["name"]) for o in pg_start["outputs"]] == [(pg_output["namespace"], pg_output["name"])]

    # A failed load: the other shop's listing and the table, no statistics; the table was never created.
    failed = only(by_job["sql_lineage.fails"]["FAIL"])
    assert [(i["namespace"], i["name"]) for i in failed["inputs"]] == [
        (lineage_run["flaky"].base_url.rstrip("/"), f"{LISTING}etelecom_flaky")
    ]
    (intended,) = failed["outputs"]
    assert (intended["namespace"], intended["name"]) == (lite_namespace, "other")
    assert "outputStatistics" not in intended.get("outputFacets", {})
    assert "lifecycleStateChange" not in intended["facets"]

    # Every task event names its table once and nothing else; never a staging table, never the key.
    task_events = [e for e in lineage_run["events"] if e["job"]["name"] != "sql_lineage"]
    assert sorted((e["job"]["name"], e["eventType"]) for e in task_events) == sorted(
        [(f"sql_lineage.{task}", kind) for task in ("created", "upsert", "pg") for kind in ("START", "COMPLETE")]
        + [("sql_lineage.fails", "START"), ("sql_lineage.fails", "FAIL")]
    )
    assert all(len(e["outputs"]) == 1 and len(e["inputs"]) == 1 for e in task_events)
    assert "etelecom_stage_" not in lineage_run["text"]
    assert SECRET_KEY not in lineage_run["text"]
