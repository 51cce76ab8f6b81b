"""The reading strategy of a wait (:class:`ChangeFeed`): the span once, then only what changed.

Every test drives :meth:`ReplyWait.check` against the simulator over loopback HTTP, under each of
the platform behaviours the changed reads depend on (:data:`READING_VARIANTS`: ``updated_at``
sorted, the sort refused, the sort ignored, ``updated_at`` not moved on reply). Whatever the
variant, no answer may be missed for good and no wait may end with a wrong outcome; where the
platform does what the strategy assumes, the changed reads must also read less.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_etelecom.client import ClientConfig, ConsentQuery, EtelecomClient
from airflow_provider_etelecom.client.changes import VERIFY_EVERY, ChangeFeed
from airflow_provider_etelecom.client.config import RetryPolicy
from airflow_provider_etelecom.client.replies import Decision, ReplyWait
from airflow_provider_etelecom.exceptions import EtelecomTransientError
from airflow_provider_etelecom.testing import PLATFORM_VARIANTS, READING_VARIANTS, EtelecomSimulator

KEY = "changes-key-0123456789"
OA = "4239023413265392134"
LIST = "Zalo/ListRequestConsent"
#: Whether a variant lets changed reads work (else the wait must give them up and list the span).
TRUSTWORTHY = {"defaults": True}


@pytest.fixture(params=READING_VARIANTS)
def variant(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def sim(variant: str) -> Iterator[EtelecomSimulator]:
    with EtelecomSimulator(consents=50, seed=11, api_key=KEY, **PLATFORM_VARIANTS[variant]) as simulator:
        yield simulator


@pytest.fixture
def client(sim: EtelecomSimulator) -> Iterator[EtelecomClient]:
    with EtelecomClient(ClientConfig(base_url=sim.base_url, api_key=KEY)) as made:
        yield made


def campaign(sim: EtelecomSimulator, n: int) -> list[dict[str, object]]:
    """``n`` pending consents of one OA, created over the last ``n`` seconds (oldest first)."""
    start = sim.now() - timedelta(seconds=n + 60)
    return [
        sim.add_consent(
            oa_id=OA, phone=f"0915{i:06d}", reply_status="S", status="P", created_at=start + timedelta(seconds=i)
        )
        for i in range(n)
    ]


def near_expiry(sim: EtelecomSimulator, n: int) -> list[dict[str, object]]:
    """``n`` pending consents of one OA, requested 23 h 58 min ago: two minutes before they expire."""
    start = sim.now() - timedelta(hours=23, minutes=58)
    return [
        sim.add_consent(
            oa_id=OA,
            phone=f"0915{i:06d}",
            reply_status="S",
            status="P",
            created_at=start + timedelta(seconds=i),
            expires_at=start + timedelta(hours=24, seconds=i),
        )
        for i in range(n)
    ]


def wait_for(consents: list[dict[str, object]], **kwargs: object) -> ReplyWait:
    created = min(datetime.fromisoformat(str(c["created_at"]).replace("Z", "+00:00")) for c in consents)
    return ReplyWait(
        consent_ids=[str(c["id"]) for c in consents],
        oa_id=OA,
        created_from=created - timedelta(minutes=5),
        **kwargs,  # type: ignore[arg-type]
    )


def check(wait: ReplyWait, client: EtelecomClient, **kwargs: Any) -> Decision:
    return wait.check(client, datetime.now(timezone.utc), not_found_expired=False, **kwargs)


def truth(sim: EtelecomSimulator, ids: list[str]) -> dict[str, object]:
    return {i: (sim.consent(i) or {}).get("reply_status") for i in ids}


def test_every_answer_is_seen_and_changed_reads_read_less_under_every_variant(
    sim: EtelecomSimulator, client: EtelecomClient, variant: str, caplog: pytest.LogCaptureFixture
) -> None:
    consents = campaign(sim, 600)
    ids = [str(c["id"]) for c in consents]
    order = ids[:]
    random.Random(3).shuffle(order)
    wait = wait_for(consents, failure_statuses=frozenset())
    pages: list[tuple[int, bool]] = []
    lagging: set[str] = set()  # answered, but not yet seen by the wait
    caplog.set_level(logging.WARNING, logger="airflow_provider_etelecom.client.changes")
    for n in range(12):
        sim.reset_stats()
        decision = check(wait, client)
        pages.append((sim.stats.count(method=LIST), wait.feed.changed))
        seen = {i: c.get("reply_status") for i, c in decision.consents.items()}
        lagging = {i for i, reply in truth(sim, ids).items() if seen[i] != reply}
        if TRUSTWORTHY.get(variant) or wait.feed.given_up:
            assert not lagging, f"check {n + 1} missed {len(lagging)} answers"
        if decision.status == "done":
            break
        for consent_id in order[n * 60 : (n + 1) * 60]:
            sim.reply(consent_id, random.Random(consent_id).choice("PN"))
        sim.advance(60)
    assert decision.status == "done" and not lagging
    assert {i: c["reply_status"] for i, c in decision.consents.items()} == truth(sim, ids)
    if TRUSTWORTHY.get(variant):
        assert wait.feed.given_up is None and not caplog.records
        changed = [count for count, was_changed in pages if was_changed]
        assert len(changed) >= 7 and max(changed[1:]) <= 3, pages  # 60-120 changes: two pages and the stop
        span_reads = [n for n, (_, was_changed) in enumerate(pages, 1) if not was_changed]
        assert span_reads == [n for n in range(1, len(pages) + 1) if n == 1 or n % VERIFY_EVERY == 0]
    else:
        assert wait.feed.given_up, "the wait went on trusting a feed the platform does not give"
        assert len(caplog.records) == 1, "one warning for the rest of the wait"
        assert not any(was_changed for _, was_changed in pages[VERIFY_EVERY:])


@pytest.mark.parametrize("variant", ["defaults", "updated_at_sort_refused", "updated_at_sort_ignored"], indirect=True)
def test_a_sort_refused_or_ignored_is_given_up_in_the_check_that_meets_it(
    variant: str, sim: EtelecomSimulator, client: EtelecomClient
) -> None:
    consents = campaign(sim, 250)
    wait = wait_for(consents)
    check(wait, client)
    for consent in consents[::2]:  # half answered: an updated_at order differs from any created_at order
        sim.reply(str(consent["id"]), "P")
    sim.advance(60)
    decision = check(wait, client)
    assert decision.final == 125, "the check that gives the changed read up still sees every answer"
    expected = {"updated_at_sort_refused": "refused", "updated_at_sort_ignored": "ignore"}
    if variant in expected:
        assert expected[variant] in str(wait.feed.given_up) and not wait.feed.changed
    else:
        assert wait.feed.given_up is None and wait.feed.changed


@pytest.mark.parametrize("variant", ["reply_keeps_updated_at"], indirect=True)
def test_a_min_share_reached_on_a_changed_read_is_confirmed_by_the_span(
    sim: EtelecomSimulator, client: EtelecomClient
) -> None:
    """The refusal a changed read cannot see (updated_at not moved) still fails the wait."""
    consents = campaign(sim, 10)
    ids = [str(c["id"]) for c in consents]
    wait = wait_for(consents, min_share=0.3, failure_statuses=frozenset({"N"}))
    assert check(wait, client).status == "waiting"
    sim.reply(ids[0], "N")  # the oldest: its updated_at stays below the watermark
    sim.advance(60)
    for consent_id in ids[7:]:  # enough for min_share, and updated_at at or above the watermark
        sim.reply(consent_id, "P")
    decision = check(wait, client)
    assert decision.status == "failed" and decision.failed == (ids[0],)
    assert "updated_at" in str(wait.feed.given_up)


@pytest.mark.parametrize("variant", ["reply_keeps_updated_at"], indirect=True)
def test_the_check_before_a_timeout_reads_the_span(sim: EtelecomSimulator, client: EtelecomClient) -> None:
    consents = campaign(sim, 10)
    wait = wait_for(consents)
    check(wait, client)
    for consent in consents:
        sim.reply(str(consent["id"]), "P")
    sim.advance(60)
    assert check(wait, client).status == "waiting", "a changed read cannot see answers that move no updated_at"
    assert wait.feed.changed
    asked_after: list[int] = []
    ends = lambda: asked_after.append(sim.stats.count(method=LIST)) or True  # noqa: E731
    before = sim.stats.count(method=LIST)
    assert check(wait, client, ends=ends).status == "done"
    assert asked_after == [asked_after[0]] and before < asked_after[0] < sim.stats.count(method=LIST), (
        "ends() is asked once, after the changed read and before the span read"
    )
    assert not wait.feed.changed and "updated_at" in str(wait.feed.given_up)


@pytest.mark.parametrize("variant", ["defaults"], indirect=True)
def test_a_changed_read_cut_by_max_pages_is_replaced_by_the_span(
    sim: EtelecomSimulator, client: EtelecomClient
) -> None:
    consents = campaign(sim, 300)
    wanted = consents[:150]  # the span's first two pages hold them
    wait = wait_for(wanted, max_pages=2)
    check(wait, client)
    sim.reply(str(wanted[0]["id"]), "P")
    sim.advance(30)  # the cut read's first page is newer than this answer: it must not judge the feed by it
    for consent in consents[150:]:  # 151 changes: more than the two pages a check may read
        sim.reply(str(consent["id"]), "P")
    sim.advance(30)
    decision = check(wait, client)
    assert decision.consents[str(wanted[0]["id"])]["reply_status"] == "P" and decision.final == 1
    assert not wait.feed.changed and wait.feed.given_up is None, "a cut read is replaced for one check, not given up"


def test_an_answer_a_changed_read_missed_never_fails_as_expired(
    variant: str, sim: EtelecomSimulator, client: EtelecomClient
) -> None:
    """A consent kept as ``S`` from an earlier check, past its ``expires_at``: the span says what it is."""
    consents = near_expiry(sim, 10)
    ids = [str(c["id"]) for c in consents]
    sim.reply(ids[-1], "P")  # the newest created is the newest updated: an ignored sort stops at it
    wait = wait_for(consents)
    assert wait.check(client, sim.now(), not_found_expired=False).status == "waiting"
    sim.advance(60)
    assert wait.check(client, sim.now(), not_found_expired=False).status == "waiting"
    sim.reply(ids[0], "P")  # half a minute before the request would expire
    sim.advance(60)  # this check comes after the old expires_at
    decision = wait.check(client, sim.now(), not_found_expired=False)
    assert decision.status == "waiting" and decision.failed == (), "a kept S is not judged expired"
    decision = wait.check(client, sim.now(), not_found_expired=False, ends=lambda: True)  # the last check
    assert decision.status == "waiting" and decision.consents[ids[0]]["reply_status"] == "P"


@pytest.mark.parametrize("variant", ["defaults", "updated_at_sort_refused"], indirect=True)
def test_a_consent_a_cut_span_did_not_reach_is_not_judged_expired(
    sim: EtelecomSimulator, client: EtelecomClient
) -> None:
    """Newest first with ``max_pages=1``: newer requests push the wanted ones off the page read."""
    ids = [str(c["id"]) for c in near_expiry(sim, 2)]
    wait = ReplyWait(consent_ids=ids, oa_id=OA, max_pages=1)
    assert wait.check(client, sim.now(), not_found_expired=False).status == "waiting"
    for i in range(150):  # a busy OA: newer requests, answered too (more changes than one page)
        sim.reply(str(sim.add_consent(oa_id=OA, phone=f"0916{i:06d}", reply_status="S", status="P")["id"]), "P")
    sim.advance(30)
    for consent_id in ids:
        sim.reply(consent_id, "P")  # both agree before their requests expire
    sim.advance(90)  # the next check comes after the old expires_at, and reads neither
    decision = wait.check(client, sim.now(), not_found_expired=False)
    assert decision.status == "waiting" and decision.failed == ()


@pytest.mark.parametrize("variant", ["updated_at_sort_ignored"], indirect=True)
def test_a_sort_ignored_without_a_page_out_of_order_is_caught_by_the_verification(
    sim: EtelecomSimulator, client: EtelecomClient
) -> None:
    """The default order's first consent is below the watermark: each changed read stops at once."""
    consents = campaign(sim, 250)
    answered = str(consents[10]["id"])
    wait = wait_for(consents)
    check(wait, client)
    sim.reply(answered, "P")
    sim.advance(60)
    for _ in range(2, VERIFY_EVERY):
        assert check(wait, client).consents[answered]["reply_status"] == "S"
        assert wait.feed.changed and wait.feed.given_up is None, "no page breaks the order: nothing to see"
        sim.advance(60)
    decision = check(wait, client)  # the verification: a span, then a changed read that must agree
    assert decision.consents[answered]["reply_status"] == "P"
    assert "ignore" in str(wait.feed.given_up) and not wait.feed.changed
    check(wait, client)
    assert not wait.feed.changed, "given up for the rest of the wait"


