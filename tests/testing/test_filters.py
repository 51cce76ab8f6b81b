"""Every ``ListRequestConsent`` filter, compared with the same filter applied to ``sim.consents()``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_etelecom.testing import (
    CALL_TYPES,
    REASON_CODES,
    REPLY_STATUSES,
    STATUSES,
    EtelecomSimulator,
)

from .conftest import END, START, call, list_all, list_page, parse

Consent = dict[str, Any]


def _check(sim: EtelecomSimulator, flt: dict[str, Any], keep: Callable[[Consent], bool]) -> list[Consent]:
    expected = [c for c in sim.consents() if keep(c)]
    assert expected, f"filter {flt} should match something in the seeded data"
    got = list_all(sim, flt)
    assert got == expected
    return got


@pytest.mark.parametrize("value", CALL_TYPES)
def test_filter_call_type(sim: EtelecomSimulator, value: str) -> None:
    _check(sim, {"call_type": value}, lambda c: c["call_type"] == value)


@pytest.mark.parametrize("value", REASON_CODES)
def test_filter_reason_code(sim: EtelecomSimulator, value: str) -> None:
    _check(sim, {"reason_code": value}, lambda c: c["reason_code"] == value)


@pytest.mark.parametrize("value", [s for s in REPLY_STATUSES if s != "S"])
def test_filter_reply_status(sim: EtelecomSimulator, value: str) -> None:
    _check(sim, {"reply_status": value}, lambda c: c["reply_status"] == value)


def test_filter_reply_status_pending(sim: EtelecomSimulator) -> None:
    sim.add_consent(created_at=sim.now(), status="P", reply_status="S")
    _check(sim, {"reply_status": "S"}, lambda c: c["reply_status"] == "S")


@pytest.mark.parametrize("value", STATUSES)
def test_filter_status(sim: EtelecomSimulator, value: str) -> None:
    _check(sim, {"status": value}, lambda c: c["status"] == value)


@pytest.mark.parametrize("value", [True, False, "true", "false"])
def test_filter_is_charged(sim: EtelecomSimulator, value: object) -> None:
    wanted = value in (True, "true")
    _check(sim, {"is_charged": value}, lambda c: c["is_charged"] is wanted)


def test_filter_oa_id(sim: EtelecomSimulator) -> None:
    for oa in sim.oa_ids:
        _check(sim, {"oa_id": oa}, lambda c, oa=oa: c["oa_id"] == oa)


def test_filter_oa_id_as_json_number(sim: EtelecomSimulator) -> None:
    oa = sim.oa_ids[0]
    _check(sim, {"oa_id": int(oa)}, lambda c: c["oa_id"] == oa)


def test_filter_phone_and_local_form(sim: EtelecomSimulator) -> None:
    phone = sim.consents()[0]["phone"]
    _check(sim, {"phone": phone}, lambda c: c["phone"] == phone)
    _check(sim, {"phone": "0" + phone[2:]}, lambda c: c["phone"] == phone)


def test_filter_user_id(sim: EtelecomSimulator) -> None:
    user = sim.consents()[0]["user_id"]
    _check(sim, {"user_id": user}, lambda c: c["user_id"] == user)


def test_filters_combine(sim: EtelecomSimulator) -> None:
    oa = sim.oa_ids[1]
    _check(
        sim,
        {"oa_id": oa, "status": "P", "call_type": "audio"},
        lambda c: c["oa_id"] == oa and c["status"] == "P" and c["call_type"] == "audio",
    )


def test_zero_enum_values_and_empty_strings_mean_not_filtered(sim: EtelecomSimulator) -> None:
    everything = sim.consents()
    flt = {"call_type": "unknown", "reason_code": "", "reply_status": "Z", "status": "Z", "phone": ""}
    assert list_all(sim, flt) == everything


def test_filter_date_range_half_open_by_default(sim: EtelecomSimulator) -> None:
    items = sim.consents()
    lo, hi = items[200]["created_at"], items[100]["created_at"]
    _check(sim, {"date_from": lo, "date_to": hi}, lambda c: lo <= c["created_at"] < hi)


@pytest.mark.parametrize("sort", ["-created_at", "created_at", "updated_at", "-updated_at"])
def test_date_filters_work_with_every_sort(sim: EtelecomSimulator, sort: str) -> None:
    items = sim.consents()
    lo, hi = items[250]["created_at"], items[50]["created_at"]
    got = list_all(sim, {"date_from": lo, "date_to": hi}, sort=sort, limit=33)
    assert sorted(c["id"] for c in got) == sorted(c["id"] for c in items if lo <= c["created_at"] < hi)


def _edge_rows(sim: EtelecomSimulator) -> tuple[str, str]:
    edge_from = START + timedelta(days=10)
    edge_to = START + timedelta(days=20)
    sim.add_consent(created_at=edge_from)
    sim.add_consent(created_at=edge_from - timedelta(seconds=1))
    sim.add_consent(created_at=edge_to)
    sim.add_consent(created_at=edge_to - timedelta(seconds=1))
    return edge_from.strftime("%Y-%m-%dT%H:%M:%SZ"), edge_to.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_date_edges_default_from_inclusive_to_exclusive(sim: EtelecomSimulator) -> None:
    lo, hi = _edge_rows(sim)
    got = _check(sim, {"date_from": lo, "date_to": hi}, lambda c: lo <= c["created_at"] < hi)
    assert any(c["created_at"] == lo for c in got)
    assert not any(c["created_at"] == hi for c in got)


def test_date_edges_with_date_to_inclusive_switch() -> None:
    with EtelecomSimulator(
        consents=200, seed=5, start=START, end=END, date_to_inclusive=True, api_key="test-key-0123456789"
    ) as sim:
        lo, hi = _edge_rows(sim)
        got = _check(sim, {"date_from": lo, "date_to": hi}, lambda c: lo <= c["created_at"] <= hi)
        assert any(c["created_at"] == hi for c in got)
        sim.date_to_inclusive = False
        assert not any(c["created_at"] == hi for c in list_all(sim, {"date_from": lo, "date_to": hi}))


def test_date_filters_accept_offsets_and_fractions(sim: EtelecomSimulator) -> None:
    lo, hi = _edge_rows(sim)
    lo_dt, hi_dt = parse(lo), parse(hi)
    flt = {
        "date_from": (lo_dt + timedelta(hours=7)).strftime("%Y-%m-%dT%H:%M:%S+07:00"),
        "date_to": hi.replace("Z", ".000Z"),
    }
    assert list_all(sim, flt) == [c for c in sim.consents() if lo <= c["created_at"] < hi]
    # A fractional date_from after the edge second excludes the row created on that second.
    late = {"date_from": lo.replace("Z", ".5Z"), "date_to": hi}
    assert all(parse(c["created_at"]) > lo_dt for c in list_all(sim, late))
    assert hi_dt > lo_dt


@pytest.mark.parametrize(
    ("flt", "field"),
    [
        ({"call_type": "fax"}, "call_type"),
        ({"reason_code": "spam"}, "reason_code"),
        ({"reply_status": "X"}, "reply_status"),
        ({"status": "p"}, "status"),
        ({"is_charged": "yes"}, "is_charged"),
        ({"is_charged": 1}, "is_charged"),
        ({"oa_id": "abc"}, "oa_id"),
        ({"oa_id": "99999999999999999999"}, "oa_id"),
        ({"user_id": "12x"}, "user_id"),
        ({"date_from": "2026-01-01"}, "date_from"),
        ({"date_to": "2026-01-01T00:00:00"}, "date_to"),
        ({"date_to": "yesterday"}, "date_to"),
        ({"phone": "not-a-phone"}, "phone"),
    ],
)
def test_bad_filter_values_are_400_invalid_argument_naming_the_field(
    sim: EtelecomSimulator, flt: dict[str, Any], field: str
) -> None:
    response = call(sim, "Zalo/ListRequestConsent", {"filter": flt})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_argument"
    assert body["meta"]["field"] == field
    assert field in body["msg"]


def test_filter_that_matches_nothing_gives_an_empty_page(sim: EtelecomSimulator) -> None:
    page = list_page(sim, filter={"phone": "84000000000"})
    assert page["consents"] == [] and page["paging"]["next"] == ""
