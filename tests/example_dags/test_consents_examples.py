"""The consent export example DAGs: they import cleanly and run end to end against the simulator."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from airflow_provider_etelecom.client.validation import FILTER_MARGIN
from airflow_provider_etelecom.testing import EtelecomSimulator
from tests.conftest import activate_assets_before_dag_test

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
FILES = ["etelecom_consents_daily.py", "etelecom_consents_backfill.py"]
VN = ZoneInfo("Asia/Ho_Chi_Minh")
OUR_CODE = (str(EXAMPLES), str(Path(__file__).resolve().parents[2] / "airflow_provider_etelecom"))


def make_bag(path: Path) -> Any:
    """Parse one file with Airflow's DagBag (``include_examples`` is gone in Airflow 3.3)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2
        from airflow.models.dagbag import DagBag

    try:
        return DagBag(dag_folder=str(path), include_examples=False)
    except TypeError:
        return DagBag(dag_folder=str(path))


def dags_folder() -> Path:
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def load(name: str) -> Any:
    """Copy an example into the dags folder (Airflow 3's dag.test() re-parses it there) and load it."""
    target = dags_folder() / name
    shutil.copy(EXAMPLES / name, target)
    bag = make_bag(target)
    assert bag.import_errors == {}
    (dag,) = bag.dags.values()
    return dag


def run_dag(dag: Any, logical_date: datetime | None = None) -> Any:
    from airflow.providers.common.compat.sdk import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:
        activate_assets_before_dag_test(dag)
        return dag.test(logical_date=logical_date)
    return dag.test(execution_date=logical_date)


def read_lines(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def created_between(sim: EtelecomSimulator, start: datetime, end: datetime) -> list[dict[str, Any]]:
    def moment(c: dict[str, Any]) -> datetime:
        return datetime.fromisoformat(c["created_at"].replace("Z", "+00:00"))

    return [c for c in sim.consents() if start <= moment(c) < end]


@pytest.mark.parametrize("name", FILES)
def test_examples_import_without_errors_or_warnings_from_our_code(name: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = make_bag(EXAMPLES / name)
    assert bag.import_errors == {}
    assert [d.dag_id for d in bag.dags.values()] == [name.removesuffix(".py")]
    ours = [w for w in caught if str(w.filename).startswith(OUR_CODE)]
    assert ours == [], [str(w.message) for w in ours]


def test_daily_dag_shape() -> None:
    dag = next(iter(make_bag(EXAMPLES / FILES[0]).dags.values()))
    assert dag.catchup is False
    task = dag.get_task("export_consents")
    assert task.retries >= 1 and task.retry_delay >= timedelta(minutes=1)
    assert "CronDataIntervalTimetable" in type(dag.timetable).__name__
    assert dag.doc_md


def test_daily_dag_runs_and_writes_the_settled_local_day(
    airflow_db: str, etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sim = etelecom_connection
    monkeypatch.setenv("ETELECOM_EXPORT_BASE", f"file://{tmp_path}")
    dag = load(FILES[0])
    local_today = sim.now().astimezone(VN).replace(hour=0, minute=0, second=0, microsecond=0)
    run = run_dag(dag, local_today - timedelta(days=5))
    assert run.state == "success"
    (written,) = sorted((tmp_path / "consents").iterdir())
    day = datetime.strptime(written.name.removesuffix(".jsonl.gz"), "%Y-%m-%d").replace(tzinfo=VN)
    assert local_today - timedelta(days=9) <= day <= local_today - timedelta(days=6)  # lagged past the reply window
    expected = created_between(sim, day, day + timedelta(days=1))
    assert expected
    assert read_lines(written) == expected
    sent = sim.requests_log[0]["body"]["filter"]
    assert sent["date_from"] == (day - FILTER_MARGIN).astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_backfill_dag_maps_one_task_and_one_file_per_day(
    airflow_db: str, etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sim = etelecom_connection
    first = (sim.now().astimezone(VN) - timedelta(days=6)).date()
    monkeypatch.setenv("ETELECOM_EXPORT_BASE", f"file://{tmp_path}")
    monkeypatch.setenv("ETELECOM_BACKFILL_START", first.isoformat())
    monkeypatch.setenv("ETELECOM_BACKFILL_END", (first + timedelta(days=3)).isoformat())
    dag = load(FILES[1])
    run = run_dag(dag)
    assert run.state == "success"
    files = sorted((tmp_path / "backfill").iterdir())
    assert [f.name for f in files] == [f"{first + timedelta(days=n)}.jsonl.gz" for n in range(3)]
    start = datetime(first.year, first.month, first.day, tzinfo=VN)
    everything = [c for f in files for c in read_lines(f)]
    expected = created_between(sim, start, start + timedelta(days=3))
    assert sorted(c["id"] for c in everything) == sorted(c["id"] for c in expected)
    assert len({c["id"] for c in everything}) == len(everything)
