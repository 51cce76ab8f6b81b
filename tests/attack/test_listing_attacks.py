"""Red-team attacks on the listing engine (``client/paging.py``), over real loopback HTTP.

Each test first names a platform the simulator was not built on and what an earlier client lost
there; it now asserts the outcome owed: every consent once, or a loud error naming the behaviour.
One residual no listing can see is kept as a strict xfail, beside the check that catches it.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from airflow_provider_etelecom.client import ConsentQuery
from airflow_provider_etelecom.client.models import parse_api_time
from airflow_provider_etelecom.client.paging import CursorKind
from airflow_provider_etelecom.client.parallel import iter_consent_pages_parallel
from airflow_provider_etelecom.client.seen import SeenIds
from airflow_provider_etelecom.client.verify import opposite_order, verify_export
from airflow_provider_etelecom.exceptions import EtelecomContractError
from airflow_provider_etelecom.testing import EtelecomSimulator
from tests.attack.conftest import START, WINDOW, make_client, outcome, spaced_rows
from tests.attack.platform import KEY, MiniPlatform, Row

UTC = timezone.utc
SIM_START = datetime(2025, 3, 1, tzinfo=UTC)
SIM_END = SIM_START + timedelta(days=2)


def simulator(**switches: Any) -> EtelecomSimulator:
    return EtelecomSimulator(consents=1200, seed=11, api_key=KEY, start=SIM_START, end=SIM_END, **switches)


def crowded_second(sim: EtelecomSimulator) -> datetime:
    listed = sim.consents(visible_only=True)
    return parse_api_time(Counter(c["created_at"] for c in listed).most_common(1)[0][0])


def walk_cursor(base_url: str, body: dict[str, Any] | None = None) -> list[str]:
    """Page a listing the naive way (follow `next` until an empty page), straight over HTTP."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {KEY}"
    request = body or {"filter": {}, "paging": {"limit": 100}}
    ids: list[str] = []
    while True:
        answer = session.post(f"{base_url}.Zalo/ListRequestConsent", json=request, timeout=30).json()
        if not answer.get("consents"):
            return ids
        ids += [str(c["id"]) for c in answer["consents"]]
        request = {**request, "paging": {**request["paging"], "after": answer["paging"]["next"]}}


def expected_in(sim: EtelecomSimulator, low: datetime, high: datetime) -> set[str]:
    return {str(c["id"]) for c in sim.consents(visible_only=True) if low <= parse_api_time(c["created_at"]) < high}


# ------------------------------------------------------------------------------------------------
# Rows dropped after the SQL LIMIT make a page inside a crowded second look "not full"; an earlier
# client then stepped past the whole second by a date bound (121 of 171 lost, green).
# ------------------------------------------------------------------------------------------------


def test_drops_after_limit_inside_a_crowded_second_lose_nothing_under_a_keyset_cursor() -> None:
    # Two behaviours at once: drop_after_limit (short pages mid-listing) and a second holding more
    # than a page (the simulator's burst switch), with a keyset cursor.
    with simulator(drop_after_limit=0.6, cursor_kind="keyset", burst_share=0.3, burst_span_s=1.0) as sim:
        crowd = crowded_second(sim)
        low, high = crowd, crowd + timedelta(hours=1)
        expected = expected_in(sim, low, high)
        client = make_client(sim.base_url)
        listing = client.listing(ConsentQuery.build(date_from=low, date_to=high, sort="created_at"))
        ids = [c["id"] for page in listing for c in page["consents"]]
    assert listing.ended and client.facts.short_pages
    assert outcome(ids, expected) == {"expected": 171, "lost": 0, "doubled": 0, "foreign": 0}


# ------------------------------------------------------------------------------------------------
# A "roomy" page (from heavy drops) was taken to hold all of its last second, so an unlearnt `<`
# cursor was followed out of a crowded second (67 lost, green, sequential and parallel). Such a
# cursor cannot page through a second holding more than a page: the listing must say so.
# ------------------------------------------------------------------------------------------------


