"""Command line: serve the eTelecom simulator until interrupted (for demos, manual runs, other processes).

``python -m airflow_provider_etelecom.testing --consents 5000 --seed 1 --api-key demo-key``

It listens on a free port unless ``--port`` says otherwise (8080 is the Airflow UI's), and the shop
base URL is the first line of stdout (flushed at once), so a script reads where it listens.
SIGINT and SIGTERM stop it cleanly (exit 0).
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

from airflow_provider_etelecom.testing.process import API_KEY_ENV, DEFAULT_API_KEY
from airflow_provider_etelecom.testing.server import EtelecomSimulator, FaultConfig
from airflow_provider_etelecom.testing.store import SORTS, TIME_PRECISIONS
from airflow_provider_etelecom.testing.variants import PLATFORM_VARIANTS


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
    parser.add_argument("--port", type=int, default=0, help="bind port (default 0: a free one, printed on start)")
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
    parser.add_argument(
        "--rate-limit-per-s",
        type=float,
        default=None,
        help="the platform's rate limit: requests per second per API key, 429 with Retry-After beyond (default off)",
    )
    parser.add_argument("--exhausted-rate", type=float, default=0.0, help="share of 403 resource_exhausted")
    parser.add_argument("--fault-seed", type=int, default=0, help="seed of the fault sequence")
    parser.add_argument("--auto-reply-after", type=float, default=None, help="auto-reply after S seconds")
    parser.add_argument("--auto-reply-status", choices=("P", "N"), default="P")
    parser.add_argument("--reply-window", type=float, default=86400.0, help="seconds before S turns NS")
    # Platform switches: SUPPRESS leaves a flag not given out of the namespace, so a --variant's
    # value stands unless the flag is given, and the simulator's own default applies otherwise.
    switches = parser.add_argument_group("platform switches (see docs/simulator.md)")
    switches.add_argument(
        "--variant",
        choices=sorted(PLATFORM_VARIANTS),
        default=None,
        help="start from a named platform variant (PLATFORM_VARIANTS); the flags below override it",
    )
    switches.add_argument(
        "--listing-lag",
        dest="listing_lag_s",
        type=float,
        help="seconds before a new consent is listed",
        default=argparse.SUPPRESS,
    )
    switches.add_argument(
        "--date-to-inclusive", action="store_true", help="treat filter.date_to as inclusive", default=argparse.SUPPRESS
    )
    switches.add_argument(
        "--fractional-times",
        action="store_true",
        help="give the times the simulator makes a seeded sub-second part",
        default=argparse.SUPPRESS,
    )
    switches.add_argument(
        "--date-filter-precision",
        choices=TIME_PRECISIONS,
        help="how filter.date_from/date_to are read before comparing (default exact)",
        default=argparse.SUPPRESS,
    )
    switches.add_argument(
        "--created-at-precision",
        choices=TIME_PRECISIONS,
        help="how times are written in answers (default exact)",
        default=argparse.SUPPRESS,
    )
    switches.add_argument(
        "--accepted-sorts",
        type=_sorts,
        help=f"comma-separated paging.sort values accepted (default {','.join(SORTS)})",
        default=argparse.SUPPRESS,
    )
    switches.add_argument(
        "--ignored-sorts",
        type=_sorts,
        help="comma-separated paging.sort values accepted but answered in the default order (default none)",
        default=argparse.SUPPRESS,
    )
    switches.add_argument(
        "--reply-keeps-updated-at",
        dest="reply_moves_updated_at",
        action="store_false",
        help="a reply leaves updated_at as it was (default: a reply sets it)",
        default=argparse.SUPPRESS,
    )
    switches.add_argument(
        "--burst-share",
        type=float,
        help="share of seeded consents inside the burst window (default 0)",
        default=argparse.SUPPRESS,
    )
    switches.add_argument("--burst-start", type=_aware, help="burst window start (ISO 8601)", default=argparse.SUPPRESS)
    switches.add_argument(
        "--burst-span",
        dest="burst_span_s",
        type=float,
        help="burst window length in s (default 3600)",
        default=argparse.SUPPRESS,
    )
    return parser


SWITCHES = (
    "listing_lag_s",
    "date_to_inclusive",
    "fractional_times",
    "date_filter_precision",
    "created_at_precision",
    "accepted_sorts",
    "ignored_sorts",
    "reply_moves_updated_at",
    "burst_share",
    "burst_start",
    "burst_span_s",
)


def _sorts(value: str) -> tuple[str, ...]:
    sorts = tuple(s.strip() for s in value.split(",") if s.strip())
    unknown = [s for s in sorts if s not in SORTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown sorts {unknown}; known: {', '.join(SORTS)}")
    return sorts


def switches_of(args: argparse.Namespace) -> dict[str, object]:
    """Return the platform switches to start with: the ``--variant``'s, then each flag given."""
    chosen: dict[str, object] = dict(PLATFORM_VARIANTS[args.variant]) if args.variant else {}
    chosen.update({name: getattr(args, name) for name in SWITCHES if hasattr(args, name)})
    return chosen


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
        rate_limit_per_s=args.rate_limit_per_s,
        reply_window_s=args.reply_window,
        auto_reply_after_s=args.auto_reply_after,
        auto_reply_status=args.auto_reply_status,
        **switches_of(args),  # type: ignore[arg-type]  # names and types of EtelecomSimulator's switches
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
            f"eTelecom simulator on port {sim.port}: {args.consents} consents, partner {sim.partner_base_url}, "
            f"control {sim.root_url}/_simulator/, switches {sim.settings()} (Ctrl-C to stop)",
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
