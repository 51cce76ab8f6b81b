"""ConsentReplyEventTrigger under every platform variant: changed reads lose no answer and repeat none.

The watcher reads what changed since its watermark (``sort=-updated_at``) and lists the span every
sixth poll (:class:`~airflow_provider_etelecom.client.changes.ChangeFeed`). Every guess those reads
rest on has a switch in the simulator (:data:`PLATFORM_VARIANTS`); under each, a campaign answered
over thirteen polls, with new consents sent meanwhile (one answered before the listing shows it),
must fire exactly the consents that left ``S``, each once, at the first poll whose listing can show
its answer. Only where the platform breaks what the changed reads rest on (the sort ignored,
``updated_at`` not moved on a reply) may an answer wait for the verifying span read, which then
gives the changed reads up. Airflow 3 only (the class needs it).
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_etelecom.client.changes import VERIFY_EVERY
from airflow_provider_etelecom.testing import PLATFORM_VARIANTS, EtelecomSimulator
from airflow_provider_etelecom.triggers.consent_reply_event import ConsentReplyEventTrigger
from tests.conftest import SECRET_KEY

OA = "4239023413265392134"
LIST = "Zalo/ListRequestConsent"
POLLS = 2 * VERIFY_EVERY + 1
#: Variants whose platform breaks what a changed read rests on: an answer may wait for the span read.
LATE = {"updated_at_sort_ignored": VERIFY_EVERY, "reply_keeps_updated_at": VERIFY_EVERY}


@pytest.fixture(params=sorted(PLATFORM_VARIANTS))
def variant(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


#: The connection setting that makes the client exact on a platform that reads or shows times another
#: way than documented (without it the listing fails loudly): ``tests/reliability/test_platform_variants.py``.
ESCAPE_HATCHES: dict[str, dict[str, object]] = {
    "filter_local_zone": {"platform_filter_zone": "Asia/Ho_Chi_Minh"},
    "shown_local_as_z": {"platform_shown_zone": "Asia/Ho_Chi_Minh"},
    "filter_on_updated_at": {"date_filters_on_client": True},
}


@pytest.fixture
def etelecom_simulator_options(variant: str) -> dict[str, object]:
    return {"consents": 0, "seed": 7, "api_key": SECRET_KEY, **PLATFORM_VARIANTS[variant]}


@pytest.fixture
def connection(
    etelecom_connection: EtelecomSimulator, variant: str, monkeypatch: pytest.MonkeyPatch
) -> EtelecomSimulator:
    """The simulator, with the connection's escape hatch for the variant set in its extra."""
    conn = {"conn_type": "etelecom", "host": etelecom_connection.base_url, "password": SECRET_KEY}
    monkeypatch.setenv("AIRFLOW_CONN_ETELECOM_DEFAULT", json.dumps({**conn, "extra": ESCAPE_HATCHES.get(variant, {})}))
    return etelecom_connection


class Stop(Exception):
    """Ends a drained watcher once it has polled as often as the test asked."""


class Campaign:
    """A day's campaign in one OA, answered between polls while new requests go out."""

    def __init__(self, sim: EtelecomSimulator) -> None:
        self.sim, self.rng = sim, random.Random(5)
        now = sim.now() + timedelta(seconds=float(sim.clock_offset_s))  # the platform's clock: it stamps answers
        self.old = {  # answered two days ago: outside the reply window
            str(
                sim.add_consent(oa_id=OA, reply_status="P", status="P", created_at=now - timedelta(days=2, seconds=i))[
                    "id"
                ]
            )
            for i in range(120)
        }
        self.waiting = [  # 250 pending, requested over the last two hours
            str(
                sim.add_consent(
                    oa_id=OA, reply_status="S", status="P", created_at=now - timedelta(seconds=7200 - 28 * i)
                )["id"]
            )
            for i in range(250)
        ]
        sim.advance(60)  # a minute after they were stamped: listed now, whatever the listing lag
        self.answerable: list[str] = []  # requested in an earlier gap: listed by now whatever the lag
        self.visible: list[set[str]] = []  # the non-S consents a listing can show, at each poll

    def answer(self, consent_id: str) -> None:
        self.sim.reply(consent_id, self.rng.choice("PN"))

    def between_polls(self, n: int) -> None:
        sim = self.sim
        if n > 1:
            sim.advance(50)
            self.rng.shuffle(self.waiting)
            for _ in range(8):
                self.answer(self.waiting.pop())
            if self.answerable:
                self.answer(self.answerable.pop(0))
            new = [str(sim.add_consent(oa_id=OA, reply_status="S", status="P")["id"]) for _ in range(3)]
            # Requested and answered at once: under a listing lag the listing shows it only after a newer
            # answer (below) was listed, so its updated_at is below the watermark when it first shows.
            quick = str(sim.add_consent(oa_id=OA, reply_status="S", status="P")["id"])
            sim.advance(5)
            self.answer(quick)
            sim.advance(4)
            self.answer(self.waiting.pop())
            sim.advance(1)
            self.answerable.extend(new)
        self.visible.append(
            {
                str(c["id"])
                for c in sim.consents(visible_only=True)
                if str(c["oa_id"]) == OA and c["reply_status"] != "S" and str(c["id"]) not in self.old
            }
        )


def drain_by_poll(
    trigger: ConsentReplyEventTrigger, campaign: Campaign, sim: EtelecomSimulator
) -> tuple[dict[str, list[int]], list[int]]:
    """Run ``POLLS`` polls; return consent id -> the polls that fired it, and the requests of each poll."""
    polls, fired, requests = 0, {}, []  # type: ignore[var-annotated]
    list_span = trigger._list_span

    def counting(*args: Any) -> Any:
        nonlocal polls
        if polls:
            requests.append(sim.stats.count(method=LIST))
        if polls == POLLS:
            raise Stop
        polls += 1
        campaign.between_polls(polls)
        sim.reset_stats()
        return list_span(*args)

    trigger._list_span = counting  # type: ignore[method-assign]

    async def collect() -> None:
        async for event in trigger.run():
            fired.setdefault(event.payload["consent_id"], []).append(polls)

    with pytest.raises(Stop):
        asyncio.run(asyncio.wait_for(collect(), timeout=120))
    return fired, requests


def test_every_answer_fires_once_on_time_under_every_variant(connection: EtelecomSimulator, variant: str) -> None:
    sim = connection
    campaign = Campaign(sim)
    trigger = ConsentReplyEventTrigger(oa_id=OA, poke_interval=0.001)
    fired, requests = drain_by_poll(trigger, campaign, sim)
    assert all(len(polls) == 1 for polls in fired.values()), {k: v for k, v in fired.items() if len(v) > 1}
    missed = {i: sim.consent(i) for i in campaign.visible[-1] - set(fired)}
    assert set(fired) == campaign.visible[-1], f"fired exactly the consents that left S; missed {missed}"
    late = {}
    for consent_id, (poll,) in fired.items():
        first = next(n for n, shown in enumerate(campaign.visible, 1) if consent_id in shown)
        if poll != first:
            late[consent_id] = (first, poll)
    if variant in LATE:
        assert all(poll <= max(first, LATE[variant]) or poll - first <= 1 for first, poll in late.values()), late
    else:
        assert not late, f"answers fired after the first poll that could show them: {late}"
    if variant == "defaults":  # the first poll lists the span; the others read changes, the 6th and 12th verify
        assert requests[0] >= 4 and max(requests[1:5]) == 1 and requests[5] >= 4, requests
        assert json.dumps(requests) and sum(requests[1:7]) / 6 <= 6, requests
