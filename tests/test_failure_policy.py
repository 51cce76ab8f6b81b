"""The retry policy in real Airflow task runs (``dag.test()``, ``retries=2``, ``retry_delay=0``).

Every failure a retry cannot fix ends after one try with a message naming what to fix; a
transient outage uses all three tries; storage that refuses its credentials gets exactly one
retry; ``retry_permanent_errors=True`` hands a permanent failure back to Airflow's retries.
"""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_etelecom.client import ClientConfig, EtelecomClient
from airflow_provider_etelecom.client.errors import error_from_response
from airflow_provider_etelecom.exceptions import (
    EtelecomConfigError,
    EtelecomConsentNotFoundError,
    EtelecomConsentOutcomeError,
    EtelecomOutputError,
    EtelecomPagingError,
    EtelecomStoppedError,
    EtelecomTransientError,
    EtelecomValidationError,
    FailureKind,
)
from airflow_provider_etelecom.failure_policy import classify_failure, failure_policy
from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator
from airflow_provider_etelecom.operators.request_consent import RequestConsentOperator
from airflow_provider_etelecom.sensors.consent_replies import ConsentRepliesSensor, ConsentReplySensor
from airflow_provider_etelecom.testing import EtelecomSimulator
from tests.conftest import without_masking_requests
from tests.operators.test_list_consents import load_dag_file, run_dag

LIST = "Zalo/ListRequestConsent"
OA = "4239023413265392134"
PHONE = "0912000333"

DAG_SOURCE = """
from datetime import datetime, timedelta, timezone

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator
from airflow_provider_etelecom.operators.request_consent import RequestConsentOperator
from airflow_provider_etelecom.sensors.consent_replies import ConsentRepliesSensor, ConsentReplySensor

with DAG(
    {dag_id!r},
    schedule=None,
    start_date=datetime(2020, 1, 1, tzinfo=timezone.utc),
    params={{"phone": "12"}},
    default_args={{"retries": 2, "retry_delay": timedelta(0)}},
) as dag:
{tasks}
"""

#: One independent task per class of failure.
FAILURES_TASKS = """
    ListConsentsOperator(task_id="wrong_key", etelecom_conn_id="etelecom_wrong_key")
    ListConsentsOperator(
        task_id="wrong_key_retried", etelecom_conn_id="etelecom_wrong_key", retry_permanent_errors=True
    )
    ListConsentsOperator(task_id="bad_parameter", phone="{{{{ params.phone }}}}")
    ListConsentsOperator(task_id="bad_connection", etelecom_conn_id="etelecom_bad_config")
    ListConsentsOperator(task_id="unwritable_path", output_path={unwritable!r})
    ListConsentsOperator(
        task_id="missing_bucket", output_path="s3://no-such-bucket-e11/c.jsonl", output_conn_id="aws_test"
    )
    ListConsentsOperator(task_id="outage", etelecom_conn_id="etelecom_down")
    RequestConsentOperator(
        task_id="request_wrong_key", etelecom_conn_id="etelecom_wrong_key", oa_id={oa!r}, phone={phone!r},
        call_type="audio", reason_code="update_order",
    )
    ConsentReplySensor(
        task_id="wait_one_wrong_key", etelecom_conn_id="etelecom_wrong_key", consent_id="1", oa_id={oa!r},
        phone={phone!r}, poke_interval=1, timeout=30,
    )
    ConsentRepliesSensor(
        task_id="wait_all_wrong_key", etelecom_conn_id="etelecom_wrong_key", consent_ids=["1"], oa_id={oa!r},
        poke_interval=1, timeout=30,
    )
"""


