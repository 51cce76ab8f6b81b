"""Parallel windowed paging: the same set as the sequential listing, bounded, failing cleanly."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_etelecom.client import (
    ClientConfig,
    ClientStats,
    ConsentQuery,
    EtelecomClient,
    RateLimitGate,
)
from airflow_provider_etelecom.client.paging import Listing
from airflow_provider_etelecom.client.parallel import (
    ParallelStats,
    WorkerStats,
    _Scheduler,
    cut_point,
    iter_consent_pages_parallel,
    split_range,
)
from airflow_provider_etelecom.exceptions import EtelecomAuthError, EtelecomValidationError
from airflow_provider_etelecom.testing import EtelecomSimulator, FaultConfig

KEY = "parallel-key-0123456789"
UTC = timezone.utc
START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2026, 1, 31, tzinfo=UTC)


@pytest.fixture
def sim() -> Iterator[EtelecomSimulator]:
    with EtelecomSimulator(consents=3000, seed=21, api_key=KEY, start=START, end=END) as simulator:
        yield simulator


def factory(base_url: str, api_key: str = KEY, **kwargs: object):  # type: ignore[no-untyped-def]
    config = ClientConfig.build(base_url=base_url, api_key=api_key, **kwargs)  # type: ignore[arg-type]
    return lambda gate: EtelecomClient(config, gate=gate, sleep=lambda s: None)


def workers_alive() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("etelecom-window-"))


def ids_of(pages: Iterator[dict]) -> list[str]:
    return [c["id"] for page in pages for c in page["consents"]]


def test_split_range_covers_the_range_exactly() -> None:
    windows = split_range(START, END, 7)
    assert windows[0][0] == START and windows[-1][1] == END
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    assert len(windows) == 7
    with pytest.raises(ValueError):
        split_range(END, START, 2)


def test_split_range_puts_inner_edges_on_whole_seconds() -> None:
    start = datetime(2025, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC)
    end = datetime(2025, 1, 1, 1, 0, 0, 750_000, tzinfo=UTC)
    windows = split_range(start, end, 28)  # 3600.5 s / 28: every exact edge would carry microseconds
    assert windows[0][0] == start and windows[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    assert all(edge.microsecond == 0 for _, edge in windows[:-1])
    # A range of a few seconds never yields windows under a second (except a fractional outer edge).
    short = split_range(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, 0, 0, 3, tzinfo=UTC), 32)
    assert [b - a for a, b in short] == [timedelta(seconds=1)] * 3


@pytest.mark.parametrize("workers", [2, 8])
def test_parallel_equals_sequential(sim: EtelecomSimulator, workers: int) -> None:
    query = ConsentQuery.build(date_from=START, date_to=END)
    sequential = ids_of(
        EtelecomClient(ClientConfig.build(base_url=sim.base_url, api_key=KEY)).iter_consent_pages(query)
    )
    parallel = ids_of(iter_consent_pages_parallel(factory(sim.base_url), query, parallel_windows=workers))
    assert len(parallel) == len(set(parallel)) == 3000
    assert sorted(parallel) == sorted(sequential)
    # One keep-alive connection per worker at most (plus the sequential listing's); several at once
    # prove the windows ran in parallel. (Not ">= workers": under load a worker can find no work left.)
    assert 3 <= sim.stats.connections <= workers + 1


def test_boundaries_with_an_inclusive_platform_and_consents_on_every_edge(sim: EtelecomSimulator) -> None:
    sim.date_to_inclusive = True
    for a, _ in split_range(START, END, 8):
        sim.add_consent(created_at=a.strftime("%Y-%m-%dT%H:%M:%SZ"))
    query = ConsentQuery.build(date_from=START, date_to=END)
    got = ids_of(iter_consent_pages_parallel(factory(sim.base_url), query, parallel_windows=2))
    assert len(got) == len(set(got)) == 3008


def test_faults_and_shared_rate_limits_still_give_the_exact_set(sim: EtelecomSimulator) -> None:
    sim.faults = FaultConfig(error_rate=0.1, drop_rate=0.03, truncate_rate=0.03, rate_limit_rate=0.02, seed=3)
    stats_holder = EtelecomClient(ClientConfig.build(base_url=sim.base_url, api_key=KEY)).stats
    query = ConsentQuery.build(date_from=START, date_to=END, page_size=50)
    got = ids_of(
        iter_consent_pages_parallel(
            factory(sim.base_url, max_retries=10, max_retry_time=60), query, parallel_windows=4, stats=stats_holder
        )
    )
    assert sorted(got) == sorted(c["id"] for c in sim.consents())
    assert stats_holder.retries == sum(sim.stats.faults.values()) > 0


def test_the_first_failure_stops_every_worker_and_is_raised(sim: EtelecomSimulator) -> None:
    query = ConsentQuery.build(date_from=START, date_to=END)
    with pytest.raises(EtelecomAuthError):
        list(iter_consent_pages_parallel(factory(sim.base_url, api_key="wrong-key-0123456"), query, parallel_windows=4))
    assert workers_alive() == 0


def test_closing_early_stops_the_workers_and_memory_is_bounded(sim: EtelecomSimulator) -> None:
    query = ConsentQuery.build(date_from=START, date_to=END, page_size=10)
    pages = iter_consent_pages_parallel(factory(sim.base_url), query, parallel_windows=4, max_pages_in_flight=3)
    next(pages)
    requests_after_first = sim.stats.count(method="Zalo/ListRequestConsent")
    # workers block once 3 pages wait: at most in-flight + one per worker beyond the consumed page
    assert requests_after_first <= 1 + 3 + 4
    assert workers_alive() == 4
    pages.close()
    assert workers_alive() == 0


def test_max_pages_bounds_the_total(sim: EtelecomSimulator) -> None:
    query = ConsentQuery.build(date_from=START, date_to=END, page_size=10, max_pages=5)
    assert len(list(iter_consent_pages_parallel(factory(sim.base_url), query, parallel_windows=3))) == 5


@pytest.mark.parametrize(
    ("kwargs", "workers", "fragment"),
    [({}, 4, "needs both date_from and date_to"), ({"date_from": START, "date_to": END}, 0, "from 1 to 32")],
)
def test_invalid_parallel_settings_fail_before_any_request(
    sim: EtelecomSimulator, kwargs: dict, workers: int, fragment: str
) -> None:
    with pytest.raises(EtelecomValidationError, match=fragment):
        iter_consent_pages_parallel(factory(sim.base_url), ConsentQuery.build(**kwargs), parallel_windows=workers)
    assert sim.stats.count() == 0


def test_hook_passes_parallel_windows_through(sim: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from airflow_provider_etelecom.hooks.etelecom import EtelecomHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_ETELECOM_DEFAULT", json.dumps({"conn_type": "etelecom", "host": sim.base_url, "password": KEY})
    )
    hook = EtelecomHook()
    got = [c["id"] for c in hook.list_consents(date_from=START, date_to=END, max_parallel_windows=4)]
    assert sorted(got) == sorted(c["id"] for c in sim.consents())
    assert hook.client.stats.pages >= 30
    with pytest.raises(EtelecomValidationError):
        hook.list_consents(max_parallel_windows=4)
    assert isinstance(RateLimitGate(), RateLimitGate)


def test_a_worker_whose_client_cannot_be_built_fails_the_listing(sim: EtelecomSimulator) -> None:
    def broken(gate: RateLimitGate) -> EtelecomClient:
        raise RuntimeError("no client today")

    query = ConsentQuery.build(date_from=START, date_to=END)
    with pytest.raises(RuntimeError, match="no client today"):
        list(iter_consent_pages_parallel(broken, query, parallel_windows=3))
    assert workers_alive() == 0


def test_pages_in_flight_must_be_positive(sim: EtelecomSimulator) -> None:
    query = ConsentQuery.build(date_from=START, date_to=END)
    with pytest.raises(EtelecomValidationError, match="max_pages_in_flight"):
        iter_consent_pages_parallel(factory(sim.base_url), query, parallel_windows=2, max_pages_in_flight=-1)


# -- adaptive splitting ----------------------------------------------------------------------------

T0 = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def sequential_ids(base_url: str, query: ConsentQuery) -> list[str]:
    with EtelecomClient(ClientConfig.build(base_url=base_url, api_key=KEY)) as client:
        return ids_of(client.iter_consent_pages(query))


def assert_windows_tile(report: ParallelStats, start: datetime, end: datetime) -> None:
    """The windows listed cover [start, end) exactly, inner edges on whole seconds, none under 1 s."""
    windows = sorted(report.windows)
    assert windows[0][0] == start and windows[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    assert all(b - a >= timedelta(seconds=1) for a, b in windows)
    assert all(edge.microsecond == 0 for _, edge in windows[:-1])


def test_cut_point_is_a_whole_second_leaving_at_least_a_second_each_side() -> None:
    assert cut_point(T0, T0 + timedelta(seconds=10)) == T0 + timedelta(seconds=5)
    fraction = timedelta(milliseconds=300)
    assert cut_point(T0 + fraction, T0 + timedelta(seconds=2) + fraction) is None  # no whole second fits
    assert cut_point(T0 + fraction, T0 + timedelta(seconds=3)) == T0 + timedelta(seconds=2)
    # The one-second floor: two seconds split into two, anything shorter is never split.
    assert cut_point(T0, T0 + timedelta(seconds=2)) == T0 + timedelta(seconds=1)
    assert cut_point(T0, T0 + timedelta(seconds=1, milliseconds=999)) is None
    assert cut_point(T0 + fraction, T0 + timedelta(seconds=2)) is None


def test_an_idle_worker_splits_the_busiest_window_at_its_cursor() -> None:
    """The scheduler alone, driven page by page: deterministic, no threads, no HTTP."""
    report = ParallelStats()
    windows = split_range(T0, T0 + timedelta(hours=4), 2)
    scheduler = _Scheduler(windows, descending=True, page_size=100, report=report)
    never = threading.Event()
    first, second = WorkerStats(), WorkerStats()
    quiet, busy = scheduler.take(first, never), scheduler.take(second, never)
    assert quiet is not None and busy is not None
    # The busy window's owner hands over a full page, newest first, one consent a second from its end.
    page = [{"id": str(i), "created_at": stamp(T0 + timedelta(hours=4, seconds=-1 - i))} for i in range(100)]
    kept, stop = scheduler.hand_over(busy, page, len(page))  # type: ignore[arg-type]
    assert (len(kept), stop) == (100, False)
    scheduler.finish(quiet, by_order=False)
    piece = scheduler.take(first, never)
    assert piece is not None and report.splits == 1
    reached = T0 + timedelta(hours=4, seconds=-100)
    cut = T0 + timedelta(hours=2) + (reached - T0 - timedelta(hours=2)) / 2
    assert (piece.start, piece.end) == (T0 + timedelta(hours=2), cut.replace(microsecond=0))
    # The owner keeps what is at or above the cut and stops at the first consent below it.
    edge = piece.end
    around = [{"id": "a", "created_at": stamp(edge)}, {"id": "b", "created_at": stamp(edge - timedelta(seconds=1))}]
    kept, stop = scheduler.hand_over(busy, around, len(around))  # type: ignore[arg-type]
    assert [c["id"] for c in kept] == ["a"] and stop


def test_a_second_too_dense_to_split_is_listed_by_one_worker() -> None:
    never = threading.Event()
    crowded = [{"id": str(i), "created_at": stamp(T0 + timedelta(seconds=3))} for i in range(100)]
    scheduler = _Scheduler([(T0, T0 + timedelta(seconds=4))], descending=True, page_size=10, report=ParallelStats())
    owner = scheduler.take(WorkerStats(), never)
    assert owner is not None
    scheduler.hand_over(owner, crowded, len(crowded))  # type: ignore[arg-type]
    # Remaining [T0, T0+3 s]: cut once, at a whole second leaving at least a second each side...
    piece = scheduler._split_busiest()
    assert piece is not None and (piece.start, piece.end) == (T0, T0 + timedelta(seconds=1))
    # ...but a window whose remaining range is one crowded second is never cut again.
    lone = _Scheduler(
        [(T0 + timedelta(seconds=3), T0 + timedelta(seconds=4))], descending=True, page_size=10, report=ParallelStats()
    )
    window = lone.take(WorkerStats(), never)
    assert window is not None
    lone.hand_over(window, crowded, len(crowded))  # type: ignore[arg-type]
    assert lone._split_busiest() is None


@pytest.mark.parametrize("sort", [None, "-created_at", "created_at"])
def test_a_burst_inside_one_window_is_split_and_listed_once(sort: str | None) -> None:
    with EtelecomSimulator(consents=200, seed=4, api_key=KEY, start=START, end=END, latency_ms=1) as sim:
        burst_at = START + timedelta(days=20, hours=3)  # inside the third of four windows
        for minute in range(60):
            sim.insert_consents(25, created_at=burst_at + timedelta(minutes=minute))
        query = ConsentQuery.build(date_from=START, date_to=END, page_size=20, sort=sort)
        expected = sequential_ids(sim.base_url, query)
        report = ParallelStats()
        got = ids_of(
            iter_consent_pages_parallel(factory(sim.base_url), query, parallel_windows=4, parallel_stats=report)
        )
    assert len(got) == len(set(got)) == len(expected) == 1700
    assert set(got) == set(expected)
    assert report.adaptive and report.splits >= 1
    assert len(report.windows) == 4 + report.splits
    assert_windows_tile(report, START, END)
    assert sum(w.windows for w in report.workers) == len(report.windows)


def test_splitting_stops_at_the_one_second_floor() -> None:
    with EtelecomSimulator(consents=0, seed=4, api_key=KEY, start=START, end=END, latency_ms=1) as sim:
        sim.insert_consents(400, created_at=T0 + timedelta(seconds=5))  # hundreds of consents in one second
        for second in (1, 2, 6, 7):
            sim.insert_consents(3, created_at=T0 + timedelta(seconds=second))
        query = ConsentQuery.build(date_from=T0, date_to=T0 + timedelta(seconds=8), page_size=10)
        expected = sequential_ids(sim.base_url, query)
        report = ParallelStats()
        got = ids_of(
            iter_consent_pages_parallel(factory(sim.base_url), query, parallel_windows=4, parallel_stats=report)
        )
    assert len(got) == len(set(got)) == 412
    assert set(got) == set(expected)
    assert_windows_tile(report, T0, T0 + timedelta(seconds=8))
    crowded = [w for w in report.windows if w[0] <= T0 + timedelta(seconds=5) < w[1]]
    assert len(crowded) == 1  # the crowded second was never cut


def test_a_window_is_split_while_its_owner_retries_a_fault() -> None:
    """The owner's second page fails; while it waits to retry, the other worker starts, finishes its
    own window and splits the owner's. The owner then stops at the cut: the set is still exact."""
    with EtelecomSimulator(consents=0, seed=4, api_key=KEY, start=START, end=END) as sim:
        middle = split_range(START, END, 2)[0][1]
        for hour in range(300):  # all in the first window, up to an hour before its end
            sim.insert_consents(1, created_at=middle - timedelta(hours=1 + hour))
        sim.insert_consents(5, created_at=END - timedelta(days=1))
        query = ConsentQuery.build(date_from=START, date_to=END, page_size=10)
        expected = sequential_ids(sim.base_url, query)
        sim.reset_stats()
        retrying, piece_listed = threading.Event(), threading.Event()
        config = ClientConfig.build(base_url=sim.base_url, api_key=KEY)
        calls: list[int] = []
        lock = threading.Lock()

        def wait_for_the_split(seconds: float) -> None:
            retrying.set()
            assert piece_listed.wait(10), "the idle worker never split the retrying owner's window"

        class Watched(EtelecomClient):
            """A real client that says when it starts listing its second window (the split-off piece)."""

            windows = 0

            def listing(self, query: ConsentQuery | None = None, **kwargs: Any) -> Listing:
                self.windows += 1
                if self.windows == 2:
                    piece_listed.set()
                return super().listing(query, **kwargs)

        def make_client(gate: RateLimitGate) -> EtelecomClient:
            with lock:
                calls.append(1)
                first = len(calls) == 1
            if first:  # the owner: its retry waits until the other worker has split its window
                return EtelecomClient(config, gate=gate, sleep=wait_for_the_split)
            assert retrying.wait(10), "the owner's retry never started"
            return Watched(config, gate=gate, sleep=lambda s: None)

        sim.script_faults(["none", "503"])  # only the owner sends requests until it retries
        report, stats = ParallelStats(), ClientStats()
        got = ids_of(
            iter_consent_pages_parallel(make_client, query, parallel_windows=2, stats=stats, parallel_stats=report)
        )
    assert len(got) == len(set(got)) == len(expected) == 305
    assert set(got) == set(expected)
    assert stats.retries == 1 and report.splits >= 1
    assert_windows_tile(report, START, END)
    assert any(START < a < middle for a, _ in report.windows)  # the owner's window was cut


