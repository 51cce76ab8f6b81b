"""How a ``ListRequestConsent`` listing is walked: the end, the shape, once each, ties, order, the window.

No Airflow here. :class:`Listing` is the one paging loop of the provider; every export, transfer,
wait and lookup goes through it. It trusts only what eTelecom documents or what the listing in hand
has shown (``shared/reference/etelecom-api.md``; the house style's "end, drop and order only on a
promise"):

* **The end.** A listing ends on a page with no consents (``[]`` or Go's ``null``), or at
  ``max_pages``. A page shorter than ``limit`` is not an end (a backend may drop rows after its SQL
  ``LIMIT``, or cap pages below the limit asked); neither is a page without a ``next`` cursor: the
  listing continues from its last consent by a date bound. An empty page that hands a new ``next``
  is followed (rows dropped after the ``LIMIT`` can empty a page mid-listing). A listing that keeps
  its window on this side (``date_filters_on_client``) also ends once its pages, in order, pass it.
* **The shape.** Every answer is checked inside the client's retry loop (:func:`parse_listing`):
  a 200 with an error body, a missing or non-list ``consents``, or a page with consents and no
  ``paging`` is malformed, retried like a network fault, then a loud failure.
* **Once each.** Every consent id is yielded at most once (:class:`~.seen.SeenIds`); consents served
  again are counted (``ClientStats.repeats``: a cursor that repeats rows; ``rereads``: the expected
  overlap of a date-bound step).
* **Ties.** What the cursor holds is unknown: a ``(created_at, id)`` keyset, ``created_at`` alone
  compared with ``<`` (the rest of a second at a page boundary is skipped) or ``<=`` (repeated), or
  an offset. Until the listing has shown which (:class:`CursorKind`: learnt at a boundary the cursor
  crossed inside a tie, for free, or where only the cursor can go on, a second holding a whole page,
  from the ties the page holds: two small probe requests a lesson, :data:`MAX_PROBES` requests at
  most, :data:`KEYSET_VOTES` agreeing ties when times are shown at whole seconds), and whenever the
  cursor skips, the listing moves on by a date bound instead of the cursor: the next request asks for
  everything up to the end of the last consent's second, so a second shared across a page boundary
  is read whole (about one consent read twice per page), wherever the page ends in it. A second
  holding more consents than the platform pages through fails loudly, naming it.
* **Order.** A date-bound step (and, with the date filters applied on this side, the end once the
  pages pass the window) is taken only while every page, and every page boundary, came in
  ``created_at`` order; the first inversion is logged once, and a listing that took one lists its
  window again by the cursor (consents served again dropped).
* **The window.** The date filters sent reach :data:`~.validation.FILTER_MARGIN` beyond the window
  asked; a consent answered outside what was sent (beyond that margin, plus a second) proves the
  platform filters differently (another time zone, another field), and fails loudly naming the
  connection setting that fixes it (:class:`~airflow_provider_etelecom.exceptions.EtelecomContractError`).
* **Cursors.** A cursor refused after the listing was under way (an expired cursor) resumes from the
  last consent by a date bound.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_etelecom.client.models import Consent, ConsentPage, Paging
from airflow_provider_etelecom.client.query import ConsentQuery
from airflow_provider_etelecom.client.seen import SeenIds
from airflow_provider_etelecom.client.validation import floor_second, format_api_time
from airflow_provider_etelecom.exceptions import (
    EtelecomBadRequestError,
    EtelecomContractError,
    EtelecomMalformedResponseError,
    EtelecomPagingError,
)

if TYPE_CHECKING:
    from airflow_provider_etelecom.client.client import EtelecomClient


log = logging.getLogger(__name__)

LIST_ENDPOINT = "Zalo/ListRequestConsent"
#: The sorts a listing can be walked exactly in (``None``: the platform's default, newest first).
CREATED_SORTS: frozenset[str | None] = frozenset({None, "created_at", "-created_at"})
#: How far beyond the date filters sent an answered consent may lie before it proves the platform
#: filters differently: the filters already reach :data:`FILTER_MARGIN` past the window, and a time
#: shown rounded may lie half a second past the one filtered on.
WINDOW_TOLERANCE = timedelta(seconds=1)
#: Requests a client may spend learning the cursor from ties inside pages (two a lesson; one for an
#: attempt that rows dropped after the LIMIT spoil) before it moves by date bounds for good where a
#: page ends inside a tie.
MAX_PROBES = 12
#: Ties shown at whole seconds that must agree before a cursor is taken for a keyset (a tie whose
#: times carry fractions settles it at once).
KEYSET_VOTES = 3
#: Consents the lesson's second request asks for (a few, so that rows dropped after the LIMIT leave one).
PROBE_STEP = 10
#: Pages in a row that bring nothing new before a listing gives up loudly (an offset cursor while
#: consents are inserted may serve a few; a platform looping on its own cursors serves many).
MAX_STALLED_PAGES = 10
#: No platform is taken to serve pages of fewer consents than this, whatever it did so far.
SMALLEST_CAP = 10
_ID_FIELDS = ("id", "shop_id", "user_id", "oa_id")
_TIME_FIELDS = ("created_at", "updated_at", "expires_at", "delivery_time")
_ONE_SECOND = timedelta(seconds=1)
#: What to set when the platform reads or shows times, or filters, otherwise than the provider assumes.
_FILTER_SETTINGS = (
    "If it reads the filters' wall clock in its own zone, set 'platform_filter_zone' (e.g. 'Asia/Ho_Chi_Minh') in "
    "the connection's extra; if it shows local times labelled Z, set 'platform_shown_zone' (no extra cost once "
    "set). Otherwise it may filter on updated_at: set 'date_filters_on_client': true (each window then lists the "
    "whole history newer than it). `python -m airflow_provider_etelecom.contract` tells which."
)


class CursorKind(str, enum.Enum):
    """What the platform's ``next`` cursor holds, as far as the listings in hand have shown it."""

    UNKNOWN = "unknown"
    """Not shown yet: the listing moves by date bounds, which need no cursor."""
    KEYSET = "keyset"
    """It continued inside a tie (a ``(created_at, id)`` keyset, or an offset): followed."""
    REPEATING = "repeating"
    """It repeated the tie at the boundary (``created_at <=``): followed, the repeats dropped."""
    SKIPPING = "skipping"
    """It skipped the rest of a tie (``created_at <``): never followed, the listing moves by date bounds."""


