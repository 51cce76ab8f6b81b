"""The triggers that wait for customers' replies on the triggerer, and their event formats.

:class:`ConsentReplyTrigger` waits for one consent; :class:`ConsentRepliesTrigger` for many, with
one listing per check (its own event format: :func:`build_replies_event`,
:func:`parse_replies_event`). Both run the same polling loop. What follows is the single trigger's.

Events are built by :func:`build_reply_event` and checked by :func:`parse_reply_event`, and
nothing else makes or reads them: the sensor's ``execute_complete`` trusts only what
:func:`parse_reply_event` returns, so a malformed or unknown event fails closed.

Event format, version 2 (:data:`EVENT_VERSION`)::

    {"version": 2,
     "status": "answered" | "not_sent" | "expired" | "unknown" | "not_found" | "timeout" | "error",
     "consent": {...the consent as the API returned it...} | None,
     "message": "what happened, for the log",
     "checked_at": "2026-01-31T10:00:00+00:00",   # when the trigger decided (aware ISO-8601)
     "error_class": "EtelecomAuthError" | ... | None}   # only for "error"

``answered``/``not_sent``/``expired``/``unknown`` carry the consent and mirror
:class:`~airflow_provider_etelecom.client.models.ConsentState`; ``not_found`` says the id was not
found before the not-found deadline; ``timeout`` says the sensor's deadline passed; ``error`` is a
failure that waiting will not cure (authentication after one re-read of the connection, a
request the platform refuses).

Version 1, still accepted so that a rolling upgrade does not fail sensors already waiting, is
the simpler shape ``{"status": "done", "consent": {...}}`` | ``{"status": "timeout" | "error",
"message": str}`` with no ``version`` key.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_etelecom import exceptions as etelecom_exceptions
from airflow_provider_etelecom.client import Consent, ConsentState, EtelecomClient, classify_consent, mask_phone
from airflow_provider_etelecom.client.validation import ConsentQuery, validate_int64_id
from airflow_provider_etelecom.exceptions import (
    EtelecomAuthError,
    EtelecomError,
    EtelecomRateLimitError,
    EtelecomTransientError,
)
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook

__all__ = [
    "EVENT_STATUSES",
    "EVENT_VERSION",
    "REPLIES_EVENT_VERSION",
    "ConsentRepliesEvent",
    "ConsentRepliesTrigger",
    "ConsentReplyEvent",
    "ConsentReplyTrigger",
    "RepliesDecision",
    "build_replies_event",
    "build_reply_event",
    "decide_replies",
    "find_consents",
    "parse_replies_event",
    "parse_reply_event",
]

log = logging.getLogger(__name__)

#: The version of the events this trigger emits; :func:`parse_reply_event` also reads version 1.
EVENT_VERSION = 2
CONSENT_STATUSES = frozenset(
    {ConsentState.ANSWERED.value, ConsentState.NOT_SENT.value, ConsentState.EXPIRED.value, ConsentState.UNKNOWN.value}
)
EVENT_STATUSES = frozenset({*CONSENT_STATUSES, "not_found", "timeout", "error"})
#: Error classes an ``error`` event may name; anything else is read as :class:`EtelecomError`.
ERROR_CLASSES: dict[str, type[EtelecomError]] = {
    name: getattr(etelecom_exceptions, name)
    for name in etelecom_exceptions.__all__
    if name not in ("EtelecomValidationError", "EtelecomConsentOutcomeError", "EtelecomRateLimitError")
}


@dataclass(frozen=True)
class ConsentReplyEvent:
    """A validated trigger event (see the module docstring for the wire format).

    :param status: one of :data:`EVENT_STATUSES`.
    :param consent: the consent, for the statuses that carry one.
    :param message: a human-readable account of what happened.
    :param checked_at: when the trigger decided (aware UTC); ``None`` for version 1 events.
    :param error_class: for ``error``: the :mod:`~airflow_provider_etelecom.exceptions` class name.
    :param version: the wire version the event came in.
    """

    status: str
    consent: Consent | None
    message: str
    checked_at: datetime | None
    error_class: str | None
    version: int


def _now() -> datetime:
    return datetime.now(timezone.utc)


def build_reply_event(
    status: str,
    *,
    consent: Consent | None = None,
    message: str = "",
    error: EtelecomError | None = None,
    checked_at: datetime | None = None,
) -> dict[str, Any]:
    """Build the one event shape the trigger emits (version :data:`EVENT_VERSION`).

    :param status: one of :data:`EVENT_STATUSES`.
    :param consent: the consent, required for the consent statuses, ``None`` otherwise.
    :param message: what happened, for the log.
    :param error: for ``error``: the exception, whose class name and message travel in the event.
    :param checked_at: when the decision was taken (default: now).
    :raises ValueError: for an unknown status or a consent missing where one is required.
    """
    if status not in EVENT_STATUSES:
        raise ValueError(f"unknown consent reply event status {status!r}")
    if (status in CONSENT_STATUSES) != (consent is not None):
        raise ValueError(f"event status {status!r} {'needs' if status in CONSENT_STATUSES else 'takes no'} consent")
    return {
        "version": EVENT_VERSION,
        "status": status,
        "consent": dict(consent) if consent is not None else None,
        "message": message or (error.message if error is not None else ""),
        "checked_at": (checked_at or _now()).isoformat(),
        "error_class": type(error).__name__ if error is not None else None,
    }


def _reject(event: object, why: str) -> EtelecomError:
    shown = repr(event)
    return EtelecomError(
        f"The ConsentReplyTrigger event is not valid ({why}); failing closed instead of guessing the "
        f"customer's answer. Event: {shown[:300]}. Clear the task to wait again."
    )


def _event_common(
    event: Mapping[str, Any], status: str, reject: Callable[[object, str], EtelecomError]
) -> tuple[str, datetime, str | None]:
    """Validate the fields both trigger events share: ``message``, ``checked_at``, ``error_class``."""
    message = event.get("message", "")
    if not isinstance(message, str):
        raise reject(event, "message is not a string")
    raw_checked = event.get("checked_at")
    try:
        checked_at = datetime.fromisoformat(raw_checked) if isinstance(raw_checked, str) else None
    except ValueError:
        checked_at = None
    if checked_at is None or checked_at.tzinfo is None:
        raise reject(event, "checked_at is not an aware ISO-8601 time")
    error_class = event.get("error_class")
    if status == "error" and not isinstance(error_class, str):
        raise reject(event, "an error event needs error_class")
    return message, checked_at, error_class


def parse_reply_event(event: object) -> ConsentReplyEvent:
    """Validate a trigger event (version 2, or the previous version 1) and return it.

    :raises EtelecomError: for anything that is not a well-formed event (fail closed).
    """
    if not isinstance(event, Mapping):
        raise _reject(event, "not a mapping")
    version = event.get("version", 1)
    if version == 1 and "version" not in event:
        return _parse_v1(event)
    if version != EVENT_VERSION or isinstance(version, bool):
        raise _reject(event, f"unsupported version {version!r}; this provider reads versions 1 and {EVENT_VERSION}")
    status = event.get("status")
    if status not in EVENT_STATUSES:
        raise _reject(event, f"unknown status {status!r}")
    consent = event.get("consent")
    if status in CONSENT_STATUSES:
        if not isinstance(consent, Mapping) or not isinstance(consent.get("id"), str):
            raise _reject(event, f"status {status!r} needs a consent with an id")
    elif consent is not None:
        raise _reject(event, f"status {status!r} carries no consent")
    message, checked_at, error_class = _event_common(event, status, _reject)
    return ConsentReplyEvent(
        status=status,
        consent=Consent(**consent) if consent is not None else None,  # type: ignore[typeddict-item]
        message=message,
        checked_at=checked_at.astimezone(timezone.utc),
        error_class=error_class if status == "error" else None,
        version=EVENT_VERSION,
    )


def _parse_v1(event: Mapping[str, Any]) -> ConsentReplyEvent:
    status = event.get("status")
    message = event.get("message", "")
    if not isinstance(message, str):
        raise _reject(event, "message is not a string")
    if status == "done":
        consent = event.get("consent")
        if not isinstance(consent, Mapping) or not isinstance(consent.get("id"), str):
            raise _reject(event, "a version 1 'done' event needs a consent with an id")
        typed = Consent(**consent)  # type: ignore[typeddict-item]
        # Version 1 did not say what it saw: classify now, with the one status table.
        return ConsentReplyEvent(classify_consent(typed).value, typed, message, None, None, 1)
    if status in ("timeout", "error"):
        return ConsentReplyEvent(status, None, message, None, "EtelecomError" if status == "error" else None, 1)
    raise _reject(event, f"unknown version 1 status {status!r}")


def _as_epoch(name: str, value: datetime | str | float) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name} must be an aware datetime")
        return value.timestamp()
    if isinstance(value, str):
        return _as_epoch(name, datetime.fromisoformat(value))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"{name} must be an aware datetime, an ISO-8601 string or epoch seconds, got {value!r}")


def _trigger_hook(etelecom_conn_id: str) -> EtelecomHook:
    """The hook a trigger reads its connection through.

    ``max_retries=0``: a retry inside the worker thread would sleep there; the trigger's loop
    waits with ``asyncio.sleep`` and checks again instead.
    """
    return EtelecomHook(etelecom_conn_id, max_retries=0)


class ConsentReplyTrigger(BaseTrigger):
    """Poll eTelecom on the triggerer until a consent leaves ``S``, then fire one event.

    The HTTP call runs in a worker thread (``asyncio.to_thread``) with the client's own retries
    turned off, so no thread ever sleeps: every wait, the backoff after transient errors
    included, is an ``asyncio.sleep`` on the loop. The connection is read asynchronously
    (:meth:`EtelecomHook.aget_client`), once at start and once more after an authentication
    error, to pick up a rotated key. The trigger keeps its own absolute ``deadline`` (the
    sensor's timeout) rather than relying on Airflow to cancel it.

    :param consent_id: the consent's id.
    :param phone: the customer's phone (the lookup lists ``oa_id`` + ``phone``).
    :param oa_id: the Official Account id.
    :param etelecom_conn_id: the eTelecom connection.
    :param poke_interval: seconds between checks (also the wait after a transient error).
    :param deadline: when to give up with a ``timeout`` event (aware datetime, ISO-8601 or epoch s).
    :param not_found_deadline: when a consent still not found ends with ``not_found``.
    :param lookup_pages: pages of the ``oa_id`` + ``phone`` listing scanned per check.
    """

    def __init__(
        self,
        *,
        consent_id: str,
        phone: str,
        oa_id: str,
        etelecom_conn_id: str = EtelecomHook.default_conn_name,
        poke_interval: float = 60.0,
        deadline: datetime | str | float,
        not_found_deadline: datetime | str | float,
        lookup_pages: int = 1,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call,unused-ignore]
        self.consent_id = validate_int64_id("consent_id", consent_id)
        self.phone = str(phone)
        self.oa_id = validate_int64_id("oa_id", oa_id)
        self.etelecom_conn_id = etelecom_conn_id
        self.poke_interval = float(poke_interval)
        self.deadline = _as_epoch("deadline", deadline)
        self.not_found_deadline = _as_epoch("not_found_deadline", not_found_deadline)
        self.lookup_pages = int(lookup_pages)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and JSON-safe keyword arguments (never the key)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "consent_id": self.consent_id,
                "phone": self.phone,
                "oa_id": self.oa_id,
                "etelecom_conn_id": self.etelecom_conn_id,
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
                "not_found_deadline": self.not_found_deadline,
                "lookup_pages": self.lookup_pages,
            },
        )

    async def _lookup(self, client: EtelecomClient) -> Consent | None:
        return await asyncio.to_thread(
            client.find_consent, self.consent_id, oa_id=self.oa_id, phone=self.phone, max_pages=self.lookup_pages
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Check every ``poke_interval`` seconds and yield exactly one event."""
        event = await self._wait()
        yield TriggerEvent(event)  # type: ignore[no-untyped-call,unused-ignore]

    async def _wait(self) -> dict[str, Any]:
        what = f"consent {self.consent_id} (OA {self.oa_id}, phone {mask_phone(self.phone)})"

        async def check(client: EtelecomClient, checked_at_now: Callable[[], datetime]) -> dict[str, Any] | None:
            consent = await self._lookup(client)
            checked_at = checked_at_now()
            if consent is None:
                if checked_at.timestamp() >= self.not_found_deadline:
                    return build_reply_event(
                        "not_found",
                        message=f"{what} was not found among the newest {self.lookup_pages * 100} "
                        f"consents for that OA and phone.",
                        checked_at=checked_at,
                    )
                return None
            state = classify_consent(consent, now=checked_at)
            if state is not ConsentState.WAITING:
                return build_reply_event(state.value, consent=consent, checked_at=checked_at)
            return None

        return await _poll(
            hook=_trigger_hook(self.etelecom_conn_id),
            etelecom_conn_id=self.etelecom_conn_id,
            poke_interval=self.poke_interval,
            deadline=self.deadline,
            what=what,
            check=check,
            timeout_event=lambda now, message: build_reply_event("timeout", message=message, checked_at=now),
            error_event=lambda error, message: build_reply_event("error", error=error, message=message),
        )


async def _poll(
    *,
    hook: EtelecomHook,
    etelecom_conn_id: str,
    poke_interval: float,
    deadline: float,
    what: str,
    check: Callable[[EtelecomClient, Callable[[], datetime]], Awaitable[dict[str, Any] | None]],
    timeout_event: Callable[[datetime, str], dict[str, Any]],
    error_event: Callable[[EtelecomError, str], dict[str, Any]],
) -> dict[str, Any]:
    """Run ``check`` every ``poke_interval`` seconds until it returns an event; shared by both triggers.

    ``check`` gets the client and the clock and returns the event to fire, or ``None`` to check
    again. Transient errors wait (at least ``Retry-After``) and check again; an authentication
    error reads the connection once more; any other error, and the deadline, end the wait.
    """
    # Reading the connection and building the client cost about a millisecond of CPU on the
    # loop; a triggerer restart starts every waiting trigger at once, so spread the start-ups
    # (by at most a second) instead of stalling the loop for all of them in one iteration.
    # The sensor checked once on the worker just before deferring, so nothing is late.
    await asyncio.sleep(random.uniform(0, min(poke_interval, 1.0)))
    try:
        client = await hook.aget_client()
    except EtelecomError as error:
        return error_event(error, "")
    reread = False
    try:
        while True:
            now = _now()
            if now.timestamp() >= deadline:
                return timeout_event(
                    now,
                    f"No final reply for {what} before the sensor's timeout "
                    f"({datetime.fromtimestamp(deadline, timezone.utc).isoformat()}).",
                )
            wait = poke_interval
            try:
                event = await check(client, _now)
            except EtelecomAuthError as error:
                if reread:
                    return error_event(
                        error,
                        f"{error.message} (the connection {etelecom_conn_id!r} was read again "
                        f"once and its key was still refused)",
                    )
                log.warning("eTelecom refused the key; reading connection %r again.", etelecom_conn_id)
                reread = True
                client.close()
                try:
                    client = await hook.aget_client()
                except EtelecomError as config_error:
                    return error_event(config_error, "")
                continue
            except EtelecomTransientError as error:
                log.warning("Checking %s failed (%s); will check again.", what, error.message)
                if isinstance(error, EtelecomRateLimitError) and error.retry_after:
                    wait = max(wait, error.retry_after)
            except EtelecomError as error:
                return error_event(error, "")
            else:
                reread = False
                if event is not None:
                    return event
            remaining = deadline - _now().timestamp()
            await asyncio.sleep(max(0.0, min(wait, remaining)))
    finally:
        client.close()


# -- many consents: one listing per check ---------------------------------------------------------

#: The version of the events :class:`ConsentRepliesTrigger` emits (its own format, see below).
REPLIES_EVENT_VERSION = 1
#: What a batched wait can end with. ``done``: enough consents are final; ``failed``: at least one
#: consent ended in a failing outcome (a reply in ``failure_statuses``, a failed send, an expiry);
#: ``unknown``: a consent has a ``reply_status`` this provider does not know (fail closed);
#: ``not_found``: ids still unlisted after the grace period.
REPLIES_DECISIONS = frozenset({"done", "failed", "unknown", "not_found"})
REPLIES_EVENT_STATUSES = frozenset({*REPLIES_DECISIONS, "timeout", "error"})
#: Consents created this long before the earliest wanted one are still listed (clock skew).
CREATED_FROM_MARGIN_S = 300.0


@dataclass(frozen=True)
class RepliesDecision:
    """Where a batched wait stands after one check: the one outcome function's answer.

    :param status: ``waiting`` or one of :data:`REPLIES_DECISIONS`.
    :param final: how many wanted consents have left ``S`` (any state but ``waiting``).
    :param wanted: how many consents are waited for.
    :param failed: ids whose outcome fails the task (failure status, not sent, expired).
    :param unknown: ids with an unknown ``reply_status``.
    :param missing: ids not listed.
    """

    status: str
    final: int
    wanted: int
    failed: tuple[str, ...]
    unknown: tuple[str, ...]
    missing: tuple[str, ...]


def decide_replies(
    consent_ids: Iterable[str],
    consents: Mapping[str, Consent],
    *,
    min_share: float,
    failure_statuses: Iterable[str],
    now: datetime,
    not_found_expired: bool,
) -> RepliesDecision:
    """Decide a batched wait from the latest state of its consents, with the one status table.

    The order is the single sensor's: an unknown ``reply_status`` fails closed first; then any
    failing outcome; then ids never listed (waited for until ``not_found_expired``); then
    success once ``final / wanted >= min_share``. A consent that failed to send or expired has
    left ``S`` but always fails, as it does for :class:`ConsentReplyTrigger`'s sensor.

    :param consent_ids: the wanted ids, in input order.
    :param consents: the latest state of the wanted consents found so far, by id.
    :param min_share: the share of final consents that ends the wait (0 < share <= 1).
    :param failure_statuses: final replies that fail the task.
    :param now: the time to classify at (expiry).
    :param not_found_expired: whether the not-found grace period has passed.
    """
    wanted = list(dict.fromkeys(consent_ids))
    failing = frozenset(failure_statuses)
    final, failed, unknown, missing = 0, [], [], []
    for consent_id in wanted:
        consent = consents.get(consent_id)
        if consent is None:
            missing.append(consent_id)
            continue
        state = classify_consent(consent, now=now)
        if state is ConsentState.WAITING:
            continue
        final += 1
        if state is ConsentState.UNKNOWN:
            unknown.append(consent_id)
        elif state is not ConsentState.ANSWERED or consent.get("reply_status") in failing:
            failed.append(consent_id)
    if unknown:
        status = "unknown"
    elif failed:
        status = "failed"
    elif missing:
        status = "not_found" if not_found_expired else "waiting"
    elif final >= min_share * len(wanted) - 1e-9:
        status = "done"
    else:
        status = "waiting"
    return RepliesDecision(status, final, len(wanted), tuple(failed), tuple(unknown), tuple(missing))


def find_consents(
    client: EtelecomClient, query: ConsentQuery, consent_ids: Iterable[str]
) -> tuple[dict[str, Consent], int]:
    """List ``query`` page by page and keep the wanted consents; stop once every id was seen.

    One ``ListRequestConsent`` request per page (the query's ``max_pages`` bounds them). This is
    the check of :class:`ConsentRepliesTrigger` and of the batched sensor's ``poke``.

    :return: the wanted consents found, by id, and the number of pages read.
    """
    wanted = set(consent_ids)
    found: dict[str, Consent] = {}
    pages = 0
    for page in client.iter_consent_pages(query):
        pages += 1
        for consent in page["consents"]:
            consent_id = consent.get("id")
            if consent_id in wanted:
                found[consent_id] = consent
        if len(found) == len(wanted):
            break
    return found, pages


def replies_query(
    client: EtelecomClient,
    *,
    oa_id: str | None,
    phone: str | None,
    created_from: datetime | None,
    max_pages: int | None,
) -> ConsentQuery:
    """Build the one listing a batched check makes: narrowed by OA, phone and ``created_from``.

    With a lower bound the listing runs oldest first from it, so the wanted consents (created
    just after it) come first and the paging stops before the consents created later; without
    one it runs newest first, where fresh requests are.
    """
    return client.query(
        oa_id=oa_id,
        phone=phone,
        date_from=created_from,
        sort="created_at" if created_from is not None else None,
        page_size=100,
        max_pages=max_pages,
    )


def build_replies_event(
    status: str,
    *,
    consents: Mapping[str, Consent] | None = None,
    missing: Iterable[str] = (),
    message: str = "",
    error: EtelecomError | None = None,
    checked_at: datetime | None = None,
) -> dict[str, Any]:
    """Build the one event shape :class:`ConsentRepliesTrigger` emits (version :data:`REPLIES_EVENT_VERSION`).

    ``{"version": 1, "kind": "consent_replies", "status": ..., "consents": {id: consent},
    "missing": [id, ...], "message": str, "checked_at": ISO-8601, "error_class": str | None}``.
    ``consents`` holds the latest state of every wanted consent found at ``checked_at``, so the
    sensor decides again from it; it is as large as the XCom the sensor pushes.

    :raises ValueError: for an unknown status.
    """
    if status not in REPLIES_EVENT_STATUSES:
        raise ValueError(f"unknown consent replies event status {status!r}")
    return {
        "version": REPLIES_EVENT_VERSION,
        "kind": "consent_replies",
        "status": status,
        "consents": {key: dict(value) for key, value in (consents or {}).items()},
        "missing": list(missing),
        "message": message or (error.message if error is not None else ""),
        "checked_at": (checked_at or _now()).isoformat(),
        "error_class": type(error).__name__ if error is not None else None,
    }


@dataclass(frozen=True)
class ConsentRepliesEvent:
    """A validated :class:`ConsentRepliesTrigger` event (see :func:`build_replies_event`)."""

    status: str
    consents: dict[str, Consent]
    missing: tuple[str, ...]
    message: str
    checked_at: datetime
    error_class: str | None


def _reject_replies(event: object, why: str) -> EtelecomError:
    return EtelecomError(
        f"The ConsentRepliesTrigger event is not valid ({why}); failing closed instead of guessing the "
        f"customers' answers. Event: {repr(event)[:300]}. Clear the task to wait again."
    )


def parse_replies_event(event: object) -> ConsentRepliesEvent:
    """Validate a :class:`ConsentRepliesTrigger` event and return it.

    :raises EtelecomError: for anything that is not a well-formed version 1 event (fail closed).
    """
    if not isinstance(event, Mapping):
        raise _reject_replies(event, "not a mapping")
    if event.get("kind") != "consent_replies":
        raise _reject_replies(event, f"kind {event.get('kind')!r} is not 'consent_replies'")
    version = event.get("version")
    if version != REPLIES_EVENT_VERSION or isinstance(version, bool):
        raise _reject_replies(event, f"unsupported version {version!r}; this provider reads {REPLIES_EVENT_VERSION}")
    status = event.get("status")
    if status not in REPLIES_EVENT_STATUSES:
        raise _reject_replies(event, f"unknown status {status!r}")
    consents = event.get("consents")
    if not isinstance(consents, Mapping) or not all(
        isinstance(key, str) and isinstance(value, Mapping) and value.get("id") == key
        for key, value in consents.items()
    ):
        raise _reject_replies(event, "consents is not a mapping of id to a consent with that id")
    missing = event.get("missing")
    if not isinstance(missing, list) or not all(isinstance(item, str) for item in missing):
        raise _reject_replies(event, "missing is not a list of ids")
    message, checked_at, error_class = _event_common(event, status, _reject_replies)
    return ConsentRepliesEvent(
        status=status,
        consents={key: Consent(**value) for key, value in consents.items()},  # type: ignore[typeddict-item]
        missing=tuple(missing),
        message=message,
        checked_at=checked_at.astimezone(timezone.utc),
        error_class=error_class if status == "error" else None,
    )


class ConsentRepliesTrigger(BaseTrigger):
    """Poll eTelecom on the triggerer until a batch of consents is decided, then fire one event.

    Each check is one listing (:func:`replies_query`, :func:`find_consents`): pages of 100 of the
    consents of ``oa_id`` / ``phone`` created since ``created_from``, stopping once every wanted id
    was seen. The decision is :func:`decide_replies`, the same function the sensor's ``poke`` and
    ``execute_complete`` use. The waiting machinery (worker thread per listing, client retries off,
    connection read with :meth:`EtelecomHook.aget_client` and re-read once on an authentication
    error, jittered start, own ``deadline``) is :class:`ConsentReplyTrigger`'s.

    :param consent_ids: the wanted ids.
    :param oa_id: narrow the listing to this Official Account (optional).
    :param phone: narrow the listing to this phone (optional).
    :param created_from: list only consents created at or after this time (aware datetime,
        ISO-8601 or epoch seconds; optional).
    :param etelecom_conn_id: the eTelecom connection.
    :param min_share: the share of final consents that ends the wait.
    :param failure_statuses: final replies that fail the wait.
    :param poke_interval: seconds between checks.
    :param deadline: when to give up with a ``timeout`` event.
    :param not_found_deadline: when ids still unlisted end the wait with ``not_found``.
    :param max_pages_per_check: bound on the pages one check reads (``None``: until all are seen).
    """

    def __init__(
        self,
        *,
        consent_ids: Iterable[str],
        oa_id: str | None = None,
        phone: str | None = None,
        created_from: datetime | str | float | None = None,
        etelecom_conn_id: str = EtelecomHook.default_conn_name,
        min_share: float = 1.0,
        failure_statuses: Iterable[str] = (),
        poke_interval: float = 60.0,
        deadline: datetime | str | float,
        not_found_deadline: datetime | str | float,
        max_pages_per_check: int | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call,unused-ignore]
        self.consent_ids = [validate_int64_id("consent_ids", consent_id) for consent_id in consent_ids]
        self.oa_id = None if oa_id is None else validate_int64_id("oa_id", oa_id)
        self.phone = None if phone is None else str(phone)
        self.created_from = None if created_from is None else _as_epoch("created_from", created_from)
        self.etelecom_conn_id = etelecom_conn_id
        self.min_share = float(min_share)
        self.failure_statuses = sorted(set(failure_statuses))
        self.poke_interval = float(poke_interval)
        self.deadline = _as_epoch("deadline", deadline)
        self.not_found_deadline = _as_epoch("not_found_deadline", not_found_deadline)
        self.max_pages_per_check = None if max_pages_per_check is None else int(max_pages_per_check)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and JSON-safe keyword arguments (never the key)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "consent_ids": list(self.consent_ids),
                "oa_id": self.oa_id,
                "phone": self.phone,
                "created_from": self.created_from,
                "etelecom_conn_id": self.etelecom_conn_id,
                "min_share": self.min_share,
                "failure_statuses": list(self.failure_statuses),
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
                "not_found_deadline": self.not_found_deadline,
                "max_pages_per_check": self.max_pages_per_check,
            },
        )

    async def _lookup(self, client: EtelecomClient) -> dict[str, Consent]:
        created_from = None if self.created_from is None else datetime.fromtimestamp(self.created_from, timezone.utc)

        def listing() -> dict[str, Consent]:
            query = replies_query(
                client,
                oa_id=self.oa_id,
                phone=self.phone,
                created_from=created_from,
                max_pages=self.max_pages_per_check,
            )
            return find_consents(client, query, self.consent_ids)[0]

        return await asyncio.to_thread(listing)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Check every ``poke_interval`` seconds and yield exactly one event."""
        what = f"{len(self.consent_ids)} consents"

        async def check(client: EtelecomClient, clock: Callable[[], datetime]) -> dict[str, Any] | None:
            found = await self._lookup(client)
            checked_at = clock()
            decision = decide_replies(
                self.consent_ids,
                found,
                min_share=self.min_share,
                failure_statuses=self.failure_statuses,
                now=checked_at,
                not_found_expired=checked_at.timestamp() >= self.not_found_deadline,
            )
            log.info("%s: %d of %d final, %d not listed.", what, decision.final, decision.wanted, len(decision.missing))
            if decision.status == "waiting":
                return None
            return build_replies_event(decision.status, consents=found, missing=decision.missing, checked_at=checked_at)

        event = await _poll(
            hook=_trigger_hook(self.etelecom_conn_id),
            etelecom_conn_id=self.etelecom_conn_id,
            poke_interval=self.poke_interval,
            deadline=self.deadline,
            what=what,
            check=check,
            timeout_event=lambda now, message: build_replies_event("timeout", message=message, checked_at=now),
            error_event=lambda error, message: build_replies_event("error", error=error, message=message),
        )
        yield TriggerEvent(event)  # type: ignore[no-untyped-call,unused-ignore]
