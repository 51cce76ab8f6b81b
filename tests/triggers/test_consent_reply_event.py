"""ConsentReplyEventTrigger on every version: the decision, the payload, and Airflow 2's refusal.

``run()`` against the simulator is in ``test_consent_reply_event_run.py`` (Airflow 3 only: the class
cannot be built on Airflow 2, which this file checks).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

from airflow_provider_etelecom.client import Consent
from airflow_provider_etelecom.exceptions import EtelecomConfigError, EtelecomValidationError
from airflow_provider_etelecom.triggers.consent_reply_event import (
    LISTING_LAG_MARGIN_S,
    ConsentReplyEventTrigger,
    WatchState,
    build_consent_reply_event,
    dedup_key,
    watch_step,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def consent(
    consent_id: str, reply: str, created: datetime, *, status: str = "P", expires: datetime | None = None
) -> Consent:
    def iso(value: datetime) -> str:
        return value.isoformat().replace("+00:00", "Z")

    return Consent(
        id=consent_id,
        oa_id="42",
        phone="84912345678",
        reply_status=reply,
        status=status,
        created_at=iso(created),
        updated_at=iso(created + timedelta(minutes=5)),
        expires_at=iso(expires or created + timedelta(hours=24)),
    )


def test_needs_airflow_3() -> None:
    if AIRFLOW_V_3_0_PLUS:
        from airflow.triggers.base import BaseEventTrigger

        assert isinstance(ConsentReplyEventTrigger(oa_id="42"), BaseEventTrigger)
    else:
        with pytest.raises(EtelecomConfigError, match=r"needs Airflow 3.*ConsentRepliesSensor"):
            ConsentReplyEventTrigger(oa_id="42")


@pytest.mark.parametrize(
    ("row", "fires"),
    [
        (consent("1", "P", NOW - timedelta(hours=2)), True),
        (consent("1", "N", NOW - timedelta(hours=2)), True),
        (consent("1", "NS", NOW - timedelta(hours=2)), True),
        (consent("1", "Z", NOW - timedelta(hours=2)), True),  # unknown letter: left S, never lost
        (consent("1", "S", NOW - timedelta(hours=2)), False),
        # still S past expires_at: the NS is on its way, keep listing it
        (consent("1", "S", NOW - timedelta(hours=2), expires=NOW - timedelta(minutes=1)), False),
        (consent("1", "S", NOW - timedelta(hours=2), status="N"), False),  # never sent: no answer comes
    ],
)
def test_watch_step_table(row: Consent, fires: bool) -> None:
    fresh, state = watch_step([row], WatchState(0.0), listed_at=NOW)
    assert [c["id"] for c in fresh] == (["1"] if fires else [])
    created = (NOW - timedelta(hours=2)).timestamp()
    # The span starts at the oldest consent pending, and never after the newest consent listed (the
    # platform's clock) minus the lag margin: here both are the one consent listed.
    assert state.span_from == created - LISTING_LAG_MARGIN_S
    assert state.fired == ({"1": created} if fires else {})  # a fired consent inside the span stays known


def test_watch_step_moves_the_span_by_the_platforms_clock_not_the_workers() -> None:
    """Finding 9: a platform clock an hour behind the worker's still has its next consents in the span."""
    behind = NOW - timedelta(hours=1)
    answered = consent("1", "P", behind - timedelta(minutes=10))
    _, state = watch_step([answered], WatchState(0.0), listed_at=NOW)
    assert state.span_from == (behind - timedelta(minutes=10)).timestamp() - LISTING_LAG_MARGIN_S
    created_next = consent("2", "P", behind - timedelta(minutes=1))  # the platform's now, an hour behind
    fresh, _ = watch_step([created_next], state, listed_at=NOW + timedelta(minutes=1))
    assert state.span_from <= (behind - timedelta(minutes=1)).timestamp() and [c["id"] for c in fresh] == ["2"]
    # An empty listing never moves the span.
    assert watch_step([], state, listed_at=NOW + timedelta(hours=5))[1].span_from == state.span_from


def test_watch_step_fires_once_and_forgets_what_leaves_the_span() -> None:
    pending = consent("1", "S", NOW - timedelta(hours=3))
    answered = consent("2", "P", NOW - timedelta(hours=1))
    fresh, state = watch_step([pending, answered], WatchState(0.0), listed_at=NOW)
    assert [c["id"] for c in fresh] == ["2"]
    assert state.span_from == (NOW - timedelta(hours=3)).timestamp()
    assert set(state.fired) == {"2"}
    fresh, again = watch_step([pending, answered], state, listed_at=NOW + timedelta(minutes=1))
    assert fresh == [] and again == state
    assert WatchState.from_json(state.to_json()) == state
    assert WatchState.from_json({"version": 2}) is None and WatchState.from_json("garbage") is None


def test_payload_carries_the_dedup_key_and_the_phone_only_when_asked() -> None:
    row = consent("7", "P", NOW - timedelta(hours=1))
    payload = build_consent_reply_event(row, include_phone=False, listed_at=NOW)
    assert payload == {
        "version": 1,
        "kind": "consent_reply",
        "dedup_key": f"7:{row['updated_at']}",
        "consent_id": "7",
        "oa_id": "42",
        "reply_status": "P",
        "state": "answered",
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
    assert dedup_key(row) == payload["dedup_key"]
    assert build_consent_reply_event(row, include_phone=True, listed_at=NOW)["phone"] == "84912345678"


def test_bad_arguments_name_the_parameter() -> None:
    if not AIRFLOW_V_3_0_PLUS:  # the refusal comes before any validation
        with pytest.raises(EtelecomConfigError, match="needs Airflow 3"):
            ConsentReplyEventTrigger(oa_id="not-a-number")
        return
    with pytest.raises(EtelecomValidationError, match="oa_id"):
        ConsentReplyEventTrigger(oa_id="not-a-number")
    with pytest.raises(EtelecomValidationError, match="call_type"):
        ConsentReplyEventTrigger(oa_id="42", call_type="fax")
