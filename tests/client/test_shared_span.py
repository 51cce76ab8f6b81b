"""One read for many waits of an OA (:class:`SharedSpan`): each wait decides as it would alone.

Airflow-free, over loopback HTTP, under each platform behaviour the changed reads depend on
(:data:`READING_VARIANTS`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_etelecom.client import ClientConfig, EtelecomClient
from airflow_provider_etelecom.client.replies import ReplyWait
from airflow_provider_etelecom.client.shared_span import SharedSpan, SharedWait
from airflow_provider_etelecom.testing import PLATFORM_VARIANTS, READING_VARIANTS, EtelecomSimulator

KEY = "shared-key-0123456789"
OA = "4239023413265392134"
LIST = "Zalo/ListRequestConsent"


@pytest.fixture(params=READING_VARIANTS)
def sim(request: pytest.FixtureRequest) -> Iterator[EtelecomSimulator]:
    with EtelecomSimulator(consents=50, seed=13, api_key=KEY, **PLATFORM_VARIANTS[request.param]) as simulator:
        yield simulator


@pytest.fixture
def client(sim: EtelecomSimulator) -> Iterator[EtelecomClient]:
    with EtelecomClient(ClientConfig(base_url=sim.base_url, api_key=KEY)) as made:
        yield made


def listed_wait(consent: dict[str, object]) -> SharedWait:
    """A single consent's wait, as the trigger starts it after the sensor's check listed the consent."""
    probe = ReplyWait(consent_ids=[str(consent["id"])], oa_id=OA, phone=str(consent["phone"]), max_pages=1)
    probe.settled = {str(consent["id"]): consent}  # type: ignore[dict-item]
    wait = ReplyWait(consent_ids=[str(consent["id"])], oa_id=OA, phone=str(consent["phone"]), max_pages=1)
    return SharedWait(wait, listed_from=probe.span_from())


def campaign(sim: EtelecomSimulator, n: int) -> list[dict[str, object]]:
    start = sim.now() - timedelta(seconds=n + 60)
    return [
        sim.add_consent(
            oa_id=OA, phone=f"0916{i:06d}", reply_status="S", status="P", created_at=start + timedelta(seconds=i)
        )
        for i in range(n)
    ]


def test_one_read_per_poll_and_each_wait_decides_as_alone(sim: EtelecomSimulator, client: EtelecomClient) -> None:
    consents = campaign(sim, 30)
    waits = [listed_wait(c) for c in consents]
    span = SharedSpan(OA)
    for poll in range(4):
        now = datetime.now(timezone.utc)
        lone = [copy.deepcopy(w.wait) for w in waits]
        sim.reset_stats()
        result = span.read(client, waits, now, 60.0)
        shared_requests = sim.stats.count(method=LIST)
        assert not result.errors
        decided = {**result.decisions}
        for shared in result.alone:
            decided[shared] = shared.check_alone(client, now, 60.0)
        alone = [wait.check(client, now, not_found_expired=False) for wait in lone]
        assert [decided[w].status for w in waits] == [d.status for d in alone], poll
        assert [decided[w].consents for w in waits] == [d.consents for d in alone], poll
        assert shared_requests <= 3, poll  # 30 waits, one page of the span (a sort probe, a verification)
        waits = [w for w in waits if decided[w].status == "waiting"]
        for consent in consents[poll * 8 : poll * 8 + 8]:
            sim.reply(str(consent["id"]), "P" if poll % 2 else "N")
        sim.advance(5)
    assert len(waits) == 30 - 24


def test_a_wait_that_missed_a_poll_is_read_again_from_its_span(sim: EtelecomSimulator, client: EtelecomClient) -> None:
    a1, a2, b, c = campaign(sim, 4)
    wait_a, wait_a2, wait_b = listed_wait(a1), listed_wait(a2), listed_wait(b)
    span = SharedSpan(OA)
    now = datetime.now(timezone.utc)
    span.read(client, [wait_a, wait_a2, wait_b], now, 60.0)
    sim.reply(str(b["id"]), "P")  # b answers while its trigger misses the next poll
    sim.advance(10)
    sim.reply(str(c["id"]), "N")  # a later answer: the next changed read's watermark passes b's
    span.read(client, [wait_a, wait_a2], now, 60.0)
    result = span.read(client, [wait_a, wait_a2, wait_b], datetime.now(timezone.utc), 60.0)
    decision = result.decisions.get(wait_b) or wait_b.check_alone(client, datetime.now(timezone.utc), 60.0)
    assert decision.status == "done" and decision.consents[str(b["id"])]["reply_status"] == "P"


def test_bare_ids_and_lone_waits_read_alone(sim: EtelecomSimulator, client: EtelecomClient) -> None:
    (consent,) = campaign(sim, 1)
    bare = SharedWait(ReplyWait(consent_ids=[str(consent["id"])], oa_id=OA, phone=str(consent["phone"]), max_pages=1))
    listed = listed_wait(consent)
    span = SharedSpan(OA)
    sim.reset_stats()
    result = span.read(client, [bare, listed], datetime.now(timezone.utc), 60.0)
    # The bare id has no span; the listed wait alone makes a poll of one: both read alone, nothing shared.
    assert result.alone == [bare, listed] and sim.stats.count(method=LIST) == 0
