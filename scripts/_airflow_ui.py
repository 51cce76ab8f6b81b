"""The Airflow UI, wired (run by ``scripts/airflow-ui`` inside the Airflow 3.3 environment).

Starts the eTelecom simulator and a local Airflow (what ``airflow standalone`` runs) with the
``etelecom_default`` connection and the example DAGs, prints the URL and the login, and runs until
Ctrl-C, then stops everything and checks that no Airflow port is still in use. Airflow listens on
127.0.0.1 only, unless ``--all-interfaces`` is given: its only login is admin/admin.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from _local_airflow import ALL_INTERFACES, LOOPBACK, ROOT, say, wired_airflow

WORKDIR = ROOT / ".demo" / "airflow-ui"


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/airflow-ui", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080, help="API server / UI port (default 8080)")
    parser.add_argument("--password", default="admin", help="password of the user 'admin' (default admin)")
    parser.add_argument("--reply-after", type=float, default=30.0, help="seconds before a customer replies (30)")
    parser.add_argument(
        "--all-interfaces",
        action="store_true",
        help="listen on every network interface, not only 127.0.0.1: anyone who can reach this machine "
        "gets the UI, the admin login and the task logs (default: loopback only)",
    )
    args = parser.parse_args()
    host = ALL_INTERFACES if args.all_interfaces else LOOPBACK
    if args.all_interfaces:
        say(
            f"WARNING: --all-interfaces: the UI (port {args.port}) and the log servers (8793, 8794) are "
            f"reachable from other machines, with the login admin / {args.password}. Use this only on a "
            f"network you trust, and set another password with --password."
        )
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        with wired_airflow(
            WORKDIR, port=args.port, host=host, password=args.password, reply_after=args.reply_after
        ) as af:
            reach = "every interface: reachable from other machines" if args.all_interfaces else "this machine only"
            print(
                f"""
Airflow {_airflow_version()} is running, wired to the local eTelecom simulator.

  UI:          {af.url}  ({reach})
  Login:       user admin, password {af.password}
  Connection:  etelecom_default -> {af.sim.base_url} (Admin > Connections)
  DAGs:        etelecom_consents_daily, etelecom_consents_backfill, etelecom_request_and_wait,
               etelecom_on_reply (started by answers: its AssetWatcher polls on the triggerer),
               etelecom_consents_to_sql_daily (into the SQLite file {WORKDIR.relative_to(ROOT) / "warehouse.db"})
  Exports:     {WORKDIR / "exports"}
  Logs:        {WORKDIR / "logs"}

A consent request is answered "P" by the simulator {args.reply_after:g} s after it is sent, so the
sensor of etelecom_request_and_wait sits in the "deferred" state on the triggerer until then.
Press Ctrl-C to stop Airflow and the simulator.
""",
                flush=True,
            )
            while (gone := af.standalone.exited()) is None:
                time.sleep(1)
            say(f"Airflow's {gone} exited by itself; stopping the rest")
            return 1
    except (KeyboardInterrupt, _Stop):
        say("Stopped.")
        return 0


def _airflow_version() -> str:
    from importlib.metadata import version

    return version("apache-airflow")


if __name__ == "__main__":
    sys.exit(main())
