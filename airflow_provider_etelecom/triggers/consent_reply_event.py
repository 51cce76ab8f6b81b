"""``ConsentReplyEventTrigger``: start DAG runs when customers answer (Airflow 3 ``AssetWatcher``).

A :class:`~airflow.triggers.base.BaseEventTrigger` that watches the consents of one Official
Account and fires one event (one asset event, Airflow 3's event-driven scheduling) per consent
that leaves ``S``. A DAG scheduled on the watched asset runs with no sensor and no worker held.

How answers are seen. Each poll reads the span of still-pending consents: from the ``created_at``
of the oldest consent still pending at the previous poll (or, when none was, the newest
``created_at`` listed, the platform's own clock, minus :data:`LISTING_LAG_MARGIN_S` for the listing
lag), never earlier than ``reply_window`` before now: a consent older than its reply window is no
longer ``S``. It reads it with the many-consent wait's reading strategy
(:class:`~airflow_provider_etelecom.client.changes.ChangeFeed`, verified the same way):

* the first poll lists the span (oldest first, to its end), after one page sorted
  ``-updated_at`` that takes the *watermark* (the newest ``updated_at`` the platform showed);
* the next polls read only what changed: the span sorted ``-updated_at``, down to the watermark
  minus :data:`LISTING_LAG_MARGIN_S` (a consent may show in the listing that long after it was
  written), so answers and new consents alike; usually **one request per poll**;
* every sixth poll (``VERIFY_EVERY``) lists the span again: it fires whatever the changed reads
  missed, and gives the changed reads up for good (one warning; every poll then lists the span, as
  before) if the platform refuses or ignores the sort, or does not move ``updated_at`` on a reply.

**Cost**, e.g. 2,000 pending consents created over the last day, 20 answers a minute, polled every
minute: the span read is 21 requests (one per 100 consents created in the span, any status, and
the empty page that ends it), a changed read 1 or 2: 5 or 6 requests per poll on average over the
six polls of a verification cycle, where listing the span every poll costs 21
(``python -m benchmarks.bench_watcher`` measures both in one run).

What fires. The decision is :func:`watch_step`, in terms of the one status table
(:func:`~airflow_provider_etelecom.client.classify_consent`): a consent fires when its state is
``answered`` (``P``, ``N``, ``NS``) or ``unknown`` (a ``reply_status`` this provider does not
know: it has left ``S``, and the DAG sees it rather than losing it); ``waiting`` and ``expired``
(still ``S`` past ``expires_at``: the ``NS`` is on its way) hold the span open; ``not_sent`` (the
request never reached the customer) neither fires nor waits. One event per consent.

Event payload, version :data:`REPLY_PAYLOAD_VERSION` (the asset event's ``extra["payload"]``)::

    {"version": 1, "kind": "consent_reply", "dedup_key": "<id>:<updated_at>",
     "consent_id": "...", "oa_id": "...", "reply_status": "P" | "N" | "NS" | ...,
     "state": "answered" | "unknown", "created_at": "...", "updated_at": "...",
     "phone": "84..."}                       # only with include_phone=True

Asset events live in Airflow's database, so the phone (personal data) is left out unless
``include_phone=True``; the API key is never in the trigger's kwargs nor in an event.

At least once. An event is never marked as sent before it was handed to the triggerer, and a
consent leaves the span only once it fired. Where Airflow keeps state for the watcher (the asset
state store, Airflow 3.3+, injected into ``BaseEventTrigger.asset_state_store`` when the trigger
watches exactly one asset), the span, the ids already fired and the watermark are written there
**one poll after the events were yielded**: the triggerer hands events to the database within
about a second (its runner and supervisor loops) while a poll is ``poke_interval`` away, so what is
written has been persisted. After a triggerer restart the watcher resumes from that record with
a span read (which fires every answer not fired yet, whenever it came) and then reads changes
from the stored watermark: nothing is lost, and nothing repeats except the events of the last
poll before the restart, which fire again with the same ``dedup_key``. On Airflow 3.0-3.2 (no
asset state store), or a trigger shared by several assets, the record is in memory only: a
restart re-fires every consent that left ``S`` within the last ``reply_window``, each with the
same ``dedup_key`` (unless the consent changed in between).
Deduplicate on ``dedup_key`` downstream where a repeat matters.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

from airflow_provider_etelecom.client import Consent, ConsentQuery, ConsentState, EtelecomClient, classify_consent
from airflow_provider_etelecom.client.changes import ChangeFeed
from airflow_provider_etelecom.client.models import consent_time
from airflow_provider_etelecom.client.replies import span_start
from airflow_provider_etelecom.client.validation import MAX_PAGE_SIZE, validate_int64_id
from airflow_provider_etelecom.exceptions import EtelecomConfigError, EtelecomTransientError
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook

if AIRFLOW_V_3_0_PLUS:
    from airflow.triggers.base import BaseEventTrigger, TriggerEvent  # type: ignore[attr-defined,unused-ignore]
else:  # Airflow 2.11: no event-driven scheduling; the class refuses to be built (see __init__)
    from airflow.triggers.base import BaseTrigger as BaseEventTrigger  # type: ignore[assignment,unused-ignore]
    from airflow.triggers.base import TriggerEvent

__all__ = ["ConsentReplyEventTrigger", "WatchState"]

log = logging.getLogger(__name__)

#: The version of the asset event payload :class:`ConsentReplyEventTrigger` fires (``extra["payload"]``;
#: not the version of the sensors' trigger event, nor of the record in the asset state store).
REPLY_PAYLOAD_VERSION = 1
#: The version of :class:`WatchState`'s record in the asset state store (a version 1 record, from
#: before the watermark was kept, is read too; any other is ignored).
WATCH_STATE_VERSION = 2
#: States (of the one status table) that fire an event: the consent has left ``S``.
FIRING_STATES = frozenset({ConsentState.ANSWERED, ConsentState.UNKNOWN})
#: States that keep a consent in the span re-listed every poll: an answer (or ``NS``) may come.
PENDING_STATES = frozenset({ConsentState.WAITING, ConsentState.EXPIRED})
#: How long a consent can stay ``S``: the platform's reply window (about 24 h) plus an hour for the
#: ``NS`` to show.
DEFAULT_REPLY_WINDOW_S = timedelta(hours=25).total_seconds()
#: The record is written again when only the span or the watermark moved, once it moved this far (seconds).
SPAN_SAVE_STEP_S = 3600.0
#: A consent may show in the listing this long after the newest one the watcher saw (listing lag): the
#: span starts this far before the newest ``created_at`` listed, and a changed read reads this far
#: below the watermark.
LISTING_LAG_MARGIN_S = 300.0
#: Prefix of the asset state store key (renaming it makes every watcher start from scratch).
STATE_KEY_PREFIX = "etelecom_consent_replies"


@dataclass(frozen=True)
class WatchState:
    """Where the watcher stands between polls (JSON in the asset state store).

    :param span_from: epoch seconds: the ``created_at`` the next listing starts from.
    :param fired: consent id -> its ``created_at`` (epoch s), for the consents that already fired and
        are still inside the span (older ones are dropped: they are never listed again).
    :param newest: the changed reads' watermark: the newest ``updated_at`` (epoch s) a complete
        read showed on its first page (``None``: none yet). Every change after it is stamped at or
        above it, so a restarted watcher reads changes from there.
    """

    span_from: float
    fired: dict[str, float] = field(default_factory=dict)
    newest: float | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form stored in the asset state store."""
        return {
            "version": WATCH_STATE_VERSION,
            "span_from": self.span_from,
            "fired": dict(self.fired),
            "newest": self.newest,
        }

    @classmethod
    def from_json(cls, value: object) -> WatchState | None:
        """Read the stored form; ``None`` for anything else (the watcher then starts afresh)."""
        if not isinstance(value, dict) or value.get("version") not in (1, WATCH_STATE_VERSION):
            return None
        span_from, fired, newest = value.get("span_from"), value.get("fired"), value.get("newest")
        if not isinstance(span_from, (int, float)) or not isinstance(fired, dict):
            return None
        if not all(isinstance(k, str) and isinstance(v, (int, float)) for k, v in fired.items()):
            return None
        if newest is not None and not isinstance(newest, (int, float)):
            return None
        return cls(float(span_from), {k: float(v) for k, v in fired.items()}, None if newest is None else float(newest))

    def worth_saving(self, saved: WatchState) -> bool:
        """Whether to write this state over ``saved``: the fired set changed, or the span or watermark moved.

        A stale record is safe (an earlier span, an older watermark: a longer first read after a
        restart), so a move is written only once it is :data:`SPAN_SAVE_STEP_S` long.
        """
        if self.fired != saved.fired or (self.newest is None) != (saved.newest is None):
            return True
        moved = abs(self.span_from - saved.span_from)
        if self.newest is not None and saved.newest is not None:
            moved = max(moved, abs(self.newest - saved.newest))
        return moved >= SPAN_SAVE_STEP_S


