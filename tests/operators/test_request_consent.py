"""RequestConsentOperator against the simulator: validation, failed sends, and never sending twice.

Time is driven, not slept: ``time_machine`` moves the worker's clock and, since the simulator's
clock is real time plus its offset, the simulator's listing lag with it. The real Airflow retries
(``dag.test()``) are in ``test_request_consent_retry.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
import time_machine
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from airflow_provider_etelecom.client.models import parse_api_time
from airflow_provider_etelecom.exceptions import (
    EtelecomConsentOutcomeError,
    EtelecomTransientError,
    EtelecomValidationError,
)
from airflow_provider_etelecom.operators.request_consent import (
    SEND_RECORD_KEY,
    RequestConsentOperator,
    first_try_anchor,
)
from airflow_provider_etelecom.sensors.consent_replies import LISTING_LAG_GRACE_S, ConsentReplySensor
from airflow_provider_etelecom.testing import EtelecomSimulator

SEND = "Zalo/RequestConsent"
LIST = "Zalo/ListRequestConsent"
OA = "4239023413265392134"
PHONE = "0912000444"


def operator(**kwargs: Any) -> RequestConsentOperator:
    args: dict[str, Any] = {
        "task_id": "ask",
        "oa_id": OA,
        "phone": PHONE,
        "call_type": "audio",
        "reason_code": "order_appointment_confirmation",
        **kwargs,
    }
    return RequestConsentOperator(**args)


class MemoryTaskStateStore:
    """Airflow 3.3's task state store (``get``/``set``/``delete``), kept in memory, shared by tries.

    The real accessor talks to the task's supervisor, which only a running task has; the real
    store across real retries is proven in ``test_request_consent_retry.py``.
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        assert value is not None
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def context(
    try_number: int = 1,
    run_began: datetime | None = None,
    try_began: datetime | None = None,
    store: MemoryTaskStateStore | None = None,
) -> dict[str, Any]:
    began = run_began or datetime.now(timezone.utc) - timedelta(seconds=5)
    ctx: dict[str, Any] = {
        "ti": SimpleNamespace(try_number=try_number, start_date=try_began or datetime.now(timezone.utc)),
        "dag_run": SimpleNamespace(run_after=began, queued_at=began, start_date=began + timedelta(seconds=1)),
    }
    if store is not None:
        ctx["task_state_store"] = store
    return ctx


@pytest.fixture
def clock() -> Iterator[Any]:
    """The worker's and the simulator's clock, moved by ``clock.shift(seconds)``."""
    with time_machine.travel(datetime.now(timezone.utc), tick=True) as traveller:
        yield traveller


