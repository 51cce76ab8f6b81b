"""A real PostgreSQL server for the transfer tests, started on loopback in a temporary data directory.

The server is the Debian package's (``apt-get install postgresql``; ``.ci/run`` installs it, so CI
never skips). ``initdb`` refuses to run as root, so as root the server runs as the ``postgres``
user. Each test gets its own database on the one session server, and SQLite a file of its own.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import pytest

_DATABASES = count(1)


def _binaries() -> str | None:
    """Return the folder of ``initdb`` and ``pg_ctl``: on PATH, else Debian's /usr/lib/postgresql/<v>/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return str(Path(found).resolve().parent)
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda f: int(Path(f).parent.name))
    return folders[-1] if folders else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def connect(self, dbname: str = "postgres") -> Any:
        import psycopg2

        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname=dbname)
        return conn


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Start PostgreSQL on a free loopback port for the session; skip only where it is not installed."""
    folder = _binaries()
    if folder is None:
        reason = "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install -y postgresql"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI must install them, see .ci/run)")
        pytest.skip(reason)
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="etelecom-pg-"))
    if as_postgres:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", _free_port()
    user = "postgres" if as_postgres else os.environ.get("USER", "postgres")
    run = {"check": True, "capture_output": True, "text": True}
    subprocess.run(
        [*as_postgres, f"{folder}/initdb", "-D", str(data), "-U", user, "-A", "trust", "-E", "UTF8", "--no-sync"],
        **run,  # type: ignore[call-overload]
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
    try:
        subprocess.run(
            [*as_postgres, f"{folder}/pg_ctl", "-D", str(data), "-l", str(root / "log"), "-o", options, "-w", "start"],
            **run,  # type: ignore[call-overload]
        )
    except subprocess.CalledProcessError:
        pytest.fail(f"PostgreSQL did not start:\n{(root / 'log').read_text(errors='replace')[-3000:]}")
    try:
        yield PostgresServer("127.0.0.1", port, user)
    finally:
        subprocess.run([*as_postgres, f"{folder}/pg_ctl", "-D", str(data), "-m", "immediate", "stop"], check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_db(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh database, with the Airflow connection ``warehouse`` pointing at it; yields a psycopg2 connection."""
    name = f"test_{os.getpid()}_{next(_DATABASES)}"
    admin = postgres_server.connect()
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    conn_json = {"conn_type": "postgres", "host": postgres_server.host, "port": postgres_server.port}
    conn_json.update({"login": postgres_server.user, "schema": name})
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps(conn_json))
    conn = postgres_server.connect(name)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()
        admin.cursor().execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()
