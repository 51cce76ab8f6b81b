"""The send-once decision (:func:`decide_send`): one table, every path to "never two charged messages".

``RequestConsentOperator`` gathers the facts and acts on the decision; its behaviour against the
simulator and through real Airflow retries is in ``tests/operators/test_request_consent*.py`` and
``tests/attack/test_send_attacks.py``. Here each row gives the facts and asserts what the listing was
asked, in which order with the grace, and the outcome.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_etelecom.client import Consent
from airflow_provider_etelecom.client.send_once import (
    Look,
    SendOutcome,
    certainly_not_created,
    decide_send,
    earliest_sent,
    newest_pending,
    sent_record,
    under_way_record,
)
from airflow_provider_etelecom.exceptions import (
    EtelecomAuthError,
    EtelecomBadRequestError,
    EtelecomConfigError,
    EtelecomError,
    EtelecomMalformedResponseError,
    EtelecomNotFoundError,
    EtelecomRateLimitError,
    EtelecomTransientError,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def consent(
    consent_id: str = "7", status: str = "P", reply: str = "S", created: str = "2026-03-01T11:00:00Z"
) -> Consent:
    return Consent(id=consent_id, status=status, reply_status=reply, created_at=created)


SENT = consent()
NOT_SENT = consent(status="N")
OTHER = consent("8")
#: Records in Airflow 3.3+'s task state store.
SENT_REC = {"state": "sent", "try_number": 1, "consent": SENT}
N_REC = {"state": "sent", "try_number": 1, "consent": NOT_SENT}
UNDER_WAY = {"state": "under_way", "try_number": 1, "listed_before": ["1"]}

RECORDED, DELIVERED, NEW, BACK = Look.RECORDED, Look.DELIVERED, Look.NEW, Look.LOOK_BACK
R = SendOutcome

#: name, record, try, what the listing shows, grace left (s), resend_if_unconfirmed ->
#: what was asked (in order), outcome, the id returned.
TABLE: list[tuple[str, dict[str, Any] | None, int, dict[Look, Consent], float, bool, list[str], R, str | None]] = [
    # The first try, no record: nothing earlier can have sent (Airflow 2.11 and 3.3+ alike).
    ("first try", None, 1, {}, 60, False, [], R.SEND, None),
    # The record names the consent (3.3+): returned, as listed now if the listing shows it.
    ("recorded", SENT_REC, 2, {RECORDED: OTHER}, 0, False, ["recorded"], R.RETURN_RECORDED, "8"),
    ("recorded, not listed", SENT_REC, 2, {}, 0, False, ["recorded"], R.RETURN_RECORDED, "7"),
    ("recorded, try 1", SENT_REC, 1, {}, 0, False, ["recorded"], R.RETURN_RECORDED, "7"),
    # Answered N: sent again only once the listing says it reached nobody.
    ("N, listed sent", N_REC, 2, {DELIVERED: SENT}, 0, False, ["delivered"], R.RETURN_DELIVERED, "7"),
    ("N, listed N", N_REC, 2, {DELIVERED: NOT_SENT}, 0, False, ["delivered"], R.SEND, None),
    ("N, not listed", N_REC, 2, {}, 60, False, ["delivered"], R.SEND, None),
    # A record naming no send under way.
    ("sent without a consent", {"state": "sent"}, 2, {NEW: SENT}, 60, False, [], R.SEND, None),
    ("unknown state", {"state": "paused"}, 2, {NEW: SENT}, 60, False, [], R.SEND, None),
    # A send under way (its answer was lost, 3.3+): the consent not listed before it.
    ("under way, listed", UNDER_WAY, 2, {NEW: SENT}, 60, False, ["new"], R.RETURN_LISTED, "7"),
    ("under way, try 1", UNDER_WAY, 1, {NEW: SENT}, 60, False, ["new"], R.RETURN_LISTED, "7"),
    ("under way, lagging", UNDER_WAY, 2, {}, 60, False, ["new", "grace"], R.WAIT, None),
    ("under way, grace over", UNDER_WAY, 2, {}, 0, False, ["new", "grace"], R.FAIL_UNCONFIRMED, None),
    ("under way, over, resend", UNDER_WAY, 2, {}, -1, True, ["new", "grace"], R.SEND_AFTER_GRACE, None),
    ("under way, no ids", {"state": "under_way"}, 2, {BACK: SENT}, 60, False, ["look_back"], R.RETURN_LISTED, "7"),
    # No record on a later try (Airflow 2.11, 3.0-3.2, or 3.3+ without one): the look-back.
    ("later try, listed", None, 2, {BACK: SENT}, 60, False, ["look_back"], R.RETURN_LISTED, "7"),
    ("later try, lagging", None, 3, {}, 60, False, ["look_back", "grace"], R.WAIT, None),
    ("later try, grace over", None, 2, {}, 0, False, ["look_back", "grace"], R.SEND_AFTER_GRACE, None),
    ("later try, over, resend", None, 2, {}, 0, True, ["look_back", "grace"], R.SEND_AFTER_GRACE, None),
]


@pytest.mark.parametrize(
    ("record", "try_number", "shows", "grace_left", "resend", "asked", "outcome", "returned"),
    [pytest.param(*row[1:], id=row[0]) for row in TABLE],
)
def test_decide_send(
    record: dict[str, Any] | None,
    try_number: int,
    shows: dict[Look, Consent],
    grace_left: float,
    resend: bool,
    asked: list[str],
    outcome: SendOutcome,
    returned: str | None,
) -> None:
    calls: list[str] = []

    def listing(look: Look) -> Consent | None:
        calls.append(str(look))
        return shows.get(look)

    def grace() -> float:
        calls.append("grace")
        return grace_left

    decision = decide_send(
        record, try_number=try_number, listing=listing, grace_left=grace, resend_if_unconfirmed=resend
    )
    assert (calls, decision.outcome) == (asked, outcome)
    assert (decision.consent or {}).get("id") == returned
    assert (decision.consent is None) == (outcome not in {R.RETURN_RECORDED, R.RETURN_DELIVERED, R.RETURN_LISTED})
    if outcome is R.WAIT:
        assert decision.grace_left == grace_left


def test_the_earlier_tries_consent_is_the_oldest_that_reached_someone() -> None:
    listed = [
        consent("3", created="2026-03-01T11:30:00Z"),
        consent("2", status="N", created="2026-03-01T10:00:00Z"),  # reached nobody
        consent("1", created="2026-03-01T09:00:00Z"),  # listed before the send
        consent("4", created=""),  # no time: counts as now
        consent("5", created="2026-03-01T11:30:00Z"),  # a tie: the smaller id first
    ]
    assert (earliest_sent(listed, now=NOW) or {}).get("id") == "1"
    assert (earliest_sent(listed, now=NOW, leave_out={"1"}) or {}).get("id") == "3"
    assert (earliest_sent(listed[3:4], now=NOW) or {}).get("id") == "4"
    assert earliest_sent(listed[1:2], now=NOW) is None and earliest_sent([], now=NOW) is None


def test_after_a_409_the_newest_pending_consent_sent() -> None:
    listed = [
        consent("1", created="2026-03-01T09:00:00Z"),
        consent("2", reply="P", created="2026-03-01T11:00:00Z"),  # answered: not pending
        consent("3", status="N", created="2026-03-01T11:30:00Z"),  # reached nobody
        consent("4", created="2026-03-01T10:00:00Z"),
    ]
    assert (newest_pending(listed, now=NOW) or {}).get("id") == "4"
    assert newest_pending(listed[1:3], now=NOW) is None


@pytest.mark.parametrize(
    ("error", "not_created"),
    [
        (EtelecomConfigError("no connection"), True),
        (EtelecomAuthError("refused key"), True),
        (EtelecomBadRequestError("409 already_exists", status=409), True),
        (EtelecomNotFoundError("bad route"), True),
        (EtelecomRateLimitError("429", retry_after=1.0), True),  # an answer: nothing was created
        (EtelecomTransientError("502 after the send"), False),  # may come after the consent was made
        (EtelecomMalformedResponseError("a zero-value answer"), False),
        (EtelecomError("anything else"), False),
    ],
)
def test_certainly_not_created(error: EtelecomError, not_created: bool) -> None:
    assert certainly_not_created(error) is not_created
    if isinstance(error, EtelecomTransientError) and not isinstance(error, EtelecomRateLimitError):
        error.reached_server = False  # refused connection, connect timeout: it never left
        assert certainly_not_created(error)


def test_the_records_are_the_strings_the_store_keeps() -> None:
    request = {"oa_id": "1", "phone": "84912000444", "call_type": "audio", "reason_code": "update_order"}
    record = under_way_record(request, try_number=2, since=NOW, listed_before=["9", "10"])
    assert record == {
        "state": "under_way",
        "since": NOW.isoformat(),
        "try_number": 2,
        "request": request,
        "listed_before": ["10", "9"],
    }
    sent = sent_record(record, SENT, conflict=True)
    assert sent == {**record, "state": "sent", "consent": dict(SENT), "conflict": True}
    assert type(sent["state"]) is str  # the store may serialise it: a plain string