def test_a_skipping_cursor_with_heavy_drops_in_a_crowded_second_fails_loudly() -> None:
    with simulator(drop_after_limit=0.8, cursor_kind="value_lt", burst_share=0.3, burst_span_s=1.0) as sim:
        crowd = crowded_second(sim)
        query = ConsentQuery.build(date_from=crowd - timedelta(hours=6), date_to=crowd + timedelta(seconds=1))
        client = make_client(sim.base_url)
        with pytest.raises(EtelecomContractError) as loud:
            list(client.listing(query))
    assert loud.value.behaviour == "crowded_second"
    assert client.facts.cursor is CursorKind.SKIPPING


def test_parallel_windows_fail_as_loudly_as_the_sequential_listing_at_a_crowded_second() -> None:
    low, high = SIM_START + timedelta(hours=3, microseconds=250_000), SIM_END - timedelta(hours=3)
    switches = {"drop_after_limit": 0.8, "cursor_kind": "value_lt", "burst_share": 0.3, "burst_span_s": 1.0}
    query = ConsentQuery.build(date_from=low, date_to=high)
    with simulator(**switches) as sim:
        with pytest.raises(EtelecomContractError) as sequential:
            list(make_client(sim.base_url).iter_consents(query))
        pages = iter_consent_pages_parallel(lambda gate: make_client(sim.base_url), query, parallel_windows=4)
        with pytest.raises(EtelecomContractError) as parallel:
            list(pages)
    assert sequential.value.behaviour == parallel.value.behaviour == "crowded_second"


# ------------------------------------------------------------------------------------------------
# A keyset platform (the one the loud error asks for) with 10 % of rows dropped after LIMIT and a
# crowded second: every cursor probe met a dropped row and was spent, and the listing failed loudly
# although following `next` lists every consent exactly once.
# ------------------------------------------------------------------------------------------------


def test_a_keyset_cursor_with_ten_percent_drops_pages_through_a_crowded_second() -> None:
    with simulator(drop_after_limit=0.1, cursor_kind="keyset", burst_share=0.3, burst_span_s=1.0) as sim:
        client = make_client(sim.base_url)
        ids = [c["id"] for c in client.iter_consents(ConsentQuery.build())]
        expected = {str(c["id"]) for c in sim.consents(visible_only=True)}
        walked = walk_cursor(sim.base_url)
    assert client.facts.cursor is CursorKind.KEYSET
    assert (
        outcome(ids, expected)
        == outcome(walked, expected)
        == {
            "expected": 1076,
            "lost": 0,
            "doubled": 0,
            "foreign": 0,
        }
    )


# ------------------------------------------------------------------------------------------------
# An empty page that still carries a `next` mid-listing (a run of rows dropped after the SQL LIMIT:
# soft-deleted, or an OA the key may not see) ended the listing (600 of 1,200 lost, green).
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sort", [None, "created_at"])
def test_an_empty_page_carrying_a_next_cursor_is_followed(sort: str | None) -> None:
    rows = spaced_rows(START, 1450, seed=3, hidden=range(600, 850))  # 250 soft-deleted in a row
    with MiniPlatform(rows, shown="us", cursor="keyset", cursor_from="sql", next_on_empty=True) as platform:
        client = make_client(platform.base_url)
        listing = client.listing(ConsentQuery.build(date_from=WINDOW[0], date_to=WINDOW[1], sort=sort))
        ids = [c["id"] for page in listing for c in page["consents"]]
        expected = platform.visible_ids(*WINDOW)
    assert listing.ended
    assert outcome(ids, expected) == {"expected": 1200, "lost": 0, "doubled": 0, "foreign": 0}


def test_consents_null_and_an_empty_list_beside_a_next_cursor_are_both_an_empty_page() -> None:
    from airflow_provider_etelecom.client.paging import parse_listing

    for raw in (None, []):
        consents, paging = parse_listing({"consents": raw, "paging": {"next": "abc"}})
        assert consents == [] and paging["next"] == "abc"


