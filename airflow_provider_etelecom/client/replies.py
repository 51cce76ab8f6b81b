"""The one decision of the waiting side: which wanted consents are answered, and what that means.

No Airflow here. The sensors (poke and reschedule mode) and the trigger (deferrable mode) all call
:meth:`ReplyWait.check`, for one consent or many, so every mode ends a wait the same way:

* a consent with an unknown ``reply_status`` fails closed (``unknown``, never skipped);
* a reply in ``failure_statuses``, a failed send (``status`` ``N``) or an expired request fails
  (``failed``), at the first check that sees it;
* ids not listed yet are waited for until the not-found grace ends (``not_found``);
* the wait is over (``done``) once at least ``min_share`` of the consents have left ``S``.

Each check lists only what can still change: consents already final are remembered, the listing's
start moves past the consents that have settled (oldest first from the earliest still pending)
and, after the first check, only the consents updated since the last one are read
(:mod:`~airflow_provider_etelecom.client.changes`, with its checks and fallback to the full span).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar, cast

from airflow_provider_etelecom.client.changes import ChangeFeed
from airflow_provider_etelecom.client.client import EtelecomClient
from airflow_provider_etelecom.client.models import (
    FINAL_REPLY_STATUSES,
    Consent,
    ConsentState,
    ReplyStatus,
    WaitStatus,
    classify_consent,
    consent_time,
)
from airflow_provider_etelecom.client.query import ConsentQuery
from airflow_provider_etelecom.client.validation import floor_second, mask_phone, validate_int64_id
from airflow_provider_etelecom.exceptions import (
    EtelecomConsentNotFoundError,
    EtelecomConsentOutcomeError,
    EtelecomError,
    EtelecomValidationError,
)

__all__ = ["CREATED_FROM_MARGIN_S", "LISTING_LAG_GRACE_S", "Decision", "ReplyWait", "span_start"]

#: Seconds a consent that ``RequestConsent`` just created may take to show in the listing: the
#: sensors' ``not_found_grace_period`` and ``RequestConsentOperator``'s ``listing_lag_grace``.
LISTING_LAG_GRACE_S = 60.0
#: Consents created this long before the earliest wanted one are still listed (clock skew, listing lag).
CREATED_FROM_MARGIN_S = 300.0
#: How much further back a wait looks before it ends ``not_found``: the ``created_at`` a ``RequestConsent``
#: answer shows may come from another clock than the listing's (another service), so a wait whose
#: lower bound came from the answers reads once more from a day earlier before it gives up. A clock
#: up to a day off then costs the requests of that read, never a wrong ``not_found``.
CLOCK_TOLERANCE_S = 24 * 3600.0
_REPLY_WORDS = {"P": "agreed (P)", "N": "refused (N)", "NS": "did not reply in time (NS)"}
_SHOWN = 20
_Moment = TypeVar("_Moment", datetime, float)


def validate_failure_statuses(value: Iterable[str] | None) -> frozenset[str]:
    """Check ``failure_statuses``: final replies (``P``, ``N``, ``NS``) that fail the task.

    :raises EtelecomValidationError: for anything else.
    """
    try:
        statuses = frozenset([value] if isinstance(value, str) else value or ())
    except TypeError:
        statuses = frozenset({repr(value)})
    if not statuses <= FINAL_REPLY_STATUSES:
        raise EtelecomValidationError(
            f"failure_statuses={sorted(statuses)!r} may only hold final replies: 'P' (agreed), 'N' (refused), 'NS'.",
            parameter="failure_statuses",
        )
    return statuses


def _items(value: object) -> list[object]:
    """Turn what ``consent_ids`` rendered to into a list of ids or consent dicts.

    A list (or any iterable, e.g. the lazy sequence a mapped task's XCom resolves to), one consent
    dict, one id, or a string: JSON or a Python literal (what ``{{ ti.xcom_pull(...) }}`` renders
    to without native rendering), else comma-separated ids.
    """
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("[", "(", "{"):
            for parse in (json.loads, ast.literal_eval):
                try:
                    return _items(parse(text))
                except (ValueError, SyntaxError):
                    continue
        return [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(value, (int, Mapping)):
        return [value]
    if isinstance(value, Sequence):
        # One slice, not iteration: Airflow 3's lazy sequence of a mapped task's XCom iterates by
        # asking for item 0, 1, ... until one is missing, and logs "[error] XCom not found ...
        # offset=N" for that last probe on a run that went well; a slice is one request, no probe.
        return list(value[:])
    if isinstance(value, Iterable):
        return list(value)
    raise EtelecomValidationError(
        f"consent_ids rendered to {type(value).__name__}; pass a list of consent ids or of consent dicts "
        f"(e.g. a mapped RequestConsentOperator's output).",
        parameter="consent_ids",
    )


def wanted_consents(value: object) -> tuple[list[str], datetime | None]:
    """Return the wanted ids (input order, no repeats) and the earliest ``created_at`` of the dicts.

    :raises EtelecomValidationError: for an empty list, an invalid id or a dict without ``id``.
    """
    ids: list[str] = []
    earliest: datetime | None = None
    for item in _items(value):
        if isinstance(item, Mapping):
            if "id" not in item:
                raise EtelecomValidationError(
                    f"consent_ids holds a dict without 'id' ({sorted(item)[:8]}); pass consents as "
                    f"RequestConsentOperator returns them, or their ids.",
                    parameter="consent_ids",
                )
            moment = consent_time(item, "created_at")
            if moment is not None and (earliest is None or moment < earliest):
                earliest = moment
            item = item["id"]
        ids.append(validate_int64_id("consent_ids", item))
    if not ids:
        raise EtelecomValidationError("consent_ids is empty: there is nothing to wait for.", parameter="consent_ids")
    return list(dict.fromkeys(ids)), earliest


@dataclass(frozen=True)
class Decision:
    """Where a wait stands after one check.

    :param status: ``waiting`` or one of :data:`~airflow_provider_etelecom.client.models.WAIT_DECISIONS`.
    :param consents: the latest state of every wanted consent found, by id.
    :param final: how many wanted consents have left ``S``.
    :param wanted: how many consents are waited for.
    :param failed: ids whose outcome fails the task (failure status, not sent, expired).
    :param unknown: ids with an unknown ``reply_status``.
    :param missing: ids not listed.
    :param checked_at: when the consents were classified (aware).
    """

    status: WaitStatus
    consents: dict[str, Consent]
    final: int
    wanted: int
    failed: tuple[str, ...]
    unknown: tuple[str, ...]
    missing: tuple[str, ...]
    checked_at: datetime


def decide(
    consent_ids: Iterable[str],
    consents: Mapping[str, Consent],
    *,
    min_share: float,
    failure_statuses: Collection[str],
    now: datetime,
    not_found_expired: bool,
    read: Collection[str] | None = None,
) -> Decision:
    """Decide a wait from the latest state of its consents, with the one status table.

    :param consent_ids: the wanted ids, in input order.
    :param consents: the latest state of the wanted consents found so far, by id.
    :param min_share: the share of final consents that ends the wait (0 < share <= 1).
    :param failure_statuses: final replies that fail the task.
    :param now: the time to classify at (expiry).
    :param not_found_expired: whether the not-found grace period has passed.
    :param read: the ids whose state this check read (``None``: every one). A waiting state kept
        from an earlier check is never judged expired: the answer may have come since, unread (a
        changed read that missed it, a span cut by ``max_pages``); the platform's own state decides.
    """
    wanted = list(dict.fromkeys(consent_ids))
    final, failed, unknown, missing = 0, [], [], []
    for consent_id in wanted:
        consent = consents.get(consent_id)
        state = None if consent is None else classify_consent(consent, now=now)
        if state is ConsentState.EXPIRED and read is not None and consent_id not in read:
            state = ConsentState.WAITING
        if consent is None:
            missing.append(consent_id)
        elif state is not ConsentState.WAITING:
            final += 1
            if state is ConsentState.UNKNOWN:
                unknown.append(consent_id)
            elif state is not ConsentState.ANSWERED or consent.get("reply_status") in failure_statuses:
                failed.append(consent_id)
    if unknown or failed:
        status = WaitStatus.UNKNOWN if unknown else WaitStatus.FAILED
    elif missing:
        status = WaitStatus.NOT_FOUND if not_found_expired else WaitStatus.WAITING
    else:
        status = WaitStatus.DONE if final >= min_share * len(wanted) - 1e-9 else WaitStatus.WAITING
    found = {i: consents[i] for i in wanted if i in consents}
    return Decision(status, found, final, len(wanted), tuple(failed), tuple(unknown), tuple(missing), now)


def span_start(start: _Moment, pending: Iterable[_Moment | None]) -> _Moment:
    """Return where the next span read starts: at the earliest ``created_at`` that may still change.

    The span is re-listed oldest first from the earliest consent still pending, as the listing
    showed it (the platform's clock), never from before ``start``; one pending consent that was not
    listed yet, or was listed without a time, holds the span at ``start``. The waits
    (:meth:`ReplyWait.query`) and the reply watcher
    (:func:`~airflow_provider_etelecom.triggers.consent_reply_event.watch_step`) both move their
    span by it.

    :param start: the span's lower bound (aware datetime or epoch seconds).
    :param pending: the ``created_at`` of each consent that may still change (``None``: not known).
    """
    times = list(pending)
    if not times or any(at is None for at in times):
        return start
    return max(start, min(at for at in times if at is not None))


def _problem(consent: Consent, now: datetime) -> str:
    """Say why a consent that left ``S`` fails the task."""
    what, reply = f"consent {consent.get('id')}", consent.get("reply_status")
    state = classify_consent(consent, now=now)
    if state is ConsentState.ANSWERED:
        return f"the customer {_REPLY_WORDS.get(str(reply), reply)} for {what}, which failure_statuses makes a failure"
    if state is ConsentState.NOT_SENT:
        return (
            f"the request for {what} was not delivered (status N), so no answer will come: eTelecom "
            f"error_code={consent.get('error_code')!r}, error_message={consent.get('error_message')!r}"
        )
    if state is ConsentState.EXPIRED:
        return f"{what} is still waiting (S) but expired at {consent.get('expires_at')}, so no answer will come"
    return (
        f"{what} has reply_status={reply!r}, which this provider does not know; failing closed rather than "
        f"guessing. Upgrade the provider or report it"
    )


def _show(ids: Iterable[str]) -> str:
    listed = list(ids)
    more = f" and {len(listed) - _SHOWN} more" if len(listed) > _SHOWN else ""
    return ", ".join(listed[:_SHOWN]) + more


@dataclass
class ReplyWait:
    """A wait for the replies to ``consent_ids``: one listing per :meth:`check`, decided by :func:`decide`.

    The listing is narrowed by ``oa_id``, ``phone`` and ``created_from``. With a lower bound it runs
    oldest first from it (the wanted consents come first); without one, newest first, where fresh
    requests are. Consents already final are kept between checks, so a check looks only for the
    pending ones and starts at the earliest of them, as the listing showed it. A check that would
    end ``not_found`` with a lower bound reads once more from :data:`CLOCK_TOLERANCE_S` earlier.

    :param consent_ids: the wanted ids, in input order.
    :param oa_id: narrow the listing to this Official Account.
    :param phone: narrow the listing to this phone.
    :param created_from: list only consents created at or after this time.
    :param min_share: the share of final consents that ends the wait (0 < share <= 1).
    :param failure_statuses: final replies that fail the task.
    :param max_pages: bound on the pages one check reads (``None``: until every pending id is seen).
    """

    consent_ids: list[str]
    oa_id: str | None = None
    phone: str | None = None
    created_from: datetime | None = None
    min_share: float = 1.0
    failure_statuses: frozenset[str] = frozenset()
    max_pages: int | None = None
    settled: dict[str, Consent] = field(default_factory=dict)
    feed: ChangeFeed = field(default_factory=ChangeFeed)
    widened: bool = False

    def query(self, client: EtelecomClient) -> ConsentQuery:
        """Return the listing of the next check: from the earliest pending consent the listing showed, if any.

        Oldest first with a lower bound (a refused sort falls back to the default order), newest
        first without one. Once every pending consent was listed, the bound is their earliest
        ``created_at`` as the listing showed it: the platform's own clock, not the answers'.
        """
        start = self.created_from
        if start is not None:  # a second below the earliest whole second shown
            shown = [consent_time(self.settled[i], "created_at") if i in self.settled else None for i in self.pending]
            start = span_start(start, [None if at is None else floor_second(at) - timedelta(seconds=1) for at in shown])
        return ConsentQuery.build(
            oa_id=self.oa_id,
            phone=self.phone,
            date_from=start,
            sort="created_at" if start is not None else None,
            max_pages=self.max_pages,
            normalize_phones=client.config.normalize_phones,
        )

    @property
    def pending(self) -> set[str]:
        """The ids whose consent may still change (not seen yet, or seen waiting)."""
        settled, waiting = self.settled, ReplyStatus.WAITING.value
        return {i for i in self.consent_ids if i not in settled or settled[i].get("reply_status") == waiting}

    def check(
        self, client: EtelecomClient, now: datetime, *, not_found_expired: bool, ends: Callable[[], bool] = bool
    ) -> Decision:
        """Read the listing once (:class:`~airflow_provider_etelecom.client.changes.ChangeFeed`) and decide.

        A changed read is followed by a span read when its decision could be wrong for good: a wait
        it would end with consents still pending (``min_share`` < 1; an answer it missed could fail
        it), or a wait that ``ends()`` says times out after this check. ``ends`` is asked after the
        read, so a check slower than the poke interval still ends its wait on the span. Expiry is
        judged only on states read in this check (``decide``'s ``read``).

        :param ends: whether the wait times out unless this check decides.
        :raises EtelecomError: what the listing raised once the client's retry budget was spent.
        """
        found: dict[str, Consent] = {}
        for span in (False, True):  # the span read is fresher, and keeps what a changed read found beyond a cut
            found.update(self.feed.read(client, self.query(client), self.pending, self.settled, last=span))
            decision = self._decide(found, now, not_found_expired)
            unsure = self.feed.changed and decision.final < decision.wanted  # ends() only then, after the read
            if not (unsure and (decision.status == WaitStatus.DONE or ends())):
                break
        if decision.status == WaitStatus.NOT_FOUND and self.created_from is not None and not self.widened:
            # The answers' clock may be off the listing's: look a day further back before giving up.
            self.created_from -= timedelta(seconds=CLOCK_TOLERANCE_S)
            self.widened = True
            found.update(self.feed.read(client, self.query(client), self.pending, {**self.settled, **found}, last=True))
            decision = self._decide(found, now, not_found_expired)
        self.settled = decision.consents
        return decision

    def take(
        self,
        found: Mapping[str, Consent],
        now: datetime,
        *,
        not_found_expired: bool,
        changed: bool,
        ends: Callable[[], bool] = bool,
    ) -> Decision | None:
        """Decide on what a read made for several waits found (a shared poll's), as :meth:`check` would.

        :param found: the latest state of this wait's pending consents that the read found, by id.
        :param changed: whether that read was a changed read (it shows only what changed).
        :param ends: whether the wait times out unless this check decides.
        :return: the decision, or ``None`` where :meth:`check` would read again before deciding (a
            changed read's decision it confirms on the span, a ``not_found`` it looks further back
            for): then this check is :meth:`check`, the wait's own read.
        """
        decision = self._decide(found, now, not_found_expired)
        unsure = changed and decision.final < decision.wanted
        if decision.status == WaitStatus.NOT_FOUND or (unsure and (decision.status == WaitStatus.DONE or ends())):
            return None
        self.settled = decision.consents
        return decision

    def span_from(self, listed_from: datetime | None = None) -> datetime | None:
        """Return where a span oldest first must start to show every pending consent, or ``None`` if unknown.

        As :meth:`query` moves its bound: from ``created_from``, or else from ``listed_from`` (where
        an earlier read of the same wait found its pending consents), moved up to the earliest
        pending consent the listing showed. Without either, every pending consent must have been
        listed with a time: bare ids that were never listed have no span.
        """
        start = self.created_from or listed_from
        shown = [consent_time(self.settled[i], "created_at") if i in self.settled else None for i in self.pending]
        floors = [None if at is None else floor_second(at) - timedelta(seconds=1) for at in shown]
        if start is not None:
            return span_start(start, floors)
        known = [at for at in floors if at is not None]
        return min(known) if known and len(known) == len(floors) else None

    def _decide(self, found: Mapping[str, Consent], now: datetime, not_found_expired: bool) -> Decision:
        return decide(
            self.consent_ids,
            {**self.settled, **found},
            min_share=self.min_share,
            failure_statuses=self.failure_statuses,
            now=now,
            not_found_expired=not_found_expired,
            read=found,
        )

    def error(self, decision: Decision, *, grace: float, narrowing: str) -> tuple[EtelecomError, bool] | None:
        """Return the error a decided wait ends with, and whether ``soft_fail`` may skip it.

        :param grace: the not-found grace period, in seconds, for the message.
        :param narrowing: how the listing was narrowed, for the not-found message.
        """
        culprits = decision.unknown or decision.failed
        if culprits:
            details = "; ".join(_problem(decision.consents[i], decision.checked_at) for i in culprits[:5])
            more = f" ({len(culprits) - 5} more not shown)" if len(culprits) > 5 else ""
            error: EtelecomError = EtelecomConsentOutcomeError(
                f"{len(culprits)} of {decision.wanted} consents ended in a state that fails the task: "
                f"{_show(culprits)}. {details}{more}.",
                consent=dict(decision.consents[culprits[0]]),
            )
            return error, not decision.unknown
        if decision.status == WaitStatus.NOT_FOUND:
            return EtelecomConsentNotFoundError(
                f"{len(decision.missing)} of {decision.wanted} consents were not found after the {grace:.0f} s "
                f"grace period: {_show(decision.missing)}. The listing was narrowed by {narrowing}; check that the "
                f"ids belong to them, or widen the narrowing and max_pages.",
                endpoint="Zalo/ListRequestConsent",
            ), True
        return None

    def describe(self, decision: Decision | None = None) -> str:
        """Describe the wait (and where ``decision`` left it) for logs, with the phone masked."""
        phone = mask_phone(self.phone) if self.phone else None
        progress = decision and f": {self.feed}, {decision.final} final, {len(decision.missing)} not listed"
        return f"{len(self.consent_ids)} consent(s) (oa_id={self.oa_id}, phone={phone}){progress or ''}"

    def progress(self) -> dict[str, Any]:
        """Return where the wait stands between checks, as JSON-safe values: what :meth:`resume` takes.

        The consents settled so far (as last listed: the task's result is made of them), the lower
        bound (moved back once it was widened) and the reading strategy's watermark, check count and
        verdict. Nothing of the connection, so never the key.
        """
        created_from = None if self.created_from is None else self.created_from.timestamp()
        feed = {"newest": self.feed.newest, "checks": self.feed.checks, "given_up": self.feed.given_up}
        return {"settled": dict(self.settled), "created_from": created_from, "widened": self.widened, "feed": feed}

    def resume(self, progress: object) -> bool:
        """Take up the wait where an earlier check of it left off (:meth:`progress`), e.g. in a new process.

        :return: whether ``progress`` was taken; anything that is not such a record of this wait (an id
            not waited for, a wrong type) is ignored whole, and the wait starts afresh.
        """
        if not isinstance(progress, Mapping):
            return False
        settled, feed, created_from = progress.get("settled"), progress.get("feed"), progress.get("created_from")
        if not isinstance(settled, Mapping) or not isinstance(feed, Mapping):
            return False
        if not all(isinstance(c, Mapping) and c.get("id") == i and i in self.consent_ids for i, c in settled.items()):
            return False
        newest, checks, given_up = feed.get("newest"), feed.get("checks"), feed.get("given_up")
        number = (int, float)
        if not (newest is None or isinstance(newest, number)) or not isinstance(checks, int):
            return False
        if not (given_up is None or isinstance(given_up, str)) or not (
            created_from is None or isinstance(created_from, number)
        ):
            return False
        if (created_from is None) != (self.created_from is None):
            return False
        self.settled = {i: cast(Consent, dict(c)) for i, c in settled.items()}
        if created_from is not None:
            self.created_from = datetime.fromtimestamp(created_from, timezone.utc)
        self.widened = bool(progress.get("widened"))
        self.feed = ChangeFeed(newest=None if newest is None else float(newest), checks=checks, given_up=given_up)
        return True

    def settings(self) -> dict[str, Any]:
        """Return what defines the wait as JSON-safe values (the trigger's keyword arguments)."""
        fields = {name: getattr(self, name) for name in ("consent_ids", "oa_id", "phone", "min_share", "max_pages")}
        created_from = None if self.created_from is None else self.created_from.timestamp()
        return {**fields, "created_from": created_from, "failure_statuses": sorted(self.failure_statuses)}


def serializable(decision: Decision) -> dict[str, Any]:
    """Return a decision's fields as JSON-safe values (the trigger's event body)."""
    ids = {key: list(getattr(decision, key)) for key in ("failed", "unknown", "missing")}
    return {**asdict(decision), **ids, "status": str(decision.status), "checked_at": decision.checked_at.isoformat()}
