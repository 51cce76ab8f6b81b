"""The paging generator against the simulator over real HTTP: what it sends, when it stops."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_etelecom.client import ClientConfig, ConsentQuery, EtelecomClient
from airflow_provider_etelecom.client.models import parse_api_time
from airflow_provider_etelecom.client.paging import KEYSET_VOTES, CursorKind, PlatformFacts
from airflow_provider_etelecom.client.validation import format_api_time
from airflow_provider_etelecom.exceptions import (
    EtelecomContractError,
    EtelecomMalformedResponseError,
    EtelecomPagingError,
)
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


def test_a_listing_ends_on_the_empty_page_over_one_connection(sim: EtelecomSimulator) -> None:
    client = make_client(sim.base_url)
    listing = client.listing(ConsentQuery.build(page_size=100))
    pages = list(listing)
    ids = [c["id"] for p in pages for c in p["consents"]]
    assert sorted(ids) == sorted(c["id"] for c in sim.consents())
    assert len(set(ids)) == 250 and listing.ended
    # The last page was short, yet not taken for the end: one more request met the empty page.
    assert pages[-1]["listed"] < 100
    bodies = list_bodies(sim)
    assert len(bodies) == client.stats.requests == sim.stats.count(method=LIST)
    # The cursor is not learnt (no tie showed what it holds): the listing moved on by date bounds, each
    # before the second the page before ended in.
    oldest = min(parse_api_time(c["created_at"]) for p in pages[:-1] for c in p["consents"])
    assert bodies[-1]["filter"]["date_to"] <= format_api_time(oldest + timedelta(seconds=1))
    assert all("after" not in body["paging"] for body in bodies if body["paging"]["limit"] == 100)
    assert "after" not in bodies[0]["paging"]
    assert sim.stats.connections == 1
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
        listing = client.listing()
        consents = [c for page in listing for c in page["consents"]]
        assert len(consents) == len({c["id"] for c in consents}) == 200
        # the last full page carries a `next` (the platform fills it on the last page too), so the
        # client must ask once more and stop on the empty page.
        assert listing.ended
        assert sim.stats.count(method=LIST) == client.stats.requests


def test_small_page_size_and_max_pages(sim: EtelecomSimulator) -> None:
    client = make_client(sim.base_url)
    listing = client.listing(ConsentQuery.build(page_size=7, max_pages=4))
    consents = [c for page in listing for c in page["consents"]]
    assert client.stats.pages == 4 and not listing.ended
    # A page may repeat the last consent of the one before (a date-bound step); each is yielded once.
    assert 4 * 6 <= len(consents) == len({c["id"] for c in consents}) <= 4 * 7
    assert sum(b["paging"]["limit"] == 7 for b in list_bodies(sim)) == 4
    assert sim.stats.count(method=LIST) == 4 + client.stats.probes


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
    sent_before = len(list_bodies(sim))
    sim.script_faults(["503", "drop", "truncate"])
    rest = list(pages)
    ids = [c["id"] for p in [first, second, *rest] for c in p["consents"]]
    assert sorted(ids) == sorted(c["id"] for c in sim.consents())
    # the three faulted tries and the good one are the same request, and not the first page's
    bodies = list_bodies(sim)[sent_before : sent_before + 4]
    assert all(body == bodies[0] for body in bodies) and bodies[0] != list_bodies(sim)[0]
    assert client.stats.retries == 3


def at(second: int) -> str:
    return f"2026-01-01T00:00:{second:02d}Z"


def page(ids: list[str], next_cursor: str, limit: int = 2) -> dict:
    """A canned page whose consents are newest first, one second apart (id ``n`` at second ``n``)."""
    return {
        "consents": [{"id": i, "created_at": at(int(i))} for i in ids],
        "paging": {"next": next_cursor, "limit": limit},
    }


def keyset_client(base_url: str, **kwargs: object) -> EtelecomClient:
    """A client that has learnt a keyset cursor, so it follows `next` as a canned answer says."""
    client = make_client(base_url, **kwargs)
    client.facts = PlatformFacts(cursor=CursorKind.KEYSET)
    return client


def test_a_repeated_cursor_raises_instead_of_looping(canned_server: CannedServer) -> None:
    canned_server.add(page(["9", "8"], "A"))
    canned_server.add(page(["7", "6"], "B"))
    canned_server.add(page(["5", "4"], "A"))
    client = keyset_client(canned_server.base_url)
    seen: list[str] = []
    with pytest.raises(EtelecomPagingError, match="second time"):
        for consent in client.iter_consents(ConsentQuery.build(page_size=2)):
            seen.append(consent["id"])
    assert seen == ["9", "8", "7", "6", "5", "4"]
    assert len(canned_server.received) == 3


def test_a_page_without_next_continues_by_a_date_bound(canned_server: CannedServer) -> None:
    """Finding 1: an empty `next` on a non-empty page is no end; the listing goes on from its last consent."""
    canned_server.add(page(["9", "8"], ""))
    canned_server.add(page(["8", "7"], ""))  # the bound re-reads consent 8's second: dropped once
    canned_server.add({"consents": None, "paging": {"next": ""}})  # Go's nil slice: the end
    client = keyset_client(canned_server.base_url)
    listing = client.listing(ConsentQuery.build(page_size=2))
    assert [c["id"] for p in listing for c in p["consents"]] == ["9", "8", "7"]
    assert listing.ended
    bounds = [body["filter"].get("date_to") for body in canned_server.received]
    assert bounds == [None, at(9), at(8)]
    assert all("after" not in body["paging"] for body in canned_server.received)
    assert (client.stats.resumes, client.stats.rereads, client.stats.repeats) == (2, 1, 0)


def test_a_page_without_next_in_a_window_keeps_the_window(canned_server: CannedServer) -> None:
    canned_server.add(page(["30", "29"], ""))
    canned_server.add({"paging": {"limit": 2}})  # protobuf's JSON leaves the empty list out: an end
    client = keyset_client(canned_server.base_url)
    query = ConsentQuery.build(date_from="2026-01-01T00:00:10Z", date_to="2026-01-01T00:00:40Z", page_size=2)
    assert [c["id"] for c in client.iter_consents(query)] == ["30", "29"]
    sent = [(body["filter"]["date_from"], body["filter"]["date_to"]) for body in canned_server.received]
    assert sent == [(at(9), at(41)), (at(9), at(30))]


@pytest.mark.parametrize(
    "empty", [{"consents": None, "paging": {"next": "B"}}, {"consents": [], "paging": {"next": "B"}}]
)
def test_an_empty_page_that_hands_a_new_cursor_is_followed(canned_server: CannedServer, empty: dict) -> None:
    """Finding 1: rows dropped after the LIMIT can empty a page mid-listing; only a page with no new cursor ends."""
    canned_server.add(page(["9", "8"], "A"))
    canned_server.add(empty)
    canned_server.add(page(["5", "4"], "C"))
    canned_server.add({"consents": [], "paging": {"next": "C"}})  # the cursor just followed: the end
    listing = keyset_client(canned_server.base_url).listing(ConsentQuery.build(page_size=2))
    assert [c["id"] for p in listing for c in p["consents"]] == ["9", "8", "5", "4"]
    assert listing.ended
    assert [body["paging"].get("after") for body in canned_server.received] == [None, "A", "B", "C"]


def test_unknown_enum_values_pass_through(canned_server: CannedServer) -> None:
    odd = {
        "id": "9",
        "reply_status": "XX",
        "call_type": "hologram",
        "status": "Z",
        "created_at": "2026-01-01T00:00:00Z",
    }
    canned_server.add({"consents": [odd], "paging": {"next": "c", "limit": 100}})
    canned_server.add({"consents": [], "paging": {"next": ""}})
    assert list(make_client(canned_server.base_url).iter_consents()) == [odd]


def test_ids_sent_as_json_numbers_become_strings(canned_server: CannedServer) -> None:
    """Finding 8: a Go int64 without the `,string` tag arrives as a number; every id is a string after parsing."""
    big = 1_234_567_890_123_456_789
    raw = {"id": big, "shop_id": big + 1, "user_id": big + 2, "oa_id": big + 3, "created_at": at(5)}
    canned_server.add({"consents": [raw], "paging": {"next": "c"}})
    canned_server.add({"consents": [], "paging": {}})
    (consent,) = make_client(canned_server.base_url).iter_consents()
    assert [consent[name] for name in ("id", "shop_id", "user_id", "oa_id")] == [str(big + n) for n in range(4)]


@pytest.mark.parametrize(
    "error_body",
    [
        {"code": "unavailable", "msg": "Hệ thống đang bận"},
        {"errors": [{"message": "upstream timed out"}]},
        {"consents": [{"id": "5", "created_at": "2026-01-01T00:00:05Z"}]},  # a page without paging
        {},
    ],
)
def test_an_error_body_in_a_200_is_retried_never_an_end(canned_server: CannedServer, error_body: dict) -> None:
    """Finding 2: a proxy's 200 is not the last page; it is retried within the budget like a network fault."""
    canned_server.add(page(["9", "8"], "A"))
    canned_server.add(error_body)
    canned_server.add(page(["7", "6"], "B"))
    canned_server.add({"consents": [], "paging": {"next": ""}})
    client = keyset_client(canned_server.base_url)
    assert [c["id"] for c in client.iter_consents(ConsentQuery.build(page_size=2))] == ["9", "8", "7", "6"]
    assert client.stats.retries == 1
    assert canned_server.received[1] == canned_server.received[2]


