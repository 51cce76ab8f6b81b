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
from airflow_provider_etelecom.triggers.consent_reply_event import ConsentReplyEventTrigger
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


def test_cost_per_poll_is_the_pending_span_not_the_history(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    now = datetime.now(timezone.utc)
    for i in range(3_000):  # last month's answered consents: outside the reply window, never listed
        sim.add_consent(oa_id=OA, reply_status="P", status="P", created_at=now - timedelta(days=30, seconds=i))
    for i in range(2_000):  # a campaign over the last 20 hours, all still pending
        sim.add_consent(oa_id=OA, reply_status="S", status="P", created_at=now - timedelta(hours=20, seconds=-30 * i))
    sim.reset_stats()
    assert drain(watcher(), 3) == []
    # 2,000 consents in the span: 20 full pages and the empty one that ends the listing, per poll; no
    # tie has shown what the cursor holds, so each page moves on by a date bound that reads its last
    # consent again (one consent in a hundred: a 21st page), and the last, short page's second is read
    # again before the empty page.
    assert 3 * 21 <= sim.stats.requests_by_method[LIST] <= 3 * 23


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
