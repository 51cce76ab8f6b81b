"""Benchmark: a campaign's deferred waits on one triggerer, sharing one poll or each polling alone.

An OA holds a few thousand older (answered) consents and a campaign of consents requested in the
last minutes. Each campaign consent has its own deferred ``ConsentReplySensor``: a
``ConsentRepliesTrigger`` for one consent, built as the sensor builds it after its check before
deferring. All the triggers run in one asyncio event loop, as a triggerer runs them, against a
simulator that adds a fixed latency to every request. After the first check and three polls
every customer answers at once. Printed, side by side in one run, for sharing on (the default)
and off (``shared_poll=False``, every trigger its own listing: the behaviour before sharing):
``ListRequestConsent`` requests over the first check and three polls, the TCP connections the
simulator accepted, and how long after the answers each trigger fired (against the bound of one
poke interval plus one listing of the campaign's span).

    python -m benchmarks.bench_shared_poll            # 1,000 waits, 3,000 older consents, poke 10 s (~2 min)
    python -m benchmarks.bench_shared_poll --quick    # 100 waits, 500 older consents, poke 2 s

Expected: sharing on, at most 80 requests and 4 connections, every trigger fired within the bound;
sharing off, about one request per wait per poll and one connection per wait.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

KEY = "bench-key-0123456789"
OA = "4239023413265392134"
LIST = "Zalo/ListRequestConsent"


def run(shared: bool, waits: int, history: int, poke: float, latency_ms: float, seed: int = 11) -> dict[str, Any]:
    """Run the campaign with sharing on or off; return its figures."""
    from airflow_provider_etelecom.client import ConsentQuery
    from airflow_provider_etelecom.client.replies import ReplyWait
    from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
    from airflow_provider_etelecom.testing import EtelecomSimulator
    from airflow_provider_etelecom.triggers.consent_replies import ConsentRepliesTrigger

    with EtelecomSimulator(consents=0, seed=seed, api_key=KEY) as sim:
        os.environ["AIRFLOW_CONN_ETELECOM_DEFAULT"] = json.dumps(
            {"conn_type": "etelecom", "host": sim.base_url, "password": KEY}
        )
        now = datetime.now(timezone.utc)
        for i in range(history):
            sim.add_consent(oa_id=OA, reply_status="P", status="P", created_at=now - timedelta(days=2, minutes=i))
        spread = timedelta(minutes=4) / waits
        campaign = [
            sim.add_consent(
                oa_id=OA,
                phone=f"849{i:08d}",
                reply_status="S",
                status="P",
                created_at=now - timedelta(minutes=5) + i * spread,
            )
            for i in range(waits)
        ]
        triggers = []
        for consent in campaign:
            # The sensor's check before deferring listed the consent: where it found it goes to the trigger.
            wait = ReplyWait(consent_ids=[consent["id"]], oa_id=OA, phone=consent["phone"], max_pages=1)
            wait.settled = {consent["id"]: consent}  # type: ignore[dict-item]
            triggers.append(
                ConsentRepliesTrigger(
                    **wait.settings(),
                    poke_interval=poke,
                    deadline=now + timedelta(hours=1),
                    not_found_deadline=now + timedelta(hours=1),
                    listed_from=wait.span_from(),
                    shared_poll=shared,
                )
            )
        sim.latency_ms = latency_ms
        sim.reset_stats()
        fired: list[float] = []
        statuses: list[str] = []

        async def one(trigger: ConsentRepliesTrigger) -> None:
            async for event in trigger.run():
                fired.append(time.monotonic())
                statuses.append(f"{event.payload['status']}:{_reply(event.payload)}")

        async def scenario() -> dict[str, Any]:
            tasks = [asyncio.create_task(one(trigger)) for trigger in triggers]
            await asyncio.sleep(3.5 * poke)  # the first check and three polls
            requests, connections = sim.stats.count(method=LIST), sim.stats.connections
            answered = time.monotonic()
            for consent in campaign:
                sim.reply(consent["id"], "P")
            await asyncio.gather(*tasks)
            return {"requests": requests, "connections": connections, "latencies": [t - answered for t in fired]}

        started = time.monotonic()
        result = asyncio.run(scenario())
        result["wall_s"] = time.monotonic() - started
        result["all_connections"] = sim.stats.connections
        result["statuses"] = sorted(set(statuses))
        # One listing: the campaign's span, oldest first, as the shared poll reads it.
        client = EtelecomHook().client
        start = min(datetime.fromisoformat(c["created_at"].replace("Z", "+00:00")) for c in campaign)
        listing_started = time.monotonic()
        pages = sum(
            1 for _ in client.iter_consent_pages(ConsentQuery.build(oa_id=OA, date_from=start, sort="created_at"))
        )
        result["listing_s"], result["listing_pages"] = time.monotonic() - listing_started, pages
        client.close()
        return result


def _reply(payload: dict[str, Any]) -> str:
    decision = payload.get("decision") or {}
    return ",".join(sorted({c.get("reply_status", "?") for c in decision.get("consents", {}).values()}))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    waits, history, poke = (100, 500, 2.0) if args.quick else (1_000, 3_000, 10.0)
    latency_ms = 20.0
    print(
        f"{waits} single-consent deferred waits of one OA (consents requested in the last 5 minutes), "
        f"{history} older consents in the OA, poke_interval={poke:.0f} s, {latency_ms:.0f} ms per request, "
        f"one event loop"
    )
    results = {name: run(name == "shared", waits, history, poke, latency_ms) for name in ("shared", "alone")}
    print(f"  {'':44s} {'shared poll':>14s} {'each alone':>14s}")
    rows = [
        ("listing requests, first check + 3 polls", lambda r: f"{r['requests']}"),
        ("TCP connections, first check + 3 polls", lambda r: f"{r['connections']}"),
        ("TCP connections, whole run", lambda r: f"{r['all_connections']}"),
        ("fired after the answers: median (s)", lambda r: f"{statistics.median(r['latencies']):.2f}"),
        ("fired after the answers: max (s)", lambda r: f"{max(r['latencies']):.2f}"),
        ("one listing of the campaign (s, pages)", lambda r: f"{r['listing_s']:.2f}, {r['listing_pages']}"),
        ("events (status:reply)", lambda r: " ".join(r["statuses"])),
        ("wall time (s)", lambda r: f"{r['wall_s']:.0f}"),
    ]
    for label, cell in rows:
        print(f"  {label:44s} {cell(results['shared']):>14s} {cell(results['alone']):>14s}")
    shared = results["shared"]
    bound = poke + shared["listing_s"]
    within = sum(1 for t in shared["latencies"] if t <= bound)
    print(f"  shared: {within} of {waits} triggers fired within one poke interval plus one listing ({bound:.2f} s)")
    print(
        f"  targets: at most 80 requests and 4 connections shared; same events both sides: "
        f"{results['shared']['statuses'] == results['alone']['statuses']}"
    )


if __name__ == "__main__":
    main()
