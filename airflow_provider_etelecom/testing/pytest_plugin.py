"""pytest fixtures for the eTelecom simulator; enable with one line in ``conftest.py``::

    pytest_plugins = ["airflow_provider_etelecom.testing.pytest_plugin"]

Not registered as a ``pytest11`` entry point on purpose: installing the provider must not load a
plugin into every pytest run. Importing this module imports no Airflow and creates no files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_etelecom.testing.server import EtelecomSimulator

CONNECTION_ENV = "AIRFLOW_CONN_ETELECOM_DEFAULT"
DEFAULT_OPTIONS: dict[str, Any] = {"consents": 500, "seed": 7, "api_key": "sim-test-key-0123456789"}


@pytest.fixture
def etelecom_simulator_options() -> dict[str, Any]:
    """Keyword arguments of the :func:`etelecom_simulator`; override this fixture to change them."""
    return dict(DEFAULT_OPTIONS)


@pytest.fixture
def etelecom_simulator(etelecom_simulator_options: dict[str, Any]) -> Iterator[EtelecomSimulator]:
    """Yield a running simulator (fresh per test, so tests never see each other's consents)."""
    options = {**DEFAULT_OPTIONS, **etelecom_simulator_options}
    with EtelecomSimulator(**options) as sim:
        yield sim


@pytest.fixture
def etelecom_connection(
    etelecom_simulator: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EtelecomSimulator]:
    """Point Airflow's ``etelecom_default`` connection at the simulator and yield the simulator.

    The connection is set through ``AIRFLOW_CONN_ETELECOM_DEFAULT`` in Airflow's JSON form, so no
    metadata database and no Airflow import are needed.
    """
    conn = {
        "conn_type": "etelecom",
        "host": etelecom_simulator.base_url,
        "password": etelecom_simulator.api_key,
        "extra": {},  # the account type comes from the base URL's path; a short "shop" would warn on Airflow 3
    }
    monkeypatch.setenv(CONNECTION_ENV, json.dumps(conn))
    yield etelecom_simulator
