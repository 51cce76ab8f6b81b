"""The one decision of ``RequestConsentOperator``: return an earlier try's consent, send, wait or fail.

No Airflow here. ``RequestConsent`` is a real, charged message on a person's phone, so a try sends
only when no earlier try of the same task instance can have sent one it cannot account for. The
operator gathers the facts (its record in Airflow 3.3+'s task state store, what the listing shows,
the try number, what is left of the listing-lag grace) and acts on :func:`decide_send`:

=================================  =====================================  =====================
record of this request             the listing shows (:class:`Look`)      outcome
=================================  =====================================  =====================
sent, its consent not ``N``        the consent now, or nothing            ``RETURN_RECORDED``
sent, answered ``N``               the consent, sent after all            ``RETURN_DELIVERED``
sent, answered ``N``               it ``N`` still, or nothing             ``SEND``
sent without a consent, or other   (no look)                              ``SEND``
none, try 1                        (no look)                              ``SEND``
under way, or none on a later try  an earlier try's consent               ``RETURN_LISTED``
under way, or none on a later try  nothing, grace left                    ``WAIT``
under way                          nothing, grace over                    ``FAIL_UNCONFIRMED``
under way, resend_if_unconfirmed   nothing, grace over                    ``SEND_AFTER_GRACE``
none on a later try                nothing, grace over                    ``SEND_AFTER_GRACE``
=================================  =====================================  =====================

An earlier try's consent is, under a record of a send under way, one listed now that was not listed
before that send (``Look.NEW``); without one (before Airflow 3.3, or no record), one created since
the operator's look-back (``Look.LOOK_BACK``). A lookup of a consent answered ``N`` that fails
fails the try (``Look.DELIVERED``): it is never taken for "reached nobody".
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from airflow_provider_etelecom.client.models import Consent, ReplyStatus, SendStatus, consent_time
from airflow_provider_etelecom.exceptions import (
    EtelecomAuthError,
    EtelecomBadRequestError,
    EtelecomConfigError,
    EtelecomError,
    EtelecomNotFoundError,
    EtelecomRateLimitError,
    EtelecomTransientError,
    EtelecomValidationError,
)

__all__ = [
    "Look",
    "SendDecision",
    "SendOutcome",
    "certainly_not_created",
    "decide_send",
    "earliest_sent",
    "newest_pending",
    "sent_record",
    "under_way_record",
]

#: Errors that prove eTelecom created no consent: refused before sending (validation, connection),
#: refused with an answer (401/403, 400/409/412/501, 404, 429/403 ``resource_exhausted``).
_REFUSED = (
    EtelecomConfigError,
    EtelecomValidationError,
    EtelecomAuthError,
    EtelecomBadRequestError,
    EtelecomNotFoundError,
    EtelecomRateLimitError,
)


class RecordState(enum.StrEnum):
    """Where a send stands in the task state store's record (the strings stored)."""

    UNDER_WAY = "under_way"
    """The request may have left: its answer is not recorded (lost, or the try died)."""
    SENT = "sent"
    """eTelecom answered with the consent (``consent``)."""


class Look(enum.StrEnum):
    """What the listing is asked before deciding."""

    RECORDED = "recorded"
    """The recorded consent's current state (a failed lookup returns it as recorded)."""
    DELIVERED = "delivered"
    """Whether a consent answered ``N`` was delivered after all (a failed lookup fails the try)."""
    NEW = "new"
    """A consent of the request listed now that was not listed before the send under way."""
    LOOK_BACK = "look_back"
    """A consent of the request created since the run became due, less the look-back."""


class SendOutcome(enum.StrEnum):
    """What the operator does (see the module's table)."""

    RETURN_RECORDED = "return_recorded"
    RETURN_DELIVERED = "return_delivered"
    RETURN_LISTED = "return_listed"
    SEND = "send"
    WAIT = "wait"
    FAIL_UNCONFIRMED = "fail_unconfirmed"
    SEND_AFTER_GRACE = "send_after_grace"


@dataclass(frozen=True)
class SendDecision:
    """What :func:`decide_send` decided.

    :param outcome: what to do.
    :param consent: the consent to return (the ``RETURN_*`` outcomes).
    :param look: what the listing was asked (``None``: nothing).
    :param grace_left: seconds left of the grace (``WAIT``).
    """

    outcome: SendOutcome
    consent: Consent | None = None
    look: Look | None = None
    grace_left: float = 0.0


