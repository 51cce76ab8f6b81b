"""The connection the README shows runs a task without Airflow's "Skipping masking ... too short" line.

Why that line appeared (read in the venvs' Airflow source): on Airflow 3.3.2, fetching a connection
(``airflow/sdk/execution_time/context.py: _get_connection``) calls ``conn.get_uri()`` for the
secrets cache, which reads ``conn.extra_dejson``, which gives the whole extra dict to
``mask_secret``. ``SecretsMasker.add_mask`` (``airflow/sdk/_shared/secrets_masker``) checks a
string's length *before* it checks whether its key is sensitive, so any extra string shorter than
``[logging] min_length_masked_secret`` (5) warns, once per process: ``"account_type": "shop"``, or
``"timeout": "60"`` written as a string. It happens in Airflow before the hook sees the connection,
so the provider cannot read the extra differently; the documented connections carry no short
string instead (the account type comes from the Base URL's path, shop is the default, numbers are
JSON numbers). Airflow 2.11.2's masker (``airflow/utils/log/secrets_masker.py``) has no length
check at all: the line never appears there, for any extra.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.testing import EtelecomSimulator
from tests.conftest import SECRET_KEY, without_masking_requests
from tests.operators.test_list_consents import load_dag_file, run_dag

ROOT = Path(__file__).resolve().parents[2]
WARNING = "Skipping masking for a secret as it's too short"
EXPORT = re.compile(r"export AIRFLOW_CONN_ETELECOM_DEFAULT='(\{.*?\})'", re.DOTALL)
DOCUMENTED = ("README.md", "docs/getting-started.md")

DAG_SOURCE = """
from datetime import datetime, timezone

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator

with DAG("test_readme_connection", schedule=None, start_date=datetime(2020, 1, 1, tzinfo=timezone.utc)) as dag:
    ListConsentsOperator(task_id="export", max_pages=1)
"""


def documented_connection(page: str) -> dict[str, object]:
    """Return the ``AIRFLOW_CONN_ETELECOM_DEFAULT`` JSON a page tells the reader to export."""
    found = EXPORT.findall((ROOT / page).read_text(encoding="utf-8"))
    assert len(found) == 1, f"{page} should show one AIRFLOW_CONN_ETELECOM_DEFAULT export"
    return dict(json.loads(found[0]))


def masker_warns_for_short_secrets() -> bool:
    """Whether this Airflow warns of the connection's short strings (3.1+: yes; 2.11: no length check;
    3.0: the check is there, but a connection's extra is not given to the masker)."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

    return AIRFLOW_V_3_1_PLUS


@pytest.fixture
def first_warning_of_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-arm the masker's warn-once flag, so a warning given by an earlier test cannot hide one."""
    import importlib

    for module in (
        "airflow.sdk._shared.secrets_masker.secrets_masker",
        "airflow._shared.secrets_masker.secrets_masker",
    ):
        try:
            masker = importlib.import_module(module).SecretsMasker
        except ImportError:
            continue
        monkeypatch.setattr(masker, "_has_warned_short_secret", False)


@pytest.fixture
def produced(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], first_warning_of_the_process: None
) -> Iterator[Callable[[], str]]:
    """Return a function giving every log record and every stdout/stderr line so far."""
    caplog.set_level(logging.INFO)
    yield lambda: caplog.text + "".join(capfd.readouterr())


@pytest.fixture
def sequential_executor_on_airflow_2(monkeypatch: pytest.MonkeyPatch) -> None:
    # Airflow 2: unit-test mode names the LocalExecutor, which refuses SQLite; dag.test() runs in-process.
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "SequentialExecutor")


def point_at(sim: EtelecomSimulator, connection: dict[str, object]) -> dict[str, object]:
    """The same connection, aimed at the simulator: only the scheme and host and the key change."""
    host = str(connection.get("host") or "https://api.etelecom.vn/v1/shop")
    assert host.startswith("https://api.etelecom.vn"), host
    return {**connection, "host": host.replace("https://api.etelecom.vn", sim.root_url), "password": sim.api_key}


@pytest.mark.parametrize(
    ("source", "warns_on_airflow_3"),
    [
        ("README.md", False),
        ("docs/getting-started.md", False),
        # Positive control: the README's connection before this fix, through the same task run.
        ({"conn_type": "etelecom", "extra": {"account_type": "shop", "timeout": 60}}, True),
    ],
    ids=["README", "getting-started", "control: account_type shop"],
)
def test_a_task_with_the_documented_connection_logs_no_masking_warning(
    source: str | dict[str, object],
    warns_on_airflow_3: bool,
    airflow_db: str,
    etelecom_simulator: EtelecomSimulator,
    produced: Callable[[], str],
    sequential_executor_on_airflow_2: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connection = documented_connection(source) if isinstance(source, str) else source
    monkeypatch.setenv("AIRFLOW_CONN_ETELECOM_DEFAULT", json.dumps(point_at(etelecom_simulator, connection)))
    dag_run = run_dag(load_dag_file("test_readme_connection", DAG_SOURCE), datetime.now(timezone.utc))
    text = produced()
    assert "success" in str(dag_run.state).lower(), text[-3000:]
    assert etelecom_simulator.stats.count("Zalo/ListRequestConsent", 200) == 1  # the task used the connection
    assert "export" in text  # the task's own log lines were captured
    assert (WARNING in text) is (warns_on_airflow_3 and masker_warns_for_short_secrets())
    assert SECRET_KEY not in without_masking_requests(text)


@pytest.mark.parametrize("page", DOCUMENTED)
def test_the_documented_extras_hold_no_short_string(page: str) -> None:
    extra = documented_connection(page).get("extra") or {}
    assert isinstance(extra, dict)
    assert extra, f"{page} should show the optional settings"
    short = {key: value for key, value in extra.items() if isinstance(value, str) and len(value) < 5}
    assert short == {}


@pytest.mark.parametrize(
    ("extra", "warns_on_airflow_3"),
    [
        ({"timeout": 60, "max_retries": 5, "max_retry_time": 300, "allow_insecure_http": False}, False),
        ({"account_type": "partner"}, False),
        ({"timeout": "60"}, True),
        ({"allow_insecure_http": "true"}, True),
    ],
)
def test_only_short_strings_in_the_extra_warn(
    extra: dict[str, object],
    warns_on_airflow_3: bool,
    etelecom_simulator: EtelecomSimulator,
    produced: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kind = extra.get("account_type", "shop")
    connection = {"conn_type": "etelecom", "host": f"https://api.etelecom.vn/v1/{kind}", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_ETELECOM_DEFAULT", json.dumps(point_at(etelecom_simulator, connection)))
    ok, message = EtelecomHook().test_connection()
    assert ok, message
    assert (WARNING in produced()) is (warns_on_airflow_3 and masker_warns_for_short_secrets())
