"""The platform switches that shape pages, cursors and answers, each proved over loopback HTTP:
page cap and the echoed limit, error bodies in a 200, short pages from rows dropped after the LIMIT,
what a cursor holds, id orders, zones, the date filter's field, numeric ids, conflicts and clocks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_etelecom.testing import PLATFORM_VARIANTS, EtelecomSimulator, SimulatorProcess

from .conftest import END, KEY, START, call, list_page


def _sim(consents: int = 120, **switches: Any) -> EtelecomSimulator:
    return EtelecomSimulator(consents=consents, seed=3, api_key=KEY, start=START, end=END, **switches)


def _ids(consents: list[dict[str, Any]] | None) -> list[str]:
    return [str(c["id"]) for c in consents or []]


def pages(sim: EtelecomSimulator, body: dict[str, Any] | None = None, max_pages: int = 500) -> Iterator[dict[str, Any]]:
    """Every page of a listing, the empty last one included; stops at a repeated cursor, as a careful client."""
    body = dict(body or {})
    paging = dict(body.pop("paging", {}))
    seen: set[str] = set()
    with requests.Session() as session:
        for _ in range(max_pages):
            page = list_page(sim, session, **body, paging=paging)
            yield page
            cursor = page["paging"]["next"]
            if not page["consents"] or cursor in seen:
                return
            seen.add(cursor)
            paging["after"] = cursor
    raise AssertionError("listing never ended")


# ------------------------------------------------------------------ page cap and limit echo
def test_page_cap_cuts_every_limit_and_the_listing_is_whole() -> None:
    with _sim(350, page_cap=30) as sim:
        assert len(list_page(sim, paging={"limit": 100})["consents"]) == 30
        assert list_page(sim)["paging"]["limit"] == 30, "the default limit is cut too, and echoed"
        assert len(list_page(sim, paging={"limit": 10})["consents"]) == 10
        listed = list(pages(sim, {"paging": {"limit": 100}}))
        assert [len(p["consents"]) for p in listed] == [30] * 11 + [20, 0]
        assert _ids([c for p in listed for c in p["consents"]]) == _ids(sim.consents())


@pytest.mark.parametrize(
    ("echo", "asked", "expected"),
    [
        ("effective", 100, 30),
        ("effective", None, 30),
        ("asked", 100, 100),
        ("asked", "7", 7),
        ("asked", None, 0),
        ("asked", -5, -5),
        ("absent", 100, None),
    ],
)
def test_limit_echo(echo: str, asked: object, expected: int | None) -> None:
    with _sim(page_cap=30, limit_echo=echo) as sim:
        paging = {} if asked is None else {"limit": asked}
        page = list_page(sim, paging=paging)
        assert len(page["consents"]) == min(30, 7 if asked == "7" else 30)
        if expected is None:
            assert "limit" not in page["paging"] and page["paging"]["next"]
        else:
            assert page["paging"]["limit"] == expected


def test_page_cap_variants() -> None:
    assert PLATFORM_VARIANTS["page_cap_50"] == {"page_cap": 50}
    with _sim(**PLATFORM_VARIANTS["page_cap_50+limit_asked"]) as sim:  # type: ignore[arg-type]
        page = list_page(sim, paging={"limit": 100})
        assert len(page["consents"]) == 50 and page["paging"]["limit"] == 100
    with _sim(**PLATFORM_VARIANTS["limit_absent"]) as sim:  # type: ignore[arg-type]
        assert "limit" not in list_page(sim)["paging"]
        assert call(sim, "Zalo/ListRequestConsent", {"paging": {"limit": "x"}}).status_code == 400


# ------------------------------------------------------------------ null empty page
def test_null_empty_page_encodes_an_empty_page_as_a_go_nil_slice() -> None:
    with _sim(30, null_empty_page=True) as sim:
        listed = list(pages(sim, {"paging": {"limit": 10}}))
        assert [len(p["consents"] or []) for p in listed] == [10, 10, 10, 0]
        last = call(sim, "Zalo/ListRequestConsent", {"paging": {"after": listed[-2]["paging"]["next"]}})
        assert last.text.startswith('{"consents":null,') and last.json()["paging"]["next"] == ""
        sim.null_empty_page = False
        assert list_page(sim, paging={"after": listed[-2]["paging"]["next"]})["consents"] == []
    assert PLATFORM_VARIANTS["null_empty_page"] == {"null_empty_page": True}


# ------------------------------------------------------------------ rows dropped after the LIMIT
def _visible(sim: EtelecomSimulator) -> list[str]:
    return _ids(sim.consents(visible_only=True))


def test_dropped_rows_count_against_the_limit_so_pages_come_back_short_mid_listing() -> None:
    with _sim(500, drop_after_limit=0.2) as sim:
        visible = _visible(sim)
        assert len(sim.consents()) == 500 and 330 <= len(visible) <= 470, "consents() still lists every one"
        listed = list(pages(sim, {"paging": {"limit": 50}}))
        sizes = [len(p["consents"]) for p in listed]
        assert sizes[-1] == 0 and all(0 < n < 50 for n in sizes[:-2]), sizes
        assert _ids([c for p in listed for c in p["consents"]]) == visible, "exactly the visible ones, in order"


def test_next_is_the_cursor_of_the_last_consent_returned() -> None:
    with _sim(300, drop_after_limit=0.3) as sim:
        order = _ids(sim.consents())
        first = list_page(sim, paging={"limit": 20})
        last_returned = first["consents"][-1]["id"]
        second = list_page(sim, paging={"limit": 20, "after": first["paging"]["next"]})
        # The rows taken after the last returned one, dropped, are taken (and dropped) again.
        after_last = order[order.index(last_returned) + 1 :]
        assert second["consents"][0]["id"] == next(i for i in after_last if i in set(_visible(sim)))
        assert first["paging"]["prev"] == list_page(sim, paging={"limit": 1})["paging"]["next"]


def test_a_page_of_dropped_rows_is_empty_and_ends_the_listing() -> None:
    with _sim(200, drop_after_limit=0.3) as sim:
        order, visible = _ids(sim.consents()), set(_visible(sim))
        first_dropped = next(n for n, consent_id in enumerate(order) if consent_id not in visible)
        listed = list(pages(sim, {"paging": {"limit": 1}}))
        assert [p["consents"] for p in listed][-1] == [] and listed[-1]["paging"]["next"] == ""
        assert _ids([c for p in listed for c in p["consents"]]) == order[:first_dropped]


def test_the_dropped_consents_are_the_same_in_every_process_and_request() -> None:
    flags = ("--consents", "200", "--seed", "3", "--start", "2026-01-01T00:00:00Z", "--end", "2026-01-31T00:00:00Z")
    with _sim(200, drop_after_limit=0.25) as sim, SimulatorProcess(*flags, "--drop-after-limit", "0.25") as other:
        visible = _visible(sim)
        assert visible == _visible(sim)
        answer = other.control("consents", {"visible_only": True})
        assert _ids(answer["consents"]) == visible
        assert len(other.control("consents", {})["consents"]) == 200
