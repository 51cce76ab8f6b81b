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
from types import FrameType
from typing import Any

from airflow_provider_etelecom.testing.process import API_KEY_ENV, DEFAULT_API_KEY
from airflow_provider_etelecom.testing.server import EtelecomSimulator, FaultConfig
from airflow_provider_etelecom.testing.switches import SWITCHES, Switch, parse_moment
from airflow_provider_etelecom.testing.variants import PLATFORM_VARIANTS

#: Where the parser notes the switch flags given (a flag not given leaves the ``--variant``'s value).
_GIVEN = "_switches_given"
#: The fault flags: the :class:`FaultConfig` field each sets (its default and type are the field's), and help.
_FAULT_FLAGS: dict[str, tuple[str, str]] = {
    "--error-rate": ("error_rate", "share of 500/502/503 answers"),
    "--drop-rate": ("drop_rate", "share of connections cut mid-body"),
    "--truncate-rate": ("truncate_rate", "share of 200s with a cut body"),
    "--rate-limit-rate": ("rate_limit_rate", "chance a burst of 429s starts"),
    "--rate-limit-burst": ("rate_limit_burst", "429s per burst (default 3)"),
    "--retry-after": ("retry_after_s", "Retry-After of 429s, seconds"),
    "--exhausted-rate": ("exhausted_rate", "share of 403 resource_exhausted"),
    "--error-body-rate": ("error_body_rate", "share of 200 answers with an error body (a proxy)"),
    "--fault-seed": ("seed", "seed of the fault sequence"),
}
#: The options handed to :class:`EtelecomSimulator` as they are (same name).
_SIMULATOR_OPTIONS = ("consents", "seed", "api_key", "start", "end", "host", "port", "latency_ms", "auto_reply_status")


def build_parser() -> argparse.ArgumentParser:
    """Return the CLI parser: the simulator's options, :class:`FaultConfig`'s, and one flag per switch.

    The switch flags are generated from :data:`~airflow_provider_etelecom.testing.switches.SWITCHES`.
    """
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
    parser.add_argument("--start", type=parse_moment, default=None, help="seeded created_at from (ISO 8601)")
    parser.add_argument("--end", type=parse_moment, default=None, help="seeded created_at until, exclusive")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every API request")
    no_faults = FaultConfig()
    for flag, (name, help) in _FAULT_FLAGS.items():
        default = getattr(no_faults, name)
        parser.add_argument(flag, type=type(default), default=default, help=help)
    parser.add_argument("--auto-reply-after", type=float, default=None, help="auto-reply after S seconds")
    parser.add_argument("--auto-reply-status", choices=("P", "N"), default="P")
    parser.add_argument("--reply-window", type=float, default=86400.0, help="seconds before S turns NS")
    switches = parser.add_argument_group("platform switches (see docs/simulator.md)")
    switches.add_argument(
        "--variant",
        choices=sorted(PLATFORM_VARIANTS),
        default=None,
        help="start from a named platform variant (PLATFORM_VARIANTS); the flags below override it",
    )
    for switch in SWITCHES:
        _add_switch(switches, switch)
    return parser


class _SwitchAction(argparse.Action):
    """Store a switch flag's value and note the switch as given, so a ``--variant``'s value stands otherwise."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        given: set[str] = getattr(namespace, _GIVEN, set())
        setattr(namespace, _GIVEN, given | {self.dest})


def _add_switch(group: argparse._ArgumentGroup, switch: Switch) -> None:
    """One flag for ``switch``: a bool's flag sets the value that is not its default; others take a value."""
    default = switch.default
    common: dict[str, Any] = {"dest": switch.name, "action": _SwitchAction, "default": default}
    if switch.parse is None:
        group.add_argument(switch.flag, nargs=0, const=not default, help=switch.help, **common)
        return
    parse = switch.parse
    described = switch.help if "default" in switch.help else f"{switch.help} (default {default!r})"

    def read(text: str) -> object:
        try:
            return switch.check(switch.name, parse(text))
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    read.__name__ = switch.name  # argparse names the type in its error
    metavar = None if switch.choices else switch.name.upper()
    group.add_argument(
        switch.flag, type=read, choices=switch.choices or None, metavar=metavar, help=described, **common
    )


def switches_of(args: argparse.Namespace) -> dict[str, Any]:
    """Return the platform switches to start with: the ``--variant``'s, then each switch flag given."""
    chosen: dict[str, Any] = dict(PLATFORM_VARIANTS[args.variant]) if args.variant else {}
    given: set[str] = getattr(args, _GIVEN, set())
    chosen.update({switch.name: getattr(args, switch.name) for switch in SWITCHES if switch.name in given})
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator until SIGINT/SIGTERM.

    :return: the process exit code (0 on a clean stop).
    """
    args = build_parser().parse_args(argv)
    faults = {name: getattr(args, flag[2:].replace("-", "_")) for flag, (name, _) in _FAULT_FLAGS.items()}
    sim = EtelecomSimulator(
        **{name: getattr(args, name) for name in _SIMULATOR_OPTIONS},
        faults=FaultConfig(**faults),
        reply_window_s=args.reply_window,
        auto_reply_after_s=args.auto_reply_after,
        **switches_of(args),
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
