"""Command line: serve the eTelecom simulator until interrupted (for demos, manual runs, other processes).

``python -m airflow_provider_etelecom.testing --port 8080 --consents 5000 --seed 1 --api-key demo-key``

The shop base URL is the first line of stdout (flushed at once), so a script can start the
simulator with ``--port 0`` and read where it listens. SIGINT and SIGTERM stop it cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from types import FrameType

from airflow_provider_etelecom.testing.server import EtelecomSimulator, FaultConfig

API_KEY_ENV = "ETELECOM_SIMULATOR_API_KEY"
DEFAULT_API_KEY = "demo-key"


def _aware(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def build_parser() -> argparse.ArgumentParser:
    """Return the CLI parser (one flag per :class:`EtelecomSimulator` / :class:`FaultConfig` option)."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_etelecom.testing",
        description="Serve a local eTelecom Zalo Cloud API simulator (test-only; loopback).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="bind port; 0 picks a free one (default 8080)")
    parser.add_argument("--consents", type=int, default=5000, help="seeded consents (default 5000)")
    parser.add_argument("--seed", type=int, default=1, help="data seed (default 1)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV, DEFAULT_API_KEY),
        help=f"accepted Bearer key (default: ${API_KEY_ENV} or {DEFAULT_API_KEY!r})",
    )
    parser.add_argument("--start", type=_aware, default=None, help="seeded created_at from (ISO 8601)")
    parser.add_argument("--end", type=_aware, default=None, help="seeded created_at until, exclusive")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every API request")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of 500/502/503 answers")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="share of connections cut mid-body")
    parser.add_argument("--truncate-rate", type=float, default=0.0, help="share of 200s with a cut body")
    parser.add_argument("--rate-limit-rate", type=float, default=0.0, help="chance a burst of 429s starts")
    parser.add_argument("--rate-limit-burst", type=int, default=3, help="429s per burst (default 3)")
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After of 429s, seconds")
    parser.add_argument("--exhausted-rate", type=float, default=0.0, help="share of 403 resource_exhausted")
    parser.add_argument("--fault-seed", type=int, default=0, help="seed of the fault sequence")
    parser.add_argument("--auto-reply-after", type=float, default=None, help="auto-reply after S seconds")
    parser.add_argument("--auto-reply-status", choices=("P", "N"), default="P")
    parser.add_argument("--reply-window", type=float, default=86400.0, help="seconds before S turns NS")
    parser.add_argument("--listing-lag", type=float, default=0.0, help="seconds before a new consent is listed")
    parser.add_argument("--date-to-inclusive", action="store_true", help="treat filter.date_to as inclusive")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator until SIGINT/SIGTERM.

    :return: the process exit code (0 on a clean stop).
    """
    args = build_parser().parse_args(argv)
    faults = FaultConfig(
        error_rate=args.error_rate,
        drop_rate=args.drop_rate,
        truncate_rate=args.truncate_rate,
        rate_limit_rate=args.rate_limit_rate,
        rate_limit_burst=args.rate_limit_burst,
        retry_after_s=args.retry_after,
        exhausted_rate=args.exhausted_rate,
        seed=args.fault_seed,
    )
    sim = EtelecomSimulator(
        consents=args.consents,
        seed=args.seed,
        api_key=args.api_key,
        start=args.start,
        end=args.end,
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        faults=faults,
        date_to_inclusive=args.date_to_inclusive,
        listing_lag_s=args.listing_lag,
        reply_window_s=args.reply_window,
        auto_reply_after_s=args.auto_reply_after,
        auto_reply_status=args.auto_reply_status,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    sim.start()
    try:
        print(sim.base_url, flush=True)
        print(
            f"eTelecom simulator: {args.consents} consents, partner {sim.partner_base_url}, "
            f"control {sim.root_url}/_simulator/ (Ctrl-C to stop)",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.2):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
