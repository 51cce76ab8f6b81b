"""The command line: first stdout line is the base URL, it serves, and SIGINT/SIGTERM stop it with 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from airflow_provider_etelecom.testing.__main__ import build_parser

ROOT = Path(__file__).resolve().parents[2]


def _spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_etelecom.testing", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_prints_base_url_serves_and_stops_cleanly(sig: signal.Signals) -> None:
    proc = _spawn("--consents", "120", "--seed", "1", "--api-key", "demo-key", "--latency-ms", "1")
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1/shop")
        headers = {"Authorization": "Bearer demo-key"}
        page = requests.post(base_url + ".Zalo/ListRequestConsent", json={}, headers=headers, timeout=5)
        assert page.status_code == 200 and len(page.json()["consents"]) == 100
        root = base_url.rsplit("/v1/", 1)[0]
        assert requests.get(root + "/_simulator/stats", timeout=5).json()["connections"] >= 1
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        assert "demo-key" not in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_reads_the_key_from_the_environment() -> None:
    proc = _spawn("--consents", "5", env={"ETELECOM_SIMULATOR_API_KEY": "env-key-123456"})
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        ok = requests.post(
            base_url + ".Misc/CurrentAccount",
            json={},
            headers={"Authorization": "Bearer env-key-123456"},
            timeout=5,
        )
        assert ok.status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


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
    assert args.auto_reply_after == 60 and args.auto_reply_status == "N"
    assert args.listing_lag == 5 and args.date_to_inclusive
    assert args.start.tzinfo is not None and args.end.tzinfo is not None
