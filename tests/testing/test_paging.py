"""Cursor paging of ``ListRequestConsent``: cap, order, cursors, the empty last page, keyset inserts."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
import requests

from airflow_provider_etelecom.testing import EtelecomSimulator

from .conftest import call, list_all, list_page, parse


def _order_key(consent: dict[str, object], field: str) -> tuple[str, int]:
    return str(consent[field]), int(str(consent["id"]))


def test_paging_over_four_pages_collects_exactly_the_full_set(sim: EtelecomSimulator) -> None:
    pages = []
    after = ""
    with requests.Session() as session:
        while True:
            page = list_page(sim, session, paging={"after": after})
            pages.append(page)
            if not page["consents"]:
                break
            after = page["paging"]["next"]
    assert [len(p["consents"]) for p in pages] == [100, 100, 100, 50, 0]
    ids = [c["id"] for p in pages for c in p["consents"]]
    assert len(ids) == len(set(ids)) == 350
    assert ids == [c["id"] for c in sim.consents()]


def test_limit_above_cap_is_cut_to_100_and_echoed(sim: EtelecomSimulator) -> None:
    page = list_page(sim, paging={"limit": 500})
    assert len(page["consents"]) == 100
    assert page["paging"]["limit"] == 100


@pytest.mark.parametrize("limit", [0, -5, None, ""])
def test_missing_or_non_positive_limit_means_default_100(sim: EtelecomSimulator, limit: object) -> None:
    page = list_page(sim, paging={"limit": limit})
    assert len(page["consents"]) == 100
    assert page["paging"]["limit"] == 100


def test_small_limit_and_string_limit_are_honoured(sim: EtelecomSimulator) -> None:
    assert len(list_page(sim, paging={"limit": 7})["consents"]) == 7
    page = list_page(sim, paging={"limit": "3"})
    assert len(page["consents"]) == 3
    assert page["paging"]["limit"] == 3


def test_paging_echoes_request_fields(sim: EtelecomSimulator) -> None:
    first = list_page(sim, paging={"limit": 5, "sort": "updated_at"})
    assert first["paging"]["sort"] == "updated_at"
    assert first["paging"]["after"] == "" and first["paging"]["before"] == ""
    second = list_page(sim, paging={"limit": 5, "sort": "updated_at", "after": first["paging"]["next"]})
    assert second["paging"]["after"] == first["paging"]["next"]
    assert second["paging"]["sort"] == "updated_at"


def test_next_is_filled_on_the_last_non_empty_page_and_then_an_empty_page(sim: EtelecomSimulator) -> None:
    after = ""
    for _ in range(3):
        after = list_page(sim, paging={"after": after})["paging"]["next"]
    last = list_page(sim, paging={"after": after})
    assert len(last["consents"]) == 50
    assert last["paging"]["next"] != "" and last["paging"]["prev"] != ""
    empty = list_page(sim, paging={"after": last["paging"]["next"]})
    assert empty["consents"] == []
    assert empty["paging"]["next"] == "" and empty["paging"]["prev"] == ""
    assert empty["paging"]["limit"] == 100


def test_default_order_is_newest_first_with_ties_broken_by_id(sim: EtelecomSimulator) -> None:
    items = list_all(sim)
    keys = [_order_key(c, "created_at") for c in items]
    assert keys == sorted(keys, reverse=True)
    created = [c["created_at"] for c in items]
    assert len(created) > len(set(created)), "seeded data must contain created_at ties"


@pytest.mark.parametrize("sort", ["created_at", "-created_at", "updated_at", "-updated_at"])
def test_each_sort_orders_by_field_then_id(sim: EtelecomSimulator, sort: str) -> None:
    sim.reply(sim.consents()[5]["id"], "P")
    items = list_all(sim, sort=sort, limit=37)
    field = sort.lstrip("-")
    keys = [_order_key(c, field) for c in items]
    assert keys == sorted(keys, reverse=sort.startswith("-"))
    assert len({c["id"] for c in items}) == 350


@pytest.mark.parametrize("sort", ["-created_at", "created_at", "updated_at"])
def test_before_with_prev_pages_backwards_in_sort_order(sim: EtelecomSimulator, sort: str) -> None:
    pages = []
    after = ""
    for _ in range(3):
        page = list_page(sim, paging={"after": after, "limit": 40, "sort": sort})
        pages.append(page)
        after = page["paging"]["next"]
    back = list_page(sim, paging={"before": pages[2]["paging"]["prev"], "limit": 40, "sort": sort})
    assert back["consents"] == pages[1]["consents"]
    back2 = list_page(sim, paging={"before": back["paging"]["prev"], "limit": 40, "sort": sort})
    assert back2["consents"] == pages[0]["consents"]
    start = list_page(sim, paging={"before": back2["paging"]["prev"], "limit": 40, "sort": sort})
    assert start["consents"] == [] and start["paging"]["prev"] == ""


def test_before_returns_the_closest_items_when_fewer_than_limit(sim: EtelecomSimulator) -> None:
    first = list_page(sim, paging={"limit": 10})
    back = list_page(sim, paging={"before": first["paging"]["next"], "limit": 100})
    assert back["consents"] == first["consents"][:-1]


def test_after_and_before_together_bound_a_range(sim: EtelecomSimulator) -> None:
    items = sim.consents()
    cursor_of_item_2 = list_page(sim, paging={"limit": 3})["paging"]["next"]
    cursor_of_item_6 = list_page(sim, paging={"limit": 7})["paging"]["next"]
    between = list_page(sim, paging={"after": cursor_of_item_2, "before": cursor_of_item_6})
    assert between["consents"] == items[3:6]


@pytest.mark.parametrize("sort", ["id", "-id", "created_at,id", "phone", "-created_at,-updated_at", "+created_at"])
def test_unsupported_sorts_are_rejected(sim: EtelecomSimulator, sort: str) -> None:
    response = call(sim, "Zalo/ListRequestConsent", {"paging": {"sort": sort}})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_argument"
    assert response.json()["meta"]["field"] == "sort"


def test_cursor_is_opaque_base64_json_bound_to_its_sort(sim: EtelecomSimulator) -> None:
    cursor = list_page(sim, paging={"limit": 2, "sort": "updated_at"})["paging"]["next"]
    decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    assert decoded["s"] == "updated_at"
    response = call(sim, "Zalo/ListRequestConsent", {"paging": {"after": cursor, "sort": "-updated_at"}})
    assert response.status_code == 400
    assert response.json()["meta"]["field"] == "after"
    response = call(sim, "Zalo/ListRequestConsent", {"paging": {"before": cursor}})
    assert response.status_code == 400
    assert response.json()["meta"]["field"] == "before"


def test_default_sort_and_explicit_minus_created_at_share_cursors(sim: EtelecomSimulator) -> None:
    cursor = list_page(sim, paging={"limit": 2})["paging"]["next"]
    page = list_page(sim, paging={"after": cursor, "sort": "-created_at", "limit": 2})
    assert page["consents"] == sim.consents()[2:4]


@pytest.mark.parametrize("cursor", ["garbage!", "e30", "bm90IGpzb24", 12])
def test_garbage_cursor_is_rejected(sim: EtelecomSimulator, cursor: object) -> None:
    response = call(sim, "Zalo/ListRequestConsent", {"paging": {"after": cursor}})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_argument"


@pytest.mark.parametrize("limit", ["abc", 1.5, True, [1]])
def test_bad_limit_is_rejected(sim: EtelecomSimulator, limit: object) -> None:
    response = call(sim, "Zalo/ListRequestConsent", {"paging": {"limit": limit}})
    assert response.status_code == 400
    assert response.json()["meta"]["field"] == "limit"


def test_inserts_while_paging_never_duplicate_or_skip_existing_rows(sim: EtelecomSimulator) -> None:
    existing = {c["id"] for c in sim.consents()}
    seen: list[str] = []
    after = ""
    middle = parse(sim.consents()[175]["created_at"])
    for round_ in range(100):
        page = list_page(sim, paging={"after": after, "limit": 30})
        if not page["consents"]:
            break
        seen.extend(c["id"] for c in page["consents"])
        after = page["paging"]["next"]
        # New rows: newest (ahead of the cursor), in the middle, on an exact tie with the cursor row.
        sim.insert_consents(2)
        sim.insert_consents(1, created_at=middle + timedelta(seconds=round_))
        sim.add_consent(created_at=page["consents"][-1]["created_at"])
    assert len(seen) == len(set(seen)), "a row was served twice"
    assert existing <= set(seen), "an existing row was skipped"


def test_sort_by_updated_at_keyset_survives_replies_of_other_rows(sim: EtelecomSimulator) -> None:
    first = list_page(sim, paging={"sort": "updated_at", "limit": 50})
    # Replying moves rows to the end of an updated_at order; rows not touched are still served once.
    untouched_later = list_all(sim, sort="updated_at")[50:]
    sim.reply(first["consents"][0]["id"], "N")
    rest = []
    after = first["paging"]["next"]
    while True:
        page = list_page(sim, paging={"sort": "updated_at", "after": after})
        if not page["consents"]:
            break
        rest.extend(page["consents"])
        after = page["paging"]["next"]
    rest_ids = [c["id"] for c in rest]
    assert len(rest_ids) == len(set(rest_ids))
    assert {c["id"] for c in untouched_later} <= set(rest_ids)
    assert rest_ids[-1] == first["consents"][0]["id"]


def test_a_page_looks_at_its_limit_of_consents_however_deep_in_a_large_store() -> None:
    """A page costs O(limit): the walk starts at the cursor (bisection), not at the store's start.

    Counted, not timed: the consents the walk hands to the filter are exactly the page's 100, on
    the first page and 50 pages deep alike (a timed bound flaked on a loaded machine).
    """
    from airflow_provider_etelecom.testing.store import Consent, ConsentFilter, Store, parse_paging

    looked_at = 0

    class CountingFilter(ConsentFilter):
        def matches(self, consent: Consent, low: int | None = None, high: int | None = None) -> bool:
            nonlocal looked_at
            looked_at += 1
            return super().matches(consent, low, high)

    store = Store(consents=20_000, seed=3)
    next_cursor = ""
    for _ in range(51):
        looked_at = 0
        items, next_cursor, _ = store.list_page(CountingFilter(), parse_paging({"limit": 100, "after": next_cursor}))
        assert len(items) == 100
        assert looked_at == 100
