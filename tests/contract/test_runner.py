"""Every detector at once, against every variant: each variant shows as what it plays, and nothing else does.

This is the check a user runs (``python -m airflow_provider_etelecom.contract``), with
``RequestConsent`` allowed, against the simulator playing each of
:data:`~airflow_provider_etelecom.testing.PLATFORM_VARIANTS`: the findings that differ from the
defaults must be exactly the variant's, and the settings exactly those it needs.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from airflow_provider_etelecom.contract import runner
from airflow_provider_etelecom.contract.detectors import BEHAVIOURS, Finding
from airflow_provider_etelecom.contract.probe import Probe
from airflow_provider_etelecom.contract.runner import MAX_CONSENT_REQUESTS, CheckOptions, run_checks
from airflow_provider_etelecom.exceptions import EtelecomAuthError, EtelecomBadRequestError
from airflow_provider_etelecom.testing import PLATFORM_VARIANTS, EtelecomSimulator

KEY = "runner-key-0123456789"
PHONE = "84212345678"
_FRACTIONAL = {"created_at_precision": "exact"}
#: What the check finds differing from the defaults, by variant (behaviour: verdict).
DIFFERS: dict[str, dict[str, str]] = {
    "defaults": {},
    "filter_exact_fractional": {**_FRACTIONAL},
    "filter_s_truncate": {"filter_precision": "s_truncate", **_FRACTIONAL},
    "filter_s_round": {"filter_precision": "s_round", **_FRACTIONAL},
    "filter_ms": {"filter_precision": "ms", **_FRACTIONAL},
    # Answers cut to whole seconds: the filter probe takes the shown second for the stored time (documented).
    "shown_s_truncate": {"created_at_precision": "s_truncate", "filter_precision": "s_truncate"},
    "shown_s_round": {"created_at_precision": "s_round"},
    "shown_ms": {"created_at_precision": "ms"},
    "date_to_inclusive": {"date_to": "inclusive"},
    # Fractional seeded data puts no consent on a whole second: the edge of date_to cannot be seen.
    "filter_s_truncate+date_to_inclusive": {"filter_precision": "s_truncate", **_FRACTIONAL},
    "shown_s_round+filter_s_truncate": {"created_at_precision": "s_round"},
    "listing_lag": {"listing_lag": "lag"},
    "updated_at_sort_refused": {"sorts": "created_at,-created_at"},
    # No detector for these: they concern the waits' changed reads, not a listing's exactness.
    "updated_at_sort_ignored": {},
    "reply_keeps_updated_at": {},
    "crowded_second": {"crowded_second": "past_a_page", **_FRACTIONAL},
    "page_cap_50": {"page_cap": "cap=50 echo=effective"},
    "page_cap_50+limit_asked": {"page_cap": "cap=50 echo=asked"},
    "limit_absent": {"page_cap": "cap=100 echo=absent"},
    "null_empty_page": {"empty_page": "null"},
    "drop_after_limit": {"short_pages": "short_pages"},
    "cursor_value_lt": {"cursor": "value_lt"},
    "cursor_value_le": {"cursor": "value_le"},
    "cursor_offset": {"cursor": "offset"},
    "cursor_expiry": {"cursor_expiry": "expires"},
    "order_by_id": {"order": "id"},
    "filter_on_updated_at": {"filter_field": "updated_at"},
    "filter_local_zone": {"filter_zone": "ignores_offset"},
    "shown_local_as_z": {"shown_zone": "local_as_z"},
    "numeric_ids": {"ids": "numbers"},
    "pending_conflict": {"pending_conflict": "conflict"},
    "platform_clock_behind": {"platform_clock": "behind"},
    "answer_clock_ahead": {"answer_clock": "ahead"},
    "second_past_a_page": {"crowded_second": "past_a_page"},
}
SETTINGS: dict[str, dict[str, object]] = {
    "filter_on_updated_at": {"date_filters_on_client": True},
    "filter_local_zone": {"platform_filter_zone": "Asia/Ho_Chi_Minh"},
    "shown_local_as_z": {"platform_shown_zone": "Asia/Ho_Chi_Minh"},
}


def _check(sim: EtelecomSimulator, sends: int = MAX_CONSENT_REQUESTS, **options: object) -> list[Finding]:
    with Probe(sim.base_url, sim.api_key, consent_requests=sends) as probe:
        return run_checks(probe, CheckOptions(oa_id=sim.oa_ids[0], phone=PHONE, **options), sleep=sim.advance)  # type: ignore[arg-type]


def test_every_variant_is_listed() -> None:
    assert set(DIFFERS) == set(PLATFORM_VARIANTS)


@pytest.mark.parametrize("variant", sorted(PLATFORM_VARIANTS))
def test_the_check_finds_what_each_variant_plays_and_nothing_else(variant: str) -> None:
    with EtelecomSimulator(consents=600, seed=5, api_key=KEY, **PLATFORM_VARIANTS[variant]) as sim:
        findings = _check(sim)
        assert [f.behaviour for f in findings] == list(BEHAVIOURS)
        assert {f.behaviour: f.verdict for f in findings if f.differs} == DIFFERS[variant]
        settings = {name: value for f in findings for name, value in f.settings.items()}
        assert settings == SETTINGS.get(variant, {})
        assert sim.stats.count(method="Zalo/RequestConsent") <= MAX_CONSENT_REQUESTS


def test_without_a_budget_nothing_is_sent_and_the_charged_checks_say_how_to_run_them() -> None:
    with EtelecomSimulator(consents=300, seed=5, api_key=KEY) as sim:
        findings = {f.behaviour: f for f in _check(sim, sends=0)}
        assert sim.stats.count(method="Zalo/RequestConsent") == 0
    for behaviour in ("listing_lag", "platform_clock", "answer_clock", "pending_conflict"):
        assert findings[behaviour].verdict == "not_checked"
        assert "--allow-request-consent" in findings[behaviour].found


def test_an_empty_account_is_checked_without_a_failure() -> None:
    with EtelecomSimulator(consents=0, seed=5, api_key=KEY) as sim:
        findings = _check(sim, sends=0, cursor_wait_s=0)
    assert not [f for f in findings if f.verdict == "error"]
    verdicts = {f.behaviour: f.verdict for f in findings}
    assert verdicts.pop("empty_page") == "list" and verdicts.pop("page_cap") == "cap=? echo=effective"
    assert verdicts.pop("sorts") == "created_at,-created_at,updated_at,-updated_at"
    assert set(verdicts.values()) <= {"not_observable", "not_checked"}
    assert not [f for f in findings if f.differs]


def test_a_refused_probe_is_reported_and_the_others_go_on(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> Finding:
        raise EtelecomBadRequestError("eTelecom Zalo/ListRequestConsent answered HTTP 400 ...", status=400)

    monkeypatch.setattr(runner, "detect_order", refuse)
    with EtelecomSimulator(consents=300, seed=5, api_key=KEY) as sim:
        findings = {f.behaviour: f for f in _check(sim, sends=0, cursor_wait_s=0)}
    assert findings["order"].verdict == "error" and "HTTP 400" in findings["order"].found
    assert findings["cursor"].verdict == "keyset"


def test_a_key_refused_mid_run_stops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    sim_holder: list[EtelecomSimulator] = []
    detect: Callable[..., Finding] = runner.detect_cursor

    def rotate_then_detect(probe: Probe, walk: object) -> Finding:
        sim_holder[0].api_key = "rotated-" + KEY
        return detect(probe, walk)

    monkeypatch.setattr(runner, "detect_cursor", rotate_then_detect)
    with EtelecomSimulator(consents=300, seed=5, api_key=KEY) as sim:
        sim_holder.append(sim)
        with pytest.raises(EtelecomAuthError):
            _check(sim, sends=0)
