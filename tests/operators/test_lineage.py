"""OpenLineage naming of the listing and of storage URLs, and the schema facets (the DAG-run tests cover the events)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_etelecom.client.models import CONSENT_FIELDS
from airflow_provider_etelecom.operators.lineage import (
    build_operator_lineage,
    build_sql_lineage,
    listing_dataset_name,
    listing_namespace,
    storage_dataset_naming,
)
from airflow_provider_etelecom.outputs.parquet import EXTRA_COLUMN, arrow_schema
from airflow_provider_etelecom.transfers import sql_table


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file:///data/etelecom/2026-01-01.parquet", ("file", "/data/etelecom/2026-01-01.parquet")),
        ("file://localhost/data/c.jsonl", ("file", "/data/c.jsonl")),
        ("s3://bucket/consents/day.jsonl.gz", ("s3://bucket", "consents/day.jsonl.gz")),
        ("s3://aws_conn@bucket/day.parquet", ("s3://bucket", "day.parquet")),  # the conn id is not a name
        ("s3a://bucket/k.parquet", ("s3://bucket", "k.parquet")),
        ("gs://bucket/a/b.parquet", ("gs://bucket", "a/b.parquet")),
        ("gcs://bucket/a/b.parquet", ("gs://bucket", "a/b.parquet")),
        ("abfs://container/x.jsonl", ("abfs://container", "x.jsonl")),
    ],
)
def test_storage_naming_follows_the_openlineage_spec(url: str, expected: tuple[str, str]) -> None:
    assert storage_dataset_naming(url) == expected


def test_listing_naming_never_carries_credentials() -> None:
    assert listing_namespace("https://user:secret@API.etelecom.vn/v1/shop/?x=1") == "https://api.etelecom.vn/v1/shop"
    assert listing_namespace(None) == "etelecom"
    assert listing_dataset_name("etelecom_shop_42") == "Zalo/ListRequestConsent?connection=etelecom_shop_42"


def schema_fields(dataset: Any) -> list[tuple[str, str, str | None]]:
    return [(field.name, field.type, field.description) for field in dataset.facets["schema"].fields]


def test_schema_facets_are_the_consent_fields() -> None:
    """The listing's, a file's and a table's schema facets hold exactly the consent's fields, in order."""
    pytest.importorskip("airflow.providers.openlineage", reason="the test extra installs the OpenLineage provider")
    json_types = {"id": "string", "text": "string", "enum": "string", "bool": "bool", "int": "integer"}
    as_json = [(f.name, json_types.get(f.kind, "string (RFC 3339 time)"), f.description) for f in CONSENT_FIELDS]
    jsonl = build_operator_lineage(
        base_url=None, etelecom_conn_id="c", output_path="file:///c.jsonl", parquet=False, outcome=None
    )
    assert schema_fields(jsonl.inputs[0]) == schema_fields(jsonl.outputs[0]) == as_json

    for dialect in ("postgres", "sqlite"):
        types = sql_table.column_types(dialect)
        sql = build_sql_lineage(
            base_url=None, etelecom_conn_id="c", namespace="n", name="t", column_types=types, outcome=None
        )
        assert schema_fields(sql.outputs[0]) == [(f.name, types[f.name], f.description) for f in CONSENT_FIELDS]


def test_a_parquet_files_schema_facet_is_the_files_schema() -> None:
    """Lineage spells the Arrow types itself (it runs without pyarrow): they must be what the writer writes."""
    pytest.importorskip("airflow.providers.openlineage", reason="the test extra installs the OpenLineage provider")
    pytest.importorskip("pyarrow", reason="the test extra installs the parquet extra")
    lineage = build_operator_lineage(
        base_url=None, etelecom_conn_id="c", output_path="file:///c.parquet", parquet=True, outcome=None
    )
    written = [(field.name, str(field.type)) for field in arrow_schema()]
    written[-1] = (EXTRA_COLUMN, "string (JSON)")  # lineage says what the text holds
    assert [(name, kind) for name, kind, _ in schema_fields(lineage.outputs[0])] == written
    assert [description for *_, description in schema_fields(lineage.outputs[0])][:-1] == [
        field.description for field in CONSENT_FIELDS
    ]


@pytest.mark.parametrize("kind", ["export", "load"])
def test_both_operators_name_the_listing_as_their_shared_lineage_methods_do(kind: str) -> None:
    """Before ``execute``, a connection that cannot be read still names the listing; after, the URL it saw."""
    pytest.importorskip("airflow.providers.openlineage", reason="the test extra installs the OpenLineage provider")
    from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator
    from airflow_provider_etelecom.transfers.consents_to_sql import ConsentsToSqlOperator

    conn = {"etelecom_conn_id": "no_such_connection"}
    operator: ListConsentsOperator | ConsentsToSqlOperator = (
        ListConsentsOperator(task_id=kind, **conn)
        if kind == "export"
        else ConsentsToSqlOperator(task_id=kind, sql_conn_id="no_such_database", table="t", **conn)
    )
    for lineage in (
        operator.get_openlineage_facets_on_start(),
        operator.get_openlineage_facets_on_complete(None),
        operator.get_openlineage_facets_on_failure(None),
    ):
        assert [(d.namespace, d.name) for d in lineage.inputs] == [
            ("etelecom", listing_dataset_name("no_such_connection"))
        ]
        assert lineage.outputs == []  # XCom; a table whose connection cannot be read
    operator._lineage_base_url = "https://key@api.etelecom.vn/v1/shop/"  # as execute records it
    assert operator.get_openlineage_facets_on_complete(None).inputs[0].namespace == "https://api.etelecom.vn/v1/shop"
