"""RequestConsentOperator through real Airflow retries (``dag.test()``) with a lagging listing.

Each DAG's only task sends, then its try dies, and Airflow retries it (``retries=1``,
``retry_delay=0``). Two ways a try dies after the send:

* ``after_send``: the send succeeded and something later failed (the subclass raises after
  ``super().execute``, as a lost worker would after eTelecom answered);
* ``answer_lost``: eTelecom created the consent but its answer never arrived (the simulator drops
  the connection): the try fails with a transient error, not knowing whether it sent.

The simulator's listing shows a new consent only after ``listing_lag_s`` (real seconds here:
Airflow's own clock runs the grace and the deferral). The counters say how many consents the
customer's phone received. Short values keep the suite fast: a lag of 2 s inside a 4 s grace, and
the issue's 30 s lag against a 1.5 s grace for "lag longer than the grace".
"""

from __future__ import annotations

import json
import os
import runpy
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_etelecom.testing import EtelecomSimulator
from tests.conftest import SECRET_KEY

pytestmark = pytest.mark.slow

SEND = "Zalo/RequestConsent"
LIST = "Zalo/ListRequestConsent"
OA = "4239023413265392134"
PHONE = "0912000444"

RETRY_DAG = """
import json
from datetime import datetime, timedelta, timezone

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_etelecom.operators.request_consent import RequestConsentOperator


class DiesAfterSending(RequestConsentOperator):
    listing_look_interval = 0.25  # look often: the test's grace is seconds, not a minute

    def execute(self, context):
        consent = super().execute(context)
        return self._finish(context, consent)

    def execute_complete(self, context, event=None, deadline=None):
        consent = super().execute_complete(context, event=event, deadline=deadline)
        return self._finish(context, consent)

    def _finish(self, context, consent):
        if {after_send!r} and context["ti"].try_number == 1:
            raise RuntimeError("worker lost after the send")
        with open({out!r}, "w") as handle:
            json.dump({{"consent": consent, "try_number": context["ti"].try_number}}, handle)
        return consent


with DAG(dag_id={dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)) as dag:
    DiesAfterSending(
        task_id="ask", oa_id={oa!r}, phone={phone!r}, call_type="audio",
        reason_code="order_appointment_confirmation", retries=1, retry_delay=timedelta(0),
        **{kwargs!r}
    )
"""


@pytest.fixture(autouse=True)
def sequential_executor_on_airflow_2(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.common.compat.sdk import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "SequentialExecutor")


@pytest.fixture
def etelecom_simulator_options() -> dict[str, object]:
    return {"consents": 50, "seed": 7, "api_key": SECRET_KEY}


def run_retried(sim: EtelecomSimulator, tmp_path: Path, dag_id: str, how: str, **kwargs: Any) -> dict[str, Any]:
    """Run the DAG once through ``dag.test()``; return its state, what the last try returned, the sends."""
    out = tmp_path / f"{dag_id}.json"
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dag_id}.py"
    path.write_text(
        RETRY_DAG.format(dag_id=dag_id, after_send=how == "after_send", out=str(out), oa=OA, phone=PHONE, kwargs=kwargs)
    )
    if how == "answer_lost":
        from airflow.providers.common.compat.sdk import AIRFLOW_V_3_3_PLUS

        # Try 1's RequestConsent: its first API request, after the one listing before the send that
        # Airflow 3.3+ records in the task state store.
        sim.script_faults(["none", "drop"] if AIRFLOW_V_3_3_PLUS else ["drop"])
    dag_run = runpy.run_path(str(path))["dag"].test()
    tries = {ti.task_id: ti for ti in dag_run.get_task_instances()}
    return {
        "state": str(dag_run.state),
        "try_number": tries["ask"].try_number,
        "result": json.loads(out.read_text()) if out.exists() else None,
        "sends": sim.stats.count(method=SEND),
        "received": sum(1 for consent in sim.consents() if consent["phone"] == "84912000444"),
        "first_send_fault": next(e["fault"] for e in sim.requests_log if e["method"] == SEND),
        "looks": [entry for entry in sim.requests_log if entry["method"] == LIST],
    }


@pytest.mark.parametrize(
    ("how", "deferrable"),
    [("after_send", False), ("answer_lost", True)],
)
def test_a_retry_inside_the_grace_sends_exactly_once(
    airflow_db: str, etelecom_connection: EtelecomSimulator, tmp_path: Path, how: str, deferrable: bool
) -> None:
    # The case: the retry's first look misses the consent; it appears within the grace.
    from airflow.providers.common.compat.sdk import AIRFLOW_V_3_3_PLUS

    sim = etelecom_connection
    sim.listing_lag_s = 2
    run = run_retried(sim, tmp_path, f"retry_in_grace_{how}", how, listing_lag_grace=4, deferrable=deferrable)
    assert run["state"] == "success" and run["try_number"] == 2
    assert run["sends"] == 1 and run["received"] == 1
    assert run["first_send_fault"] == ("drop" if how == "answer_lost" else None)
    assert sim.consent(run["result"]["consent"]["id"]) is not None
    assert run["result"]["try_number"] == 2
    if AIRFLOW_V_3_3_PLUS and how == "after_send":
        # the listing before the send (none yet), then the store named the consent: one lookup, no wait
        assert len(run["looks"]) == 2
    else:
        assert len(run["looks"]) >= 2  # the first look missed the lagging consent; a later one found it


@pytest.mark.parametrize("how", ["after_send", "answer_lost"])
def test_a_retry_when_the_lag_outlasts_the_grace(
    airflow_db: str,
    etelecom_connection: EtelecomSimulator,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    how: str,
) -> None:
    # The documented behaviour per Airflow version when the listing lags longer than the grace.
    from airflow.providers.common.compat.sdk import AIRFLOW_V_3_3_PLUS

    sim = etelecom_connection
    sim.listing_lag_s = 30
    run = run_retried(sim, tmp_path, f"retry_past_grace_{how}", how, listing_lag_grace=1.5)
    assert run["try_number"] == 2
    if not AIRFLOW_V_3_3_PLUS:
        # No task state store: after the grace the retry cannot know, and sends again.
        assert run["state"] == "success" and run["sends"] == 2 and run["received"] == 2
    elif how == "after_send":
        # The store holds the consent try 1 sent: returned, whatever the listing shows.
        assert run["state"] == "success" and run["sends"] == 1 and run["received"] == 1
        assert run["result"]["consent"]["phone"] == "84912000444"
    else:
        # The store says a send was under way and its answer was lost: fail, do not send again.
        assert run["state"] == "failed" and run["sends"] == 1 and run["received"] == 1
        assert "set resend_if_unconfirmed=True" in capfd.readouterr().out
