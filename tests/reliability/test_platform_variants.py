"""The exactness matrix: every listing mode, output, wait and retry, under every platform behaviour.

Nobody here can reach eTelecom, so each behaviour we could only infer is a switch of the simulator
(``PLATFORM_VARIANTS``): time precisions, an inclusive ``date_to``, listing lag, short pages, a
lower page cap and its echo, ``null`` pages, what the cursor holds, cursor expiry, an id order,
zone misreadings, date filters on ``updated_at``, numeric ids, crowded seconds, clocks off. Under
each one, over loopback HTTP:

* the listings (sequential, parallel windows, the mapped windows of ``split_windows``, parallel
  under faults) return every consent of ``[date_from, date_to)`` exactly once;
* the outputs (JSON Lines, Parquet, the SQL transfer into SQLite) hold exactly those;
* a wait decides exactly what the platform holds, and never ends ``not_found`` for a listed consent;
* a ``RequestConsent`` whose answer was lost is recognised by the retry: one message, not two.

A behaviour the client can only survive with a connection setting (a zone misreading, date filters on
``updated_at``) runs with that setting, and is shown to fail loudly without it. Membership is decided
by the ``created_at`` the platform shows (true UTC where the platform shows local time as ``Z``).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_provider_etelecom.client import ClientConfig, ConsentQuery, EtelecomClient, RateLimitGate
from airflow_provider_etelecom.client.models import parse_api_time
from airflow_provider_etelecom.client.parallel import iter_consent_pages_parallel, split_range
from airflow_provider_etelecom.client.replies import ReplyWait
from airflow_provider_etelecom.exceptions import EtelecomContractError, EtelecomTransientError, EtelecomValidationError
from airflow_provider_etelecom.testing import PLATFORM_VARIANTS, EtelecomSimulator, FaultConfig
from airflow_provider_etelecom.windows import split_windows

KEY = "variants-key-0123456789"
UTC = timezone.utc
START = datetime(2025, 3, 1, tzinfo=UTC)
END = START + timedelta(days=2)
# The user's own bounds carry fractions of a second, as a hand-written or computed date_to may.
WINDOW_FROM = START + timedelta(hours=3, microseconds=250_000)
WINDOW_TO = END - timedelta(hours=3) + timedelta(microseconds=750_000)
WORKERS = (3, 8)
MAPPED_EVERY = "1h"
#: Consents are crowded on the edges of this many windows per worker too (finer than the first split).
WINDOWS_PER_WORKER = 4
#: Where consents are crowded around each edge: on it, within a millisecond, and up to a second away.
OFFSETS_S = (-1.0, -0.7, -0.5, -0.3, -0.0005, 0.0, 0.0005, 0.3, 0.5, 0.7, 1.0)
CROWDED_SECOND = 250
VN = "Asia/Ho_Chi_Minh"

#: The connection setting that makes the client exact on a platform that reads or shows times in
#: another way than documented: its escape hatch. Without it the listing fails loudly.
ESCAPE_HATCHES: dict[str, dict[str, object]] = {
    "filter_local_zone": {"platform_filter_zone": VN},
    "shown_local_as_z": {"platform_shown_zone": VN},
    "filter_on_updated_at": {"date_filters_on_client": True},
}
#: Behaviours of the waiting side and of RequestConsent only: a listing of settled data is the same.
NOT_LISTING = {
    "updated_at_sort_refused",
    "updated_at_sort_ignored",
    "reply_keeps_updated_at",
    "pending_conflict",
    "platform_clock_behind",
    "answer_clock_ahead",
}
LISTING_VARIANTS = sorted(name for name in PLATFORM_VARIANTS if name not in NOT_LISTING)
EVERY_VARIANT = sorted(PLATFORM_VARIANTS)


def edges() -> set[datetime]:
    """Every window edge any listing mode uses here, plus the user's bounds and their whole seconds."""
    found = {WINDOW_FROM, WINDOW_TO, WINDOW_FROM.replace(microsecond=0), WINDOW_TO.replace(microsecond=0)}
    for workers in WORKERS:
        found.update(start for start, _ in split_range(WINDOW_FROM, WINDOW_TO, workers * WINDOWS_PER_WORKER))
    found.update(datetime.fromisoformat(w["date_from"]) for w in split_windows(WINDOW_FROM, WINDOW_TO, MAPPED_EVERY))
    return found


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def true_time(sim: EtelecomSimulator, shown: str) -> datetime:
    """The created_at a consent shows, read as the platform meant it (local time labelled Z undone)."""
    return parse_api_time(shown) - timedelta(hours=float(sim.switches.shown_zone_offset_h))


