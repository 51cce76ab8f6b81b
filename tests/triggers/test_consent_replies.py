"""ConsentRepliesTrigger against the simulator: one listing per check, every event, no sleeping."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import time_machine

from airflow_provider_etelecom.client.replies import decide
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.testing import SORTS, EtelecomSimulator
from airflow_provider_etelecom.triggers.consent_replies import WAIT_EVENT_VERSION, ConsentRepliesTrigger, parse_event
from tests.conftest import SECRET_KEY, cursor_lesson_requests
from tests.triggers.conftest import drive, drive_with_ticker, rebuilt

LIST = "Zalo/ListRequestConsent"
OA = "4239023413265392134"


def request_many(n: int) -> list[dict[str, Any]]:
    hook = EtelecomHook()
    return [
        hook.request_consent(oa_id=OA, phone=f"0914{i:06d}", call_type="audio", reason_code="update_order")
        for i in range(n)
    ]


def make_trigger(consents: list[dict[str, Any]], **overrides: Any) -> ConsentRepliesTrigger:
    now = datetime.now(timezone.utc)
    kwargs: dict[str, Any] = {
        "consent_ids": [c["id"] for c in consents],
        "oa_id": OA,
        "created_from": consents[0]["created_at"] if consents else None,
        "etelecom_conn_id": "etelecom_default",
        "poke_interval": 0.01,
        "deadline": now + timedelta(hours=1),
        "not_found_deadline": now + timedelta(minutes=1),
    }
    kwargs.update(overrides)
    return ConsentRepliesTrigger(**kwargs)


def test_serialize_round_trip_is_json_and_has_no_key(etelecom_connection: EtelecomSimulator) -> None:
    trigger = make_trigger(
        [{"id": "5", "created_at": "2026-01-31T00:00:00Z"}, {"id": "6"}],
        deadline="2026-02-01T00:00:00+00:00",
        failure_statuses={"NS", "N"},
        max_pages=3,
    )
    _, kwargs, _ = rebuilt(trigger)
    assert kwargs["consent_ids"] == ["5", "6"] and kwargs["failure_statuses"] == ["N", "NS"]
    assert kwargs["created_from"] == datetime(2026, 1, 31, tzinfo=timezone.utc).timestamp()


def test_answers_in_batches_one_listing_per_check(
    etelecom_connection: EtelecomSimulator, sort_probe_requests: range
) -> None:
    sim = etelecom_connection
    consents = request_many(120)
    sim.reset_stats()

    def on_check(n: int) -> None:  # a third of the customers answer between two checks
        for consent in consents[(n - 1) * 40 : n * 40]:
            sim.reply(consent["id"], "P")

    event, checks = drive(make_trigger(consents), on_check)
    assert event["version"] == WAIT_EVENT_VERSION
    assert event["status"] == "done" and checks == 4
    assert list(event["decision"]["consents"]) == [c["id"] for c in consents]
    assert {c["reply_status"] for c in event["decision"]["consents"].values()} == {"P"}
    # 120 consents, at most 2 pages per check, whatever their number: not 120 requests per check.
    # The listing starts past what has settled, so the last check reads only the last page.
    # (Requests learning the cursor from the campaign's ties are spent once for the trigger's client.)
    pages = sim.stats.count(method=LIST) - cursor_lesson_requests(sim)
    assert pages <= 2 * checks + sort_probe_requests[-1]
    assert parse_event(json.loads(json.dumps(event)))[0] == "done"


def test_min_share_ends_the_wait_early(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consents = request_many(10)
    for consent in consents[:6]:
        sim.reply(consent["id"], "N")
    event, checks = drive(make_trigger(consents, min_share=0.6))
    assert (event["status"], checks) == ("done", 1)


def test_failure_status_is_a_failed_event(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consents = request_many(4)
    event, checks = drive(
        make_trigger(consents, failure_statuses=["N"]), lambda n: sim.reply(consents[2]["id"], "N") if n == 2 else None
    )
    assert (event["status"], checks) == ("failed", 3)
    assert event["decision"]["consents"][consents[2]["id"]]["reply_status"] == "N"
    assert event["decision"]["failed"] == [consents[2]["id"]]


def test_not_found_after_its_deadline(etelecom_connection: EtelecomSimulator) -> None:
    consents = request_many(2)
    now = datetime.now(timezone.utc)
    with time_machine.travel(now, tick=True) as traveller:
        ghost = {"id": "999999999"}
        trigger = make_trigger([*consents, ghost], not_found_deadline=now + timedelta(seconds=60))
        event, checks = drive(trigger, lambda n: traveller.shift(61))  # each check decides at its start
    assert (event["status"], event["decision"]["missing"], checks) == ("not_found", ["999999999"], 2)


def test_timeout_at_its_own_deadline(etelecom_connection: EtelecomSimulator) -> None:
    consents = request_many(2)
    now = datetime.now(timezone.utc)
    with time_machine.travel(now, tick=True) as traveller:
        event, checks = drive(
            make_trigger(consents, deadline=now + timedelta(hours=1)), lambda n: traveller.shift(1800)
        )
    assert event["status"] == "timeout" and "timeout" in event["message"] and checks == 2


def test_transient_faults_are_retried_within_the_budget(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consents = request_many(3)
    for consent in consents:
        sim.reply(consent["id"], "P")
    sim.reset_stats()
    sim.script_faults(["503", ("429", 0.01), "drop"])
    event, checks = drive(make_trigger(consents))
    assert event["status"] == "done" and checks == 1 and sim.stats.count(method=LIST) == 4


def test_auth_failure_ends_after_one_reread(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consents = request_many(2)

    def rotate(n: int) -> None:
        if n == 1:
            sim.api_key = "etl-ROTATED-key-0000000004"

    event, checks = drive(make_trigger(consents), rotate)
    assert event["status"] == "error" and event["error_class"] == "EtelecomAuthError" and checks == 2
    assert SECRET_KEY not in json.dumps(event)


def test_http_runs_off_the_event_loop(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consents = request_many(2)
    for consent in consents:
        sim.reply(consent["id"], "P")
    sim.latency_ms = 300
    trigger = make_trigger(consents)
    event, ticks = drive_with_ticker(trigger)
    assert event["status"] == "done" and ticks >= 10


# -- the decision ------------------------------------------------------------------------------------

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def consent(consent_id: str, reply: str = "S", status: str = "P", **extra: Any) -> dict[str, Any]:
    return {"id": consent_id, "reply_status": reply, "status": status, **extra}


@pytest.mark.parametrize(
    ("consents", "kwargs", "status"),
    [
        ([consent("1", "P"), consent("2", "NS")], {}, "done"),
        ([consent("1", "P"), consent("2")], {}, "waiting"),
        ([consent("1", "P"), consent("2")], {"min_share": 0.5}, "done"),
        ([consent("1", "N"), consent("2")], {"failure_statuses": ["N"]}, "failed"),
        ([consent("1", status="N"), consent("2")], {}, "failed"),
        ([consent("1", expires_at="2026-01-01T00:00:00Z"), consent("2")], {}, "failed"),
        ([consent("1", "Q"), consent("2", "N")], {"failure_statuses": ["N"]}, "unknown"),
        ([consent("1", "P")], {}, "waiting"),
        ([consent("1", "P")], {"not_found_expired": True}, "not_found"),
        ([consent("1", "P")], {"not_found_expired": True, "min_share": 0.5}, "not_found"),
    ],
)
def test_decide(consents: list[dict[str, Any]], kwargs: dict[str, Any], status: str) -> None:
    options: dict[str, Any] = {"min_share": 1.0, "failure_statuses": (), "now": NOW, "not_found_expired": False}
    options.update(kwargs)
    decision = decide(["1", "2"], {c["id"]: c for c in consents}, **options)  # type: ignore[misc]
    assert decision.status == status


def test_the_check_before_the_deadline_lists_the_span(etelecom_connection: EtelecomSimulator) -> None:
    """A platform whose replies move no ``updated_at``: the trigger's last check still sees the answers."""
    sim = etelecom_connection
    sim.configure(accepted_sorts=SORTS, ignored_sorts=(), reply_moves_updated_at=False)
    old = request_many(1)
    sim.advance(60)
    consents = [*old, *request_many(1)]
    deadline = datetime.now(timezone.utc) + timedelta(hours=1)
    trigger = make_trigger(consents, poke_interval=60.0, deadline=deadline)
    wait, client = trigger.wait(), EtelecomHook().client
    now = datetime.now(timezone.utc)
    assert asyncio.run(trigger._check(wait, client, now)).status == "waiting"
    for consent in consents:
        sim.reply(consent["id"], "P")
    assert asyncio.run(trigger._check(wait, client, now)).status == "waiting" and wait.feed.changed
    trigger.kwargs["deadline"] = (datetime.now(timezone.utc) + timedelta(seconds=30)).timestamp()  # within a poke
    last = asyncio.run(trigger._check(wait, client, datetime.now(timezone.utc)))
    assert last.status == "done" and not wait.feed.changed
    assert "updated_at" in str(wait.feed.given_up)
