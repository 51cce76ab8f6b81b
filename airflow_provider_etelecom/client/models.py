"""The eTelecom data model: enums, the consent record and its field table, and the one status table.

The consent record is declared once, as :class:`Consent` (for type checkers) and
:data:`CONSENT_FIELDS` (for code: each field's name, kind and meaning, in the API's order). The
Parquet schema, the SQL table and the lineage schema facets are derived from :data:`CONSENT_FIELDS`,
each layer mapping a kind to its own types; a test keeps the two declarations equal.

Every place that needs to know whether a consent is still waiting, answered or dead
(the sensor's ``poke``, the trigger, ``execute_complete``, the batched waits) asks
:func:`classify_consent`; nobody re-derives it from raw letters.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, NotRequired, TypedDict

__all__ = [
    "CONSENT_FIELDS",
    "CONSENT_FIELD_NAMES",
    "WAIT_DECISIONS",
    "WAIT_EVENT_STATUSES",
    "ConsentField",
    "FieldKind",
    "SendStatus",
    "WaitStatus",
    "consent_time",
    "parse_api_time",
]


class CallType(str, enum.Enum):
    """What kind of call the customer is asked to accept."""

    AUDIO = "audio"
    VIDEO = "video"
    AUDIO_AND_VIDEO = "audio_and_video"


class ReasonCode(str, enum.Enum):
    """Why the business wants to call (shown to the customer in Zalo)."""

    PRODUCT_SERVICE_CONSULTING = "product_service_consulting"
    ORDER_APPOINTMENT_CONFIRMATION = "order_appointment_confirmation"
    DELIVERY_NOTIFICATION = "delivery_notification"
    FLIGHT_ANNOUNCEMENT = "flight_announcement"
    UPDATE_ORDER = "update_order"


class ReplyStatus(str, enum.Enum):
    """The customer's answer: ``S`` waiting, ``P`` agreed, ``N`` refused, ``NS`` never answered."""

    WAITING = "S"
    AGREED = "P"
    REFUSED = "N"
    NO_REPLY = "NS"


class SendStatus(str, enum.Enum):
    """Whether the request reached Zalo: ``P`` sent, ``N`` failed (see ``error_code``)."""

    SENT = "P"
    FAILED = "N"


CALL_TYPES: frozenset[str] = frozenset(c.value for c in CallType)
REASON_CODES: frozenset[str] = frozenset(r.value for r in ReasonCode)
REPLY_STATUSES: frozenset[str] = frozenset(r.value for r in ReplyStatus)
SEND_STATUSES: frozenset[str] = frozenset(s.value for s in SendStatus)
FINAL_REPLY_STATUSES: frozenset[str] = frozenset({"P", "N", "NS"})
#: Fields a listing may be sorted by: ``created_at`` only (a cursor on ``updated_at``, a value that
#: changes while the listing pages, loses or repeats consents answered meanwhile).
SORT_FIELDS: frozenset[str] = frozenset({"created_at"})


class Consent(TypedDict, total=False):
    """One consent request, exactly as ``ListRequestConsent`` returns it.

    Ids are int64 carried as strings, times RFC 3339 UTC strings. Enum fields may hold values
    this provider does not know (``"unknown"``, ``"Z"``, or a future letter): they are passed
    through untouched. :data:`CONSENT_FIELDS` lists the same fields for code (a test keeps them equal).
    """

    id: str
    shop_id: str
    user_id: str
    oa_id: str
    phone: str
    call_type: str
    reason_code: str
    reply_status: str
    status: str
    delivery_status: str
    delivery_time: str
    is_charged: bool
    error_code: int
    error_message: str
    created_at: str
    updated_at: str
    expires_at: str


FieldKind = Literal["id", "text", "enum", "time", "bool", "int"]
"""What a field holds, which is all an output needs to type it: ``id`` an int64 carried as a
string, ``text`` free text, ``enum`` a code from a documented set (passed through when unknown),
``time`` an RFC 3339 UTC string, ``bool`` and ``int`` JSON's own."""


@dataclass(frozen=True)
class ConsentField:
    """One field of :class:`Consent`: its name, its kind, and what it means (for docs and schema facets)."""

    name: str
    kind: FieldKind
    description: str


#: The fields of :class:`Consent`, in the order of ``ListRequestConsent``'s answer (the column order
#: of every output).
CONSENT_FIELDS: tuple[ConsentField, ...] = (
    ConsentField("id", "id", "consent id (int64 as a string)"),
    ConsentField("shop_id", "id", "shop id (int64 as a string)"),
    ConsentField("user_id", "id", "eTelecom user id (int64 as a string)"),
    ConsentField("oa_id", "id", "Zalo Official Account id (int64 as a string)"),
    ConsentField("phone", "text", "customer phone, 84..."),
    ConsentField("call_type", "enum", "audio, video, audio_and_video"),
    ConsentField("reason_code", "enum", "why the business wants to call"),
    ConsentField("reply_status", "enum", "S waiting, P agreed, N refused, NS no reply"),
    ConsentField("status", "enum", "send status: P sent, N failed"),
    ConsentField("delivery_status", "enum", "unknown, received, seen"),
    ConsentField("delivery_time", "time", "when Zalo delivered the request; null if never"),
    ConsentField("is_charged", "bool", "whether the request was charged"),
    ConsentField("error_code", "int", "eTelecom's error code of a failed send"),
    ConsentField("error_message", "text", "eTelecom's error message of a failed send"),
    ConsentField("created_at", "time", "when the request was created"),
    ConsentField("updated_at", "time", "when it last changed (the customer's answer)"),
    ConsentField("expires_at", "time", "when a waiting request or an agreement expires"),
)
CONSENT_FIELD_NAMES: tuple[str, ...] = tuple(field.name for field in CONSENT_FIELDS)


