"""ConsentReplyTrigger against the simulator: every event, driven to its end without sleeping."""

from __future__ import annotations

import asyncio
import importlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import time_machine

from airflow_provider_etelecom.exceptions import EtelecomError
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.testing import EtelecomSimulator
from airflow_provider_etelecom.triggers import consents as trigger_module
from airflow_provider_etelecom.triggers.consents import (
    EVENT_VERSION,
    ConsentReplyTrigger,
    build_reply_event,
    parse_reply_event,
)
from tests.conftest import SECRET_KEY
from tests.triggers.conftest import drive

LIST = "Zalo/ListRequestConsent"
OA = "4239023413265392134"
PHONE = "0912000111"


def request(sim: EtelecomSimulator, phone: str = PHONE) -> dict[str, Any]:
    return EtelecomHook().request_consent(
        oa_id=OA, phone=phone, call_type="audio", reason_code="product_service_consulting"
    )


def make_trigger(consent_id: str, **overrides: Any) -> ConsentReplyTrigger:
    now = datetime.now(timezone.utc)
    kwargs: dict[str, Any] = {
        "consent_id": consent_id,
        "phone": PHONE,
        "oa_id": OA,
        "etelecom_conn_id": "etelecom_default",
        "poke_interval": 0.01,
        "deadline": now + timedelta(hours=1),
        "not_found_deadline": now + timedelta(minutes=1),
        "lookup_pages": 1,
    }
    kwargs.update(overrides)
    return ConsentReplyTrigger(**kwargs)


def test_serialize_round_trip_is_json_and_has_no_key(etelecom_connection: EtelecomSimulator) -> None:
    trigger = make_trigger("123", deadline="2026-01-31T00:00:00+00:00", not_found_deadline=1769817600.0)
    path, kwargs = trigger.serialize()
    text = json.dumps(kwargs)
    assert SECRET_KEY not in text and "password" not in text
    module, _, name = path.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**json.loads(text))
    assert rebuilt.serialize() == (path, kwargs)
    assert kwargs["deadline"] == kwargs["not_found_deadline"] == 1769817600.0