# ------------------------------------------------------------------------------------------------
# A created_at-only `<` cursor compared at the stored precision (microseconds), while answers show
# whole seconds (Go's time.RFC3339). Two consents sharing a shown second but not a stored time look,
# to a lesson, like a keyset going on inside a tie; an earlier client learnt "keyset" from such ties
# on its first pages, then lost the consents stamped with one identical time (a batch) that a page
# boundary split (9 of 1,200, green). A listing now learns the cursor only where a second holds a
# whole page; elsewhere it reads each page's last second whole by a date bound.
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "gap_us", "seed", "sort"),
    [
        (1200, (100_000, 900_000), 7, None),  # about 2 consents a second: 9 of 1,200 were lost
        (3000, (20_000, 150_000), 1, None),  # about 12 a second: lessons after a page of re-reads lost 23
        (3000, (20_000, 150_000), 1, "created_at"),  # and 13 oldest first
    ],
)
def test_a_value_cursor_at_microseconds_with_whole_seconds_shown_lists_exactly(
    n: int, gap_us: tuple[int, int], seed: int, sort: str | None
) -> None:
    rows = spaced_rows(START, n, seed=seed, gap_us=gap_us, batch_share=0.25)
    with MiniPlatform(rows, shown="s", cursor="value_lt", cursor_from="served") as platform:
        query = ConsentQuery.build(date_from=WINDOW[0], date_to=WINDOW[1], sort=sort)
        client = make_client(platform.base_url)
        exported = SeenIds()
        exported.add_new(c["id"] for c in client.iter_consents(query))
        check = verify_export(make_client(platform.base_url).listing(opposite_order(query)), exported)
        expected = platform.visible_ids(*WINDOW)
    assert len(exported) == len(expected) and all(consent_id in exported for consent_id in expected)
    assert check.missing == 0 and check.listed == len(expected)  # the other order agrees


# ------------------------------------------------------------------------------------------------
# Handled (OK): what was tried and survived.
# ------------------------------------------------------------------------------------------------


def test_OK_a_cursor_bound_to_its_filter_is_never_sent_with_another_date_bound() -> None:
    # A cursor that embeds a hash of the filter it was issued for and is refused (400) with any other.
    rows = spaced_rows(START, 1200, seed=4, gap_us=(100_000, 2_000_000), batch_share=0.2)
    platform = MiniPlatform(rows, shown="s", cursor="keyset", cursor_from="served")
    plain_encode, plain_list = platform.encode, platform.list_page
    current: dict[str, Any] = {}

    def digest(flt: dict[str, Any]) -> str:
        return hashlib.sha1(json.dumps(flt, sort_keys=True).encode()).hexdigest()[:8]

    def encode(row: Row, offset: int) -> str:
        return plain_encode(row, offset) + "." + digest(current["filter"])

    def list_page(body: dict[str, Any]) -> dict[str, Any]:
        current["filter"] = body.get("filter") or {}
        after = (body.get("paging") or {}).get("after")
        if after:
            cursor, _, bound = after.rpartition(".")
            if bound != digest(current["filter"]):
                raise ValueError("cursor/filter mismatch")
            body = {**body, "paging": {**body["paging"], "after": cursor}}
        return plain_list(body)

    def hook(method: str, body: dict[str, Any], n: int) -> Any:
        if method != "ListRequestConsent":
            return None
        try:
            return 200, list_page(body), {}
        except ValueError:
            return 400, {"code": "invalid_argument", "msg": "paging.after không hợp lệ"}, {}

    platform.encode = encode  # type: ignore[method-assign]
    platform.hooks.append(hook)
    with platform:
        client = make_client(platform.base_url)
        ids = [c["id"] for c in client.iter_consents(ConsentQuery.build(date_from=WINDOW[0], date_to=WINDOW[1]))]
    assert outcome(ids, platform.visible_ids(*WINDOW))["lost"] == 0
    assert outcome(ids, platform.visible_ids(*WINDOW))["doubled"] == 0