@dataclass
class PlatformFacts:
    """What a client has learnt about the platform from listings in hand; parallel windows share one.

    :param cursor: what the cursor holds (:class:`CursorKind`).
    :param probes_left: requests left for learning it.
    :param ordered: every page, and every page boundary, came in ``created_at`` order so far.
    :param short_pages: a page shorter than the platform serves was followed by more (drops, a cap).
    :param keyset_votes: ties shown at whole seconds that the cursor went on through, inside them.
    :param precise_cursor: whether the cursor went on right after the consent it was handed at (it
        holds the time as precisely as it is shown); ``None`` until a crowded second needed to know.
    :param refused_sorts: sorts the platform refused (400) and that a listing asked with fallback
        then read in the default order.
    """

    cursor: CursorKind = CursorKind.UNKNOWN
    probes_left: int = MAX_PROBES
    ordered: bool = True
    short_pages: bool = False
    keyset_votes: int = 0
    precise_cursor: bool | None = None
    refused_sorts: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    learning: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    """Held for a whole lesson: lessons run one at a time, and waiting on it waits for one in flight."""

    def take_probe(self) -> bool:
        """Spend one request of the learning budget, if any is left."""
        with self.lock:
            if self.probes_left <= 0:
                return False
            self.probes_left -= 1
            return True

    def saw_short_pages(self) -> None:
        """Record a short page that was not the last (rows dropped after the LIMIT, or a lower cap)."""
        with self.lock:
            if self.short_pages:
                return
            self.short_pages = True
        log.info("eTelecom served a short page in the middle of a listing: a short page is never taken as the end.")

    def vote_keyset(self, how: str) -> None:
        """Count a tie shown at whole seconds that the cursor went on through: a keyset once enough agree.

        A tie shown at whole seconds may not be a tie where the platform stores fractions, and a cursor on
        ``created_at`` alone goes on through such a tie as a keyset does; several ties must agree.
        """
        with self.lock:
            self.keyset_votes += 1
            enough = self.keyset_votes >= KEYSET_VOTES
        if enough:
            self.learn_cursor(CursorKind.KEYSET, f"{how}, at {KEYSET_VOTES} ties shown at whole seconds")

    def learn_cursor(self, kind: CursorKind, how: str) -> None:
        """Record what the cursor holds (the first lesson stands), with one log line."""
        with self.lock:
            if self.cursor is not CursorKind.UNKNOWN:
                return
            self.cursor = kind
        log.info("eTelecom's listing cursor is %s (%s).", kind.value, how)

    def distrust_cursor(self, how: str) -> None:
        """Take back a cursor learnt as a keyset: it is not followed again (logged once)."""
        with self.lock:
            if self.cursor is not CursorKind.KEYSET:
                return
            self.cursor, self.precise_cursor = CursorKind.SKIPPING, False
        log.warning(
            "eTelecom's listing cursor is not a (created_at, id) keyset after all (%s); no longer followed.", how
        )

    def distrust_order(self, how: str) -> None:
        """Record the first page or boundary out of ``created_at`` order (logged once)."""
        with self.lock:
            if not self.ordered:
                return
            self.ordered = False
        log.warning(
            "eTelecom served consents out of created_at order (%s): from now on no listing ends or moves on by "
            "order, and a page without a next cursor cannot be continued.",
            how,
        )


def _error_body(data: Mapping[str, Any]) -> str | None:
    if "errors" in data:
        return f"an 'errors' body ({str(data.get('errors'))[:200]})"
    if "code" in data or "msg" in data:
        return f"an error body (code={data.get('code')!r}, msg={str(data.get('msg'))[:200]!r})"
    return None


def _malformed(what: str) -> EtelecomMalformedResponseError:
    return EtelecomMalformedResponseError(
        f"eTelecom {LIST_ENDPOINT} answered HTTP 200 with {what}, which is not a listing; retried like a "
        f"network fault (a proxy or gateway may answer so).",
        endpoint=LIST_ENDPOINT,
        status=200,
    )


def normalize_consent(raw: Mapping[str, Any], zone: Any = None) -> Consent:
    """Return a consent with its ids as strings, whatever JSON type the platform used.

    A Go ``int64`` without the ``,string`` tag arrives as a JSON number; Python reads it exactly,
    and from here on every id is the decimal string the docs promise. With ``zone`` (the zone the
    platform shows its times in, although they are labelled ``Z``), the times are rewritten to
    true UTC.

    :raises EtelecomMalformedResponseError: for a consent without an ``id`` string or integer.
    """
    # An answer's dicts are this client's own (fresh from the JSON decoder): changed in place, not copied.
    consent = raw if isinstance(raw, dict) else dict(raw)
    for name in _ID_FIELDS:
        value = consent.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            consent[name] = str(value)
    if not isinstance(consent.get("id"), str) or not consent["id"]:
        raise _malformed(f"a consent whose id is {str(raw.get('id'))[:40]!r} (keys: {sorted(raw)[:10]})")
    if zone is not None:
        for name in _TIME_FIELDS:
            value = consent.get(name)
            if isinstance(value, str):
                consent[name] = _relabel(value, zone)
    return cast(Consent, consent)


