"""Export yesterday's settled eTelecom consents every day, one JSON Lines file per Vietnamese day.

What it does
    Each run covers one day in ``Asia/Ho_Chi_Minh`` (eTelecom's customers are in UTC+7, so "a day"
    is the business day, not the UTC one) and writes every consent *created* that day to
    ``{ETELECOM_EXPORT_BASE}/consents/YYYY-MM-DD.jsonl.gz``, named by the local date. The file
    appears only when complete; a retry or re-run of the same day replaces it.

Why the window lags
    A consent changes after it is created: ``reply_status`` ``S`` becomes ``P``, ``N`` or ``NS``
    within the reply window (about 24 hours), and the API filters only on ``created_at``. So a
    run exports the day that has *settled*: ``REPLY_WINDOW + SETTLE_DELAY`` rounded up to whole
    days before the run's own interval (2 days with the defaults). If you need fresher data, see
    the lookback + merge pattern in ``docs/operator.md``.

Why this timetable
    Airflow 3's default daily schedule gives each run an empty data interval (start == end).
    ``CronDataIntervalTimetable`` gives real intervals ``[local midnight, next local midnight)``;
    the operator refuses an empty window with an error naming this cause.

Where the files go
    ``ETELECOM_EXPORT_BASE`` (default ``file:///tmp/etelecom``). ``file://`` is local to the worker
    that ran the task; in a multi-worker deployment switch to object storage with one line, e.g.
    ``ETELECOM_EXPORT_BASE=s3://my-bucket/etelecom`` and ``ETELECOM_EXPORT_CONN_ID=aws_default``.
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pendulum
from airflow.providers.common.compat.sdk import DAG, Asset

try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 2
    from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator

LOCAL_TZ = "Asia/Ho_Chi_Minh"
EXPORT_BASE = os.environ.get("ETELECOM_EXPORT_BASE", "file:///tmp/etelecom").rstrip("/")
OUTPUT_CONN_ID = os.environ.get("ETELECOM_EXPORT_CONN_ID") or None
#: How long a customer has to answer; after it, a consent no longer changes.
REPLY_WINDOW = timedelta(hours=24)
#: Extra margin past the reply window (late updates, clock skew on the platform).
SETTLE_DELAY = timedelta(hours=6)
LAG_DAYS = math.ceil((REPLY_WINDOW + SETTLE_DELAY) / timedelta(days=1))


def settled(moment: datetime) -> datetime:
    """Return the local-time instant ``LAG_DAYS`` days before ``moment`` (a data interval edge)."""
    return datetime.fromtimestamp(moment.timestamp(), tz=ZoneInfo(LOCAL_TZ)) - timedelta(days=LAG_DAYS)


with DAG(
    dag_id="etelecom_consents_daily",
    description="Daily export of settled eTelecom consents to object storage (JSON Lines, gzip)",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone=LOCAL_TZ),
    start_date=pendulum.datetime(2026, 1, 1, tz=LOCAL_TZ),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=10), "retry_exponential_backoff": True},
    user_defined_macros={"settled": settled},
    tags=["etelecom", "export"],
    doc_md=__doc__,
) as dag:
    ListConsentsOperator(
        task_id="export_consents",
        date_from="{{ settled(data_interval_start).isoformat() }}",
        date_to="{{ settled(data_interval_end).isoformat() }}",
        output_path=EXPORT_BASE + "/consents/{{ settled(data_interval_start).strftime('%Y-%m-%d') }}.jsonl.gz",
        output_conn_id=OUTPUT_CONN_ID,
        execution_timeout=timedelta(hours=2),
        outlets=[Asset(EXPORT_BASE + "/consents")],
    )