def test_OK_a_platform_ignoring_limit_serves_1000_a_page() -> None:
    rows = spaced_rows(START, 3000, seed=5, gap_us=(50_000, 1_000_000), batch_share=0.2)
    with MiniPlatform(rows, shown="s", cursor="keyset", cap=1000, ignore_limit=True) as platform:
        client = make_client(platform.base_url)
        window = (START, START + timedelta(hours=3))
        ids = [c["id"] for c in client.iter_consents(ConsentQuery.build(date_from=window[0], date_to=window[1]))]
    assert outcome(ids, platform.visible_ids(*window)) == {"expected": 3000, "lost": 0, "doubled": 0, "foreign": 0}
    assert client.stats.requests <= 12


def test_OK_pages_served_in_the_opposite_order_of_the_sort_asked() -> None:
    rows = spaced_rows(START, 1200, seed=6, gap_us=(100_000, 2_000_000), batch_share=0.2)
    platform = MiniPlatform(rows, shown="s", cursor="keyset")
    plain = platform.list_page

    def opposite(body: dict[str, Any]) -> dict[str, Any]:
        paging = dict(body.get("paging") or {})
        asked = paging.get("sort") or "-created_at"
        flipped = asked[1:] if asked.startswith("-") else "-" + asked
        answer = plain({**body, "paging": {**paging, "sort": flipped}})
        answer["paging"]["sort"] = asked  # echoes what was asked
        return answer

    platform.list_page = opposite  # type: ignore[method-assign]
    with platform:
        for sort in (None, "created_at"):
            client = make_client(platform.base_url)
            query = ConsentQuery.build(date_from=WINDOW[0], date_to=WINDOW[1], sort=sort)
            ids = [c["id"] for c in client.iter_consents(query)]
            assert outcome(ids, platform.visible_ids(*WINDOW))["lost"] == 0
            assert not client.facts.ordered


def test_OK_times_with_offsets_and_nanoseconds() -> None:
    rows = spaced_rows(START, 600, seed=8, gap_us=(100_000, 2_000_000), batch_share=0.2)
    platform = MiniPlatform(rows, shown="us", cursor="keyset")

    def wire(row: Row) -> dict[str, Any]:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=row.us)
        local = moment.astimezone(timezone(timedelta(hours=7)))
        text = local.strftime("%Y-%m-%dT%H:%M:%S") + f".{local.microsecond:06d}789+07:00"
        return {**MiniPlatform.wire(platform, row), "created_at": text, "updated_at": text}

    platform.wire = wire  # type: ignore[method-assign]
    with platform:
        client = make_client(platform.base_url)
        ids = [c["id"] for c in client.iter_consents(ConsentQuery.build(date_from=WINDOW[0], date_to=WINDOW[1]))]
    assert outcome(ids, platform.visible_ids(*WINDOW)) == {"expected": 600, "lost": 0, "doubled": 0, "foreign": 0}


def test_OK_a_caching_proxy_serving_page_one_to_every_request_fails_loudly_naming_it() -> None:
    # A proxy caching POST answers by URL: every request gets the first answer.
    rows = spaced_rows(START, 1200, seed=9)
    platform = MiniPlatform(rows, shown="us", cursor="keyset")
    first: dict[str, Any] = {}

    def cached(method: str, body: dict[str, Any], n: int) -> Any:
        if method != "ListRequestConsent":
            return None
        if not first:
            first["answer"] = platform.list_page(body)
        return 200, first["answer"], {}

    platform.hooks.append(cached)
    with platform:
        client = make_client(platform.base_url)
        with pytest.raises(EtelecomContractError) as caught:
            list(client.iter_consents(ConsentQuery.build(date_from=WINDOW[0], date_to=WINDOW[1])))
    assert len(platform.bodies()) <= 15
    assert caught.value.behaviour == "no_progress"
    assert "caching proxy" in caught.value.message and "platform_filter_zone" not in caught.value.message


