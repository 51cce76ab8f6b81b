"""The trigger that waits for a customer's reply on the triggerer, and its event format.

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
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_etelecom import exceptions as etelecom_exceptions
from airflow_provider_etelecom.client import Consent, ConsentState, EtelecomClient, classify_consent, mask_phone
from airflow_provider_etelecom.client.validation import validate_int64_id
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
    "ConsentReplyEvent",
    "ConsentReplyTrigger",
    "build_reply_event",
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
    message = event.get("message", "")
    if not isinstance(message, str):
        raise _reject(event, "message is not a string")
    raw_checked = event.get("checked_at")
    try:
        checked_at = datetime.fromisoformat(raw_checked) if isinstance(raw_checked, str) else None
    except ValueError:
        checked_at = None
    if checked_at is None or checked_at.tzinfo is None:
        raise _reject(event, "checked_at is not an aware ISO-8601 time")
    error_class = event.get("error_class")
    if status == "error" and not isinstance(error_class, str):
        raise _reject(event, "an error event needs error_class")
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

    def _hook(self) -> EtelecomHook:
        # max_retries=0: a retry inside the thread would sleep there; the loop waits instead.
        return EtelecomHook(self.etelecom_conn_id, max_retries=0)

    async def _lookup(self, client: EtelecomClient) -> Consent | None:
        return await asyncio.to_thread(
            client.find_consent, self.consent_id, oa_id=self.oa_id, phone=self.phone, max_pages=self.lookup_pages
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Check every ``poke_interval`` seconds and yield exactly one event."""
        event = await self._wait()
        yield TriggerEvent(event)  # type: ignore[no-untyped-call,unused-ignore]

    async def _wait(self) -> dict[str, Any]:
        hook = self._hook()
        what = f"consent {self.consent_id} (OA {self.oa_id}, phone {mask_phone(self.phone)})"
        # Reading the connection and building the client cost about a millisecond of CPU on the
        # loop; a triggerer restart starts every waiting trigger at once, so spread the start-ups
        # (by at most a second) instead of stalling the loop for all of them in one iteration.
        # The sensor checked once on the worker just before deferring, so nothing is late.
        await asyncio.sleep(random.uniform(0, min(self.poke_interval, 1.0)))
        try:
            client = await hook.aget_client()
        except EtelecomError as error:
            return build_reply_event("error", error=error)
        reread = False
        try:
            while True:
                now = _now()
                if now.timestamp() >= self.deadline:
                    return build_reply_event(
                        "timeout",
                        message=f"No final reply for {what} before the sensor's timeout "
                        f"({datetime.fromtimestamp(self.deadline, timezone.utc).isoformat()}).",
                        checked_at=now,
                    )
                wait = self.poke_interval
                try:
                    consent = await self._lookup(client)
                except EtelecomAuthError as error:
                    if reread:
                        return build_reply_event(
                            "error",
                            error=error,
                            message=f"{error.message} (the connection {self.etelecom_conn_id!r} was read again "
                            f"once and its key was still refused)",
                        )
                    log.warning("eTelecom refused the key; reading connection %r again.", self.etelecom_conn_id)
                    reread = True
                    client.close()
                    try:
                        client = await hook.aget_client()
                    except EtelecomError as config_error:
                        return build_reply_event("error", error=config_error)
                    continue
                except EtelecomTransientError as error:
                    log.warning("Checking %s failed (%s); will check again.", what, error.message)
                    if isinstance(error, EtelecomRateLimitError) and error.retry_after:
                        wait = max(wait, error.retry_after)
                except EtelecomError as error:
                    return build_reply_event("error", error=error)
                else:
                    reread = False
                    checked_at = _now()
                    if consent is None:
                        if checked_at.timestamp() >= self.not_found_deadline:
                            return build_reply_event(
                                "not_found",
                                message=f"{what} was not found among the newest {self.lookup_pages * 100} "
                                f"consents for that OA and phone.",
                                checked_at=checked_at,
                            )
                    else:
                        state = classify_consent(consent, now=checked_at)
                        if state is not ConsentState.WAITING:
                            return build_reply_event(state.value, consent=consent, checked_at=checked_at)
                remaining = self.deadline - _now().timestamp()
                await asyncio.sleep(max(0.0, min(wait, remaining)))
        finally:
            client.close()