@pytest.mark.parametrize(
    "body",
    [
        {"consents": "nope"},
        {"consents": [1, 2]},
        {"consents": [{"id": "1"}], "paging": ["x"]},
        {"consents": [{"id": "1"}], "paging": {"next": 5}},
        {"consents": [{"id": "1"}], "paging": {"limit": "100"}},
        [1, 2, 3],
        {"code": "internal", "msg": "Lỗi hệ thống"},
        {"errors": ["bad gateway"]},
        {"consents": [{"id": "1", "created_at": "2026-01-01T00:00:00Z"}]},
        {"consents": [{"created_at": "2026-01-01T00:00:00Z"}], "paging": {}},
        {},
    ],
)
def test_malformed_pages_raise_the_documented_error(canned_server: CannedServer, body: object) -> None:
    for _ in range(3):
        canned_server.add(body)
    client = EtelecomClient(
        ClientConfig.build(base_url=canned_server.base_url, api_key=KEY, max_retries=2), sleep=lambda s: None
    )
    with pytest.raises(EtelecomMalformedResponseError, match=r"retried|not a listing|created_at"):
        list(client.iter_consents())
    assert len(canned_server.received) == 3  # the first try and two retries: never read as the end


# -- what the platform does differently (issue 19), over loopback HTTP against the simulator -----------


