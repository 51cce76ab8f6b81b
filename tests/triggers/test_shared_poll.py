"""Deferred waits of one connection and OA share one listing per poll; each still ends as it would alone."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_etelecom.client.shared_span import SharedSpan
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.testing import EtelecomSimulator
from airflow_provider_etelecom.triggers import shared_poll
from tests.conftest import SECRET_KEY
from tests.triggers.shared import OA, deferred, run_together

LIST = "Zalo/ListRequestConsent"


def campaign(sim: EtelecomSimulator, n: int, first_phone: int = 0) -> list[dict[str, Any]]:
    hook = EtelecomHook()
    return [
        hook.request_consent(
            oa_id=OA, phone=f"09{first_phone + i:08d}", call_type="audio", reason_code="product_service_consulting"
        )
        for i in range(n)
    ]


def test_waits_share_one_listing_per_poll(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consents = campaign(sim, 40)
    triggers = [deferred(c, many=i % 2 == 1) for i, c in enumerate(consents)]
    sim.reset_stats()
    polls: list[int] = []

    def answer() -> None:
        polls.append(sim.stats.count(method=LIST))
        for i, consent in enumerate(consents):
            sim.reply(consent["id"], "P" if i % 3 else "N")

    events = run_together(triggers, answer)
    assert [e["status"] for e in events] == ["done"] * 40
    replies = [e["decision"]["consents"][c["id"]]["reply_status"] for e, c in zip(events, consents, strict=True)]
    assert replies == ["P" if i % 3 else "N" for i in range(40)]
    # The first check of 40 waits is one span read of a page; every later poll a page or two of changes.
    assert polls[0] <= 2
    assert sim.stats.count(method=LIST) <= polls[0] + 6


def test_a_lone_wait_reads_as_it_always_did(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    (consent,) = campaign(sim, 1)
    sim.reply(consent["id"], "P")
    trigger = deferred(consent)
    sim.reset_stats()
    (event,) = run_together([trigger])
    assert event["status"] == "done"
    (entry,) = [e for e in sim.requests_log if e["method"] == LIST]
    assert entry["body"]["filter"]["phone"] == consent["phone"]  # its own read: its phone's newest page


def test_late_joiners_and_leavers_change_what_the_next_poll_reads(etelecom_connection: EtelecomSimulator) -> None:
    import asyncio

    sim = etelecom_connection
    early = campaign(sim, 4)
    sim.advance(10)
    late = campaign(sim, 4, first_phone=100)
    sim.advance(10)
    joiner = campaign(sim, 2, first_phone=200)
    early_triggers, late_triggers = [deferred(c) for c in early], [deferred(c) for c in late]
    joiner_triggers = [deferred(c) for c in joiner]
    for consent in early:  # the early customers answer before the first poll: those waits leave
        sim.reply(consent["id"], "P")
    sim.reset_stats()

    def shared_reads() -> list[tuple[str, str]]:
        return [
            (e["body"]["paging"].get("sort"), e["body"]["filter"]["date_from"])
            for e in sim.requests_log
            if e["method"] == LIST and "phone" not in e["body"]["filter"]
        ]

    async def scenario() -> list[Any]:
        first = [asyncio.create_task(t.run().__anext__()) for t in early_triggers + late_triggers]
        await asyncio.gather(*first[:4])  # the early waits fired and left
        while len(shared_reads()) < 2:  # a poll after they left
            await asyncio.sleep(0.01)
        joined = [asyncio.create_task(t.run().__anext__()) for t in joiner_triggers]
        while len(shared_reads()) < 4:
            await asyncio.sleep(0.01)
        for consent in late + joiner:
            sim.reply(consent["id"], "N")
        return [event.payload["status"] for event in await asyncio.gather(*first, *joined)]

    assert asyncio.run(asyncio.wait_for(scenario(), 30)) == ["done"] * 10
    reads = shared_reads()
    # The first poll read every wait's span from the earliest; once the early waits left, the span
    # starts at the late ones; the joiners' first check is a span read of their own span.
    assert reads[0][0] == "created_at" and reads[1][1] > reads[0][1]
    joiners_start = min(r[1] for r in reads if r[0] == "created_at" and r[1] > reads[1][1])
    assert joiners_start > reads[1][1]


def test_a_refused_key_is_each_waits_own_error_after_one_reread(
    etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = etelecom_connection
    consents = campaign(sim, 10)
    triggers = [deferred(c) for c in consents]
    rereads: list[str] = []
    reread = EtelecomHook._reread_config
    monkeypatch.setattr(EtelecomHook, "_reread_config", lambda hook: rereads.append("read") or reread(hook))
    sim.api_key = "etl-ROTATED-key-0000000009"
    sim.reset_stats()
    events = run_together(triggers)
    assert [(e["status"], e["error_class"]) for e in events] == [("error", "EtelecomAuthError")] * 10
    # One shared read; the connection, read once more, still holds the refused key: no second request.
    assert rereads == ["read"] and sim.stats.count(method=LIST) == 1
    assert SECRET_KEY not in json.dumps(events)


def test_a_crashed_poll_leaves_no_wait_waiting(
    etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = etelecom_connection
    consents = campaign(sim, 10)
    triggers = [deferred(c) for c in consents]
    read = SharedSpan.read
    polls = []

    def crashing(self: SharedSpan, *args: Any, **kwargs: Any) -> Any:
        polls.append(1)
        if len(polls) == 2:
            raise RuntimeError("a bug in the shared poll")
        return read(self, *args, **kwargs)

    monkeypatch.setattr(SharedSpan, "read", crashing)

    def answer() -> None:
        for consent in consents:
            sim.reply(consent["id"], "P")

    events = run_together(triggers, answer)
    # The second poll crashed: every wait went on with its own reads and ended as it would have.
    assert [e["status"] for e in events] == ["done"] * 10
    assert not shared_poll._POLLS


def test_a_cancelled_wait_leaves_the_poll(etelecom_connection: EtelecomSimulator) -> None:
    import asyncio

    sim = etelecom_connection
    consents = campaign(sim, 3)
    triggers = [deferred(c) for c in consents]

    async def scenario() -> list[Any]:
        tasks = [asyncio.create_task(t.run().__anext__()) for t in triggers]
        await asyncio.sleep(0.3)
        tasks[0].cancel()
        poll = shared_poll._POLLS[("etelecom_default", OA)]
        for consent in consents[1:]:
            sim.reply(consent["id"], "P")
        done = await asyncio.gather(*tasks[1:])
        await asyncio.sleep(0)
        return [poll.members, [e.payload["status"] for e in done]]

    members, statuses = asyncio.run(scenario())
    assert members == [] and statuses == ["done", "done"]


def test_the_poll_runs_at_the_shortest_poke_interval(etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    consents = campaign(sim, 4)
    # Three waits would check hourly alone; the fourth checks every 50 ms, and so does their poll.
    triggers = [deferred(c, poke_interval=3600.0 if i else 0.05) for i, c in enumerate(consents)]

    def answer() -> None:
        for consent in consents:
            sim.reply(consent["id"], "P")

    events = run_together(triggers, answer, timeout=20)
    assert [e["status"] for e in events] == ["done"] * 4


def test_a_transient_failure_of_the_shared_read_is_checked_again_at_the_next_poll(
    etelecom_connection: EtelecomSimulator, retry_pauses: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    sim = etelecom_connection
    consents = campaign(sim, 10)
    triggers = [deferred(c) for c in consents]
    for consent in consents:
        sim.reply(consent["id"], "N")
    sim.reset_stats()
    sim.script_faults(["503"] * 7)  # the first attempt and 5 retries fail, then one more
    polls: list[str] = []
    events = run_together(triggers, lambda: polls.append(repr(shared_poll._POLLS)))
    assert [e["status"] for e in events] == ["done"] * 10
    # One shared read spent the budget (6 requests), the next poll's read met one more fault and then
    # succeeded: 8 requests for ten waits, as one lone wait spends.
    assert sim.stats.count(method=LIST) == 8 and len(retry_pauses) == 6
    assert sum("will check again" in r.getMessage() for r in caplog.records) == 10  # each wait logs its own
    assert SECRET_KEY not in polls[0] + caplog.text and OA in polls[0]
