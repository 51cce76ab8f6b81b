"""Secrets: the API key never leaks, and TLS is on unless plain http is to loopback or explicitly allowed.

The three example DAGs (``etelecom_request_and_wait``, ``etelecom_consents_daily``,
``etelecom_consents_backfill``) are run with ``dag.test()`` against the simulator, whose key is a
recognisable string, and everything they produce is grepped for it: every log record at DEBUG
(caplog, root logger), whatever reached stdout/stderr (Airflow 3's structlog lines), the task log
files under ``AIRFLOW_HOME/logs``, every XCom value and rendered template field in the metadata
database, and the simulator's request log. Exception messages are checked on a refused key. Trigger
kwargs are stored encrypted, so grepping the database for them would prove nothing: a trigger's
``serialize()`` output is checked directly.
"""

from __future__ import annotations

import json
import logging
import os
import runpy
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from airflow_provider_etelecom.client import ClientConfig, EtelecomClient
from airflow_provider_etelecom.exceptions import EtelecomAuthError, EtelecomConfigError
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator
from airflow_provider_etelecom.sensors.consent_replies import ConsentReplySensor
from airflow_provider_etelecom.testing import EtelecomSimulator
from tests.conftest import SECRET_KEY

OA = "4239023413265392134"
PHONE = "0912000444"
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ("etelecom_request_and_wait", "etelecom_consents_daily", "etelecom_consents_backfill")


@pytest.fixture
def etelecom_simulator_options() -> dict[str, object]:
    return {"consents": 300, "seed": 7, "api_key": SECRET_KEY, "auto_reply_after_s": 1}


@pytest.fixture
def everything(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """Return a function giving all text produced so far: logs at DEBUG, stdout/stderr, log files."""
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    def text() -> str:
        captured = capfd.readouterr()
        seen.append(caplog.text + captured.out + captured.err)
        log_files = Path(os.environ["AIRFLOW_HOME"]) / "logs"
        files = [p.read_text(errors="replace") for p in log_files.rglob("*") if p.is_file()]
        return "\n".join(seen + files)

    yield text


def _database_text() -> str:
    from airflow.utils.session import create_session
    from sqlalchemy import text

    chunks = []
    with create_session() as session:
        for query in ("SELECT value FROM xcom", "SELECT rendered_fields FROM rendered_task_instance_fields"):
            chunks += [str(row[0]) for row in session.execute(text(query)).fetchall()]
    return "\n".join(chunks)


def _run_example(name: str) -> Any:
    # Airflow 3's dag.test() re-parses the DAG from the dags folder, so the file is copied there first.
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    shutil.copy(ROOT / "example_dags" / f"{name}.py", path)
    return runpy.run_path(str(path))["dag"].test()


def test_example_dags_leak_the_key_nowhere(
    airflow_db: str,
    etelecom_connection: EtelecomSimulator,
    everything: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = etelecom_connection
    # Airflow 2: unit-test mode names the LocalExecutor, which refuses SQLite; dag.test() runs in-process.
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "SequentialExecutor")
    monkeypatch.setenv("ETELECOM_EXPORT_BASE", tmp_path.as_uri())
    monkeypatch.setenv("ETELECOM_EXAMPLE_POKE_INTERVAL", "1")
    days = sorted({c["created_at"][:10] for c in sim.consents()})
    monkeypatch.setenv("ETELECOM_BACKFILL_START", days[-5])
    monkeypatch.setenv("ETELECOM_BACKFILL_END", days[-3])
    states = {name: str(_run_example(name).state) for name in EXAMPLES}
    assert all("success" in state.lower() for state in states.values()), states
    produced = everything()
    database = _database_text()
    requests_log = json.dumps(sim.requests_log)
    exported = [p for p in tmp_path.rglob("*.jsonl.gz")]
    # Positive controls: what is grepped really holds the runs' output, at DEBUG level too.
    assert len(exported) >= 3, exported  # one daily file, two backfill days
    assert "Exported" in produced and "DEBUG" in produced
    assert sim.stats.count("Zalo/RequestConsent", 200) == 1
    consent = next(c for c in sim.consents() if c["phone"].endswith("912345678"))
    assert consent["id"] in database
    assert "Bearer ***" in requests_log
    for where, text in {"logs": produced, "database": database, "simulator log": requests_log}.items():
        assert SECRET_KEY not in text, f"the API key leaked into the {where}"


def test_a_refused_key_fails_without_showing_it(
    etelecom_connection: EtelecomSimulator, everything: Any, tmp_path: Path
) -> None:
    etelecom_connection.api_key = "some-other-key-0123456789"  # the connection's key is now refused (401)
    op = ListConsentsOperator(task_id="export", output_path=(tmp_path / "x.jsonl").as_uri())
    with pytest.raises(AirflowFailException) as raised:  # a refused key: no Airflow retries
        op.execute({})  # type: ignore[arg-type]
    logging.getLogger("test").exception("task failed", exc_info=raised.value)  # as Airflow logs a failure
    produced = everything()
    assert "401" in produced and "unauthenticated" in produced
    cause = raised.value.__cause__
    assert isinstance(cause, EtelecomAuthError)
    for text in (produced, str(raised.value), repr(raised.value), str(cause), repr(cause.__dict__)):
        assert SECRET_KEY not in text
    with pytest.raises(EtelecomAuthError) as again:
        EtelecomHook().check_consent(oa_id=OA, phone=PHONE)
    assert SECRET_KEY not in str(again.value)


def test_the_deferred_trigger_serializes_without_the_key(etelecom_connection: EtelecomSimulator) -> None:
    consent = EtelecomHook().request_consent(oa_id=OA, phone=PHONE, call_type="audio", reason_code="update_order")
    sensor = ConsentReplySensor(
        task_id="wait", consent_id=consent["id"], phone=PHONE, oa_id=OA, deferrable=True, poke_interval=5, timeout=60
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})  # type: ignore[arg-type]
    path, kwargs = deferred.value.trigger.serialize()
    text = json.dumps([path, kwargs])
    assert SECRET_KEY not in text and "password" not in text and "api_key" not in text
    assert kwargs["etelecom_conn_id"] == "etelecom_default"  # the key is read again from the connection


