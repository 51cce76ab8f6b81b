"""One declaration per switch (``PlatformSwitches``) feeds the constructor, the attributes, ``configure``,
``settings``, the control endpoint, the command line and the check of the variants."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, fields
from typing import Any

import pytest
import requests

from airflow_provider_etelecom.testing import (
    PLATFORM_VARIANTS,
    SETTINGS,
    SWITCHES,
    EtelecomSimulator,
    PlatformSwitches,
)
from airflow_provider_etelecom.testing.__main__ import build_parser, switches_of

from .conftest import END, KEY, START

#: A value other than the default for each switch, as the constructor takes it.
OTHER_VALUE: dict[str, Any] = {
    "listing_lag_s": 12.5,
    "date_to_inclusive": True,
    "fractional_times": True,
    "date_filter_precision": "s_round",
    "created_at_precision": "ms",
    "accepted_sorts": ("created_at", "-created_at"),
    "ignored_sorts": ("updated_at",),
    "reply_moves_updated_at": False,
    "rate_limit_per_s": 50.0,
    "burst_share": 0.25,
    "burst_start": START.replace(day=10),
    "burst_span_s": 60.0,
    "page_cap": 50,
    "limit_echo": "asked",
    "null_empty_page": True,
    "drop_after_limit": 0.3,
    "cursor_kind": "offset",
    "cursor_ttl_s": 90.0,
    "order_by_id": True,
    "id_time_jitter_s": 120.0,
    "date_filter_field": "updated_at",
    "filter_zone_offset_h": 7.0,
    "shown_zone_offset_h": -5.5,
    "numeric_ids": True,
    "pending_conflict": True,
    "clock_offset_s": -3600.0,
    "answer_clock_offset_s": 900.0,
}
#: A value each switch refuses.
BAD_VALUE: dict[str, Any] = {
    "listing_lag_s": -1,
    "date_to_inclusive": "yes",
    "fractional_times": 3,
    "date_filter_precision": "seconds",
    "created_at_precision": "s",
    "accepted_sorts": ("id",),
    "ignored_sorts": "updated_at",
    "reply_moves_updated_at": None,
    "rate_limit_per_s": -5,
    "burst_share": 1.5,
    "burst_start": "2026-01-10",
    "burst_span_s": 0,
    "page_cap": 0,
    "limit_echo": "given",
    "null_empty_page": "no",
    "drop_after_limit": 1.2,
    "cursor_kind": "value",
    "cursor_ttl_s": 0,
    "order_by_id": "yes",
    "id_time_jitter_s": -1.0,
    "date_filter_field": "expires_at",
    "filter_zone_offset_h": 15.0,
    "shown_zone_offset_h": "+07:00",
    "numeric_ids": "true",
    "pending_conflict": 2,
    "clock_offset_s": "an hour",
    "answer_clock_offset_s": [900],
}
#: What to type on the command line for OTHER_VALUE.
CLI_TEXT: dict[str, str] = {
    "accepted_sorts": "created_at,-created_at",
    "ignored_sorts": "updated_at",
    "burst_start": "2026-01-10T00:00:00Z",
}
#: What the command line refuses, where the Python value's text would be read as a good value.
CLI_BAD_TEXT: dict[str, str] = {"accepted_sorts": "id", "ignored_sorts": "created_at,id", "burst_start": "someday"}
#: Flags that were spelled before the switches were generated; they must keep working.
OLD_FLAGS = {
    "--listing-lag": "listing_lag_s",
    "--date-to-inclusive": "date_to_inclusive",
    "--fractional-times": "fractional_times",
    "--date-filter-precision": "date_filter_precision",
    "--created-at-precision": "created_at_precision",
    "--accepted-sorts": "accepted_sorts",
    "--ignored-sorts": "ignored_sorts",
    "--reply-keeps-updated-at": "reply_moves_updated_at",
    "--burst-share": "burst_share",
    "--burst-start": "burst_start",
    "--burst-span": "burst_span_s",
    "--rate-limit-per-s": "rate_limit_per_s",
}


def _sim(**switches: Any) -> EtelecomSimulator:
    return EtelecomSimulator(consents=30, seed=2, api_key=KEY, start=START, end=END, **switches)


def test_the_tables_here_cover_every_declared_switch() -> None:
    names = {switch.name for switch in SWITCHES}
    assert names == {f.name for f in fields(PlatformSwitches)}
    assert set(OTHER_VALUE) == set(BAD_VALUE) == names, "a new switch needs a row in these tables"
    assert set(SETTINGS) == {switch.name for switch in SWITCHES if switch.runtime}


def test_defaults_are_the_declared_ones_and_the_object_is_frozen() -> None:
    with _sim() as sim:
        for switch in SWITCHES:
            if switch.name not in ("burst_start",):  # stored resolved: the centred window's start
                assert getattr(sim, switch.name) == switch.default, switch.name
        with pytest.raises(FrozenInstanceError):
            sim.switches.listing_lag_s = 3  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(OTHER_VALUE))
def test_each_switch_is_a_constructor_argument_and_an_attribute(name: str) -> None:
    with _sim(**{name: OTHER_VALUE[name]}) as sim:
        assert getattr(sim, name) == OTHER_VALUE[name]
        assert getattr(sim.switches, name) == OTHER_VALUE[name]
    with pytest.raises(ValueError, match=name):
        _sim(**{name: BAD_VALUE[name]})


@pytest.mark.parametrize("name", SETTINGS)
def test_each_runtime_switch_is_settable_three_ways_and_checked(name: str) -> None:
    with _sim() as sim:
        setattr(sim, name, OTHER_VALUE[name])
        assert getattr(sim, name) == OTHER_VALUE[name]
        sim.configure(**{name: getattr(PlatformSwitches(), name)})
        assert getattr(sim, name) == getattr(PlatformSwitches(), name)
        answer = requests.post(sim.root_url + "/_simulator/settings", json={name: _json(OTHER_VALUE[name])}, timeout=5)
        assert answer.status_code == 200, answer.text
        assert getattr(sim, name) == OTHER_VALUE[name]
        assert answer.json()[name] == _json(OTHER_VALUE[name]) == sim.settings()[name]
        before = sim.settings()
        with pytest.raises(ValueError, match=name):
            setattr(sim, name, BAD_VALUE[name])
        refused = requests.post(sim.root_url + "/_simulator/settings", json={name: _json(BAD_VALUE[name])}, timeout=5)
        assert refused.status_code == 400 and name in refused.json()["msg"]
        assert sim.settings() == before


@pytest.mark.parametrize("name", sorted(set(OTHER_VALUE) - set(SETTINGS)))
def test_a_seeding_switch_is_fixed_once_seeded(name: str) -> None:
    with _sim() as sim:
        with pytest.raises(AttributeError, match="seeded"):
            setattr(sim, name, OTHER_VALUE[name])
        with pytest.raises(ValueError, match="seeded"):
            sim.configure(**{name: OTHER_VALUE[name]})
        assert name not in sim.settings()


def test_an_unknown_switch_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match=r"listing_lag\b"):
        _sim(listing_lag=3)
    with _sim() as sim:
        with pytest.raises(ValueError, match="nope"):
            sim.configure(nope=1)
        with pytest.raises(AttributeError):
            _ = sim.nope
        sim.nope = 1  # an ordinary attribute, as on any object
        assert sim.nope == 1


def test_a_variant_naming_no_switch_or_a_bad_value_is_refused() -> None:
    with pytest.raises(TypeError, match=r"PLATFORM_VARIANTS\['typo'\].*date_to_inclusiv\b"):
        PlatformSwitches.of({"date_to_inclusiv": True}, where="PLATFORM_VARIANTS['typo']")
    with pytest.raises(ValueError, match="created_at_precision"):
        PlatformSwitches.of({"created_at_precision": "seconds"}, where="PLATFORM_VARIANTS['bad']")
    for name, switches in PLATFORM_VARIANTS.items():
        assert PlatformSwitches.of(switches, where=name) is not None


# -------------------------------------------------------------------- command line
def test_every_switch_has_a_flag_and_the_old_spellings_stand() -> None:
    flags = {switch.flag: switch.name for switch in SWITCHES}
    assert len(flags) == len(SWITCHES)
    assert OLD_FLAGS.items() <= flags.items()
    for flag, name in flags.items():
        if flag not in OLD_FLAGS:
            assert flag == "--" + name.replace("_", "-"), "a new switch's flag is its name"


@pytest.mark.parametrize("switch", SWITCHES, ids=lambda switch: switch.name)
def test_each_flag_gives_its_switch(switch: Any) -> None:
    value = OTHER_VALUE[switch.name]
    argv = [switch.flag] if isinstance(value, bool) else [switch.flag, CLI_TEXT.get(switch.name, str(value))]
    assert switches_of(build_parser().parse_args(argv)) == {switch.name: value}
    if not isinstance(value, bool):
        with pytest.raises(SystemExit):
            build_parser().parse_args([switch.flag, CLI_BAD_TEXT.get(switch.name, str(BAD_VALUE[switch.name]))])


def _json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
