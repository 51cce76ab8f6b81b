"""Test set-up shared by the whole suite.

Airflow reads ``AIRFLOW_HOME`` when it is first imported, so the throwaway home is set here, at
import time, before any test module imports Airflow; the metadata database is created once per
session, and only for the tests that need it (``airflow_db`` fixture, or any ``dag.test()``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

_HOME = tempfile.mkdtemp(prefix="etelecom-airflow-home-")
os.environ["AIRFLOW_HOME"] = _HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", os.path.join(_HOME, "dags"))
os.environ.pop("AIRFLOW_CONN_ETELECOM_DEFAULT", None)

pytest_plugins = ["airflow_provider_etelecom.testing.pytest_plugin"]

#: A recognisable key: long enough for Airflow's secrets masker (it skips secrets under 5 chars),
#: and easy to grep for in logs, exceptions and XComs.
SECRET_KEY = "etl-SECRET-key-7f3a9c1e5b"


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[str]:
    """Create Airflow's metadata database once per session (SQLite in the throwaway home)."""
    from airflow.utils import db

    db.resetdb()
    yield _HOME


@pytest.fixture
def etelecom_simulator_options() -> dict[str, object]:
    """Simulator settings for the suite: a recognisable key, a small data set."""
    return {"consents": 500, "seed": 7, "api_key": SECRET_KEY}
