"""One listing for many waits of one OA: the span a shared poll reads, and what each wait is handed.

No Airflow and no asyncio here: the triggerer's glue
(:mod:`~airflow_provider_etelecom.triggers.shared_poll`) decides *when* a poll runs and who is in it;
:meth:`SharedSpan.read` does one poll's reads for the waits it is given and decides each of them
with its own :class:`~airflow_provider_etelecom.client.replies.ReplyWait` (:meth:`~.ReplyWait.take`),
so a wait served by a shared poll ends exactly as it would alone.

* **Who is served.** A wait whose pending consents have a known start (``created_from``, or where an
  earlier read listed them: :meth:`~.ReplyWait.span_from`) and that names this OA. A wait without
  one (bare ids never listed) reads alone, and so does every wait of a poll with fewer than
  :data:`MIN_SHARED` servable waits: one wait alone makes exactly the requests of a lone wait.
* **What is read.** The OA's span from the earliest start of the served waits, oldest first, with
  the change reads of :class:`~airflow_provider_etelecom.client.changes.ChangeFeed` (its checks, its
  verification and its fallback to the span), for the union of their pending ids. Changed reads
  start only once a verification proved them on this platform (``prove_first``): the waits served
  are mostly single consents, which alone read their one page and never rely on changed reads, so
  until then each poll is a span read, and an answer is never seen later than alone. A wait read for
  the first time (it joined since the last poll), or one that missed a read that moved the
  watermark, is read by a span read of its own span, after the feed's read and without moving the
  watermark: its first check never relies on a read that began before it joined, and no answer
  falls below a watermark set by a read that did not look for it.
* **What each wait gets.** The states of its own pending consents, and the decision of its own
  wait. A wait the read cannot serve is returned to be read alone for this poll: a span read that
  did not show one of its pending consents (not listed yet, or outside the span), or a decision
  its own check would confirm with another read (a changed read's ``done`` with consents pending,
  the last check before its deadline, a ``not_found``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from airflow_provider_etelecom.client.changes import ChangeFeed
from airflow_provider_etelecom.client.client import EtelecomClient
from airflow_provider_etelecom.client.models import Consent
from airflow_provider_etelecom.client.query import ConsentQuery
from airflow_provider_etelecom.client.replies import Decision, ReplyWait
from airflow_provider_etelecom.exceptions import EtelecomError

__all__ = ["SharedSpan", "SharedWait"]

#: A poll with fewer servable waits than this lets each read alone: a single consent's own read is one
#: page of its phone, cheaper than the OA's span.
MIN_SHARED = 2


@dataclass(eq=False)
class SharedWait:
    """One wait in a shared poll: its :class:`ReplyWait` and what deciding it needs besides the listing.

    :param wait: the wait; its settled consents are kept between polls.
    :param listed_from: where an earlier read of this wait found its pending consents (the sensor's
        check before it deferred), as the listing showed it.
    :param not_found_deadline: epoch seconds after which ids still unlisted end the wait.
    :param deadline: epoch seconds of the wait's timeout.
    """

    wait: ReplyWait
    listed_from: datetime | None = None
    not_found_deadline: float = math.inf
    deadline: float = math.inf
    #: The watermark (:attr:`SharedSpan.reads`) under which a shared read last showed every pending
    #: consent of this wait; changed reads may serve it only while the watermark has not moved since.
    read_at: int = field(default=-1, init=False)

    def __repr__(self) -> str:
        """Describe the wait (phone masked) for logs."""
        return f"SharedWait({self.wait.describe()})"

    def span_from(self) -> datetime | None:
        """Return where the span showing every pending consent starts, or ``None`` (not known)."""
        return self.wait.span_from(self.listed_from)

    def expired(self, now: datetime) -> bool:
        """Return whether the not-found grace period has passed at ``now``."""
        return now.timestamp() >= self.not_found_deadline

    def ends(self, interval: float) -> Callable[[], bool]:
        """Return whether the wait times out unless this check decides (the next poll is ``interval`` away)."""
        return lambda: time.time() + interval + 1 >= self.deadline

    def check_alone(self, client: EtelecomClient, now: datetime, interval: float) -> Decision:
        """Check with the wait's own read (:meth:`ReplyWait.check`), as a lone wait does.

        :raises EtelecomError: what the listing raised once the client's retry budget was spent.
        """
        return self.wait.check(client, now, not_found_expired=self.expired(now), ends=self.ends(interval))


@dataclass
class PollResult:
    """What one poll gave its waits.

    :param decisions: the decision of each wait the shared read served.
    :param errors: the error of the shared read, for each wait it was to serve.
    :param alone: the waits to check with their own read in this poll.
    :param requests: how many pages the shared reads asked for.
    """

    decisions: dict[SharedWait, Decision] = field(default_factory=dict)
    errors: dict[SharedWait, EtelecomError] = field(default_factory=dict)
    alone: list[SharedWait] = field(default_factory=list)
    requests: int = 0


def _pending(waits: Iterable[SharedWait]) -> set[str]:
    return {consent_id for shared in waits for consent_id in shared.wait.pending}


class SharedSpan:
    """The reads of the poll that the waits of one OA share (kept in memory, never serialised or logged).

    :param oa_id: the Official Account every served wait names.
    """

    def __init__(self, oa_id: str) -> None:
        self.oa_id = oa_id
        self.feed = ChangeFeed(prove_first=True)
        #: Reads that may have moved the feed's watermark so far.
        self.reads = 0

    def __repr__(self) -> str:
        """Say which OA this span is of, and how its reads go."""
        return f"SharedSpan(oa_id={self.oa_id}, {self.feed.checks} read(s), changes given up: {self.feed.given_up})"

    def read(self, client: EtelecomClient, waits: list[SharedWait], now: datetime, interval: float) -> PollResult:
        """Read once for every wait the span can serve, and decide each of them with its own wait.

        :param waits: the waits checked in this poll.
        :param now: the time to decide at.
        :param interval: seconds to the next poll (whether a wait's deadline falls before it).
        :return: the decisions, the shared read's error for the waits it was to serve, and the
            waits to check alone. A non-:class:`EtelecomError` exception is a bug and propagates.
        """
        starts = {shared: shared.span_from() for shared in waits}
        servable = [
            shared
            for shared, start in starts.items()
            if start is not None and shared.wait.oa_id == self.oa_id and shared.wait.pending
        ]
        if len(servable) < MIN_SHARED:
            return PollResult(alone=list(waits))
        result = PollResult(alone=[shared for shared in waits if shared not in servable])
        # A wait the watermark moved past without it (it was not in that poll) may have an answer
        # below the watermark now: it is read as a joiner, by a span read of its own span.
        known = [s for s in servable if s.read_at == self.reads and s.wait.pending <= set(s.wait.settled)]
        joining = [s for s in servable if s not in known]
        found: dict[str, Consent] = {}
        changed = False
        try:
            if known or not self.reads:
                first = known or joining
                settled = {i: c for s in known for i, c in s.wait.settled.items()}
                found = self.feed.read(client, self._query(client, first, starts), _pending(first), settled)
                changed, result.requests = self.feed.changed and bool(known), self.feed.pages
                self.reads += 1
                joining = [s for s in joining if s not in first]
            if joining:  # after the read that set the watermark, and without moving it
                query, pending = self._query(client, joining, starts), _pending(joining)
                found.update(self.feed.read_span(client, query, pending))
                result.requests = self.feed.pages
        except EtelecomError as error:
            result.errors = dict.fromkeys(servable, error)
            return result
        for shared in servable:
            pending = shared.wait.pending
            mine = {i: found[i] for i in pending if i in found}
            by_changes = changed and shared in known
            decision = None
            if by_changes or len(mine) == len(pending):  # a span read shows every pending consent, or cannot serve
                decision = shared.wait.take(
                    mine,
                    now,
                    not_found_expired=shared.expired(now),
                    changed=by_changes,
                    ends=shared.ends(interval),
                )
            if decision is None:
                shared.read_at = -1
                result.alone.append(shared)
            else:
                shared.read_at = self.reads
                result.decisions[shared] = decision
        return result

    def _query(
        self, client: EtelecomClient, waits: list[SharedWait], starts: dict[SharedWait, datetime | None]
    ) -> ConsentQuery:
        start = min(at for s in waits if (at := starts[s]) is not None)
        return ConsentQuery.build(
            oa_id=self.oa_id, date_from=start, sort="created_at", normalize_phones=client.config.normalize_phones
        )
