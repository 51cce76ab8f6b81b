"""OpenLineage events of ListConsentsOperator in a real DAG run, through the provider's file transport.

The DAG runs with ``dag.test()`` in a fresh interpreter, because the OpenLineage provider decides
when its plugin is loaded (once per process) whether it is enabled, and only then registers the
hook-level lineage reader that makes ``ObjectStoragePath`` report the files a task opened. That
collector is what leaks the temporary sibling today; the run includes a control task with the
operator's lineage methods hidden, whose events must show the leak, so the test proves both that
the fallback is live in this run and that the operator's own datasets win over it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_etelecom.client.models import CONSENT_FIELD_NAMES
from airflow_provider_etelecom.outputs.parquet import EXTRA_COLUMN
from airflow_provider_etelecom.testing import EtelecomSimulator
from tests.conftest import SECRET_KEY, only, run_dag_for_lineage

pytest.importorskip("airflow.providers.openlineage", reason="the test extra installs the OpenLineage provider")

LISTING = "Zalo/ListRequestConsent?connection="
FIELDS = list(CONSENT_FIELD_NAMES)

#: A fresh Airflow interpreter per run: among the longest tests, so run first (tests/conftest.py).
pytestmark = pytest.mark.slow

DAG_SOURCE = '''
from datetime import datetime, timezone

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator


class UndeclaredLineage(ListConsentsOperator):
    """The control: the same export with the operator's lineage methods hidden."""

    get_openlineage_facets_on_start = None
    get_openlineage_facets_on_complete = None
    get_openlineage_facets_on_failure = None


# With a storage connection, even a file:// path is written through ObjectStoragePath, whose hook-level
# lineage collector sees the temporary sibling: the case the operator's own lineage must win against
# (as for s3:// or gs://). The mapped tasks take the standard-library path (no connection).
STORAGE = "local_files"

with DAG("test_lineage", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False) as dag:
    ListConsentsOperator(task_id="parquet", output_path="file://%(folder)s/{{ ds }}.parquet", output_conn_id=STORAGE)
    ListConsentsOperator.partial(task_id="mapped").expand(
        output_path=["file://%(folder)s/a.jsonl.gz", "file://%(folder)s/b.parquet"]
    )
    ListConsentsOperator(task_id="xcom")
    ListConsentsOperator(
        task_id="fails",
        etelecom_conn_id="etelecom_flaky",
        output_path="file://%(folder)s/f.jsonl.gz",
        output_conn_id=STORAGE,
    )
    UndeclaredLineage(task_id="control", output_path="file://%(folder)s/control.jsonl.gz", output_conn_id=STORAGE)
    UndeclaredLineage(
        task_id="control_fails",
        etelecom_conn_id="etelecom_flaky",
        output_path="file://%(folder)s/cf.jsonl.gz",
        output_conn_id=STORAGE,
    )