@pytest.mark.parametrize("variant", ["defaults"], indirect=True)
def test_a_changed_read_that_used_all_of_max_pages_is_replaced_even_if_its_last_page_looks_short(
    sim: EtelecomSimulator, client: EtelecomClient
) -> None:
    """A consent created just before the span's start is listed and dropped by the window check."""
    base = sim.now().replace(microsecond=0) - timedelta(seconds=2000)

    def add(i: int, at: int) -> str:
        made = sim.add_consent(
            oa_id=OA, phone=f"0915{i:06d}", reply_status="S", status="P", created_at=base + timedelta(seconds=at)
        )
        return str(made["id"])

    first, outside = add(0, 0), add(499, -2)
    wanted = [add(1 + i, 2 + i) for i in range(150)]
    others = [add(500 + i, 300 + i) for i in range(250)]
    wait = ReplyWait(consent_ids=[first, *wanted], oa_id=OA, created_from=base - timedelta(minutes=5), max_pages=2)
    check(wait, client)
    answered = wanted[0]
    for consent_id in [answered, *others[:109], outside, *others[109:209]]:  # ``outside`` on the 2nd page
        sim.reply(consent_id, "P")
        sim.advance(1)
    decision = check(wait, client)
    assert decision.consents[answered]["reply_status"] == "P"
    assert not wait.feed.changed and wait.feed.given_up is None