@dataclass(frozen=True)
class Platform:
    """A simulator playing one variant, the connection settings it needs, and what a window must hold."""

    name: str
    sim: EtelecomSimulator
    settings: dict[str, object]
    expected: set[str]

    def client(self, gate: RateLimitGate | None = None, **settings: object) -> EtelecomClient:
        config = ClientConfig.build(
            base_url=self.sim.base_url, api_key=KEY, max_retries=20, max_retry_time=600, **{**self.settings, **settings}
        )
        return EtelecomClient(config, gate=gate, sleep=lambda seconds: None)

    def factory(self, **settings: object) -> Callable[[RateLimitGate], EtelecomClient]:
        return lambda gate: self.client(gate, **settings)

    def connection(self) -> str:
        extra = dict(self.settings)
        return json.dumps({"conn_type": "etelecom", "host": self.sim.base_url, "password": KEY, "extra": extra})


@pytest.fixture(scope="module", params=LISTING_VARIANTS)
def platform(request: pytest.FixtureRequest) -> Iterator[Platform]:
    name = request.param
    with EtelecomSimulator(consents=800, seed=41, api_key=KEY, start=START, end=END, **PLATFORM_VARIANTS[name]) as sim:
        for edge in edges():
            for offset in OFFSETS_S:
                sim.add_consent(created_at=iso(edge + timedelta(seconds=offset)))
        # A campaign second right on an inner edge: more consents than fit on two pages.
        crowded = split_range(WINDOW_FROM, WINDOW_TO, WORKERS[0] * WINDOWS_PER_WORKER)[1][0]
        for n in range(CROWDED_SECOND):
            sim.add_consent(created_at=iso(crowded + timedelta(microseconds=n * 3_997)))
        # Under a listing lag, let every consent become listable: the windows here are settled.
        sim.advance(3600)
        listable = sim.consents(visible_only=True)
        expected = {str(c["id"]) for c in listable if WINDOW_FROM <= true_time(sim, c["created_at"]) < WINDOW_TO}
        assert 0 < len(expected) < len(listable)
        yield Platform(name, sim, ESCAPE_HATCHES.get(name, {}), expected)


def assert_exactly_once(ids: list[str], expected: set[str]) -> None:
    doubled = [consent_id for consent_id, n in Counter(ids).items() if n > 1]
    assert doubled == [], f"{len(doubled)} consents listed twice"
    assert all(isinstance(consent_id, str) for consent_id in ids), "ids are strings after parsing"
    assert set(ids) - expected == set(), "consents from outside the window"
    assert expected - set(ids) == set(), f"{len(expected - set(ids))} consents lost"


def window_query() -> ConsentQuery:
    return ConsentQuery.build(date_from=WINDOW_FROM, date_to=WINDOW_TO)


# -- the listings ------------------------------------------------------------------------------------


def test_sequential_listing_is_exact(platform: Platform) -> None:
    assert_exactly_once([c["id"] for c in platform.client().iter_consents(window_query())], platform.expected)


@pytest.mark.parametrize("workers", WORKERS)
def test_parallel_windows_are_exact(platform: Platform, workers: int) -> None:
    pages = iter_consent_pages_parallel(platform.factory(), window_query(), parallel_windows=workers)
    assert_exactly_once([c["id"] for page in pages for c in page["consents"]], platform.expected)