def _relabel(value: str, zone: Any) -> str:
    """Read a time shown as ``zone``'s wall clock labelled ``Z`` and write it as true UTC."""
    try:
        wall = datetime.fromisoformat(value).replace(tzinfo=None)
        if wall.year <= 1:  # Go's zero time: unset
            return value
        return format_api_time(wall.replace(tzinfo=zone))
    except (ValueError, OverflowError):
        return value


def parse_listing(data: object, zone: Any = None) -> tuple[list[Consent], Paging]:
    """Check that an answer is a listing and return its consents (ids as strings) and paging block.

    Runs inside the client's retry loop, so a gateway's error page in a 200 is retried.
    ``"consents": null`` (Go's nil slice) is an empty page, and so is a ``paging`` block without
    ``consents`` nor ``next`` (protobuf's JSON leaves out an empty repeated field); an answer with
    neither ``consents`` nor ``paging`` is not a listing. (An empty page that hands a new ``next``
    is followed by the listing.)

    :param zone: the zone the platform shows its times in although labelled ``Z`` (see
        :func:`normalize_consent`).
    :raises EtelecomMalformedResponseError: for anything that is not a listing.
    """
    if not isinstance(data, dict):
        raise _malformed(f"JSON {type(data).__name__}")
    error = _error_body(data)
    if error is not None:
        raise _malformed(error)
    if "consents" not in data and not (isinstance(data.get("paging"), dict) and not data["paging"].get("next")):
        raise _malformed(f"an object without 'consents' (keys: {sorted(data)[:10]})")
    raw, paging = data.get("consents"), data.get("paging")
    if paging is not None and not isinstance(paging, dict):
        raise _malformed("'paging' that is not an object")
    paging = paging or {}
    next_cursor, limit = paging.get("next"), paging.get("limit")
    if (next_cursor is not None and not isinstance(next_cursor, str)) or (
        limit is not None and (isinstance(limit, bool) or not isinstance(limit, int))
    ):
        raise _malformed("a malformed 'paging' block (next must be a string, limit an integer)")
    if raw is None:
        return [], cast(Paging, paging)
    if not isinstance(raw, list) or not all(isinstance(c, dict) for c in raw):
        raise _malformed("'consents' that is not a list of objects")
    if raw and "paging" not in data:
        raise _malformed(f"{len(raw)} consents and no 'paging' block")
    return [normalize_consent(c, zone) for c in raw], cast(Paging, paging)


def _untied(times: list[float]) -> bool:
    """Tell whether a page's last consent shares its time with no other consent of the page."""
    return len(times) < 2 or times[-1] != times[-2]


def _epoch(value: object) -> float:
    """Return an RFC 3339 time in epoch seconds.

    :raises ValueError: when it is not one.
    """
    if not isinstance(value, str):
        raise ValueError(f"created_at {value!r} is not an RFC 3339 time string")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"created_at {value!r} has no offset")
    return moment.timestamp()


@dataclass(frozen=True)
class _Request:
    """One listing request: the window sent (``None`` when unbounded), the cursor and the page size."""

    sent_from: datetime | None
    sent_to: datetime | None
    after: str = ""
    limit: int = 100
    resumed: bool = False
    """The request continues by a date bound: consents it serves again are the expected overlap."""
    again: str = ""
    """The id of the consent the page before ended on, which this date-bound step must serve again."""
    again_at: float = 0.0
    """That consent's ``created_at`` (epoch seconds)."""

    def key(self, cursor: str) -> tuple[datetime | None, datetime | None, str]:
        """Return what identifies the page ``cursor`` leads to: the cursor under these date bounds."""
        return self.sent_from, self.sent_to, cursor

    def follow(self, cursor: str) -> _Request:
        """Return the request for the page after ``cursor``, within the same bounds."""
        return replace(self, after=cursor, resumed=False, again="", again_at=0.0)