def test_OK_duplicate_ids_with_different_content_within_one_page() -> None:
    rows = spaced_rows(START, 300, seed=10)
    platform = MiniPlatform(rows, shown="us", cursor="keyset")
    plain = platform.list_page

    def doubled(body: dict[str, Any]) -> dict[str, Any]:
        answer = plain(body)
        if answer["consents"]:
            twin = {**answer["consents"][0], "reply_status": "P"}
            answer["consents"].insert(1, twin)
        return answer

    platform.list_page = doubled  # type: ignore[method-assign]
    with platform:
        client = make_client(platform.base_url)
        consents = list(client.iter_consents(ConsentQuery.build(date_from=WINDOW[0], date_to=WINDOW[1])))
    ids = [c["id"] for c in consents]
    assert outcome(ids, platform.visible_ids(*WINDOW))["lost"] == 0
    assert outcome(ids, platform.visible_ids(*WINDOW))["doubled"] == 0
    # Kept silently: the first version (S), its twin (P) dropped as a repeat without a word.
    assert Counter(c["reply_status"] for c in consents)["P"] == 0


# ------------------------------------------------------------------------------------------------
# Residual: created_at sorts served as ORDER BY id, ids following created_at exactly except a few
# consents whose ids are hours out of line (a Snowflake node whose clock lagged 3 h; or ids allocated
# when a request was queued, created_at stamped when it was sent). Newest first, those consents come
# last in id order; every date-bound step excludes them before any page shows them out of order.
# (Following a cursor not yet learnt instead would lose the rest of a second to a `<` cursor, the
# likelier platform: see test_paging's page ending on the first consent of a second.) A second
# listing in the other order shows them first, out of order, and catches it.
# ------------------------------------------------------------------------------------------------

SPAN = (START, START + timedelta(hours=3))


def _rows_with_a_few_id_jumps() -> list[Row]:
    rows = spaced_rows(START, 1200, seed=12, gap_us=(3_000_000, 15_000_000))
    for k, index in enumerate(range(1100, 1200, 20)):  # 5 consents of the newest hour
        rows[index].id = 900_000_000_000_000_000 + k
    return rows


@pytest.mark.xfail(
    strict=True,
    reason="residual (docs/platform.md): ids hours out of line on a few consents, served as a created_at "
    "order, show no page out of order newest first; verify=True catches it",
)
@pytest.mark.parametrize("windows", [None, 4])
def test_order_by_id_with_a_few_huge_id_jumps_newest_first_lists_exactly(windows: int | None) -> None:
    with MiniPlatform(_rows_with_a_few_id_jumps(), shown="us", cursor="keyset", order_by_id=True) as platform:
        query = ConsentQuery.build(date_from=SPAN[0], date_to=SPAN[1])
        if windows is None:
            ids = [c["id"] for c in make_client(platform.base_url).iter_consents(query)]
        else:
            pages = iter_consent_pages_parallel(
                lambda gate: make_client(platform.base_url), query, parallel_windows=windows
            )
            ids = [c["id"] for page in pages for c in page["consents"]]
        expected = platform.visible_ids(*SPAN)
    assert outcome(ids, expected)["lost"] == 0


def test_order_by_id_with_a_few_huge_id_jumps_is_caught_by_a_second_listing() -> None:
    with MiniPlatform(_rows_with_a_few_id_jumps(), shown="us", cursor="keyset", order_by_id=True) as platform:
        query = ConsentQuery.build(date_from=SPAN[0], date_to=SPAN[1])
        exported = SeenIds()
        exported.add_new(c["id"] for c in make_client(platform.base_url).iter_consents(query))
        check = verify_export(make_client(platform.base_url).listing(opposite_order(query)), exported)
    assert check.missing == 5
    with pytest.raises(EtelecomContractError, match="not exported"):
        check.raise_if_incomplete("the export")


def test_OK_order_by_id_with_a_few_huge_id_jumps_oldest_first_is_caught_and_relisted() -> None:
    span = SPAN
    with MiniPlatform(_rows_with_a_few_id_jumps(), shown="us", cursor="keyset", order_by_id=True) as platform:
        client = make_client(platform.base_url)
        query = ConsentQuery.build(date_from=span[0], date_to=span[1], sort="created_at")
        ids = [c["id"] for c in client.iter_consents(query)]
        assert outcome(ids, platform.visible_ids(*span))["lost"] == 0 and not client.facts.ordered
