"""OpenLineage naming of the listing and of storage URLs (the DAG-run test covers the events)."""

from __future__ import annotations

import pytest

from airflow_provider_etelecom.operators.lineage import listing_dataset_name, listing_namespace, storage_dataset_naming


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
