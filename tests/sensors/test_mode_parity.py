"""One policy in every mode: each outcome and fault, waited for by poke, reschedule and deferrable.

Every case runs through the modes, for one consent (:class:`ConsentReplySensor`) and for many
(:class:`ConsentRepliesSensor`), and must end with the same result, or the same exception type,
and the same number of ``ListRequestConsent`` requests in each. Reschedule mode runs twice: as on
Airflow 2.11 and 3.0-3.2 (every check afresh), and with Airflow 3.3's task state store keeping the
wait between checks (``reschedule_kept``). Time is driven (the
simulator's clock, ``time_machine``, recorded retry pauses); nothing sleeps for it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest
import time_machine
from airflow.exceptions import AirflowRescheduleException
from airflow.providers.common.compat.sdk import AirflowFailException, BaseSensorOperator, TaskDeferred

from airflow_provider_etelecom.exceptions import (
    EtelecomConsentNotFoundError,
    EtelecomConsentOutcomeError,
)
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.sensors.consent_replies import ConsentRepliesSensor, ConsentReplySensor
from airflow_provider_etelecom.testing import EtelecomSimulator
from tests.conftest import SECRET_KEY, cursor_lesson_requests
from tests.sensors.conftest import DictTaskStateStore
from tests.triggers.conftest import drive

LIST = "Zalo/ListRequestConsent"
OA = "4239023413265392134"
GHOST = "999999999"
PHONES = itertools.count(1)


@dataclass
class World:
    """What a case sets up, and what it does after each check (the n-th, counted over all modes' checks)."""

    sim: EtelecomSimulator
    traveller: Any
    subject: dict[str, Any] = field(default_factory=dict)
    others: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Case:
    """One row: how to set the subject up, what happens after each check, what the wait ends with."""

    name: str
    setup: Callable[[World, str], None]
    after_check: Callable[[World, int], None] = lambda world, n: None
    expected: type[Exception] | str = "P"
    sensor_kwargs: dict[str, Any] = field(default_factory=dict)


def request(world: World, phone: str) -> None:
    world.subject = EtelecomHook().request_consent(oa_id=OA, phone=phone, call_type="audio", reason_code="update_order")


def answer(reply: str) -> Callable[[World, str], None]:
    def setup(world: World, phone: str) -> None:
        request(world, phone)
        world.sim.reply(world.subject["id"], reply)

    return setup


def no_reply(world: World, phone: str) -> None:
    request(world, phone)
    world.sim.advance(86400 + 1)  # the reply window closed: NS


def expired(world: World, phone: str) -> None:
    world.subject = world.sim.add_consent(
        oa_id=OA, phone=phone, reply_status="S", status="P", expires_at="2020-01-01T00:00:00Z"
    )


def failed_send(world: World, phone: str) -> None:
    world.sim.fail_send_to(phone, error_code=-213, error_message="not following the OA")
    request(world, phone)


def never_listed(world: World, phone: str) -> None:
    world.subject = {"id": GHOST}


def wrong_key_after_first_check(world: World, n: int) -> None:
    if n == 1:
        world.sim.api_key = "etl-ROTATED-key-0000000042"  # the connection still holds the old key


def answered_after_faults(*faults: Any) -> Callable[[World, str], None]:
    def setup(world: World, phone: str) -> None:
        answer("P")(world, phone)
        world.sim.script_faults(list(faults))

    return setup


def lagging(world: World, phone: str) -> None:
    world.sim.listing_lag_s = 30
    request(world, phone)


def listed_then_answered(world: World, n: int) -> None:
    if n == 1:
        world.sim.advance(31)
        world.sim.reply(world.subject["id"], "P")


def answered_after_first_check(world: World, n: int) -> None:
    if n == 1:  # the next check is a changed read where the mode keeps the wait (poke)
        world.sim.reply(world.subject["id"], "P")
        world.sim.advance(60)


CASES = [
    Case("agreed", answer("P")),
    Case("answered_later", request, answered_after_first_check),
    Case("refused", answer("N"), expected="N"),
    Case(
        "refused_is_a_failure",
        answer("N"),
        expected=EtelecomConsentOutcomeError,
        sensor_kwargs={"failure_statuses": ["N"]},
    ),
    Case("no_reply", no_reply, expected="NS"),
    Case("expired", expired, expected=EtelecomConsentOutcomeError),
    Case("failed_send", failed_send, expected=EtelecomConsentOutcomeError),
    Case("never_listed", never_listed, lambda world, n: world.traveller.shift(61), EtelecomConsentNotFoundError),
    Case("wrong_key", request, wrong_key_after_first_check, AirflowFailException),
    # 8 faults: the first check spends the whole budget (6 attempts), the second retries twice.
    Case("flapping_5xx", answered_after_faults("503", "500", "502", "drop", "503", "500", "502", "503")),
    Case("rate_limited", answered_after_faults(("429", 2.0))),
    Case("listing_lag", lagging, listed_then_answered),
]
MODES = ["poke", "reschedule", "reschedule_kept", "deferrable"]


def ti(started: datetime) -> SimpleNamespace:
    """A task instance as a sensor sees it: its try's start, and the first reschedule's (Airflow 3)."""
    return SimpleNamespace(
        start_date=started,
        get_first_reschedule_date=lambda context: started,
        dag_id="parity",
        task_id="wait",
        run_id="parity_run",
        map_index=-1,
        max_tries=0,
        try_number=1,
    )


def run(mode: str, build: Callable[..., BaseSensorOperator], after_check: Callable[[], None]) -> Any:
    """Wait in ``mode`` until the sensor returns or raises; ``after_check`` runs after every check."""
    context: dict[str, Any] = {"ti": ti(datetime.now(timezone.utc))}

    def counted(sensor: BaseSensorOperator) -> BaseSensorOperator:
        poke = sensor.poke

        def counting(context: Any) -> Any:
            try:
                return poke(context)
            finally:
                after_check()

        sensor.poke = counting  # type: ignore[method-assign]
        return sensor

    if mode == "poke":
        return counted(build(mode="poke")).execute(context)
    if mode.startswith("reschedule"):
        if mode == "reschedule_kept":  # Airflow 3.3+: the task instance's store outlives each check's process
            context["task_state_store"] = DictTaskStateStore()
        while True:  # every reschedule is a new process: a new sensor object
            try:
                return counted(build(mode="reschedule")).execute(context)
            except AirflowRescheduleException:
                continue
    sensor = counted(build(deferrable=True))
    try:
        return sensor.execute(context)
    except TaskDeferred as deferred:
        event, _ = drive(deferred.trigger, lambda n: after_check())
        return sensor.execute_complete(context, event)


def builder(shape: str, world: World, phone: str, common: dict[str, Any]) -> Callable[..., BaseSensorOperator]:
    """Build the sensor of ``shape`` for the case's consents (a new one for each reschedule)."""
    subject_id, wanted = world.subject["id"], [*world.others, world.subject]

    def build(**kwargs: Any) -> BaseSensorOperator:
        if shape == "one":
            return ConsentReplySensor(task_id="wait", consent_id=subject_id, phone=phone, oa_id=OA, **common, **kwargs)
        return ConsentRepliesSensor(task_id="wait", consent_ids=wanted, oa_id=OA, **common, **kwargs)

    return build


@pytest.mark.parametrize("shape", ["one", "many"])
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_every_mode_ends_the_same_way(
    airflow_db: str,
    etelecom_connection: EtelecomSimulator,
    retry_pauses: list[float],
    platform_variant: str | None,
    case: Case,
    shape: str,
) -> None:
    sim = etelecom_connection
    outcomes: dict[str, Any] = {}
    pages: dict[str, int] = {}
    for mode in MODES:
        with time_machine.travel(datetime.now(timezone.utc), tick=True) as traveller:
            world = World(sim, traveller)
            phone = f"0915{next(PHONES):06d}"
            if shape == "many":
                for _ in range(2):
                    request(world, f"0916{next(PHONES):06d}")
                    sim.reply(world.subject["id"], "P")
                    world.others.append(world.subject)
            sim.reset_stats()
            case.setup(world, phone)
            del retry_pauses[:]
            checks = 0

            def after_check(world: World = world) -> None:
                nonlocal checks
                checks += 1
                case.after_check(world, checks)

            build = builder(shape, world, phone, {"poke_interval": 0.01, "timeout": 3600, **case.sensor_kwargs})
            try:
                result: Any = run(mode, build, after_check)
            except Exception as error:
                result = type(error)
            else:
                consent = result if shape == "one" else result[world.subject["id"]]
                assert shape == "one" or set(result) == {c["id"] for c in [*world.others, world.subject]}
                result = consent["reply_status"]
            waited_retry_after = any(pause >= 2.0 for pause in retry_pauses)
            # Lessons about the cursor cost a client once: a poking sensor keeps its client, a rescheduled one
            # starts afresh. What a client knows also decides how it moves on (by the cursor once learnt, by a
            # date bound that reads a consent again until then): the pages read may differ by one.
            pages[mode] = sim.stats.count(method=LIST) - cursor_lesson_requests(sim)
            outcomes[mode] = (result, len(retry_pauses), waited_retry_after)
        sim.listing_lag_s, sim.api_key = 0, SECRET_KEY
    assert outcomes["poke"] == outcomes["reschedule"] == outcomes["reschedule_kept"] == outcomes["deferrable"], outcomes
    assert outcomes["poke"][0] == case.expected
    # A refused or ignored sort costs the mode that keeps its wait (poke) the changed read it tries
    # before giving it up: the pages are compared on the platform that takes the sort.
    if platform_variant in (None, "defaults"):
        assert max(pages.values()) - min(pages.values()) <= 1, pages
    if case.name == "rate_limited":  # the Retry-After was waited (not slept: recorded), within the budget
        assert outcomes["poke"][1:] == (1, True)
        assert platform_variant not in (None, "defaults") or pages["poke"] == 2
