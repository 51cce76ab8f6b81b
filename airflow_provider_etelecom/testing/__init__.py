"""A local eTelecom Zalo Cloud API simulator for tests, demos and benchmarks (standard library only).

Use it like moto or fakeredis: start it, point the provider's connection at :attr:`EtelecomSimulator.base_url`
with :attr:`EtelecomSimulator.api_key`, and drive consents, time and faults from the test::

    from airflow_provider_etelecom.testing import EtelecomSimulator, FaultConfig

    with EtelecomSimulator(consents=1000, seed=7, api_key="test-key") as sim:
        ...

In another process (benchmarks, a local Airflow, the command line's own tests),
:class:`SimulatorProcess` starts the command line and reads where it listens::

    with SimulatorProcess("--consents", "1000", api_key="test-key") as sim:
        os.environ["AIRFLOW_CONN_ETELECOM_DEFAULT"] = sim.connection_json()

Importing this package imports no Airflow and creates no files. See ``docs/simulator.md``.
"""

from __future__ import annotations

from airflow_provider_etelecom.testing.process import SimulatorProcess
from airflow_provider_etelecom.testing.server import (
    ERROR_BODY_FAULTS,
    FAULT_KINDS,
    EtelecomSimulator,
    FaultConfig,
    ScriptedFault,
    Stats,
)
from airflow_provider_etelecom.testing.store import (
    CALL_TYPES,
    DEFAULT_LIMIT,
    DELIVERY_STATUSES,
    REASON_CODES,
    REPLY_STATUSES,
    STATUSES,
)
from airflow_provider_etelecom.testing.switches import (
    CURSOR_KINDS,
    DATE_FILTER_FIELDS,
    LIMIT_ECHOES,
    MAX_LIMIT,
    SETTINGS,
    SORTS,
    SWITCHES,
    TIME_PRECISIONS,
    PlatformSwitches,
    Switch,
)
from airflow_provider_etelecom.testing.variants import (
    PLATFORM_VARIANT_DESCRIPTIONS,
    PLATFORM_VARIANTS,
    READING_VARIANTS,
)

__all__ = [
    "CALL_TYPES",
    "CURSOR_KINDS",
    "DATE_FILTER_FIELDS",
    "DEFAULT_LIMIT",
    "DELIVERY_STATUSES",
    "ERROR_BODY_FAULTS",
    "FAULT_KINDS",
    "LIMIT_ECHOES",
    "MAX_LIMIT",
    "PLATFORM_VARIANTS",
    "PLATFORM_VARIANT_DESCRIPTIONS",
    "READING_VARIANTS",
    "REASON_CODES",
    "REPLY_STATUSES",
    "SETTINGS",
    "SORTS",
    "STATUSES",
    "SWITCHES",
    "TIME_PRECISIONS",
    "EtelecomSimulator",
    "FaultConfig",
    "PlatformSwitches",
    "ScriptedFault",
    "SimulatorProcess",
    "Stats",
    "Switch",
]
