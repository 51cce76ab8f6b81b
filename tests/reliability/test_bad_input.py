"""Bad input: every public parameter of the hook, the operators, the sensor and the connection.

One table (``tests.reliability.scenarios.bad_inputs``, also counted by ``python -m benchmarks.reliability``)
of wrong enums, wrong types, int64 overflow, malformed or naive dates, an inverted window, page sizes 0
and 101, empty or whitespace keys, base URLs without scheme or with a ``.Zalo`` suffix, an unknown connection id and
an output path with an unknown scheme. Each must be refused with an error that names the parameter,
shows the bad value (phones masked: they are personal data; the key never) and says what is allowed,
before a single request reaches the simulator.
"""

from __future__ import annotations

import pytest

from airflow_provider_etelecom.testing import EtelecomSimulator
from tests.conftest import SECRET_KEY
from tests.reliability.scenarios import BadInput, bad_inputs, run_bad_input

CASES = bad_inputs()


@pytest.fixture
def etelecom_simulator_options() -> dict[str, object]:
    return {"consents": 10, "seed": 7, "api_key": SECRET_KEY}


def _param(case: BadInput) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else []
    return pytest.param(case, id=case.name, marks=marks)


def test_the_table_covers_every_public_surface() -> None:
    surfaces = {case.name.split(".")[0] for case in CASES}
    assert surfaces == {"list", "find", "check", "request", "list_op", "request_op", "sensor", "conn", "hook"}
    kinds = " ".join(case.name for case in CASES)
    for kind in ("enum", "type", "overflow", "malformed", "naive", "after", "zero", "101", "empty", "whitespace"):
        assert kind in kinds, kind
    assert {"conn.host.no_scheme", "conn.host.zalo_suffix", "conn.id.unknown", "list_op.output_path.scheme"} <= {
        case.name for case in CASES
    }


@pytest.mark.parametrize("case", [_param(case) for case in CASES])
def test_bad_input_is_refused_clearly_before_any_request(case: BadInput, etelecom_simulator: EtelecomSimulator) -> None:
    assert run_bad_input(case, etelecom_simulator) == []