def dedup_key(consent: Consent) -> str:
    """Return the key to deduplicate a consent's event on: its id and ``updated_at``."""
    return f"{consent.get('id', '')}:{consent.get('updated_at', '')}"


def watch_step(
    consents: Iterable[Consent], state: WatchState, *, listed_at: datetime
) -> tuple[list[Consent], WatchState]:
    """Decide one poll from the span's listing: what fires now, and where the next listing starts.

    The next span starts as the waits' does (:func:`~airflow_provider_etelecom.client.replies.span_start`):
    at the oldest consent still pending, where the consents not listed yet count as created at the
    newest ``created_at`` the listing showed minus :data:`LISTING_LAG_MARGIN_S`: the platform's own
    clock, never the worker's (a platform clock behind the worker's would otherwise start the span
    after the consents it creates next).

    :param consents: every consent of the span, as listed (created at or after ``state.span_from``), or
        after a changed read the consents it returned over the pending ones known from earlier reads.
    :param state: the state the listing was made from.
    :param listed_at: when the listing started (classifies expiry).
    :return: the consents to fire (not fired before, state in :data:`FIRING_STATES`) and the next state.
    """
    listed = [c for c in consents if c.get("id")]
    times = [None if at is None else at.timestamp() for at in (consent_time(c, "created_at") for c in listed)]
    newest = max((at for at in times if at is not None), default=None)
    pending: list[float | None] = [] if newest is None else [newest - LISTING_LAG_MARGIN_S]  # not listed yet
    fired = dict(state.fired)
    fresh: list[Consent] = []
    for consent, created in zip(listed, times, strict=True):
        consent_state = classify_consent(consent, now=listed_at)
        if consent_state in PENDING_STATES:
            pending.append(created)
        elif consent_state in FIRING_STATES and consent["id"] not in fired:
            fresh.append(consent)
            fired[consent["id"]] = state.span_from if created is None else created
    start = span_start(state.span_from, pending)
    return fresh, WatchState(start, {k: v for k, v in fired.items() if v >= start}, state.newest)


