"""Ask a customer for permission to call, wait for the answer without holding a worker, then branch.

request_consent → wait_for_reply (deferrable ConsentReplySensor) → branch_on_reply:
agreed (P) → schedule_call; refused (N) or no reply (NS) → record_refusal.

Run it against the local simulator (no eTelecom account needed)::

    python -m airflow_provider_etelecom.testing --port 8765 --api-key demo-key-0123456789 --auto-reply-after 5
    export AIRFLOW_CONN_ETELECOM_DEFAULT='{"conn_type": "etelecom", "host": "http://127.0.0.1:8765/v1/shop",
        "password": "demo-key-0123456789"}'
    airflow dags test etelecom_request_and_wait

The OA id, phone, call type and reason are DAG params (the defaults are demo values the
simulator accepts). The sensor defers by default; set ``ETELECOM_EXAMPLE_SENSOR_MODE`` to
``poke`` or ``reschedule`` to try the other modes, and ``ETELECOM_EXAMPLE_POKE_INTERVAL`` (seconds)
to check more or less often.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_etelecom.operators.request_consent import RequestConsentOperator
from airflow_provider_etelecom.sensors.consent_replies import ConsentReplySensor

SENSOR_MODE = os.environ.get("ETELECOM_EXAMPLE_SENSOR_MODE", "deferrable")
POKE_INTERVAL = float(os.environ.get("ETELECOM_EXAMPLE_POKE_INTERVAL", "30"))

with DAG(
    dag_id="etelecom_request_and_wait",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["etelecom", "example"],
    params={
        "oa_id": Param("4239023413265392134", type="string", description="Zalo Official Account id"),
        "phone": Param("0912345678", type="string", description="The customer's phone"),
        "call_type": Param("audio", enum=["audio", "video", "audio_and_video"]),
        "reason_code": Param(
            "order_appointment_confirmation",
            enum=[
                "product_service_consulting",
                "order_appointment_confirmation",
                "delivery_notification",
                "flight_announcement",
                "update_order",
            ],
        ),
    },
) as dag:
    request_consent = RequestConsentOperator(
        task_id="request_consent",
        oa_id="{{ params.oa_id }}",
        phone="{{ params.phone }}",
        call_type="{{ params.call_type }}",
        reason_code="{{ params.reason_code }}",
    )

    wait_for_reply = ConsentReplySensor(
        task_id="wait_for_reply",
        consent_id="{{ ti.xcom_pull(task_ids='request_consent')['id'] }}",
        phone="{{ params.phone }}",
        oa_id="{{ params.oa_id }}",
        deferrable=SENSOR_MODE == "deferrable",
        mode="reschedule" if SENSOR_MODE == "reschedule" else "poke",
        poke_interval=POKE_INTERVAL,
        # The customer has about 24 hours to answer; a no-reply (NS) arrives after that.
        timeout=timedelta(hours=25).total_seconds(),
        not_found_grace_period=timedelta(minutes=2),
    )

    @task.branch(task_id="branch_on_reply")
    def branch_on_reply(consent: dict[str, Any]) -> str:
        """Go to ``schedule_call`` when the customer agreed, else to ``record_refusal``."""
        return "schedule_call" if consent.get("reply_status") == "P" else "record_refusal"

    @task(task_id="schedule_call")
    def schedule_call(consent: dict[str, Any]) -> str:
        """Placeholder: hand the agreed consent to whatever books the call (valid until ``expires_at``)."""
        print(f"Customer agreed to consent {consent['id']}; calls allowed until {consent.get('expires_at')}.")
        return str(consent["id"])

    @task(task_id="record_refusal")
    def record_refusal(consent: dict[str, Any]) -> str:
        """Placeholder: record that the customer refused (``N``) or did not answer (``NS``)."""
        print(f"Consent {consent['id']} ended with reply_status={consent.get('reply_status')}: no call.")
        return str(consent["id"])

    request_consent >> wait_for_reply
    branch_on_reply(wait_for_reply.output) >> [
        schedule_call(wait_for_reply.output),
        record_refusal(wait_for_reply.output),
    ]
