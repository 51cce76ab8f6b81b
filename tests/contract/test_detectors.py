"""What the detectors can and cannot tell read-only, beyond the named variants (``test_unknowns.py``).

Platforms the variants do not play alone (a platform in local time throughout, an account with
little data, a request that was not delivered), and what each detector says then: "not observable"
with the reason, never a guess presented as a finding.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_etelecom.contract.detectors import (
    ZoneProbe,
    detect_created_at_precision,
    detect_cursor,
    detect_date_filter_precision,
    detect_date_to,
    detect_filter_field,
    detect_filter_zone,
    detect_listing_lag,
    detect_pending_conflict,
    detect_short_pages,
    detect_shown_zone,
    probe_zones,
    send_fresh_consent,
    zone_name,
)
from airflow_provider_etelecom.contract.probe import US, Probe, micros, walk_newest
from airflow_provider_etelecom.testing import EtelecomSimulator

KEY = "detector-key-0123456789"
PHONE = "84212345678"
#: Seeded data that ended a month ago: nothing recent enough to show a local clock.
OLD = {"start": datetime(2026, 1, 1, tzinfo=timezone.utc), "end": datetime(2026, 1, 31, tzinfo=timezone.utc)}
LOCAL_THROUGHOUT = {"filter_zone_offset_h": 7.0, "shown_zone_offset_h": 7.0}


def _probe(sim: EtelecomSimulator, sends: int = 0) -> Probe:
    return Probe(sim.base_url, sim.api_key, name="simulator", consent_requests=sends)


@pytest.fixture
def local_throughout() -> Iterator[EtelecomSimulator]:
    """A platform that reads and writes Vietnam's wall clock and labels it Z: consistent with itself."""
    with EtelecomSimulator(consents=300, seed=4, api_key=KEY, **OLD, **LOCAL_THROUGHOUT) as sim:
        yield sim


def test_zone_names() -> None:
    assert [zone_name(h) for h in (7, 0, 9, -5)] == ["Asia/Ho_Chi_Minh", "UTC", "Etc/GMT-9", "Etc/GMT+5"]


def test_what_the_filter_zone_says_for_each_zone_probe(local_throughout: EtelecomSimulator) -> None:
    """The verdicts of zone probes no variant plays: refused offsets, nothing found, nothing to probe."""
    with _probe(local_throughout) as probe:
        refused = detect_filter_zone(probe, ZoneProbe("1", 0, 0, None, True))
        assert refused.verdict == "offset_refused" and not refused.settings
        assert "do not set platform_filter_zone" in refused.action
        shifted = detect_filter_zone(probe, ZoneProbe("1", 0, 7, None, True))
        assert shifted.verdict == "offset_refused_shifted" and shifted.action.startswith("not settled")
        assert detect_filter_zone(probe, ZoneProbe("1", 0, None, None, True)).verdict == "not_found"
        assert detect_filter_zone(probe, ZoneProbe(None)).verdict == "not_observable"
        utc = detect_filter_zone(probe, ZoneProbe("1", 0, -3, False, True), None)
        assert (utc.verdict, utc.settings) == ("ignores_offset", {"platform_filter_zone": "Etc/GMT+3"})
        assert "assuming answers show UTC" in utc.found


def test_a_platform_in_local_time_throughout_is_invisible_without_a_recent_consent(
    local_throughout: EtelecomSimulator,
) -> None:
    with _probe(local_throughout) as probe:
        walk = walk_newest(probe, 1)
        zones = probe_zones(probe, walk)
        assert (zones.shift_h, zones.honours_offset) == (0, False)
        shown = detect_shown_zone(probe, walk, zones)
        assert shown.verdict == "not_observable" and "invisible read-only" in shown.found
        filters = detect_filter_zone(probe, zones, shown)
        assert filters.verdict == "same_as_shown" and not filters.settings
        assert "--allow-request-consent" in filters.action


