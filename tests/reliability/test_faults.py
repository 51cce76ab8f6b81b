"""Faults: nothing lost, nothing doubled (scaled-down runs of the scenarios in ``scenarios.py``).

The full-size runs (100,000 consents at 20 ms latency) are in ``python -m benchmarks.reliability``.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import time_machine
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from airflow_provider_etelecom.exceptions import EtelecomAuthError, EtelecomTransientError
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.sensors.consent_replies import ConsentReplySensor
from airflow_provider_etelecom.testing import EtelecomSimulator
from airflow_provider_etelecom.triggers.consent_replies import ConsentRepliesTrigger
from tests.conftest import SECRET_KEY
from tests.reliability.scenarios import export_under_faults, export_while_inserting, export_with_outage
from tests.triggers.conftest import drive

LIST = "Zalo/ListRequestConsent"
OA = "4239023413265392134"
PHONE = "0912000777"


def test_export_survives_every_fault_kind_at_once() -> None:
    result = export_under_faults(5_000, latency_ms=1, seed=11)
    print(
        f"\nexport of {result.consents} consents under faults: {result.requests} requests, "
        f"{result.retries} retries, {result.seconds:.1f} s, faults {result.faults}"
    )
    assert (result.lost, result.duplicated, result.extra) == (0, 0, 0)
    assert result.lines == result.consents == 5_000
    # Every kind really happened, so no seed can quietly inject nothing.
    minimum = result.minimum_faults()
    assert {kind: result.faults[kind] >= minimum[kind] for kind in minimum} == {kind: True for kind in minimum}
    assert result.retries >= sum(result.faults.values())


def test_server_gone_mid_export_fails_within_budget_and_a_retry_completes() -> None:
    result = export_with_outage(3_000, stop_after_pages=10, max_retries=3, max_retry_time=2.0)
    error = result.error
    assert isinstance(error, EtelecomTransientError), repr(error)
    message = str(error)
    assert "Zalo/ListRequestConsent" in message and "could not connect" in message
    assert "reachable" in message and SECRET_KEY not in message
    # Connection refused is immediate, so the whole budget is waits; 1 s covers scheduling on a busy box.
    assert result.seconds_to_fail <= result.budget_s + 1.0
    assert result.pages_before_outage >= 10
    assert result.earlier_file_kept
    assert result.leftovers == []
    assert (result.lost_after_retry, result.duplicated_after_retry) == (0, 0)


def test_inserts_during_the_export_cause_no_gap_or_duplicate() -> None:
    result = export_while_inserting(3_000, per_page=5)
    assert result.inserted >= 2 * 5 * 10  # inserts happened on many pages, before and behind the cursor
    assert (result.lost, result.duplicated) == (0, 0)


# -- the deferrable sensor's trigger ---------------------------------------------------------------------


def _defer(consent_id: str) -> tuple[ConsentReplySensor, ConsentRepliesTrigger]:
    sensor = ConsentReplySensor(
        task_id="wait", consent_id=consent_id, phone=PHONE, oa_id=OA, deferrable=True, poke_interval=0.01, timeout=3600
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})  # type: ignore[arg-type]
    trigger = deferred.value.trigger
    assert isinstance(trigger, ConsentRepliesTrigger)
    return sensor, trigger


FLAPS = ["503", "500", "502", "drop", ("429", 0.02), "403_exhausted", "503", "drop", "502", "500"] * 3
#: Requests one check makes against a failing platform: the first and the connection's 5 retries.
ATTEMPTS = 6


def test_deferrable_sensor_rides_out_a_minute_of_flapping_then_gets_the_answer(
    etelecom_connection: EtelecomSimulator, retry_pauses: list[float]
) -> None:
    sim = etelecom_connection
    consent = EtelecomHook().request_consent(oa_id=OA, phone=PHONE, call_type="audio", reason_code="update_order")
    sensor, trigger = _defer(consent["id"])
    sim.reset_stats()
    sim.script_faults(FLAPS)
    started = datetime.now(timezone.utc)
    with time_machine.travel(started, tick=True) as traveller:

        def on_check(n: int) -> None:
            traveller.shift(12)  # each failed check is twelve simulated seconds: a minute of errors in all
            if n == len(FLAPS) // ATTEMPTS:
                sim.reply(consent["id"], "P")

        event, checks = drive(trigger, on_check)
        flapped_for = (datetime.now(timezone.utc) - started).total_seconds()
    assert flapped_for >= 60
    # Every check spends the connection's retry budget, as a poke does, then the next check tries again.
    assert checks == len(FLAPS) // ATTEMPTS + 1
    assert sum(sim.stats.faults.values()) == len(FLAPS)
    assert len(retry_pauses) == len(FLAPS) // ATTEMPTS * (ATTEMPTS - 1)  # a pause between attempts, never slept
    assert {"500", "502", "503", "drop", "429", "403_exhausted"} <= set(sim.stats.faults)
    assert event["status"] == "done"
    result = sensor.execute_complete({}, event)  # type: ignore[arg-type]
    assert (result["id"], result["reply_status"]) == (consent["id"], "P")


def test_expired_key_during_the_wait_ends_it_at_once_with_an_auth_error(
    etelecom_connection: EtelecomSimulator, retry_pauses: list[float]
) -> None:
    sim = etelecom_connection
    consent = EtelecomHook().request_consent(oa_id=OA, phone=PHONE, call_type="audio", reason_code="update_order")
    sensor, trigger = _defer(consent["id"])
    sim.reset_stats()

    def on_check(n: int) -> None:
        if n == 3:
            sim.api_key = "rotated-key-0123456789"  # the connection still holds the old one

    event, checks = drive(trigger, on_check)
    # One more check: refused, the connection re-read holds the same key, so no second try, no wait.
    assert checks == 4
    assert sim.stats.count(LIST, 401) == 1
    assert retry_pauses == []
    assert event["status"] == "error" and event["error_class"] == "EtelecomAuthError"
    with pytest.raises(AirflowFailException) as raised:  # no Airflow retries for a refused key
        sensor.execute_complete({}, event)  # type: ignore[arg-type]
    assert isinstance(raised.value.__cause__, EtelecomAuthError)
    assert SECRET_KEY not in str(raised.value) and "rotated-key" not in str(raised.value)
