"""The Parquet writer: typed columns read back with pyarrow and DuckDB, row groups, atomicity."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_etelecom.client.models import CONSENT_FIELD_NAMES, CONSENT_FIELDS
from airflow_provider_etelecom.outputs import parquet as module
from airflow_provider_etelecom.outputs.parquet import (
    EXTRA_COLUMN,
    ParquetUnavailableError,
    atomic_parquet_writer,
    is_parquet_path,
    require_pyarrow,
)

pq = pytest.importorskip("pyarrow.parquet", reason="the test extra installs the parquet extra")
duckdb = pytest.importorskip("duckdb", reason="the test extra installs duckdb")

COLUMNS = [*CONSENT_FIELD_NAMES, EXTRA_COLUMN]
ZERO_TIME = "0001-01-01T00:00:00Z"
#: Each kind's Arrow type, as docs/operator.md documents them.
DOCUMENTED_TYPES = {
    "id": "string",
    "text": "string",
    "enum": "string",
    "bool": "bool",
    "int": "int64",
    "time": "timestamp[us, tz=UTC]",
}

PARQUET_HINT = (
    r"from a clone of airflow-provider-etelecom: pip install '\.\[parquet\]'; "
    r"after its first release on PyPI: pip install 'airflow-provider-etelecom\[parquet\]'"
)


def _time(text: str) -> datetime | None:
    """The oracle for a time column, written independently of the writer (stdlib only)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)
    return None if value.year == 1 else value