@pytest.fixture
def down_port() -> Iterator[int]:
    """A loopback port nothing listens on, held for the test: bound, never listening, so a
    connection is refused and no other process (a parallel test worker) can take it meanwhile."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])


def _set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "etelecom", **fields}))


@pytest.fixture(autouse=True)
def sequential_executor_on_airflow_2(monkeypatch: pytest.MonkeyPatch) -> None:
    # Airflow 2's dependency checks load the configured executor; unit-test mode names the
    # LocalExecutor, which refuses SQLite. dag.test() runs tasks in-process whatever it names.
    from airflow.providers.common.compat.sdk import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "SequentialExecutor")


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """Everything the task runs logged (stdlib logging, and Airflow 3's structlog on stdout/stderr)."""
    caplog.set_level(logging.INFO)

    def text() -> str:
        out, err = capfd.readouterr()
        return caplog.text + out + err

    yield text


def _run(dag_id: str, tasks: str) -> Any:
    from datetime import datetime, timezone

    dag = load_dag_file(dag_id, DAG_SOURCE.format(dag_id=dag_id, tasks=tasks))
    return run_dag(dag, datetime(2026, 1, 1, tzinfo=timezone.utc))


def _one_line_messages(text: str) -> str:
    """``text`` with each failure's message on one line, as Airflow 3.1+ and 2.11 print it.

    Airflow 3.0's ``dag.test()`` prints a failed task's exception through rich, its message wrapped
    at 100 columns and ended by a blank line. A line broken between words keeps its trailing space;
    a word longer than the width (a path) is cut without one: the pieces are joined as they are.
    """
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS

    if not AIRFLOW_V_3_0_PLUS or AIRFLOW_V_3_1_PLUS:
        return text
    lines: list[str] = []
    in_message = False
    for line in re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines():
        if in_message and line.strip():
            lines[-1] += line
            continue
        in_message = re.match(r"\w+(Exception|Error): ", line) is not None
        lines.append(line)
    return "\n".join(lines)


def _tries(dag_run: Any) -> dict[str, tuple[str, int]]:
    return {ti.task_id: (str(ti.state), ti.try_number) for ti in dag_run.get_task_instances()}


def test_each_failure_class_in_a_real_task_run(
    airflow_db: str,
    etelecom_connection: EtelecomSimulator,
    s3_bucket: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    captured: Any,
    down_port: int,
) -> None:
    sim = etelecom_connection
    _set_connection(monkeypatch, "etelecom_wrong_key", host=sim.base_url, password="etl-WRONG-key-0123456789")
    _set_connection(
        monkeypatch, "etelecom_bad_config", host=sim.base_url, password=sim.api_key, extra={"timeout": "soon"}
    )
    _set_connection(
        monkeypatch,
        "etelecom_down",
        host=f"http://127.0.0.1:{down_port}/v1/shop",
        password=sim.api_key,
        extra={"max_retries": 0},
    )
    blocker = tmp_path / "a-regular-file"
    blocker.write_text("not a folder\n")
    unwritable = f"file://{blocker}/exports/c.jsonl"
    tasks = FAILURES_TASKS.format(unwritable=unwritable, oa=OA, phone=PHONE)

    dag_run = _run("test_failure_policy_classes", tasks)

    assert _tries(dag_run) == {
        "wrong_key": ("failed", 1),
        "wrong_key_retried": ("failed", 3),
        "bad_parameter": ("failed", 1),
        "bad_connection": ("failed", 1),
        "unwritable_path": ("failed", 1),
        "missing_bucket": ("failed", 1),
        "outage": ("failed", 3),
        "request_wrong_key": ("failed", 1),
        "wait_one_wrong_key": ("failed", 1),
        "wait_all_wrong_key": ("failed", 1),
    }
    # One refused request per try: the connection was read again, held the same key, and the
    # same key was not sent twice. No RequestConsent reached the platform with a valid key.
    assert sim.stats.count(status=401) == 1 + 3 + 1 + 1 + 1
    assert sim.stats.count(method="Zalo/RequestConsent", status=200) == 0
    # Only missing_bucket listed anything (its one try: the whole listing, to the empty page); the
    # others failed before any request.
    assert sim.stats.count(method=LIST, status=200) == requests_to_list_everything(sim)
    text = _one_line_messages(captured())
    for task_id, fix in [
        ("ListConsentsOperator wrong_key", "Fix the API key (the Password field) of connection 'etelecom_wrong_key'"),
        ("ListConsentsOperator bad_parameter", "phone"),
        ("ListConsentsOperator bad_connection", "Connection 'etelecom_bad_config': The connection's timeout='soon'"),
        ("ListConsentsOperator unwritable_path", f"output_path={unwritable!r}"),
        ("ListConsentsOperator missing_bucket", "output_path='s3://no-such-bucket-e11/c.jsonl'"),
        ("RequestConsentOperator request_wrong_key", "Password field) of connection 'etelecom_wrong_key'"),
        ("ConsentReplySensor wait_one_wrong_key", "Password field) of connection 'etelecom_wrong_key'"),
        ("ConsentRepliesSensor wait_all_wrong_key", "Password field) of connection 'etelecom_wrong_key'"),
    ]:
        lines = [line for line in text.splitlines() if f"{task_id}: " in line]
        assert lines, f"no failure message for {task_id}"
        assert any(fix in line and "Not retried" in line for line in lines), (task_id, lines[:2])
    assert "does not exist" in text  # the missing bucket, in one line rather than s3fs's traceback
    assert "etl-WRONG-key-0123456789" not in without_masking_requests(text)


def requests_to_list_everything(sim: EtelecomSimulator) -> int:
    """The requests one export of every consent costs a fresh client (pages, probes, the empty page)."""
    before = sim.stats.count(method=LIST, status=200)
    with EtelecomClient(ClientConfig.build(base_url=sim.base_url, api_key=sim.api_key)) as client:
        assert sum(1 for _ in client.iter_consents()) == len(sim.consents())
    return sim.stats.count(method=LIST, status=200) - before


def test_storage_refusing_credentials_gets_exactly_one_retry(
    airflow_db: str,
    etelecom_connection: EtelecomSimulator,
    s3_bucket: Any,
    monkeypatch: pytest.MonkeyPatch,
    captured: Any,
) -> None:
    import moto.settings

    _, bucket = s3_bucket
    # moto checks signatures from now on; the connection's access key is unknown to it: a 403
    # InvalidAccessKeyId, as S3 answers while a role's credentials are being replaced.
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    tasks = f"""
    ListConsentsOperator(task_id="denied", output_path="s3://{bucket}/c.jsonl", output_conn_id="aws_test")
"""
    dag_run = _run("test_failure_policy_denied_storage", tasks)
    assert _tries(dag_run) == {"denied": ("failed", 2)}
    listed = etelecom_connection.stats.count(method=LIST, status=200)
    assert listed == 2 * requests_to_list_everything(etelecom_connection)  # two whole tries, not three
    text = captured()
    assert "output_conn_id='aws_test'" in text
    assert "Refused again on try 2" in text


# -- the helper itself, without a task run -------------------------------------------------------


def test_opt_in_must_be_a_bool() -> None:
    with pytest.raises(EtelecomValidationError) as raised:
        ListConsentsOperator(task_id="export", retry_permanent_errors="yes")  # type: ignore[arg-type]
    assert raised.value.parameter == "retry_permanent_errors"
    for build in (
        lambda: RequestConsentOperator(
            task_id="r", oa_id=OA, phone=PHONE, call_type="audio", reason_code="update_order", retry_permanent_errors=1
        ),
        lambda: ConsentReplySensor(task_id="w", consent_id="1", oa_id=OA, phone=PHONE, retry_permanent_errors=None),
        lambda: ConsentRepliesSensor(task_id="w", consent_ids=["1"], retry_permanent_errors="false"),
    ):
        with pytest.raises(EtelecomValidationError, match="retry_permanent_errors"):
            build()


def test_other_exceptions_pass_through_untouched() -> None:
    from airflow.providers.common.compat.sdk import AirflowSkipException

    task = SimpleNamespace(task_id="t", retry_permanent_errors=False)
    for error in (AirflowSkipException("skip"), KeyError("bug"), KeyboardInterrupt()):
        with pytest.raises(type(error)) as raised, failure_policy(task, {}):
            raise error
        assert raised.value is error


# -- the decision itself ------------------------------------------------------------------------

PERMANENT, CREDENTIALS, TRANSIENT = FailureKind.PERMANENT, FailureKind.CREDENTIALS, FailureKind.TRANSIENT


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (EtelecomValidationError("phone='12' is not a phone number", parameter="phone"), PERMANENT),
        (EtelecomConfigError("The connection's 'timeout' is 'soon'"), PERMANENT),
        (error_from_response("Zalo/ListRequestConsent", 401, b'{"code":"unauthenticated"}'), PERMANENT),
        (error_from_response("Zalo/ListRequestConsent", 403, b'{"code":"permission_denied"}'), PERMANENT),
        (error_from_response("Zalo/ListRequestConsent", 400, b'{"code":"invalid_argument"}'), PERMANENT),
        (error_from_response("Zalo/ListRequestConsent", 404, b'{"code":"bad_route"}'), PERMANENT),
        (error_from_response("Zalo/ListRequestConsent", 403, b'{"code":"resource_exhausted"}'), TRANSIENT),
        (error_from_response("Zalo/ListRequestConsent", 429, b"{}"), TRANSIENT),
        (error_from_response("Zalo/ListRequestConsent", 503, b"{}"), TRANSIENT),
        (EtelecomTransientError("dropped"), TRANSIENT),
        (EtelecomPagingError("cursor twice"), TRANSIENT),
        (EtelecomStoppedError("told to stop"), TRANSIENT),
        # A failed send reached nobody: RequestConsentOperator's retry sends again, by design.
        (EtelecomConsentOutcomeError("not delivered", consent={}), TRANSIENT),
        (EtelecomConsentNotFoundError("not listed yet"), TRANSIENT),
        (EtelecomOutputError("denied", kind="credentials"), CREDENTIALS),
        (EtelecomOutputError("no bucket", kind="permanent"), PERMANENT),
        (KeyError("a bug"), TRANSIENT),
    ],
)
def test_classify_failure(error: BaseException, kind: FailureKind) -> None:
    assert classify_failure(error) is kind
