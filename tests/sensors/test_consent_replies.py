"""ConsentRepliesSensor against the simulator: one listing per check, outcomes, modes, dag.test()."""

from __future__ import annotations

import json
import os
import runpy
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    PokeReturnValue,
    TaskDeferred,
)

from airflow_provider_etelecom.client.models import parse_api_time
from airflow_provider_etelecom.client.paging import KEYSET_VOTES
from airflow_provider_etelecom.client.validation import FILTER_MARGIN
from airflow_provider_etelecom.exceptions import (
    EtelecomAuthError,
    EtelecomConsentNotFoundError,
    EtelecomConsentOutcomeError,
    EtelecomError,
    EtelecomValidationError,
)
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.sensors.consent_replies import ConsentRepliesSensor
from airflow_provider_etelecom.testing import SORTS, EtelecomSimulator
from airflow_provider_etelecom.triggers.consent_replies import ConsentRepliesTrigger, build_event
from tests.conftest import SECRET_KEY, cursor_lesson_requests
from tests.sensors.conftest import context, event_for

LIST = "Zalo/ListRequestConsent"
OA = "4239023413265392134"


def request_many(n: int, start: int = 0) -> list[dict[str, Any]]:
    hook = EtelecomHook()
    return [
        hook.request_consent(oa_id=OA, phone=f"0913{i:06d}", call_type="audio", reason_code="update_order")
        for i in range(start, start + n)
    ]


def sensor(consent_ids: Any, **kwargs: Any) -> ConsentRepliesSensor:
    kwargs.setdefault("poke_interval", 0.01)
    kwargs.setdefault("timeout", 30)
    kwargs.setdefault("oa_id", OA)
    return ConsentRepliesSensor(task_id="wait_all", consent_ids=consent_ids, **kwargs)


def list_bodies(sim: EtelecomSimulator) -> list[dict[str, Any]]:
    return [entry["body"] for entry in sim.requests_log if entry["path"].endswith(LIST)]


def finish(s: ConsentRepliesSensor, sim: EtelecomSimulator, status: str) -> list[Any]:
    """What poke and execute_complete (fed the event the trigger builds from the same consents) each give."""
    found = {c["id"]: c for c in sim.consents()}
    ids = [str(i if not isinstance(i, dict) else i["id"]) for i in s.consent_ids]
    event = event_for(ids, {i: found[i] for i in ids if i in found}, failure_statuses=s.failure_statuses)
    assert event["status"] == status
    results: list[Any] = []
    for run in (lambda: s.poke(context()).xcom_value, lambda: s.execute_complete(context(), event)):  # type: ignore[union-attr]
        try:
            results.append(run())
        except Exception as error:
            results.append((type(error), str(error)))
    return results


# -- construction ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"min_share": 0}, "min_share"),
        ({"min_share": 1.5}, "min_share"),
        ({"failure_statuses": ["S"]}, "failure_statuses"),
        ({"max_pages": 0}, "max_pages"),
        ({"consent_ids": []}, "consent_ids"),
        ({"consent_ids": ["1", "x"]}, "consent_ids"),
        ({"consent_ids": [{"reply_status": "S"}]}, "consent_ids"),
        ({"oa_id": "abc"}, "oa_id"),
        ({"created_from": "yesterday"}, "created_from"),
    ],
)
def test_invalid_arguments_name_the_parameter(kwargs: dict[str, Any], parameter: str) -> None:
    args: dict[str, Any] = {"task_id": "w", "consent_ids": ["1", "2"], **kwargs}
    with pytest.raises(EtelecomValidationError) as caught:
        ConsentRepliesSensor(**args)
    assert caught.value.parameter == parameter


def test_templated_values_are_accepted_unrendered() -> None:
    s = ConsentRepliesSensor(
        task_id="w", consent_ids="{{ ti.xcom_pull('ask') }}", oa_id="{{ params.oa }}", created_from="{{ ds }}"
    )
    assert s.template_fields == ("consent_ids", "oa_id", "phone", "created_from")


# -- one listing per check ---------------------------------------------------------------------------


