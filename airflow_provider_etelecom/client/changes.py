"""How a wait reads the listing: the whole span once, then only what changed since the last check.

No Airflow here. :class:`ChangeFeed` is the reading strategy of
:class:`~airflow_provider_etelecom.client.replies.ReplyWait`; what the consents it returns *mean* is
decided there.

* A **span read** is the proven listing: the span's pages (oldest first from the earliest pending
  consent, or newest first), stopping once every pending id was seen. The first check is one, and
  so is every check until every wanted id has been listed once (listing lag).
* A **changed read** lists the same span with ``sort=-updated_at`` and stops at the first consent
  whose ``updated_at`` is older than the *watermark*: the newest ``updated_at`` on the first page
  of an earlier read, minus :data:`WATERMARK_MARGIN_S`. A consent answered while a check pages
  has an ``updated_at`` at least as new as that first page, so the next check sees it; the margin
  covers the platform's one-second clock and a reply written a moment before it shows.

Whether the platform sorts by ``updated_at``, and whether it moves ``updated_at`` when a customer
answers, are inferred, not documented. So the changed read is checked and, when in doubt, given up
for the rest of the wait (one warning) in favour of span reads:

* the platform refuses the sort (400): give up;
* a changed read is not newest ``updated_at`` first, or echoes another sort (the sort was
  ignored): discard the read, give up;
* every :data:`VERIFY_EVERY`-th check is a span read that verifies the feed: a pending consent it
  finds answered with an ``updated_at`` older than the watermark is one the changed reads could
  never see (``updated_at`` not moved on reply); and a changed read run right after it must
  return every answer it found at or above the watermark (a sort ignored without any page out of
  order: the default order can stop a changed read at its first consent). Either: give up.
* the last check of a wait (``last``, or a decision the wait asks to confirm) is a span read, and so
  is every check of a one-page span (``max_pages=1``): a changed read ends only at the watermark
  or on an empty page, so it would cost a second request where the span read costs one.

A changed read cut by ``max_pages`` before reaching the watermark (the listing did not reach its
end) is replaced by a span read for that check, and so is one that breaks the paging contract.
The watermark moves only once a read is complete: a read that fails half-way leaves it where it
was, so the next read covers what the failed one did not reach.

A watch (``pending=None``: the reply watcher) wants every consent of its span, including those not
listed yet: its span reads list the span to its end, its changed reads return every consent
updated since the watermark, and its ``margin`` covers the listing lag of new consents.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from airflow_provider_etelecom.client.client import EtelecomClient
from airflow_provider_etelecom.client.models import Consent, consent_time
from airflow_provider_etelecom.client.query import ConsentQuery
from airflow_provider_etelecom.exceptions import EtelecomBadRequestError, EtelecomContractError, EtelecomError

log = logging.getLogger(__name__)

#: The order of a changed read: most recently updated first.
CHANGED_SORT = "-updated_at"
#: Seconds subtracted from the newest ``updated_at`` seen: the platform writes whole seconds, and a
#: reply may be stamped a moment before the page that shows it is served.
WATERMARK_MARGIN_S = 2.0
#: Every this many checks, the check is a span read that verifies the changed reads.
VERIFY_EVERY = 6


def _updated_at(consent: Consent) -> float | None:
    """Return ``updated_at`` in epoch seconds, or ``None`` when it is missing or not a time."""
    at = consent_time(consent, "updated_at")
    return None if at is None else at.timestamp()


@dataclass
class ChangeFeed:
    """What a wait knows about reading its span between checks (kept in memory, never serialised).

    :param newest: the newest ``updated_at`` seen on the first page of a read (epoch seconds).
    :param checks: the checks that read the listing so far.
    :param given_up: why changed reads were given up for this wait (``None``: in use).
    :param pages: pages the last check read.
    :param changed: whether the last check was a changed read.
    :param margin: seconds below ``newest`` a changed read still reads (:data:`WATERMARK_MARGIN_S`).
    :param prove_first: read changes only once a verification proved them (a changed read right
        after a span read returned every answer the span found): until then every check is a span
        read, so no answer is ever seen later than a span read sees it. For a read that serves
        waits that would each read their span alone (a shared poll).
    :param proven: whether a verification proved the changed reads.
    """

    newest: float | None = None
    checks: int = 0
    given_up: str | None = None
    pages: int = 0
    changed: bool = False
    margin: float = WATERMARK_MARGIN_S
    prove_first: bool = False
    proven: bool = False
    _seen: float | None = dataclasses.field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        """Say what the last check read, for the wait's log line."""
        return f"{self.pages} page(s) of {'changes' if self.changed else 'the span'}"

    def read(
        self,
        client: EtelecomClient,
        query: ConsentQuery,
        pending: set[str] | None,
        known: Mapping[str, Consent],
        *,
        last: bool = False,
    ) -> dict[str, Consent]:
        """Read the span once and return the latest state of the pending consents found, by id.

        :param query: the span (the proven listing).
        :param pending: the ids whose consent may still change; ``None``: every consent of the span
            (a watch), so a span read lists the span to its end and a changed read returns every
            consent updated since the watermark.
        :param known: the latest state of every wanted consent listed so far.
        :param last: a span read is required (the wait would end after this check).
        :raises EtelecomError: what the listing raised once the client's retry budget was spent
            (the watermark is then left where it was).
        """
        self.pages, self.changed = 0, False
        if pending is not None and not pending:
            return {}
        self.checks += 1
        self._seen = self.newest
        found = self._read(client, query, pending, known, last=last)
        self.newest = self._seen  # the read is complete: what its first pages showed is behind us
        return found

    def mark(self, client: EtelecomClient, query: ConsentQuery) -> None:
        """Take the watermark from one page of changes, read before a span read that has none.

        A span read's first page is its oldest consents, whose ``updated_at`` may be a day old: the
        next changed read would reach back that far. A page served before the span read began shows
        nothing newer than that moment, so the changes after it are all at or above it. A refused
        sort gives changed reads up at once.
        """
        try:
            page = next(iter(client.listing(dataclasses.replace(query, sort=CHANGED_SORT, max_pages=1))), None)
        except (EtelecomBadRequestError, EtelecomContractError) as error:
            self._give_up_after(error)
            return
        self._seen = self.newest
        if page is not None:
            self._saw(page["consents"])
        self.newest = self._seen

    def _read(
        self,
        client: EtelecomClient,
        query: ConsentQuery,
        pending: set[str] | None,
        known: Mapping[str, Consent],
        *,
        last: bool,
    ) -> dict[str, Consent]:
        verify, before = last or self.checks % VERIFY_EVERY == 0, self.newest
        # A one-page span (``max_pages=1``, a single consent's wait) is read in one request when it shows
        # the consent; a changed read could only prove itself complete with a second one, so none is made.
        possible = self.given_up is None and query.max_pages != 1
        changes = possible and (self.proven or not self.prove_first)
        all_known = pending is None or pending <= set(known)
        if changes and before is not None and not verify and all_known:
            found = self._read_changed(client, query, pending, before - self.margin)
            if found is not None:
                return found
        found = self._read_span(client, query, pending)
        if before is not None and possible and self.given_up is None:
            self._verify(client, query, found, known, before - self.margin, cross=not last and all_known)
        return found

    def _saw(self, first_page: Iterable[Consent]) -> None:
        times = [at for at in map(_updated_at, first_page) if at is not None]
        if times:
            self._seen = max(times) if self._seen is None else max(self._seen, *times)

    def read_span(self, client: EtelecomClient, query: ConsentQuery, pending: set[str]) -> dict[str, Consent]:
        """Read the span for ``pending`` without moving the watermark, and return the pending consents found.

        For a read beside this feed's own in the same poll (waits joining a shared poll): its first
        page may be served after an answer the feed's read missed, so its times must not raise the
        watermark above that answer.
        """
        return self._read_span(client, query, pending, saw=False)

    def _read_span(
        self, client: EtelecomClient, query: ConsentQuery, pending: set[str] | None, *, saw: bool = True
    ) -> dict[str, Consent]:
        found: dict[str, Consent] = {}
        for page in client.listing(query, sort_fallback=True):
            self.pages += 1
            if saw and self.pages == 1:
                self._saw(page["consents"])
            found.update(
                (consent["id"], consent)
                for consent in page["consents"]
                if consent.get("id") and (pending is None or consent["id"] in pending)
            )
            if pending is not None and len(found) == len(pending):
                break
        return found

    def _read_changed(
        self, client: EtelecomClient, query: ConsentQuery, pending: set[str] | None, watermark: float
    ) -> dict[str, Consent] | None:
        """Return the pending consents updated since ``watermark``, or ``None`` to read the span instead."""
        found: dict[str, Consent] = {}
        previous: float | None = None
        listing = client.listing(dataclasses.replace(query, sort=CHANGED_SORT))
        try:
            for page in listing:
                self.pages += 1
                echoed = page["paging"].get("sort")
                if echoed and echoed != CHANGED_SORT:
                    self._give_up(f"the listing answered sort={echoed!r} to sort={CHANGED_SORT!r}")
                    return None
                if self.pages == 1:
                    self._saw(page["consents"])
                for consent in page["consents"]:
                    at = _updated_at(consent)
                    if at is None or (previous is not None and at > previous):
                        self._give_up(
                            f"the listing asked for sort={CHANGED_SORT!r} did not come back newest updated_at "
                            f"first (consent {consent.get('id')}): the platform seems to ignore that sort"
                        )
                        return None
                    if at < watermark:
                        self.changed = True
                        return found
                    previous = at
                    if pending is None or consent["id"] in pending:
                        found[consent["id"]] = consent
                        if pending is not None and len(found) == len(pending):  # nothing else matters
                            self.changed = True
                            return found
        except (EtelecomBadRequestError, EtelecomContractError) as error:
            self._give_up_after(error)
            return None
        if not listing.ended:
            return None  # cut by max_pages before the watermark: the changes below the cut are unknown
        self.changed = True
        return found

    def _verify(
        self,
        client: EtelecomClient,
        query: ConsentQuery,
        found: Mapping[str, Consent],
        known: Mapping[str, Consent],
        watermark: float,
        *,
        cross: bool,
    ) -> None:
        """Give up changed reads if a span read found an answer the changed reads miss.

        An answer stamped older than the watermark is one no changed read can see (``updated_at``
        not moved on reply). With ``cross``, a changed read right after the span must also return
        every answer the span found at or above the watermark: those were written before it began,
        so a platform that ignores the sort (serving its default order, which may stop the read at
        once) is caught here even when no page breaks the order.
        """
        answered = [
            (consent, _updated_at(consent))
            for consent in found.values()
            if (before := known.get(consent["id"])) is not None
            and before.get("reply_status") == "S" != consent.get("reply_status")
        ]
        for consent, at in answered:
            if at is None or at < watermark:
                self._give_up(
                    f"consent {consent['id']} left S with updated_at={consent.get('updated_at')!r}, older than the "
                    f"changes already read: the platform does not seem to move updated_at on a reply"
                )
                return
        if not (cross and answered):
            return
        seen = self._seen
        try:
            changed = self._read_changed(client, query, set(found), watermark)
        except EtelecomError as error:  # the span's answer stands; the comparison waits for the next one
            log.info("Comparing a changed read with the span was not possible this check: %s", error.message)
            changed = None
        # This check's answer is the span's: what the comparison read (a reply written after the span
        # passed its consent) is not returned, so its first page must not move the watermark past it.
        self.changed, self._seen = False, seen
        missed = [consent["id"] for consent, _ in answered if changed is not None and consent["id"] not in changed]
        self.proven = self.proven or (changed is not None and not missed and self.given_up is None)
        if missed and self.given_up is None:
            self._give_up(
                f"a changed read right after the span missed consent {missed[0]}, which the span shows answered "
                f"with updated_at={found[missed[0]].get('updated_at')!r}: the platform seems to ignore "
                f"sort={CHANGED_SORT!r}"
            )

    def _give_up_after(self, error: EtelecomBadRequestError | EtelecomContractError) -> None:
        """Give changed reads up after a changed read's refused sort (400) or broken paging contract."""
        if isinstance(error, EtelecomBadRequestError):
            self._give_up(f"the platform refused sort={CHANGED_SORT!r} ({error.message})")
        else:
            self._give_up(f"the changed read broke the paging contract ({error.message})")

    def _give_up(self, why: str) -> None:
        self.given_up = why
        log.warning("Reading only what changed is off for the rest of this wait, each check lists the span: %s.", why)
