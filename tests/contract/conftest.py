"""Targets of the contract suite: the simulator always; the real platform when a key is given.

Set ``ETELECOM_CONTRACT_BASE_URL`` (e.g. ``https://api.etelecom.vn/v1/shop``) and
``ETELECOM_CONTRACT_API_KEY`` to run every rule against the real platform too. The platform run is
read-only: it lists consents and calls ``Misc/CurrentAccount``, never ``RequestConsent``, except the
listing-lag measurement, which sends exactly one (charged) consent request and only when
``ETELECOM_CONTRACT_OA_ID`` and ``ETELECOM_CONTRACT_PHONE`` (your own phone) are set too.

The tests of ``test_unknowns.py`` *detect* what the platform does about each unconfirmed behaviour;
what they find on the platform is printed at the end of the run ("eTelecom platform findings") and
recorded as test properties (``--junitxml``). On the simulator side they run once per relevant
:data:`~airflow_provider_etelecom.testing.PLATFORM_VARIANTS` entry, proving each detector finds the
variant the simulator was started with.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest
import requests

from airflow_provider_etelecom.testing import PLATFORM_VARIANTS, EtelecomSimulator
from tests.conftest import PLATFORM_FINDING

BASE_URL_ENV = "ETELECOM_CONTRACT_BASE_URL"
API_KEY_ENV = "ETELECOM_CONTRACT_API_KEY"
OA_ID_ENV = "ETELECOM_CONTRACT_OA_ID"
PHONE_ENV = "ETELECOM_CONTRACT_PHONE"
SIM_KEY = "contract-key-0123456789"
PLATFORM = "platform"
SIM_START = datetime(2026, 1, 1, tzinfo=timezone.utc)
SIM_END = datetime(2026, 1, 31, tzinfo=timezone.utc)


@dataclass
class Target:
    """Where the rules are checked: a base URL, a key, and the simulator when it is one."""

    name: str
    base_url: str
    api_key: str
    sim: EtelecomSimulator | None = None
    session: requests.Session = field(default_factory=requests.Session)
    variant: str | None = None
    """The :data:`PLATFORM_VARIANTS` name the simulator was started with (``None`` for the platform)."""

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


def _simulator_for(variant: str) -> EtelecomSimulator:
    kwargs: dict[str, Any] = dict(PLATFORM_VARIANTS[variant])
    return EtelecomSimulator(consents=260, seed=21, api_key=SIM_KEY, start=SIM_START, end=SIM_END, **kwargs)


@pytest.fixture(scope="module")
def _simulator() -> Iterator[EtelecomSimulator]:
    with _simulator_for("defaults") as sim:
        yield sim


def _platform_target() -> Target:
    base_url, api_key = os.environ.get(BASE_URL_ENV), os.environ.get(API_KEY_ENV)
    if not base_url or not api_key:
        pytest.skip(f"set {BASE_URL_ENV} and {API_KEY_ENV} to check the real platform")
    return Target(PLATFORM, base_url.rstrip("/"), api_key)


@pytest.fixture(params=["simulator", PLATFORM])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """Each contract test runs once per target; ``platform`` is skipped unless both env vars are set."""
    if request.param == PLATFORM:
        target = _platform_target()
    else:
        sim: EtelecomSimulator = request.getfixturevalue("_simulator")
        target = Target("simulator", sim.base_url, sim.api_key, sim)
    with target.session:
        yield target


@pytest.fixture
def unknown_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """A simulator started with the ``PLATFORM_VARIANTS`` entry named by the parameter, or the platform.

    Parametrise it indirectly with :func:`detects`.
    """
    if request.param == PLATFORM:
        target = _platform_target()
        with target.session:
            yield target
        return
    with _simulator_for(request.param) as sim:
        target = Target(f"simulator[{request.param}]", sim.base_url, sim.api_key, sim, variant=request.param)
        with target.session:
            yield target


def detects(*variants: str) -> pytest.MarkDecorator:
    """Run a detector test on a simulator per variant, then on the real platform."""
    return pytest.mark.parametrize("unknown_target", [*variants, PLATFORM], indirect=True)


Report = Callable[[Target, str, str], None]


@pytest.fixture
def report(record_property: Callable[[str, object], None]) -> Report:
    """Record what a detector found: a test property always, a summary line for the real platform."""

    def _report(target: Target, unknown: str, finding: str) -> None:
        record_property(unknown, finding)
        line = f"{target.name}: {unknown}: {finding}"
        print(line)
        if target.sim is None:
            record_property(PLATFORM_FINDING, line)  # printed at the end of the run by tests/conftest.py

    return _report