def _failed(consent: Mapping[str, Any]) -> bool:
    """Tell whether a consent's send failed (``status`` ``N``): it reached nobody."""
    return consent.get("status") == SendStatus.FAILED.value


def decide_send(
    record: Mapping[str, Any] | None,
    *,
    try_number: int,
    listing: Callable[[Look], Consent | None],
    grace_left: Callable[[], float],
    resend_if_unconfirmed: bool,
) -> SendDecision:
    """Decide whether this try sends ``RequestConsent``, returns an earlier try's consent, waits or fails.

    :param record: this task instance's record for this very request in the task state store
        (Airflow 3.3+), or ``None`` (no store, or no record).
    :param try_number: this try's number (1: the first).
    :param listing: what the listing shows for a :class:`Look` (``None``: nothing); asked at most once.
    :param grace_left: seconds left of the listing-lag grace, asked after the listing.
    :param resend_if_unconfirmed: send after the grace when a send under way stayed unconfirmed.
    """
    state = None if record is None else record.get("state")
    recorded = record.get("consent") if record is not None and state == RecordState.SENT else None
    if isinstance(recorded, Mapping):
        if not _failed(recorded):
            fresh = listing(Look.RECORDED)  # its current state, if the listing shows it already
            consent = cast(Consent, recorded) if fresh is None else fresh
            return SendDecision(SendOutcome.RETURN_RECORDED, consent, Look.RECORDED)
        # Answered N: eTelecom's call to Zalo may have timed out while Zalo delivered.
        listed = listing(Look.DELIVERED)
        if listed is not None and not _failed(listed):
            return SendDecision(SendOutcome.RETURN_DELIVERED, listed, Look.DELIVERED)
        return SendDecision(SendOutcome.SEND)  # it reached nobody
    if (record is not None and state != RecordState.UNDER_WAY) or (record is None and try_number <= 1):
        return SendDecision(SendOutcome.SEND)  # no earlier try can have sent
    look = Look.NEW if record is not None and isinstance(record.get("listed_before"), list) else Look.LOOK_BACK
    listed = listing(look)
    if listed is not None:
        return SendDecision(SendOutcome.RETURN_LISTED, listed, look)
    left = grace_left()
    if left > 0:
        return SendDecision(SendOutcome.WAIT, look=look, grace_left=left)
    if state == RecordState.UNDER_WAY and not resend_if_unconfirmed:
        return SendDecision(SendOutcome.FAIL_UNCONFIRMED, look=look)
    return SendDecision(SendOutcome.SEND_AFTER_GRACE, look=look)


def earliest_sent(consents: Iterable[Consent], *, now: datetime, leave_out: Collection[str] = ()) -> Consent | None:
    """Return the oldest consent whose send did not fail: an earlier try's (``N`` reached nobody).

    :param now: what a consent without ``created_at`` counts as created at.
    :param leave_out: ids that cannot be the earlier try's (listed before its send).
    """
    sent = [c for c in consents if c["id"] not in leave_out and not _failed(c)]
    return min(sent, key=lambda c: (consent_time(c, "created_at") or now, c["id"]), default=None)


def newest_pending(consents: Iterable[Consent], *, now: datetime) -> Consent | None:
    """Return the newest consent waiting for its reply (``S``, sent): the one a 409 refused to repeat."""
    pending = [c for c in consents if c.get("reply_status") == ReplyStatus.WAITING.value and not _failed(c)]
    return max(pending, key=lambda c: (consent_time(c, "created_at") or now, c["id"]), default=None)


def certainly_not_created(error: EtelecomError) -> bool:
    """Tell whether a failed ``RequestConsent`` certainly created no consent (so no message went out)."""
    if isinstance(error, _REFUSED):
        return True
    return isinstance(error, EtelecomTransientError) and not error.reached_server


def under_way_record(
    request: Mapping[str, str], *, try_number: int, since: datetime, listed_before: Iterable[str]
) -> dict[str, Any]:
    """Return the record of a send about to start, with the ids of the request's consents listed before it."""
    return {
        "state": RecordState.UNDER_WAY.value,
        "since": since.isoformat(),
        "try_number": try_number,
        "request": dict(request),
        "listed_before": sorted(listed_before),
    }


def sent_record(record: Mapping[str, Any], consent: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """Return the record of a send once its consent is known (answered, or listed)."""
    return {**record, "state": RecordState.SENT.value, "consent": dict(consent), **extra}
