"""A campaign for ``scripts/e2e-celery``: ask every customer, wait for each reply deferred, act per customer.

request_consent (mapped over the phones) → wait_for_reply (one deferrable ``ConsentReplySensor``
per consent) → act_on_reply (mapped over the sensors' output: map index i is customer i in every
task), which branches on its own customer's answer: a call for ``P``, an opt-out for ``N``/``NS``.
It returns what it saw and did, so the driver can check that customer i's branch acted on
customer i's answer. The waits of the one OA share one poll on the triggerer (docs/sensor.md,
"Waits that share a poll").

The branch is code in one task, not ``@task.branch`` with an Airflow task per action: on Airflow
3.3.2 this run saw the action not chosen run as well, for every customer, both with the branch and
the actions in a mapped task group (apache/airflow#67265) and with a mapped ``@task.branch`` before
two mapped actions over the same output (each branch logged "Skipping tasks [('schedule_call', i)]",
and that task ran anyway). It is also 50 task runs fewer.

Its tasks run on the queue ``ETELECOM_E2E_CAMPAIGN_QUEUE`` (the driver's campaign worker), so the
two one-slot workers of the other checks keep their meaning.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_etelecom.operators.request_consent import RequestConsentOperator
from airflow_provider_etelecom.sensors.consent_replies import ConsentReplySensor

OA_ID = os.environ.get("ETELECOM_E2E_CAMPAIGN_OA", "4300132762829599811")
CUSTOMERS = int(os.environ.get("ETELECOM_E2E_CAMPAIGN_CUSTOMERS", "50"))
PHONES = [f"0936{index:06d}" for index in range(CUSTOMERS)]
POKE_INTERVAL = float(os.environ.get("ETELECOM_E2E_CAMPAIGN_POKE_INTERVAL", "3"))
QUEUE = os.environ.get("ETELECOM_E2E_CAMPAIGN_QUEUE", "default")


def wait_kwargs(consent: dict[str, Any]) -> dict[str, Any]:
    """The sensor's arguments for one requested consent."""
    return {"consent_id": consent["id"], "phone": consent["phone"]}


def seen(consent: dict[str, Any], action: str) -> dict[str, Any]:
    """What an action saw: the driver compares it with the answer it gave this customer."""
    return {
        "action": action,
        "consent_id": consent["id"],
        "phone": consent["phone"],
        "reply_status": consent["reply_status"],
    }


with DAG(
    dag_id="etelecom_e2e_campaign",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    default_args={"queue": QUEUE},
    tags=["etelecom", "e2e"],
) as dag:
    ask = RequestConsentOperator.partial(
        task_id="request_consent", oa_id=OA_ID, call_type="audio", reason_code="product_service_consulting"
    ).expand(phone=PHONES)
    wait = ConsentReplySensor.partial(
        task_id="wait_for_reply",
        oa_id=OA_ID,
        deferrable=True,
        poke_interval=POKE_INTERVAL,
        timeout=timedelta(minutes=30).total_seconds(),
        not_found_grace_period=timedelta(minutes=5),
    ).expand_kwargs(ask.output.map(wait_kwargs))

    @task(task_id="act_on_reply")
    def act_on_reply(consent: dict[str, Any]) -> dict[str, Any]:
        """This customer's branch: schedule a call when they agreed, else record the opt-out."""
        return seen(consent, "schedule_call" if consent["reply_status"] == "P" else "record_opt_out")

    act_on_reply.expand(consent=wait.output)