@pytest.mark.parametrize("fault", ["200_code", "200_errors", "200_no_paging"])
def test_an_error_body_mid_listing_from_the_simulator_is_retried(fault: str) -> None:
    """Finding 2: the old client read these as the last page: 400 of 5,000 exported, green."""
    with EtelecomSimulator(consents=450, seed=8, api_key=KEY) as sim:
        client = make_client(sim.base_url)
        pages = client.iter_consent_pages(ConsentQuery.build())
        first = next(pages)
        sim.script_faults([fault])
        ids = [c["id"] for c in first["consents"]] + [c["id"] for page in pages for c in page["consents"]]
        assert sorted(ids) == sorted(str(c["id"]) for c in sim.consents())
        assert client.stats.retries == 1 and sim.stats.faults[fault] == 1


@pytest.mark.parametrize(("switches", "pages_at_least"), [({"drop_after_limit": 0.2}, 3), ({"page_cap": 30}, 9)])
def test_short_pages_mid_listing_are_not_the_end(switches: dict[str, object], pages_at_least: int) -> None:
    """Finding 1: rows dropped after the LIMIT, or a lower page cap: short pages all along, none the end."""
    with EtelecomSimulator(consents=260, seed=8, api_key=KEY, **switches) as sim:
        listing = make_client(sim.base_url).listing(ConsentQuery.build())
        pages = list(listing)
        assert listing.ended and len(pages) >= pages_at_least
        assert all(page["listed"] < 100 for page in pages)
        ids = [c["id"] for p in pages for c in p["consents"]]
        assert len(ids) == len(set(ids)) and set(ids) == {str(c["id"]) for c in sim.consents(visible_only=True)}


