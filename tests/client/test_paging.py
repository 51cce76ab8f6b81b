"""The paging generator against the simulator over real HTTP: what it sends, when it stops."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_etelecom.client import ClientConfig, ConsentQuery, EtelecomClient
from airflow_provider_etelecom.exceptions import EtelecomMalformedResponseError, EtelecomPagingError
from airflow_provider_etelecom.testing import EtelecomSimulator
from tests.client.conftest import CannedServer

KEY = "paging-test-key-0123456789"
LIST = "Zalo/ListRequestConsent"
UTC = timezone.utc


def make_client(base_url: str, **kwargs: object) -> EtelecomClient:
    return EtelecomClient(ClientConfig.build(base_url=base_url, api_key=KEY, **kwargs), sleep=lambda s: None)  # type: ignore[arg-type]


@pytest.fixture
def sim() -> Iterator[EtelecomSimulator]:
    with EtelecomSimulator(consents=250, seed=3, api_key=KEY) as simulator:
        yield simulator


def list_bodies(sim: EtelecomSimulator) -> list[dict]:
    return [entry["body"] for entry in sim.requests_log if entry["method"] == LIST]


def test_three_pages_short_last_page_one_connection(sim: EtelecomSimulator) -> None:
    client = make_client(sim.base_url)
    pages = list(client.iter_consent_pages(ConsentQuery.build(page_size=100)))
    assert [len(p["consents"]) for p in pages] == [100, 100, 50]
    ids = [c["id"] for p in pages for c in p["consents"]]
    assert sorted(ids) == sorted(c["id"] for c in sim.consents())
    assert len(set(ids)) == 250
    # The short last page ends the listing: no fourth request; all over one keep-alive connection.
    assert sim.stats.count(method=LIST) == 3
    assert sim.stats.connections == 1
    bodies = list_bodies(sim)
    assert "after" not in bodies[0]["paging"]
    assert bodies[1]["paging"]["after"] == pages[0]["paging"]["next"]
    assert bodies[2]["paging"]["after"] == pages[1]["paging"]["next"]
    assert all(b["paging"]["limit"] == 100 for b in bodies)
    sent = sim.requests_log[0]["headers"]
    assert sent["Content-Type"] == "application/json"
    assert sent["Accept"] == "application/json"
    assert sent["Authorization"] == "Bearer ***"


def test_default_order_is_newest_first(sim: EtelecomSimulator) -> None:
    created = [c["created_at"] for c in make_client(sim.base_url).iter_consents()]
    assert created == sorted(created, reverse=True)


def test_exact_multiple_ends_on_the_empty_page() -> None:
    with EtelecomSimulator(consents=200, seed=4, api_key=KEY) as sim:
        client = make_client(sim.base_url)
        consents = list(client.iter_consents())
        assert len(consents) == 200
        # page 2 is full and carries a `next` (the platform fills it on the last page too), so the
        # client must ask once more and stop on the empty page.
        assert sim.stats.count(method=LIST) == 3
        assert client.stats.pages == 2


def test_small_page_size_and_max_pages(sim: EtelecomSimulator) -> None:
    client = make_client(sim.base_url)
    assert len(list(client.iter_consents(ConsentQuery.build(page_size=7, max_pages=4)))) == 28
    assert sim.stats.count(method=LIST) == 4
    assert all(b["paging"]["limit"] == 7 for b in list_bodies(sim))


def test_filters_are_sent_and_honoured(sim: EtelecomSimulator) -> None:
    oa_id = sim.consents()[0]["oa_id"]
    client = make_client(sim.base_url)
    got = list(client.iter_consents(ConsentQuery.build(oa_id=oa_id, reply_status="P", page_size=10)))
    expected = [c for c in sim.consents() if c["oa_id"] == oa_id and c["reply_status"] == "P"]
    assert sorted(c["id"] for c in got) == sorted(c["id"] for c in expected)
    assert list_bodies(sim)[0]["filter"] == {"oa_id": oa_id, "reply_status": "P"}


@pytest.mark.parametrize("inclusive", [False, True])
def test_window_is_half_open_whatever_the_platform_does_at_date_to(inclusive: bool) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=2)
    with EtelecomSimulator(consents=300, seed=5, api_key=KEY, start=start, end=end, date_to_inclusive=inclusive) as sim:
        edge = start + timedelta(days=1)
        on_edge = sim.add_consent(created_at="2026-01-02T00:00:00Z")
        client = make_client(sim.base_url)
        first = {c["id"] for c in client.iter_consents(ConsentQuery.build(date_from=start, date_to=edge))}
        second = {c["id"] for c in client.iter_consents(ConsentQuery.build(date_from=edge, date_to=end))}
        assert on_edge["id"] in second and on_edge["id"] not in first
        assert not first & second
        assert first | second == {c["id"] for c in sim.consents()}


def test_inserts_while_paging_cause_no_duplicates_or_gaps(sim: EtelecomSimulator) -> None:
    before = {c["id"] for c in sim.consents()}
    client = make_client(sim.base_url)
    seen: list[str] = []
    for number, page in enumerate(client.iter_consent_pages(ConsentQuery.build(page_size=30)), start=1):
        seen.extend(c["id"] for c in page["consents"])
        if number in (2, 5):
            sim.insert_consents(40)
    assert len(seen) == len(set(seen))
    assert before <= set(seen)


def test_a_fault_on_a_later_page_resends_that_page_not_page_one(sim: EtelecomSimulator) -> None:
    client = make_client(sim.base_url)
    pages = client.iter_consent_pages(ConsentQuery.build(page_size=50))
    first, second = next(pages), next(pages)
    sim.script_faults(["503", "drop", "truncate"])
    rest = list(pages)
    ids = [c["id"] for p in [first, second, *rest] for c in p["consents"]]
    assert sorted(ids) == sorted(c["id"] for c in sim.consents())
    bodies = list_bodies(sim)
    # requests 3..6 are the same page-3 request: three faulted tries and the good one
    assert {b["paging"].get("after") for b in bodies[2:6]} == {second["paging"]["next"]}
    assert client.stats.retries == 3


def page(ids: list[str], next_cursor: str, limit: int = 2) -> dict:
    return {
        "consents": [{"id": i, "created_at": "2026-01-01T00:00:00Z"} for i in ids],
        "paging": {"next": next_cursor, "limit": limit},
    }


def test_a_repeated_cursor_raises_instead_of_looping(canned_server: CannedServer) -> None:
    canned_server.add(page(["1", "2"], "A"))
    canned_server.add(page(["3", "4"], "B"))
    canned_server.add(page(["5", "6"], "A"))
    client = make_client(canned_server.base_url)
    seen: list[str] = []
    with pytest.raises(EtelecomPagingError, match="second time"):
        for consent in client.iter_consents(ConsentQuery.build(page_size=2)):
            seen.append(consent["id"])
    assert seen == ["1", "2", "3", "4", "5", "6"]
    assert len(canned_server.received) == 3


def test_empty_next_ends_the_listing(canned_server: CannedServer) -> None:
    canned_server.add(page(["1", "2"], ""))
    assert [c["id"] for c in make_client(canned_server.base_url).iter_consents(ConsentQuery.build(page_size=2))] == [
        "1",
        "2",
    ]
    assert len(canned_server.received) == 1


def test_missing_consents_key_is_an_empty_page(canned_server: CannedServer) -> None:
    # protobuf JSON encoders omit empty repeated fields
    canned_server.add({"paging": {"limit": 100}})
    assert list(make_client(canned_server.base_url).iter_consents()) == []


def test_unknown_enum_values_pass_through(canned_server: CannedServer) -> None:
    odd = {
        "id": "9",
        "reply_status": "XX",
        "call_type": "hologram",
        "status": "Z",
        "created_at": "2026-01-01T00:00:00Z",
    }
    canned_server.add({"consents": [odd], "paging": {"next": "c", "limit": 100}})
    assert list(make_client(canned_server.base_url).iter_consents()) == [odd]


@pytest.mark.parametrize(
    "body",
    [
        {"consents": "nope"},
        {"consents": [1, 2]},
        {"consents": [{"id": "1"}], "paging": ["x"]},
        {"consents": [{"id": "1"}], "paging": {"next": 5}},
        {"consents": [{"id": "1"}], "paging": {"limit": "100"}},
        [1, 2, 3],
    ],
)
def test_malformed_pages_raise_the_documented_error(canned_server: CannedServer, body: object) -> None:
    for _ in range(3):
        canned_server.add(body)
    client = EtelecomClient(
        ClientConfig.build(base_url=canned_server.base_url, api_key=KEY, max_retries=2), sleep=lambda s: None
    )
    with pytest.raises(EtelecomMalformedResponseError):
        list(client.iter_consents())
