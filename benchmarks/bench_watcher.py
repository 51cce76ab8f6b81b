"""Benchmark: requests per poll of ``ConsentReplyEventTrigger`` (the AssetWatcher trigger), today's and now.

An OA has a month of history (answered consents, outside the reply window) and a campaign of
pending ``S`` consents created over the last 20 hours. The watcher polls once a minute (the
simulator's clock moves a minute between polls) while customers answer at a steady rate (``P``/``N``,
seeded). Every poll is the trigger's own read and decision (``_list_span`` and :func:`watch_step`),
made twice on the same data at the same moment, each with its own client:

* **listing the span** every poll (today's behaviour before the changed reads, and what the
  watcher falls back to when it gives them up): one request per 100 consents created in the span;
* **reading changes** (:class:`~airflow_provider_etelecom.client.changes.ChangeFeed`): the span once
  (after one page that takes the watermark), then what changed since the watermark, and every
  sixth poll the span again to verify the changed reads.

The simulator counts the ``ListRequestConsent`` requests of each. Printed per poll: both counts,
what the changed-reads watcher read, consents still pending, events fired (both must fire the same
consents at the same polls); then the average per poll over every run of six polls after the first
(each holds one verifying span read), and the requests a listing of the OA's whole history would need.

    python -m benchmarks.bench_watcher            # 2,000 pending, 20,000 in the history, 13 polls
    python -m benchmarks.bench_watcher --quick    # 200 pending, 2,000 in the history, 7 polls
"""

from __future__ import annotations

import argparse
import json
import os
import random
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

KEY = "bench-key-0123456789"
OA = "4239023413265392134"
LIST = "Zalo/ListRequestConsent"
#: Six polls: one verification cycle of the changed reads (``VERIFY_EVERY``).
WINDOW = 6


def run(pending: int, history: int, polls: int, per_minute: int, seed: int = 7) -> dict[str, Any]:
    """Run the scenario; return the per-poll figures of both ways of reading."""
    from airflow_provider_etelecom.testing import EtelecomSimulator

    with EtelecomSimulator(consents=0, seed=seed, api_key=KEY) as sim:
        os.environ["AIRFLOW_CONN_ETELECOM_DEFAULT"] = json.dumps(
            {"conn_type": "etelecom", "host": sim.base_url, "password": KEY}
        )
        from airflow_provider_etelecom.client import ConsentQuery
        from airflow_provider_etelecom.client.changes import ChangeFeed
        from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
        from airflow_provider_etelecom.triggers.consent_reply_event import (
            ConsentReplyEventTrigger,
            SpanReader,
            WatchState,
        )

        now = sim.now()
        for i in range(history):
            sim.add_consent(oa_id=OA, reply_status="P", status="P", created_at=now - timedelta(days=2, minutes=i * 2))
        spread = timedelta(hours=20) / pending
        campaign = [
            sim.add_consent(oa_id=OA, reply_status="S", status="P", created_at=now - timedelta(hours=20) + i * spread)
            for i in range(pending)
        ]
        order = [c["id"] for c in campaign]
        random.Random(seed).shuffle(order)
        trigger = ConsentReplyEventTrigger(oa_id=OA)
        start = WatchState(now.timestamp() - trigger.reply_window)
        ways = {
            "span": (SpanReader(ChangeFeed(given_up="the benchmark's listing of the span every poll")), start),
            "changes": (SpanReader.resume(start), start),
        }
        clients = {name: EtelecomHook().client for name in ways}
        per_poll = []
        for poll in range(polls):
            listed_at, row = sim.now(), {"poll": poll + 1}
            for name, (reader, state) in ways.items():
                sim.reset_stats()
                fresh, state = trigger._list_span(clients[name], state, reader, listed_at)
                ways[name] = (reader, state)
                row[name] = sim.stats.requests_by_method[LIST]
                row[f"{name}_fired"] = sorted(c["id"] for c in fresh)
            row["read"] = str(ways["changes"][0].feed)
            row["pending"] = sum(1 for c in sim.consents() if c["oa_id"] == OA and c["reply_status"] == "S")
            per_poll.append(row)
            sim.advance(60)
            for consent_id in order[poll * per_minute : (poll + 1) * per_minute]:
                sim.reply(consent_id, random.Random(consent_id).choice("PN"))
        sim.reset_stats()
        whole = sum(1 for _ in clients["span"].iter_consent_pages(ConsentQuery.build(oa_id=OA, page_size=100)))
        for client in clients.values():
            client.close()
        given_up = ways["changes"][0].feed.given_up
        return {"per_poll": per_poll, "whole_history_requests": whole, "given_up": given_up}


def windows(counts: Sequence[int]) -> list[float]:
    """The average per poll over every run of :data:`WINDOW` polls after the first."""
    return [sum(counts[i : i + WINDOW]) / WINDOW for i in range(1, len(counts) - WINDOW + 1)]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--answers-per-minute", type=int, default=20)
    args = parser.parse_args(argv)
    pending, history, polls = (200, 2_000, 7) if args.quick else (2_000, 20_000, 2 * WINDOW + 1)
    per_minute = args.answers_per_minute if not args.quick else max(1, args.answers_per_minute // 10)
    started = datetime.now(timezone.utc)
    result = run(pending, history, polls, per_minute)
    rows = result["per_poll"]
    print(
        f"{pending} pending consents over 20 h, {history} older answered consents in the same OA; "
        f"a poll a minute, {per_minute} answers a minute"
    )
    print("  poll | listing the span | reading changes (what it read)     | pending | events")
    same = True
    for row in rows:
        same = same and row["span_fired"] == row["changes_fired"]
        print(
            f"  {row['poll']:4d} | {row['span']:16d} | {row['changes']:3d} {'(' + row['read'] + ')':<29} | "
            f"{row['pending']:7d} | {len(row['changes_fired']):6d}"
        )
    for name, label in (("span", "listing the span"), ("changes", "reading changes")):
        counts = [row[name] for row in rows]
        averages = windows(counts)
        print(
            f"  {label}: {sum(counts) / len(counts):.1f} requests per poll over all {len(counts)} polls; over six "
            f"polls after the first (each run holds one verifying span read): {min(averages):.1f} to "
            f"{max(averages):.1f} per poll"
        )
    fired = sum(len(row["changes_fired"]) for row in rows)
    print(f"  events fired: {fired}, {'the same consents at the same polls both ways' if same else 'DIFFERENT'}")
    print(f"  changed reads given up: {result['given_up'] or 'no'}")
    print(f"  a listing of the OA's whole history instead: {result['whole_history_requests']} requests per poll")
    print(f"  ({(datetime.now(timezone.utc) - started).total_seconds():.0f} s)")


if __name__ == "__main__":
    main()