def test_a_fresh_feed_reads_the_span_and_nothing_when_nothing_is_pending() -> None:
    feed = ChangeFeed()
    assert str(feed) == "0 page(s) of the span"
    assert feed.read(None, None, set(), {}) == {}  # type: ignore[arg-type]
    assert feed.checks == 0 and feed.pages == 0


@pytest.mark.parametrize("variant", ["defaults"], indirect=True)
def test_a_read_that_fails_half_way_leaves_the_watermark_where_it_was(
    sim: EtelecomSimulator, client: EtelecomClient
) -> None:
    """The failed read's first page showed the newest changes; those below it were never read."""
    consents = campaign(sim, 250)
    ids = [str(c["id"]) for c in consents]
    wait = wait_for(consents)
    check(wait, client)
    check(wait, client)  # a changed read: the watermark is now
    sim.reply(ids[0], "P")  # the oldest answer of the next changed read: on its second page
    sim.advance(30)
    for consent_id in ids[100:250]:
        sim.reply(consent_id, "P")
    sim.advance(30)
    newest = wait.feed.newest
    once = EtelecomClient(ClientConfig(base_url=sim.base_url, api_key=KEY, retry=RetryPolicy(max_retries=0)))
    sim.script_faults(["none", "503"])  # the changed read's first page, then a failure
    with once, pytest.raises(EtelecomTransientError):
        check(wait, once)
    assert wait.feed.newest == newest, "the failed read's first page moved the watermark"
    decision = check(wait, client)
    assert wait.feed.changed and decision.consents[ids[0]]["reply_status"] == "P"
    assert decision.final == 151