def test_agreed_after_waiting_one_list_request_per_check(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consent = request(sim)
    sim.reset_stats()

    def on_check(n: int) -> None:
        if n == 3:
            sim.reply(consent["id"], "P")

    event, checks = drive(make_trigger(consent["id"]), on_check)
    assert event["version"] == EVENT_VERSION
    assert event["status"] == "answered"
    assert event["consent"]["id"] == consent["id"] and event["consent"]["reply_status"] == "P"
    assert checks == 4
    assert sim.stats.count(method=LIST) == checks


@pytest.mark.parametrize("reply", ["N"])
def test_refused(etelecom_connection: EtelecomSimulator, reply: str) -> None:
    consent = request(etelecom_connection)
    etelecom_connection.reply(consent["id"], reply)
    event, checks = drive(make_trigger(consent["id"]))
    assert (event["status"], event["consent"]["reply_status"], checks) == ("answered", reply, 1)


def test_no_reply_after_the_window(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consent = request(sim)
    event, _ = drive(make_trigger(consent["id"]), lambda n: sim.advance(86400 + 60) if n == 1 else None)
    assert event["status"] == "answered" and event["consent"]["reply_status"] == "NS"


def test_failed_send(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    sim.fail_send_to(PHONE, error_code=-213, error_message="not following the OA")
    consent = request(sim)
    event, checks = drive(make_trigger(consent["id"]))
    assert event["status"] == "not_sent" and checks == 1
    assert event["consent"]["error_code"] == -213


def test_not_found_after_its_deadline(etelecom_connection: EtelecomSimulator) -> None:
    now = datetime.now(timezone.utc)
    with time_machine.travel(now, tick=True) as traveller:
        trigger = make_trigger("999999999", not_found_deadline=now + timedelta(seconds=60))
        event, checks = drive(trigger, lambda n: traveller.shift(45))
    assert event["status"] == "not_found" and event["consent"] is None
    assert checks == 2


def test_timeout_at_its_own_deadline(etelecom_connection: EtelecomSimulator) -> None:
    consent = request(etelecom_connection)
    now = datetime.now(timezone.utc)
    with time_machine.travel(now, tick=True) as traveller:
        trigger = make_trigger(consent["id"], deadline=now + timedelta(hours=1))
        event, checks = drive(trigger, lambda n: traveller.shift(1800))
    assert event["status"] == "timeout" and "timeout" in event["message"]
    assert checks == 2


def test_transient_faults_are_not_yet(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consent = request(sim)
    sim.reply(consent["id"], "P")
    sim.reset_stats()
    sim.script_faults(["503", "drop", ("429", 0.01), "500"])
    event, checks = drive(make_trigger(consent["id"]))
    assert event["status"] == "answered"
    # The client's own retries are off in the trigger: one request per check, waits on the loop.
    assert checks == 5 and sim.stats.count(method=LIST) == 5


class CountingHook(EtelecomHook):
    reads = 0

    async def aget_client(self) -> Any:
        type(self).reads += 1
        return await super().aget_client()


def test_auth_failure_ends_after_one_reread(
    etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = etelecom_connection
    consent = request(sim)
    CountingHook.reads = 0
    trigger = make_trigger(consent["id"])
    monkeypatch.setattr(trigger_module, "_trigger_hook", lambda conn_id: CountingHook(conn_id, max_retries=0))

    def rotate(n: int) -> None:
        if n == 1:
            sim.api_key = "etl-ROTATED-key-0000000001"

    event, checks = drive(trigger, rotate)
    assert event["status"] == "error" and event["error_class"] == "EtelecomAuthError"
    assert CountingHook.reads == 2 and checks == 3
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
    assert event["status"] == "answered"


def test_bad_request_is_an_error_event(etelecom_connection: EtelecomSimulator) -> None:
    event, checks = drive(make_trigger("1", phone="not a phone"))
    assert event["status"] == "error" and checks == 1


# -- events --------------------------------------------------------------------------------------


def test_event_round_trip() -> None:
    consent = {"id": "5", "reply_status": "P", "status": "P"}
    parsed = parse_reply_event(json.loads(json.dumps(build_reply_event("answered", consent=consent))))
    assert parsed.status == "answered" and parsed.consent == consent and parsed.version == EVENT_VERSION


def test_version_1_is_still_read() -> None:
    parsed = parse_reply_event({"status": "done", "consent": {"id": "5", "reply_status": "N", "status": "P"}})
    assert (parsed.status, parsed.version) == ("answered", 1)
    assert parse_reply_event({"status": "timeout", "message": "late"}).status == "timeout"


@pytest.mark.parametrize(
    "event",
    [
        None,
        "answered",
        {"version": 3, "status": "answered"},
        {"version": 2, "status": "agreed", "consent": None, "checked_at": "2026-01-01T00:00:00+00:00"},
        {"version": 2, "status": "answered", "consent": None, "checked_at": "2026-01-01T00:00:00+00:00"},
        {"version": 2, "status": "timeout", "consent": None, "checked_at": "2026-01-01T00:00:00"},
        {"version": 2, "status": "error", "consent": None, "checked_at": "2026-01-01T00:00:00+00:00"},
        {"status": "done"},
        {"status": "maybe"},
    ],
)
def test_unexpected_events_fail_closed(event: Any) -> None:
    with pytest.raises(EtelecomError, match="fail"):
        parse_reply_event(event)


def test_builder_refuses_inconsistent_events() -> None:
    with pytest.raises(ValueError):
        build_reply_event("answered")
    with pytest.raises(ValueError):
        build_reply_event("later")


def test_http_runs_off_the_event_loop(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consent = request(sim)
    sim.reply(consent["id"], "P")
    sim.latency_ms = 400
    trigger = make_trigger(consent["id"])

    async def scenario() -> tuple[dict[str, Any], int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        ticking = asyncio.create_task(ticker())
        events = [event async for event in trigger.run()]
        done.set()
        await ticking
        return events[0].payload, ticks

    event, ticks = asyncio.run(scenario())
    assert event["status"] == "answered"
    # A blocked loop would have ticked once; a free one ticks through the 400 ms request.
    assert ticks >= 10
