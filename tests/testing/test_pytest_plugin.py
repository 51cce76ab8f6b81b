"""The pytest plugin's fixtures (the suite's conftest enables the plugin the way a user would)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import requests

from airflow_provider_etelecom.testing import EtelecomSimulator
from airflow_provider_etelecom.testing.pytest_plugin import CONNECTION_ENV, DEFAULT_OPTIONS

pytest_plugins = ["pytester"]


def test_etelecom_simulator_fixture_is_running(etelecom_simulator: EtelecomSimulator) -> None:
    assert etelecom_simulator.running
    headers = {"Authorization": f"Bearer {etelecom_simulator.api_key}"}
    response = requests.post(etelecom_simulator.base_url + ".Misc/CurrentAccount", json={}, headers=headers, timeout=5)
    assert response.status_code == 200
    assert len(etelecom_simulator.consents()) == 500


def test_etelecom_connection_sets_the_airflow_env_var(etelecom_connection: EtelecomSimulator) -> None:
    conn = json.loads(os.environ[CONNECTION_ENV])
    assert conn == {
        "conn_type": "etelecom",
        "host": etelecom_connection.base_url,
        "password": etelecom_connection.api_key,
        "extra": {},
    }


def test_default_options() -> None:
    assert DEFAULT_OPTIONS == {"consents": 500, "seed": 7, "api_key": "sim-test-key-0123456789"}


def test_plugin_in_a_fresh_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    monkeypatch.delenv(CONNECTION_ENV, raising=False)
    pytester.makeconftest(
        """
        import pytest
        pytest_plugins = ["airflow_provider_etelecom.testing.pytest_plugin"]

        @pytest.fixture
        def etelecom_simulator_options():
            return {"consents": 42, "seed": 3}
        """
    )
    pytester.makepyfile(
        """
        import json, os

        def test_default_key(etelecom_simulator):
            assert etelecom_simulator.api_key == "sim-test-key-0123456789"
            assert len(etelecom_simulator.consents()) == 42

        def test_connection(etelecom_connection):
            conn = json.loads(os.environ["AIRFLOW_CONN_ETELECOM_DEFAULT"])
            assert conn["host"] == etelecom_connection.base_url

        def test_env_restored():
            assert "AIRFLOW_CONN_ETELECOM_DEFAULT" not in os.environ
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