def sent_to_phone(sim: EtelecomSimulator) -> int:
    """Consents the simulator created for PHONE: what the customer's phone received."""
    return sum(1 for consent in sim.consents() if consent["phone"] == "84912000444")


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"oa_id": "OA-1"}, "oa_id"),
        ({"phone": "12"}, "phone"),
        ({"call_type": "fax"}, "call_type"),
        ({"reason_code": "because"}, "reason_code"),
    ],
)
def test_arguments_are_validated_before_anything_is_sent(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(EtelecomValidationError) as caught:
        operator(**kwargs)
    assert caught.value.parameter == parameter


def test_templated_arguments_are_validated_at_run_time(etelecom_connection: EtelecomSimulator) -> None:
    op = operator(phone="{{ params.phone }}")
    assert op.template_fields == ("oa_id", "phone", "call_type", "reason_code")
    op.phone = "not a phone"  # what a bad rendering would leave
    with pytest.raises(AirflowFailException, match="phone") as caught:  # no pointless Airflow retries
        op.execute(context())
    assert isinstance(caught.value.__cause__, EtelecomValidationError)
    assert etelecom_connection.stats.count(method=SEND) == 0


def test_sends_once_and_returns_the_consent(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consent = operator().execute(context())
    assert consent["status"] == "P" and consent["reply_status"] == "S"
    assert sim.stats.count(method=SEND) == 1 and sim.stats.count(method=LIST) == 0
    sent = next(entry for entry in sim.requests_log if entry["method"] == SEND)["body"]
    assert sent == {
        "oa_id": OA,
        "phone": "84912000444",
        "call_type": "audio",
        "reason_code": "order_appointment_confirmation",
    }


def test_failed_send_fails_with_etelecoms_error(etelecom_connection: EtelecomSimulator) -> None:
    etelecom_connection.fail_send_to(PHONE, error_code=-201, error_message="Số điện thoại không hợp lệ")
    with pytest.raises(EtelecomConsentOutcomeError, match=r"-201.*không hợp lệ") as caught:
        operator().execute(context())
    assert caught.value.consent["status"] == "N"


def test_no_http_retry_once_the_request_may_have_arrived(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    sim.script_faults(["503"])
    with pytest.raises(EtelecomTransientError):
        operator().execute(context())
    assert sim.stats.count(method=SEND) == 1


def test_a_retry_returns_the_first_tries_consent(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    run_began = datetime.now(timezone.utc) - timedelta(seconds=5)
    first = operator().execute(context(1, run_began))
    # Try 1 "died" after eTelecom created the consent; Airflow retries the task.
    sim.reset_stats()
    again = operator().execute(context(2, run_began))
    assert again["id"] == first["id"]
    # The consent's page, its second read again by a date bound (the cursor is not learnt yet), then the
    # empty page that ends the listing: no order is trusted to find it.
    assert sim.stats.count(method=SEND) == 0 and sim.stats.count(method=LIST) == 3
    listed = next(entry for entry in sim.requests_log if entry["method"] == LIST)["body"]
    assert listed["filter"]["oa_id"] == OA and listed["filter"]["phone"] == "84912000444"
    assert listed["filter"]["call_type"] == "audio"
    assert listed["filter"]["reason_code"] == "order_appointment_confirmation"
    assert "sort" not in listed["paging"]  # the default order: a refused sort cannot fail the retry
    # Without a task state store the look-back tolerates a platform clock an hour behind the worker's.
    assert parse_api_time(listed["filter"]["date_from"]) <= run_began - timedelta(hours=1)


def test_a_retry_sends_when_nothing_was_sent(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    began = datetime.now(timezone.utc) - timedelta(seconds=LISTING_LAG_GRACE_S + 1)
    consent = operator().execute(context(3, run_began=began, try_began=began))  # the grace is over
    assert consent["status"] == "P"
    assert sim.stats.count(method=SEND) == 1 and sim.stats.count(method=LIST) == 1


def test_a_retry_ignores_other_call_types_and_earlier_runs(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    operator(call_type="video").execute(context())
    sim.advance(3600)
    run_began = sim.now() - timedelta(seconds=1)
    sim.reset_stats()
    operator(listing_lag_grace=0).execute(context(2, run_began))
    assert sim.stats.count(method=SEND) == 1


def test_a_retry_after_a_failed_send_sends_again(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    sim.fail_send_to(PHONE)
    run_began = datetime.now(timezone.utc) - timedelta(seconds=5)
    with pytest.raises(EtelecomConsentOutcomeError):
        operator().execute(context(1, run_began))
    sim.reset_stats()
    # A failed send reached nobody: the retry sends again (and here fails the same way).
    with pytest.raises(EtelecomConsentOutcomeError):
        operator(listing_lag_grace=0).execute(context(2, run_began))
    assert sim.stats.count(method=SEND) == 1


def test_anchor_is_the_earliest_thing_the_run_knows() -> None:
    began = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ctx = {
        "ti": SimpleNamespace(start_date=began + timedelta(hours=2)),
        "dag_run": SimpleNamespace(
            run_after=None, data_interval_end=began, queued_at=began + timedelta(hours=1), start_date=None
        ),
    }
    assert first_try_anchor(ctx) == began  # type: ignore[arg-type]
    assert first_try_anchor({}) is None  # type: ignore[arg-type]


# -- the listing-lag grace -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"listing_lag_grace": -1}, "listing_lag_grace"),
        ({"listing_lag_grace": "60"}, "listing_lag_grace"),
        ({"listing_lag_grace": True}, "listing_lag_grace"),
        ({"listing_lag_grace": timedelta(seconds=-5)}, "listing_lag_grace"),
        ({"deferrable": "yes"}, "deferrable"),
        ({"resend_if_unconfirmed": 1}, "resend_if_unconfirmed"),
    ],
)
def test_new_parameters_are_validated(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(EtelecomValidationError, match=parameter) as caught:
        operator(**kwargs)
    assert caught.value.parameter == parameter


def test_the_grace_defaults_to_the_sensors_not_found_grace() -> None:
    sensor = ConsentReplySensor(task_id="wait", consent_id="1", phone=PHONE, oa_id=OA)
    assert operator().listing_lag_grace == sensor.not_found_grace_period == LISTING_LAG_GRACE_S == 60
    assert operator(listing_lag_grace=timedelta(minutes=2)).listing_lag_grace == 120
    assert operator().resend_if_unconfirmed is False


def test_found_after_the_lag_inside_the_grace_is_not_sent_again(
    etelecom_connection: EtelecomSimulator, clock: Any
) -> None:
    # The case: the first try sent, then died; the listing shows the consent 30 s later.
    sim = etelecom_connection
    sim.listing_lag_s = 30
    run_began = datetime.now(timezone.utc) - timedelta(seconds=5)
    first = operator().execute(context(1, run_began))
    retry = operator(deferrable=True)
    retry_context = context(2, run_began)
    with pytest.raises(TaskDeferred) as deferred:
        retry.execute(retry_context)
    assert deferred.value.method_name == "execute_complete"
    deadline = datetime.fromisoformat(deferred.value.kwargs["deadline"])
    assert deadline == retry_context["ti"].start_date + timedelta(seconds=60)
    assert abs((deferred.value.trigger.moment - deadline).total_seconds()) < 1
    clock.shift(31)
    again = retry.execute_complete(retry_context, event=None, **deferred.value.kwargs)
    assert again["id"] == first["id"]
    # one empty look before the lag ran out, then the consent's page, its second again, the empty page
    assert sim.stats.count(method=SEND) == 1 and sim.stats.count(method=LIST) == 4
    assert sent_to_phone(sim) == 1


def test_not_listed_after_the_grace_sends_once(etelecom_connection: EtelecomSimulator, clock: Any) -> None:
    sim = etelecom_connection
    retry = operator(deferrable=True)
    retry_context = context(2)
    with pytest.raises(TaskDeferred) as deferred:
        retry.execute(retry_context)
    assert sim.stats.count(method=SEND) == 0
    clock.shift(61)
    consent = retry.execute_complete(retry_context, event=None, **deferred.value.kwargs)
    assert consent["status"] == "P"
    assert sim.stats.count(method=SEND) == 1 and sim.stats.count(method=LIST) == 2


def test_a_consent_listed_later_than_the_grace_is_sent_again_without_a_store(
    etelecom_connection: EtelecomSimulator, clock: Any
) -> None:
    # The documented limit on Airflow 2.11 and 3.0-3.2: a listing lag longer than the grace.
    sim = etelecom_connection
    sim.listing_lag_s = 300
    run_began = datetime.now(timezone.utc) - timedelta(seconds=5)
    operator().execute(context(1, run_began))
    retry, retry_context = operator(deferrable=True), context(2, run_began)
    with pytest.raises(TaskDeferred) as deferred:
        retry.execute(retry_context)
    clock.shift(61)
    retry.execute_complete(retry_context, event=None, **deferred.value.kwargs)
    assert sim.stats.count(method=SEND) == 2 and sent_to_phone(sim) == 2


def test_without_deferral_the_grace_is_polled_in_process(etelecom_connection: EtelecomSimulator) -> None:
    # Real (short) waits: the operator sleeps between looks; the simulator's lag passes meanwhile.
    sim = etelecom_connection
    sim.listing_lag_s = 0.4
    run_began = datetime.now(timezone.utc) - timedelta(seconds=5)
    first = operator().execute(context(1, run_began))
    retry = operator(listing_lag_grace=3, deferrable=False)
    retry.listing_look_interval = 0.1
    again = retry.execute(context(2, run_began))
    assert again["id"] == first["id"]
    assert sim.stats.count(method=SEND) == 1 and sim.stats.count(method=LIST) >= 2


def test_a_wait_shorter_than_one_look_is_not_deferred(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    # Deferring costs a triggerer round trip: 0.3 s left of the grace is slept in the worker.
    began = datetime.now(timezone.utc) - timedelta(seconds=LISTING_LAG_GRACE_S - 0.3)
    consent = operator(deferrable=True).execute(context(2, run_began=began, try_began=began))
    assert consent["status"] == "P"
    assert sim.stats.count(method=SEND) == 1 and sim.stats.count(method=LIST) == 2


# -- the task state store (Airflow 3.3+) ------------------------------------------------------


def test_the_store_holds_under_way_before_the_send_and_the_consent_after(
    etelecom_connection: EtelecomSimulator,
) -> None:
    sim = etelecom_connection
    store = MemoryTaskStateStore()
    earlier = operator().execute(context(1, store=MemoryTaskStateStore()))  # an earlier run's consent
    # The listing before the send answers; eTelecom creates the consent, the answer is lost on the way back.
    sim.script_faults(["drop"], method="Zalo/RequestConsent")
    with pytest.raises(EtelecomTransientError):
        operator().execute(context(1, store=store))
    record = store.values[SEND_RECORD_KEY]
    assert record["state"] == "under_way" and record["try_number"] == 1 and "consent" not in record
    assert record["listed_before"] == [earlier["id"]]  # what a later try must not take for this send
    assert datetime.fromisoformat(record["since"]) <= datetime.now(timezone.utc)
    assert record["request"] == {
        "oa_id": OA,
        "phone": "84912000444",
        "call_type": "audio",
        "reason_code": "order_appointment_confirmation",
    }
    consent = operator().execute(context(1, store=(fresh := MemoryTaskStateStore())))
    assert fresh.values[SEND_RECORD_KEY]["state"] == "sent"
    assert fresh.values[SEND_RECORD_KEY]["consent"]["id"] == consent["id"]


def test_a_recorded_consent_is_returned_without_sending_or_waiting(
    etelecom_connection: EtelecomSimulator,
) -> None:
    sim = etelecom_connection
    sim.listing_lag_s = 300  # longer than any grace: only the record can know
    store = MemoryTaskStateStore()
    first = operator().execute(context(1, store=store))
    again = operator(deferrable=True).execute(context(2, store=store))  # no TaskDeferred: no wait
    assert again["id"] == first["id"]
    assert sim.stats.count(method=SEND) == 1 and sent_to_phone(sim) == 1


def test_an_unconfirmed_send_found_within_the_grace_is_returned(
    etelecom_connection: EtelecomSimulator, clock: Any
) -> None:
    sim = etelecom_connection
    sim.listing_lag_s = 30
    store = MemoryTaskStateStore()
    run_began = datetime.now(timezone.utc) - timedelta(seconds=5)
    sim.script_faults(["none", "drop"])  # the listing before the send, then the send's lost answer
    with pytest.raises(EtelecomTransientError):
        operator().execute(context(1, run_began, store=store))
    retry, retry_context = operator(deferrable=True), context(2, run_began, store=store)
    with pytest.raises(TaskDeferred) as deferred:
        retry.execute(retry_context)
    clock.shift(31)
    consent = retry.execute_complete(retry_context, event=None, **deferred.value.kwargs)
    assert sim.stats.count(method=SEND) == 1 and sent_to_phone(sim) == 1
    assert store.values[SEND_RECORD_KEY]["state"] == "sent"  # a later try needs no wait
    assert store.values[SEND_RECORD_KEY]["consent"]["id"] == consent["id"]


@pytest.mark.parametrize("resend_if_unconfirmed", [False, True])
def test_an_unconfirmed_send_not_found_after_the_grace(
    etelecom_connection: EtelecomSimulator, clock: Any, resend_if_unconfirmed: bool
) -> None:
    sim = etelecom_connection
    sim.listing_lag_s = 300
    store = MemoryTaskStateStore()
    run_began = datetime.now(timezone.utc) - timedelta(seconds=5)
    sim.script_faults(["none", "drop"])  # the listing before the send, then the send's lost answer
    with pytest.raises(EtelecomTransientError):
        operator().execute(context(1, run_began, store=store))
    retry = operator(deferrable=True, resend_if_unconfirmed=resend_if_unconfirmed)
    retry_context = context(2, run_began, store=store)
    with pytest.raises(TaskDeferred) as deferred:
        retry.execute(retry_context)
    clock.shift(61)
    if resend_if_unconfirmed:
        consent = retry.execute_complete(retry_context, event=None, **deferred.value.kwargs)
        assert sent_to_phone(sim) == 2
        assert store.values[SEND_RECORD_KEY]["consent"]["id"] == consent["id"]
        return
    with pytest.raises(AirflowFailException, match=r"resend_if_unconfirmed=True") as caught:
        retry.execute_complete(retry_context, event=None, **deferred.value.kwargs)
    assert "try 1 started sending" in str(caught.value) and "849*****444" in str(caught.value)
    assert sim.stats.count(method=SEND) == 1 and sent_to_phone(sim) == 1


@pytest.mark.parametrize(("fault", "kept"), [("429", False), ("503", True)])
def test_a_refused_send_leaves_no_record_an_unanswered_one_does(
    etelecom_connection: EtelecomSimulator, fault: str, kept: bool
) -> None:
    # A 429 is an answer: eTelecom created nothing. A 503 may come after the consent was made.
    store = MemoryTaskStateStore()
    etelecom_connection.script_faults(["none", fault])  # the listing before the send answers
    with pytest.raises(EtelecomTransientError):
        operator().execute(context(1, store=store))
    assert (SEND_RECORD_KEY in store.values) is kept


def test_a_recorded_failed_send_is_sent_again_at_once(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    store = MemoryTaskStateStore()
    sim.fail_send_to(PHONE)
    with pytest.raises(EtelecomConsentOutcomeError):
        operator().execute(context(1, store=store))
    assert store.values[SEND_RECORD_KEY]["consent"]["status"] == "N"
    sim.reset_stats()
    with pytest.raises(EtelecomConsentOutcomeError):  # status N reached nobody: no wait
        operator(deferrable=True).execute(context(2, store=store))
    # one lookup of the failed consent (still N: its page, its second again, the empty page), then the
    # one listing before the new send
    assert sim.stats.count(method=SEND) == 1 and sim.stats.count(method=LIST) == 4


def test_a_recorded_failed_send_the_listing_shows_delivered_is_not_sent_again(
    etelecom_connection: EtelecomSimulator,
) -> None:
    """The answer said N (eTelecom's call to Zalo timed out) but Zalo delivered it: no second charged message."""
    sim = etelecom_connection
    store = MemoryTaskStateStore()
    sim.fail_send_to(PHONE, delivered=True)
    with pytest.raises(EtelecomConsentOutcomeError):
        operator().execute(context(1, store=store))
    recorded = store.values[SEND_RECORD_KEY]["consent"]
    assert recorded["status"] == "N"
    sim.reset_stats()
    consent = operator().execute(context(2, store=store))
    assert consent["id"] == recorded["id"] and consent["status"] == "P"
    assert sim.stats.count(method=SEND) == 0


def test_a_recorded_failed_send_is_not_sent_again_while_its_lookup_fails(
    etelecom_connection: EtelecomSimulator,
) -> None:
    sim = etelecom_connection
    store = MemoryTaskStateStore()
    sim.fail_send_to(PHONE)
    with pytest.raises(EtelecomConsentOutcomeError):
        operator().execute(context(1, store=store))
    sim.reset_stats()
    retry = operator()
    retry.hook.max_retries = 0
    sim.script_faults(["503"])
    with pytest.raises(EtelecomTransientError, match="answered as not sent"):
        retry.execute(context(2, store=store))
    assert sim.stats.count(method=SEND) == 0


def test_a_record_for_other_arguments_is_ignored(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    store = MemoryTaskStateStore()
    other = operator(phone="0912000555").execute(context(1, store=store))
    consent = operator(listing_lag_grace=0).execute(context(2, store=store))
    assert consent["id"] != other["id"] and consent["phone"] == "84912000444"
    assert sim.stats.count(method=SEND) == 2


def test_a_recorded_consent_is_returned_when_its_lookup_fails(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    store = MemoryTaskStateStore()
    first = operator().execute(context(1, store=store))
    retry = operator()
    retry.hook.max_retries = 0
    sim.script_faults(["503"])  # the lookup of the recorded consent fails: the record is enough
    assert retry.execute(context(2, store=store))["id"] == first["id"]
    assert sim.stats.count(method=SEND) == 1


@pytest.mark.parametrize("conn_id", ["etelecom_default", "no_such_connection"])
def test_a_wrong_or_missing_connection_leaves_nothing_under_way(
    etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch, conn_id: str
) -> None:
    store = MemoryTaskStateStore()
    monkeypatch.setenv("AIRFLOW_CONN_ETELECOM_DEFAULT", '{"conn_type": "etelecom", "host": "ftp://nowhere"}')
    with pytest.raises(Exception, match=conn_id):  # EtelecomConfigError, or Airflow's not-found error
        operator(etelecom_conn_id=conn_id).execute(context(1, store=store))
    assert store.values == {}  # no send was under way: the retry of a fixed connection sends at once


# -- a 409 already_exists: Zalo refuses a second request while one is pending (issue 19) -------------


def test_a_409_returns_the_pending_consent_and_sends_nothing(
    etelecom_connection: EtelecomSimulator, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = etelecom_connection
    sim.pending_conflict = True
    pending = operator(call_type="video", reason_code="delivery_notification").execute(context())
    sim.reset_stats()
    consent = operator().execute(context())  # another call type and reason, same OA and phone
    assert consent["id"] == pending["id"] and sent_to_phone(sim) == 1
    refused = [e for e in sim.requests_log if e["method"] == SEND]
    assert [e["status"] for e in refused] == [409]
    logged = caplog.text + capsys.readouterr().out  # Airflow 3's task logger writes to stdout
    assert pending["id"] in logged and "video" in logged and "delivery_notification" in logged and "409" in logged


def test_a_409_whose_pending_consent_is_not_listed_fails_naming_it(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    sim.pending_conflict = True
    sim.listing_lag_s = 300
    operator().execute(context())
    retry = operator(listing_lag_grace=0.3)
    retry.listing_look_interval = 0.1
    with pytest.raises(AirflowFailException, match=r"HTTP 409 already_exists.*Nothing was sent") as caught:
        retry.execute(context())
    assert "849*****444" in str(caught.value) and sent_to_phone(sim) == 1
