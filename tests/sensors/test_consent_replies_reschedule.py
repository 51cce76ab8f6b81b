"""Reschedule mode keeps its wait in the task state store on Airflow 3.3+: later checks read only changes.

A real reschedule run (``dag.test()``: every check is a new execution of the task, as on a worker)
of :class:`ConsentRepliesSensor` against the simulator, whose request log says what each check
read: on Airflow 3.3+ the first check lists the span and the later ones read what changed
(``sort=-updated_at``); on Airflow 2.11 (no task state store) every check lists the span, as
before. Then the record itself, check by check, with Airflow's store API kept in a dict.
"""

from __future__ import annotations

import itertools
import json
import os
import runpy
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.exceptions import AirflowRescheduleException

from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.sensors.consent_replies import WAIT_RECORD_KEY, ConsentRepliesSensor, ConsentReplySensor
from airflow_provider_etelecom.testing import EtelecomSimulator
from tests.conftest import SECRET_KEY
from tests.sensors.conftest import DictTaskStateStore

OA = "4239023413265392134"
LIST = "Zalo/ListRequestConsent"

DAG_SOURCE = """
import json
from datetime import datetime, timezone

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.sensors.consent_replies import ConsentRepliesSensor

with DAG(dag_id={dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)) as dag:

    @task
    def ask():
        hook = EtelecomHook()
        return [
            hook.request_consent(oa_id={oa_id!r}, phone=phone, call_type="audio", reason_code="update_order")
            for phone in ("0917000001", "0917000002")
        ]

    wait = ConsentRepliesSensor(
        task_id="wait", consent_ids=ask(), oa_id={oa_id!r}, mode="reschedule", poke_interval=1, timeout=120
    )

    @task
    def record(consents):
        with open({out!r}, "w") as handle:
            json.dump(consents, handle)

    record(wait.output)
"""


@pytest.fixture(autouse=True)
def sequential_executor_on_airflow_2(monkeypatch: pytest.MonkeyPatch) -> None:
    # Airflow 2's reschedule dependency loads the configured executor; unit-test mode names the
    # LocalExecutor, which refuses SQLite. dag.test() runs tasks in-process whatever it names.
    from airflow.providers.common.compat.sdk import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "SequentialExecutor")


@pytest.fixture
def etelecom_simulator_options() -> dict[str, object]:
    return {"consents": 50, "seed": 7, "api_key": SECRET_KEY}


def request(phone: str) -> dict[str, Any]:
    return EtelecomHook().request_consent(oa_id=OA, phone=phone, call_type="audio", reason_code="update_order")


