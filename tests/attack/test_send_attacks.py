"""Red-team attacks on ``RequestConsentOperator``'s "never two charged messages", over loopback HTTP.

Each test names a platform the simulator was not built on and, where an earlier operator sent twice
or returned a consent that does not exist, what it did; it asserts one message and the right consent.

The tries of one task instance are played as two ``execute`` calls sharing one task state store
(Airflow 3.3's, kept in memory as in ``tests/operators/test_request_consent.py``); the platform
counts the ``RequestConsent`` calls it received: the messages a customer's phone got.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_etelecom.exceptions import (
    EtelecomConsentOutcomeError,
    EtelecomError,
    EtelecomMalformedResponseError,
)
from airflow_provider_etelecom.operators.request_consent import RequestConsentOperator
from tests.attack.conftest import START, spaced_rows
from tests.attack.platform import OA, MiniPlatform
from tests.operators.test_request_consent import MemoryTaskStateStore, context

PHONE = "0912000444"


def operator(**kwargs: Any) -> RequestConsentOperator:
    return RequestConsentOperator(
        task_id="ask",
        oa_id=OA,
        phone=PHONE,
        call_type="audio",
        reason_code="order_appointment_confirmation",
        listing_lag_grace=0,
        **kwargs,
    )


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch) -> Iterator[MiniPlatform]:
    # Earlier consents of other phones, so the listings have something to page through.
    rows = spaced_rows(START, 50, seed=2)
    with MiniPlatform(rows, shown="us") as mini:
        monkeypatch.setenv("AIRFLOW_CONN_ETELECOM_DEFAULT", mini.connection_json())
        yield mini


def try_twice(store: MemoryTaskStateStore) -> tuple[BaseException | None, Any]:
    first: BaseException | None = None
    try:
        operator().execute(context(try_number=1, store=store))
    except (EtelecomError, AirflowFailException) as error:
        first = error
    return first, operator().execute(context(try_number=2, store=store))


# ------------------------------------------------------------------------------------------------
# eTelecom's call to Zalo timed out, so it answered status N ("context deadline exceeded"), yet Zalo
# delivered: the listing soon shows the consent P (sent). An earlier operator took N for "reached
# nobody", and the Airflow retry sent a second charged message without looking.
# ------------------------------------------------------------------------------------------------


def test_a_send_answered_N_that_the_listing_then_shows_delivered_is_not_sent_again(platform: MiniPlatform) -> None:
    plain = platform.request_consent

    def timed_out_at_zalo(body: dict[str, Any]) -> dict[str, Any]:
        answer = plain(body)
        if platform.sends == 1:
            row = next(r for r in platform.rows if str(r.id) == answer["id"])
            # Listed as delivered (reconciled); the answer said it failed.
            row.fields.update(status="P")
            return {**answer, "status": "N", "error_code": -1, "error_message": "context deadline exceeded"}
        return answer

    platform.request_consent = timed_out_at_zalo  # type: ignore[method-assign]
    store = MemoryTaskStateStore()
    first, second = try_twice(store)
    assert isinstance(first, EtelecomConsentOutcomeError)
    listed_first = next(r for r in platform.rows if r.fields.get("phone") == "84912000444")
    assert platform.sends == 1  # one message reached the customer
    assert second["id"] == str(listed_first.id) and second["status"] == "P"


# ------------------------------------------------------------------------------------------------
# Handled (OK): one message each time.
# ------------------------------------------------------------------------------------------------


def test_OK_a_5xx_after_the_consent_was_created(platform: MiniPlatform) -> None:
    plain = platform.request_consent

    def created_then_502(method: str, body: dict[str, Any], n: int) -> Any:
        if method == "RequestConsent" and n == 1:
            plain(body)
            return 502, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"}
        return None

    platform.hooks.append(created_then_502)
    store = MemoryTaskStateStore()
    first, second = try_twice(store)
    assert first is not None and platform.sends == 1
    assert second["phone"] == "84912000444"


@pytest.mark.parametrize("answer", [b"{}", b"", b"null", b'{"consent": {"id": "1"}}'])
def test_OK_a_200_that_is_not_a_consent_is_never_sent_again(platform: MiniPlatform, answer: bytes) -> None:
    plain = platform.request_consent

    def created_then_odd(method: str, body: dict[str, Any], n: int) -> Any:
        if method == "RequestConsent" and n == 1:
            plain(body)
            return 200, answer, {}
        return None

    platform.hooks.append(created_then_odd)
    store = MemoryTaskStateStore()
    first, second = try_twice(store)
    assert isinstance(first, EtelecomError) and platform.sends == 1
    assert second["phone"] == "84912000444"


def test_OK_a_go_zero_value_answer_fails_the_try_and_the_retry_finds_the_consent(platform: MiniPlatform) -> None:
    # A handler returning an empty struct (`&pb.Consent{}`) after an asynchronous create: id "0",
    # status "Z" (the doc's zero value). An earlier operator returned it as the sent consent (green,
    # with a consent that does not exist). It names no consent: the try fails without sending again,
    # and the retry finds the consent the platform created.
    plain = platform.request_consent
    zero = {
        "id": "0",
        "shop_id": "0",
        "oa_id": "0",
        "phone": "",
        "status": "Z",
        "reply_status": "Z",
        "created_at": "0001-01-01T00:00:00Z",
        "updated_at": "0001-01-01T00:00:00Z",
    }

    def async_create(method: str, body: dict[str, Any], n: int) -> Any:
        if method == "RequestConsent":
            plain(body)
            return 200, zero, {}
        return None

    platform.hooks.append(async_create)
    store = MemoryTaskStateStore()
    first, second = try_twice(store)
    assert isinstance(first, EtelecomMalformedResponseError) and "empty record" in first.message
    assert platform.sends == 1
    created = next(r for r in platform.rows if r.fields.get("phone") == "84912000444")
    assert second["id"] == str(created.id)
