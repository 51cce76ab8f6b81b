"""Parallel windowed paging: the same set as the sequential listing, bounded, failing cleanly."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_etelecom.client import ClientConfig, ConsentQuery, EtelecomClient, RateLimitGate
from airflow_provider_etelecom.client.parallel import iter_consent_pages_parallel, split_range
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
    assert sim.stats.connections >= workers


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
