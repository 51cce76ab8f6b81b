"""The command line: first stdout line is the base URL, it serves, and SIGINT/SIGTERM stop it with 0.

Started through :class:`SimulatorProcess` (the one starter), whose child process is checked directly:
what it printed, how it exited, what its command line holds.
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest
import requests

from airflow_provider_etelecom.testing import PLATFORM_VARIANTS, SimulatorProcess
from airflow_provider_etelecom.testing.__main__ import build_parser, switches_of
from airflow_provider_etelecom.testing.process import API_KEY_ENV


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_prints_base_url_serves_and_stops_cleanly(sig: signal.Signals) -> None:
    with SimulatorProcess(
        "--port",
        "0",
        "--consents",
        "120",
        "--seed",
        "1",
        "--latency-ms",
        "1",
        api_key="demo-key",
        stderr=subprocess.PIPE,
    ) as sim:
        assert sim.base_url.startswith("http://127.0.0.1:") and sim.base_url.endswith("/v1/shop")
        headers = {"Authorization": "Bearer demo-key"}
        page = requests.post(sim.base_url + ".Zalo/ListRequestConsent", json={}, headers=headers, timeout=5)
        assert page.status_code == 200 and len(page.json()["consents"]) == 100
        assert requests.get(sim.root_url + "/_simulator/stats", timeout=5).json()["connections"] >= 1
        sim.process.send_signal(sig)
        assert sim.process.wait(timeout=10) == 0
        assert sim.process.stderr is not None
        assert "demo-key" not in sim.process.stderr.read()


def test_cli_reads_the_key_from_the_environment_and_a_flag_overrides_it() -> None:
    # SimulatorProcess hands the key over in ETELECOM_SIMULATOR_API_KEY, never on the command line.
    with SimulatorProcess("--consents", "5", api_key="env-key-123456") as sim:
        assert "env-key-123456" not in " ".join(sim.process.args)
        ok = requests.post(
            sim.base_url + ".Misc/CurrentAccount",
            json={},
            headers={"Authorization": "Bearer env-key-123456"},
            timeout=5,
        )
        assert ok.status_code == 200
        assert sim.stop() == 0
    with SimulatorProcess("--consents", "5", "--api-key", "flag-key-654321", api_key="env-key-123456") as sim:
        answers = {
            key: requests.post(
                sim.base_url + ".Misc/CurrentAccount", json={}, headers={"Authorization": f"Bearer {key}"}, timeout=5
            ).status_code
            for key in ("flag-key-654321", "env-key-123456")
        }
        assert answers == {"flag-key-654321": 200, "env-key-123456": 401}


def test_cli_parser_maps_every_flag() -> None:
    args = build_parser().parse_args(
        [
            "--port",
            "0",
            "--consents",
            "10",
            "--error-rate",
            "0.1",
            "--drop-rate",
            "0.2",
            "--truncate-rate",
            "0.3",
            "--rate-limit-rate",
            "0.4",
            "--exhausted-rate",
            "0.5",
            "--rate-limit-per-s",
            "20",
            "--auto-reply-after",
            "60",
            "--auto-reply-status",
            "N",
            "--listing-lag",
            "5",
            "--date-to-inclusive",
            "--start",
            "2026-01-01T00:00:00Z",
            "--end",
            "2026-01-31",
            "--host",
            "127.0.0.1",
        ]
    )
    assert (args.error_rate, args.drop_rate, args.truncate_rate) == (0.1, 0.2, 0.3)
    assert (args.rate_limit_rate, args.exhausted_rate) == (0.4, 0.5)
    assert args.rate_limit_per_s == 20.0
    assert build_parser().parse_args([]).rate_limit_per_s is None, "no rate limit unless asked"
    assert args.auto_reply_after == 60 and args.auto_reply_status == "N"
    assert args.listing_lag_s == 5 and args.date_to_inclusive
    assert args.start.tzinfo is not None and args.end.tzinfo is not None


def test_cli_maps_every_platform_switch() -> None:
    args = build_parser().parse_args(
        [
            "--fractional-times",
            "--date-filter-precision",
            "s_round",
            "--created-at-precision",
            "ms",
            "--accepted-sorts",
            "created_at,-created_at",
            "--burst-share",
            "0.8",
            "--burst-start",
            "2026-01-10T00:00:00Z",
            "--burst-span",
            "86400",
        ]
    )
    switches = switches_of(args)
    assert switches == {
        "fractional_times": True,
        "date_filter_precision": "s_round",
        "created_at_precision": "ms",
        "accepted_sorts": ("created_at", "-created_at"),
        "burst_share": 0.8,
        "burst_start": args.burst_start,
        "burst_span_s": 86400.0,
    }
    assert switches_of(build_parser().parse_args([])) == {}, "flags not given leave the simulator's defaults"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--accepted-sorts", "id"])


def test_cli_variant_is_the_base_and_explicit_flags_override_it() -> None:
    args = build_parser().parse_args(["--variant", "filter_s_truncate", "--date-filter-precision", "ms"])
    assert switches_of(args) == {**PLATFORM_VARIANTS["filter_s_truncate"], "date_filter_precision": "ms"}


def test_cli_defaults_to_a_free_port_and_prints_it() -> None:
    assert build_parser().parse_args([]).port == 0
    with SimulatorProcess("--consents", "5", "--variant", "updated_at_sort_refused", stderr=subprocess.PIPE) as sim:
        assert "--port" not in sim.process.args
        assert sim.port not in (0, 8080)
        assert sim.process.stderr is not None
        assert f"on port {sim.port}" in sim.process.stderr.readline()
        assert requests.get(sim.root_url + "/_simulator/settings", timeout=5).json()["accepted_sorts"] == [
            "created_at",
            "-created_at",
        ]
        sim.process.send_signal(signal.SIGTERM)
        assert sim.process.wait(timeout=10) == 0


def _shown(default: object) -> str:
    """A default as the docs' table writes it: ``none``, a number without a needless ``.0``, or the text."""
    if default is None:
        return "none"
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)


def test_the_docs_table_gives_every_flag_its_parser_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/simulator.md's table of the command line's flags holds each non-switch flag once, with its real default."""
    from airflow_provider_etelecom.testing.switches import SWITCHES

    monkeypatch.delenv(API_KEY_ENV, raising=False)  # the default the table documents, not this machine's
    switch_flags = {switch.flag for switch in SWITCHES}
    expected = {
        flag: _shown(action.default)
        for action in build_parser()._actions
        for flag in action.option_strings
        if flag.startswith("--") and flag != "--help" and flag not in switch_flags
    }
    page = (Path(__file__).resolve().parents[2] / "docs" / "simulator.md").read_text(encoding="utf-8")
    section = page[page.index("## Command line") :]
    table = section[section.index("| flag | default |") :].split("\n\n", 1)[0]
    documented: dict[str, str] = {}
    for row in table.splitlines()[2:]:
        flags, default, _ = (cell.strip() for cell in row.strip("|").split("|", 2))
        for flag in re.findall(r"`(--[\w-]+)`", flags):
            assert flag not in documented, f"{flag} is in the table twice"
            documented[flag] = default.strip("`")
    assert documented == expected
