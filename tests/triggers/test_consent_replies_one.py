"""ConsentRepliesTrigger waiting for one consent (as ConsentReplySensor defers): every event, no sleeping."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import time_machine

from airflow_provider_etelecom.client.replies import Decision, serializable
from airflow_provider_etelecom.exceptions import EtelecomAuthError, EtelecomError
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.testing import EtelecomSimulator
from airflow_provider_etelecom.triggers.consent_replies import (
    WAIT_EVENT_VERSION,
    ConsentRepliesTrigger,
    build_event,
    parse_event,
)
from tests.conftest import SECRET_KEY
from tests.triggers.conftest import drive, drive_with_ticker, rebuilt
from tests.triggers.shared import deferred, run_together

LIST = "Zalo/ListRequestConsent"
OA = "4239023413265392134"
PHONE = "0912000111"


def request(sim: EtelecomSimulator, phone: str = PHONE) -> dict[str, Any]:
    return EtelecomHook().request_consent(
        oa_id=OA, phone=phone, call_type="audio", reason_code="product_service_consulting"
    )


def make_trigger(consent_id: str, **overrides: Any) -> ConsentRepliesTrigger:
    now = datetime.now(timezone.utc)
    kwargs: dict[str, Any] = {
        "consent_ids": [consent_id],
        "phone": PHONE,
        "oa_id": OA,
        "etelecom_conn_id": "etelecom_default",
        "poke_interval": 0.01,
        "deadline": now + timedelta(hours=1),
        "not_found_deadline": now + timedelta(minutes=1),
        "max_pages": 1,
    }
    kwargs.update(overrides)
    return ConsentRepliesTrigger(**kwargs)


def test_serialize_round_trip_is_json_and_has_no_key(etelecom_connection: EtelecomSimulator) -> None:
    trigger = make_trigger("123", deadline="2026-01-31T00:00:00+00:00", not_found_deadline=1769817600.0)
    _, kwargs, _ = rebuilt(trigger)
    assert kwargs["deadline"] == kwargs["not_found_deadline"] == 1769817600.0


def test_agreed_after_waiting_one_list_request_per_check(
    etelecom_connection: EtelecomSimulator, sort_probe_requests: range
) -> None:
    sim = etelecom_connection
    consent = request(sim)
    sim.reset_stats()

    def on_check(n: int) -> None:
        if n == 3:
            sim.reply(consent["id"], "P")

    event, checks = drive(make_trigger(consent["id"]), on_check)
    assert event["version"] == WAIT_EVENT_VERSION
    assert event["status"] == "done"
    assert event["decision"]["consents"][consent["id"]]["reply_status"] == "P"
    assert checks == 4
    assert sim.stats.count(method=LIST) - checks in sort_probe_requests


@pytest.mark.parametrize("reply", ["N"])
def test_refused(etelecom_connection: EtelecomSimulator, reply: str) -> None:
    consent = request(etelecom_connection)
    etelecom_connection.reply(consent["id"], reply)
    event, checks = drive(make_trigger(consent["id"]))
    assert (event["status"], event["decision"]["consents"][consent["id"]]["reply_status"], checks) == ("done", reply, 1)


def test_no_reply_after_the_window(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consent = request(sim)
    event, _ = drive(make_trigger(consent["id"]), lambda n: sim.advance(86400 + 60) if n == 1 else None)
    assert event["status"] == "done" and event["decision"]["consents"][consent["id"]]["reply_status"] == "NS"


def test_failed_send(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    sim.fail_send_to(PHONE, error_code=-213, error_message="not following the OA")
    consent = request(sim)
    event, checks = drive(make_trigger(consent["id"]))
    assert event["status"] == "failed" and checks == 1 and event["decision"]["failed"] == [consent["id"]]
    assert event["decision"]["consents"][consent["id"]]["error_code"] == -213


def test_not_found_after_its_deadline(etelecom_connection: EtelecomSimulator) -> None:
    now = datetime.now(timezone.utc)
    with time_machine.travel(now, tick=True) as traveller:
        trigger = make_trigger("999999999", not_found_deadline=now + timedelta(seconds=60))
        event, checks = drive(trigger, lambda n: traveller.shift(61))  # each check decides at its start
    assert event["status"] == "not_found" and event["decision"]["missing"] == ["999999999"]
    assert checks == 2


def test_timeout_at_its_own_deadline(etelecom_connection: EtelecomSimulator) -> None:
    consent = request(etelecom_connection)
    now = datetime.now(timezone.utc)
    with time_machine.travel(now, tick=True) as traveller:
        trigger = make_trigger(consent["id"], deadline=now + timedelta(hours=1))
        event, checks = drive(trigger, lambda n: traveller.shift(1800))
    assert event["status"] == "timeout" and "timeout" in event["message"]
    assert checks == 2


def test_transient_faults_are_retried_within_the_budget(
    etelecom_connection: EtelecomSimulator, retry_pauses: list[float]
) -> None:
    sim = etelecom_connection
    consent = request(sim)
    sim.reply(consent["id"], "P")
    sim.reset_stats()
    sim.script_faults(["503", "drop", ("429", 0.01), "500"])
    event, checks = drive(make_trigger(consent["id"]))
    assert event["status"] == "done"
    # The connection's retry budget, as in a poke: one check, the four faults retried inside it.
    assert checks == 1 and sim.stats.count(method=LIST) == 5
    assert len(retry_pauses) == 4 and retry_pauses[2] >= 0.01  # the 429's Retry-After was honoured


def test_transient_faults_beyond_the_budget_wait_for_the_next_check(
    etelecom_connection: EtelecomSimulator, retry_pauses: list[float]
) -> None:
    sim = etelecom_connection
    consent = request(sim)
    sim.reply(consent["id"], "P")
    sim.reset_stats()
    sim.script_faults(["503"] * 7)  # the first attempt and 5 retries fail, then one more
    event, checks = drive(make_trigger(consent["id"]))
    assert event["status"] == "done" and checks == 2 and sim.stats.count(method=LIST) == 8


def test_auth_failure_ends_after_one_reread(
    etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = etelecom_connection
    consent = request(sim)
    rereads: list[str] = []
    reread = EtelecomHook._reread_config
    monkeypatch.setattr(EtelecomHook, "_reread_config", lambda hook: rereads.append("read") or reread(hook))
    sim.reset_stats()

    def rotate(n: int) -> None:
        if n == 1:
            sim.api_key = "etl-ROTATED-key-0000000001"

    event, checks = drive(make_trigger(consent["id"]), rotate)
    assert event["status"] == "error" and event["error_class"] == "EtelecomAuthError"
    # The refused key: the connection is read once more; it still holds that key, so no retry.
    assert rereads == ["read"] and checks == 2 and sim.stats.count(method=LIST) == 2
    assert SECRET_KEY not in json.dumps(event)


def test_rotated_key_is_picked_up(etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    sim = etelecom_connection
    consent = request(sim)
    new_key = "etl-ROTATED-key-0000000002"

    def rotate(n: int) -> None:
        if n == 1:
            sim.api_key = new_key
            sim.reply(consent["id"], "P")
            monkeypatch.setenv(
                "AIRFLOW_CONN_ETELECOM_DEFAULT",
                json.dumps({"conn_type": "etelecom", "host": sim.base_url, "password": new_key}),
            )

    event, _ = drive(make_trigger(consent["id"]), rotate)
    assert event["status"] == "done"


def test_bad_request_is_an_error_event(etelecom_connection: EtelecomSimulator) -> None:
    event, checks = drive(make_trigger("1", phone="not a phone"))
    assert event["status"] == "error" and checks == 1


# -- events --------------------------------------------------------------------------------------


NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def decided(status: str = "done", consents: dict[str, Any] | None = None) -> Decision:
    consents = {"5": {"id": "5", "reply_status": "P", "status": "P"}} if consents is None else consents
    return Decision(status, consents, len(consents), 1, (), (), (), NOW)  # type: ignore[arg-type]


def changed(**fields: Any) -> dict[str, Any]:
    """A well-formed ``done`` event whose decision has ``fields`` changed."""
    return {**build_event("done", decision=decided()), "decision": {**serializable(decided()), **fields}}


def test_event_round_trip() -> None:
    decision = decided()
    status, parsed, message, _ = parse_event(json.loads(json.dumps(build_event("done", decision=decision))))
    assert (status, parsed, message) == ("done", decision, "")
    error = parse_event(build_event("error", error=EtelecomAuthError("refused")))
    assert (error[0], error[1], error[2], error[3]) == ("error", None, "refused", EtelecomAuthError)


@pytest.mark.parametrize(
    "event",
    [
        None,
        "answered",
        {"version": 3, "status": "done"},
        # The unreleased single-consent formats are not read: one event format.
        {"status": "done", "consent": {"id": "5", "reply_status": "N", "status": "P"}},
        {"version": 2, "status": "answered", "consent": None, "checked_at": "2026-01-01T00:00:00+00:00"},
        {**build_event("done", decision=decided()), "status": "agreed"},
        {**build_event("done", decision=decided()), "status": "failed"},
        {**build_event("done", decision=decided()), "decision": None},
        {**build_event("done", decision=decided()), "message": 5},
        {**build_event("timeout", message="late"), "decision": build_event("done", decision=decided())["decision"]},
        changed(checked_at="2026-01-01T00:00:00"),
        changed(consents={"5": {"id": "6"}}),
        changed(consents=[{"id": "5"}]),
        changed(missing="1"),
        changed(final=True),
        {**build_event("done", decision=decided()), "decision": {"status": "done"}},
    ],
)
def test_unexpected_events_fail_closed(event: Any) -> None:
    with pytest.raises(EtelecomError, match="fail"):
        parse_event(event)


def test_builder_refuses_inconsistent_events() -> None:
    with pytest.raises(ValueError):
        build_event("done")
    with pytest.raises(ValueError):
        build_event("later")
    with pytest.raises(ValueError):
        build_event("timeout", decision=decided())


def test_http_runs_off_the_event_loop(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consent = request(sim)
    sim.reply(consent["id"], "P")
    sim.latency_ms = 400
    trigger = make_trigger(consent["id"])
    event, ticks = drive_with_ticker(trigger)
    assert event["status"] == "done"
    # A blocked loop would have ticked once; a free one ticks through the 400 ms request.
    assert ticks >= 10


def test_a_thousand_waits_sharing_a_poll_leave_the_event_loop_free(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    now = sim.now()
    consents = [
        sim.add_consent(
            oa_id=OA, phone=f"849{i:08d}", reply_status="S", status="P", created_at=now - timedelta(seconds=i)
        )
        for i in range(1000)
    ]
    triggers = [deferred(consent, check="listed") for consent in consents]  # deferred while waiting
    for consent in consents:
        sim.reply(consent["id"], "P")
    sim.latency_ms = 100
    sim.reset_stats()
    ticks: list[int] = []
    events = run_together(triggers, ticker=ticks)
    assert [event["status"] for event in events] == ["done"] * 1000
    # One shared read of ten pages, 100 ms each, in a worker thread: a free loop ticks all through it.
    assert sim.stats.count(method=LIST) <= 11 and sim.stats.connections <= 4
    assert ticks[0] >= 50