def build_consent_reply_event(consent: Consent, *, include_phone: bool, listed_at: datetime) -> dict[str, Any]:
    """Build the one payload the trigger fires for a consent (see the module docstring)."""
    payload: dict[str, Any] = {
        "version": REPLY_PAYLOAD_VERSION,
        "kind": "consent_reply",
        "dedup_key": dedup_key(consent),
        "consent_id": consent.get("id"),
        "oa_id": consent.get("oa_id"),
        "reply_status": consent.get("reply_status"),
        "state": classify_consent(consent, now=listed_at).value,
        "created_at": consent.get("created_at"),
        "updated_at": consent.get("updated_at"),
    }
    if include_phone:
        payload["phone"] = consent.get("phone")
    return payload


@dataclass
class SpanReader:
    """How one running watcher reads its span (in memory: never logged nor serialised).

    :param feed: the reading strategy and its watermark
        (:class:`~airflow_provider_etelecom.client.changes.ChangeFeed`).
    :param known: the consents of the span still pending, as last listed; ``None`` until a span read
        listed them all (at start, after a restart): until then every poll lists the span.
    """

    feed: ChangeFeed
    known: dict[str, Consent] | None = None

    @classmethod
    def resume(cls, state: WatchState) -> SpanReader:
        """Start reading from a state: its watermark, nothing known yet (the first poll lists the span)."""
        return cls(ChangeFeed(newest=state.newest, margin=LISTING_LAG_MARGIN_S))


