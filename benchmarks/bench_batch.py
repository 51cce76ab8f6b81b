"""Benchmark: requests spent waiting for many consents, batched sensor vs one sensor per consent.

A campaign asks 2,000 customers for consent (pending ``S`` consents in the simulator, each with its
own phone, on one OA). The customers answer over time: between two polls a fixed share of them,
in a random (seeded) order, until everyone has answered. At every poll both ways of waiting look
at the same state:

* ``batched`` - one :class:`ConsentRepliesSensor` over all the consents (the first poll lists the
  campaign's window, 100 consents a page, until every id was seen; the next ones read only the
  consents updated since, ``sort=-updated_at``, with a full listing every 6th poll to verify);
* ``single``  - one :class:`ConsentReplySensor` per consent, each still waiting poked once (one
  ``oa_id`` + ``phone`` listing each), as 2,000 mapped sensors would be.

The answers of one poll interval come during it: the simulated clock moves 60 s (the default
``poke_interval``) between two polls. The sensors' ``poke()`` is called directly, no scheduler
involved; the simulator counts the ``ListRequestConsent`` requests each way sends. Printed:
requests per poll and in total for both, and the ratio. Target (issue 8): at least 20x fewer requests batched.

    python -m benchmarks.bench_batch            # 2,000 consents, answered over 10 polls
    python -m benchmarks.bench_batch --quick    # 200 consents, a smoke run for CI
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

KEY = "bench-key-0123456789"
OA = "4239023413265392134"
LIST = "Zalo/ListRequestConsent"
TARGET = 20.0
#: Simulated seconds between two polls: the sensors' default ``poke_interval``.
POKE_INTERVAL_S = 60.0


def _quiet_logs() -> None:
    """Drop INFO logs: the stdlib's, and structlog's where Airflow 3 logs through it."""
    logging.disable(logging.INFO)
    try:
        import structlog
    except ImportError:  # Airflow 2
        return
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def run(consents: int, polls: int, seed: int = 7) -> dict[str, Any]:
    """Run the scenario and return the per-poll and total request counts of both ways."""
    from airflow_provider_etelecom.testing import EtelecomSimulator

    with EtelecomSimulator(consents=2_000, seed=seed, api_key=KEY) as sim:
        os.environ["AIRFLOW_CONN_ETELECOM_DEFAULT"] = json.dumps(
            {"conn_type": "etelecom", "host": sim.base_url, "password": KEY}
        )
        from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
        from airflow_provider_etelecom.sensors.consent_replies import ConsentRepliesSensor, ConsentReplySensor

        _quiet_logs()  # after Airflow set its logging up: 2,000 sensors logging every poke time the logger

        sent_at = sim.now() - timedelta(minutes=1)
        campaign = [
            sim.add_consent(oa_id=OA, phone=f"0915{i:06d}", reply_status="S", status="P", created_at=sent_at)
            for i in range(consents)
        ]
        hook = EtelecomHook()  # one HTTP session for the 2,000 single sensors, as a worker would reuse
        batched = ConsentRepliesSensor(task_id="wait_all", consent_ids=campaign, oa_id=OA)
        singles: dict[str, ConsentReplySensor] = {}
        for consent in campaign:
            single = ConsentReplySensor(
                task_id=f"wait_{consent['id']}", consent_id=consent["id"], phone=consent["phone"], oa_id=OA
            )
            single.__dict__["hook"] = hook
            singles[consent["id"]] = single

        order = [c["id"] for c in campaign]
        random.Random(seed).shuffle(order)
        per_poll = -(-consents // polls)
        rows: list[dict[str, Any]] = []
        batched_done = False
        poll = 0
        while singles or not batched_done:
            poll += 1
            answered = min(consents, (poll - 1) * per_poll)
            sim.reset_stats()
            started = time.perf_counter()
            if not batched_done:
                batched_done = bool(batched.poke({}))  # type: ignore[arg-type]
            batched_requests = sim.stats.count(method=LIST)
            batched_s = time.perf_counter() - started
            started = time.perf_counter()
            for consent_id, single in list(singles.items()):
                if single.poke({}):  # type: ignore[arg-type]
                    del singles[consent_id]
            single_requests = sim.stats.count(method=LIST) - batched_requests
            single_s = time.perf_counter() - started
            rows.append(
                {
                    "poll": poll,
                    "answered_before": answered,
                    "batched": batched_requests,
                    "single": single_requests,
                    "batched_s": batched_s,
                    "single_s": single_s,
                }
            )
            for consent_id in order[answered : answered + per_poll]:
                sim.reply(consent_id, "P")
            sim.advance(POKE_INTERVAL_S)  # the answers come during the poke interval, not in its last second
        hook.close()
    logging.disable(logging.NOTSET)
    batched_total = sum(row["batched"] for row in rows)
    single_total = sum(row["single"] for row in rows)
    return {
        "consents": consents,
        "rows": rows,
        "batched_total": batched_total,
        "single_total": single_total,
        "ratio": single_total / batched_total if batched_total else float("inf"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table and the ratio; exit 1 when below the target."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_batch", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 consents instead of 2,000")
    parser.add_argument("--consents", type=int, default=None, help="pending consents (default 2000, quick 200)")
    parser.add_argument("--polls", type=int, default=10, help="polls over which everyone answers (default 10)")
    args = parser.parse_args(argv)
    consents = args.consents or (200 if args.quick else 2_000)
    result = run(consents, args.polls)
    print(f"{consents} pending consents, answered over {args.polls} polls ({consents // args.polls} per poll)")
    print(f"{'poll':>4} {'answered':>9} {'batched req':>12} {'single req':>11} {'batched s':>10} {'single s':>9}")
    for row in result["rows"]:
        print(
            f"{row['poll']:>4} {row['answered_before']:>9} {row['batched']:>12} {row['single']:>11} "
            f"{row['batched_s']:>10.3f} {row['single_s']:>9.3f}"
        )
    print(
        f"total requests: batched {result['batched_total']}, one sensor per consent {result['single_total']}; "
        f"{result['ratio']:.1f}x fewer batched (target >= {TARGET:.0f}x)"
    )
    return 0 if result["ratio"] >= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