def test_an_expired_cursor_resumes_from_the_last_consent() -> None:
    """Finding 6: a cursor refused after an outage the client rode out: the listing goes on, exactly."""
    with EtelecomSimulator(consents=400, seed=8, api_key=KEY, cursor_ttl_s=60) as sim:
        # The retry's wait moves the simulator's clock past the cursor's lifetime: the cursor expires.
        client = EtelecomClient(ClientConfig.build(base_url=sim.base_url, api_key=KEY), sleep=lambda s: sim.advance(90))
        client.facts = PlatformFacts(cursor=CursorKind.KEYSET)  # a listing that follows its cursor
        pages = client.iter_consent_pages(ConsentQuery.build())
        ids = [c["id"] for c in next(pages)["consents"]]
        sim.script_faults(["503"])
        ids += [c["id"] for page in pages for c in page["consents"]]
        assert len(ids) == len(set(ids)) == 400
        refused = [e for e in sim.requests_log if e["status"] == 400]
        assert len(refused) == 1 and refused[0]["body"]["paging"]["after"]
        assert client.stats.resumes == 1


def test_an_expired_cursor_with_date_filters_on_the_client_fails_naming_why_it_cannot_resume() -> None:
    """Finding 6: with the date filters applied by the client the cursor alone carries the listing, and no
    date bound can resume it once refused: loud, named, nothing published."""
    with EtelecomSimulator(consents=400, seed=8, api_key=KEY, cursor_ttl_s=60) as sim:
        client = make_client(sim.base_url, date_filters_on_client=True)
        pages = client.iter_consent_pages(ConsentQuery.build())
        next(pages)
        next(pages)  # the second page came by the cursor
        sim.advance(120)  # the task spent two minutes on the second page: its cursor expired
        with pytest.raises(EtelecomContractError, match="date_filters_on_client") as caught:
            next(pages)
        assert caught.value.behaviour == "listing_cannot_continue"
        assert [e["body"]["paging"].get("after") is not None for e in sim.requests_log if e["status"] == 400] == [True]


def test_a_cursor_on_created_at_alone_fails_loudly_at_a_second_past_a_page() -> None:
    """Finding 3: a second holding more than a page, and a cursor that skips ties: loud, naming the second."""
    crowd = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
    with EtelecomSimulator(consents=100, seed=8, api_key=KEY, cursor_kind="value_lt") as sim:
        sim.insert_consents(230, created_at=crowd)
        with pytest.raises(EtelecomContractError, match=r"2026-01-05T12:00:00Z holds at least \d+ consents") as caught:
            list(make_client(sim.base_url).iter_consents(ConsentQuery.build()))
        assert caught.value.behaviour == "crowded_second"


@pytest.mark.parametrize("sort", [None, "created_at"])
@pytest.mark.parametrize("cursor_kind", ["keyset", "value_le", "value_lt", "offset"])
def test_a_page_ending_on_the_first_consent_of_a_second_loses_none_of_the_rest(
    cursor_kind: str, sort: str | None
) -> None:
    """Finding 3: no tie inside the first page to learn the cursor from, and the page ends on the first of a
    second's three consents: a cursor on created_at alone skips the other two unless the client looks."""
    start = datetime(2026, 1, 5, tzinfo=UTC)
    with EtelecomSimulator(consents=0, seed=8, api_key=KEY, cursor_kind=cursor_kind) as sim:
        for second in range(300):  # one consent a second, three at the 100th second from either end
            sim.insert_consents(3 if second in (99, 200) else 1, created_at=start + timedelta(seconds=second))
        client = make_client(sim.base_url)
        ids = [c["id"] for c in client.iter_consents(ConsentQuery.build(sort=sort))]
        assert len(ids) == len(set(ids)) == len(sim.consents()) == 304
        # No second holds a page: nothing made the listing learn the cursor, it moved by date bounds.
        assert client.facts.cursor is CursorKind.UNKNOWN and client.stats.probes == 0