def test_all_answered_returns_every_consent_in_input_order(
    etelecom_connection: EtelecomSimulator, sort_probe_requests: range
) -> None:
    sim = etelecom_connection
    consents = request_many(150)
    s = sensor(list(reversed(consents)))
    sim.reset_stats()
    assert s.poke(context()) is False
    # Learning what the platform's cursor holds, from the ties of a campaign's pages: two requests a
    # lesson, three lessons for ties shown at whole seconds, once for the sensor's client.
    probes = s.hook.client.stats.probes
    assert probes == cursor_lesson_requests(sim) <= 2 * KEYSET_VOTES
    per_poll = sim.stats.count(method=LIST) - probes
    # 150 consents in the window: two pages of 100, not 150 requests; and, while the cursor is not yet
    # learnt, the page a date bound reads again from the second the first page ended in (the campaign
    # was sent within a second or two).
    assert 2 <= per_poll <= 3
    for consent in consents[:100]:
        sim.reply(consent["id"], "P")
    assert s.poke(context()) is False
    for consent in consents[100:]:
        sim.reply(consent["id"], "N")
    result = s.poke(context())
    assert isinstance(result, PokeReturnValue) and result.is_done
    assert list(result.xcom_value) == [c["id"] for c in reversed(consents)]
    assert {c["reply_status"] for c in result.xcom_value.values()} == {"P", "N"}
    # The later polls read what changed, up to the last pending consent: never more than the first poll.
    later = sim.stats.count(method=LIST) - probes - per_poll
    assert 2 <= later <= 2 * per_poll + max(sort_probe_requests)
    # The listing was narrowed: the OA, the consents' created_at minus the margin, oldest first.
    body = list_bodies(sim)[0]
    earliest = min(parse_api_time(c["created_at"]) for c in consents)
    assert body["filter"]["oa_id"] == OA
    assert parse_api_time(body["filter"]["date_from"]) == earliest - timedelta(minutes=5) - FILTER_MARGIN
    assert body["paging"] == {"limit": 100, "sort": "created_at"}


