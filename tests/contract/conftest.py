"""Targets of the contract suite: the simulator always; the real platform when a key is given.

Set ``ETELECOM_CONTRACT_BASE_URL`` (e.g. ``https://api.etelecom.vn/v1/shop``) and
``ETELECOM_CONTRACT_API_KEY`` to run every rule against the real platform too. The platform run is
read-only: it lists consents and calls ``Misc/CurrentAccount``, never ``RequestConsent``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest
import requests

from airflow_provider_etelecom.testing import EtelecomSimulator

BASE_URL_ENV = "ETELECOM_CONTRACT_BASE_URL"
API_KEY_ENV = "ETELECOM_CONTRACT_API_KEY"
SIM_KEY = "contract-key-0123456789"


@dataclass
class Target:
    """Where the rules are checked: a base URL, a key, and the simulator when it is one."""

    name: str
    base_url: str
    api_key: str
    sim: EtelecomSimulator | None = None
    session: requests.Session = field(default_factory=requests.Session)

    def post(
        self,
        method: str,
        body: Any,
        *,
        key: str | None = "",
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> requests.Response:
        """POST to ``{base_url}.{method}``; ``key=None`` sends no Authorization, ``""`` the target's key."""
        sent = {"Content-Type": "application/json", "Accept": "application/json"}
        if key is not None:
            sent["Authorization"] = f"Bearer {key or self.api_key}"
        sent.update(headers or {})
        return self.session.post(
            f"{self.base_url}.{method}",
            data=raw if raw is not None else None,
            json=None if raw is not None else body,
            headers=sent,
            timeout=30,
        )

    def list(self, **body: Any) -> dict[str, Any]:
        """``ListRequestConsent`` that must succeed."""
        response = self.post("Zalo/ListRequestConsent", body)
        assert response.status_code == 200, f"{self.name}: {response.status_code} {response.text[:300]}"
        data: dict[str, Any] = response.json()
        return data


@pytest.fixture(scope="module")
def _simulator() -> Iterator[EtelecomSimulator]:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    end = datetime(2026, 1, 31, tzinfo=timezone.utc)
    with EtelecomSimulator(consents=260, seed=21, api_key=SIM_KEY, start=start, end=end) as sim:
        yield sim


@pytest.fixture(params=["simulator", "platform"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """Each contract test runs once per target; ``platform`` is skipped unless both env vars are set."""
    if request.param == "platform":
        base_url, api_key = os.environ.get(BASE_URL_ENV), os.environ.get(API_KEY_ENV)
        if not base_url or not api_key:
            pytest.skip(f"set {BASE_URL_ENV} and {API_KEY_ENV} to check the real platform")
        target = Target("platform", base_url.rstrip("/"), api_key)
    else:
        sim: EtelecomSimulator = request.getfixturevalue("_simulator")
        target = Target("simulator", sim.base_url, sim.api_key, sim)
    with target.session:
        yield target