@pytest.mark.parametrize("variant", ["defaults"], indirect=True)
def test_a_watch_takes_every_consent_of_the_span_and_a_watermark_before_its_first_span_read(
    sim: EtelecomSimulator, client: EtelecomClient
) -> None:
    """``pending=None``: new consents and answers alike; ``mark`` spares the first changed read a day."""
    now = sim.now()
    old = [  # the span's first page: requested 20 hours ago
        sim.add_consent(oa_id=OA, reply_status="S", status="P", created_at=now - timedelta(hours=20, seconds=-i))
        for i in range(150)
    ]
    recent = [  # one an hour over the last 150 minutes
        sim.add_consent(oa_id=OA, reply_status="S", status="P", created_at=now - timedelta(minutes=150 - i))
        for i in range(150)
    ]
    query = ConsentQuery.build(oa_id=OA, date_from=now - timedelta(days=1), sort="created_at")
    feed = ChangeFeed(margin=300.0)
    feed.mark(client, query)
    assert feed.newest == datetime.fromisoformat(str(recent[-1]["updated_at"]).replace("Z", "+00:00")).timestamp()
    found = feed.read(client, query, None, {}, last=True)
    assert set(found) == {str(c["id"]) for c in old + recent} and not feed.changed
    sim.reply(str(old[0]["id"]), "P")
    fresh = sim.add_consent(oa_id=OA, reply_status="S", status="P")
    sim.advance(60)
    sim.reset_stats()
    found = feed.read(client, query, None, found)
    assert feed.changed and {str(old[0]["id"]), str(fresh["id"])} <= set(found)
    assert set(found) - {str(old[0]["id"]), str(fresh["id"])} == {str(c["id"]) for c in recent[-6:]}  # the margin
    assert sim.stats.count(method=LIST) == 1, "one page of changes, not the day back to the oldest page"
