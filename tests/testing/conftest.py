"""Fixtures and helpers of the simulator's own tests (real loopback HTTP, plain ``requests``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import requests

from airflow_provider_etelecom.testing import EtelecomSimulator

KEY = "test-key-0123456789"
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
END = datetime(2026, 1, 31, tzinfo=timezone.utc)


def call(
    sim: EtelecomSimulator,
    method: str,
    body: Any = None,
    *,
    key: str | None = KEY,
    session: requests.Session | None = None,
    base: str | None = None,
    timeout: float = 10.0,
) -> requests.Response:
    """POST ``body`` to ``{base}.{method}`` the way the platform expects (JSON, Bearer key)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    http = session or requests
    return http.post(
        f"{base or sim.base_url}.{method}",
        json={} if body is None else body,
        headers=headers,
        timeout=timeout,
    )


def list_page(sim: EtelecomSimulator, session: requests.Session | None = None, **body: Any) -> dict[str, Any]:
    """Call ``ListRequestConsent`` and return the decoded 200 answer."""
    response = call(sim, "Zalo/ListRequestConsent", body, session=session)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def list_all(
    sim: EtelecomSimulator, flt: dict[str, Any] | None = None, sort: str = "", limit: int = 100
) -> list[dict[str, Any]]:
    """Page with ``after`` until the empty page; return every consent in order."""
    out: list[dict[str, Any]] = []
    after = ""
    with requests.Session() as session:
        for _ in range(10_000):
            page = list_page(sim, session, filter=flt or {}, paging={"after": after, "sort": sort, "limit": limit})
            if not page["consents"]:
                assert page["paging"]["next"] == ""
                return out
            out.extend(page["consents"])
            after = page["paging"]["next"]
    raise AssertionError("listing never ended")


def parse(value: str) -> datetime:
    """Parse a wire time the way a Python client would."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
def sim() -> Iterator[EtelecomSimulator]:
    """A running simulator with 350 consents in January 2026 (four pages of 100)."""
    with EtelecomSimulator(consents=350, seed=7, api_key=KEY, start=START, end=END) as simulator:
        yield simulator