@pytest.mark.parametrize("cursor_kind", ["keyset", "value_le", "value_lt", "offset"])
def test_ties_at_page_boundaries_are_listed_once_whatever_the_cursor_holds(cursor_kind: str) -> None:
    """Finding 3: a bursty day, many consents a second: none skipped, none repeated, under each cursor."""
    start = datetime(2026, 1, 5, tzinfo=UTC)
    with EtelecomSimulator(consents=0, seed=8, api_key=KEY, cursor_kind=cursor_kind) as sim:
        for second in range(300):
            sim.insert_consents(1 + second % 17, created_at=start + timedelta(seconds=second))
        client = make_client(sim.base_url)
        ids = [c["id"] for c in client.iter_consents(ConsentQuery.build())]
        assert len(ids) == len(set(ids)) == len(sim.consents())
        # Each page's last second is read whole by a date bound: no lesson was needed, none was paid for.
        assert client.stats.probes == 0 and client.stats.rereads > 0


@pytest.mark.parametrize(
    ("cursor_kind", "learnt"), [("keyset", "keyset"), ("offset", "keyset"), ("value_le", "repeating")]
)
def test_a_second_holding_pages_is_carried_through_by_a_cursor_learnt_there(cursor_kind: str, learnt: str) -> None:
    """Finding 3: only the cursor can carry a listing through a second holding 2.5 pages; the listing
    learns it there, from the page's ties (times with fractions settle it at once, whole seconds in three)."""
    crowd = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
    with EtelecomSimulator(consents=300, seed=8, api_key=KEY, cursor_kind=cursor_kind) as sim:
        sim.insert_consents(250, created_at=crowd)
        client = make_client(sim.base_url)
        if learnt == "repeating":  # '<=' serves the second's first page again and again: no way through
            with pytest.raises(EtelecomContractError, match=r"2026-01-05T12:00:00Z holds at least 100"):
                list(client.iter_consents(ConsentQuery.build()))
        else:
            ids = [c["id"] for c in client.iter_consents(ConsentQuery.build())]
            assert len(ids) == len(set(ids)) == len(sim.consents()) == 550
        assert client.facts.cursor.value == learnt
        assert 2 <= client.stats.probes <= 2 * KEYSET_VOTES


@pytest.mark.parametrize("sort", [None, "created_at"])
def test_date_filters_on_the_client_read_the_near_side_of_the_window_only(sort: str | None) -> None:
    """Finding 5: with ``date_filters_on_client`` no date filter is sent; the listing keeps the window by
    ``created_at`` and stops once its pages, in order, have passed it (not at the end of the history)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with EtelecomSimulator(consents=0, seed=8, api_key=KEY) as sim:
        for hour in range(48):  # two days, 50 consents an hour
            for n in range(50):
                sim.insert_consents(1, created_at=start + timedelta(hours=hour, seconds=71 * n))
        low, high = start + timedelta(hours=20), start + timedelta(hours=22)
        client = make_client(sim.base_url, date_filters_on_client=True)
        listing = client.listing(ConsentQuery.build(date_from=low, date_to=high, sort=sort))
        ids = [c["id"] for page in listing for c in page["consents"]]
        expected = {str(c["id"]) for c in sim.consents() if low <= parse_api_time(c["created_at"]) < high}
        assert len(ids) == len(set(ids)) and set(ids) == expected and listing.ended
        assert all("date_from" not in body["filter"] and "date_to" not in body["filter"] for body in list_bodies(sim))
        # Newest first: the 26 hours after the window and the window (about 14 pages), never the 20 before.
        near = 26 if sort is None else 20
        assert client.stats.pages <= (near + 2) * 50 // 100 + 2
