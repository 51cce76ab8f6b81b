"""ListConsentsOperator against the simulator over loopback HTTP (and S3 through moto's server)."""

from __future__ import annotations

import gzip
import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_etelecom.client.paging import CursorKind, PlatformFacts
from airflow_provider_etelecom.client.validation import FILTER_MARGIN
from airflow_provider_etelecom.exceptions import EtelecomError, EtelecomValidationError
from airflow_provider_etelecom.operators import list_consents as module
from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator
from airflow_provider_etelecom.testing import EtelecomSimulator
from tests.conftest import SECRET_KEY, activate_assets_before_dag_test

LIST = "Zalo/ListRequestConsent"


def set_connection(monkeypatch: pytest.MonkeyPatch, sim: EtelecomSimulator, **extra: Any) -> None:
    conn = {"conn_type": "etelecom", "host": sim.base_url, "password": sim.api_key, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_ETELECOM_DEFAULT", json.dumps(conn))


def run(op: ListConsentsOperator, context: dict[str, Any] | None = None) -> Any:
    return op.execute(context or {})  # type: ignore[arg-type]


def read_lines(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


@pytest.fixture
def log_text(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """Everything logged (stdlib via caplog; Airflow 3's structlog lines reach stdout/stderr)."""
    caplog.set_level(logging.INFO)

    def text() -> str:
        captured = capsys.readouterr()
        return caplog.text + captured.out + captured.err

    yield text


# -- parse time ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"page_size": 500}, "page_size"),
        ({"date_from": "yesterday"}, "date_from"),
        ({"date_from": "2026-01-01T00:00:00"}, "date_from"),
        ({"call_type": "fax"}, "call_type"),
        ({"is_charged": "false"}, "is_charged"),
        ({"oa_id": "12ab"}, "oa_id"),
        ({"sort": "id"}, "sort"),
        ({"max_pages": 0}, "max_pages"),
        ({"max_xcom_consents": -1}, "max_xcom_consents"),
        ({"output_path": "/data/no-scheme.jsonl"}, "output_path"),
        ({"output_path": "s3://bucket/folder/"}, "output_path"),
    ],
)
def test_invalid_literal_values_fail_at_parse_time(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(EtelecomValidationError) as raised:
        ListConsentsOperator(task_id="export", **kwargs)
    assert raised.value.parameter == parameter
    assert parameter in str(raised.value)


def test_empty_literal_window_names_the_cause() -> None:
    with pytest.raises(EtelecomValidationError, match="CronDataIntervalTimetable"):
        ListConsentsOperator(task_id="export", date_from="2026-01-01T00:00:00Z", date_to="2026-01-01T00:00:00Z")


def test_templated_values_wait_for_rendering() -> None:
    op = ListConsentsOperator(
        task_id="export",
        date_from="{{ data_interval_start }}",
        date_to="{{ data_interval_end }}",
        phone="{{ params.phone }}",
        output_path="file:///tmp/{{ ds }}.jsonl",
    )
    assert {"date_from", "date_to", "phone", "output_path", "call_type", "is_charged"} <= set(op.template_fields)
    assert op.date_from == "{{ data_interval_start }}"


def test_naive_dates_are_read_in_the_given_timezone() -> None:
    ListConsentsOperator(
        task_id="export", date_from="2026-01-01T00:00:00", date_to="2026-01-02T00:00:00", timezone="Asia/Ho_Chi_Minh"
    )


# -- execute-time validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rendered", "expected"),
    [
        ({"date_from": "not a date"}, "date_from"),
        (
            {"date_from": "2026-01-01T00:00:00+00:00", "date_to": "2026-01-01T00:00:00+00:00"},
            "CronDataIntervalTimetable",
        ),
        ({"phone": "12"}, "phone"),
        ({"is_charged": "maybe"}, "is_charged"),
        ({"output_path": "nosuchscheme://bucket/x.jsonl"}, "output_path"),
        ({"output_path": "/no/scheme.jsonl"}, "output_path"),
        ({"output_path": "file:///tmp/folder/"}, "output_path"),
    ],
)
def test_rendered_values_fail_before_any_request(
    etelecom_connection: EtelecomSimulator, rendered: dict[str, Any], expected: str
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    op = ListConsentsOperator(task_id="export")
    for name, value in rendered.items():  # what rendering a template would put there
        setattr(op, name, value)
    with pytest.raises(AirflowFailException, match=expected):
        run(op)
    assert etelecom_connection.stats.count(method=LIST) == 0


def test_rendered_is_charged_string_is_read_as_bool(etelecom_connection: EtelecomSimulator) -> None:
    op = ListConsentsOperator(task_id="export", is_charged="{{ params.charged }}")
    op.is_charged = "False"
    consents = run(op)
    assert consents and all(c["is_charged"] is False for c in consents)
    assert etelecom_connection.requests_log[0]["body"]["filter"]["is_charged"] is False


# -- XCom mode ---------------------------------------------------------------------------------


def test_xcom_mode_returns_every_consent_over_one_connection(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consents = run(ListConsentsOperator(task_id="export"))
    assert consents == sim.consents()
    assert len({c["id"] for c in consents}) == 500
    assert sim.stats.connections == 1
    assert sim.requests_log[0]["body"]["paging"] == {"limit": 100}
    # Five pages, then one more request: a listing ends only on an empty page.
    assert sim.stats.count(method=LIST) > 5


def test_xcom_mode_filters_and_window(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    everything = sim.consents()
    times = sorted(c["created_at"] for c in everything)
    start, end = times[100], times[300]
    op = ListConsentsOperator(task_id="export", date_from=start, date_to=end, call_type="audio", page_size=20)
    consents = run(op)
    expected = [c for c in everything if start <= c["created_at"] < end and c["call_type"] == "audio"]
    assert consents == expected
    sent = sim.requests_log[0]["body"]
    assert sent["filter"]["call_type"] == "audio"
    assert sent["paging"]["limit"] == 20


def test_xcom_guard_fails_without_paging_further(etelecom_connection: EtelecomSimulator) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    with pytest.raises(AirflowFailException, match="output_path") as raised:
        run(ListConsentsOperator(task_id="export", max_xcom_consents=150))
    assert "max_xcom_consents=150" in str(raised.value)
    # two pages (and at most the two requests that learn the platform's cursor from a tie)
    assert etelecom_connection.stats.count(method=LIST, status=200) <= 2 + 2


def test_xcom_guard_allows_exactly_the_limit(etelecom_connection: EtelecomSimulator) -> None:
    assert len(run(ListConsentsOperator(task_id="export", max_xcom_consents=500))) == 500


# -- storage mode ------------------------------------------------------------------------------


def test_file_mode_streams_jsonl_exactly_as_returned(etelecom_connection: EtelecomSimulator, tmp_path: Path) -> None:
    target = tmp_path / "new" / "folder" / "consents.jsonl"
    result = run(ListConsentsOperator(task_id="export", output_path=f"file://{target}"))
    assert result == {
        "path": f"file://{target}",
        "count": 500,
        "pages": result["pages"],
        "window": {"date_from": None, "date_to": None},
    }
    # Date-bound steps read each page's last second again (dropped once), and the last page's second is
    # read again before the empty page: a page or two more than 500 / 100.
    assert 5 <= result["pages"] <= 7
    assert read_lines(target) == etelecom_connection.consents()
    first = target.read_text(encoding="utf-8").splitlines()[0]
    assert first == json.dumps(etelecom_connection.consents()[0], ensure_ascii=False, separators=(",", ":"))
    assert leftovers(target.parent) == []


def test_gzip_when_the_path_ends_with_gz(etelecom_connection: EtelecomSimulator, tmp_path: Path) -> None:
    target = tmp_path / "consents.jsonl.gz"
    result = run(ListConsentsOperator(task_id="export", output_path=f"file://{target}"))
    assert result["count"] == 500
    assert target.read_bytes()[:2] == b"\x1f\x8b"
    assert read_lines(target) == etelecom_connection.consents()


def test_non_ascii_is_written_as_utf8(etelecom_connection: EtelecomSimulator, tmp_path: Path) -> None:
    sim = etelecom_connection
    sim.add_consent(error_message="Người dùng chưa quan tâm OA")
    target = tmp_path / "c.jsonl"
    run(ListConsentsOperator(task_id="export", output_path=f"file://{target}"))
    assert "Người dùng chưa quan tâm OA" in target.read_text(encoding="utf-8")


def test_rerun_replaces_the_file_with_a_complete_one(etelecom_connection: EtelecomSimulator, tmp_path: Path) -> None:
    sim = etelecom_connection
    target = tmp_path / "c.jsonl.gz"
    op = ListConsentsOperator(task_id="export", output_path=f"file://{target}")
    first = run(op)
    first_bytes = target.read_bytes()
    again = run(ListConsentsOperator(task_id="export", output_path=f"file://{target}"))
    assert again == first
    assert target.read_bytes() == first_bytes
    sim.insert_consents(7)
    third = run(ListConsentsOperator(task_id="export", output_path=f"file://{target}"))
    ids = [c["id"] for c in read_lines(target)]
    assert third["count"] == 507 == len(ids) == len(set(ids))
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_failure_mid_export_leaves_earlier_file_intact(
    etelecom_simulator: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, suffix: str
) -> None:
    sim = etelecom_simulator
    set_connection(monkeypatch, sim, max_retries=0)
    target = tmp_path / f"c{suffix}"
    target.write_bytes(b"earlier successful export\n")
    sim.script_faults(["none", "none", "none", "503"])
    with pytest.raises(EtelecomError):
        run(ListConsentsOperator(task_id="export", output_path=f"file://{target}"))
    assert sim.stats.count(method=LIST, status=200) == 3
    assert target.read_bytes() == b"earlier successful export\n"
    assert leftovers(tmp_path) == []


def test_failure_mid_export_leaves_nothing_at_a_new_path(
    etelecom_simulator: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sim = etelecom_simulator
    set_connection(monkeypatch, sim, max_retries=0)
    sim.script_faults(["none", "none", "drop"])
    with pytest.raises(EtelecomError):
        run(ListConsentsOperator(task_id="export", output_path=f"file://{tmp_path}/c.jsonl"))
    assert list(tmp_path.iterdir()) == []


def test_simulator_outage_mid_export_leaves_nothing(
    etelecom_simulator: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sim = etelecom_simulator
    set_connection(monkeypatch, sim, max_retries=1, max_retry_time=2)
    target = tmp_path / "c.jsonl"
    target.write_text("old\n")
    op = ListConsentsOperator(task_id="export", output_path=f"file://{target}")
    real_page = module._Progress.page

    def stop_after_two_pages(self: Any, consents: int) -> None:
        real_page(self, consents)
        if self.pages == 2:
            sim.stop()

    monkeypatch.setattr(module._Progress, "page", stop_after_two_pages)
    with pytest.raises(EtelecomError):
        run(op)
    assert target.read_text() == "old\n"
    assert leftovers(tmp_path) == []


def test_exact_count_and_unique_ids_despite_faults(
    etelecom_connection: EtelecomSimulator, tmp_path: Path, log_text: Any
) -> None:
    sim = etelecom_connection
    sim.script_faults(["none", "503", "none", "drop", "truncate", ("429", 0.05), "none", "502", "403_exhausted"])
    target = tmp_path / "c.jsonl"
    result = run(ListConsentsOperator(task_id="export", output_path=f"file://{target}"))
    ids = [c["id"] for c in read_lines(target)]
    assert result["count"] == len(ids) == len(set(ids)) == 500
    assert set(ids) == {c["id"] for c in sim.consents()}
    assert sum(sim.stats.faults.values()) == 6
    text = log_text()
    assert re.search(r"Exported 500 consents in [5-7] pages", text)
    assert "6 retries" in text
    assert "2 rate-limited answers" in text


def test_progress_and_summary_lines(
    etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, log_text: Any
) -> None:
    monkeypatch.setattr(module, "PROGRESS_EVERY_PAGES", 2)
    result = run(ListConsentsOperator(task_id="export", page_size=50, output_path=f"file://{tmp_path}/c.jsonl"))
    text = log_text()
    assert re.search(r"Progress: 2 pages, (9\d|100) consents", text)
    assert re.search(r"Progress: 1[024] pages, \d+ consents", text)
    assert "consents/s" in text
    assert re.search(r"Exported 500 consents in 1[0-3] pages", text)  # 500 / 50, and the seconds read again
    assert "0 retries" in text
    assert SECRET_KEY not in text
    assert SECRET_KEY not in json.dumps(result)


def test_phone_is_masked_and_key_never_logged(
    etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch, log_text: Any
) -> None:
    sim = etelecom_connection
    phone = sim.consents()[0]["phone"]
    set_connection(monkeypatch, sim, max_retries=0)
    sim.script_faults(["503"])
    with pytest.raises(EtelecomError) as raised:
        run(ListConsentsOperator(task_id="export", phone=phone))
    consents = run(ListConsentsOperator(task_id="export", phone=phone))
    assert consents and all(c["phone"] == phone for c in consents)
    text = log_text()
    assert phone not in text
    assert phone[:3] in text
    assert SECRET_KEY not in text
    assert SECRET_KEY not in str(raised.value)


# -- S3 through moto's server ------------------------------------------------------------------


def test_s3_mode_through_the_amazon_provider(etelecom_connection: EtelecomSimulator, s3_bucket: Any) -> None:
    s3, bucket = s3_bucket
    for key in ("consents/day.jsonl", "consents/day.jsonl.gz"):
        result = run(
            ListConsentsOperator(task_id="export", output_path=f"s3://{bucket}/{key}", output_conn_id="aws_test")
        )
        assert result["path"] == f"s3://{bucket}/{key}" and result["count"] == 500
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        text = gzip.decompress(body).decode() if key.endswith(".gz") else body.decode()
        assert [json.loads(line) for line in text.splitlines()] == etelecom_connection.consents()
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["consents/day.jsonl", "consents/day.jsonl.gz"]


def test_s3_parquet_through_the_amazon_provider(etelecom_connection: EtelecomSimulator, s3_bucket: Any) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="the test extra installs the parquet extra")
    import io

    s3, bucket = s3_bucket
    op = ListConsentsOperator(task_id="export", output_path=f"s3://{bucket}/day.parquet", output_conn_id="aws_test")
    assert run(op)["count"] == 500
    body = s3.get_object(Bucket=bucket, Key="day.parquet")["Body"].read()
    ids = pq.read_table(io.BytesIO(body)).column("id").to_pylist()
    assert ids == [c["id"] for c in etelecom_connection.consents()]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["day.parquet"]


def test_s3_failure_keeps_the_earlier_object(
    etelecom_simulator: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch, s3_bucket: Any
) -> None:
    s3, bucket = s3_bucket
    sim = etelecom_simulator
    set_connection(monkeypatch, sim, max_retries=0)
    s3.put_object(Bucket=bucket, Key="c.jsonl", Body=b"earlier\n")
    sim.script_faults(["none", "none", "500"])
    with pytest.raises(EtelecomError):
        run(ListConsentsOperator(task_id="export", output_path=f"s3://{bucket}/c.jsonl", output_conn_id="aws_test"))
    assert s3.get_object(Bucket=bucket, Key="c.jsonl")["Body"].read() == b"earlier\n"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["c.jsonl"]


# -- a real DAG run ----------------------------------------------------------------------------


def load_dag_file(dag_id: str, source: str) -> Any:
    """Write a DAG file into the dags folder (Airflow 3's dag.test() re-parses it) and load it."""
    import os
    import runpy

    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dag_id}.py"
    path.write_text(source)
    return runpy.run_path(str(path))["dag"]


def run_dag(dag: Any, logical_date: datetime) -> Any:
    from airflow.providers.common.compat.sdk import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:
        activate_assets_before_dag_test(dag)
        return dag.test(logical_date=logical_date)
    dag.sync_to_db()  # Airflow 2 records dataset events only for datasets known to the database
    return dag.test(execution_date=logical_date)


def asset_extras(uri: str) -> list[dict[str, Any]]:
    from airflow.providers.common.compat.sdk import AIRFLOW_V_3_0_PLUS
    from airflow.utils.session import create_session

    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.asset import AssetEvent, AssetModel

        with create_session() as session:
            rows = session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            return [dict(e.extra) for e in rows.filter(AssetModel.uri == uri).all()]
    from airflow.models.dataset import DatasetEvent, DatasetModel

    with create_session() as session:
        rows = session.query(DatasetEvent).join(DatasetModel, DatasetEvent.dataset_id == DatasetModel.id)
        return [dict(e.extra) for e in rows.filter(DatasetModel.uri == uri).all()]


TEMPLATED_DAG = """
from datetime import datetime, timezone

from airflow.providers.common.compat.sdk import DAG, Asset
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator

with DAG(
    "test_list_consents_templated",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2020, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    params={"call_type": "video"},
) as dag:
    ListConsentsOperator(
        task_id="export",
        date_from="{{ data_interval_start }}",
        date_to="{{ data_interval_end }}",
        call_type="{{ params.call_type }}",
        output_path="file://%(folder)s/{{ ds }}.jsonl",
        outlets=[Asset("%(asset)s")],
    )
"""


def test_templated_filters_and_path_from_a_dag_run(
    airflow_db: str, etelecom_connection: EtelecomSimulator, tmp_path: Path
) -> None:
    sim = etelecom_connection
    day = (sim.now() - timedelta(days=5)).replace(hour=0, minute=0, second=0, microsecond=0)
    asset_uri = f"file://{tmp_path}/asset"
    dag = load_dag_file("test_list_consents_templated", TEMPLATED_DAG % {"folder": tmp_path, "asset": asset_uri})
    run = run_dag(dag, day)
    assert run.state == "success"
    target = tmp_path / f"{day:%Y-%m-%d}.jsonl"  # {{ ds }} is the logical date on both versions
    sent = sim.requests_log[0]["body"]["filter"]
    # Airflow 2 runs the interval starting at the logical date, Airflow 3 the one ending there.
    # The filter sent is one second wider on each side (FILTER_MARGIN); the file holds the exact day.
    first = day - timedelta(days=1) if sent["date_to"] == f"{day + FILTER_MARGIN:%Y-%m-%dT%H:%M:%S}Z" else day
    start, end = first.strftime("%Y-%m-%dT%H:%M:%S"), (first + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    assert sent == {
        "call_type": "video",
        "date_from": f"{first - FILTER_MARGIN:%Y-%m-%dT%H:%M:%S}Z",
        "date_to": f"{first + timedelta(days=1) + FILTER_MARGIN:%Y-%m-%dT%H:%M:%S}Z",
    }
    expected = [c for c in sim.consents() if start <= c["created_at"][:19] < end and c["call_type"] == "video"]
    assert expected, "the simulator should have video consents on that day"
    assert read_lines(target) == expected
    window = {"date_from": f"{start}Z", "date_to": f"{end}Z"}
    assert {"path": f"file://{target}", "count": len(expected), "window": window} in asset_extras(asset_uri)


# -- parallel windows within one task ------------------------------------------------------------


def test_parallel_windows_write_the_same_set_as_the_sequential_export(
    etelecom_connection: EtelecomSimulator, tmp_path: Path, log_text: Any
) -> None:
    sim = etelecom_connection
    sim.date_to_inclusive = True  # the client's half-open guarantee must hold at every inner edge
    start, end = datetime(2020, 1, 1, tzinfo=timezone.utc), datetime(2040, 1, 1, tzinfo=timezone.utc)
    sim.script_faults(["503", "drop", ("429", 0.05), "truncate"])
    sequential, parallel = tmp_path / "seq.jsonl", tmp_path / "par.jsonl.gz"
    run(ListConsentsOperator(task_id="seq", date_from=start, date_to=end, output_path=f"file://{sequential}"))
    result = run(
        ListConsentsOperator(
            task_id="par", date_from=start, date_to=end, output_path=f"file://{parallel}", max_parallel_windows=4
        )
    )
    seq_ids = [c["id"] for c in read_lines(sequential)]
    par_ids = [c["id"] for c in read_lines(parallel)]
    assert len(par_ids) == len(set(par_ids)) == result["count"] == 500
    assert sorted(par_ids) == sorted(seq_ids) == sorted(c["id"] for c in sim.consents())
    logged = log_text()
    assert "4 retries" in logged
    # The closing line: splits, and per worker its pages fetched and seconds idle.
    found = re.search(r"Parallel windows: (\d+) splits over (\d+) windows; per worker pages/idle s: (.*)\.", logged)
    assert found, "the parallel summary line is missing or changed"
    per_worker = re.findall(r"(\d+): (\d+)/([\d.]+)", found[3])
    assert [int(worker) for worker, _, _ in per_worker] == [0, 1, 2, 3]
    assert int(found[2]) == 4 + int(found[1])  # one window per worker, one more per split
    assert sum(int(pages) for _, pages, _ in per_worker) == result["pages"]
    assert leftovers(tmp_path) == []


def test_parallel_windows_fail_atomically(
    etelecom_connection: EtelecomSimulator, tmp_path: Path, monkeypatch: Any
) -> None:
    sim = etelecom_connection
    set_connection(monkeypatch, sim, max_retries=0)
    target = tmp_path / "c.jsonl"
    target.write_text("earlier\n")
    sim.script_faults(["none", "none", "503"])
    op = ListConsentsOperator(
        task_id="par",
        date_from="2020-01-01T00:00:00Z",
        date_to="2040-01-01T00:00:00Z",
        output_path=f"file://{target}",
        max_parallel_windows=3,
    )
    with pytest.raises(EtelecomError, match="503"):
        run(op)
    assert target.read_text() == "earlier\n"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("value", [0, 33, "8", True])
def test_parallel_windows_are_validated_at_parse_time(value: Any) -> None:
    with pytest.raises(EtelecomValidationError, match="max_parallel_windows"):
        ListConsentsOperator(task_id="par", max_parallel_windows=value)


def test_parallel_windows_need_a_window(etelecom_connection: EtelecomSimulator) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    with pytest.raises(AirflowFailException, match="needs both date_from and date_to"):
        run(ListConsentsOperator(task_id="par", max_parallel_windows=2))
    assert etelecom_connection.stats.count() == 0


def test_parallel_summary_never_counts_more_rate_limit_waiting_than_waiting(
    etelecom_connection: EtelecomSimulator, tmp_path: Path, log_text: Any
) -> None:
    sim = etelecom_connection
    sim.script_faults([("429", 0.05), ("429", 0.05), "503", ("429", 0.05)])
    run(
        ListConsentsOperator(
            task_id="par",
            date_from="2020-01-01T00:00:00Z",
            date_to="2040-01-01T00:00:00Z",
            output_path=f"file://{tmp_path / 'c.jsonl'}",
            max_parallel_windows=4,
        )
    )
    found = re.search(
        r"(\d+) rate-limited answers; ([\d.]+) s spent waiting before requests, ([\d.]+) s of it for rate limits "
        r"\(summed over the parallel windows",
        log_text(),
    )
    assert found, "the summary line is missing or changed"
    answers, waited, rate_limited = int(found[1]), float(found[2]), float(found[3])
    assert answers == 3
    assert 0 < rate_limited <= waited


# -- the opt-in proof of completeness (verify) --------------------------------------------------


class DeletesMidExport(ListConsentsOperator):
    """An export during which another system deletes ten consents it has already passed."""

    sim: EtelecomSimulator

    def _check_stop(self, outcome: str) -> None:
        super()._check_stop(outcome)
        if outcome.startswith("after 4 pages"):
            self.sim.delete_consents([c["id"] for c in self.sim.consents()[:10]])  # the newest: page one's


@pytest.mark.parametrize("verify", [False, True])
def test_verify_catches_what_an_offset_cursor_skipped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, verify: bool
) -> None:
    """Finding 3: one pass cannot see rows an offset cursor skips; the second listing does."""
    with EtelecomSimulator(consents=1000, seed=3, api_key=SECRET_KEY, cursor_kind="offset") as sim:
        set_connection(monkeypatch, sim)
        target = tmp_path / "c.jsonl"
        op = DeletesMidExport(task_id="export", output_path=f"file://{target}", verify=verify)
        op.sim = sim
        # As an export that has learnt what the cursor holds (from a tie): it follows the cursor.
        op.hook.client.facts = PlatformFacts(cursor=CursorKind.KEYSET)
        if not verify:
            result = run(op)  # the documented gap: a green task, ten consents short
            assert result["count"] == len(read_lines(target)) == 990  # ten of the 1,000 skipped, ten deleted
            assert len({c["id"] for c in read_lines(target)} & {str(c["id"]) for c in sim.consents()}) == 980
            return
        with pytest.raises(EtelecomError, match=r"not complete: .* 10 of them not exported") as caught:
            run(op)
        assert getattr(caught.value, "behaviour", None) == "incomplete_export"
        assert not target.exists() and leftovers(tmp_path) == []


def test_verify_passes_a_complete_export_and_costs_one_more_listing(
    etelecom_connection: EtelecomSimulator, log_text: Any
) -> None:
    sim = etelecom_connection
    consents = run(ListConsentsOperator(task_id="export", verify=True))
    assert len(consents) == 500
    bodies = [e["body"] for e in sim.requests_log if e["method"] == LIST]
    assert "sort" not in bodies[0]["paging"] and bodies[-1]["paging"]["sort"] == "created_at"  # the other order
    assert "Verified the export: a second listing in the other order found 500 consents, 0 of them not exported" in (
        log_text()
    )


@pytest.mark.parametrize(
    ("kwargs", "fragment"), [({"verify": "yes"}, "True or False"), ({"max_pages": 3}, "max_pages")]
)
def test_verify_is_validated_at_parse_time(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(EtelecomValidationError, match=fragment) as raised:
        ListConsentsOperator(task_id="export", **{"verify": True, **kwargs})
    assert raised.value.parameter == "verify"


class InsertsMidExport(ListConsentsOperator):
    """An export during which forty consents are created (newest first: before the cursor's position)."""

    sim: EtelecomSimulator

    def _check_stop(self, outcome: str) -> None:
        super()._check_stop(outcome)
        if outcome.startswith("after 2 pages"):
            self.sim.insert_consents(40)


def test_repeats_of_an_unstable_cursor_are_dropped_and_reported(monkeypatch: pytest.MonkeyPatch, log_text: Any) -> None:
    """Finding 3: an offset cursor taken for a keyset repeats rows when consents are inserted; each id is
    written once, and the window is listed again without the cursor."""
    with EtelecomSimulator(consents=500, seed=3, api_key=SECRET_KEY, cursor_kind="offset") as sim:
        set_connection(monkeypatch, sim)
        op = InsertsMidExport(task_id="export")
        op.sim = sim
        op.hook.client.facts = PlatformFacts(cursor=CursorKind.KEYSET)  # it follows the cursor
        consents = run(op)
    ids = [c["id"] for c in consents]
    assert len(ids) == len(set(ids)) >= 500
    text = log_text()
    assert "Paging: 40 consents served twice by the cursor" in text and "unstable cursor" in text
    # A keyset never serves a consent of the page before again: the cursor is dropped and the window
    # listed again by date bounds (where it repeated one consent it may have skipped another).
    assert "not a (created_at, id) keyset after all" in text and "Listing the window again by date bounds" in text


def test_a_read_only_output_path_fails_without_retries(
    etelecom_connection: EtelecomSimulator, read_only_folder: Path
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    target = f"file://{read_only_folder}/consents.jsonl"
    with pytest.raises(AirflowFailException, match="Read-only file system") as raised:
        run(ListConsentsOperator(task_id="export", output_path=target))
    assert f"output_path={target!r}" in str(raised.value)
