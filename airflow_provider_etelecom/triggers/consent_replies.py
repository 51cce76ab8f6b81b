"""The trigger that waits for customers' replies on the triggerer, and its one event format.

:class:`ConsentRepliesTrigger` runs :meth:`~airflow_provider_etelecom.client.replies.ReplyWait.check`
(the decision poke and reschedule mode use too) every ``poke_interval`` seconds and fires one event,
built by :func:`build_event` and read back, once, by :func:`parse_event` (version
:data:`WAIT_EVENT_VERSION`; statuses from the one table,
:class:`~airflow_provider_etelecom.client.models.WaitStatus`)::

    {"version": 1,
     "status": "done" | "failed" | "unknown" | "not_found" | "timeout" | "error",
     "decision": {...Decision fields...} | None,   # for the four decisions
     "message": "what happened, for the log",
     "error_class": "EtelecomAuthError" | ... | None}   # for "error"

``timeout`` says the sensor's deadline passed; ``error`` is a failure that waiting will not cure
(a key refused again after one re-read of the connection, a request the platform refuses).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_etelecom import exceptions as etelecom_exceptions
from airflow_provider_etelecom.client import Consent
from airflow_provider_etelecom.client.models import WAIT_DECISIONS, WAIT_EVENT_STATUSES, WaitStatus
from airflow_provider_etelecom.client.replies import Decision, ReplyWait, serializable
from airflow_provider_etelecom.client.shared_span import SharedWait
from airflow_provider_etelecom.client.validation import validate_int64_id
from airflow_provider_etelecom.exceptions import EtelecomError, EtelecomTransientError
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.triggers.shared_poll import Member, SharedPoll, SharedPollStopped, join_shared_poll

__all__ = ["ConsentRepliesTrigger", "parse_event"]

log = logging.getLogger(__name__)

#: The version of the event :class:`ConsentRepliesTrigger` fires and :func:`parse_event` accepts (the
#: wait's event, read back by the sensor; not the watcher's asset event payload).
WAIT_EVENT_VERSION = 1
#: Error classes an ``error`` event may name; anything else is read as :class:`EtelecomError`.
ERROR_CLASSES: dict[str, type[EtelecomError]] = {
    name: getattr(etelecom_exceptions, name)
    for name in etelecom_exceptions.__all__
    if name not in ("EtelecomValidationError", "EtelecomConsentOutcomeError", "EtelecomRateLimitError")
}


def build_event(
    status: WaitStatus, *, decision: Decision | None = None, message: str = "", error: EtelecomError | None = None
) -> dict[str, Any]:
    """Build the one event the trigger fires.

    :raises ValueError: for an unknown status, or a decision missing where one is required.
    """
    if status not in WAIT_EVENT_STATUSES or (status in WAIT_DECISIONS) != (decision is not None):
        raise ValueError(f"event status {str(status)!r} with decision={decision is not None} is not an event")
    return {
        "version": WAIT_EVENT_VERSION,
        "status": str(status),
        "decision": None if decision is None else serializable(decision),
        "message": message or (error.message if error is not None else ""),
        "error_class": type(error).__name__ if error is not None else None,
    }


def _ids(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("ids are not a list of strings")
    return tuple(value)


def parse_event(event: object) -> tuple[WaitStatus, Decision | None, str, type[EtelecomError]]:
    """Validate an event (the only place one is read) and return its status, decision, message and error class.

    :raises EtelecomError: for anything that is not a well-formed event: fail closed, never guess an answer.
    """
    try:
        if (
            not isinstance(event, Mapping)
            or type(event.get("version")) is not int
            or event["version"] != WAIT_EVENT_VERSION
        ):
            raise ValueError(f"not a version {WAIT_EVENT_VERSION} event")
        status, raw, message = event.get("status"), event.get("decision"), event.get("message")
        decided = status in WAIT_DECISIONS
        if status not in WAIT_EVENT_STATUSES or not isinstance(message, str) or decided != (raw is not None):
            raise ValueError(f"status {status!r} does not go with its decision and message")
        status = WaitStatus(status)
        decision = None
        if isinstance(raw, Mapping):
            at, consents = datetime.fromisoformat(raw["checked_at"]), dict(raw["consents"])
            ids = {key: _ids(raw[key]) for key in ("failed", "unknown", "missing")}
            if (
                raw["status"] != status
                or at.tzinfo is None
                or {type(raw["final"]), type(raw["wanted"])} != {int}
                or any(not isinstance(value, Mapping) or value.get("id") != key for key, value in consents.items())
            ):
                raise ValueError("the decision is not well formed, or not this event's")
            consents = {key: Consent(**value) for key, value in consents.items()}  # type: ignore[typeddict-item]
            decision = Decision(
                **{**raw, **ids, "status": status, "consents": consents, "checked_at": at.astimezone(timezone.utc)}
            )
    except (KeyError, TypeError, ValueError) as why:
        raise EtelecomError(
            f"The ConsentRepliesTrigger event is not valid ({why}); failing closed instead of guessing the "
            f"customers' answers. Event: {repr(event)[:300]}. Clear the task to wait again."
        ) from None
    return status, decision, message, ERROR_CLASSES.get(str(event.get("error_class")), EtelecomError)


class _NoPoll(Exception):
    """No shared poll checked the wait before its deadline."""


def _epoch(name: str, value: datetime | str | float) -> float:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if isinstance(moment, datetime) and moment.tzinfo is not None:
        return moment.timestamp()
    if isinstance(moment, (int, float)) and not isinstance(moment, bool):
        return float(moment)
    raise ValueError(f"{name} must be an aware datetime, an ISO-8601 string or epoch seconds, got {value!r}")


class ConsentRepliesTrigger(BaseTrigger):
    """Poll eTelecom on the triggerer until a wait for one or many consents is decided, then fire one event.

    The listing runs in a worker thread (``asyncio.to_thread``) through the hook's client, with the
    connection's retry budget and its one re-read of the connection after a refused key: the same
    policy as a poke. A transient failure that outlasts the budget waits (at least ``Retry-After``)
    and checks again; any other error, and the ``deadline`` (the sensor's timeout, kept here rather
    than left to Airflow), end the wait.

    A trigger with an ``oa_id`` shares its polls with the other waits of the same connection and OA
    in this triggerer process (:mod:`~airflow_provider_etelecom.triggers.shared_poll`): one listing
    per poll for all of them, each still decided by its own wait, with the same events.

    :param consent_ids: the wanted ids.
    :param oa_id: narrow the listing to this Official Account.
    :param phone: narrow the listing to this phone.
    :param created_from: list only consents created at or after this time (aware datetime,
        ISO-8601 or epoch seconds).
    :param etelecom_conn_id: the eTelecom connection.
    :param min_share: the share of final consents that ends the wait.
    :param failure_statuses: final replies that fail the wait.
    :param poke_interval: seconds between checks.
    :param deadline: when to give up with a ``timeout`` event.
    :param not_found_deadline: when ids still unlisted end the wait with ``not_found``.
    :param max_pages: bound on the pages one check reads (``None``: until every pending id is seen).
    :param listed_from: where the sensor's last check found the pending consents (their earliest
        ``created_at`` as listed, less a second; aware datetime, ISO-8601 or epoch seconds): lets a
        shared poll read this wait's consents in the OA's span from its first check.
    :param shared_poll: share polls with the other waits of this connection and OA (``False``: every
        check is this trigger's own listing).
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
        max_pages: int | None = None,
        listed_from: datetime | str | float | None = None,
        shared_poll: bool = True,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call,unused-ignore]
        self.kwargs: dict[str, Any] = {
            "consent_ids": [validate_int64_id("consent_ids", consent_id) for consent_id in consent_ids],
            "oa_id": None if oa_id is None else validate_int64_id("oa_id", oa_id),
            "phone": None if phone is None else str(phone),
            "created_from": None if created_from is None else _epoch("created_from", created_from),
            "etelecom_conn_id": etelecom_conn_id,
            "min_share": float(min_share),
            "failure_statuses": sorted(set(failure_statuses)),
            "poke_interval": float(poke_interval),
            "deadline": _epoch("deadline", deadline),
            "not_found_deadline": _epoch("not_found_deadline", not_found_deadline),
            "max_pages": None if max_pages is None else int(max_pages),
            "listed_from": None if listed_from is None else _epoch("listed_from", listed_from),
            "shared_poll": bool(shared_poll),
        }
        self._poll: tuple[SharedPoll, Member] | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and JSON-safe keyword arguments (never the key)."""
        return f"{type(self).__module__}.{type(self).__qualname__}", dict(self.kwargs)

    def wait(self) -> ReplyWait:
        """Return the wait this trigger runs (a fresh one, with nothing settled yet)."""
        k = self.kwargs
        settings = {name: k[name] for name in ("consent_ids", "oa_id", "phone", "min_share", "max_pages")}
        created_from = None if k["created_from"] is None else datetime.fromtimestamp(k["created_from"], timezone.utc)
        return ReplyWait(**settings, created_from=created_from, failure_statuses=frozenset(k["failure_statuses"]))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Check every ``poke_interval`` seconds and yield exactly one event."""
        yield TriggerEvent(await self._run())  # type: ignore[no-untyped-call,unused-ignore]

    async def _run(self) -> dict[str, Any]:
        k, wait = self.kwargs, self.wait()
        if k["shared_poll"] and k["oa_id"] is not None:
            listed_from = None if k["listed_from"] is None else datetime.fromtimestamp(k["listed_from"], timezone.utc)
            shared = SharedWait(wait, listed_from, k["not_found_deadline"], k["deadline"])
            self._poll = join_shared_poll(k["etelecom_conn_id"], k["oa_id"], shared, k["poke_interval"])
            try:
                return await self._wait(wait, None)
            except SharedPollStopped as why:
                log.warning("%s; %s goes on with its own reads.", why, wait.describe())
            finally:
                self._poll[0].leave(self._poll[1])
                self._poll = None
        # A triggerer restart starts every waiting trigger at once: spread their first
        # connection reads (by at most a second). The sensor checked just before deferring.
        await asyncio.sleep(random.uniform(0, min(k["poke_interval"], 1.0)))
        try:
            client = await EtelecomHook(k["etelecom_conn_id"]).aget_client()
        except EtelecomError as error:
            return build_event(WaitStatus.ERROR, error=error)
        try:
            return await self._wait(wait, client)
        finally:
            client.close()

    async def _wait(self, wait: ReplyWait, client: Any) -> dict[str, Any]:
        """Check until decided or the deadline; paced by the shared poll, or by sleeping ``poke_interval``."""
        k = self.kwargs
        while (now := datetime.now(timezone.utc)).timestamp() < k["deadline"]:
            pause = k["poke_interval"]
            try:
                decision = await self._check(wait, client, now)
            except _NoPoll:
                continue
            except EtelecomTransientError as error:
                log.warning("Checking %s failed (%s); will check again.", wait.describe(), error.message)
                pause = max(pause, getattr(error, "retry_after", None) or 0.0)  # a 429's Retry-After
            except EtelecomError as error:
                return build_event(WaitStatus.ERROR, error=error)
            else:
                log.info("%s.", wait.describe(decision))
                if decision.status != WaitStatus.WAITING:
                    return build_event(decision.status, decision=decision)
            if self._poll is None:  # a shared poll paces its waits (and waits out a Retry-After) itself
                await asyncio.sleep(max(0.0, min(pause, k["deadline"] - datetime.now(timezone.utc).timestamp())))
        deadline = datetime.fromtimestamp(k["deadline"], timezone.utc).isoformat()
        return build_event(
            WaitStatus.TIMEOUT, message=f"No decision for {wait.describe()} before the timeout ({deadline})."
        )

    async def _check(self, wait: ReplyWait, client: Any, now: datetime) -> Decision:
        if self._poll is not None:
            poll, member = self._poll
            try:
                return await poll.check(member, timeout=max(0.0, self.kwargs["deadline"] - time.time()))
            except asyncio.TimeoutError:
                raise _NoPoll from None
        k, expired = self.kwargs, now.timestamp() >= self.kwargs["not_found_deadline"]
        # The deadline falls before the next check (a second early: the loop and the sleep take time).
        ends = lambda: datetime.now(timezone.utc).timestamp() + k["poke_interval"] + 1 >= k["deadline"]  # noqa: E731
        return await asyncio.to_thread(wait.check, client, now, not_found_expired=expired, ends=ends)