def expected_rows(served: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What a reader must find for each consent the simulator served, column by column."""
    kinds = {field.name: field.kind for field in CONSENT_FIELDS}
    rows = []
    for consent in served:
        row: list[Any] = []
        for name, kind in kinds.items():
            value = consent.get(name)
            row.append(_time(value) if kind == "time" and value is not None else value)
        unknown = {k: v for k, v in consent.items() if k not in kinds}
        row.append(json.dumps(unknown, ensure_ascii=False, sort_keys=True) if unknown else None)
        rows.append(tuple(row))
    return rows


def read_with_pyarrow(path: Path) -> list[tuple[Any, ...]]:
    table = pq.read_table(path)
    assert table.column_names == COLUMNS
    return [tuple(r[c] for c in COLUMNS) for r in table.to_pylist()]


def read_with_duckdb(path: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect() as db:
        db.execute("SET TimeZone = 'UTC'")
        relation = db.execute(f"SELECT {', '.join(COLUMNS)} FROM read_parquet(?)", [str(path)])
        return [tuple(row) for row in relation.fetchall()]


def write(path: Path, records: list[dict[str, Any]], **kwargs: Any) -> module.ParquetConsentWriter:
    with atomic_parquet_writer(f"file://{path}", **kwargs) as writer:
        for start in range(0, len(records), 100):
            writer.write_many(records[start : start + 100])
    return writer


def consent(**fields: Any) -> dict[str, Any]:
    base = {
        "id": "1200000000000000001",
        "shop_id": "1100444529763028279",
        "user_id": "1500000000000008007",
        "oa_id": "4300924672410201907",
        "phone": "84912345678",
        "call_type": "audio",
        "reason_code": "update_order",
        "reply_status": "P",
        "status": "P",
        "delivery_status": "seen",
        "delivery_time": "2026-01-02T03:04:05.5Z",
        "is_charged": True,
        "error_code": 0,
        "error_message": "",
        "created_at": "2026-01-02T03:04:00Z",
        "updated_at": "2026-01-02T03:10:00.123456Z",
        "expires_at": "2026-02-01T03:10:00Z",
    }
    return {**base, **fields}


def test_one_column_per_consent_field_typed_as_documented(tmp_path: Path) -> None:
    target = tmp_path / "c.parquet"
    write(target, [consent()])
    schema = pq.read_schema(target)
    assert [(f.name, str(f.type)) for f in schema] == [
        *((field.name, DOCUMENTED_TYPES[field.kind]) for field in CONSENT_FIELDS),
        (EXTRA_COLUMN, "string"),
    ]
    assert [f.metadata for f in schema][:-1] == [{b"description": f.description.encode()} for f in CONSENT_FIELDS]
    with duckdb.connect() as db:
        described = {
            row[0]: row[1] for row in db.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(target)]).fetchall()
        }
    assert (described["id"], described["created_at"], described["is_charged"], described["error_code"]) == (
        "VARCHAR",
        "TIMESTAMP WITH TIME ZONE",
        "BOOLEAN",
        "BIGINT",
    )


def test_every_value_reads_back_with_pyarrow_and_duckdb(tmp_path: Path) -> None:
    records = [
        consent(),
        consent(id="9223372036854775807", delivery_status="unknown", delivery_time=ZERO_TIME),  # int64 max
        consent(reply_status="Z", status="Z", call_type="unknown", reason_code="a_future_reason"),
        consent(error_message="Người dùng chưa quan tâm OA", error_code=-213, is_charged=False),
        {"id": "3", "created_at": "2026-01-02T03:04:00Z"},  # fields left out are null
        consent(campaign_id="42", tags=["a", "b"]),  # fields the schema does not know
    ]
    target = tmp_path / "c.parquet"
    write(target, records)
    expected = expected_rows(records)
    assert read_with_pyarrow(target) == expected
    assert read_with_duckdb(target) == expected
    assert expected[1][10] is None  # the zero time is null
    assert expected[4][1:4] == (None, None, None)


def test_finer_than_microseconds_is_cut_and_bad_values_go_to_extra(tmp_path: Path, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger=module.__name__)
    records = [
        consent(created_at="2026-01-02T03:04:05.123456789Z"),
        consent(id=1200000000000000002, updated_at="yesterday", is_charged="yes", error_code="7"),
    ]
    target = tmp_path / "c.parquet"
    write(target, records)
    rows = read_with_duckdb(target)
    assert rows == read_with_pyarrow(target)
    position = {name: i for i, name in enumerate(COLUMNS)}
    assert rows[0][position["created_at"]] == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    second = rows[1]
    assert second[position["id"]] == "1200000000000000002"  # an int id keeps every digit, as text
    assert (second[position["updated_at"]], second[position["is_charged"]], second[position["error_code"]]) == (
        None,
        None,
        None,
    )
    assert json.loads(second[position[EXTRA_COLUMN]]) == {
        "error_code": "7",
        "is_charged": "yes",
        "updated_at": "yesterday",
    }
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "error_code (1 consents), is_charged (1 consents), updated_at (1 consents)" in warnings[0].getMessage()


def test_one_warning_per_export_for_unknown_fields(
    tmp_path: Path, caplog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "BATCH_ROWS", 7)  # many batches, still one warning
    caplog.set_level(logging.WARNING, logger=module.__name__)
    records = [consent(id=str(i), campaign_id=str(i)) for i in range(1, 60)]
    target = tmp_path / "c.parquet"
    write(target, records, row_group_size=20)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "campaign_id (59 consents)" in warnings[0] and "'_extra'" in warnings[0]
    assert read_with_duckdb(target) == expected_rows(records)
    write(tmp_path / "clean.parquet", [consent()])
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1  # a clean export is silent


def test_row_groups_and_compression(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "BATCH_ROWS", 300)
    records = [consent(id=str(i)) for i in range(1, 3501)]
    target = tmp_path / "c.parquet"
    writer = write(target, records, row_group_size=1000)
    metadata = pq.ParquetFile(target).metadata
    assert writer.count == metadata.num_rows == 3500
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [1000, 1000, 1000, 500]
    assert {metadata.row_group(0).column(i).compression for i in range(metadata.num_columns)} == {"ZSTD"}
    snappy = tmp_path / "s.parquet"
    write(snappy, records[:10], compression="snappy")
    assert pq.ParquetFile(snappy).metadata.row_group(0).column(0).compression == "SNAPPY"


def test_empty_export_is_a_valid_file_with_the_schema(tmp_path: Path) -> None:
    target = tmp_path / "empty.parquet"
    assert write(target, []).count == 0
    assert pq.read_table(target).num_rows == 0
    assert read_with_duckdb(target) == []


def test_failure_keeps_the_earlier_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "c.parquet"
    target.write_bytes(b"earlier")
    with pytest.raises(RuntimeError, match="boom"), atomic_parquet_writer(f"file://{target}") as writer:
        writer.write_many([consent()] * 6000)  # a batch converted before the failure
        raise RuntimeError("boom")
    assert target.read_bytes() == b"earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.parquet"]


def test_suffix_decides_the_format() -> None:
    assert is_parquet_path("s3://b/k/day.parquet") and is_parquet_path("file:///x/DAY.PARQUET ")
    assert not is_parquet_path("file:///x/day.jsonl.gz") and not is_parquet_path("file:///x/parquet.jsonl")


def test_without_pyarrow_the_error_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    assert module.pyarrow_installed() is False
    with pytest.raises(ParquetUnavailableError, match=PARQUET_HINT):
        require_pyarrow()
    with (
        pytest.raises(ParquetUnavailableError, match="output_path"),
        atomic_parquet_writer(f"file://{tmp_path}/c.parquet"),
    ):
        pass
    assert list(tmp_path.iterdir()) == []
