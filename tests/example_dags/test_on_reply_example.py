"""The event-driven example DAG: imports cleanly on both versions; on Airflow 3 it is scheduled on
an Asset watched by ConsentReplyEventTrigger and routes folded events (``scripts/e2e-celery`` runs
it with a real scheduler, DAG processor and triggerer)."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from types import SimpleNamespace

from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

from tests.example_dags.test_consents_examples import make_bag

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "etelecom_on_reply.py"


def event(consent_id: str, reply: str, updated_at: str = "2026-03-01T10:00:00Z") -> SimpleNamespace:
    payload = {"kind": "consent_reply", "consent_id": consent_id, "reply_status": reply}
    return SimpleNamespace(
        extra={"from_trigger": True, "payload": {**payload, "dedup_key": f"{consent_id}:{updated_at}"}}
    )


def test_example_imports_and_is_event_driven_on_airflow_3() -> None:
    bag = make_bag(EXAMPLE)
    assert bag.import_errors == {}
    if not AIRFLOW_V_3_0_PLUS:
        assert bag.dags == {}  # no event-driven scheduling on Airflow 2: the file defines no DAG
        return
    from airflow_provider_etelecom.triggers.consent_reply_event import ConsentReplyEventTrigger

    (dag,) = bag.dags.values()
    assert dag.dag_id == "etelecom_on_reply"
    module = runpy.run_path(str(EXAMPLE))
    assert module["consent_replies"] in dag.timetable.asset_condition.objects
    (watcher,) = module["consent_replies"].watchers
    assert isinstance(watcher.trigger, ConsentReplyEventTrigger)
    assert "password" not in json.dumps(watcher.trigger.serialize()[1])
    assert set(dag.task_ids) == {"sort_replies", "route", "schedule_calls", "record_opt_outs"}


def test_folded_events_are_sorted_once_each_and_routed() -> None:
    bag = make_bag(EXAMPLE)
    if not AIRFLOW_V_3_0_PLUS:
        assert bag.dags == {}
        return
    (dag,) = bag.dags.values()
    sort_replies = dag.get_task("sort_replies").python_callable
    route = dag.get_task("route").python_callable
    folded = {"asset": [event("1", "P"), event("2", "N"), event("1", "P"), event("3", "NS")]}  # "1" repeated
    by_reply = sort_replies(triggering_asset_events=folded)
    assert by_reply == {"P": ["1"], "N": ["2"], "other": ["3"]}
    assert route(by_reply) == ["schedule_calls", "record_opt_outs"]
    assert route({"P": [], "N": [], "other": ["3"]}) == []
