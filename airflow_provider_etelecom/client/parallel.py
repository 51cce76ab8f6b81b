"""Page a time range as several half-open windows at once, within one task.

A cursor listing is sequential: its floor is pages × round-trip time. Splitting
``[date_from, date_to)`` into windows and paging them concurrently lifts that floor while staying
inside one task (bounded threads, not a scheduler: Airflow's workers and dynamic task mapping remain
the way to spread work across machines).

Correctness rests on the client's half-open guarantee: every window yields only consents with
``window_start <= created_at < window_end``, so adjacent windows never overlap or leave a gap,
whatever the platform does at the ``date_to`` edge. Memory stays bounded: at most
``max_pages_in_flight`` pages wait in the queue, plus one page per worker being fetched.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import cast

from airflow_provider_etelecom.client.client import ClientStats, EtelecomClient, RateLimitGate
from airflow_provider_etelecom.client.models import ConsentPage
from airflow_provider_etelecom.client.validation import ConsentQuery, floor_second
from airflow_provider_etelecom.exceptions import EtelecomValidationError

__all__ = ["MAX_PARALLEL_WINDOWS", "iter_consent_pages_parallel", "split_range"]

#: More threads than this only adds 429s: the platform is one service behind one key.
MAX_PARALLEL_WINDOWS = 32
#: Windows per worker: time-skewed data (a busy day, a quiet night) balances better over more,
#: smaller windows picked up by whichever worker is free.
WINDOWS_PER_WORKER = 4
#: How long closing the listing waits, in all, for the workers to finish their current request.
#: They are daemon threads that stop at their next page; an export told to stop (``on_kill``)
#: must delete its temporary file within the few seconds before Airflow's SIGKILL.
STOP_JOIN_S = 2.0
_DONE = object()


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


def iter_consent_pages_parallel(
    make_client: Callable[[RateLimitGate], EtelecomClient],
    query: ConsentQuery,
    *,
    parallel_windows: int,
    max_pages_in_flight: int | None = None,
    stats: ClientStats | None = None,
) -> Iterator[ConsentPage]:
    """Yield the pages of ``query`` fetched by ``parallel_windows`` workers over sub-windows.

    Pages arrive in completion order, not in the platform's sort order. Each worker has its own
    client (its own connection); all share one :class:`RateLimitGate`, so a rate limit seen by
    one slows every worker instead of turning into a 429 storm. The first failure stops all
    workers and is raised here; closing the generator early (the operator does when told to
    stop) stops them too: each worker ends after its current request, and closing waits at most
    :data:`STOP_JOIN_S` for them.

    :param make_client: builds a client that uses the given gate (one per worker).
    :param query: the validated query; ``date_from`` and ``date_to`` are required.
    :param parallel_windows: worker threads, 1 to :data:`MAX_PARALLEL_WINDOWS`.
    :param max_pages_in_flight: pages that may wait for the consumer (default: 2 per worker).
    :param stats: where to add the workers' request, retry and rate-limit counters.
    :raises EtelecomValidationError: without a bounded window or with a bad worker count.
    """
    if (
        isinstance(parallel_windows, bool)
        or not isinstance(parallel_windows, int)
        or not (1 <= parallel_windows <= MAX_PARALLEL_WINDOWS)
    ):
        raise EtelecomValidationError(
            f"max_parallel_windows={parallel_windows!r} must be an int from 1 to {MAX_PARALLEL_WINDOWS}.",
            parameter="max_parallel_windows",
        )
    if max_pages_in_flight is not None and (
        isinstance(max_pages_in_flight, bool) or not isinstance(max_pages_in_flight, int) or max_pages_in_flight < 1
    ):
        raise EtelecomValidationError(
            f"max_pages_in_flight={max_pages_in_flight!r} must be None or an int >= 1 (it bounds memory).",
            parameter="max_pages_in_flight",
        )
    if query.date_from is None or query.date_to is None:
        raise EtelecomValidationError(
            "max_parallel_windows needs both date_from and date_to: the range is split into windows.",
            parameter="max_parallel_windows",
        )
    windows = split_range(query.date_from, query.date_to, parallel_windows * WINDOWS_PER_WORKER)
    return _run_workers(make_client, query, windows, parallel_windows, max_pages_in_flight, stats)


def _run_workers(
    make_client: Callable[[RateLimitGate], EtelecomClient],
    query: ConsentQuery,
    windows: list[tuple[datetime, datetime]],
    parallel_windows: int,
    max_pages_in_flight: int | None,
    stats: ClientStats | None,
) -> Iterator[ConsentPage]:
    todo: queue.SimpleQueue[tuple[datetime, datetime]] = queue.SimpleQueue()
    for window in windows:
        todo.put(window)
    pages: queue.Queue[object] = queue.Queue(maxsize=max_pages_in_flight or 2 * parallel_windows)
    stop = threading.Event()
    gate = RateLimitGate()
    lock = threading.Lock()
    totals = stats if stats is not None else ClientStats()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                pages.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        client: EtelecomClient | None = None
        try:
            client = make_client(gate)
            while not stop.is_set():
                try:
                    start, end = todo.get_nowait()
                except queue.Empty:
                    return
                window_query = replace(query, date_from=start, date_to=end, max_pages=None)
                for page in client.iter_consent_pages(window_query):
                    if not offer(page):
                        return
        except BaseException as error:  # handed to the consumer, which re-raises it
            offer(error)
        finally:
            if client is not None:
                client.close()
                with lock:
                    for name, value in client.stats.as_dict().items():
                        setattr(totals, name, getattr(totals, name) + value)
            offer(_DONE)

    threads = [threading.Thread(target=work, name=f"etelecom-window-{i}", daemon=True) for i in range(parallel_windows)]
    for thread in threads:
        thread.start()
    running, yielded = len(threads), 0
    try:
        while running:
            item = pages.get()
            if item is _DONE:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield cast(ConsentPage, item)
                yielded += 1
                if query.max_pages is not None and yielded >= query.max_pages:
                    return
    finally:
        stop.set()
        join_until = time.monotonic() + STOP_JOIN_S
        for thread in threads:
            thread.join(timeout=max(0.0, join_until - time.monotonic()))
