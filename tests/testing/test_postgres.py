"""The throwaway PostgreSQL server of the tests and benchmarks (testing.postgres)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from airflow_provider_etelecom.testing import postgres


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another process holds, as when a parallel worker took the port just picked."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_port_taken_before_the_server_binds_it_is_replaced(busy_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    if postgres.find_binaries() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries not found (CI must install them, see .ci/run)")
        pytest.skip("PostgreSQL server binaries not found")
    picks = iter([busy_port])
    picked: list[int] = []
    free_port = postgres._free_port

    def pick() -> int:
        picked.append(next(picks, None) or free_port())
        return picked[-1]

    monkeypatch.setattr(postgres, "_free_port", pick)
    with postgres.run_postgres() as server:
        assert picked[0] == busy_port and server.port == picked[1] != busy_port
        with socket.create_connection((server.host, server.port), timeout=5):
            pass  # the server listens on the port it reports