def test_mapped_windows_are_exact(platform: Platform) -> None:
    client = platform.client()
    ids = [
        c["id"]
        for window in split_windows(WINDOW_FROM, WINDOW_TO, MAPPED_EVERY)
        for c in client.iter_consents(ConsentQuery.build(**window))
    ]
    assert_exactly_once(ids, platform.expected)


def test_parallel_windows_are_exact_under_faults(platform: Platform) -> None:
    sim = platform.sim
    faults_before = sum(sim.stats.faults.values())
    sim.faults = FaultConfig(
        error_rate=0.05, drop_rate=0.03, truncate_rate=0.03, rate_limit_rate=0.03, error_body_rate=0.03, seed=5
    )
    try:
        pages = iter_consent_pages_parallel(platform.factory(), window_query(), parallel_windows=WORKERS[1])
        assert_exactly_once([c["id"] for page in pages for c in page["consents"]], platform.expected)
    finally:
        sim.faults = FaultConfig()
    assert sum(sim.stats.faults.values()) > faults_before


@pytest.mark.parametrize("variant", sorted(ESCAPE_HATCHES))
@pytest.mark.parametrize("workers", [None, 4])
def test_a_platform_filtering_another_way_fails_loudly_without_its_setting(variant: str, workers: int | None) -> None:
    """Finding 5: a consent answered outside the window sent proves the platform filters differently."""
    switches = PLATFORM_VARIANTS[variant]
    with EtelecomSimulator(consents=800, seed=41, api_key=KEY, start=START, end=END, **switches) as sim:
        config = ClientConfig.build(base_url=sim.base_url, api_key=KEY)
        with pytest.raises(EtelecomContractError) as caught:
            if workers is None:
                list(EtelecomClient(config).iter_consents(window_query()))
            else:
                factory = lambda gate: EtelecomClient(config, gate=gate)  # noqa: E731
                list(iter_consent_pages_parallel(factory, window_query(), parallel_windows=workers))
    assert caught.value.behaviour == "window_mismatch"
    message = caught.value.message
    assert next(iter(ESCAPE_HATCHES[variant])) in message and "nothing was published" in message
    assert KEY not in message


def test_an_export_by_updated_at_is_refused_before_any_request() -> None:
    """Finding 7: a keyset on a value that changes while the listing pages loses or repeats consents."""
    with pytest.raises(EtelecomValidationError, match="exact only by created_at") as caught:
        ConsentQuery.build(sort="updated_at")
    assert caught.value.parameter == "sort"


# -- the outputs -------------------------------------------------------------------------------------


@pytest.fixture
def export_connection(platform: Platform, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Platform:
    monkeypatch.setenv("AIRFLOW_CONN_ETELECOM_DEFAULT", platform.connection())
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "w.db")}))
    return platform


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_each_output_format_is_exact(export_connection: Platform, tmp_path: Path, suffix: str) -> None:
    from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator

    target = tmp_path / f"consents.{suffix}"
    op = ListConsentsOperator(
        task_id="export",
        date_from=iso(WINDOW_FROM),
        date_to=iso(WINDOW_TO),
        output_path=f"file://{target}",
        max_parallel_windows=4,
    )
    result = op.execute({})  # type: ignore[arg-type]
    if suffix == "jsonl":
        ids = [json.loads(line)["id"] for line in target.read_text(encoding="utf-8").splitlines()]
    else:
        import pyarrow.parquet as pq

        ids = [str(i) for i in pq.read_table(target, columns=["id"]).column("id").to_pylist()]
    assert result["count"] == len(ids)
    assert_exactly_once(ids, export_connection.expected)