'''


@pytest.fixture
def flaky_simulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[EtelecomSimulator]:
    """A second shop whose third page fails, with no retries: each export on it fails mid-file."""
    with EtelecomSimulator(consents=500, seed=3, api_key=SECRET_KEY) as sim:
        conn = {"conn_type": "etelecom", "host": sim.base_url, "password": sim.api_key, "extra": {"max_retries": 0}}
        monkeypatch.setenv("AIRFLOW_CONN_ETELECOM_FLAKY", json.dumps(conn))
        sim.script_faults(["none", "none", "503", "none", "none", "503"])  # the two failing tasks, in any order
        yield sim


@pytest.fixture
def lineage_run(
    airflow_db: str, etelecom_connection: EtelecomSimulator, flaky_simulator: EtelecomSimulator, tmp_path: Path
) -> dict[str, Any]:
    """Run the DAG once with OpenLineage's file transport; return the events by job and type."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "2026-01-05.parquet").write_bytes(b"an earlier export, to be overwritten")
    events, by_job, text = run_dag_for_lineage("test_lineage.py", DAG_SOURCE % {"folder": folder}, tmp_path)
    return {"events": events, "by_job": by_job, "text": text, "folder": folder, "flaky": flaky_simulator}


def test_lineage_of_a_real_dag_run(lineage_run: dict[str, Any], etelecom_connection: EtelecomSimulator) -> None:
    by_job, folder = lineage_run["by_job"], lineage_run["folder"]
    namespace = etelecom_connection.base_url.rstrip("/")

    # The listing in; the final Parquet file out, with its schema, row count, size and overwrite.
    complete = only(by_job["test_lineage.parquet"]["COMPLETE"])
    target = folder / "2026-01-05.parquet"
    (listing,) = complete["inputs"]
    assert (listing["namespace"], listing["name"]) == (namespace, f"{LISTING}etelecom_default")
    assert [f["name"] for f in listing["facets"]["schema"]["fields"]] == FIELDS
    (output,) = complete["outputs"]
    assert (output["namespace"], output["name"]) == ("file", str(target))
    statistics = output["outputFacets"]["outputStatistics"]
    assert (statistics["rowCount"], statistics["size"]) == (500, target.stat().st_size)
    assert output["facets"]["lifecycleStateChange"]["lifecycleStateChange"] == "OVERWRITE"
    types = {f["name"]: f["type"] for f in output["facets"]["schema"]["fields"]}
    assert types["created_at"] == "timestamp[us, tz=UTC]" and types["is_charged"] == "bool"
    assert list(types) == [*FIELDS, EXTRA_COLUMN]
    start = only(by_job["test_lineage.parquet"]["START"])
    assert [(o["namespace"], o["name"]) for o in start["outputs"]] == [("file", str(target))]  # rendered

    # One output per mapped task, each its own file, created.
    mapped = by_job["test_lineage.mapped"]["COMPLETE"]
    assert len(mapped) == 2 and all(len(event["outputs"]) == 1 for event in mapped)
    assert sorted(e["outputs"][0]["name"] for e in mapped) == [str(folder / "a.jsonl.gz"), str(folder / "b.parquet")]
    assert {e["outputs"][0]["facets"]["lifecycleStateChange"]["lifecycleStateChange"] for e in mapped} == {"CREATE"}
    assert sorted(e["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] for e in mapped) == [500, 500]

    # XCom mode: the listing in, nothing out.
    xcom = only(by_job["test_lineage.xcom"]["COMPLETE"])
    assert [i["name"] for i in xcom["inputs"]] == [f"{LISTING}etelecom_default"] and xcom["outputs"] == []

    # A failed export: the other shop's listing and the intended file, no statistics, nothing on disk.
    failed = only(by_job["test_lineage.fails"]["FAIL"])
    assert [(i["namespace"], i["name"]) for i in failed["inputs"]] == [
        (lineage_run["flaky"].base_url.rstrip("/"), f"{LISTING}etelecom_flaky")
    ]
    (intended,) = failed["outputs"]
    assert intended["name"] == str(folder / "f.jsonl.gz") and "outputStatistics" not in intended.get("outputFacets", {})
    assert not (folder / "f.jsonl.gz").exists()

    # No temporary path and no key anywhere. The control proves the fallback is live in this run:
    # without the operator's lineage, the temporary file leaks (on success and on failure).
    control = only(by_job["test_lineage.control"]["COMPLETE"])
    assert any(".tmp-" in o["name"] for o in control["outputs"]), control["outputs"]
    control_failed = only(by_job["test_lineage.control_fails"]["FAIL"])
    assert any(".tmp-" in o["name"] for o in control_failed["outputs"]), control_failed["outputs"]
    ours = [e for e in lineage_run["events"] if not e["job"]["name"].startswith("test_lineage.control")]
    task_events = sorted((e["job"]["name"], e["eventType"]) for e in ours if e["job"]["name"] != "test_lineage")
    assert task_events == sorted(
        [
            (f"test_lineage.{task}", kind)
            for task in ("parquet", "xcom", "mapped", "mapped")
            for kind in ("START", "COMPLETE")
        ]
        + [("test_lineage.fails", "START"), ("test_lineage.fails", "FAIL")]
    )
    assert [e["job"]["name"] for e in ours if ".tmp-" in json.dumps(e)] == []
    assert SECRET_KEY not in lineage_run["text"]
