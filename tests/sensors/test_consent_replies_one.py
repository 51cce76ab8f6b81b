"""ConsentReplySensor against the simulator: outcomes, budget, and the three modes agreeing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    PokeReturnValue,
    TaskDeferred,
)

from airflow_provider_etelecom.exceptions import (
    EtelecomAuthError,
    EtelecomConsentNotFoundError,
    EtelecomConsentOutcomeError,
    EtelecomError,
    EtelecomValidationError,
)
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.sensors.consent_replies import ConsentReplySensor
from airflow_provider_etelecom.testing import EtelecomSimulator
from airflow_provider_etelecom.triggers.consent_replies import ConsentRepliesTrigger, build_event
from tests.conftest import SECRET_KEY
from tests.sensors.conftest import context, event_for

LIST = "Zalo/ListRequestConsent"
OA = "4239023413265392134"
PHONE = "0912000222"


def request(phone: str = PHONE) -> dict[str, Any]:
    return EtelecomHook().request_consent(oa_id=OA, phone=phone, call_type="video", reason_code="update_order")


def sensor(consent_id: str, **kwargs: Any) -> ConsentReplySensor:
    kwargs.setdefault("poke_interval", 0.01)
    kwargs.setdefault("timeout", 30)
    return ConsentReplySensor(task_id="wait", consent_id=consent_id, phone=PHONE, oa_id=OA, **kwargs)


def finish_three_ways(s: ConsentReplySensor, consent: dict[str, Any]) -> list[Any]:
    """Return what poke, execute (poke mode) and execute_complete each give for the same consent."""
    event = event_for([consent["id"]], {consent["id"]: consent}, failure_statuses=s.failure_statuses)
    results: list[Any] = []
    for run in (
        lambda: s.poke(context()).xcom_value,  # type: ignore[union-attr]
        lambda: s.execute(context()),
        lambda: s.execute_complete(context(), event),
    ):
        try:
            results.append(run())
        except Exception as error:
            results.append((type(error), str(error)))
    return results


# -- construction ----------------------------------------------------------------------------------


def test_failure_statuses_none_means_none() -> None:
    assert ConsentReplySensor(task_id="w", consent_id="1", phone=PHONE, oa_id=OA, failure_statuses=None)


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"failure_statuses": {"N", "S"}}, "failure_statuses"),
        ({"failure_statuses": 5}, "failure_statuses"),
        ({"max_pages": 0}, "max_pages"),
        ({"max_pages": 101}, "max_pages"),
        ({"not_found_grace_period": -1}, "not_found_grace_period"),
        ({"oa_id": "abc"}, "oa_id"),
        ({"consent_id": "x1"}, "consent_id"),
        ({"phone": "12"}, "phone"),
    ],
)
def test_invalid_arguments_name_the_parameter(kwargs: dict[str, Any], parameter: str) -> None:
    args: dict[str, Any] = {"task_id": "wait", "consent_id": "1", "phone": PHONE, "oa_id": OA, **kwargs}
    with pytest.raises(EtelecomValidationError) as caught:
        ConsentReplySensor(**args)
    assert caught.value.parameter == parameter


def test_templated_values_are_checked_when_rendered() -> None:
    s = ConsentReplySensor(
        task_id="wait",
        consent_id="{{ ti.xcom_pull('ask')['id'] }}",
        phone="{{ params.phone }}",
        oa_id="{{ params.oa_id }}",
        not_found_grace_period=timedelta(minutes=2),
    )
    assert s.template_fields == ("consent_id", "phone", "oa_id")
    assert s.not_found_grace_period == 120.0


# -- outcomes ----------------------------------------------------------------------------------------


def test_waits_then_succeeds_with_the_consent_one_request_per_check(
    etelecom_connection: EtelecomSimulator, sort_probe_requests: range
) -> None:
    sim = etelecom_connection
    consent = request()
    s = sensor(consent["id"])
    sim.reset_stats()
    assert s.poke(context()) is False
    assert sim.stats.count(method=LIST) == 1
    sim.reply(consent["id"], "P")
    result = s.poke(context())
    assert isinstance(result, PokeReturnValue) and result.is_done
    assert result.xcom_value["id"] == consent["id"] and result.xcom_value["reply_status"] == "P"
    assert sim.stats.count(method=LIST) - 2 in sort_probe_requests


@pytest.mark.parametrize("reply", ["P", "N", "NS"])
def test_every_final_reply_succeeds_by_default(etelecom_connection: EtelecomSimulator, reply: str) -> None:
    sim = etelecom_connection
    consent = request()
    if reply == "NS":
        sim.advance(86400 + 1)
    else:
        sim.reply(consent["id"], reply)
    results = finish_three_ways(sensor(consent["id"]), sim.consent(consent["id"]))  # type: ignore[arg-type]
    assert [r["reply_status"] for r in results] == [reply] * 3
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize("reply", ["N", "NS"])
def test_failure_statuses_fail_the_same_way_in_every_mode(etelecom_connection: EtelecomSimulator, reply: str) -> None:
    sim = etelecom_connection
    consent = request()
    if reply == "NS":
        sim.advance(86400 + 1)
    else:
        sim.reply(consent["id"], reply)
    s = sensor(consent["id"], failure_statuses={"N", "NS"})
    results = finish_three_ways(s, sim.consent(consent["id"]))  # type: ignore[arg-type]
    assert results[0] == results[1] == results[2]
    assert results[0][0] is EtelecomConsentOutcomeError
    assert "failure_statuses" in results[0][1]


def test_soft_fail_skips(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consent = request()
    sim.reply(consent["id"], "N")
    s = sensor(consent["id"], failure_statuses=["N"], soft_fail=True)
    results = finish_three_ways(s, sim.consent(consent["id"]))  # type: ignore[arg-type]
    assert {r[0] for r in results} == {AirflowSkipException}


def test_failed_send_ends_with_etelecoms_error(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    sim.fail_send_to(PHONE, error_code=-213, error_message="user is not following the OA")
    consent = request()
    s = sensor(consent["id"])
    with pytest.raises(EtelecomConsentOutcomeError, match=r"-213.*not following") as caught:
        s.poke(context())
    assert caught.value.consent["id"] == consent["id"]
    with pytest.raises(EtelecomConsentOutcomeError, match="-213"):
        s.execute_complete(context(), event_for([consent["id"]], {consent["id"]: caught.value.consent}))


def test_expired_pending_consent_ends_the_wait() -> None:
    consent = {"id": "77", "reply_status": "S", "status": "P", "expires_at": "2020-01-01T00:00:00Z"}
    s = sensor("77")
    event = event_for(["77"], {"77": consent})
    assert event["status"] == "failed"
    with pytest.raises(EtelecomConsentOutcomeError, match="expired at 2020-01-01"):
        s.execute_complete(context(), event)
    with pytest.raises(AirflowSkipException):
        sensor("77", soft_fail=True).execute_complete(context(), event)


def test_unknown_reply_status_fails_closed_even_with_soft_fail(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    odd = sim.add_consent(oa_id=OA, phone=PHONE, reply_status="Q", status="P")
    with pytest.raises(EtelecomConsentOutcomeError, match="does not know"):
        sensor(odd["id"], soft_fail=True).poke(context())


def test_not_found_waits_for_the_grace_period(etelecom_connection: EtelecomSimulator) -> None:
    s = sensor("999999999", not_found_grace_period=60)
    assert s.poke(context()) is False
    with pytest.raises(EtelecomConsentNotFoundError, match="grace period"):
        s.poke(context(datetime.now(timezone.utc) - timedelta(seconds=61)))
    with pytest.raises(EtelecomConsentNotFoundError):
        s.execute_complete(context(), event_for(["999999999"], {}, not_found_expired=True))
    with pytest.raises(AirflowSkipException):
        sensor("999999999", not_found_grace_period=0, soft_fail=True).poke(context())


def test_listing_lag_is_covered_by_the_grace_period(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fresh request may not be listed yet: not found within the grace period is "not yet".
    with EtelecomSimulator(consents=10, api_key=SECRET_KEY, listing_lag_s=30) as sim:
        conn = {"conn_type": "etelecom", "host": sim.base_url, "password": SECRET_KEY}
        monkeypatch.setenv("AIRFLOW_CONN_ETELECOM_DEFAULT", json.dumps(conn))
        consent = request()
        s = sensor(consent["id"], not_found_grace_period=60)
        assert s.poke(context()) is False
        sim.advance(31)
        sim.reply(consent["id"], "P")
        assert s.poke(context()).xcom_value["reply_status"] == "P"  # type: ignore[union-attr]


def test_transient_errors_are_not_yet(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consent = request()
    sim.reply(consent["id"], "P")
    s = sensor(consent["id"])
    s.hook.max_retries = 0
    sim.script_faults(["503"])
    assert s.poke(context()) is False
    assert s.poke(context()).xcom_value["reply_status"] == "P"  # type: ignore[union-attr]


def test_transient_errors_are_retried_within_the_connections_budget(
    etelecom_connection: EtelecomSimulator, retry_pauses: list[float]
) -> None:
    sim = etelecom_connection
    consent = request()
    sim.reply(consent["id"], "P")
    sim.reset_stats()
    sim.script_faults(["503", ("429", 0.01), "drop"])
    assert sensor(consent["id"]).poke(context()).xcom_value["reply_status"] == "P"  # type: ignore[union-attr]
    assert sim.stats.count(method=LIST) == 4 and len(retry_pauses) == 3 and retry_pauses[1] >= 0.01


def test_auth_error_fails_at_once(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consent = request()
    sim.api_key = "etl-ROTATED-key-0000000003"
    s = sensor(consent["id"])
    with pytest.raises(EtelecomAuthError):
        s.poke(context())
    # execute (every mode) and execute_complete fail without Airflow retries, naming the field to fix.
    with pytest.raises(AirflowFailException, match="Password field") as failed:
        s.execute(context())
    assert isinstance(failed.value.__cause__, EtelecomAuthError)
    with pytest.raises(AirflowFailException, match="Password field"):
        s.execute_complete(context(), build_event("error", error=EtelecomAuthError("key refused")))


def test_poke_mode_times_out(etelecom_connection: EtelecomSimulator) -> None:
    consent = request()
    with pytest.raises(AirflowSensorTimeout):
        sensor(consent["id"], timeout=0.05).execute(context())
    with pytest.raises(AirflowSensorTimeout):
        sensor(consent["id"]).execute_complete(context(), build_event("timeout", message="late"))
    with pytest.raises(AirflowSkipException):
        sensor(consent["id"], soft_fail=True).execute_complete(context(), build_event("timeout"))


# -- deferrable ---------------------------------------------------------------------------------------


def test_deferrable_checks_once_then_defers_with_its_deadlines(etelecom_connection: EtelecomSimulator) -> None:
    consent = request()
    started = datetime.now(timezone.utc) - timedelta(seconds=10)
    s = sensor(consent["id"], deferrable=True, timeout=3600, not_found_grace_period=90, max_pages=2)
    with pytest.raises(TaskDeferred) as caught:
        s.execute(context(started))
    trigger = caught.value.trigger
    assert isinstance(trigger, ConsentRepliesTrigger)
    assert caught.value.method_name == "execute_complete"
    kwargs = trigger.serialize()[1]
    assert kwargs["deadline"] == pytest.approx((started + timedelta(seconds=3600)).timestamp())
    assert kwargs["not_found_deadline"] == pytest.approx((started + timedelta(seconds=90)).timestamp())
    assert (kwargs["consent_ids"], kwargs["max_pages"], kwargs["poke_interval"]) == ([consent["id"]], 2, 0.01)
    assert (kwargs["oa_id"], kwargs["phone"], kwargs["created_from"]) == (OA, PHONE, None)


def test_deferrable_returns_at_once_when_already_answered(etelecom_connection: EtelecomSimulator) -> None:
    consent = request()
    etelecom_connection.reply(consent["id"], "P")
    assert sensor(consent["id"], deferrable=True).execute(context())["reply_status"] == "P"


P = {"reply_status": "P", "status": "P"}


@pytest.mark.parametrize(
    "event",
    [
        {"version": 9, "status": "done"},
        {"status": "done", "consent": {"id": "1", **P}},  # the unreleased single-consent format is not read
        event_for(["2"], {"2": {"id": "2", **P}}),  # a consent this sensor does not wait for
        {**event_for(["1"], {"1": {"id": "1", **P}}), "status": "failed"},
    ],
)
def test_execute_complete_fails_closed(event: dict[str, Any]) -> None:
    with pytest.raises(EtelecomError, match="fail"):
        sensor("1").execute_complete(context(), event)
