"""The platform switches, each proved over loopback HTTP: fractional times, the precision of date filters
and of the times in answers, accepted sorts, listing lag, crowded data, and the variants that name them."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from airflow_provider_etelecom.testing import (
    PLATFORM_VARIANT_DESCRIPTIONS,
    PLATFORM_VARIANTS,
    SETTINGS,
    SORTS,
    TIME_PRECISIONS,
    EtelecomSimulator,
)

from .conftest import END, KEY, START, call, list_all, list_page

TIME_FIELDS = ("created_at", "updated_at", "expires_at", "delivery_time")
# Probes live on 1 February, after the seeded January data, so nothing else sits near their edges.
PROBE_DAY = "2026-02-01T"


def _sim(**switches: Any) -> EtelecomSimulator:
    return EtelecomSimulator(consents=120, seed=3, api_key=KEY, start=START, end=END, **switches)


@pytest.fixture
def fractional() -> Iterator[EtelecomSimulator]:
    with _sim(fractional_times=True) as sim:
        yield sim


def _decode(cursor: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return data


def _ids(consents: list[dict[str, Any]]) -> list[str]:
    return [c["id"] for c in consents]


# ------------------------------------------------------------------ fractional times
def test_default_times_are_whole_seconds_on_the_wire(sim: EtelecomSimulator) -> None:
    consents = sim.consents()
    assert all("." not in c[field] and c[field].endswith("Z") for c in consents for field in TIME_FIELDS)
    cursor = list_page(sim, paging={"limit": 3})["paging"]["next"]
    assert set(_decode(cursor)) == {"s", "k", "i"}, "a whole-second cursor keeps its old form"


def test_fractional_times_are_seeded_exact_and_reproducible(fractional: EtelecomSimulator) -> None:
    consents = fractional.consents()
    with_fraction = [c for c in consents if "." in c["created_at"]]
    assert len(with_fraction) > 0.95 * len(consents)
    assert any("." in c["updated_at"] and c["updated_at"] != c["created_at"] for c in consents)
    for c in with_fraction:
        digits = c["created_at"].split(".")[1].rstrip("Z")
        assert 1 <= len(digits) <= 6 and not digits.endswith("0"), c["created_at"]
    with _sim(fractional_times=True) as again:
        assert again.consents() == consents, "the fractions come from the seed"
    with _sim() as whole:
        # The same draws: the fraction is added to the second the default data has.
        assert [c["created_at"][:19] for c in whole.consents()] == [c["created_at"][:19] for c in consents]
    assert fractional.consents(exact=True) == consents, "exact answers are the stored values"


def test_fractional_listing_orders_by_the_exact_time(fractional: EtelecomSimulator) -> None:
    listed = list_all(fractional, sort="created_at", limit=17)
    moments = [datetime.fromisoformat(c["created_at"].replace("Z", "+00:00")) for c in listed]
    assert moments == sorted(moments)
    assert _ids(listed) == _ids(fractional.consents())[::-1]
    cursor = list_page(fractional, paging={"limit": 1})["paging"]["next"]
    assert "f" in _decode(cursor), "a fractional cursor carries its microseconds"


def test_fractional_inserts_requests_and_adds(fractional: EtelecomSimulator) -> None:
    inserted = fractional.insert_consents(5)
    assert len({c["created_at"] for c in inserted}) == 5, "each inserted consent gets its own fraction"
    now = fractional.now()
    for c in inserted:
        created = datetime.fromisoformat(c["created_at"].replace("Z", "+00:00"))
        assert now - timedelta(seconds=1) < created <= now
    requested = call(
        fractional,
        "Zalo/RequestConsent",
        {"oa_id": fractional.oa_ids[0], "phone": "84912345678", "call_type": "audio", "reason_code": "update_order"},
    ).json()
    assert "." in requested["created_at"] and requested["expires_at"] != requested["created_at"]
    given = fractional.add_consent(created_at=PROBE_DAY + "10:00:00.123456Z")
    assert given["created_at"] == PROBE_DAY + "10:00:00.123456Z", "a given time is kept exactly"
    whole = fractional.add_consent(created_at=datetime(2026, 2, 1, 11, tzinfo=timezone.utc))
    assert whole["created_at"] == PROBE_DAY + "11:00:00Z"
    same = fractional.insert_consents(3, created_at=datetime(2026, 2, 1, 12, 0, 0, 250000, tzinfo=timezone.utc))
    assert {c["created_at"] for c in same} == {PROBE_DAY + "12:00:00.25Z"}


# --------------------------------------------------------------- date filter precision
#: (name, exact created_at) of the probe consents.
PROBES = {"p400": "10:00:00.4", "p4005": "10:00:00.4005", "whole": "10:00:01"}

#: (date_filter_precision, date_to_inclusive, filter field, filter time, probes the listing holds).
#: The other bound is far away (09:00 or 11:00), so each row tests one bound.
PRECISION_TABLE = [
    # exact: the fraction counts.
    ("exact", False, "date_to", "10:00:00.3", set()),
    ("exact", False, "date_to", "10:00:00.4002", {"p400"}),
    ("exact", False, "date_to", "10:00:00.5", {"p400", "p4005"}),
    ("exact", False, "date_from", "10:00:00.4002", {"p4005", "whole"}),
    ("exact", False, "date_to", "10:00:01", {"p400", "p4005"}),
    ("exact", True, "date_to", "10:00:01", {"p400", "p4005", "whole"}),
    # s_truncate: 10:00:00.x reads as 10:00:00.
    ("s_truncate", False, "date_to", "10:00:00.3", set()),
    ("s_truncate", False, "date_to", "10:00:00.5", set()),
    ("s_truncate", False, "date_to", "10:00:00.999999", set()),
    ("s_truncate", False, "date_to", "10:00:01.7", {"p400", "p4005"}),
    ("s_truncate", True, "date_to", "10:00:01.7", {"p400", "p4005", "whole"}),
    ("s_truncate", False, "date_from", "10:00:00.5", {"p400", "p4005", "whole"}),
    ("s_truncate", False, "date_from", "10:00:01.9", {"whole"}),
    # s_round: half-up to whole seconds.
    ("s_round", False, "date_to", "10:00:00.3", set()),
    ("s_round", False, "date_to", "10:00:00.5", {"p400", "p4005"}),
    ("s_round", True, "date_to", "10:00:00.5", {"p400", "p4005", "whole"}),
    ("s_round", False, "date_from", "10:00:00.4999", {"p400", "p4005", "whole"}),
    ("s_round", False, "date_from", "10:00:00.5", {"whole"}),
    # ms: cut to milliseconds.
    ("exact", False, "date_to", "10:00:00.4009", {"p400", "p4005"}),
    ("ms", False, "date_to", "10:00:00.4009", set()),
    ("ms", False, "date_to", "10:00:00.4011", {"p400", "p4005"}),
    ("ms", False, "date_from", "10:00:00.4009", {"p400", "p4005", "whole"}),
    ("ms", False, "date_from", "10:00:00.401", {"whole"}),
]


@pytest.fixture(scope="module")
def probed() -> Iterator[tuple[EtelecomSimulator, dict[str, str]]]:
    with _sim(fractional_times=True) as sim:
        ids = {name: sim.add_consent(created_at=f"{PROBE_DAY}{at}Z")["id"] for name, at in PROBES.items()}
        yield sim, ids


@pytest.mark.parametrize(("precision", "inclusive", "field", "at", "expected"), PRECISION_TABLE)
@pytest.mark.parametrize("sort", ["created_at", "-updated_at"])
def test_date_filter_precision_reads_the_bound_then_compares_exactly(
    probed: tuple[EtelecomSimulator, dict[str, str]],
    precision: str,
    inclusive: bool,
    field: str,
    at: str,
    expected: set[str],
    sort: str,
) -> None:
    sim, ids = probed
    sim.configure(date_filter_precision=precision, date_to_inclusive=inclusive)
    try:
        other = ("date_from", "09:00:00") if field == "date_to" else ("date_to", "11:00:00")
        flt = {field: f"{PROBE_DAY}{at}Z", other[0]: f"{PROBE_DAY}{other[1]}Z"}
        got = set(_ids(list_all(sim, flt, sort=sort, limit=2)))
        assert got == {ids[name] for name in expected}
    finally:
        sim.configure(date_filter_precision="exact", date_to_inclusive=False)


def test_bad_precision_names_the_switch() -> None:
    with pytest.raises(ValueError, match="date_filter_precision"):
        _sim(date_filter_precision="seconds")
    with pytest.raises(ValueError, match="created_at_precision"):
        _sim(created_at_precision="s")


# ------------------------------------------------------------ created_at precision in answers
SHOWN = {
    "exact": (PROBE_DAY + "10:00:00.6789Z", PROBE_DAY + "10:00:05.5Z"),
    "ms": (PROBE_DAY + "10:00:00.678Z", PROBE_DAY + "10:00:05.5Z"),
    "s_truncate": (PROBE_DAY + "10:00:00Z", PROBE_DAY + "10:00:05Z"),
    "s_round": (PROBE_DAY + "10:00:01Z", PROBE_DAY + "10:00:06Z"),
}


@pytest.mark.parametrize("precision", TIME_PRECISIONS)
def test_created_at_precision_changes_only_the_written_strings(precision: str) -> None:
    with _sim(fractional_times=True) as sim:
        probe = sim.add_consent(
            created_at=SHOWN["exact"][0], updated_at=SHOWN["exact"][1], status="P", reply_status="P"
        )
        exact_listing = list_all(sim, sort="-updated_at", limit=40)
        sim.created_at_precision = precision
        shown = list_all(sim, sort="-updated_at", limit=40)
        assert _ids(shown) == _ids(exact_listing), "order and membership follow the exact values"
        for before, after in zip(exact_listing, shown, strict=True):
            assert {k: v for k, v in before.items() if k not in TIME_FIELDS} == {
                k: v for k, v in after.items() if k not in TIME_FIELDS
            }
        mine = next(c for c in shown if c["id"] == probe["id"])
        assert (mine["created_at"], mine["updated_at"]) == SHOWN[precision]
        # Filters still compare the exact 10:00:00.6789, whatever the answer shows.
        window = {"date_from": PROBE_DAY + "10:00:00.6Z", "date_to": PROBE_DAY + "10:00:00.7Z"}
        assert _ids(list_all(sim, window)) == [probe["id"]]
        exact_probe = next(c for c in sim.consents(exact=True) if c["id"] == probe["id"])
        assert exact_probe["created_at"] == SHOWN["exact"][0]


def test_created_at_precision_applies_to_check_consent() -> None:
    with _sim(fractional_times=True, created_at_precision="s_truncate") as sim:
        recent = sim.now().replace(microsecond=500_000) - timedelta(seconds=1)
        consent = sim.add_consent(created_at=recent, phone="84912345678", status="P", reply_status="S")
        assert "." not in consent["expires_at"]
        answer = call(sim, "Zalo/CheckConsent", {"oa_id": consent["oa_id"], "phone": "84912345678"}).json()
        assert answer["error"] == -2 and "." not in answer["expired_time"]


# --------------------------------------------------------------------- accepted sorts
def test_a_refused_sort_is_400_invalid_argument_naming_sort() -> None:
    with _sim(accepted_sorts=("created_at", "-created_at")) as sim:
        for sort in ("updated_at", "-updated_at"):
            response = call(sim, "Zalo/ListRequestConsent", {"paging": {"sort": sort}})
            assert response.status_code == 400
            body = response.json()
            assert body["code"] == "invalid_argument" and body["meta"]["field"] == "sort"
            assert "sort" in body["msg"] and sort in body["msg"]
        assert len(list_page(sim, paging={"sort": "created_at"})["consents"]) == 100
        assert len(list_page(sim)["consents"]) == 100, "the default order is always served"
        sim.accepted_sorts = SORTS
        assert list_page(sim, paging={"sort": "updated_at"})["consents"]
        assert sim.accepted_sorts == SORTS
        with pytest.raises(ValueError, match="accepted_sorts"):
            sim.accepted_sorts = ("id",)


def test_an_ignored_sort_is_echoed_but_served_in_the_default_order() -> None:
    with _sim(ignored_sorts=("updated_at", "-updated_at")) as sim:
        some = sim.consents()[::7]
        for consent in some:  # answered newest-created last: an updated_at order differs from the default one
            sim.reply(consent["id"], "P")
            sim.advance(1)
        default = list_all(sim)
        for sort in ("updated_at", "-updated_at"):
            assert _ids(list_all(sim, sort=sort, limit=17)) == _ids(default), sort
            assert list_page(sim, paging={"sort": sort})["paging"]["sort"] == sort, "the sort asked for is echoed"
        assert _ids(list_all(sim, sort="created_at")) == _ids(default[::-1]), "other sorts are still applied"
        sim.ignored_sorts = ()
        by_update = list_all(sim, sort="-updated_at")
        assert _ids(by_update) != _ids(default) and _ids(by_update[: len(some)]) == _ids(some[::-1])
        with pytest.raises(ValueError, match="ignored_sorts"):
            sim.ignored_sorts = ("id",)


@pytest.mark.parametrize("moves", [True, False])
def test_reply_moves_updated_at_unless_switched_off(moves: bool) -> None:
    with _sim(reply_moves_updated_at=moves) as sim:
        agreed, refused, unanswered = (sim.add_consent(reply_status="S", status="P") for _ in range(3))
        sim.advance(10)
        shown = {"P": sim.reply(agreed["id"], "P"), "N": sim.reply(refused["id"], "N")}
        sim.advance(86400)  # the third one's reply window closes: NS
        shown["NS"] = next(c for c in list_all(sim) if c["id"] == unanswered["id"])
        for reply, before in zip(("P", "N", "NS"), (agreed, refused, unanswered), strict=True):
            assert shown[reply]["reply_status"] == reply
            assert (shown[reply]["updated_at"] != before["updated_at"]) is moves, reply
        assert sim.settings()["reply_moves_updated_at"] is moves


# ------------------------------------------------------------------------ listing lag
def test_listing_lag_hides_inserted_and_added_consents_until_the_clock_passes_it() -> None:
    with EtelecomSimulator(consents=30, seed=2, api_key=KEY, listing_lag_s=30) as sim:
        assert len(list_all(sim)) == 30, "seeded consents are listable at once"
        inserted = sim.insert_consents(2)
        added = sim.add_consent(created_at=datetime(2020, 1, 1, tzinfo=timezone.utc), phone="84912345678")
        fresh = {c["id"] for c in inserted} | {added["id"]}
        assert not fresh & set(_ids(list_all(sim)))
        assert all(sim.consent(i) is not None for i in fresh), "direct accessors ignore the lag"
        check = call(sim, "Zalo/CheckConsent", {"oa_id": added["oa_id"], "phone": "84912345678"}).json()
        assert check["error"] != -1, "CheckConsent sees a lagging consent at once"
        sim.advance(29)
        assert not fresh & set(_ids(list_all(sim)))
        sim.advance(2)
        assert fresh <= set(_ids(list_all(sim)))


# ------------------------------------------------------------------------ crowded data
def test_burst_puts_its_share_of_a_month_on_one_day() -> None:
    day = datetime(2026, 1, 10, tzinfo=timezone.utc)
    with EtelecomSimulator(
        consents=30_000, seed=4, api_key=KEY, start=START, end=END, burst_share=0.8, burst_start=day, burst_span_s=86400
    ) as sim:
        on_day = [c for c in sim.consents() if c["created_at"].startswith("2026-01-10T")]
        # 24,000 in the burst plus that day's share of the 6,000 spread over 30 days (about 200).
        assert 24_000 <= len(on_day) <= 24_000 + 400
        assert sim.burst_start == day and sim.burst_share == 0.8


def test_burst_of_an_hour_is_listed_whole_over_http() -> None:
    hour = datetime(2026, 1, 20, 9, tzinfo=timezone.utc)
    with EtelecomSimulator(
        consents=2_000, seed=6, api_key=KEY, start=START, end=END, burst_share=0.95, burst_start=hour
    ) as sim:
        window = {"date_from": "2026-01-20T09:00:00Z", "date_to": "2026-01-20T10:00:00Z"}
        listed = list_all(sim, window)
        assert 1_900 <= len(listed) <= 1_900 + 20
        assert len(set(_ids(listed))) == len(listed)


def test_default_burst_window_is_centred_and_cut_to_the_seeded_range() -> None:
    with EtelecomSimulator(
        consents=50,
        seed=1,
        api_key=KEY,
        start=START,
        end=START + timedelta(hours=1),
        burst_share=0.5,
        burst_span_s=7200,
    ) as sim:
        assert sim.burst_start == START and sim.burst_span_s == 3600
    with pytest.raises(ValueError, match="burst window"):
        EtelecomSimulator(consents=5, api_key=KEY, start=START, end=END, burst_share=0.5, burst_start=END)
    with pytest.raises(ValueError, match="burst_share"):
        EtelecomSimulator(consents=5, api_key=KEY, start=START, end=END, burst_share=1.5)


@pytest.fixture(scope="module")
def crowded() -> Iterator[EtelecomSimulator]:
    second = datetime(2026, 1, 15, 10, tzinfo=timezone.utc)
    with EtelecomSimulator(
        consents=700,
        seed=9,
        api_key=KEY,
        start=START,
        end=END,
        fractional_times=True,
        burst_share=0.9,
        burst_start=second,
        burst_span_s=1.0,
    ) as sim:
        yield sim


CROWDED_WINDOW = {"date_from": "2026-01-15T10:00:00Z", "date_to": "2026-01-15T10:00:01Z"}


@pytest.mark.parametrize("shown", ["exact", "s_truncate"])
@pytest.mark.parametrize("sort", SORTS)
def test_keyset_paging_through_a_crowded_second_yields_each_consent_once(
    crowded: EtelecomSimulator, sort: str, shown: str
) -> None:
    in_second = [c["id"] for c in crowded.consents(exact=True) if c["created_at"].startswith("2026-01-15T10:00:00")]
    assert len(in_second) >= 630, "hundreds of consents share one whole second"
    crowded.created_at_precision = shown
    try:
        listed = list_all(crowded, CROWDED_WINDOW, sort=sort, limit=7)
        assert sorted(_ids(listed)) == sorted(in_second)
        if shown == "s_truncate":
            assert {c["created_at"] for c in listed} == {"2026-01-15T10:00:00Z"}, "all look alike"
    finally:
        crowded.created_at_precision = "exact"


def test_paging_backwards_through_a_crowded_second(crowded: EtelecomSimulator) -> None:
    forward: list[dict[str, Any]] = []
    cursor = ""
    with requests.Session() as session:
        while True:
            page = list_page(
                crowded, session, filter=CROWDED_WINDOW, paging={"sort": "created_at", "after": cursor, "limit": 50}
            )
            if not page["consents"]:
                break
            forward.extend(page["consents"])
            cursor = page["paging"]["next"]  # ends as the last consent's cursor
        backward = [forward[-1]]
        while True:
            page = list_page(
                crowded, session, filter=CROWDED_WINDOW, paging={"sort": "created_at", "before": cursor, "limit": 9}
            )
            if not page["consents"]:
                break
            backward[:0] = page["consents"]
            cursor = page["paging"]["prev"]
    assert _ids(backward) == _ids(forward)


# --------------------------------------------------------------- settings and variants
def test_settings_are_attributes_and_a_control_endpoint(sim: EtelecomSimulator) -> None:
    assert set(sim.settings()) == set(SETTINGS)
    body = {"date_filter_precision": "s_round", "accepted_sorts": ["created_at"], "listing_lag_s": 5}
    answer = requests.post(sim.root_url + "/_simulator/settings", json=body, timeout=5)
    assert answer.status_code == 200 and answer.json()["date_filter_precision"] == "s_round"
    assert sim.date_filter_precision == "s_round" and sim.accepted_sorts == ("created_at",)
    assert requests.get(sim.root_url + "/_simulator/settings", timeout=5).json() == sim.settings()
    bad = requests.post(
        sim.root_url + "/_simulator/settings",
        json={"created_at_precision": "s_round", "date_to_inclusive": 3, "x": 1},
        timeout=5,
    )
    assert bad.status_code == 400 and "x" in bad.json()["msg"]
    refused = requests.post(
        sim.root_url + "/_simulator/settings", json={"listing_lag_s": 0, "created_at_precision": "nope"}, timeout=5
    )
    assert refused.status_code == 400 and "created_at_precision" in refused.json()["msg"]
    assert sim.listing_lag_s == 5, "a refused change leaves every setting as it was"


REQUIRED_VARIANTS = {
    "defaults",
    "filter_exact_fractional",
    "filter_s_truncate",
    "filter_s_round",
    "filter_ms",
    "shown_s_truncate",
    "shown_s_round",
    "shown_ms",
    "date_to_inclusive",
    "filter_s_truncate+date_to_inclusive",
    "shown_s_round+filter_s_truncate",
    "updated_at_sort_ignored",
    "reply_keeps_updated_at",
    "listing_lag",
    "updated_at_sort_refused",
}


def test_platform_variants_cover_each_unknown_and_describe_it() -> None:
    assert set(PLATFORM_VARIANTS) >= REQUIRED_VARIANTS
    assert set(PLATFORM_VARIANT_DESCRIPTIONS) == set(PLATFORM_VARIANTS)
    assert all(PLATFORM_VARIANT_DESCRIPTIONS.values())
    assert PLATFORM_VARIANTS["defaults"] == {}
    for kwargs in PLATFORM_VARIANTS.values():
        if "date_filter_precision" in kwargs or "created_at_precision" in kwargs:
            assert kwargs["fractional_times"] is True


def _served_ids(sim: EtelecomSimulator, sort: str, limit: int) -> list[str]:
    """Every id a listing serves, until an empty page or a repeated cursor (a cursor on the sort value
    only, ``<=``, serves the last page's ties again and again)."""
    ids: list[str] = []
    cursors: set[str] = set()
    after = ""
    with requests.Session() as session:
        for _ in range(100):
            page = list_page(sim, session, paging={"after": after, "sort": sort, "limit": limit})
            ids.extend(str(c["id"]) for c in page["consents"] or [])
            after = page["paging"]["next"]
            if not page["consents"] or after in cursors:
                return ids
            cursors.add(after)
    raise AssertionError("listing never ended")


@pytest.mark.parametrize("variant", sorted(PLATFORM_VARIANTS))
def test_each_variant_starts_and_serves(variant: str) -> None:
    """Each variant starts and serves every consent it can list (those not dropped after the LIMIT).

    One page holds all 40 here, so a cursor kind that skips or repeats the ties at a page's edge loses
    none; a second listing, 15 a page, only has to end and stay within them.
    """
    with EtelecomSimulator(consents=40, seed=1, api_key=KEY, **PLATFORM_VARIANTS[variant]) as sim:  # type: ignore[arg-type]
        listable = {str(c["id"]) for c in sim.consents(visible_only=True)}
        assert set(_served_ids(sim, "created_at", 100)) == listable
        assert set(_served_ids(sim, "created_at", 15)) <= listable
        if not PLATFORM_VARIANTS[variant].get("drop_after_limit"):
            assert len(listable) == 40
        for name, value in PLATFORM_VARIANTS[variant].items():
            assert getattr(sim, name) == value
