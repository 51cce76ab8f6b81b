"""The probe: raw answers as sent, reads retried, RequestConsent counted and never retried, the key never shown."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from airflow_provider_etelecom.contract.probe import (
    LIST,
    US,
    Probe,
    fraction_digits,
    listed,
    micros,
    walk_newest,
    wire,
)
from airflow_provider_etelecom.exceptions import EtelecomAuthError, EtelecomTransientError
from airflow_provider_etelecom.testing import EtelecomSimulator

KEY = "probe-SECRET-key-5d1e9a"


@pytest.fixture
def sim() -> Iterator[EtelecomSimulator]:
    with EtelecomSimulator(consents=250, seed=3, api_key=KEY) as simulator:
        yield simulator


def test_wire_times_round_trip_and_carry_an_offset() -> None:
    at = micros("2026-03-01T00:00:00.25Z")
    assert wire(at) == "2026-03-01T00:00:00.250000Z"
    assert wire(at, 7) == "2026-03-01T07:00:00.250000+07:00"
    assert wire(at, -5) == "2026-02-28T19:00:00.250000-05:00"
    assert micros(wire(at, 7)) == at == micros("2026-03-01T00:00:00.250000123Z")
    assert micros("2026-03-01T00:00:01Z") - at == 750_000
    assert [fraction_digits(t) for t in ("2026-03-01T00:00:00Z", "2026-03-01T00:00:00.120Z", None)] == [0, 3, 0]
    with pytest.raises(ValueError):
        micros("2026-03-01T00:00:00")


def test_windows_move_by_the_zone_shift_found(sim: EtelecomSimulator) -> None:
    with Probe(sim.base_url, KEY) as probe:
        at = micros("2026-03-01T00:00:00Z")
        assert probe.window(at, at + US) == {"date_from": "2026-03-01T00:00:00.000000Z", "date_to": wire(at + US)}
        probe.filter_shift_h = 7
        assert probe.window(at, at + US)["date_from"] == "2026-03-01T07:00:00.000000Z"


def test_the_clock_is_the_latest_date_header(sim: EtelecomSimulator) -> None:
    with Probe(sim.base_url, KEY) as probe:
        assert probe.last_date is None
        probe.call("Misc/CurrentAccount", {})
        assert probe.last_date is not None and abs((probe.now() - sim.now()).total_seconds()) < 2
        sim.advance(7200)
        probe.call("Misc/CurrentAccount", {})
        assert abs((probe.now() - sim.now()).total_seconds()) < 2


def test_reads_are_retried_and_counted(sim: EtelecomSimulator) -> None:
    with Probe(sim.base_url, KEY, backoff_s=0) as probe:
        sim.script_faults(["503", "502"])
        assert len(probe.list(paging={"limit": 3})["consents"]) == 3
        assert sim.stats.count(method=LIST) == 3
        assert probe.requests == 1  # as the detectors asked; the transport retried twice


def test_request_consent_is_sent_only_within_its_budget_and_never_retried(sim: EtelecomSimulator) -> None:
    with Probe(sim.base_url, KEY) as probe:
        with pytest.raises(PermissionError, match="--allow-request-consent"):
            probe.request_consent(sim.oa_ids[0], "84212345678", "audio", "update_order")
        with pytest.raises(ValueError, match="request_consent"):
            probe.post("Zalo/RequestConsent", {})
    assert sim.stats.count(method="Zalo/RequestConsent") == 0
    with Probe(sim.base_url, KEY, consent_requests=1) as probe:
        sim.script_faults(["503"])
        assert probe.request_consent(sim.oa_ids[0], "84212345678", "audio", "update_order").status_code == 503
        with pytest.raises(PermissionError):
            probe.request_consent(sim.oa_ids[0], "84212345678", "audio", "update_order")
        assert probe.consent_requests_sent == 1
    assert sim.stats.count(method="Zalo/RequestConsent") == 1


def test_the_key_is_in_no_message(sim: EtelecomSimulator) -> None:
    with Probe(sim.base_url, "wrong-" + KEY) as probe:
        assert KEY not in repr(probe)
        with pytest.raises(EtelecomAuthError) as refused:
            probe.call("Misc/CurrentAccount", {})
        assert refused.value.status == 401 and KEY not in str(refused.value)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with Probe(f"http://127.0.0.1:{port}/v1/shop", KEY, retries=0) as probe:
        with pytest.raises(EtelecomTransientError) as unreachable:
            probe.list()
        assert KEY not in str(unreachable.value) and "gave no answer" in str(unreachable.value)


def test_a_walk_stops_on_the_empty_page_or_its_budget(sim: EtelecomSimulator) -> None:
    with Probe(sim.base_url, KEY) as probe:
        whole = walk_newest(probe, pages=10)
        assert (whole.ended, whole.stopped, whole.sizes) == (True, "empty page", [100, 100, 50])
        assert len(whole.consents()) == 250
        part = walk_newest(probe, pages=2, limit=30)
        assert (part.ended, part.stopped, part.sizes) == (False, "page budget", [30, 30])


def test_a_walk_stops_on_a_repeated_cursor() -> None:
    with (
        EtelecomSimulator(
            consents=300, seed=3, api_key=KEY, cursor_kind="value_le", burst_share=0.5, burst_span_s=1
        ) as sim,
        Probe(sim.base_url, KEY) as probe,
    ):
        walk = walk_newest(probe, pages=10)
        assert walk.stopped == "repeated cursor" and not walk.ended


def test_listed_pages_a_window_to_its_end(sim: EtelecomSimulator) -> None:
    oldest = sim.consents()[-1]
    at = micros(oldest["created_at"])
    with Probe(sim.base_url, KEY) as probe:
        assert listed(probe, oldest["id"], probe.window(at, at + US))
        assert not listed(probe, oldest["id"], probe.window(at + US, at + 2 * US))
        assert listed(probe, oldest["id"], {"date_to": wire(at + US)})
