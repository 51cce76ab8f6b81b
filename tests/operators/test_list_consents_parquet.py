"""ListConsentsOperator writing Parquet: every served value read back with pyarrow and DuckDB."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_etelecom.exceptions import EtelecomError, EtelecomValidationError
from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator
from airflow_provider_etelecom.testing import EtelecomSimulator
from tests.operators.test_list_consents import LIST, leftovers, run, set_connection
from tests.outputs.test_parquet import ZERO_TIME, expected_rows, read_with_duckdb, read_with_pyarrow

pq = pytest.importorskip("pyarrow.parquet", reason="the test extra installs the parquet extra")

EXTRA_HINT = (
    r"from a clone of airflow-provider-etelecom: pip install '\.\[parquet\]'; "
    r"after its first release on PyPI: pip install 'airflow-provider-etelecom\[parquet\]'"
)


def add_schema_edge_cases(sim: EtelecomSimulator) -> None:
    sim.add_consent(delivery_status="unknown", delivery_time=ZERO_TIME)  # undelivered: the zero time
    sim.add_consent(reply_status="unknown", call_type="unknown", status="Z")  # out-of-set enums, kept
    sim.add_consent(unknown_fields={"campaign_id": "42", "labels": {"vip": True}})  # a future field
    sim.add_consent(omit_fields=["delivery_time", "error_message", "is_charged"])  # left out: null


def test_parquet_export_holds_every_served_value(
    etelecom_connection: EtelecomSimulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sim = etelecom_connection
    add_schema_edge_cases(sim)
    caplog.set_level(logging.WARNING)
    target = tmp_path / "out" / "consents.parquet"
    result = run(ListConsentsOperator(task_id="export", output_path=f"file://{target}"))
    served = sim.consents()
    assert result["count"] == len(served) == 504
    expected = expected_rows(served)
    assert read_with_pyarrow(target) == expected
    assert read_with_duckdb(target) == expected
    assert sum(row[10] is None for row in expected) >= 2  # the zero time and the omitted delivery_time
    assert [r.getMessage() for r in caplog.records if "_extra" in r.getMessage()] == [
        f"Parquet export file://{target}: fields the Parquet schema does not know: campaign_id (1 consents), "
        "labels (1 consents). They are kept as JSON in the '_extra' column; a newer provider version may give "
        "them columns of their own."
    ]
    assert leftovers(target.parent) == []


def test_parquet_failure_mid_export_leaves_the_earlier_file(
    etelecom_simulator: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sim = etelecom_simulator
    set_connection(monkeypatch, sim, max_retries=0)
    target = tmp_path / "c.parquet"
    target.write_bytes(b"earlier successful export")
    sim.script_faults(["none", "none", "none", "503"])
    with pytest.raises(EtelecomError):
        run(ListConsentsOperator(task_id="export", output_path=f"file://{target}"))
    assert target.read_bytes() == b"earlier successful export"
    assert leftovers(tmp_path) == []


# -- without pyarrow ------------------------------------------------------------------------------


@pytest.fixture
def no_pyarrow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make pyarrow unimportable (a None entry in sys.modules fails ``import`` and ``find_spec``)."""
    for name in ("pyarrow", "pyarrow.parquet", "pyarrow.compute"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.usefixtures("no_pyarrow")
def test_without_pyarrow_a_literal_parquet_path_fails_at_parse_time() -> None:
    with pytest.raises(EtelecomValidationError, match=EXTRA_HINT) as raised:
        ListConsentsOperator(task_id="export", output_path="file:///tmp/c.parquet")
    assert raised.value.parameter == "output_path"
    ListConsentsOperator(task_id="export", output_path="file:///tmp/c.jsonl.gz")  # JSON Lines needs nothing


@pytest.mark.usefixtures("no_pyarrow")
def test_without_pyarrow_a_rendered_parquet_path_fails_before_any_request(
    etelecom_connection: EtelecomSimulator, tmp_path: Path
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    op = ListConsentsOperator(task_id="export", output_path="file://{{ params.folder }}/c.parquet")
    op.output_path = f"file://{tmp_path}/c.parquet"  # what rendering puts there
    with pytest.raises(AirflowFailException, match=EXTRA_HINT):
        run(op)
    assert etelecom_connection.stats.count(method=LIST) == 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # a fresh interpreter: run first (tests/conftest.py)
def test_the_provider_imports_and_exports_without_pyarrow_or_openlineage(tmp_path: Path) -> None:
    """In a fresh interpreter where neither can be imported, the operator still imports and works."""
    script = (
        "import sys\n"
        "for name in ('pyarrow', 'openlineage'):  # the OpenLineage client and pyarrow\n"
        "    sys.modules[name] = None\n"
        "from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator\n"
        "from airflow_provider_etelecom.testing import EtelecomSimulator\n"
        "import json, os\n"
        "with EtelecomSimulator(consents=150, seed=1) as sim:\n"
        "    os.environ['AIRFLOW_CONN_ETELECOM_DEFAULT'] = json.dumps(\n"
        "        {'conn_type': 'etelecom', 'host': sim.base_url, 'password': sim.api_key})\n"
        f"    op = ListConsentsOperator(task_id='t', output_path='file://{tmp_path}/c.jsonl')\n"
        "    print(op.execute({})['count'], 'pyarrow' in sys.modules and sys.modules['pyarrow'] is not None)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["150", "False"]