class _StateStore(Protocol):
    """What the trigger uses of Airflow 3.3's ``AssetStateStoreAccessors``."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


class ConsentReplyEventTrigger(BaseEventTrigger):
    """Fire one event per consent of an OA that leaves ``S``: for an Airflow 3 ``AssetWatcher``.

    ``Asset("...", watchers=[AssetWatcher(name="...", trigger=ConsentReplyEventTrigger(oa_id=...))])``.
    Each poll reads what changed in the span of still-pending consents since the last one (usually
    one request), and every sixth poll lists the span to verify it (one request per 100 consents
    created in it); cost, delivery (at least once, ``dedup_key``) and what repeats after a triggerer
    restart on which Airflow version: see the module docstring.
    The listing runs in a worker thread (``asyncio.to_thread``) through the hook's client (read with
    :meth:`EtelecomHook.aget_client`): the connection's retry budget and its one re-read of the
    connection after a refused key, the same policy as the sensors'; a transient failure that
    outlasts the budget waits (at least ``Retry-After``) and polls again; a failure waiting cannot
    cure (a key refused again, a refused request) fails the trigger.

    :param oa_id: the Official Account whose consents are watched.
    :param call_type: watch only consents of this call type.
    :param reason_code: watch only consents with this reason.
    :param user_id: watch only consents created by this user.
    :param etelecom_conn_id: the eTelecom connection (its key never enters the kwargs or events).
    :param include_phone: put the customer's phone in the events (personal data, stored by Airflow).
    :param poke_interval: seconds between polls.
    :param reply_window: seconds a consent can stay ``S``; the span never starts earlier than that.
    :raises EtelecomConfigError: on Airflow 2 (event-driven scheduling needs Airflow 3).
    :raises EtelecomValidationError: for an invalid id or filter, naming the parameter.
    """

    def __init__(
        self,
        *,
        oa_id: str,
        call_type: str | None = None,
        reason_code: str | None = None,
        user_id: str | None = None,
        etelecom_conn_id: str = EtelecomHook.default_conn_name,
        include_phone: bool = False,
        poke_interval: float = 60.0,
        reply_window: float = DEFAULT_REPLY_WINDOW_S,
    ) -> None:
        if not AIRFLOW_V_3_0_PLUS:
            raise EtelecomConfigError(
                "ConsentReplyEventTrigger needs Airflow 3 (AssetWatcher, event-driven scheduling); this is "
                "Airflow 2. On Airflow 2 wait for replies with ConsentReplySensor or ConsentRepliesSensor."
            )
        super().__init__()  # type: ignore[no-untyped-call,unused-ignore]
        self.oa_id = validate_int64_id("oa_id", oa_id)
        self.call_type = call_type
        self.reason_code = reason_code
        self.user_id = None if user_id is None else validate_int64_id("user_id", user_id)
        # Validated once here; each poll only moves the window's start (see _list_span).
        self._query = ConsentQuery.build(
            oa_id=self.oa_id,
            call_type=call_type,
            reason_code=reason_code,
            user_id=self.user_id,
            sort="created_at",
            page_size=MAX_PAGE_SIZE,
        )
        self.etelecom_conn_id = etelecom_conn_id
        self.include_phone = bool(include_phone)
        self.poke_interval = float(poke_interval)
        self.reply_window = float(reply_window)
        self._state_warning_logged = False

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and JSON-safe, deterministic kwargs (``hash`` reads them; no key)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "oa_id": self.oa_id,
                "call_type": self.call_type,
                "reason_code": self.reason_code,
                "user_id": self.user_id,
                "etelecom_conn_id": self.etelecom_conn_id,
                "include_phone": self.include_phone,
                "poke_interval": self.poke_interval,
                "reply_window": self.reply_window,
            },
        )

    @property
    def state_key(self) -> str:
        """The asset state store key: one record per watched OA, filters and connection."""
        identity = json.dumps(
            [self.oa_id, self.call_type, self.reason_code, self.user_id, self.etelecom_conn_id], separators=(",", ":")
        )
        return f"{STATE_KEY_PREFIX}:{hashlib.sha256(identity.encode()).hexdigest()[:16]}"

    def _warn_state_once(self, message: str) -> None:
        if not self._state_warning_logged:
            log.warning(message)
            self._state_warning_logged = True

    async def _state_call(self, method: str, *args: Any) -> Any:
        """Call the asset state store (``aget``/``aset`` on 3.3.2+, the blocking API in a thread before)."""
        store: _StateStore | None = getattr(self, "asset_state_store", None)
        if store is None:
            self._warn_state_once(
                "No asset state store for this watcher (Airflow < 3.3): fired consents are remembered in "
                "memory only, so a triggerer restart fires those of the last reply window again."
            )
            return None
        try:
            if hasattr(store, "a" + method):
                return await getattr(store, "a" + method)(*args)
            return await asyncio.to_thread(getattr(store, method), *args)
        except ValueError:  # the store's accessor needs exactly one watched asset
            self._warn_state_once(
                "This watcher's trigger serves several assets, so the asset state store cannot hold its "
                "record: fired consents are remembered in memory only. Give each asset its own trigger."
            )
            return None
        except Exception as error:  # the store is an API call: its failure costs a repeat, never an answer
            log.warning(
                "The asset state store failed (%s: %s); the watcher goes on from memory, so a restart "
                "before the next successful write fires the consents of the last reply window again.",
                type(error).__name__,
                error,
            )
            return None

    def _list_span(
        self, client: EtelecomClient, state: WatchState, reader: SpanReader, listed_at: datetime
    ) -> tuple[list[Consent], WatchState]:
        """Read the span once (the span, or what changed) and decide; runs in a worker thread.

        ``reader`` is updated only when the read succeeded: a failed poll leaves the watermark and the
        pending consents where they were, so the next poll reads what this one did not reach.
        """
        date_from = max(state.span_from, listed_at.timestamp() - self.reply_window)
        query = self._query.updated(date_from=datetime.fromtimestamp(date_from, timezone.utc))
        feed, known = reader.feed, reader.known
        if feed.newest is None and feed.given_up is None:  # the span read that follows makes the mark safe
            feed.mark(client, query)
            known = None
        found = feed.read(client, query, None, known or {}, last=known is None)
        # A span read is the listing itself; after a changed read the pending consents it did not show still
        # count, and its consents come oldest answer first.
        view = {**known, **dict(reversed(list(found.items())))} if feed.changed and known is not None else found
        fresh, new_state = watch_step(view.values(), WatchState(date_from, state.fired), listed_at=listed_at)
        reader.known = {i: c for i, c in view.items() if classify_consent(c, now=listed_at) in PENDING_STATES}
        return fresh, replace(new_state, newest=feed.newest)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll every ``poke_interval`` seconds forever, yielding one event per consent that left ``S``."""
        now = datetime.now(timezone.utc)
        state = WatchState.from_json(await self._state_call("get", self.state_key)) or WatchState(
            now.timestamp() - self.reply_window
        )
        reader, unsaved, saved = SpanReader.resume(state), False, state
        what = f"the consents of OA {self.oa_id}"

        # A triggerer restart starts every trigger at once: spread their first connection reads.
        await asyncio.sleep(random.uniform(0, min(self.poke_interval, 1.0)))
        client = await EtelecomHook(self.etelecom_conn_id).aget_client()
        try:
            while True:
                if unsaved:  # one poll after the events were yielded: they have reached the database
                    await self._state_call("set", self.state_key, state.to_json())
                    unsaved, saved = False, state
                listed_at, pause = datetime.now(timezone.utc), self.poke_interval
                try:
                    fresh, state = await asyncio.to_thread(self._list_span, client, state, reader, listed_at)
                except EtelecomTransientError as error:
                    log.warning("Listing %s failed (%s); will list again.", what, error.message)
                    pause = max(pause, getattr(error, "retry_after", None) or 0.0)  # a 429's Retry-After
                else:
                    log.info("%s: %s, %d consent(s) left S.", what, reader.feed, len(fresh))
                    unsaved = unsaved or state.worth_saving(saved)
                    for consent in fresh:
                        payload = build_consent_reply_event(
                            consent, include_phone=self.include_phone, listed_at=listed_at
                        )
                        yield TriggerEvent(payload)  # type: ignore[no-untyped-call,unused-ignore]
                await asyncio.sleep(pause)
        finally:
            client.close()
