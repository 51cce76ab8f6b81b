"""ConsentReplyEventTrigger.run() drained against the simulator over loopback (Airflow 3 only).

Time is driven, not slept: tiny poke intervals, replies made between two polls, the simulator's
clock advanced for ``NS``. The asset state store is Airflow's accessor API (``aget``/``aset``)
kept in a dict: the real one only exists inside a running triggerer (``scripts/e2e-celery`` checks
the watcher there).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.testing import EtelecomSimulator
from airflow_provider_etelecom.triggers.consent_reply_event import ConsentReplyEventTrigger, WatchState
from tests.conftest import SECRET_KEY
from tests.triggers.conftest import rebuilt

LIST = "Zalo/ListRequestConsent"
OA = "4239023413265392134"


@pytest.fixture
def etelecom_simulator_options() -> dict[str, object]:
    return {"consents": 0, "seed": 7, "api_key": SECRET_KEY}


class Stop(Exception):
    """Ends a drained watcher once it has polled as often as the test asked."""


class DictStateStore:
    """Airflow 3.3's asset state store accessor API, in a dict (survives a 'restart')."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.writes = 0

    async def aget(self, key: str, default: Any = None) -> Any:
        return json.loads(json.dumps(self.values.get(key, default)))

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))
        self.writes += 1


def drain(
    trigger: ConsentReplyEventTrigger, polls: int, before_poll: Callable[[int], None] | None = None
) -> list[dict[str, Any]]:
    """Run the watcher for ``polls`` polls; call ``before_poll(n)`` before the n-th; return the payloads."""
    listed = 0
    list_span = trigger._list_span

    def counting(*args: Any) -> Any:
        nonlocal listed
        if listed == polls:
            raise Stop
        listed += 1
        if before_poll is not None:
            before_poll(listed)
        return list_span(*args)

    trigger._list_span = counting  # type: ignore[method-assign]
    payloads: list[dict[str, Any]] = []

    async def collect() -> None:
        async for event in trigger.run():
            payloads.append(event.payload)

    with pytest.raises(Stop):
        asyncio.run(asyncio.wait_for(collect(), timeout=60))
    assert listed == polls
    return payloads


def request(n: int, prefix: str = "0914") -> list[dict[str, Any]]:
    hook = EtelecomHook()
    return [
        hook.request_consent(oa_id=OA, phone=f"{prefix}{i:06d}", call_type="audio", reason_code="update_order")
        for i in range(n)
    ]


def watcher(**overrides: Any) -> ConsentReplyEventTrigger:
    return ConsentReplyEventTrigger(**{"oa_id": OA, "poke_interval": 0.01, **overrides})


