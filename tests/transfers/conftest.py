"""A real PostgreSQL server for the transfer tests, started on loopback in a temporary data directory.

The server is the Debian package's (``apt-get install postgresql``; ``.ci/run`` installs it, so CI
never skips). ``initdb`` refuses to run as root, so as root the server runs as the ``postgres``
user. Each test gets its own database on the one session server, and SQLite a file of its own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from itertools import count
from typing import Any

import pytest

from airflow_provider_etelecom.testing.postgres import PostgresNotInstalledError, PostgresServer, run_postgres

_DATABASES = count(1)


def connect(server: PostgresServer, dbname: str = "postgres") -> Any:
    import psycopg2

    return psycopg2.connect(host=server.host, port=server.port, user=server.user, dbname=dbname)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Start PostgreSQL on a free loopback port for the session; skip only where it is not installed."""
    try:
        with run_postgres() as server:
            yield server
    except PostgresNotInstalledError as error:
        if os.environ.get("CI"):
            pytest.fail(f"{error} (CI must install them, see .ci/run)")
        pytest.skip(str(error))


@pytest.fixture
def postgres_db(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh database, with the Airflow connection ``warehouse`` pointing at it; yields a psycopg2 connection."""
    name = f"test_{os.getpid()}_{next(_DATABASES)}"
    admin = connect(postgres_server)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    conn_json = {"conn_type": "postgres", "host": postgres_server.host, "port": postgres_server.port}
    conn_json.update({"login": postgres_server.user, "schema": name})
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps(conn_json))
    conn = connect(postgres_server, name)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()
        admin.cursor().execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()
