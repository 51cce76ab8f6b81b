"""Benchmark: requests per poll of ``ConsentReplyEventTrigger`` (the AssetWatcher trigger).

An OA has a month of history (answered consents, outside the reply window) and a campaign of
pending ``S`` consents created over the last 20 hours. Between two polls a fixed share of the
campaign answers (``P``/``N``, seeded). Every poll is the trigger's own listing and decision
(``_list_span``: the span of still-pending consents, oldest first, then :func:`watch_step`);
the simulator counts the ``ListRequestConsent`` requests. Printed per poll: requests, consents
still pending, events fired; and the requests a listing of the OA's whole history would need.
Expected: about pending-span consents / 100 (+1 for the page that ends the listing), falling as
the oldest pending consents answer.

    python -m benchmarks.bench_watcher            # 2,000 pending, 20,000 in the history, 10 polls
    python -m benchmarks.bench_watcher --quick    # 200 pending, 2,000 in the history, 4 polls
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

KEY = "bench-key-0123456789"
OA = "4239023413265392134"
LIST = "Zalo/ListRequestConsent"


def run(pending: int, history: int, polls: int, seed: int = 7) -> dict[str, Any]:
    """Run the scenario; return the per-poll figures."""
    from airflow_provider_etelecom.testing import EtelecomSimulator

    with EtelecomSimulator(consents=0, seed=seed, api_key=KEY) as sim:
        os.environ["AIRFLOW_CONN_ETELECOM_DEFAULT"] = json.dumps(
            {"conn_type": "etelecom", "host": sim.base_url, "password": KEY}
        )
        from airflow_provider_etelecom.client import ConsentQuery
        from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
        from airflow_provider_etelecom.triggers.consent_reply_event import ConsentReplyEventTrigger, WatchState

        now = datetime.now(timezone.utc)
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
        client = EtelecomHook().client
        state = WatchState(now.timestamp() - trigger.reply_window)
        per_poll = []
        share = math.ceil(pending / (polls - 1))
        for poll in range(polls):
            sim.reset_stats()
            fresh, state, pages = trigger._list_span(client, state, datetime.now(timezone.utc))
            requests = sim.stats.requests_by_method[LIST]
            still = sum(1 for c in sim.consents() if c["oa_id"] == OA and c["reply_status"] == "S")
            per_poll.append(
                {"poll": poll + 1, "requests": requests, "pages": pages, "pending": still, "fired": len(fresh)}
            )
            for consent_id in order[poll * share : (poll + 1) * share]:
                sim.reply(consent_id, random.Random(consent_id).choice("PN"))
        sim.reset_stats()
        whole = sum(1 for _ in client.iter_consent_pages(ConsentQuery.build(oa_id=OA, page_size=100)))
        client.close()
        return {"pending": pending, "history": history, "per_poll": per_poll, "whole_history_requests": whole}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    pending, history, polls = (200, 2_000, 4) if args.quick else (2_000, 20_000, 10)
    result = run(pending, history, polls)
    print(f"{pending} pending consents over 20 h, {history} older answered consents in the same OA")
    for row in result["per_poll"]:
        print(
            f"  poll {row['poll']:2d}: {row['requests']:3d} requests ({row['pages']} non-empty pages), "
            f"{row['pending']:5d} pending at this poll, {row['fired']:5d} events fired"
        )
    fired = sum(row["fired"] for row in result["per_poll"])
    print(f"  events fired in all: {fired} (each answer once)")
    print(f"  a listing of the OA's whole history instead: {result['whole_history_requests']} requests per poll")


if __name__ == "__main__":
    main()
