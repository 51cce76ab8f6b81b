"""Page a time range as several half-open windows at once, within one task, splitting where it is busy.

A cursor listing is sequential: its floor is pages × round-trip time. Splitting
``[date_from, date_to)`` into windows and paging them concurrently lifts that floor while staying
inside one task (bounded threads, not a scheduler: Airflow's workers and dynamic task mapping remain
the way to spread work across machines).

Real consents come in bursts (a campaign day, a busy hour), so equal windows fixed up front leave
one worker paging the burst alone. Here the range starts as one window per worker, and a worker
that runs out of work splits the busiest window still being listed (**adaptive splitting**). With
a ``created_at`` sort the split needs no re-reading: a window paged newest first has listed
everything from its end down to the ``created_at`` its cursor has reached, so its remaining range
is ``[start, reached]``. It is cut at a whole second in the middle of that range (never leaving
either side under one second); the owner keeps paging and stops at the first consent shown below
the cut, dropping those below it; the new worker lists ``[start, cut)``. Paged oldest first
(``sort="created_at"``) the same happens mirrored.

Stopping at a cut relies on the pages coming in ``created_at`` order, which the platform does not
document: an owner stops by order only while every page read so far, by every worker, and every
page boundary came in that order (:class:`~.paging.PlatformFacts`). The first inversion ends it:
no more splits, owners page their listing to its end (dropping what a cut gave away), and every
window that had already ended by order is listed again with its date filters (the once-each rule
drops what it read before), so nothing an order-based stop skipped is lost.

Correctness rests on the client's half-open guarantee: every window yields only consents with
``window_start <= created_at < window_end`` by the ``created_at`` the platform shows, so adjacent
windows never overlap or leave a gap, whatever the platform does at the ``date_to`` edge or with
fractions of a second; a cut moves that edge under a lock, against pages the owner has already
handed over. Memory stays bounded: at most ``max_pages_in_flight`` pages wait in the queue, plus one
page per worker being fetched. All workers share one :class:`RateLimitGate`, so more windows never
mean more rate-limit answers than the gate lets through.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import cast

from airflow_provider_etelecom.client.client import ClientStats, EtelecomClient, RateLimitGate
from airflow_provider_etelecom.client.models import Consent, ConsentPage, parse_api_time
from airflow_provider_etelecom.client.paging import CREATED_SORTS, PlatformFacts
from airflow_provider_etelecom.client.query import ConsentQuery
from airflow_provider_etelecom.client.seen import SMALL_BUFFER, SeenIds
from airflow_provider_etelecom.client.validation import ceil_second, floor_second, validate_number
from airflow_provider_etelecom.exceptions import EtelecomValidationError

__all__ = ["MAX_PARALLEL_WINDOWS", "ParallelStats", "iter_consent_pages_parallel"]

#: More threads than this only adds 429s: the platform is one service behind one key.
MAX_PARALLEL_WINDOWS = 32
#: How long closing the listing waits, in all, for the workers to finish their current request.
#: They are daemon threads that stop at their next page; an export told to stop (``on_kill``)
#: must delete its temporary file within the few seconds before Airflow's SIGKILL.
STOP_JOIN_S = 2.0
#: A window is split only while it has at least this many pages left (estimated from the consents
#: per second its owner has seen): a split costs about one request (the owner's last page straddles
#: the cut, the new window ends on a short page), and near the end of a listing halving a few pages
#: saves less time than those requests cost against the platform's limits.
MIN_SPLIT_PAGES = 4
_ONE_SECOND = timedelta(seconds=1)
_DONE = object()
_WAKE = object()


@dataclass
class WorkerStats:
    """What one worker of a parallel listing did: for the closing log line of a task.

    :param pages: pages it fetched (requests that returned consents).
    :param requests: requests it sent, retries included.
    :param windows: windows it listed (its first one, and each split it took over).
    :param idle_s: seconds it waited with nothing to list (for a split, or for the others to finish).
    """

    pages: int = 0
    requests: int = 0
    windows: int = 0
    idle_s: float = 0.0


@dataclass
class ParallelStats:
    """What a parallel listing did: splits, windows, and per worker its pages and idle time.

    Pass one to :func:`iter_consent_pages_parallel` and read it when the listing is over (or has
    failed); :meth:`describe` gives the closing log line's text.

    :param adaptive: ``False`` once the pages came out of ``created_at`` order: no more splits.
    :param splits: windows split because a worker ran out of work.
    :param relisted: windows that had ended by order and were listed again after an inversion.
    :param windows: every window listed, with its final bounds (a cut moves the owner's edge).
    :param workers: one entry per worker thread, in start order.
    """

    adaptive: bool = True
    splits: int = 0
    relisted: int = 0
    windows: list[tuple[datetime, datetime]] = field(default_factory=list)
    workers: list[WorkerStats] = field(default_factory=list)

    def describe(self) -> str:
        """Return ``"N splits over M windows; per worker pages/idle s: 0: 40/0.1, 1: ..."``."""
        mode = f"{self.splits} splits" + ("" if self.adaptive else " (then none: pages out of created_at order)")
        if self.relisted:
            mode += f", {self.relisted} windows listed again"
        per_worker = ", ".join(f"{i}: {w.pages}/{w.idle_s:.1f}" for i, w in enumerate(self.workers))
        return f"{mode} over {len(self.windows)} windows; per worker pages/idle s: {per_worker}"


def split_range(start: datetime, end: datetime, parts: int) -> list[tuple[datetime, datetime]]:
    """Split ``[start, end)`` into at most ``parts`` half-open windows of (almost) equal length.

    The windows cover the range exactly: each starts where the previous one ended. Inner edges
    fall on whole seconds (the outer ones are ``start`` and ``end`` as given), so no window edge
    asks the platform about a fraction of a second; a range shorter than ``parts`` seconds gets
    fewer windows, none shorter than a second except where ``start`` or ``end`` has a fraction.
    """
    if parts < 1 or start >= end:
        raise ValueError("split_range needs parts >= 1 and start < end")
    step = (end - start) / parts
    inner = {floor_second(start + step * i) for i in range(1, parts)}
    edges = [start, *sorted(edge for edge in inner if start < edge < end), end]
    return list(itertools.pairwise(edges))


def cut_point(low: datetime, high: datetime) -> datetime | None:
    """Return the whole second nearest the middle of ``[low, high]`` that leaves a second each side.

    :return: ``cut`` with ``low + 1 s <= cut <= high - 1 s`` on a whole second, or ``None`` when the
        range is too short to split (the one-second floor: a second holding hundreds of consents is
        paged by one worker).
    """
    first = ceil_second(low + _ONE_SECOND)
    last = floor_second(high - _ONE_SECOND)
    if first > last:
        return None
    return min(max(floor_second(low + (high - low) / 2), first), last)


def iter_consent_pages_parallel(
    make_client: Callable[[RateLimitGate], EtelecomClient],
    query: ConsentQuery,
    *,
    parallel_windows: int,
    max_pages_in_flight: int | None = None,
    stats: ClientStats | None = None,
    parallel_stats: ParallelStats | None = None,
    facts: PlatformFacts | None = None,
) -> Iterator[ConsentPage]:
    """Yield the pages of ``query`` fetched by ``parallel_windows`` workers over sub-windows.

    Pages arrive in completion order, not in the platform's sort order. Each worker has its own
    client (its own connection); all share one :class:`RateLimitGate`, so a rate limit seen by
    one slows every worker instead of turning into a 429 storm. Each window yields each id once;
    windows never overlap (the half-open rule). A worker that runs out of work splits the busiest window, while
    the pages come in ``created_at`` order (see the module docstring). The first failure stops all
    workers and is raised here before any page still waiting in the queue (so nothing after a
    failure reaches the writer); closing the generator early stops the workers too.

    :param make_client: builds a client that uses the given gate (one per worker).
    :param query: the validated query; ``date_from`` and ``date_to`` are required.
    :param parallel_windows: worker threads, 1 to :data:`MAX_PARALLEL_WINDOWS`.
    :param max_pages_in_flight: pages that may wait for the consumer (default: 2 per worker).
    :param stats: where to add the workers' request, retry and rate-limit counters.
    :param parallel_stats: where to record splits, windows and per-worker pages and idle time.
    :param facts: what is known of the platform's order and cursor (the hook passes its client's);
        every worker's client uses it.
    :raises EtelecomValidationError: without a bounded window or with a bad worker count.
    """
    validate_number("max_parallel_windows", parallel_windows, minimum=1, maximum=MAX_PARALLEL_WINDOWS)
    validate_number("max_pages_in_flight", max_pages_in_flight, minimum=1, optional=True, why="it bounds memory")
    if query.date_from is None or query.date_to is None:
        raise EtelecomValidationError(
            "max_parallel_windows needs both date_from and date_to: the range is split into windows.",
            parameter="max_parallel_windows",
        )
    if query.sort not in CREATED_SORTS:
        raise EtelecomValidationError(
            f"max_parallel_windows needs a created_at sort, not sort={query.sort!r}.", parameter="sort"
        )
    report = parallel_stats if parallel_stats is not None else ParallelStats()
    windows = split_range(query.date_from, query.date_to, parallel_windows)
    descending = query.sort != "created_at"
    scheduler = _Scheduler(windows, descending=descending, page_size=query.page_size, report=report)
    if facts is not None:
        scheduler.facts = facts
    return _run_workers(make_client, query, scheduler, parallel_windows, max_pages_in_flight, stats, report)


# -- the scheduler: who lists which window, and where a busy window is cut ---------------------------


class _Window:
    """One window being listed. Its ``keep`` edge (``start`` newest first, ``end`` oldest first)
    moves when it is cut; ``reached`` is the furthest ``created_at`` handed over so far."""

    def __init__(self, start: datetime, end: datetime, *, descending: bool, seen: SeenIds | None = None) -> None:
        self.start, self.end = start, end
        self.descending = descending
        #: The ids this window yielded: windows are disjoint, so each keeps its own; listed again after
        #: an inversion, a window keeps its set. (A shared set would also hold the ids an owner read
        #: past its cut and dropped, and its piece would then drop them as repeats.)
        self.seen = seen if seen is not None else SeenIds(buffer=SMALL_BUFFER)
        self.reached: datetime | None = None
        #: Consents per second of the last page: consents cluster in time, so what lies just beyond
        #: the cursor looks more like the last page than like the window's average.
        self.recent_density: float | None = None
        self.on_last_page = False

    def remaining(self) -> tuple[datetime, datetime]:
        """Return ``[low, high]``: the part of the window its owner has not listed yet."""
        if self.descending:
            return self.start, self.reached or self.end
        return self.reached or self.start, self.end


class _Scheduler:
    """Hand windows to workers; when none is left, split the busiest one (under one lock).

    Also the only place that applies a cut to a page, under the same lock, so a cut is never
    chosen below a consent already handed over, and the owner never hands over one below it.
    """

    def __init__(
        self,
        windows: list[tuple[datetime, datetime]],
        *,
        descending: bool,
        page_size: int,
        report: ParallelStats,
    ) -> None:
        self._cond = threading.Condition()
        self._descending = descending
        self._pending = deque(_Window(a, b, descending=descending) for a, b in windows)
        self._active: list[_Window] = []
        self._ended_by_order: list[_Window] = []
        self._page_size = page_size
        self._min_split = MIN_SPLIT_PAGES * page_size
        self._report = report
        self.facts = PlatformFacts()

    def _relist_ended_by_order(self) -> None:
        """Once the pages came out of order, queue every window that ended by order to be listed again."""
        if self.facts.ordered:
            return
        self._report.adaptive = False
        if self._ended_by_order:
            self._report.relisted += len(self._ended_by_order)
            for ended in self._ended_by_order:
                self._pending.append(_Window(ended.start, ended.end, descending=self._descending, seen=ended.seen))
            self._ended_by_order.clear()

    def take(self, worker: WorkerStats, stop: threading.Event) -> _Window | None:
        """Return the next window for ``worker``, waiting for one to become splittable; ``None`` at the end."""
        idle_since: float | None = None
        with self._cond:
            try:
                while not stop.is_set():
                    self._relist_ended_by_order()
                    window = self._pending.popleft() if self._pending else self._split_busiest()
                    if window is not None:
                        self._active.append(window)
                        worker.windows += 1
                        return window
                    if not self._active:
                        return None
                    idle_since = idle_since or time.monotonic()
                    self._cond.wait(0.1)
                return None
            finally:
                if idle_since is not None:
                    worker.idle_s += time.monotonic() - idle_since

    def _split_busiest(self) -> _Window | None:
        """Cut the window with the most consents estimated left; ``None`` if none is worth a split.

        Only a window whose owner has handed over a page is considered: its own density is known
        then. A piece just split off inherits nothing, so a guess is never split again before it
        has been looked at (that is what kept splitting empty stretches next to a burst).
        """
        if not self.facts.ordered:
            return None
        best: tuple[float, _Window, datetime] | None = None
        for window in self._active:
            if window.on_last_page or window.recent_density is None:
                continue
            low, high = window.remaining()
            cut = cut_point(low, high)
            left = window.recent_density * (high - low).total_seconds()
            if cut is not None and left >= self._min_split and (best is None or left > best[0]):
                best = (left, window, cut)
        if best is None:
            return None
        _, owner, cut = best
        self._report.splits += 1
        if owner.descending:
            piece = _Window(owner.start, cut, descending=True)
            owner.start = cut
        else:
            piece = _Window(cut, owner.end, descending=False)
            owner.end = cut
        return piece

    def hand_over(self, window: _Window, consents: list[Consent], listed: int) -> tuple[list[Consent], bool]:
        """Apply the window's (possibly moved) edge to a page; return what to keep and whether to stop.

        While the pages have come in ``created_at`` order (the facts every worker's listing keeps),
        the first consent past the edge means every later one is past it too: the owner stops
        there. Once they have not, the owner pages on to its listing's end, dropping what lies past
        the edge.

        :param listed: the consents the page held as served (a short page may be the last).
        """
        times = [parse_api_time(str(c.get("created_at"))) for c in consents]
        with self._cond:
            keep = [(t >= window.start) if window.descending else (t < window.end) for t in times]
            kept = [c for c, k in zip(consents, keep, strict=True) if k]
            kept_times = [t for t, k in zip(times, keep, strict=True) if k]
            window.on_last_page = listed < self._page_size
            if kept_times:
                before = window.reached or (window.end if window.descending else window.start)
                window.reached = min(kept_times) if window.descending else max(kept_times)
                window.recent_density = len(kept) / max(1.0, abs((before - window.reached).total_seconds()))
                self._cond.notify_all()
            return kept, len(kept) < len(consents) and self.facts.ordered

    def finish(self, window: _Window, *, by_order: bool) -> None:
        """Record a window as listed and wake idle workers (the listing may be over).

        :param by_order: the window relied on order (it stopped at a cut or its far edge, or moved on
            by a date bound): it is listed again if the pages turn out not to come in order.
        """
        with self._cond:
            self._active.remove(window)
            self._report.windows.append((window.start, window.end))
            if by_order:
                self._ended_by_order.append(window)
            self._relist_ended_by_order()
            self._cond.notify_all()


# -- workers, the consumer, and how a failure or an early close stops everything ---------------------


def _list_window(
    client: EtelecomClient,
    query: ConsentQuery,
    scheduler: _Scheduler,
    window: _Window,
    offer: Callable[[object], bool],
) -> bool:
    """Page one window into the queue until its end or its cut; ``False`` when told to stop."""
    window_query = replace(query, date_from=window.start, date_to=window.end, max_pages=None)
    listing = client.listing(window_query, seen=window.seen)
    pages = cast(Generator[ConsentPage, None, None], iter(listing))
    by_order = False
    try:
        for page in pages:
            listed = page.get("listed", len(page["consents"]))
            kept, past_the_cut = scheduler.hand_over(window, page["consents"], listed)
            client.stats.consents -= len(page["consents"]) - len(kept)
            if not offer(ConsentPage(consents=kept, paging=page["paging"], listed=listed)):
                return False
            if past_the_cut:
                by_order = True
                break
    finally:
        pages.close()
    scheduler.finish(window, by_order=by_order or listing.relied_on_order)
    return True


def _run_workers(
    make_client: Callable[[RateLimitGate], EtelecomClient],
    query: ConsentQuery,
    scheduler: _Scheduler,
    parallel_windows: int,
    max_pages_in_flight: int | None,
    stats: ClientStats | None,
    report: ParallelStats,
) -> Iterator[ConsentPage]:
    pages: queue.Queue[object] = queue.Queue(maxsize=max_pages_in_flight or 2 * parallel_windows)
    stop = threading.Event()
    failures: list[BaseException] = []
    gate = RateLimitGate()
    lock = threading.Lock()
    totals = stats if stats is not None else ClientStats()
    report.workers = [WorkerStats() for _ in range(parallel_windows)]

    # Stop and failure handling, all of it: the first failure is kept and stops every worker at
    # once; the consumer raises it before yielding anything still queued.
    def fail(error: BaseException) -> None:
        with lock:
            if not failures:
                failures.append(error)
        stop.set()
        with contextlib.suppress(queue.Full):  # a full queue wakes the consumer anyway
            pages.put_nowait(_WAKE)

    def raise_if_failed() -> None:
        if failures:
            raise failures[0]

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                pages.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work(worker: WorkerStats) -> None:
        client: EtelecomClient | None = None
        try:
            client = make_client(gate)
            client.facts = scheduler.facts  # one order and cursor lesson for every window
            while (window := scheduler.take(worker, stop)) is not None:
                if not _list_window(client, query, scheduler, window, offer):
                    return
            offer(_DONE)
        except BaseException as error:  # handed to the consumer, which re-raises it
            fail(error)
        finally:
            if client is not None:
                client.close()
                with lock:
                    worker.pages, worker.requests = client.stats.pages, client.stats.requests
                    for name, value in client.stats.as_dict().items():
                        setattr(totals, name, getattr(totals, name) + value)

    threads = [
        threading.Thread(target=work, args=(worker,), name=f"etelecom-window-{i}", daemon=True)
        for i, worker in enumerate(report.workers)
    ]
    for thread in threads:
        thread.start()
    running, yielded = len(threads), 0
    try:
        while running:
            try:
                item = pages.get(timeout=0.1)
            except queue.Empty:
                raise_if_failed()
                continue
            raise_if_failed()
            if item is _DONE:
                running -= 1
            elif item is not _WAKE:
                yield cast(ConsentPage, item)
                yielded += 1
                if query.max_pages is not None and yielded >= query.max_pages:
                    return
    finally:
        stop.set()
        join_until = time.monotonic() + STOP_JOIN_S
        for thread in threads:
            thread.join(timeout=max(0.0, join_until - time.monotonic()))
