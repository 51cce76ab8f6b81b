"""The retry policy in real Airflow task runs (``dag.test()``, ``retries=2``, ``retry_delay=0``).

Every failure a retry cannot fix ends after one try with a message naming what to fix; a
transient outage uses all three tries; storage that refuses its credentials gets exactly one
retry; ``retry_permanent_errors=True`` hands a permanent failure back to Airflow's retries.

On Airflow 3.3+, a task's ``retry_policy`` (AIP-105) decides instead, and ``EtelecomRetryPolicy``
makes the same decisions as a policy: their tests run real tries there and are skipped on older
Airflow, where the runs above prove the provider's behaviour unchanged.
"""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

from airflow_provider_etelecom.client import ClientConfig, EtelecomClient
from airflow_provider_etelecom.client.errors import error_from_response
from airflow_provider_etelecom.exceptions import (
    EtelecomConfigError,
    EtelecomConsentNotFoundError,
    EtelecomConsentOutcomeError,
    EtelecomDatabaseError,
    EtelecomOutputError,
    EtelecomPagingError,
    EtelecomRateLimitError,
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

needs_retry_policies = pytest.mark.skipif(
    not AIRFLOW_V_3_3_PLUS, reason="task retry policies (retry_policy=, AIP-105) arrived in Airflow 3.3"
)

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


@pytest.mark.parametrize("has_policy", [False, True])
def test_a_retry_policy_on_the_task_takes_the_decision_on_airflow_3_3_only(has_policy: bool) -> None:
    """On 3.3+ a task's retry_policy gets the failure as raised; before 3.3 nothing changes."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    task = SimpleNamespace(task_id="t", etelecom_conn_id="c", retry_permanent_errors=False)
    if has_policy:
        task.retry_policy = object()  # only its presence is read: Airflow calls it, the provider never does
    error = EtelecomConfigError("The connection's timeout='soon' must be a number.")
    with pytest.raises((EtelecomConfigError, AirflowFailException)) as raised, failure_policy(task, {}):
        raise error
    if has_policy and AIRFLOW_V_3_3_PLUS:
        assert raised.value is error
    else:
        assert isinstance(raised.value, AirflowFailException)
        assert raised.value.__cause__ is error


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
        (EtelecomDatabaseError("sqlite file cannot be opened", kind="permanent"), PERMANENT),
        (EtelecomDatabaseError("postgres server down", kind="transient"), TRANSIENT),
        (KeyError("a bug"), TRANSIENT),
    ],
)
def test_classify_failure(error: BaseException, kind: FailureKind) -> None:
    assert classify_failure(error) is kind


# -- Airflow 3.3+: the task's retry_policy, and the provider's decision as one -------------------

POLICY_DAG_SOURCE = """
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from airflow.providers.common.compat.sdk import (
    DAG,
    ChainRetryPolicy,
    ExceptionRetryPolicy,
    RetryAction,
    RetryPolicy,
    RetryRule,
)

from airflow_provider_etelecom.exceptions import EtelecomAuthError
from airflow_provider_etelecom.failure_policy import EtelecomRetryPolicy
from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator
from airflow_provider_etelecom.operators.request_consent import RequestConsentOperator
from airflow_provider_etelecom.sensors.consent_replies import ConsentReplySensor


class Recorded(RetryPolicy):
    # Asks `policy`, keeps each decision, and hands it to Airflow with any delay cut to zero: the
    # test asserts the delay decided instead of sleeping it.

    def __init__(self, policy):
        self.policy = policy
        self.decisions = []

    def evaluate(self, exception, try_number, max_tries, context=None):
        decision = self.policy.evaluate(exception, try_number, max_tries, context)
        self.decisions.append((try_number, max_tries, decision))
        return decision if decision.retry_delay is None else replace(decision, retry_delay=timedelta(0))


# A user's policy: retry a refused key (one an outside process rotates, say).
RETRY_REFUSED_KEY = ExceptionRetryPolicy(rules=[RetryRule(exception=EtelecomAuthError, action=RetryAction.RETRY)])
RETRY_ANYTHING = ExceptionRetryPolicy(rules=[], default=RetryAction.RETRY)

with DAG(
    {dag_id!r},
    schedule=None,
    start_date=datetime(2020, 1, 1, tzinfo=timezone.utc),
    params={{"phone": "12"}},
    default_args={{"retries": 2, "retry_delay": timedelta(0)}},
) as dag:
{tasks}
"""

POLICY_TASKS = """
    ListConsentsOperator(
        task_id="wrong_key_user_retries", etelecom_conn_id="etelecom_wrong_key", retry_policy=RETRY_REFUSED_KEY
    )
    ListConsentsOperator(
        task_id="wrong_key_user_default", etelecom_conn_id="etelecom_wrong_key",
        retry_policy=ExceptionRetryPolicy(rules=[]),
    )
    ConsentReplySensor(
        task_id="wait_wrong_key_user_retries", etelecom_conn_id="etelecom_wrong_key", consent_id="1", oa_id={oa!r},
        phone={phone!r}, poke_interval=1, timeout=30, retry_policy=RETRY_REFUSED_KEY,
    )
    ListConsentsOperator(
        task_id="wrong_key_provider", etelecom_conn_id="etelecom_wrong_key",
        retry_policy=Recorded(EtelecomRetryPolicy()),
    )
    ListConsentsOperator(
        task_id="outage_provider", etelecom_conn_id="etelecom_down", retry_policy=Recorded(EtelecomRetryPolicy())
    )
    ListConsentsOperator(
        task_id="wrong_key_chain_user_first", etelecom_conn_id="etelecom_wrong_key",
        retry_policy=ChainRetryPolicy([RETRY_REFUSED_KEY, EtelecomRetryPolicy()]),
    )
    ListConsentsOperator(
        task_id="wrong_key_chain_provider_first", etelecom_conn_id="etelecom_wrong_key",
        retry_policy=ChainRetryPolicy([EtelecomRetryPolicy(), RETRY_REFUSED_KEY]),
    )
    RequestConsentOperator(
        task_id="request_bad_phone_user_retries", oa_id={oa!r}, phone="{{{{ params.phone }}}}", call_type="audio",
        reason_code="update_order", retry_policy=RETRY_ANYTHING,
    )
    RequestConsentOperator(
        task_id="request_bad_phone_provider", oa_id={oa!r}, phone="{{{{ params.phone }}}}", call_type="audio",
        reason_code="update_order", retry_policy=Recorded(EtelecomRetryPolicy()),
    )
"""


def _run_with_policies(dag_id: str, tasks: str) -> tuple[Any, Any]:
    from datetime import datetime, timezone

    dag = load_dag_file(dag_id, POLICY_DAG_SOURCE.format(dag_id=dag_id, tasks=tasks))
    return dag, run_dag(dag, datetime(2026, 1, 1, tzinfo=timezone.utc))


def _decisions(dag: Any, task_id: str) -> list[tuple[int, int, str, timedelta | None]]:
    """What the provider's policy decided on each failed try: (try, max_tries, action, delay)."""
    return [(t, m, d.action.value, d.retry_delay) for t, m, d in dag.task_dict[task_id].retry_policy.decisions]


@needs_retry_policies
def test_retry_policies_decide_in_real_task_runs(
    airflow_db: str,
    etelecom_connection: EtelecomSimulator,
    monkeypatch: pytest.MonkeyPatch,
    captured: Any,
    down_port: int,
) -> None:
    sim = etelecom_connection
    _set_connection(monkeypatch, "etelecom_wrong_key", host=sim.base_url, password="etl-WRONG-key-0123456789")
    _set_connection(
        monkeypatch,
        "etelecom_down",
        host=f"http://127.0.0.1:{down_port}/v1/shop",
        password=sim.api_key,
        extra={"max_retries": 0},
    )

    dag, dag_run = _run_with_policies("test_retry_policies", POLICY_TASKS.format(oa=OA, phone=PHONE))

    assert _tries(dag_run) == {
        # A user's policy is honoured: the refused key is retried as it says (or as Airflow's
        # retries say, when it has no opinion), never failed by the provider first.
        "wrong_key_user_retries": ("failed", 3),
        "wrong_key_user_default": ("failed", 3),
        "wait_wrong_key_user_retries": ("failed", 3),
        # The provider's policy: a permanent failure fails at once, a transient one is retried,
        # never beyond retries=2 (try 3 of 3 answers DEFAULT: no retry left).
        "wrong_key_provider": ("failed", 1),
        "outage_provider": ("failed", 3),
        # Chained: the first policy that decides wins.
        "wrong_key_chain_user_first": ("failed", 3),
        "wrong_key_chain_provider_first": ("failed", 1),
        # A rendered argument RequestConsentOperator refuses: the same, before anything is sent.
        "request_bad_phone_user_retries": ("failed", 3),
        "request_bad_phone_provider": ("failed", 1),
    }
    assert _decisions(dag, "wrong_key_provider") == [(1, 2, "fail", None)]
    assert _decisions(dag, "outage_provider") == [(1, 2, "retry", None), (2, 2, "retry", None), (3, 2, "default", None)]
    assert _decisions(dag, "request_bad_phone_provider") == [(1, 2, "fail", None)]
    assert sim.stats.count(status=401) == 3 + 3 + 3 + 1 + 3 + 1  # one refused request per try
    assert sim.stats.count(method="Zalo/RequestConsent") == 0
    text = captured()
    # The FAIL decision's reason names what to fix; Airflow logs it.
    assert "Not retried: a retry would fail the same way." in text
    assert "Fix the API key (the Password field) of connection 'etelecom_wrong_key'" in text
    # Under a user's policy the provider only says what it thinks, and raises the error as it is.
    assert "the task's retry_policy decides" in text
    assert "AirflowFailException" not in text
    assert "etl-WRONG-key-0123456789" not in text


@needs_retry_policies
def test_the_provider_policy_gives_refused_storage_credentials_exactly_one_retry(
    airflow_db: str,
    etelecom_connection: EtelecomSimulator,
    s3_bucket: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import moto.settings

    _, bucket = s3_bucket
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # as in the test without a policy
    tasks = f"""
    ListConsentsOperator(
        task_id="denied", output_path="s3://{bucket}/c.jsonl", output_conn_id="aws_test",
        retry_policy=Recorded(EtelecomRetryPolicy()),
    )
"""
    dag, dag_run = _run_with_policies("test_retry_policy_denied_storage", tasks)
    assert _tries(dag_run) == {"denied": ("failed", 2)}
    assert _decisions(dag, "denied") == [(1, 2, "retry", None), (2, 2, "fail", None)]


def test_a_rate_limited_task_without_a_policy_is_retried_after_its_retry_delay(
    airflow_db: str, etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a retry_policy (and on every Airflow before 3.3) nothing changes: the 429 that outlasts
    the client's retries is raised as it is and Airflow retries it after the task's retry_delay."""
    sim = etelecom_connection
    _set_connection(monkeypatch, "etelecom_limited", host=sim.base_url, password=sim.api_key, extra={"max_retries": 0})
    sim.script_faults([("429", 90)], method=LIST)
    tasks = """
    ListConsentsOperator(task_id="limited", etelecom_conn_id="etelecom_limited")
"""
    dag_run = _run("test_failure_policy_rate_limited", tasks)

    assert _tries(dag_run) == {"limited": ("success", 2)}  # retried at once (retry_delay=0), not after 90 s
    assert sim.stats.count(method=LIST, status=429) == 1
    if AIRFLOW_V_3_3_PLUS:
        from airflow.models.taskinstancehistory import TaskInstanceHistory
        from airflow.utils.session import create_session

        with create_session() as session:
            first = session.query(TaskInstanceHistory).filter_by(dag_id="test_failure_policy_rate_limited").one()
            assert (first.try_number, first.retry_delay_override) == (1, None)


@needs_retry_policies
def test_the_provider_policy_retries_a_rate_limited_task_after_its_retry_after(
    airflow_db: str, etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = etelecom_connection
    # The client's own retries are off, so the 429 reaches the task and its Retry-After the policy.
    _set_connection(monkeypatch, "etelecom_limited", host=sim.base_url, password=sim.api_key, extra={"max_retries": 0})
    sim.script_faults([("429", 2)], method=LIST)
    tasks = """
    ListConsentsOperator(task_id="limited", etelecom_conn_id="etelecom_limited", retry_policy=EtelecomRetryPolicy())
"""
    _, dag_run = _run_with_policies("test_retry_policy_retry_after", tasks)

    assert _tries(dag_run) == {"limited": ("success", 2)}
    # Airflow stored the decision's delay and reason for try 1, and waited it out although the
    # task's retry_delay is 0 (dag.test() runs a retry once it is due).
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session

    with create_session() as session:
        first = session.query(TaskInstanceHistory).filter_by(dag_id="test_retry_policy_retry_after").one()
        assert (first.try_number, first.retry_delay_override) == (1, 2.0)
        assert first.retry_reason is not None
        assert first.retry_reason.startswith("Rate limited: retried after 2 s.")
        first_ended = first.end_date
    (second,) = dag_run.get_task_instances()
    assert (second.start_date - first_ended).total_seconds() >= 2


# -- the provider's policy itself, without a task run (Airflow 3.3+) -----------------------------


@needs_retry_policies
@pytest.mark.parametrize(
    ("error", "try_number", "task", "decided"),
    [
        (EtelecomValidationError("phone='12'", parameter="phone"), 1, {}, ("fail", None)),
        (error_from_response(LIST, 401, b'{"code":"unauthenticated"}'), 1, {}, ("fail", None)),
        (EtelecomOutputError("no bucket", kind="permanent"), 1, {}, ("fail", None)),
        (EtelecomOutputError("denied", kind="credentials"), 1, {}, ("retry", None)),
        (EtelecomOutputError("denied", kind="credentials"), 2, {}, ("fail", None)),
        (EtelecomOutputError("denied", kind="credentials"), 3, {}, ("fail", None)),
        (EtelecomTransientError("dropped"), 1, {}, ("retry", None)),
        (EtelecomTransientError("dropped"), 2, {}, ("retry", None)),
        (EtelecomTransientError("dropped"), 3, {}, ("default", None)),  # no retry left: retries=2
        (EtelecomRateLimitError("429", retry_after=90), 1, {}, ("retry", timedelta(seconds=90))),
        (EtelecomRateLimitError("429", retry_after=2.5), 1, {}, ("retry", timedelta(seconds=2.5))),
        (EtelecomRateLimitError("429"), 1, {}, ("retry", None)),  # no Retry-After: the task's retry_delay
        (EtelecomRateLimitError("429", retry_after=90), 3, {}, ("default", None)),
        # The task's max_retry_delay caps a Retry-After (Airflow keeps it as a timedelta or seconds).
        (
            EtelecomRateLimitError("429", retry_after=90),
            1,
            {"max_retry_delay": timedelta(seconds=30)},
            ("retry", timedelta(seconds=30)),
        ),
        (EtelecomRateLimitError("429", retry_after=90), 1, {"max_retry_delay": 45.0}, ("retry", timedelta(seconds=45))),
        # retry_permanent_errors=True leaves the permanent kinds to Airflow's retries, as without a policy.
        (EtelecomValidationError("x", parameter="phone"), 1, {"retry_permanent_errors": True}, ("default", None)),
        (EtelecomOutputError("denied", kind="credentials"), 2, {"retry_permanent_errors": True}, ("default", None)),
        (EtelecomTransientError("dropped"), 1, {"retry_permanent_errors": True}, ("retry", None)),
        # Not the provider's: no opinion, so Airflow (or the next policy of a chain) decides.
        (KeyError("a bug"), 1, {}, ("default", None)),
        (TimeoutError("slow"), 1, {}, ("default", None)),
    ],
)
def test_the_provider_policy_decides(
    error: BaseException, try_number: int, task: dict[str, Any], decided: tuple[str, timedelta | None]
) -> None:
    from airflow_provider_etelecom.failure_policy import EtelecomRetryPolicy

    context: Any = {"task": SimpleNamespace(etelecom_conn_id="etelecom_default", **task)}
    decision = EtelecomRetryPolicy().evaluate(error, try_number, 2, context)  # retries=2: max_tries 2
    assert (decision.action.value, decision.retry_delay) == decided
    assert decision.reason


@needs_retry_policies
def test_the_provider_policy_without_a_context_or_retries() -> None:
    from airflow_provider_etelecom.failure_policy import EtelecomRetryPolicy

    policy = EtelecomRetryPolicy()
    refused = error_from_response(LIST, 401, b'{"code":"unauthenticated"}')
    decision = policy.evaluate(refused, 1, 2, None)
    assert decision.action.value == "fail"
    assert decision.reason is not None
    assert decision.reason.startswith("Not retried: a retry would fail the same way.")
    assert "connection None" not in decision.reason
    # retries=0 (max_tries 0): never a RETRY, even for a transient failure.
    assert policy.evaluate(EtelecomTransientError("dropped"), 1, 0, None).action.value == "default"
    assert EtelecomRetryPolicy.deserialize(json.loads(json.dumps(policy.serialize()))).serialize() == policy.serialize()


@needs_retry_policies
def test_the_provider_policy_chains_either_way() -> None:
    from airflow.providers.common.compat.sdk import ChainRetryPolicy, ExceptionRetryPolicy, RetryAction, RetryRule

    from airflow_provider_etelecom.exceptions import EtelecomAuthError
    from airflow_provider_etelecom.failure_policy import EtelecomRetryPolicy

    mine = ExceptionRetryPolicy(rules=[RetryRule(exception=EtelecomAuthError, action=RetryAction.RETRY)])
    fallback = ExceptionRetryPolicy(rules=[RetryRule(exception=KeyError, action=RetryAction.FAIL)])
    refused = error_from_response(LIST, 401, b'{"code":"unauthenticated"}')
    assert ChainRetryPolicy([mine, EtelecomRetryPolicy()]).evaluate(refused, 1, 2).action is RetryAction.RETRY
    assert ChainRetryPolicy([EtelecomRetryPolicy(), mine]).evaluate(refused, 1, 2).action is RetryAction.FAIL
    # The provider has no opinion on other failures: the next policy decides.
    assert ChainRetryPolicy([EtelecomRetryPolicy(), fallback]).evaluate(KeyError("x"), 1, 2).action is RetryAction.FAIL
    limited = ChainRetryPolicy([EtelecomRetryPolicy(), fallback]).evaluate(
        EtelecomRateLimitError("429", retry_after=90), 1, 2
    )
    assert limited.retry_delay == timedelta(seconds=90)
    assert limited.reason is not None
    assert limited.reason.startswith("EtelecomRetryPolicy: Rate limited")


@pytest.mark.skipif(AIRFLOW_V_3_3_PLUS, reason="on Airflow 3.3+ EtelecomRetryPolicy imports (retry policies exist)")
def test_the_provider_policy_says_it_needs_airflow_3_3() -> None:
    with pytest.raises(ImportError, match=r"needs Airflow 3\.3 or later"):
        from airflow_provider_etelecom.failure_policy import EtelecomRetryPolicy  # noqa: F401