def test_client_and_hook_reprs_hide_the_key(etelecom_connection: EtelecomSimulator) -> None:
    hook = EtelecomHook()
    for shown in (repr(hook.client), repr(hook.client.config), str(hook.client.config), repr(hook)):
        assert SECRET_KEY not in shown


# -- TLS ------------------------------------------------------------------------------------------------


def test_tls_verification_is_on_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # A CA bundle from the environment (REQUESTS_CA_BUNDLE) replaces True by its path: still verified.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    config = ClientConfig.build(base_url="https://api.etelecom.invalid/v1/shop", api_key=SECRET_KEY)
    with EtelecomClient(config) as client:
        assert client._session.verify is True
    conn = {"conn_type": "etelecom", "host": "https://api.etelecom.invalid/v1/shop", "password": SECRET_KEY}
    monkeypatch.setenv("AIRFLOW_CONN_ETELECOM_TLS", json.dumps(conn))
    hook = EtelecomHook("etelecom_tls")
    assert hook.client._session.verify is True


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080/v1/shop",
        "http://127.0.0.1:1/v1/shop",
        "http://127.0.0.2/v1/shop",
        "http://[::1]:80/v1/shop",
    ],
)
def test_plain_http_to_loopback_is_allowed_quietly(url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    assert ClientConfig.build(base_url=url, api_key=SECRET_KEY).base_url == url
    assert "unencrypted" not in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        "http://api.etelecom.invalid/v1/shop",
        "http://localhost.example.invalid/v1/shop",
        "http://127.0.0.1.nip.io/v1/shop",
        "http://10.0.0.5/v1/shop",
    ],
)
def test_plain_http_elsewhere_needs_the_switch_and_warns(url: str, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(EtelecomConfigError, match="allow_insecure_http") as refused:
        ClientConfig.build(base_url=url, api_key=SECRET_KEY)
    assert SECRET_KEY not in str(refused.value)
    caplog.set_level(logging.WARNING)
    assert ClientConfig.build(base_url=url, api_key=SECRET_KEY, allow_insecure_http=True).base_url == url
    assert "unencrypted" in caplog.text and SECRET_KEY not in caplog.text


def test_the_switch_is_read_from_the_connection_extra(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    for value, allowed in (("true", True), (True, True), ("false", False), (None, False)):
        extra = {} if value is None else {"allow_insecure_http": value}
        conn = {"conn_type": "etelecom", "host": "http://api.etelecom.invalid/v1/shop", "password": SECRET_KEY}
        monkeypatch.setenv("AIRFLOW_CONN_ETELECOM_HTTP", json.dumps({**conn, "extra": extra}))
        hook = EtelecomHook("etelecom_http")
        if allowed:
            assert hook.client.config.base_url.startswith("http://")
        else:
            with pytest.raises(EtelecomConfigError, match="allow_insecure_http"):
                hook.client  # noqa: B018
    assert "unencrypted" in caplog.text
