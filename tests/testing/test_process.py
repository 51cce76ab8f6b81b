"""SimulatorProcess: the one starter of the simulator in a child process (scripts, benchmarks, tests)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess

import pytest
import requests

from airflow_provider_etelecom.testing import SimulatorProcess

KEY = "proc-key-0123456789"
OA = "4239023413265392134"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_it_serves_is_driven_through_the_control_api_and_stops_cleanly() -> None:
    with SimulatorProcess("--consents", "3", "--seed", "2", api_key=KEY) as sim:
        assert sim.root_url == f"http://127.0.0.1:{sim.port}" and sim.base_url == sim.root_url + "/v1/shop"
        connection = json.loads(sim.connection_json(max_retries=0))
        assert connection == {
            "conn_type": "etelecom",
            "host": sim.base_url,
            "password": KEY,
            "extra": {"max_retries": 0},
        }
        sent = requests.post(
            sim.base_url + ".Zalo/RequestConsent",
            json={"oa_id": OA, "phone": "0912000001", "call_type": "audio", "reason_code": "update_order"},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=5,
        )
        assert sent.status_code == 200, sent.text
        consent_id = sent.json()["id"]
        assert consent_id in {c["id"] for c in sim.control("consents")["consents"]}
        assert sim.reply(consent_id, "P")["reply_status"] == "P"
        counts = sim.count("Zalo/RequestConsent", 200), sim.count(status=200), sim.count("Zalo/RequestConsent", 401)
        assert counts == (1, 1, 0)
        assert sim.control("reset_stats", {}) == {} and sim.count() == 0
        port = sim.port
    assert sim.process.returncode == 0  # SIGTERM: the CLI's clean stop
    assert not _listening(port)
    assert sim.stop() == 0  # idempotent


def test_a_flag_the_cli_refuses_is_an_error_saying_it_exited() -> None:
    sim = SimulatorProcess("--consents", "many", stderr=subprocess.PIPE)
    with pytest.raises(RuntimeError, match="exited with code 2 instead of printing its base URL"):
        sim.start()
    assert sim.process.stderr is not None and "--consents: invalid int value: 'many'" in sim.process.stderr.read()


def test_a_child_that_does_not_stop_is_killed_after_the_stop_timeout() -> None:
    with SimulatorProcess("--consents", "1", stop_timeout=0.1) as sim:
        os.kill(sim.process.pid, signal.SIGSTOP)  # a stopped process cannot handle SIGTERM; SIGKILL still ends it
        assert sim.stop() == -signal.SIGKILL


def test_where_it_listens_is_an_error_before_it_is_started() -> None:
    sim = SimulatorProcess()
    with pytest.raises(RuntimeError, match="not started"):
        _ = sim.base_url
    assert sim.stop() is None