def test_a_recent_consent_shows_the_local_clock_at_least(local_throughout: EtelecomSimulator) -> None:
    local_throughout.insert_consents(1)
    with _probe(local_throughout) as probe:
        walk = walk_newest(probe, 1)
        zones = probe_zones(probe, walk)
        shown = detect_shown_zone(probe, walk, zones)
        assert shown.verdict == "local_as_z" and not shown.data["exact"]
        assert shown.settings == {"platform_shown_zone": "Asia/Ho_Chi_Minh"}
        assert shown.data["ahead_s"] == pytest.approx(7 * 3600, abs=5)
        filters = detect_filter_zone(probe, zones, shown)
        assert filters.settings == {"platform_filter_zone": "Asia/Ho_Chi_Minh"}


def test_a_fresh_consent_settles_the_shown_zone(local_throughout: EtelecomSimulator) -> None:
    with _probe(local_throughout, sends=1) as probe:
        walk = walk_newest(probe, 1)
        zones = probe_zones(probe, walk)
        fresh = send_fresh_consent(probe, local_throughout.oa_ids[0], PHONE)
        listed = detect_listing_lag(probe, fresh, local_throughout.advance).data["listed"]
        delta = (micros(listed["created_at"]) - fresh.asked_at) / US
        shown = detect_shown_zone(probe, walk, zones, delta)
        assert (shown.verdict, shown.data["shown_h"], shown.data["exact"]) == ("local_as_z", 7, True)
        assert detect_filter_zone(probe, zones, shown).data["filter_h"] == 7
    assert local_throughout.stats.count(method="Zalo/RequestConsent") == 1


def test_a_platform_clock_hours_off_reads_as_a_zone_unless_the_windows_settle_it() -> None:
    """Whole hours off the clock look like a shown zone; windows that honour offsets say the times are UTC."""
    with (
        EtelecomSimulator(consents=300, seed=4, api_key=KEY, **OLD, clock_offset_s=-3 * 3600) as sim,
        _probe(sim, sends=1) as probe,
    ):
        walk = walk_newest(probe, 1)
        zones = probe_zones(probe, walk)
        assert zones.honours_offset
        fresh = send_fresh_consent(probe, sim.oa_ids[0], PHONE)
        listed = detect_listing_lag(probe, fresh, sim.advance).data["listed"]
        delta = (micros(listed["created_at"]) - fresh.asked_at) / US
        assert detect_shown_zone(probe, walk, zones, delta).verdict == "utc"


def test_little_data_is_not_observable_rather_than_guessed() -> None:
    with EtelecomSimulator(consents=0, seed=4, api_key=KEY) as sim, _probe(sim) as probe:
        sim.insert_consents(5)
        walk = walk_newest(probe)
        assert detect_short_pages(probe, walk).verdict == "not_observable"
        assert detect_filter_field(probe, walk).verdict == "not_observable"  # nothing updated an hour later
        assert detect_cursor(probe, walk).verdict in ("not_observable", "keyset_or_offset")
        assert detect_date_filter_precision(probe).verdict == "not_observable"
        assert detect_created_at_precision(probe).verdict == "not_observable"
        assert detect_date_to(probe, "exact").verdict == "not_observable"
        assert "fewer than 10" in detect_date_to(probe, "exact").found


def test_an_undelivered_request_sends_no_second_one() -> None:
    with EtelecomSimulator(consents=50, seed=4, api_key=KEY, pending_conflict=True) as sim, _probe(sim, 2) as probe:
        sim.fail_send_to(PHONE)
        fresh = send_fresh_consent(probe, sim.oa_ids[0], PHONE)
        found = detect_pending_conflict(probe, fresh)
        assert found.verdict == "not_observable" and "not pending" in found.found
    assert sim.stats.count(method="Zalo/RequestConsent") == 1


def test_a_consent_never_listed_within_the_budget() -> None:
    with EtelecomSimulator(consents=50, seed=4, api_key=KEY, listing_lag_s=600) as sim, _probe(sim, 1) as probe:
        fresh = send_fresh_consent(probe, sim.oa_ids[0], PHONE)
        found = detect_listing_lag(probe, fresh, sim.advance, step_s=5, budget_s=60)
        assert (found.verdict, found.data["waited_s"], found.differs) == ("not_listed", None, True)
        assert sim.now() - fresh_time(fresh.answer["created_at"]) >= timedelta(seconds=60)


def fresh_time(value: str) -> datetime:
    return datetime.fromtimestamp(micros(value) / US, timezone.utc)
