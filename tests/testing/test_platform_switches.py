"""The platform switches that shape pages, cursors and answers, each proved over loopback HTTP:
page cap and the echoed limit, error bodies in a 200, short pages from rows dropped after the LIMIT,
what a cursor holds, id orders, zones, the date filter's field, numeric ids, conflicts and clocks."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import pairwise
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


# ------------------------------------------------------------------ what a cursor holds
TIED = (("2026-02-01T10:00:00Z", 3), ("2026-02-01T10:00:01Z", 7), ("2026-02-01T10:00:02Z", 3))


def _tied(**switches: Any) -> EtelecomSimulator:
    """Thirteen consents on three whole seconds: 3, then 7, then 3 sharing one created_at."""
    sim = _sim(0, **switches)
    for created_at, n in TIED:
        for _ in range(n):
            sim.add_consent(created_at=created_at, status="N")  # a failed send: updated_at stays created_at
    return sim


def _order(sim: EtelecomSimulator, sort: str) -> list[str]:
    newest_first = _ids(sim.consents())
    return newest_first if sort.startswith("-") or not sort else newest_first[::-1]


def _decoded(cursor: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return data


@pytest.mark.parametrize("sort", ["", "created_at", "-updated_at"])
def test_value_lt_skips_the_ties_that_did_not_fit(sort: str) -> None:
    with _tied(cursor_kind="value_lt") as sim:
        order = _order(sim, sort)
        listed = list(pages(sim, {"paging": {"sort": sort, "limit": 5}}))
        assert [_ids(p["consents"]) for p in listed] == [order[:5], order[10:], []]
        assert set(_decoded(listed[0]["paging"]["next"])) == {"s", "k"}, "the sort value only"


@pytest.mark.parametrize("sort", ["", "created_at"])
def test_value_le_repeats_the_ties_and_a_crowded_value_comes_back_forever(sort: str) -> None:
    with _tied(cursor_kind="value_le") as sim:
        order = _order(sim, sort)
        first = list_page(sim, paging={"sort": sort, "limit": 5})
        again = list_page(sim, paging={"sort": sort, "limit": 5, "after": first["paging"]["next"]})
        assert _ids(first["consents"]) == order[:5] and _ids(again["consents"]) == order[3:8]
        stuck = list_page(sim, paging={"sort": sort, "limit": 5, "after": again["paging"]["next"]})
        assert stuck == {**again, "paging": {**again["paging"], "after": again["paging"]["next"]}}
        assert stuck["paging"]["next"] == again["paging"]["next"], "the same page with the same cursor"
        # With room for the ties the listing moves on, but it never ends on an empty page: the last
        # page (the ties of its last value) comes back with the cursor the page before it had.
        listed = list(pages(sim, {"paging": {"sort": sort, "limit": 8}}))
        assert [_ids(p["consents"]) for p in listed] == [order[:8], order[3:11], order[10:]]
        assert listed[2]["paging"]["next"] == listed[1]["paging"]["next"]
        last = list_page(sim, paging={"sort": sort, "limit": 8, "after": listed[2]["paging"]["next"]})
        assert _ids(last["consents"]) == order[10:]


def test_value_cursors_page_backwards_by_value() -> None:
    with _tied(cursor_kind="value_lt") as sim:
        order = _order(sim, "")
        last = list_page(sim, paging={"limit": 5, "after": list_page(sim, paging={"limit": 5})["paging"]["next"]})
        back = list_page(sim, paging={"limit": 5, "before": last["paging"]["prev"]})
        assert _ids(back["consents"]) == order[5:10], "the 5 rows just before 10:00:00, in the sort order"


def test_offset_cursors_repeat_rows_after_an_insert_and_skip_rows_after_a_delete() -> None:
    with _tied(cursor_kind="offset") as sim:
        order = _order(sim, "")
        first = list_page(sim, paging={"limit": 4})
        assert _decoded(first["paging"]["next"]) == {"s": "-created_at", "o": 4}
        newer = sim.insert_consents(2)  # two rows ahead of the position: two rows come back
        second = list_page(sim, paging={"limit": 4, "after": first["paging"]["next"]})
        assert _ids(second["consents"]) == order[2:6]
        sim.delete_consents([c["id"] for c in newer] + order[:3])  # five rows gone before it: five skipped
        third = list_page(sim, paging={"limit": 4, "after": second["paging"]["next"]})
        assert _ids(third["consents"]) == order[11:]
        back = list_page(sim, paging={"limit": 4, "before": third["paging"]["prev"]})
        assert _ids(back["consents"]) == order[7:11], "before an offset: the rows just before it now"
        assert list_page(sim, paging={"limit": 4, "after": third["paging"]["next"]})["consents"] == []


def test_offset_cursors_count_rows_after_the_filter() -> None:
    with _sim(200, cursor_kind="offset") as sim:
        flt = {"call_type": "audio"}
        every = [c for p in pages(sim, {"filter": flt, "paging": {"limit": 30}}) for c in p["consents"]]
        assert _ids(every) == [c["id"] for c in sim.consents() if c["call_type"] == "audio"]


@pytest.mark.parametrize("kind", ["keyset", "value_lt", "value_le", "offset"])
def test_every_cursor_kind_is_opaque_bound_to_its_sort_and_to_its_kind(kind: str) -> None:
    with _tied(cursor_kind=kind) as sim:
        cursor = list_page(sim, paging={"limit": 2, "sort": "updated_at"})["paging"]["next"]
        assert _decoded(cursor)["s"] == "updated_at"
        wrong_sort = call(sim, "Zalo/ListRequestConsent", {"paging": {"after": cursor, "sort": "created_at"}})
        assert wrong_sort.status_code == 400 and wrong_sort.json()["meta"]["field"] == "after"
        other = "offset" if kind != "offset" else "keyset"
        sim.cursor_kind = other
        refused = call(sim, "Zalo/ListRequestConsent", {"paging": {"before": cursor, "sort": "updated_at"}})
        assert refused.status_code == 400 and refused.json()["meta"]["field"] == "before"


def test_cursor_kind_variants() -> None:
    assert {PLATFORM_VARIANTS[f"cursor_{kind}"]["cursor_kind"] for kind in ("value_lt", "value_le", "offset")} == {
        "value_lt",
        "value_le",
        "offset",
    }


# ------------------------------------------------------------------ cursor expiry
@pytest.mark.parametrize("field", ["after", "before"])
def test_a_cursor_older_than_its_ttl_is_refused_as_expired(field: str) -> None:
    with _sim(cursor_ttl_s=60) as sim:
        cursor = list_page(sim, paging={"limit": 10})["paging"]["next"]
        assert "t" in _decoded(cursor), "the cursor carries its issue time"
        sim.advance(59)
        assert list_page(sim, paging={"limit": 10, field: cursor})["consents"]
        sim.advance(2)
        refused = call(sim, "Zalo/ListRequestConsent", {"paging": {"limit": 10, field: cursor}})
        assert refused.status_code == 400
        body = refused.json()
        assert body["code"] == "invalid_argument" and body["meta"] == {"field": field} and "expired" in body["msg"]


def test_a_fresh_cursor_of_every_page_keeps_a_slow_listing_going() -> None:
    with _sim(350, cursor_ttl_s=60) as sim:
        seen: list[str] = []
        after = ""
        while True:
            page = list_page(sim, paging={"after": after})
            if not page["consents"]:
                break
            seen.extend(_ids(page["consents"]))
            after = page["paging"]["next"]
            sim.advance(45)  # each page within the TTL of the cursor before it
        assert seen == _ids(sim.consents())


def test_cursors_issued_before_the_ttl_was_set_never_expire() -> None:
    with _sim() as sim:
        cursor = list_page(sim, paging={"limit": 10})["paging"]["next"]
        assert "t" not in _decoded(cursor)
        sim.cursor_ttl_s = 1
        sim.advance(3600)
        assert list_page(sim, paging={"limit": 10, "after": cursor})["consents"]
        assert PLATFORM_VARIANTS["cursor_expiry"] == {"cursor_ttl_s": 60.0}


# ------------------------------------------------------------------ created_at sorts served by id
def _created(consent: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(consent["created_at"].replace("Z", "+00:00"))


def test_id_time_jitter_gives_ids_that_only_roughly_follow_time() -> None:
    with _sim(2000, id_time_jitter_s=300) as sim, _sim(2000, id_time_jitter_s=300) as again, _sim(2000) as plain:
        by_time = sim.consents()  # newest created_at first
        assert _ids(by_time) == _ids(again.consents()), "the jitter comes from the seed"
        assert sorted(_ids(by_time)) == sorted(_ids(plain.consents())), "the same ids, handed out in another order"
        assert [c["created_at"] for c in by_time] == [c["created_at"] for c in plain.consents()]
        inversions = [(newer, older) for newer, older in pairwise(by_time) if int(newer["id"]) < int(older["id"])]
        assert inversions, "a consent can have a larger id than a newer one"
        assert all((_created(a) - _created(b)).total_seconds() <= 600 for a, b in inversions)
        plain_ids = [int(i) for i in _ids(plain.consents())]
        assert plain_ids == sorted(plain_ids, reverse=True), "without jitter ids follow time exactly"
        later = sim.insert_consents(1)[0]
        assert int(later["id"]) > max(int(i) for i in _ids(by_time)), "consents added later get larger ids"


@pytest.mark.parametrize(("sort", "descending"), [("", True), ("-created_at", True), ("created_at", False)])
def test_order_by_id_serves_created_at_sorts_by_id(sort: str, descending: bool) -> None:
    with _sim(400, order_by_id=True, id_time_jitter_s=300) as sim:
        listed = [c for p in pages(sim, {"paging": {"sort": sort, "limit": 37}}) for c in p["consents"]]
        assert [int(i) for i in _ids(listed)] == sorted((int(i) for i in _ids(sim.consents())), reverse=descending)
        times = [_created(c) for c in listed]
        assert times != sorted(times, reverse=descending), "created_at only roughly follows the id order"
        cursor = list_page(sim, paging={"sort": sort, "limit": 3})["paging"]["next"]
        assert _decoded(cursor)["n"] == _decoded(cursor)["i"], "the keyset is on the id"


def test_order_by_id_filters_dates_on_created_at_and_leaves_updated_at_sorts_alone() -> None:
    with _sim(600, order_by_id=True, id_time_jitter_s=3600) as sim:
        window = {"date_from": "2026-01-10T00:00:00Z", "date_to": "2026-01-12T00:00:00Z"}
        inside = [c for c in sim.consents() if "2026-01-10T" <= c["created_at"] < "2026-01-12T"]
        listed = [c for p in pages(sim, {"filter": window, "paging": {"limit": 10}}) for c in p["consents"]]
        assert sorted(_ids(listed)) == sorted(_ids(inside)) and len(listed) > 20
        by_update = [c for p in pages(sim, {"paging": {"sort": "updated_at"}}) for c in p["consents"]]
        keys = [(c["updated_at"], int(c["id"])) for c in by_update]
        assert keys == sorted(keys)


def test_order_by_id_keyset_survives_inserts_and_deletes() -> None:
    with _sim(300, order_by_id=True, id_time_jitter_s=300) as sim:
        existing = _ids(sim.consents())
        seen: list[str] = []
        after = ""
        for round_ in range(100):
            page = list_page(sim, paging={"after": after, "limit": 30})
            if not page["consents"]:
                break
            seen.extend(_ids(page["consents"]))
            after = page["paging"]["next"]
            sim.insert_consents(2)
            if round_ == 2:
                sim.delete_consents(existing[-5:])
        kept = [i for i in existing if i not in existing[-5:]]
        assert len(seen) == len(set(seen)) and set(kept) <= set(seen)
        sim.order_by_id = False
        refused = call(sim, "Zalo/ListRequestConsent", {"paging": {"after": after}})
        assert refused.status_code == 400, "an id cursor is no cursor of a time order"


def test_order_by_id_variant() -> None:
    assert PLATFORM_VARIANTS["order_by_id"] == {"order_by_id": True, "id_time_jitter_s": 300.0}


# ------------------------------------------------------------------ which time the date filters bound
WEEK = {"date_from": "2026-01-10T00:00:00Z", "date_to": "2026-01-17T00:00:00Z"}


def _in_week(value: str) -> bool:
    return WEEK["date_from"] <= value < WEEK["date_to"]


@pytest.mark.parametrize("sort", ["", "created_at", "-updated_at", "updated_at"])
def test_date_filters_on_updated_at(sort: str) -> None:
    with _sim(600, date_filter_field="updated_at") as sim:
        every = sim.consents()
        by_update = {c["id"] for c in every if _in_week(c["updated_at"])}
        by_creation = {c["id"] for c in every if _in_week(c["created_at"])}
        assert by_update != by_creation, "replies move updated_at out of the week they were created in"
        listed = [c for p in pages(sim, {"filter": WEEK, "paging": {"sort": sort, "limit": 40}}) for c in p["consents"]]
        assert sorted(_ids(listed)) == sorted(by_update)
        sim.date_filter_field = "created_at"
        listed = [c for p in pages(sim, {"filter": WEEK, "paging": {"sort": sort, "limit": 40}}) for c in p["consents"]]
        assert sorted(_ids(listed)) == sorted(by_creation)


def test_a_reply_moves_a_consent_into_an_updated_at_window() -> None:
    with _sim(100, date_filter_field="updated_at") as sim:
        pending = sim.add_consent(created_at="2026-01-05T00:00:00Z", status="P", reply_status="S")
        now = sim.now().isoformat().replace("+00:00", "Z")
        window = {"date_from": now[:19] + "Z"}
        assert pending["id"] not in _ids(list_page(sim, filter=window)["consents"])
        sim.advance(5)
        sim.reply(pending["id"], "P")
        assert pending["id"] in _ids(list_page(sim, filter=window)["consents"])
    assert PLATFORM_VARIANTS["filter_on_updated_at"] == {"date_filter_field": "updated_at"}


# ------------------------------------------------------------------ zones misread
#: Probes around midnight of 11 January in UTC+7 (17:00 UTC the day before).
ZONE_PROBES = ("2026-02-10T16:59:59Z", "2026-02-10T17:00:00Z", "2026-02-11T00:00:00Z", "2026-02-11T06:59:59Z")


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"date_from": "2026-02-11T00:00:00Z"}, ZONE_PROBES[1:]),  # 00:00 read as UTC+7 is 17:00Z the day before
        ({"date_from": "2026-02-11T07:00:00+07:00"}, ZONE_PROBES[2:]),  # its wall clock 07:00 as UTC+7: 00:00Z
        ({"date_from": "2026-02-11T00:00:00+07:00"}, ZONE_PROBES[1:]),  # wall clock 00:00 as UTC+7 again
        ({"date_to": "2026-02-11T00:00:00Z"}, ZONE_PROBES[:1]),
        ({"date_to": "2026-02-11T14:00:00+07:00"}, ZONE_PROBES),
    ],
)
def test_filter_zone_offset_reads_the_wall_clock_in_the_platform_zone(
    flt: dict[str, str], expected: tuple[str, ...]
) -> None:
    with _sim(0, filter_zone_offset_h=7) as sim:
        for created_at in ZONE_PROBES:
            sim.add_consent(created_at=created_at)
        got = [c["created_at"] for c in list_page(sim, filter=flt, paging={"sort": "created_at"})["consents"]]
        assert got == list(expected)
        sim.filter_zone_offset_h = 0  # the offset sent is honoured again
        got = [c["created_at"] for c in list_page(sim, filter=flt, paging={"sort": "created_at"})["consents"]]
        bound = flt.get("date_from") or flt["date_to"]
        instant = datetime.fromisoformat(bound.replace("Z", "+00:00"))
        inside = [p for p in ZONE_PROBES if (_created({"created_at": p}) >= instant) == ("date_from" in flt)]
        assert got == inside


def test_shown_zone_offset_writes_every_time_as_local_wall_clock_labelled_z() -> None:
    with _sim(50, shown_zone_offset_h=7) as sim:
        probe = sim.add_consent(
            created_at="2026-02-01T20:30:00Z", status="P", reply_status="P", updated_at="2026-02-01T21:00:00Z"
        )
        assert (probe["created_at"], probe["updated_at"]) == ("2026-02-02T03:30:00Z", "2026-02-02T04:00:00Z")
        exact = next(c for c in sim.consents(exact=True) if c["id"] == probe["id"])
        assert exact["created_at"] == "2026-02-01T20:30:00Z", "exact=True gives the true UTC times"
        window = {"date_from": "2026-02-01T20:00:00Z", "date_to": "2026-02-01T21:00:00Z"}
        listed = list_page(sim, filter=window)["consents"]
        assert _ids(listed) == [probe["id"]] and listed[0]["expires_at"] == "2026-03-04T04:00:00Z"
        assert listed[0]["delivery_time"].startswith("2026-02-02T")
        order = _ids([c for p in pages(sim, {"paging": {"sort": "created_at"}}) for c in p["consents"]])
        assert order == _ids(sim.consents())[::-1], "sorting follows the true time"
        requested = call(
            sim,
            "Zalo/RequestConsent",
            {"oa_id": sim.oa_ids[0], "phone": "84912345678", "call_type": "audio", "reason_code": "update_order"},
        ).json()
        now = sim.now()
        assert abs((_created(requested) - now).total_seconds() - 7 * 3600) < 2
        check = call(sim, "Zalo/CheckConsent", {"oa_id": sim.oa_ids[0], "phone": "84912345678"}).json()
        assert check["error"] == -2 and check["expired_time"] == requested["expires_at"]
        sim.shown_zone_offset_h = 0
        assert sim.consent(probe["id"])["created_at"] == "2026-02-01T20:30:00Z"  # type: ignore[index]


def test_zone_variants() -> None:
    assert PLATFORM_VARIANTS["filter_local_zone"] == {"filter_zone_offset_h": 7.0}
    assert PLATFORM_VARIANTS["shown_local_as_z"] == {"shown_zone_offset_h": 7.0}


# ------------------------------------------------------------------ ids as JSON numbers
ID_FIELDS = ("id", "shop_id", "user_id", "oa_id")


def test_numeric_ids_are_json_numbers_in_every_answer_and_requests_take_either() -> None:
    with _sim(150, numeric_ids=True) as sim:
        listed = [c for p in pages(sim, {"paging": {"limit": 40}}) for c in p["consents"]]
        assert len(listed) == 150
        assert all(type(c[field]) is int for c in listed for field in ID_FIELDS)
        assert '"id":1' in call(sim, "Zalo/ListRequestConsent", {"paging": {"limit": 1}}).text
        one = listed[0]
        for oa_id in (one["oa_id"], str(one["oa_id"])):
            for user_id in (one["user_id"], str(one["user_id"])):
                flt = {"oa_id": oa_id, "user_id": user_id}
                assert one["id"] in [c["id"] for c in list_page(sim, filter=flt)["consents"]]
        body = {"oa_id": one["oa_id"], "phone": "84912345678", "call_type": "audio", "reason_code": "update_order"}
        made = call(sim, "Zalo/RequestConsent", body).json()
        assert all(type(made[field]) is int for field in ID_FIELDS)
        assert (
            call(sim, "Zalo/CheckConsent", {"oa_id": str(one["oa_id"]), "phone": "84912345678"}).json()["error"] == -2
        )
        assert type(call(sim, "Misc/CurrentAccount", {}).json()["id"]) is int
        assert type(sim.consents()[0]["id"]) is int, "consents() is what the API serves"
        assert type(sim.consents(exact=True)[0]["id"]) is str, "exact=True: the stored values"
        assert sim.reply(made["id"], "P")["reply_status"] == "P"
        sim.numeric_ids = False
        assert all(type(c[field]) is str for c in list_page(sim)["consents"] for field in ID_FIELDS)
    assert PLATFORM_VARIANTS["numeric_ids"] == {"numeric_ids": True}


# ------------------------------------------------------------------ a pending request conflicts
def _ask(sim: EtelecomSimulator, oa_id: str, phone: str, call_type: str = "audio") -> requests.Response:
    body = {"oa_id": oa_id, "phone": phone, "call_type": call_type, "reason_code": "update_order"}
    return call(sim, "Zalo/RequestConsent", body)


def test_pending_conflict_refuses_a_second_request_while_one_waits() -> None:
    with _sim(20, pending_conflict=True, listing_lag_s=60) as sim:
        oa, other_oa = sim.oa_ids[0], sim.oa_ids[1]
        first = _ask(sim, oa, "84912345678")
        assert first.status_code == 200
        before = len(sim.consents())
        for call_type in ("audio", "video"):
            refused = _ask(sim, oa, "0912345678", call_type)  # the same phone, written locally
            assert refused.status_code == 409 and refused.json()["code"] == "already_exists" and refused.json()["msg"]
        assert len(sim.consents()) == before, "a refused request creates nothing"
        assert _ask(sim, other_oa, "84912345678").status_code == 200, "another OA may ask"
        assert _ask(sim, oa, "84987654321").status_code == 200, "another phone may be asked"
        sim.reply(first.json()["id"], "N")
        again = _ask(sim, oa, "84912345678")
        assert again.status_code == 200, "once answered, the phone may be asked again"
        sim.advance(86400 + 1)  # unanswered: NS
        assert _ask(sim, oa, "84912345678").status_code == 200


def test_a_failed_send_does_not_conflict_and_the_switch_is_off_by_default() -> None:
    with _sim(20, pending_conflict=True) as sim:
        sim.fail_send_to("84911111111")
        assert _ask(sim, sim.oa_ids[0], "84911111111").json()["status"] == "N"
        assert _ask(sim, sim.oa_ids[0], "84911111111").status_code == 200
    with _sim(20) as sim:
        assert [_ask(sim, sim.oa_ids[0], "84922222222").status_code for _ in range(2)] == [200, 200]
    assert PLATFORM_VARIANTS["pending_conflict"] == {"pending_conflict": True}


# ------------------------------------------------------------------ clocks
def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_a_platform_clock_behind_stamps_new_consents_in_a_window_already_closed() -> None:
    with _sim(20, clock_offset_s=-3600) as sim:
        now = sim.now()
        closed = {"date_from": _iso(now - timedelta(hours=2)), "date_to": _iso(now - timedelta(minutes=30))}
        assert list_page(sim, filter=closed)["consents"] == [], "nothing there when the client exported it"
        made = [
            _ask(sim, sim.oa_ids[0], "84912345678").json(),
            sim.insert_consents(1)[0],
            sim.add_consent(phone="84987654321"),
        ]
        for consent in made:
            assert abs((_created(consent) - (now - timedelta(hours=1))).total_seconds()) < 2, consent["created_at"]
        assert sorted(_ids(list_page(sim, filter=closed)["consents"])) == sorted(_ids(made))
        given = sim.add_consent(created_at="2026-02-01T10:00:00Z")
        assert given["created_at"] == "2026-02-01T10:00:00Z", "a time given is kept"
        pending = made[0]
        assert (_created({"created_at": pending["expires_at"]}) - _created(pending)).total_seconds() == 86400
        # The reply window still lasts a day of real time: the platform judges it on its own clock.
        sim.advance(86400 - 60)
        assert sim.consent(pending["id"])["reply_status"] == "S"  # type: ignore[index]
        sim.advance(120)
        assert sim.consent(pending["id"])["reply_status"] == "NS"  # type: ignore[index]
        replied = sim.insert_consents(1)[0]
        sim.advance(10)
        answered = sim.reply(replied["id"], "P")
        assert (
            abs((_created({"created_at": answered["updated_at"]}) - (sim.now() - timedelta(hours=1))).total_seconds())
            < 2
        )


def test_the_request_consent_answer_shows_another_clock_than_the_listing() -> None:
    with _sim(20, answer_clock_offset_s=900) as sim:
        answer = _ask(sim, sim.oa_ids[0], "84912345678").json()
        listed = next(c for c in list_page(sim)["consents"] if c["id"] == answer["id"])
        for field in ("created_at", "updated_at"):
            assert (
                _created({"created_at": answer[field]}) - _created({"created_at": listed[field]})
            ).total_seconds() == 900
        assert answer["expires_at"] == listed["expires_at"]
        assert sim.consent(answer["id"]) == listed
    assert PLATFORM_VARIANTS["platform_clock_behind"] == {"clock_offset_s": -3600.0}
    assert PLATFORM_VARIANTS["answer_clock_ahead"] == {"answer_clock_offset_s": 900.0}


# ------------------------------------------------------------------ a crowded second past one page
@pytest.mark.parametrize(("consents", "low", "high"), [(800, 201, 280), (1000, 250, 350)])
def test_second_past_a_page_puts_over_two_pages_in_one_exact_second(consents: int, low: int, high: int) -> None:
    variant: dict[str, Any] = dict(PLATFORM_VARIANTS["second_past_a_page"])
    with EtelecomSimulator(consents=consents, seed=5, api_key=KEY, start=START, end=END, **variant) as sim:
        second, n = Counter(c["created_at"] for c in sim.consents()).most_common(1)[0]
        assert low <= n <= high and "." not in second, (second, n)
        start = _created({"created_at": second})
        window = {"date_from": second, "date_to": _iso(start + timedelta(seconds=1))}
        listed = [c for p in pages(sim, {"filter": window}) for c in p["consents"]]
        assert len(listed) == len(set(_ids(listed))) == n, "keyset paging serves each once"
        sim.cursor_kind = "value_lt"
        first = list(pages(sim, {"filter": window}))
        assert [len(p["consents"]) for p in first] == [100, 0], "a value cursor skips the rest of the second"
