"""A throwaway PostgreSQL server on loopback, for tests and benchmarks (standard library only).

Uses the server binaries of the machine (Debian's ``postgresql`` package puts them in
``/usr/lib/postgresql/<version>/bin``). ``initdb`` refuses to run as root, so as root the server
runs as the ``postgres`` user, in a temporary data directory owned by it.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PostgresNotInstalledError", "PostgresServer", "find_binaries", "run_postgres"]


class PostgresNotInstalledError(RuntimeError):
    """``initdb``/``pg_ctl`` are not on this machine."""


@dataclass(frozen=True)
class PostgresServer:
    """Where the server listens; every database trusts local connections (no password)."""

    host: str
    port: int
    user: str


def find_binaries() -> str | None:
    """Return the folder of ``initdb`` and ``pg_ctl``: on PATH, else the newest /usr/lib/postgresql/<v>/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return str(Path(found).resolve().parent)
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda f: int(Path(f).parts[-3]))
    return str(Path(folders[-1]).parent) if folders else None


#: Starts tried, each on a newly picked port, when the picked port was taken before the server bound it.
_START_ATTEMPTS = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def run_postgres() -> Iterator[PostgresServer]:
    """Start a server on a free loopback port (fsync off: data is thrown away), stop and delete it after.

    :raises PostgresNotInstalledError: when the binaries are missing (``apt-get install postgresql``).
    :raises RuntimeError: when the server does not start (with the end of its log).
    """
    folder = find_binaries()
    if folder is None:
        raise PostgresNotInstalledError(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install -y postgresql"
        )
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="etelecom-pg-"))
    if as_postgres:
        shutil.chown(root, "postgres", "postgres")
    data, log = root / "data", root / "log"
    user = "postgres" if as_postgres else os.environ.get("USER", "postgres")
    try:
        subprocess.run(
            [*as_postgres, f"{folder}/initdb", "-D", str(data), "-U", user, "-A", "trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
        )
        try:
            for attempt in range(1, _START_ATTEMPTS + 1):
                # The port is free when picked, but another process (a parallel test worker starting
                # its own server) may take it before the server binds it: then pick another one.
                port = _free_port()
                log.unlink(missing_ok=True)  # this attempt's log only
                options = (
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
                    " -c lc_messages=C"  # the log in English: "could not bind" is matched below
                )
                start = [*as_postgres, f"{folder}/pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w"]
                if subprocess.run([*start, "start"], capture_output=True, check=False).returncode == 0:
                    break
                text = log.read_text(errors="replace") if log.exists() else ""
                if "could not bind" not in text or attempt == _START_ATTEMPTS:
                    raise RuntimeError(f"PostgreSQL did not start:\n{text[-3000:]}")
            yield PostgresServer("127.0.0.1", port, user)
        finally:
            # Also after a failed start: a server still starting when pg_ctl gave up waiting would
            # outlive its folder (a server that never started makes this a no-op).
            subprocess.run(
                [*as_postgres, f"{folder}/pg_ctl", "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                check=False,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
