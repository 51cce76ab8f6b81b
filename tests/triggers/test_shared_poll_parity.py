"""Every outcome, through 50 waits sharing a poll and through 50 lone waits: the same decisions.

A table of outcomes (each customer's answer, a consent's fate, a platform fault) under the
simulator's platform variants. Each row runs twice on identical simulators: 50 deferred waits in
one event loop sharing their polls, and the same 50 with ``shared_poll=False`` (each its own
listing, the behaviour before sharing). Half the waits are ``ConsentReplySensor``'s (one consent,
its phone's newest page), half ``ConsentRepliesSensor``'s given the consent dict (``created_from``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.testing import PLATFORM_VARIANTS, READING_VARIANTS, EtelecomSimulator
from tests.conftest import SECRET_KEY
from tests.triggers.shared import OA, deferred, run_together

WAITS = 50
#: The reading variants, and those that change what a wait's listing or RequestConsent's answer shows.
VARIANTS = [
    *READING_VARIANTS,
    "page_cap_50",
    "shown_s_round",
    "numeric_ids",
    "null_empty_page",
    "platform_clock_behind",
    "answer_clock_ahead",
    "order_by_id",
    "cursor_value_le",
    "crowded_second",
]
OUTCOMES = [
    "P",
    "N",
    "NS",
    "expired",
    "failed_send",
    "never_listed",
    "wrong_key",
    "flapping_5xx",
    "429_retry_after",
    "listing_lag",
]


def phone(i: int) -> str:
    return f"09{77_000_000 + i:08d}"


def consents_for(outcome: str, sim: EtelecomSimulator) -> list[dict[str, Any]]:
    now = sim.now()
    if outcome == "never_listed":
        stamp = now.isoformat().replace("+00:00", "Z")
        return [{"id": str(8_800_000_000 + i), "phone": phone(i), "created_at": stamp} for i in range(WAITS)]
    if outcome == "expired":  # still S on the platform, past its expires_at: no answer will come
        return [
            sim.add_consent(
                oa_id=OA,
                phone=phone(i),
                reply_status="S",
                status="P",
                created_at=now - timedelta(minutes=10),
                expires_at=now - timedelta(minutes=1),
            )
            for i in range(WAITS)
        ]
    if outcome == "failed_send":
        for i in range(WAITS):
            sim.fail_send_to(phone(i), error_code=-213, error_message="not following the OA")
    hook = EtelecomHook()
    return [
        hook.request_consent(oa_id=OA, phone=phone(i), call_type="audio", reason_code="product_service_consulting")
        for i in range(WAITS)
    ]


def run_side(outcome: str, variant: str, shared: bool, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    options: dict[str, Any] = {**PLATFORM_VARIANTS[variant]}
    if outcome == "listing_lag":
        options["listing_lag_s"] = 30.0
    with EtelecomSimulator(consents=200, seed=7, api_key=SECRET_KEY, **options) as sim:
        connection = {"conn_type": "etelecom", "host": sim.base_url, "password": SECRET_KEY}
        monkeypatch.setenv("AIRFLOW_CONN_ETELECOM_DEFAULT", json.dumps(connection))
        consents = consents_for(outcome, sim)
        # Ids never listed end at once; so does the grace of a wait whose created_from came from an answer's
        # clock 15 minutes ahead: its first check looks a day further back and finds the consent.
        past = {"not_found_deadline": datetime.now(timezone.utc) - timedelta(seconds=1)}
        ends_grace = outcome == "never_listed" or variant == "answer_clock_ahead"
        triggers = [
            deferred(
                consent,
                many=i % 2 == 1,
                check=outcome != "never_listed",
                shared_poll=shared,
                **(past if ends_grace else {}),
            )
            for i, consent in enumerate(consents)
        ]
        after_first: Callable[[], None] | None = None

        def reply_all(status: str) -> Callable[[], None]:
            return lambda: [sim.reply(consent["id"], status) for consent in consents] and None

        if outcome in ("P", "N"):
            after_first = reply_all(outcome)
        elif outcome == "NS":
            after_first = lambda: sim.advance(86400 + 60) and None  # noqa: E731
        elif outcome == "wrong_key":
            sim.api_key = "etl-ROTATED-key-0000000077"
        elif outcome == "flapping_5xx":
            sim.script_faults(["503", "500", "502"] * 3)
            after_first = reply_all("P")
        elif outcome == "429_retry_after":
            sim.script_faults([("429", 0.01)] * 4)
            after_first = reply_all("P")
        elif outcome == "listing_lag":

            def listed_then_answered() -> None:
                sim.advance(31)
                reply_all("P")()

            after_first = listed_then_answered
        events = run_together(triggers, after_first)
    return [decided(event, str(consent["id"])) for event, consent in zip(events, consents, strict=True)]


def decided(event: dict[str, Any], consent_id: str) -> tuple[Any, ...]:
    """What a wait decided, without the ids and times that differ between two simulators."""
    decision = event["decision"] or {}
    consent = (decision.get("consents") or {}).get(consent_id) or {}
    marks = tuple(bool(decision.get(key)) for key in ("failed", "unknown", "missing"))
    return (event["status"], event["error_class"], consent.get("reply_status"), consent.get("status"), *marks)


EXPECTED = {
    "P": ("done", None, "P", "P", False, False, False),
    "N": ("done", None, "N", "P", False, False, False),
    "NS": ("done", None, "NS", "P", False, False, False),
    "expired": ("failed", None, "S", "P", True, False, False),
    "failed_send": ("failed", None, "S", "N", True, False, False),
    "never_listed": ("not_found", None, None, None, False, False, True),
    "wrong_key": ("error", "EtelecomAuthError", None, None, False, False, False),
    "flapping_5xx": ("done", None, "P", "P", False, False, False),
    "429_retry_after": ("done", None, "P", "P", False, False, False),
    "listing_lag": ("done", None, "P", "P", False, False, False),
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("outcome", OUTCOMES)
def test_shared_and_lone_waits_decide_alike(outcome: str, variant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    alone = run_side(outcome, variant, shared=False, monkeypatch=monkeypatch)
    shared = run_side(outcome, variant, shared=True, monkeypatch=monkeypatch)
    assert shared == alone
    expected = EXPECTED[outcome]
    if (outcome, variant) == ("listing_lag", "answer_clock_ahead"):  # the grace ended before it was listable
        expected = EXPECTED["never_listed"]
    assert set(alone) == {expected}, (outcome, variant, sorted(set(alone)))