def test_paging_stops_once_every_id_was_seen(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consents = request_many(350)
    wanted = [c["id"] for c in consents[:40]]
    s = sensor(wanted, created_from=consents[0]["created_at"])
    sim.reset_stats()
    assert s.poke(context()) is False
    assert sim.stats.count(method=LIST) == 1  # the window holds 4 pages; the 40 are on the first
    bound = sensor([*wanted, "999999999"], created_from=consents[0]["created_at"], max_pages=2)
    sim.reset_stats()
    assert bound.poke(context()) is False
    # an id never listed: paging goes on, up to the bound (and the two requests that learn the cursor)
    assert sim.stats.count(method=LIST) - bound.hook.client.stats.probes == 2


def test_bare_ids_list_newest_first_without_a_lower_bound(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consents = request_many(3)
    sim.reset_stats()
    assert sensor([c["id"] for c in consents], phone="0913000001").poke(context()) is False
    # Not every id is there, so the listing goes on to its end: the empty page past the last second (by a
    # date bound: a cursor not learnt yet may skip the rest of a second).
    body, *_, end = list_bodies(sim)
    assert body["filter"] == {"oa_id": OA, "phone": "84913000001"} and body["paging"] == {"limit": 100}
    assert set(end["filter"]) == {"oa_id", "phone", "date_to"} and "after" not in end["paging"]


def test_min_share(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consents = request_many(10)
    for consent in consents[:7]:
        sim.reply(consent["id"], "P")
    assert sensor(consents, min_share=0.8).poke(context()) is False
    result = sensor(consents, min_share=0.7).poke(context())
    assert isinstance(result, PokeReturnValue) and result.is_done
    assert [c["reply_status"] for c in result.xcom_value.values()] == ["P"] * 7 + ["S"] * 3


def test_failure_statuses_list_every_failed_consent(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consents = request_many(6)
    sim.reply(consents[1]["id"], "N")
    sim.reply(consents[4]["id"], "N")
    sim.reply(consents[5]["id"], "P")
    results = finish(sensor(consents, failure_statuses={"N"}), sim, "failed")
    assert results[0] == results[1]
    assert results[0][0] is EtelecomConsentOutcomeError
    assert f"{consents[1]['id']}, {consents[4]['id']}" in results[0][1] and "failure_statuses" in results[0][1]
    skipped = finish(sensor(consents, failure_statuses={"N"}, soft_fail=True), sim, "failed")
    assert {r[0] for r in skipped} == {AirflowSkipException}


def test_failed_send_and_unknown_status(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    sim.fail_send_to("0913000002", error_code=-213, error_message="not following the OA")
    consents = request_many(3)
    with pytest.raises(EtelecomConsentOutcomeError, match=r"-213") as caught:
        sensor(consents).poke(context())
    assert caught.value.consent["id"] == consents[2]["id"]
    odd = sim.add_consent(oa_id=OA, phone="0913000009", reply_status="Q", status="P")
    results = finish(sensor([*consents, odd], soft_fail=True), sim, "unknown")
    assert results[0] == results[1]
    assert results[0][0] is EtelecomConsentOutcomeError and "does not know" in results[0][1]


def test_not_found_after_the_grace_period(etelecom_connection: EtelecomSimulator) -> None:
    consents = request_many(3)
    ids = [*(c["id"] for c in consents), "999999998", "999999999"]
    s = sensor(ids, created_from=consents[0]["created_at"])
    assert s.poke(context()) is False
    with pytest.raises(EtelecomConsentNotFoundError, match="999999998, 999999999") as caught:
        s.poke(context(datetime.now(timezone.utc) - timedelta(seconds=61)))
    assert "2 of 5" in caught.value.message
    with pytest.raises(AirflowSkipException):
        sensor(ids, not_found_grace_period=0, soft_fail=True).poke(context())
    # Not found wins over min_share: every wanted consent's state is in the XCom, or none is.
    for consent in consents:
        etelecom_connection.reply(consent["id"], "P")
    assert sensor(ids, min_share=0.5).poke(context()) is False


@pytest.mark.parametrize(
    "shape",
    [
        lambda cs: [int(c["id"]) for c in cs],
        lambda cs: json.dumps([c["id"] for c in cs]),
        lambda cs: str(cs),  # what {{ ti.xcom_pull(...) }} renders a list of dicts to
        lambda cs: ",".join(c["id"] for c in cs),
        lambda cs: (c for c in cs),  # a lazy sequence, as a mapped task's XCom resolves to
    ],
)
def test_accepted_shapes_of_consent_ids(etelecom_connection: EtelecomSimulator, shape: Any) -> None:
    consents = request_many(3)
    for consent in consents:
        etelecom_connection.reply(consent["id"], "P")
    result = sensor(shape(consents)).poke(context())
    assert list(result.xcom_value) == [c["id"] for c in consents]  # type: ignore[union-attr]


def test_transient_errors_are_not_yet(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consents = request_many(2)
    s = sensor(consents)
    s.hook.max_retries = 0
    sim.script_faults(["503"])
    assert s.poke(context()) is False
    for consent in consents:
        sim.reply(consent["id"], "P")
    assert set(s.poke(context()).xcom_value) == {c["id"] for c in consents}  # type: ignore[union-attr]


def test_auth_error_fails_at_once(etelecom_connection: EtelecomSimulator) -> None:
    consents = request_many(2)
    etelecom_connection.api_key = "etl-ROTATED-key-0000000009"
    with pytest.raises(EtelecomAuthError):
        sensor(consents).poke(context())


# -- deferrable ---------------------------------------------------------------------------------------


def test_deferrable_checks_once_then_defers(etelecom_connection: EtelecomSimulator) -> None:
    consents = request_many(3)
    started = datetime.now(timezone.utc) - timedelta(seconds=10)
    s = sensor(consents, deferrable=True, timeout=3600, not_found_grace_period=90, min_share=0.5, phone=None)
    with pytest.raises(TaskDeferred) as caught:
        s.execute(context(started))
    trigger = caught.value.trigger
    assert isinstance(trigger, ConsentRepliesTrigger) and caught.value.method_name == "execute_complete"
    kwargs = trigger.serialize()[1]
    assert kwargs["consent_ids"] == [c["id"] for c in consents]
    assert kwargs["deadline"] == pytest.approx((started + timedelta(seconds=3600)).timestamp())
    assert kwargs["not_found_deadline"] == pytest.approx((started + timedelta(seconds=90)).timestamp())
    earliest = min(parse_api_time(c["created_at"]) for c in consents)
    assert kwargs["created_from"] == pytest.approx((earliest - timedelta(minutes=5)).timestamp())
    assert (kwargs["min_share"], kwargs["oa_id"], kwargs["phone"]) == (0.5, OA, None)
    assert SECRET_KEY not in json.dumps(trigger.serialize())


def test_deferrable_returns_at_once_when_decided(etelecom_connection: EtelecomSimulator) -> None:
    consents = request_many(2)
    for consent in consents:
        etelecom_connection.reply(consent["id"], "P")
    assert set(sensor(consents, deferrable=True).execute(context())) == {c["id"] for c in consents}


def test_execute_complete_agrees_with_poke(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consents = request_many(4)
    for consent in consents:
        sim.reply(consent["id"], "P")
    results = finish(sensor(consents), sim, "done")
    assert results[0] == results[1] and len(results[0]) == 4


P = {"reply_status": "P", "status": "P"}
DONE = event_for(["1", "2"], {"1": {"id": "1", **P}, "2": {"id": "2", **P}})


@pytest.mark.parametrize(
    "event",
    [
        None,
        {"version": 2, "status": "answered"},  # the unreleased single-consent format
        {**DONE, "version": 7},
        {**DONE, "version": True},
        {**DONE, "status": "failed"},  # the status must be the decision's
        {**DONE, "decision": {**DONE["decision"], "consents": {"1": {"id": "2", **P}}}},
        {**DONE, "decision": {**DONE["decision"], "checked_at": "2026-01-01T00:00:00"}},
        # A decision about other consents than this sensor waits for.
        event_for(["1", "2", "3"], {i: {"id": i, **P} for i in "123"}),
    ],
)
def test_execute_complete_fails_closed(event: Any) -> None:
    with pytest.raises(EtelecomError, match="fail"):
        sensor(["1", "2"]).execute_complete(context(), event)


def test_execute_complete_timeout_and_error() -> None:
    with pytest.raises(AirflowSensorTimeout, match="late"):
        sensor(["1"]).execute_complete(context(), build_event("timeout", message="late"))
    with pytest.raises(AirflowSkipException):
        sensor(["1"], soft_fail=True).execute_complete(context(), build_event("timeout"))
    # A refused key fails without Airflow retries, naming the connection field to fix.
    with pytest.raises(AirflowFailException, match="Password field") as failed:
        sensor(["1"]).execute_complete(context(), build_event("error", error=EtelecomAuthError("refused")))
    assert isinstance(failed.value.__cause__, EtelecomAuthError)
    with pytest.raises(EtelecomAuthError):  # unless the user asks for Airflow's retries
        sensor(["1"], retry_permanent_errors=True).execute_complete(
            context(), build_event("error", error=EtelecomAuthError("refused"))
        )


# -- through Airflow (dag.test(), on Airflow 2 and 3) --------------------------------------------------

DAG_SOURCE = """
import json
from datetime import datetime, timezone

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_etelecom.sensors.consent_replies import ConsentRepliesSensor

with DAG(dag_id={dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)) as dag:
    wait = ConsentRepliesSensor(
        task_id="wait_all", consent_ids={consent_ids!r}, oa_id={oa_id!r}, poke_interval=1, timeout=60, **{kwargs!r}
    )

    @task
    def record(consents):
        with open({out!r}, "w") as handle:
            json.dump(consents, handle)

    record(wait.output)
"""


@pytest.fixture
def sequential_executor_on_airflow_2(monkeypatch: pytest.MonkeyPatch) -> None:
    # As in test_consents_dag.py: Airflow 2's unit-test mode names an executor that refuses SQLite.
    from airflow.providers.common.compat.sdk import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "SequentialExecutor")


def run_dag(dag_id: str, consent_ids: list[str], tmp_path: Path, **sensor_kwargs: Any) -> tuple[str, Any]:
    out = tmp_path / f"{dag_id}.json"
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dag_id}.py"
    path.write_text(
        DAG_SOURCE.format(dag_id=dag_id, consent_ids=consent_ids, oa_id=OA, kwargs=sensor_kwargs, out=str(out))
    )
    dag_run = runpy.run_path(str(path))["dag"].test()
    return str(dag_run.state), json.loads(out.read_text()) if out.exists() else None


@pytest.mark.parametrize(("mode", "kwargs"), [("poke", {"mode": "poke"}), ("deferrable", {"deferrable": True})])
def test_modes_push_every_consent(
    airflow_db: str,
    etelecom_connection: EtelecomSimulator,
    sequential_executor_on_airflow_2: None,
    mode: str,
    kwargs: dict[str, Any],
    tmp_path: Path,
) -> None:
    sim = etelecom_connection
    sim.auto_reply_after_s = 2  # every customer agrees two (real) seconds after the request
    ids = [c["id"] for c in request_many(5)]
    state, seen = run_dag(f"consent_replies_{mode}", ids, tmp_path, **kwargs)
    assert state == "success"
    assert list(seen) == ids and {c["reply_status"] for c in seen.values()} == {"P"}


def test_deferrable_refusal_fails_the_task(
    airflow_db: str, etelecom_connection: EtelecomSimulator, sequential_executor_on_airflow_2: None, tmp_path: Path
) -> None:
    sim = etelecom_connection
    sim.auto_reply_after_s, sim.auto_reply_status = 2, "N"  # checked once, deferred, then refused
    ids = [c["id"] for c in request_many(3)]
    state, seen = run_dag("consent_replies_refused", ids, tmp_path, deferrable=True, failure_statuses=["N"])
    assert state == "failed" and seen is None


CAMPAIGN_DAG = """
import json
from datetime import datetime, timezone

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_etelecom.operators.request_consent import RequestConsentOperator
from airflow_provider_etelecom.sensors.consent_replies import ConsentRepliesSensor

with DAG(dag_id="consent_replies_campaign", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)) as dag:
    ask = RequestConsentOperator.partial(
        task_id="request_consent", oa_id={oa_id!r}, call_type="audio", reason_code="update_order"
    ).expand(phone={phones!r})
    wait = ConsentRepliesSensor(
        task_id="wait_all", consent_ids=ask.output, oa_id={oa_id!r}, poke_interval=1, timeout=60, mode="poke"
    )

    @task
    def record(consents):
        with open({out!r}, "w") as handle:
            json.dump(consents, handle)

    record(wait.output)
"""


def test_a_campaign_reads_the_mapped_requests_without_an_xcom_error(
    airflow_db: str,
    etelecom_connection: EtelecomSimulator,
    sequential_executor_on_airflow_2: None,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The sensor reads a mapped task's output in one slice: iterating it made Airflow 3 ask for the item
    one past the end and log ``[error] XCom not found ... offset=N`` on a green run."""
    sim = etelecom_connection
    sim.auto_reply_after_s = 2
    phones = [f"0914{i:06d}" for i in range(3)]
    out = tmp_path / "campaign.json"
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "consent_replies_campaign.py"
    path.write_text(CAMPAIGN_DAG.format(oa_id=OA, phones=phones, out=str(out)))
    dag_run = runpy.run_path(str(path))["dag"].test()
    assert str(dag_run.state) in ("success", "DagRunState.SUCCESS")
    seen = json.loads(out.read_text())
    assert sorted(c["phone"] for c in seen.values()) == sorted("84" + p[1:] for p in phones)
    captured = capfd.readouterr()
    logged = captured.out + captured.err + caplog.text
    assert "XCom not found" not in logged


# -- changed reads ---------------------------------------------------------------------------------


def test_the_check_before_the_timeout_lists_the_span(etelecom_connection: EtelecomSimulator) -> None:
    """A platform whose replies move no ``updated_at``: the changed reads miss an answer, the last check does not."""
    sim = etelecom_connection
    sim.configure(accepted_sorts=SORTS, ignored_sorts=(), reply_moves_updated_at=False)
    old = request_many(1)
    sim.advance(60)
    new = request_many(1, start=1)
    s = sensor([*old, *new], timeout=3600)
    assert s.poke(context()) is False
    for consent in (*old, *new):
        sim.reply(consent["id"], "P")
    assert s.poke(context()) is False, "a changed read stops above the old consent, whose updated_at stayed"
    assert s.wait.feed.changed
    result = s.poke(context(datetime.now(timezone.utc) - timedelta(seconds=3600)))
    assert isinstance(result, PokeReturnValue) and result.is_done
    assert {c["reply_status"] for c in result.xcom_value.values()} == {"P"}
    assert "updated_at" in str(s.wait.feed.given_up)