class Paging(TypedDict, total=False):
    """The paging block of a ``ListRequestConsent`` answer (``limit`` is the effective one)."""

    after: str
    before: str
    limit: int
    next: str
    prev: str
    sort: str


class ConsentPage(TypedDict):
    """One page of a listing: its consents, its paging block, and how many consents the platform sent.

    ``listed`` counts the page as served, before the client dropped consents outside the window
    (the server filter is a second wider on each side): whether a page was full, and so whether
    more may follow, is judged on it, never on ``len(consents)``.
    """

    consents: list[Consent]
    paging: Paging
    listed: NotRequired[int]


class ConsentCheck(TypedDict, total=False):
    """The answer of ``Zalo/CheckConsent``: ``error`` 0 means the customer agreed and it is valid."""

    error: int
    expired_time: str
    message: str


class ConsentState(str, enum.Enum):
    """Where a consent stands, from the point of view of someone waiting for the reply."""

    WAITING = "waiting"
    """Still ``S``: ask again later."""
    ANSWERED = "answered"
    """A final reply: ``P``, ``N`` or ``NS``."""
    NOT_SENT = "not_sent"
    """The request failed to reach the customer (``status`` ``N``): no answer will ever come."""
    EXPIRED = "expired"
    """Still ``S`` but its ``expires_at`` has passed: no answer will come."""
    UNKNOWN = "unknown"
    """A ``reply_status`` this provider does not know: fail closed rather than guess."""


class WaitStatus(enum.StrEnum):
    """Where a wait for replies stands: what a check decides, and what the wait's trigger event says.

    A ``StrEnum`` (unlike the API's enums above): each member is the very string that events, XCom and
    logs carry, so serialising one never needs ``.value``.
    """

    WAITING = "waiting"
    """No decision yet: check again."""
    DONE = "done"
    """Enough consents have left ``S`` (``min_share``)."""
    FAILED = "failed"
    """A reply in ``failure_statuses``, a failed send or an expired request."""
    UNKNOWN = "unknown"
    """A ``reply_status`` this provider does not know: fail closed."""
    NOT_FOUND = "not_found"
    """Ids still not listed after the not-found grace."""
    TIMEOUT = "timeout"
    """(Trigger event only) the sensor's deadline passed first."""
    ERROR = "error"
    """(Trigger event only) a failure that waiting will not cure."""


#: What a check can end a wait with; a trigger event with one of these carries the decision.
WAIT_DECISIONS: frozenset[WaitStatus] = frozenset(
    {WaitStatus.DONE, WaitStatus.FAILED, WaitStatus.UNKNOWN, WaitStatus.NOT_FOUND}
)
#: What the wait's trigger event can say: a decision, the timeout, or an error.
WAIT_EVENT_STATUSES: frozenset[WaitStatus] = WAIT_DECISIONS | {WaitStatus.TIMEOUT, WaitStatus.ERROR}


def parse_api_time(value: str) -> datetime:
    """Parse an RFC 3339 time as the API sends it (``2025-06-14T09:13:31.916Z``) into aware UTC.

    :raises ValueError: when the text is not an RFC 3339 time.
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"time {value!r} has no offset")
    return parsed.astimezone(timezone.utc)


def consent_time(consent: Mapping[str, Any], name: str) -> datetime | None:
    """Return the consent's time field ``name`` as aware UTC, or ``None`` when missing or not a time.

    For decisions that must not crash on a malformed field the platform sent (they treat it as
    unknown); the listing's own window check raises instead.
    """
    value = consent.get(name)
    if isinstance(value, datetime):  # a consent dict built in Python rather than read from the API
        return value.astimezone(timezone.utc) if value.tzinfo is not None else None
    try:
        return parse_api_time(value) if isinstance(value, str) and value else None
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 moved across UTC
        return None


def classify_consent(consent: Consent, *, now: datetime | None = None) -> ConsentState:
    """Classify a consent for someone waiting on the customer's reply.

    The order matters: a final reply wins over everything (the customer answered), then a failed
    send (``status`` ``N``: the platform says nobody was asked), then expiry of a pending request.
    A missing or unparsable ``expires_at`` never expires anything: we invent no state.

    :param consent: the consent as returned by the API.
    :param now: the current time (aware); defaults to the system clock.
    :return: the :class:`ConsentState`.
    """
    reply = consent.get("reply_status")
    if reply in FINAL_REPLY_STATUSES:
        return ConsentState.ANSWERED
    if consent.get("status") == SendStatus.FAILED.value:
        return ConsentState.NOT_SENT
    if reply != ReplyStatus.WAITING.value:
        return ConsentState.UNKNOWN
    expiry = consent_time(consent, "expires_at")
    if expiry is not None and expiry.year > 1 and expiry <= (now or datetime.now(timezone.utc)):
        return ConsentState.EXPIRED
    return ConsentState.WAITING