def test_one_event_per_answer_p_n_ns_none_for_s_and_none_repeated(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    c = request(5)

    def before_poll(n: int) -> None:
        if n == 1:
            sim.reply(c[0]["id"], "P")
            sim.reply(c[1]["id"], "N")
        if n == 3:
            sim.reply(c[2]["id"], "P")
            sim.advance(timedelta(hours=24, seconds=1).total_seconds())  # c[3], c[4]: no answer -> NS

    payloads = drain(watcher(), 4, before_poll)
    by_id = {p["consent_id"]: p for p in payloads}
    assert len(payloads) == len(by_id) == 5  # each once, across four polls
    assert [by_id[x["id"]]["reply_status"] for x in c] == ["P", "N", "P", "NS", "NS"]
    assert [p["consent_id"] for p in payloads[:2]] == [c[0]["id"], c[1]["id"]]  # the first poll's, in order
    for payload in payloads:
        stored = sim.consent(payload["consent_id"])
        assert stored is not None
        assert payload["dedup_key"] == f"{stored['id']}:{stored['updated_at']}"
        assert payload["oa_id"] == OA and payload["created_at"] == stored["created_at"]
        assert "phone" not in payload and SECRET_KEY not in json.dumps(payload)


def test_still_pending_consents_fire_nothing(etelecom_connection: EtelecomSimulator) -> None:
    request(3)
    assert drain(watcher(), 3) == []


def test_phone_only_when_asked(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    (c,) = request(1)
    sim.reply(c["id"], "P")
    (payload,) = drain(watcher(include_phone=True), 1)
    assert payload["phone"] == c["phone"]


def test_serialize_is_json_deterministic_and_has_no_key(etelecom_connection: EtelecomSimulator) -> None:
    from airflow.triggers.base import BaseEventTrigger

    trigger = watcher(call_type="audio", reason_code="update_order", include_phone=True)
    path, kwargs, again = rebuilt(trigger)
    assert BaseEventTrigger.hash(path, kwargs) == BaseEventTrigger.hash(*again.serialize())
    assert again.state_key == trigger.state_key != watcher().state_key


def test_cost_per_poll_is_the_pending_span_once_then_one_page_of_changes(
    etelecom_connection: EtelecomSimulator,
) -> None:
    sim = etelecom_connection
    now = datetime.now(timezone.utc)
    for i in range(3_000):  # last month's answered consents: outside the reply window, never listed
        sim.add_consent(oa_id=OA, reply_status="P", status="P", created_at=now - timedelta(days=30, seconds=i))
    for i in range(2_000):  # a campaign over the last 20 hours, all still pending
        sim.add_consent(oa_id=OA, reply_status="S", status="P", created_at=now - timedelta(hours=20, seconds=-30 * i))
    sim.reset_stats()
    logs: list[list[dict[str, Any]]] = []

    def before_poll(n: int) -> None:
        logs.append(sim.requests_log)
        sim.reset_stats()

    assert drain(watcher(), 3, before_poll) == []
    polls = [*logs[1:], sim.requests_log]
    sorts = [[(entry["body"].get("paging") or {}).get("sort") for entry in log] for log in polls]
    # The first poll takes the watermark from one page of changes, then lists the span: 2,000 consents in
    # it, 20 full pages and the empty one that ends the listing; no tie has shown what the cursor holds,
    # so each page moves on by a date bound that reads its last consent again (one consent in a hundred:
    # a 21st page), and the last, short page's second is read again before the empty page.
    assert sorts[0][0] == "-updated_at" and set(sorts[0][1:]) == {"created_at"} and 21 <= len(sorts[0]) - 1 <= 23
    # The next polls read what changed since: nothing, so the first page of changes ends the read.
    assert sorts[1:] == [["-updated_at"], ["-updated_at"]]


def test_an_answer_fires_at_the_next_poll_from_a_changed_read(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    c = request(3)

    def before_poll(n: int) -> None:
        sim.reset_stats()
        if n == 3:
            sim.reply(c[1]["id"], "N")
            sim.advance(60)

    payloads = drain(watcher(), 3, before_poll)
    assert [p["consent_id"] for p in payloads] == [c[1]["id"]]
    # Three consents, all within the margin below the watermark: the page of changes, and the empty one.
    assert [entry["body"]["paging"]["sort"] for entry in sim.requests_log] == ["-updated_at", "-updated_at"]


def test_no_repeat_after_a_restart_with_the_asset_state_store(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    c = request(3)
    store = DictStateStore()
    first = watcher()
    first.asset_state_store = store  # what the triggerer injects for a single watched asset
    sim.reply(c[0]["id"], "P")
    assert [p["consent_id"] for p in drain(first, 2)] == [c[0]["id"]]
    assert store.writes == 1  # written at the second poll, one poll after the event was yielded
    (record,) = store.values.values()
    assert set(record["fired"]) == {c[0]["id"]}

    restarted = watcher()  # a new triggerer process: nothing in memory
    restarted.asset_state_store = store
    sim.reply(c[1]["id"], "N")  # answered while the triggerer was down
    assert [p["consent_id"] for p in drain(restarted, 2)] == [c[1]["id"]]


def test_without_a_state_store_a_restart_repeats_same_dedup_key(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    (c,) = request(1)
    sim.reply(c["id"], "P")
    (before,) = drain(watcher(), 2)
    (after,) = drain(watcher(), 1)  # Airflow 3.0-3.2: the documented repeat
    assert after == before


def test_a_restart_mid_wait_loses_no_answer_repeats_no_event_and_reads_changes_again(
    etelecom_connection: EtelecomSimulator,
) -> None:
    sim = etelecom_connection
    c = request(6)
    store = DictStateStore()

    def before_first(n: int) -> None:  # answers between the first watcher's polls
        sim.reply(c[n - 1]["id"], "P")
        sim.advance(60)

    first = watcher()
    first.asset_state_store = store
    assert [p["consent_id"] for p in drain(first, 3, before_first)] == [c[0]["id"], c[1]["id"], c[2]["id"]]
    (record,) = store.values.values()
    # Written one poll after each event, at the top of the loop: the stop came after the last write.
    assert record["version"] == 2 and set(record["fired"]) == {c[0]["id"], c[1]["id"], c[2]["id"]}
    assert record["newest"] is not None and SECRET_KEY not in json.dumps(record)

    sim.reply(c[3]["id"], "N")  # answered while the triggerer was down
    sim.advance(60)
    logs: list[list[dict[str, Any]]] = []

    def before_second(n: int) -> None:
        logs.append(sim.requests_log)
        sim.reset_stats()
        if n == 2:
            sim.reply(c[4]["id"], "P")
            sim.advance(60)

    restarted = watcher()
    restarted.asset_state_store = store
    payloads = drain(restarted, 3, before_second)
    assert [p["consent_id"] for p in payloads] == [c[3]["id"], c[4]["id"]]
    polls = [*logs[1:], sim.requests_log]
    sorts = [[(entry["body"].get("paging") or {}).get("sort") for entry in log] for log in polls]
    # The restart lists the span once (no mark: the stored watermark), then reads changes from the record.
    assert set(sorts[0]) == {"created_at"} and all(set(later) == {"-updated_at"} for later in sorts[1:])


def test_a_version_1_record_is_read_without_a_watermark() -> None:
    old = {"version": 1, "span_from": 1_700_000_000.0, "fired": {"7": 1_700_000_100.0}}
    assert WatchState.from_json(old) == WatchState(1_700_000_000.0, {"7": 1_700_000_100.0}, None)
    assert WatchState.from_json({**old, "version": 3}) is None
    assert WatchState.from_json({**old, "version": 2, "newest": "soon"}) is None
