"""One detector per platform behaviour nobody has confirmed; the first real run settles each one.

The detectors are the package's (:mod:`airflow_provider_etelecom.contract.detectors`, which
``python -m airflow_provider_etelecom.contract`` runs against a user's connection). Against the real
platform each test *reports* what it found (a line in the "eTelecom platform findings" summary and a
test property), because there is no wrong answer there: the provider must be correct under every
one. Against the simulator, each runs once per relevant
:data:`~airflow_provider_etelecom.testing.PLATFORM_VARIANTS` entry and asserts the detector finds the
variant the simulator was started with, and nothing odd on ``defaults``, so the detector itself is
proven before anyone trusts it on the platform. Detectors only use HTTP, never the simulator's
accessors; the tests drive the simulator's clock (``sim.advance``) where a detector waits::

    ETELECOM_CONTRACT_BASE_URL=https://api.etelecom.vn/v1/shop ETELECOM_CONTRACT_API_KEY=... \\
        pytest tests/contract -m contract -v
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_etelecom.contract.detectors import (
    DATE_TO_FINDINGS,
    FILTER_FINDINGS,
    SHOWN_FINDINGS,
    SORTS,
    Finding,
    detect_accepted_sorts,
    detect_answer_clock,
    detect_created_at_precision,
    detect_crowded_second,
    detect_cursor,
    detect_cursor_expiry,
    detect_date_filter_precision,
    detect_date_to,
    detect_empty_page,
    detect_filter_field,
    detect_filter_zone,
    detect_ids,
    detect_listing_lag,
    detect_order,
    detect_page_cap,
    detect_pending_conflict,
    detect_platform_clock,
    detect_short_pages,
    detect_shown_zone,
    probe_zones,
    send_fresh_consent,
)
from airflow_provider_etelecom.contract.probe import walk_newest
from airflow_provider_etelecom.testing import PLATFORM_VARIANTS

from .conftest import CURSOR_WAIT_ENV, OA_ID_ENV, PHONE_ENV, SIM_CONSENTS, Report, Target, detects

pytestmark = pytest.mark.contract

#: A phone none of the seeded consents uses (the seeded pool is drawn from 84300000000-84999999999).
SIM_PHONE = "84212345678"


def _expected(target: Target, switch: str, default: object) -> Any:
    assert target.variant is not None
    return PLATFORM_VARIANTS[target.variant].get(switch, default)


def _reported(target: Target, report: Report, finding: Finding) -> Finding:
    report(target, finding.behaviour, f"{finding.found} -> {finding.action}")
    if target.variant == "defaults":
        assert not finding.differs, f"{finding.behaviour} finds something odd on the defaults: {finding}"
        assert not finding.settings
    return finding


# ------------------------------------------------------------------------- precision, date_to, sorts, lag
@detects("defaults", "filter_exact_fractional", "filter_s_truncate", "filter_s_round", "filter_ms")
def test_unknown_date_filter_precision(unknown_target: Target, report: Report) -> None:
    found = _reported(unknown_target, report, detect_date_filter_precision(unknown_target))
    assert found.found == FILTER_FINDINGS[found.verdict]
    if unknown_target.sim is not None:
        fractional = _expected(unknown_target, "fractional_times", False)
        precision = _expected(unknown_target, "date_filter_precision", "exact")
        assert found.verdict == (precision if fractional else "exact_or_ms")


@detects(
    "defaults",
    "filter_exact_fractional",
    "shown_ms",
    "shown_s_truncate",
    "shown_s_round",
    "shown_s_round+filter_s_truncate",
)
def test_unknown_created_at_precision_in_answers(unknown_target: Target, report: Report) -> None:
    found = _reported(unknown_target, report, detect_created_at_precision(unknown_target))
    assert found.found == SHOWN_FINDINGS[found.verdict]
    if unknown_target.sim is not None:
        fractional = _expected(unknown_target, "fractional_times", False)
        assert found.verdict == (_expected(unknown_target, "created_at_precision", "exact") if fractional else "whole")


@detects("defaults", "date_to_inclusive", "filter_exact_fractional", "filter_s_truncate+date_to_inclusive")
def test_unknown_date_to_inclusive_or_exclusive(unknown_target: Target, report: Report) -> None:
    sim = unknown_target.sim
    precision = detect_date_filter_precision(unknown_target).verdict
    found = _reported(unknown_target, report, detect_date_to(unknown_target, precision))
    assert found.found == DATE_TO_FINDINGS[found.verdict]
    if sim is not None:
        inclusive = "inclusive" if _expected(unknown_target, "date_to_inclusive", False) else "exclusive"
        if precision in ("s_truncate", "s_round"):
            # Seeded fractional data has no consent on a whole second: the edge cannot be seen ...
            assert found.verdict == "not_observable"
            # ... until one lies there, as a platform with whole-second consents would have.
            sim.add_consent(created_at=datetime(2026, 1, 30, 12, tzinfo=timezone.utc))
            found = detect_date_to(unknown_target, precision)
        assert found.verdict == inclusive


@detects("defaults", "updated_at_sort_refused")
def test_unknown_accepted_sorts(unknown_target: Target, report: Report) -> None:
    found = _reported(unknown_target, report, detect_accepted_sorts(unknown_target))
    for sort, refusal in found.data["refusals"].items():
        assert refusal["status"] == 400 and refusal["code"] == "invalid_argument", (sort, refusal)
        assert refusal["names_sort"], f"the refusal of {sort} does not name sort"
    if unknown_target.sim is not None:
        assert set(found.data["accepted"]) == set(_expected(unknown_target, "accepted_sorts", SORTS))


# ------------------------------------------------------------------------- wire forms and pages
@detects("defaults", "numeric_ids")
def test_unknown_ids_as_strings_or_numbers(unknown_target: Target, report: Report) -> None:
    found = _reported(unknown_target, report, detect_ids(unknown_target))
    if unknown_target.sim is not None:
        assert found.verdict == ("numbers" if _expected(unknown_target, "numeric_ids", False) else "strings")


@detects("defaults", "null_empty_page")
def test_unknown_empty_page_encoding(unknown_target: Target, report: Report) -> None:
    found = _reported(unknown_target, report, detect_empty_page(unknown_target))
    if unknown_target.sim is not None:
        assert found.verdict == ("null" if _expected(unknown_target, "null_empty_page", False) else "list")


@detects("defaults", "page_cap_50", "page_cap_50+limit_asked", "limit_absent")
def test_unknown_page_cap_and_limit_echo(unknown_target: Target, report: Report) -> None:
    found = _reported(unknown_target, report, detect_page_cap(unknown_target))
    if unknown_target.sim is not None:
        assert found.data["cap"] == _expected(unknown_target, "page_cap", 100)
        assert found.data["echo"] == _expected(unknown_target, "limit_echo", "effective")
        assert found.differs == (unknown_target.variant != "defaults")


@detects("defaults", "drop_after_limit", "page_cap_50")
def test_unknown_short_pages_mid_listing(unknown_target: Target, report: Report) -> None:
    walk = walk_newest(unknown_target, pages=5)
    found = _reported(unknown_target, report, detect_short_pages(unknown_target, walk))
    if unknown_target.sim is not None:
        dropping = _expected(unknown_target, "drop_after_limit", 0.0) > 0
        assert found.verdict == ("short_pages" if dropping else "none_seen")
        # A cap makes every page short alike: the page cap detector, not this one, reports it.
        cap = detect_page_cap(unknown_target, walk)
        assert cap.data["cap"] == (None if dropping else _expected(unknown_target, "page_cap", 100))


@detects("defaults", "order_by_id")
def test_unknown_order_of_the_listing(unknown_target: Target, report: Report) -> None:
    found = _reported(unknown_target, report, detect_order(unknown_target, walk_newest(unknown_target, pages=6)))
    if unknown_target.sim is not None:
        assert found.verdict == ("id" if _expected(unknown_target, "order_by_id", False) else "created_at")


@detects("defaults", "second_past_a_page", "crowded_second")
def test_unknown_a_second_holding_more_than_a_page(unknown_target: Target, report: Report) -> None:
    found = _reported(unknown_target, report, detect_crowded_second(unknown_target, walk_newest(unknown_target, 6)))
    if unknown_target.sim is not None:
        crowd = _expected(unknown_target, "burst_share", 0.0) * SIM_CONSENTS
        assert found.verdict == ("past_a_page" if crowd > 100 else "within_a_page")
        if crowd > 100:
            assert found.data["largest"] == round(crowd)
            if _expected(unknown_target, "fractional_times", False):
                assert found.data["largest_exact"] < 5  # one second, many fractions (a few seeded exact ties)
            else:
                assert found.data["largest_exact"] == round(crowd)


# ------------------------------------------------------------------------- cursors
@detects("defaults", "cursor_value_lt", "cursor_value_le", "cursor_offset", "order_by_id", "drop_after_limit")
def test_unknown_what_the_cursor_holds(unknown_target: Target, report: Report) -> None:
    found = _reported(unknown_target, report, detect_cursor(unknown_target, walk_newest(unknown_target, pages=3)))
    if unknown_target.sim is not None:
        assert found.verdict == _expected(unknown_target, "cursor_kind", "keyset")
        assert found.data["tie"] == {"value_lt": "skips", "value_le": "repeats"}.get(found.verdict, "continues")


@detects("defaults", "cursor_expiry")
def test_unknown_cursor_expiry(unknown_target: Target, report: Report) -> None:
    sim = unknown_target.sim
    wait = float(os.environ.get(CURSOR_WAIT_ENV, "65")) if sim is None else 65.0
    found = _reported(
        unknown_target, report, detect_cursor_expiry(unknown_target, wait, time.sleep if sim is None else sim.advance)
    )
    if sim is not None:
        ttl = _expected(unknown_target, "cursor_ttl_s", None)
        assert found.verdict == ("expires" if ttl is not None and ttl < wait else "lasts")


# ------------------------------------------------------------------------- zones and fields
@detects("defaults", "filter_local_zone", "shown_local_as_z", "filter_on_updated_at", "shown_s_round+filter_s_truncate")
def test_unknown_zones_of_filters_and_of_times_shown(unknown_target: Target, report: Report) -> None:
    walk = walk_newest(unknown_target, pages=1)
    zones = probe_zones(unknown_target, walk)
    shown = _reported(unknown_target, report, detect_shown_zone(unknown_target, walk, zones))
    filters = _reported(unknown_target, report, detect_filter_zone(unknown_target, zones, shown))
    if unknown_target.sim is not None:
        assert zones.same_field
        filter_h = _expected(unknown_target, "filter_zone_offset_h", 0.0)
        shown_h = _expected(unknown_target, "shown_zone_offset_h", 0.0)
        assert zones.shift_h == filter_h - shown_h
        assert filters.verdict == ("ignores_offset" if filter_h else "honours_offset")
        if filter_h:
            # Seeded data ended months ago: no consent is recent enough to show the shown zone's clock.
            assert shown.verdict == "not_observable"
            assert filters.settings == {"platform_filter_zone": "Asia/Ho_Chi_Minh"}
        else:
            assert shown.verdict == ("local_as_z" if shown_h else "utc")
            assert shown.settings == ({"platform_shown_zone": "Asia/Ho_Chi_Minh"} if shown_h else {})


@detects("defaults", "filter_on_updated_at", "filter_local_zone", "shown_local_as_z")
def test_unknown_field_the_date_filters_bound(unknown_target: Target, report: Report) -> None:
    walk = walk_newest(unknown_target, pages=1)
    unknown_target.filter_shift_h = float(probe_zones(unknown_target, walk).shift_h or 0)
    found = _reported(unknown_target, report, detect_filter_field(unknown_target, walk))
    if unknown_target.sim is not None:
        field = _expected(unknown_target, "date_filter_field", "created_at")
        assert found.verdict == field
        assert found.settings == ({"date_filters_on_client": True} if field == "updated_at" else {})


# ------------------------------------------------------------------------- with RequestConsent (charged)
@detects("defaults", "listing_lag", "pending_conflict", "platform_clock_behind", "answer_clock_ahead")
def test_unknown_behaviours_of_a_fresh_consent(unknown_target: Target, report: Report) -> None:
    """Listing lag, the platform's clock, the answer's clock and the 409: one fresh consent, and a second request.

    On the platform only with an OA and your own phone: it sends at most two charged consent requests.
    """
    sim = unknown_target.sim
    if sim is None:
        oa_id, phone = os.environ.get(OA_ID_ENV), os.environ.get(PHONE_ENV)
        if not oa_id or not phone:
            pytest.skip(f"set {OA_ID_ENV} and {PHONE_ENV} (your own phone): at most two charged consent requests")
        wait: Any = time.sleep
    else:
        oa_id, phone, wait = sim.oa_ids[0], SIM_PHONE, sim.advance
    walk = walk_newest(unknown_target, pages=1)
    fresh = send_fresh_consent(unknown_target, oa_id, phone)
    lag = _reported(unknown_target, report, detect_listing_lag(unknown_target, fresh, wait))
    listed = lag.data["listed"]
    shown = detect_shown_zone(unknown_target, walk, probe_zones(unknown_target, walk))
    clock = _reported(unknown_target, report, detect_platform_clock(fresh, listed, shown.data["shown_h"]))
    answer = _reported(unknown_target, report, detect_answer_clock(fresh, listed))
    conflict = _reported(unknown_target, report, detect_pending_conflict(unknown_target, fresh))
    assert unknown_target.consent_requests_sent <= 2
    if sim is not None:
        step, waited = 5.0, lag.data["waited_s"]
        expected_lag = float(_expected(unknown_target, "listing_lag_s", 0.0))
        assert waited is not None and (waited == 0 == expected_lag or waited - step < expected_lag <= waited)
        behind = _expected(unknown_target, "clock_offset_s", 0.0)
        assert clock.verdict == ("behind" if behind else "in_step")
        assert clock.data["delta_s"] == pytest.approx(behind, abs=5 + waited)
        ahead = _expected(unknown_target, "answer_clock_offset_s", 0.0)
        assert answer.verdict == ("ahead" if ahead else "same")
        assert answer.data["delta_s"] == pytest.approx(ahead, abs=1)
        assert conflict.verdict == ("conflict" if _expected(unknown_target, "pending_conflict", False) else "accepted")
        assert sim.stats.count(method="Zalo/RequestConsent") == unknown_target.consent_requests_sent == 2
