"""Load eTelecom consents into a SQL table every day, updating the answers that came in late.

What it does
    Each run covers one day in ``Asia/Ho_Chi_Minh`` (the business day of eTelecom's customers) and
    upserts every consent *created* that day into the table ``etelecom_consents`` of the Airflow
    connection ``ETELECOM_SQL_CONN_ID`` (default ``etelecom_warehouse``; a ``postgres`` or
    ``sqlite`` connection). The table is created on the first run.

Why a lookback
    A consent changes after it is created: ``reply_status`` ``S`` becomes ``P``, ``N`` or ``NS``
    within about 24 hours. Each run therefore also re-reads the two days before its own, and a row
    is replaced only when the consent's ``updated_at`` is newer or equal: the table holds every
    consent up to yesterday, with the answers given since. Compare ``etelecom_consents_daily``,
    which waits until a day has settled and writes it once, to a file.

Why this timetable
    ``CronDataIntervalTimetable`` gives each run a real interval ``[local midnight, next local
    midnight)``; Airflow 3's default daily schedule gives an empty one, which the operator refuses.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.providers.common.compat.sdk import DAG

try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 2
    from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_etelecom.transfers.consents_to_sql import ConsentsToSqlOperator

LOCAL_TZ = "Asia/Ho_Chi_Minh"
SQL_CONN_ID = os.environ.get("ETELECOM_SQL_CONN_ID", "etelecom_warehouse")

with DAG(
    dag_id="etelecom_consents_to_sql_daily",
    description="Daily upsert of eTelecom consents into a SQL table, with a lookback for late answers",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone=LOCAL_TZ),
    start_date=pendulum.datetime(2026, 1, 1, tz=LOCAL_TZ),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=10), "retry_exponential_backoff": True},
    tags=["etelecom", "sql"],
    doc_md=__doc__,
) as dag:
    ConsentsToSqlOperator(
        task_id="load_consents",
        sql_conn_id=SQL_CONN_ID,
        table="etelecom_consents",
        create_table=True,
        date_from="{{ data_interval_start.isoformat() }}",
        date_to="{{ data_interval_end.isoformat() }}",
        lookback=timedelta(days=2),
        execution_timeout=timedelta(hours=1),
    )
