"""Targets of the contract suite: the simulator always; the real platform when a key is given.

Set ``ETELECOM_CONTRACT_BASE_URL`` (e.g. ``https://api.etelecom.vn/v1/shop``) and
``ETELECOM_CONTRACT_API_KEY`` to run every rule against the real platform too. The platform run is
read-only: it lists consents and calls ``Misc/CurrentAccount``, never ``RequestConsent``, except the
one test of the behaviours that need a fresh consent (listing lag, the two clocks, a 409 for a pending
request), which sends at most two (charged) consent requests to your phone, and only when
``ETELECOM_CONTRACT_OA_ID`` and ``ETELECOM_CONTRACT_PHONE`` (your own phone) are set too.
``ETELECOM_CONTRACT_CURSOR_WAIT`` (seconds, default 65) is how long the cursor expiry detector keeps
a cursor on the platform.

A :class:`Target` is the package's :class:`~airflow_provider_etelecom.contract.probe.Probe` (the
detectors of ``python -m airflow_provider_etelecom.contract`` are the ones tested here) with the
simulator it talks to, when it is one. The tests of ``test_unknowns.py`` *detect* what the platform
does about each unconfirmed behaviour; what they find on the platform is printed at the end of the
run ("eTelecom platform findings") and recorded as test properties (``--junitxml``). On the
simulator side they run once per relevant
:data:`~airflow_provider_etelecom.testing.PLATFORM_VARIANTS` entry, proving each detector finds the
variant the simulator was started with.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_etelecom.contract.probe import Probe
from airflow_provider_etelecom.contract.runner import MAX_CONSENT_REQUESTS
from airflow_provider_etelecom.testing import PLATFORM_VARIANTS, EtelecomSimulator
from tests.conftest import PLATFORM_FINDING

BASE_URL_ENV = "ETELECOM_CONTRACT_BASE_URL"
API_KEY_ENV = "ETELECOM_CONTRACT_API_KEY"
OA_ID_ENV = "ETELECOM_CONTRACT_OA_ID"
PHONE_ENV = "ETELECOM_CONTRACT_PHONE"
CURSOR_WAIT_ENV = "ETELECOM_CONTRACT_CURSOR_WAIT"
SIM_KEY = "contract-key-0123456789"
PLATFORM = "platform"
SIM_START = datetime(2026, 1, 1, tzinfo=timezone.utc)
SIM_END = datetime(2026, 1, 31, tzinfo=timezone.utc)
#: Enough for two pages in one second under ``second_past_a_page`` (30%: 180) and six pages in all.
SIM_CONSENTS = 600


class Target(Probe):
    """Where the rules are checked: a :class:`Probe` of a base URL and key, and the simulator when it is one.

    :param variant: the :data:`PLATFORM_VARIANTS` name the simulator was started with (``None`` for the platform).
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str,
        sim: EtelecomSimulator | None = None,
        variant: str | None = None,
        consent_requests: int = 0,
    ) -> None:
        super().__init__(base_url, api_key, name=name, consent_requests=consent_requests)
        self.sim = sim
        self.variant = variant


def _simulator_for(variant: str) -> EtelecomSimulator:
    kwargs: dict[str, Any] = dict(PLATFORM_VARIANTS[variant])
    return EtelecomSimulator(consents=SIM_CONSENTS, seed=21, api_key=SIM_KEY, start=SIM_START, end=SIM_END, **kwargs)


@pytest.fixture(scope="module")
def _simulator() -> Iterator[EtelecomSimulator]:
    with _simulator_for("defaults") as sim:
        yield sim


def _platform_target() -> Target:
    base_url, api_key = os.environ.get(BASE_URL_ENV), os.environ.get(API_KEY_ENV)
    if not base_url or not api_key:
        pytest.skip(f"set {BASE_URL_ENV} and {API_KEY_ENV} to check the real platform")
    sends = MAX_CONSENT_REQUESTS if os.environ.get(OA_ID_ENV) and os.environ.get(PHONE_ENV) else 0
    return Target(PLATFORM, base_url.rstrip("/"), api_key, consent_requests=sends)


@pytest.fixture(params=["simulator", PLATFORM])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """Each contract test runs once per target; ``platform`` is skipped unless both env vars are set."""
    if request.param == PLATFORM:
        target = _platform_target()
    else:
        sim: EtelecomSimulator = request.getfixturevalue("_simulator")
        target = Target("simulator", sim.base_url, sim.api_key, sim)
    with target:
        yield target


@pytest.fixture
def unknown_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """A simulator started with the ``PLATFORM_VARIANTS`` entry named by the parameter, or the platform.

    Parametrise it indirectly with :func:`detects`.
    """
    if request.param == PLATFORM:
        with _platform_target() as target:
            yield target
        return
    with (
        _simulator_for(request.param) as sim,
        Target(
            f"simulator[{request.param}]",
            sim.base_url,
            sim.api_key,
            sim,
            variant=request.param,
            consent_requests=MAX_CONSENT_REQUESTS,
        ) as target,
    ):
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
