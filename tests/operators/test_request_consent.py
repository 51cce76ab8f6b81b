"""RequestConsentOperator against the simulator: validation, failed sends, and never sending twice."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_etelecom.exceptions import (
    EtelecomConsentOutcomeError,
    EtelecomTransientError,
    EtelecomValidationError,
)
from airflow_provider_etelecom.operators.consents import RequestConsentOperator
from airflow_provider_etelecom.operators.request_consent import first_try_anchor
from airflow_provider_etelecom.testing import EtelecomSimulator

SEND = "Zalo/RequestConsent"
LIST = "Zalo/ListRequestConsent"
OA = "4239023413265392134"
PHONE = "0912000444"


def operator(**kwargs: Any) -> RequestConsentOperator:
    args: dict[str, Any] = {
        "task_id": "ask",
        "oa_id": OA,
        "phone": PHONE,
        "call_type": "audio",
        "reason_code": "order_appointment_confirmation",
        **kwargs,
    }
    return RequestConsentOperator(**args)


def context(try_number: int = 1, run_began: datetime | None = None) -> dict[str, Any]:
    began = run_began or datetime.now(timezone.utc) - timedelta(seconds=5)
    return {
        "ti": SimpleNamespace(try_number=try_number, start_date=datetime.now(timezone.utc)),
        "dag_run": SimpleNamespace(run_after=began, queued_at=began, start_date=began + timedelta(seconds=1)),
    }


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"oa_id": "OA-1"}, "oa_id"),
        ({"phone": "12"}, "phone"),
        ({"call_type": "fax"}, "call_type"),
        ({"reason_code": "because"}, "reason_code"),
    ],
)
def test_arguments_are_validated_before_anything_is_sent(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(EtelecomValidationError) as caught:
        operator(**kwargs)
    assert caught.value.parameter == parameter


def test_templated_arguments_are_validated_at_run_time(etelecom_connection: EtelecomSimulator) -> None:
    op = operator(phone="{{ params.phone }}")
    assert op.template_fields == ("oa_id", "phone", "call_type", "reason_code")
    op.phone = "not a phone"  # what a bad rendering would leave
    with pytest.raises(AirflowFailException, match="phone") as caught:  # no pointless Airflow retries
        op.execute(context())
    assert isinstance(caught.value.__cause__, EtelecomValidationError)
    assert etelecom_connection.stats.count(method=SEND) == 0


def test_sends_once_and_returns_the_consent(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consent = operator().execute(context())
    assert consent["status"] == "P" and consent["reply_status"] == "S"
    assert sim.stats.count(method=SEND) == 1 and sim.stats.count(method=LIST) == 0
    sent = next(entry for entry in sim.requests_log if entry["method"] == SEND)["body"]
    assert sent == {
        "oa_id": OA,
        "phone": "84912000444",
        "call_type": "audio",
        "reason_code": "order_appointment_confirmation",
    }


def test_failed_send_fails_with_etelecoms_error(etelecom_connection: EtelecomSimulator) -> None:
    etelecom_connection.fail_send_to(PHONE, error_code=-201, error_message="Số điện thoại không hợp lệ")
    with pytest.raises(EtelecomConsentOutcomeError, match=r"-201.*không hợp lệ") as caught:
        operator().execute(context())
    assert caught.value.consent["status"] == "N"


def test_no_http_retry_once_the_request_may_have_arrived(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    sim.script_faults(["503"])
    with pytest.raises(EtelecomTransientError):
        operator().execute(context())
    assert sim.stats.count(method=SEND) == 1


def test_a_retry_returns_the_first_tries_consent(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    run_began = datetime.now(timezone.utc) - timedelta(seconds=5)
    first = operator().execute(context(1, run_began))
    # Try 1 "died" after eTelecom created the consent; Airflow retries the task.
    sim.reset_stats()
    again = operator().execute(context(2, run_began))
    assert again["id"] == first["id"]
    assert sim.stats.count(method=SEND) == 0 and sim.stats.count(method=LIST) == 1
    listed = next(entry for entry in sim.requests_log if entry["method"] == LIST)["body"]
    assert listed["filter"]["oa_id"] == OA and listed["filter"]["phone"] == "84912000444"
    assert listed["filter"]["call_type"] == "audio"
    assert listed["filter"]["reason_code"] == "order_appointment_confirmation"
    assert listed["paging"]["sort"] == "created_at"


def test_a_retry_sends_when_nothing_was_sent(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consent = operator().execute(context(3))
    assert consent["status"] == "P"
    assert sim.stats.count(method=SEND) == 1 and sim.stats.count(method=LIST) == 1


def test_a_retry_ignores_other_call_types_and_earlier_runs(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    operator(call_type="video").execute(context())
    sim.advance(3600)
    run_began = sim.now() - timedelta(seconds=1)
    sim.reset_stats()
    operator().execute(context(2, run_began))
    assert sim.stats.count(method=SEND) == 1


def test_a_retry_after_a_failed_send_sends_again(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    sim.fail_send_to(PHONE)
    run_began = datetime.now(timezone.utc) - timedelta(seconds=5)
    with pytest.raises(EtelecomConsentOutcomeError):
        operator().execute(context(1, run_began))
    sim.reset_stats()
    # A failed send reached nobody: the retry sends again (and here fails the same way).
    with pytest.raises(EtelecomConsentOutcomeError):
        operator().execute(context(2, run_began))
    assert sim.stats.count(method=SEND) == 1


def test_anchor_is_the_earliest_thing_the_run_knows() -> None:
    began = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ctx = {
        "ti": SimpleNamespace(start_date=began + timedelta(hours=2)),
        "dag_run": SimpleNamespace(
            run_after=None, data_interval_end=began, queued_at=began + timedelta(hours=1), start_date=None
        ),
    }
    assert first_try_anchor(ctx) == began  # type: ignore[arg-type]
    assert first_try_anchor({}) is None  # type: ignore[arg-type]


RETRY_DAG = """
import json
from datetime import datetime, timedelta, timezone

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_etelecom.operators.consents import RequestConsentOperator


class LostAfterSending(RequestConsentOperator):
    # The first try sends, then its worker is lost before Airflow records the result.
    def execute(self, context):
        consent = super().execute(context)
        if context["ti"].try_number == 1:
            raise RuntimeError("worker lost after the send")
        with open({out!r}, "w") as handle:
            json.dump(consent, handle)
        return consent


with DAG(dag_id="request_consent_retry", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)) as dag:
    LostAfterSending(
        task_id="ask", oa_id={oa!r}, phone={phone!r}, call_type="audio",
        reason_code="order_appointment_confirmation", retries=1, retry_delay=timedelta(0),
    )
"""


@pytest.mark.slow
def test_an_airflow_retry_sends_exactly_once(
    airflow_db: str, etelecom_connection: EtelecomSimulator, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import os
    import runpy
    from pathlib import Path

    from airflow.providers.common.compat.sdk import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "SequentialExecutor")
    sim = etelecom_connection
    out = Path(tmp_path) / "consent.json"
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "request_consent_retry.py"
    path.write_text(RETRY_DAG.format(out=str(out), oa=OA, phone=PHONE))
    dag_run = runpy.run_path(str(path))["dag"].test()
    assert str(dag_run.state) == "success"
    consent = json.loads(out.read_text())
    assert sim.stats.count(method=SEND) == 1
    assert sim.consent(consent["id"]) is not None