class Listing:
    """One walk through ``ListRequestConsent`` for a query: iterate it for its pages (lazily).

    :param client: the client that sends the requests (its retry policy, facts and stats).
    :param query: the validated query.
    :param seen: the ids already yielded, shared by the windows of a parallel listing (default: own).
    :param sort_fallback: when the platform refuses the query's sort (400 on the first page), read in
        its default order instead (the waits and ``RequestConsentOperator`` do; an export that asked
        for a sort fails instead).
    """

    def __init__(
        self,
        client: EtelecomClient,
        query: ConsentQuery,
        *,
        seen: SeenIds | None = None,
        sort_fallback: bool = False,
    ) -> None:
        self._client = client
        self._facts = client.facts
        self.query = query
        self.seen = seen if seen is not None else SeenIds()
        self.sort_fallback = sort_fallback
        self.ended = False
        """Whether the listing reached its end (an empty page, or past the window it filters itself), not
        ``max_pages``."""
        self.relied_on_order = False
        self.relied_on_cursor = False
        """Whether the listing followed a cursor taken for a keyset (listed again by date bounds if it is not one)."""
        """Whether the listing moved on by a date bound (or ended past its window) trusting order: if the
        pages turn out not to come in ``created_at`` order, what it listed must be listed again."""
        self._crowded: int | None = None  # the second (epoch) a cursor is carrying the listing through
        self._sort = query.sort
        if self._sort in self._facts.refused_sorts and sort_fallback:
            self._sort = None
        config = client.config
        self._zone = config.shown_zone
        self._server_dates = not config.client_date_filters
        self._window = query.sent_window()
        self._lo = None if query.date_from is None else query.date_from.timestamp()
        self._hi = None if query.date_to is None else query.date_to.timestamp()

    @property
    def _by_created(self) -> bool:
        return self._sort in CREATED_SORTS

    @property
    def _descending(self) -> bool:
        return self._sort is None or self._sort.startswith("-")

    def __iter__(self) -> Iterator[ConsentPage]:
        return self._pages()

    # -- requests ------------------------------------------------------------------------------

    def _body(self, request: _Request) -> dict[str, Any]:
        config = self._client.config
        window = (request.sent_from, request.sent_to) if self._server_dates else (None, None)
        paging: dict[str, Any] = {"limit": request.limit}
        if self._sort:
            paging["sort"] = self._sort
        if request.after:
            paging["after"] = request.after
        return {"filter": self.query.filter_body(window=window, zone=config.filter_zone), "paging": paging}

    def _fetch(self, request: _Request) -> tuple[list[Consent], Paging]:
        zone = self._zone
        answer = self._client.call(LIST_ENDPOINT, self._body(request), parse=lambda data: parse_listing(data, zone))
        return cast(tuple[list[Consent], Paging], answer)

    def _fetch_first(self, request: _Request) -> tuple[list[Consent], Paging]:
        """Fetch the first page, falling back to the default order when the sort is refused (if allowed)."""
        try:
            return self._fetch(request)
        except EtelecomBadRequestError as error:
            if not self._sort:
                raise
            if not self.sort_fallback:
                error.message = (
                    f"{error.message} The listing asked for sort={self._sort!r}; eTelecom's docs do not confirm "
                    f"which sorts it accepts: try sort=None (newest first, by created_at)."
                )
                error.args = (error.message,)
                raise
            refused, self._sort = self._sort, None
            with self._facts.lock:
                self._facts.refused_sorts.add(refused)
            log.warning(
                "eTelecom refused sort=%r (%s); reading in its default order (newest first) instead.",
                refused,
                error.message,
            )
            return self._fetch(request)

    # -- the walk ------------------------------------------------------------------------------

    def _pages(self) -> Iterator[ConsentPage]:
        query, stats = self.query, self._client.stats
        request: _Request | None = _Request(*self._window, limit=query.page_size)
        previous: list[Consent] = []
        last_time: float | None = None  # the created_at of the last consent the order check accepted
        seen_cursors: set[tuple[datetime | None, datetime | None, str]] = set()
        largest = pages = stalled = 0
        first, replaying, relisting, short_before = True, False, False, False
        while request is not None and (query.max_pages is None or pages < query.max_pages):
            try:
                consents, paging = self._fetch_first(request) if first else self._fetch(request)
            except EtelecomBadRequestError as error:
                if not request.after:
                    raise
                # A cursor refused once the listing was under way (it expired while the client rode out
                # an outage): resume from the last consent by a date bound.
                request = self._resume(request, previous, f"the platform refused its cursor ({error.message})")
                stats.resumes += 1
                continue
            first = False
            if not consents:
                # The end, unless the empty page hands a new cursor: rows dropped after the LIMIT can empty
                # a page in the middle of a listing (bounded like any page that brings nothing new).
                next_cursor = paging.get("next") or ""
                if not next_cursor or next_cursor == request.after or request.key(next_cursor) in seen_cursors:
                    self.ended = True
                    return
                stalled += 1
                if stalled > MAX_STALLED_PAGES:
                    raise self._no_progress(stalled)
                seen_cursors.add(request.key(next_cursor))
                request = request.follow(next_cursor)
                continue
            pages += 1
            try:
                times = self._check(consents, request)
            except EtelecomContractError as error:
                if previous and [c["id"] for c in consents] == [c["id"] for c in previous]:
                    raise self._served_again(consents) from error  # a stale copy explains the window
                raise
            inside = [query.holds(t) for t in times]
            fresh = iter(self.seen.add_new([c["id"] for c, ok in zip(consents, inside, strict=True) if ok]))
            new = [next(fresh) if ok else True for ok in inside]
            served_again = len(new) - sum(new)
            if request.resumed:
                stats.rereads += served_again
            else:
                stats.repeats += served_again
            before = {c["id"] for c in previous}
            if request.after and self._facts.cursor is CursorKind.KEYSET:
                back = sum(c["id"] in before for c in consents)
                if back:
                    # A keyset's next page never holds a consent of the page it was handed on: this cursor
                    # is an offset (or its ties come in an unstable order), and where it served one consent
                    # again it may have skipped another.
                    self._facts.distrust_cursor(f"it served {back} consent(s) of the page before again")
            again = [not is_new or c["id"] in before for c, is_new in zip(consents, new, strict=True)]
            last_time = self._check_order(consents, times, again, last_time)
            if request.after:
                self._learn_from_boundary(previous, consents, times, again)
            if request.again:
                self._check_served_again(request, consents, times)
            kept = [c for c, is_new, ok in zip(consents, new, inside, strict=True) if is_new and ok]
            stats.pages += 1
            stats.consents += len(kept)
            yield ConsentPage(consents=kept, paging=paging, listed=len(consents))
            previous = consents
            if self._past_the_window(times):
                self.ended = self.relied_on_order = True
                return
            if query.max_pages is not None and pages >= query.max_pages:
                return
            # Progress: a consent this listing was not served before (in the window and new, or outside it
            # and not on the page before): what a listing looping on the same rows never shows.
            progress = not all(again)
            if short_before and progress and any(new):
                self._facts.saw_short_pages()  # the short page before was not the last
            replaying = relisting or (replaying and not progress)
            stalled = 0 if progress or replaying else stalled + 1
            if stalled > MAX_STALLED_PAGES:
                raise self._no_progress(stalled)
            # As large as the platform serves is judged against the largest page before (a cap the listing
            # has shown), or the limit while no page of SMALLEST_CAP or more was seen: full above half.
            served = min(request.limit, largest) if largest >= SMALLEST_CAP else request.limit
            full = 2 * len(consents) > served
            short_before = len(consents) < served
            largest = max(largest, len(consents))
            if self.relied_on_cursor and self._facts.cursor is CursorKind.SKIPPING:
                # The cursor this listing followed as a keyset turned out not to be one: list the window
                # again by date bounds, dropping what was listed already.
                log.warning("Listing the window again by date bounds, since its cursor is not a keyset after all.")
                self.relied_on_cursor, replaying, relisting, self._crowded = False, True, True, None
                seen_cursors.clear()
                last_time, previous = None, []  # the order is checked afresh from the window's start
                request = _Request(*self._window, limit=request.limit, resumed=True)
                continue
            if self.relied_on_order and not self._facts.ordered:
                # A date bound taken while the pages looked ordered may have left out consents a later
                # page showed were out of order: list the window again, by the cursor, dropping repeats.
                log.warning("Listing the window again by the cursor, since the pages came out of created_at order.")
                self.relied_on_order, replaying, self._crowded = False, True, None
                seen_cursors.clear()
                request = _Request(*self._window, limit=request.limit)
                continue
            # Listing again by date bounds, pages of consents already listed are the way back, not a stall.
            request = self._step(
                request, consents, times, paging, progress=progress or relisting, full=full, cursors=seen_cursors
            )
            if request is not None and request.after and self._facts.cursor is CursorKind.KEYSET:
                self.relied_on_cursor = True
        if request is None:
            self.ended = True

    def _step(
        self,
        request: _Request,
        consents: list[Consent],
        times: list[float],
        paging: Paging,
        *,
        progress: bool,
        full: bool,
        cursors: set[tuple[datetime | None, datetime | None, str]],
    ) -> _Request | None:
        """Return the request for the page after ``consents`` (``None``: the listing is over).

        :param progress: the page held a consent the listing was not served before.
        :param full: the page was about as large as the platform serves (more than half of it).
        :param cursors: the cursors followed so far, with the date bounds they were followed under (a
            repeat is refused; the same cursor under other bounds, an offset's, is another page).
        """
        facts, next_cursor = self._facts, paging.get("next") or ""
        # The request read nothing new: it reached no further than the step before.
        stalled = not progress and (request.resumed or next_cursor == request.after)
        if not stalled:
            following = self._crowded is not None and next_cursor and int(times[-1]) == self._crowded
            if following and not (facts.cursor is CursorKind.KEYSET or _untied(times)):
                # Inside the crowded second a page ended inside a tie: a cursor not shown to be a keyset
                # may skip the rest of it, and no date bound can split the second.
                raise self._stuck(consents, times)
            if not following:
                self._crowded = None
            if following or self._follows(next_cursor):
                if request.key(next_cursor) in cursors or next_cursor == request.after:
                    if len(times) > 1 and times[0] == times[-1]:
                        raise self._stuck(consents, times)  # a cursor on created_at alone, in a crowded second
                    raise EtelecomPagingError(
                        f"eTelecom {LIST_ENDPOINT} returned cursor {next_cursor[:40]!r} a second time after a page "
                        f"with new consents; stopping instead of looping. Retry the task; report it to eTelecom "
                        f"if it repeats.",
                        endpoint=LIST_ENDPOINT,
                    )
                cursors.add(request.key(next_cursor))
                return request.follow(next_cursor)
            if not next_cursor:
                self._client.stats.resumes += 1
            why = "a page without a next cursor" if not next_cursor else f"a {facts.cursor.value} cursor"
            resumed = self._resume(request, consents, why)
            if request.after or (resumed.sent_from, resumed.sent_to) != (request.sent_from, request.sent_to):
                return resumed
            # The same request again would serve this very page: it is as good as stalled.
        if not full and not facts.short_pages and int(times[0]) != int(times[-1]):
            # The page had room and reached past its last second's start: that second was read whole,
            # and what follows lies past it (the end of a listing, usually).
            return None if request.after else self._past(request, times)
        # Only the cursor can take the listing on from here; learn what it holds, from the ties of this
        # page (a probe that meets dropped rows also shows that room on a page proves nothing here).
        for at in range(len(times) - 2, -1, -1):
            with facts.learning:  # a lesson another window has in flight concludes first
                if facts.cursor is not CursorKind.UNKNOWN or facts.probes_left <= 0:
                    break
            if times[at] == times[at + 1]:
                self._learn_from_tie(request, consents, times, at)
        if not full and not facts.short_pages:
            # The page held all that is left up to its last second (it had room, on a platform that has not
            # shown a short page mid-listing): what follows lies past it.
            return None if request.after else self._past(request, times)
        if (
            request.key(next_cursor) not in cursors
            and next_cursor != request.after
            and self._through(request, consents, times, next_cursor, full=full)
        ):
            cursors.add(request.key(next_cursor))
            return request.follow(next_cursor)
        raise self._stuck(consents, times, short=not full)

    def _follows(self, next_cursor: str) -> bool:
        """Tell whether the listing goes on by the page's cursor rather than by a date bound.

        A cursor shown not to skip ties, yes. One not learnt yet, no, while the pages come in order: a
        cursor on ``created_at`` alone skips the rest of the second a page ends in, and nothing on the
        page tells whether that second goes on (its last consent may be the first of several). A date
        bound from that second reads it whole, for the cost of the consents read again.
        """
        facts = self._facts
        if not next_cursor:
            return False
        if not self._by_created or facts.cursor in (CursorKind.KEYSET, CursorKind.REPEATING):
            return True
        if facts.cursor is CursorKind.SKIPPING:
            return False
        # Without order (or server date filters) no date bound is a promise: the cursor.
        return not facts.ordered or not self._server_dates

    def _through(
        self, request: _Request, consents: list[Consent], times: list[float], next_cursor: str, *, full: bool
    ) -> bool:
        """Tell whether the cursor may carry the listing through a second that holds more than a page.

        Yes for a cursor shown to continue inside a tie; and for any other when the page ends on a time
        it shares with no other consent (fractions of a second shown), so that a cursor on ``created_at``
        alone has no tie to skip (``<``) or serve again but that one consent (``<=``), once the cursor was shown to
        hold the time as precisely as it is shown (:meth:`_keeps_its_place`: a cursor holding whole
        seconds or milliseconds skips the rest of the second all the same; where the page is too short to
        tell, on a platform that drops rows, only a full page must). The cursor is then followed, page by
        page while each ends untied, until a page ends past that second.
        """
        cursor = self._facts.cursor
        if not next_cursor:
            return False
        if cursor is not CursorKind.KEYSET:
            precise = self._keeps_its_place(request, consents, times) if _untied(times) else False
            if precise is False or (precise is None and full):
                return False
        self._crowded = int(times[-1])
        return True

    def _keeps_its_place(self, request: _Request, consents: list[Consent], times: list[float]) -> bool | None:
        """Tell whether the cursor goes on right after the consent it was handed at, once per client.

        The page is asked again ending between its two consents of closest (distinct) times, and that
        page's cursor is followed: the next consent of the page must come first. A cursor holding the time
        less precisely than it is shown (``UnixMilli``, whole seconds) goes past it, and is learnt as
        skipping; the closest pair is the likeliest to share the cursor's coarser unit. ``None``: not known
        (a page of one consent, a probe spoilt by dropped rows, no budget left).
        """
        facts, ids = self._facts, [c["id"] for c in consents]
        with facts.learning:
            if facts.cursor is CursorKind.KEYSET or facts.precise_cursor is not None:
                return facts.cursor is CursorKind.KEYSET or bool(facts.precise_cursor)
            gaps = [(abs(times[i] - times[i + 1]), i + 1) for i in range(len(times) - 1) if times[i] != times[i + 1]]
            if not gaps or not facts.take_probe():
                return None
            limit = min(gaps)[1]
            stats = self._client.stats
            try:
                head, paging = self._fetch(replace(request, limit=limit))
                stats.probes += 1
                # Rows dropped after the LIMIT may end it earlier: it ends where it ends, if on the page.
                cursor, ends = paging.get("next") or "", len(head)
                if not cursor or not 0 < ends < len(ids) or [c["id"] for c in head] != ids[:ends]:
                    return None
                if not facts.take_probe():
                    return None
                # The same limit: a cursor may be a page number the platform multiplies by the limit.
                after, _ = self._fetch(replace(request, limit=limit).follow(cursor))
                stats.probes += 1
            except EtelecomBadRequestError:
                return None
            if not after:
                return None
            following = [c["id"] for c in after]
            if following[0] == ids[ends] or following[:2] == ids[ends - 1 : ends + 1]:
                # Right after it (a keyset, an offset, '<' as precise as the times), or it again, then
                # right after it ('<='): the cursor holds the time as precisely as it is shown.
                facts.precise_cursor = True
                if following[0] != ids[ends]:
                    facts.learn_cursor(CursorKind.REPEATING, "a page ended between two times began the next with it")
                return True
            facts.precise_cursor = False
            facts.learn_cursor(
                CursorKind.SKIPPING,
                "a page ended between two times went on elsewhere than with the next consent: the cursor holds the "
                "time less precisely than it is shown",
            )
            return False

    def _past(self, request: _Request, times: list[float]) -> _Request | None:
        """Return the bound request that skips the last page's last second, read whole (``None``: nothing left)."""
        second = floor_second(datetime.fromtimestamp(times[-1], timezone.utc))
        self.relied_on_order = True
        if self._descending:
            if request.sent_from is not None and second <= request.sent_from:
                return None
            past = replace(request, sent_to=second, after="", resumed=True, again="", again_at=0.0)
        else:
            edge = second + _ONE_SECOND
            if request.sent_to is not None and edge >= request.sent_to:
                return None
            past = replace(request, sent_from=edge, after="", resumed=True, again="", again_at=0.0)
        # The bound asked already (a platform whose date_to includes the edge served the edge's
        # consents again, and nothing past them on a page with room): nothing is left.
        return None if past == request else past

    def _resume(self, request: _Request, last_page: list[Consent], why: str) -> _Request:
        """Return the request that continues after ``last_page`` by a date bound, without a cursor.

        Newest first, it asks for everything before the end of the last consent's second (a shown
        time may lie up to a second before the stored one); oldest first, from a second before the
        last consent's second. The consents read again are dropped by the once-each rule.

        :raises EtelecomContractError: when no date bound is a promise: nothing listed yet, pages
            out of ``created_at`` order, a sort that is not by ``created_at``, or the date filters
            applied by the client.
        """
        if not last_page or not self._by_created or not self._facts.ordered or not self._server_dates:
            reason = (
                "nothing was listed yet"
                if not last_page
                else "the listing is not sorted by created_at"
                if not self._by_created
                else "the pages came out of created_at order"
                if not self._facts.ordered
                else "the date filters are applied by the client (date_filters_on_client)"
            )
            raise EtelecomContractError(
                f"eTelecom {LIST_ENDPOINT} served {why}, and the listing cannot continue from its last consent by a "
                f"date bound because {reason}. Nothing was published; report the behaviour to eTelecom.",
                endpoint=LIST_ENDPOINT,
                behaviour="listing_cannot_continue",
            )
        last = last_page[-1]
        at = _epoch(last.get("created_at"))
        second = floor_second(datetime.fromtimestamp(at, timezone.utc))
        self.relied_on_order = True
        log.debug("Listing continues by a date bound after %s (%s).", format_api_time(second), why)
        step = replace(request, after="", resumed=True, again=last["id"], again_at=at)
        if self._descending:
            bound = second + _ONE_SECOND
            return replace(step, sent_to=bound if request.sent_to is None else min(request.sent_to, bound))
        bound = second - _ONE_SECOND
        return replace(step, sent_from=bound if request.sent_from is None else max(request.sent_from, bound))

    def _no_progress(self, stalled: int) -> EtelecomContractError:
        return EtelecomContractError(
            f"eTelecom {LIST_ENDPOINT} served {stalled} pages in a row with no consent not listed before; the "
            f"listing stops instead of looping. Nothing was published; report it to eTelecom.",
            endpoint=LIST_ENDPOINT,
            behaviour="no_progress",
        )

    def _served_again(self, consents: list[Consent]) -> EtelecomContractError:
        """A page served again for a request that asked past it (or outside it): no way on."""
        return EtelecomContractError(
            f"eTelecom {LIST_ENDPOINT} served the page ending at {consents[-1].get('created_at')} again for a "
            f"request that asked past it (by a date bound, or by the cursor it had handed), so the listing cannot "
            f"go on. A cache between this worker and eTelecom that answers every request alike does this, and so "
            f"does a platform ignoring the filters and the cursor. Nothing was published; look for a caching "
            f"proxy, then report it to eTelecom.",
            endpoint=LIST_ENDPOINT,
            behaviour="no_progress",
        )

    def _stuck(self, consents: list[Consent], times: list[float], *, short: bool = False) -> EtelecomContractError:
        last = datetime.fromtimestamp(times[-1], timezone.utc)
        second = floor_second(last)
        crowd = sum(1 for t in times if floor_second(datetime.fromtimestamp(t, timezone.utc)) == second)
        if not short and crowd < len(times):
            # Not a crowded second: the page holds others. A request asking past it served it again.
            return self._served_again(consents)
        why = (
            f"may hold more consents than the {crowd} a short page showed (the platform serves short pages in "
            f"the middle of listings, so room on a page proves nothing)"
            if short
            else f"holds at least {crowd} consents, more than the platform serves on a page"
        )
        return EtelecomContractError(
            f"eTelecom {LIST_ENDPOINT}: the second {format_api_time(second)} {why}, and its cursor (learnt: "
            f"{self._facts.cursor.value}) cannot be shown to page through a second exactly, so the listing cannot "
            f"go past it without risking losing or repeating consents. Nothing was published. Report it to "
            f"eTelecom (a cursor holding (created_at, id) pages through it).",
            endpoint=LIST_ENDPOINT,
            behaviour="crowded_second",
        )

    # -- checks --------------------------------------------------------------------------------

    def _check(self, consents: list[Consent], request: _Request) -> list[float]:
        """Return each consent's ``created_at`` (epoch s) and check it against the window sent.

        :raises EtelecomMalformedResponseError: for a consent without a readable ``created_at``.
        :raises EtelecomContractError: for a consent outside the date filters sent.
        """
        times: list[float] = []
        for consent in consents:
            try:
                times.append(_epoch(consent.get("created_at")))
            except ValueError as error:
                raise EtelecomMalformedResponseError(
                    f"eTelecom {LIST_ENDPOINT} answered with a consent whose {error}; the listing cannot check "
                    f"its window or order on it.",
                    endpoint=LIST_ENDPOINT,
                    status=200,
                ) from None
        if not self._server_dates:
            return times
        low = None if request.sent_from is None else (request.sent_from - WINDOW_TOLERANCE).timestamp()
        high = None if request.sent_to is None else (request.sent_to + WINDOW_TOLERANCE).timestamp()
        for consent, moment in zip(consents, times, strict=True):
            if (low is not None and moment < low) or (high is not None and moment > high):
                raise self._outside(consent, moment, request)
        return times

    def _outside(self, consent: Consent, moment: float, request: _Request) -> EtelecomContractError:
        sent_from, sent_to = request.sent_from, request.sent_to
        edge = sent_from if sent_from is not None and moment < sent_from.timestamp() else sent_to
        assert edge is not None
        hours = (moment - edge.timestamp()) / 3600
        sent = ", ".join(
            f"{name}={format_api_time(value)}"
            for name, value in (("date_from", sent_from), ("date_to", sent_to))
            if value
        )
        return EtelecomContractError(
            f"eTelecom {LIST_ENDPOINT} answered consent {consent.get('id')} created_at={consent.get('created_at')!r}, "
            f"{abs(hours):.2f} h {'before' if hours < 0 else 'after'} the date filters sent ({sent}): the platform "
            f"filters differently than the provider assumes, so no window it answers can be trusted, and nothing "
            f"was published. A whole number of hours points at a time zone. {_FILTER_SETTINGS}",
            endpoint=LIST_ENDPOINT,
            behaviour="window_mismatch",
        )

    def _past_the_window(self, times: list[float]) -> bool:
        """Tell whether a listing filtered on this side has passed its window, the pages in order so far.

        Only with ``date_filters_on_client``: the platform's date filters are not used, and without this
        end each listing would read the whole history, not only what lies on the near side of its window.
        """
        if self._server_dates or not self._by_created or not self._facts.ordered or not times:
            return False
        if self._descending:
            return self._lo is not None and times[-1] < self._lo
        return self._hi is not None and times[-1] >= self._hi

    def _check_served_again(self, request: _Request, consents: list[Consent], times: list[float]) -> None:
        """Check that a date-bound step served again the consent the page before ended on.

        The step asks for everything up to the end of that consent's second (newest first; from the second
        before it, oldest first), so that consent must come back unless its second holds more than the
        page. A page that reaches past that second without it proves the platform did not read the date
        bound as sent: a platform reading the filters' wall clock in its own zone jumps hours at every step,
        and what it jumps over would be lost with no consent ever answered outside the window.

        :raises EtelecomContractError: naming the consent and ``platform_filter_zone``.
        """
        if any(consent["id"] == request.again for consent in consents):
            return
        second = float(int(request.again_at // 1))
        past = any(t < second for t in times) if self._descending else any(t >= second + 1 for t in times)
        if not past:
            return  # its second fills this page: it comes on a later one
        bound = request.sent_to if self._descending else request.sent_from
        raise EtelecomContractError(
            f"eTelecom {LIST_ENDPOINT} was asked {'date_to' if self._descending else 'date_from'}="
            f"{format_api_time(bound) if bound else None} to go on from consent {request.again} "
            f"(created_at {format_api_time(datetime.fromtimestamp(request.again_at, timezone.utc))}), and answered "
            f"consents beyond it without it: the platform does not read the date filters as sent (or the consent "
            f"was deleted meanwhile: then a retry succeeds), so what it skipped cannot be known, and nothing was "
            f"published. {_FILTER_SETTINGS}",
            endpoint=LIST_ENDPOINT,
            behaviour="window_mismatch",
        )

    def _check_order(
        self, consents: list[Consent], times: list[float], again: list[bool], last: float | None
    ) -> float | None:
        """Check the page, and its boundary with the one before, in ``created_at`` order; return the last time.

        Consents served again are left out: a repeat is not an inversion.
        """
        if not self._by_created or not self._facts.ordered:
            return last
        descending = self._descending
        for consent, moment, repeat in zip(consents, times, again, strict=True):
            if repeat:
                continue
            if last is not None and (moment > last if descending else moment < last):
                self._facts.distrust_order(
                    f"consent {consent['id']} created_at={consent.get('created_at')!r} came after one created "
                    f"{'earlier' if descending else 'later'}, sort={self._sort or '-created_at'}"
                )
                return last
            last = moment
        return last

    # -- learning the cursor -------------------------------------------------------------------

    def _learn_from_boundary(
        self, previous: list[Consent], consents: list[Consent], times: list[float], again: list[bool]
    ) -> None:
        """Learn the cursor from a boundary it crossed inside a tie, or by serving the tie again."""
        if not previous or not self._by_created or self._facts.cursor is not CursorKind.UNKNOWN:
            return
        if again[0]:
            self._facts.learn_cursor(CursorKind.REPEATING, "the page after a boundary began with its tie again")
        elif times[0] == _epoch(previous[-1].get("created_at")):
            self._keyset(times, "the page after a boundary went on inside its tie")

    def _keyset(self, times: list[float], how: str) -> None:
        """A cursor went on inside a tie: a keyset, settled at once by a tie shown with fractions."""
        if any(t % 1 for t in times):
            self._facts.learn_cursor(CursorKind.KEYSET, how)
        else:
            self._facts.vote_keyset(how)

    def _learn_from_tie(self, request: _Request, consents: list[Consent], times: list[float], tie: int) -> None:
        """Learn the cursor from the tie at ``tie`` inside this page: two small requests that end a page inside it.

        Only where the listing needs it: a second holding a whole page, which only the cursor can carry
        the listing through. The page is asked again with ``limit`` ending it inside the tie, and the cursor
        that page hands back is followed for a few consents: the rest of the tie (a keyset, or an offset),
        the tie again (``<=``), or what lies below it (``<``, which skips). Rows the platform drops after
        its LIMIT may end the shorter page earlier: the probe then reads the boundary where it did end, if
        that is a tie.
        """
        facts = self._facts
        if not self._by_created or facts.cursor is not CursorKind.UNKNOWN or not facts.ordered:
            return
        # One lesson at a time across parallel windows: a window that needs the cursor learnt (a crowded
        # second) sees every lesson begun before it concluded, never a budget spent by lessons in flight.
        with facts.learning:
            if facts.cursor is CursorKind.UNKNOWN and facts.ordered and facts.take_probe():
                self._lesson(request, consents, times, tie)

    def _lesson(self, request: _Request, consents: list[Consent], times: list[float], tie: int) -> None:
        """Ask the page again ending inside the tie at ``tie``, then follow its cursor (see :meth:`_learn_from_tie`)."""
        facts = self._facts
        stats = self._client.stats
        probe = replace(request, limit=tie + 1)
        try:
            head, paging = self._fetch(probe)
        except EtelecomBadRequestError:
            if not probe.after:
                raise
            log.debug("The cursor probe was inconclusive (the platform refused the page's cursor again).")
            return
        stats.probes += 1
        cursor, ends = paging.get("next") or "", len(head)
        ids = [c["id"] for c in consents]
        if ends < tie + 1 < len(ids):
            facts.saw_short_pages()  # the platform dropped rows that the page asked for again held
        if (
            not cursor
            or not 0 < ends < len(ids)
            or [c["id"] for c in head] != ids[:ends]
            or times[ends - 1] != times[ends]
        ):
            log.debug("The cursor probe was inconclusive (the page changed, or did not end inside a tie).")
            return
        if not facts.take_probe():
            return
        try:
            after, _ = self._fetch(replace(probe, after=cursor, limit=min(PROBE_STEP, request.limit)))
        except EtelecomBadRequestError:
            log.debug("The cursor probe was inconclusive (the platform refused the cursor it had just handed).")
            return
        stats.probes += 1
        if not after:
            return
        step = after[0]
        if step["id"] == ids[ends]:
            self._keyset(times, "a page ended inside a tie went on with the rest of it")
        elif step["id"] in ids[:ends]:
            facts.learn_cursor(CursorKind.REPEATING, "a page ended inside a tie began the next with it again")
        elif _epoch(step.get("created_at")) != times[ends - 1]:
            facts.learn_cursor(CursorKind.SKIPPING, "a page ended inside a tie skipped the rest of it")