def test_the_sql_transfer_is_exact(export_connection: Platform, tmp_path: Path) -> None:
    from airflow_provider_etelecom.transfers.consents_to_sql import ConsentsToSqlOperator

    op = ConsentsToSqlOperator(
        task_id="load",
        sql_conn_id="warehouse",
        table="consents",
        create_table=True,
        date_from=iso(WINDOW_FROM),
        date_to=iso(WINDOW_TO),
        lookback=timedelta(0),
    )
    op.execute({})  # type: ignore[arg-type]
    with sqlite3.connect(tmp_path / "w.db") as conn:
        ids = [str(row[0]) for row in conn.execute("SELECT id FROM consents")]
    assert_exactly_once(ids, export_connection.expected)


# -- the waits and a RequestConsent retry, under every behaviour --------------------------------------


@pytest.fixture(params=EVERY_VARIANT)
def any_platform(request: pytest.FixtureRequest) -> Iterator[tuple[str, EtelecomSimulator, dict[str, object]]]:
    with EtelecomSimulator(consents=200, seed=9, api_key=KEY, **PLATFORM_VARIANTS[request.param]) as sim:
        yield request.param, sim, ESCAPE_HATCHES.get(request.param, {})


def test_a_wait_decides_what_the_platform_holds(any_platform: tuple[str, EtelecomSimulator, dict[str, object]]) -> None:
    name, sim, settings = any_platform
    client = EtelecomClient(ClientConfig.build(base_url=sim.base_url, api_key=KEY, **settings), sleep=lambda s: None)
    oa = sim.oa_ids[0]
    sent = [
        client.request_consent(oa_id=oa, phone=f"09150000{n:02d}", call_type="audio", reason_code="update_order")
        for n in range(6)
    ]
    ids = [c["id"] for c in sent]
    assert all(isinstance(i, str) for i in ids)
    earliest = min(parse_api_time(c["created_at"]) for c in sent)
    wait = ReplyWait(consent_ids=ids, oa_id=oa, created_from=earliest - timedelta(minutes=5))
    sim.advance(120)  # past any listing lag
    first = wait.check(client, sim.now(), not_found_expired=False)
    assert first.status == "waiting"
    for consent_id, reply in zip(ids, "PPNPNP", strict=True):
        sim.reply(consent_id, reply)
    sim.advance(5)
    # The last check of a wait: not_found only if the platform really does not list the consent.
    decision = wait.check(client, sim.now(), not_found_expired=True)
    assert decision.status == "done", (name, decision.status, decision.missing)
    truth = {i: sim.consent(i)["reply_status"] for i in ids}  # type: ignore[index]
    assert {i: c["reply_status"] for i, c in decision.consents.items()} == truth


def test_a_lost_answer_is_recognised_by_the_retry(
    any_platform: tuple[str, EtelecomSimulator, dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 9: the retry finds the earlier try's consent whatever the platform's clock; one message."""
    from tests.operators.test_request_consent import MemoryTaskStateStore, context, operator

    name, sim, settings = any_platform
    conn = {"conn_type": "etelecom", "host": sim.base_url, "password": KEY, "extra": settings}
    monkeypatch.setenv("AIRFLOW_CONN_ETELECOM_DEFAULT", json.dumps(conn))
    for store in (MemoryTaskStateStore(), None):  # Airflow 3.3+, then 2.11 and 3.0-3.2
        phone = "0912000777" if store is not None else "0912000888"
        run_began = datetime.now(timezone.utc) - timedelta(seconds=5)
        sim.script_faults(["drop"], method="Zalo/RequestConsent")  # eTelecom creates it; the answer is lost
        with pytest.raises(EtelecomTransientError, match=r"cut off|failed before an answer"):
            operator(phone=phone).execute(context(1, run_began, store=store))
        sim.advance(120)  # past any listing lag
        again = operator(phone=phone, listing_lag_grace=0).execute(context(2, run_began, store=store))
        received = [c for c in sim.consents() if c["phone"] == "84" + phone[1:]]
        assert len(received) == 1, (name, store is not None)
        assert str(received[0]["id"]) == again["id"]