def test_the_first_failure_stops_every_worker_and_nothing_is_yielded_after_it(sim: EtelecomSimulator) -> None:
    config = ClientConfig.build(base_url=sim.base_url, api_key=KEY)
    wrong = ClientConfig.build(base_url=sim.base_url, api_key="wrong-key-0123456")
    go = threading.Event()
    failing: list[threading.Thread] = []
    calls: list[int] = []
    lock = threading.Lock()

    def make_client(gate: RateLimitGate) -> EtelecomClient:
        with lock:
            calls.append(1)
            healthy = len(calls) == 1
        if healthy:
            return EtelecomClient(config, gate=gate)
        failing.append(threading.current_thread())
        go.wait(10)
        return EtelecomClient(wrong, gate=gate)  # its first request answers 401

    query = ConsentQuery.build(date_from=START, date_to=END, page_size=10)
    pages = iter_consent_pages_parallel(make_client, query, parallel_windows=2, max_pages_in_flight=8)
    first_page = next(pages)
    assert first_page["consents"]
    go.set()
    failing[0].join(10)  # the failure is recorded; the healthy worker's pages may still be queued
    assert not failing[0].is_alive()
    with pytest.raises(EtelecomAuthError):
        next(pages)
    assert workers_alive() == 0


@pytest.mark.parametrize("sort", ["updated_at", "-updated_at"])
def test_a_sort_not_by_created_at_is_refused_before_any_request(sim: EtelecomSimulator, sort: str) -> None:
    # A cursor on updated_at loses or repeats consents answered while it pages (issue 19, finding 7).
    with pytest.raises(EtelecomValidationError, match="sort") as caught:
        ConsentQuery.build(date_from=START, date_to=END, sort=sort)
    assert caught.value.parameter == "sort"
    query = dataclasses.replace(ConsentQuery.build(date_from=START, date_to=END), sort=sort)
    requests_before = sim.stats.count()
    with pytest.raises(EtelecomValidationError, match="created_at sort"):
        iter_consent_pages_parallel(factory(sim.base_url), query, parallel_windows=3)
    assert sim.stats.count() == requests_before


def test_pages_in_flight_stay_bounded_while_windows_split() -> None:
    with EtelecomSimulator(consents=0, seed=4, api_key=KEY, start=START, end=END) as sim:
        for second in range(100):
            sim.insert_consents(20, created_at=START + timedelta(days=3, seconds=second))
        for day in range(0, 30, 3):
            sim.insert_consents(2, created_at=START + timedelta(days=day, hours=5))
        config = ClientConfig.build(base_url=sim.base_url, api_key=KEY)
        clients: list[EtelecomClient] = []

        def make_client(gate: RateLimitGate) -> EtelecomClient:
            clients.append(EtelecomClient(config, gate=gate))
            return clients[-1]

        query = ConsentQuery.build(date_from=START, date_to=END, page_size=10)
        report = ParallelStats()
        pages = iter_consent_pages_parallel(
            make_client, query, parallel_windows=4, max_pages_in_flight=3, parallel_stats=report
        )
        for consumed in range(1, 60):
            next(pages)
            # fetched but not consumed: at most the queue's 3 and one page per worker waiting to queue it
            assert sum(client.stats.pages for client in clients) <= consumed + 3 + 4
        pages.close()
    assert workers_alive() == 0
    assert report.splits >= 1
