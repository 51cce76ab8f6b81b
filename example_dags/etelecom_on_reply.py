"""Start a run when a customer answers (Airflow 3: an Asset watched by ConsentReplyEventTrigger).

No sensor and no worker wait: the triggerer polls eTelecom (``ConsentReplyEventTrigger``, one
request per 100 consents still pending) and every consent that leaves ``S`` becomes an asset event
on ``etelecom_consent_replies``; this DAG is scheduled on that asset. Airflow may fold several
events into one run, so ``sort_replies`` loops over all the run's ``triggering_asset_events`` and
deduplicates them on ``dedup_key`` (the watcher delivers at least once):

sort_replies → route → schedule_calls (the ``P``s: the customer agreed)
                     → record_opt_outs (the ``N``s: the customer refused)

``NS`` (no answer) needs nothing here. The OA comes from ``ETELECOM_EXAMPLE_OA_ID`` and the poll
interval (seconds) from ``ETELECOM_EXAMPLE_POKE_INTERVAL``. On Airflow 2 this file defines no DAG
(event-driven scheduling needs Airflow 3).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

OA_ID = os.environ.get("ETELECOM_EXAMPLE_OA_ID", "4239023413265392134")
POKE_INTERVAL = float(os.environ.get("ETELECOM_EXAMPLE_POKE_INTERVAL", "30"))

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import DAG, Asset, AssetWatcher, task

    from airflow_provider_etelecom.triggers.consent_reply_event import ConsentReplyEventTrigger

    consent_replies = Asset(
        "etelecom_consent_replies",
        watchers=[
            AssetWatcher(
                name="etelecom_consent_replies_watcher",
                trigger=ConsentReplyEventTrigger(oa_id=OA_ID, poke_interval=POKE_INTERVAL),
            )
        ],
    )

    with DAG(
        dag_id="etelecom_on_reply",
        schedule=[consent_replies],
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        tags=["etelecom", "example"],
    ) as dag:

        @task(task_id="sort_replies")
        def sort_replies(triggering_asset_events: Any = None) -> dict[str, list[str]]:
            """Group the run's answers by ``reply_status``, each consent once (dedup on ``dedup_key``)."""
            seen: set[str] = set()
            by_reply: dict[str, list[str]] = {"P": [], "N": [], "other": []}
            for events in (triggering_asset_events or {}).values():
                for event in events:
                    payload = (event.extra or {}).get("payload") or {}
                    if payload.get("kind") != "consent_reply" or payload["dedup_key"] in seen:
                        continue
                    seen.add(payload["dedup_key"])
                    by_reply.get(payload["reply_status"], by_reply["other"]).append(payload["consent_id"])
            print(f"Replies in this run: {by_reply}")
            return by_reply

        @task.branch(task_id="route")
        def route(by_reply: dict[str, list[str]]) -> list[str]:
            """Run ``schedule_calls`` for agreements and ``record_opt_outs`` for refusals (both if both)."""
            branches = {"P": "schedule_calls", "N": "record_opt_outs"}
            return [task_id for reply, task_id in branches.items() if by_reply[reply]]

        @task(task_id="schedule_calls")
        def schedule_calls(by_reply: dict[str, list[str]]) -> list[str]:
            """Placeholder: hand the agreed consents to whatever books the calls."""
            print(f"Scheduling calls for consents {by_reply['P']}")
            return by_reply["P"]

        @task(task_id="record_opt_outs")
        def record_opt_outs(by_reply: dict[str, list[str]]) -> list[str]:
            """Placeholder: record that these customers refused to be called."""
            print(f"Recording opt-outs for consents {by_reply['N']}")
            return by_reply["N"]

        replies = sort_replies()
        route(replies) >> [schedule_calls(replies), record_opt_outs(replies)]
