"""Backfill eTelecom consents: one mapped task per local day, each writing its own file.

A year is tens of thousands of pages (the platform caps pages at 100 consents). Dynamic task
mapping spreads the days over workers; ``split_windows`` makes the half-open daily windows (no
overlap, no gap) and the file name of each, so the whole fan-out is one line. A failed day is
retried on its own; re-running the DAG replaces each file with a complete one.

Set the range with ``ETELECOM_BACKFILL_START`` / ``ETELECOM_BACKFILL_END`` (local dates in
``Asia/Ho_Chi_Minh``, end exclusive) and the destination with ``ETELECOM_EXPORT_BASE`` (default
``file:///tmp/etelecom``; ``s3://bucket/prefix`` with ``ETELECOM_EXPORT_CONN_ID`` for S3). Trigger
it by hand (``schedule=None``). Every window shares the same API key and its rate limit: on a
deployment with several workers, run the windows in an Airflow pool of their own, one pool per API
key, and name it in ``ETELECOM_POOL`` (default ``default_pool``); docs/scale.md ("Past one machine")
says how many slots.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator
from airflow_provider_etelecom.windows import split_windows

LOCAL_TZ = "Asia/Ho_Chi_Minh"
EXPORT_BASE = os.environ.get("ETELECOM_EXPORT_BASE", "file:///tmp/etelecom").rstrip("/")
OUTPUT_CONN_ID = os.environ.get("ETELECOM_EXPORT_CONN_ID") or None
BACKFILL_START = os.environ.get("ETELECOM_BACKFILL_START", "2026-01-01")
BACKFILL_END = os.environ.get("ETELECOM_BACKFILL_END", "2026-02-01")
#: The pool of this API key: its slots cap the listings running at once on all workers together.
POOL = os.environ.get("ETELECOM_POOL") or "default_pool"

with DAG(
    dag_id="etelecom_consents_backfill",
    description="Backfill eTelecom consents, one mapped task and one file per local day",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz=LOCAL_TZ),
    catchup=False,
    tags=["etelecom", "export", "backfill"],
    doc_md=__doc__,
) as dag:
    ListConsentsOperator.partial(
        task_id="export_day",
        output_conn_id=OUTPUT_CONN_ID,
        pool=POOL,
        retries=3,
        retry_delay=timedelta(minutes=5),
        max_active_tis_per_dag=8,
    ).expand_kwargs(
        split_windows(
            BACKFILL_START,
            BACKFILL_END,
            "1d",
            timezone=LOCAL_TZ,
            output_path=EXPORT_BASE + "/backfill/{date}.jsonl.gz",
        )
    )