def test_a_real_reschedule_run_reads_changes_after_its_first_check_on_airflow_3_3(
    airflow_db: str, etelecom_connection: EtelecomSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.common.compat.sdk import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

    if AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS:
        # Airflow 3.0's in-process dag.test() hands BaseSensorOperator the first reschedule date as a
        # string, and its own execute() fails on the second check (datetime - str), for any sensor.
        pytest.skip("Airflow 3.0's dag.test() cannot run a reschedule-mode sensor past its first check")
    sim = etelecom_connection
    # An older answered consent in the span ends every changed read on its first page.
    older = sim.add_consent(oa_id=OA, reply_status="P", status="P", created_at=sim.now() - timedelta(minutes=2))
    # The customers agree just before the third listing request is served: after two checks, on a
    # machine of any speed (a reply after some real seconds may come before the first check).
    store, served = sim._store, itertools.count(1)
    serve = store.list_page

    def list_page(*args: Any) -> Any:
        if next(served) == 3:
            for consent in sim.consents():
                if consent["oa_id"] == OA and consent["reply_status"] == "S" and consent["id"] != older["id"]:
                    sim.reply(consent["id"], "P")
        return serve(*args)

    monkeypatch.setattr(store, "list_page", list_page)
    sim.reset_stats()
    out = tmp_path / "result.json"
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "consent_replies_rescheduled.py"
    path.write_text(DAG_SOURCE.format(dag_id="consent_replies_rescheduled", oa_id=OA, out=str(out)))
    dag_run = runpy.run_path(str(path))["dag"].test()
    assert str(dag_run.state) == "success"
    result = json.loads(out.read_text())
    assert len(result) == 2 and {c["reply_status"] for c in result.values()} == {"P"}
    sorts = [(entry["body"].get("paging") or {}).get("sort") for entry in sim.requests_log if entry["method"] == LIST]
    assert len(sorts) >= 3, f"answered at the third listing request: {sorts}"
    if AIRFLOW_V_3_3_PLUS:
        # The first check lists the span (oldest first from the consents' created_at); each later one reads
        # what changed since the last: one page, ended by the older consent below the watermark.
        assert sorts[0] == "created_at" and set(sorts[1:]) == {"-updated_at"}, sorts
    else:  # no task state store: every check lists the span, as before
        assert set(sorts) == {"created_at"}, sorts


def check(consents: list[dict[str, Any]], store: DictTaskStateStore | None, try_number: int = 1) -> Any:
    """One reschedule-mode check, in a new sensor object (a new process): its result, or None if rescheduled."""
    started = datetime.now(timezone.utc) - timedelta(seconds=1)
    ti = SimpleNamespace(
        start_date=started,
        get_first_reschedule_date=lambda context: started,
        dag_id="rescheduled",
        task_id="wait",
        run_id="run",
        map_index=-1,
        max_tries=1,
        try_number=try_number,
    )
    context: dict[str, Any] = {"ti": ti} if store is None else {"ti": ti, "task_state_store": store}
    sensor = ConsentRepliesSensor(
        task_id="wait", consent_ids=consents, oa_id=OA, mode="reschedule", poke_interval=1, timeout=3600
    )
    try:
        return sensor.execute(context)
    except AirflowRescheduleException:
        return None


def sorts(sim: EtelecomSimulator) -> list[str | None]:
    listed = [(entry["body"].get("paging") or {}).get("sort") for entry in sim.requests_log if entry["method"] == LIST]
    sim.reset_stats()
    return listed


def test_the_record_keeps_the_wait_for_its_try_and_holds_no_key(
    airflow_db: str, etelecom_connection: EtelecomSimulator
) -> None:
    sim = etelecom_connection
    sim.add_consent(oa_id=OA, reply_status="P", status="P", created_at=sim.now() - timedelta(minutes=2))
    consents = [request("0917100001"), request("0917100002")]
    store = DictTaskStateStore()
    sim.reset_stats()
    assert check(consents, store) is None and sorts(sim) == ["created_at"]
    record = store.values[WAIT_RECORD_KEY]
    assert record["try_number"] == 1 and record["progress"]["feed"]["newest"] is not None
    assert SECRET_KEY not in json.dumps(record)
    sim.reply(consents[0]["id"], "P")
    sim.advance(10)
    assert check(consents, store) is None and sorts(sim) == ["-updated_at"]  # the second check: changes only
    assert store.values[WAIT_RECORD_KEY]["progress"]["settled"][consents[0]["id"]]["reply_status"] == "P"
    assert check(consents, store, try_number=2) is None and sorts(sim) == ["created_at"]  # a new try: afresh
    assert check(consents[1:], store, try_number=2) is None and sorts(sim) == ["created_at"]  # another wait
    sim.reply(consents[1]["id"], "N")
    sim.advance(10)
    result = check(consents, store, try_number=2)
    assert [c["reply_status"] for c in result.values()] == ["P", "N"]
    assert WAIT_RECORD_KEY not in store.values, "a decided wait leaves no record"


def test_without_a_store_or_over_the_size_limit_every_check_lists_the_span(
    airflow_db: str, etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = etelecom_connection
    consents = [request("0917200001")]
    sim.reset_stats()
    assert check(consents, None) is None and check(consents, None) is None
    assert sorts(sim) == ["created_at", "created_at"]  # Airflow 2.11 and 3.0-3.2, as before
    monkeypatch.setenv("AIRFLOW__STATE_STORE__MAX_VALUE_STORAGE_BYTES", "200")
    store = DictTaskStateStore()
    assert check(consents, store) is None and check(consents, store) is None
    assert sorts(sim) == ["created_at", "created_at"] and store.values == {}


def test_a_one_page_wait_keeps_no_record(airflow_db: str, etelecom_connection: EtelecomSimulator) -> None:
    """``ConsentReplySensor`` reads one page per check (``max_pages=1``): no changed read to resume."""
    consent = request("0917300001")
    store = DictTaskStateStore()
    started = datetime.now(timezone.utc)
    ti = SimpleNamespace(
        start_date=started,
        get_first_reschedule_date=lambda context: started,
        dag_id="rescheduled",
        task_id="wait",
        run_id="run",
        map_index=-1,
        max_tries=1,
        try_number=1,
    )
    sensor = ConsentReplySensor(
        task_id="wait", consent_id=consent["id"], phone="0917300001", oa_id=OA, mode="reschedule", timeout=3600
    )
    with pytest.raises(AirflowRescheduleException):
        sensor.execute({"ti": ti, "task_state_store": store})
    assert store.values == {}
