"""The installed-wheel half of ``scripts/release-check``: run inside the clean environment the wheel went into.

``scripts/release-check`` builds the sdist and the wheel, installs the wheel (not the checkout) into a
fresh virtual environment and runs this file with that environment's Python, from a folder outside
the checkout and with ``PYTHONSAFEPATH`` set, so neither the driver, the simulator (``python -m``) nor
any Airflow process can import the checkout's ``airflow_provider_etelecom`` by accident. It checks:

1. the package is the installed wheel (its files under this environment's ``site-packages``, not an
   editable install), its version is the wheel's, and every module named in ``get_provider_info()``
   imports (a file missing from the wheel fails here);
2. ``airflow providers list`` lists the provider at that version, and ``airflow providers get --full``
   carries the ``Documentation`` Project-URL as ``documentation-url`` (what Airflow's providers page shows);
3. the example DAGs of the repository's ``example_dags/`` parse without an import error, and each runs
   with ``airflow dags test`` against the simulator bundled in the wheel, on a throwaway ``AIRFLOW_HOME``
   (SQLite), and leaves what it promises: the export files, the SQL table, the consent answered.

Only the standard library here, like ``_local_airflow`` (Airflow runs in the processes it starts).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import sysconfig
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from importlib.metadata import distribution
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from _local_airflow import ROOT, Simulator, airflow_env, last_lines, say, stop_on_sigterm

from airflow_provider_etelecom.testing.process import SimulatorProcess

PACKAGE = "airflow_provider_etelecom"
DIST = "airflow-provider-etelecom"
EXAMPLES = ROOT / "example_dags"
VN = ZoneInfo("Asia/Ho_Chi_Minh")
#: Every Project-URL the release carries; Airflow reads ``Documentation`` for its providers page.
PROJECT_URL_LABELS = {"Documentation", "Source", "Changelog", "Issues"}
#: One ``airflow dags test`` at most (the daily DAGs retry after 10 minutes: a failure must not wait for it).
DAG_TIMEOUT_S = 300.0
#: ``(command, seconds)`` of every Airflow command run, printed at the end.
TIMINGS: list[tuple[str, float]] = []


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/_release_check.py", description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, help="the version the wheel's file name carries")
    parser.add_argument("--work", type=Path, required=True, help="a scratch folder outside the checkout")
    args = parser.parse_args()
    stop_on_sigterm()
    started = time.monotonic()

    version = check_installed_package(args.version)
    documentation = check_project_urls()
    home = args.work / "airflow-home"
    logs = args.work / "logs"
    for folder in (home, logs):
        folder.mkdir(parents=True, exist_ok=True)
    env = airflow_env(home, extra={"AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES), "PYTHONSAFEPATH": "1"})
    env.pop("PYTHONPATH", None)  # scripts/, for this driver's own imports only
    check_providers_cli(env, args.work, version, documentation)
    run_examples(env, args.work, logs)
    say(f"The installed wheel {DIST} {version} passed ({time.monotonic() - started:.0f} s)")
    print("\n".join(f"  {seconds:5.1f} s  airflow {command}" for command, seconds in TIMINGS), file=sys.stderr)
    return 0


def fail(message: str) -> None:
    raise SystemExit(f"release-check: {message}")


def check_installed_package(version: str) -> str:
    """Check that the package is the installed wheel at ``version`` and that its provider modules import."""
    say(f"Importing {PACKAGE} from the clean environment")
    package = importlib.import_module(PACKAGE)
    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    where = Path(str(package.__file__)).resolve()
    if site_packages not in where.parents:
        fail(f"{PACKAGE} was imported from {where}, not from the installed wheel in {site_packages}")
    dist = distribution(DIST)
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    if direct_url.get("dir_info", {}).get("editable"):
        fail(f"{DIST} is an editable install of {direct_url.get('url')}, not the built wheel")
    info = package.get_provider_info()
    found = {"metadata": dist.version, "__version__": package.__version__, "provider info": info["versions"][0]}
    if set(found.values()) != {version}:
        fail(f"the versions disagree with the wheel's {version}: {found}")
    groups = ("hooks", "operators", "sensors", "triggers")
    modules = {name for group in groups for entry in info[group] for name in entry["python-modules"]}
    modules |= {e["python-module"] for e in info["transfers"]}
    modules |= {c["hook-class-name"].rpartition(".")[0] for c in info["connection-types"]}
    modules |= {f"{PACKAGE}.testing", f"{PACKAGE}.contract"}
    for name in sorted(modules):
        importlib.import_module(name)
    hook = info["connection-types"][0]["hook-class-name"]
    module, _, cls = hook.rpartition(".")
    getattr(importlib.import_module(module), cls)
    say(f"{DIST} {version} from {where.parent}; {len(modules)} modules import")
    return version


def check_project_urls() -> str:
    """Check the Project-URLs of the installed metadata and return the ``Documentation`` one."""
    entries: list[str] = distribution(DIST).metadata.get_all("Project-URL") or []
    urls = dict(entry.split(", ", 1) for entry in entries)
    if set(urls) != PROJECT_URL_LABELS:
        fail(f"Project-URL labels are {sorted(urls)}, expected {sorted(PROJECT_URL_LABELS)}")
    bad = {label: url for label, url in urls.items() if not url.startswith("https://")}
    if bad:
        fail(f"Project-URLs must be https: {bad}")
    return urls["Documentation"]


def airflow(env: Mapping[str, str], cwd: Path, *args: str, timeout: float = 300.0, log: Path | None = None) -> str:
    """Run ``airflow ARGS`` in its own session, stopped after ``timeout``; return its stdout (fail on an error)."""
    started = time.monotonic()
    out = open(log, "w") if log is not None else None  # noqa: SIM115 (closed below, or kept by subprocess)
    try:
        proc = subprocess.Popen(
            ["airflow", *args],
            env=dict(env),
            cwd=cwd,
            stdout=out or subprocess.PIPE,
            stderr=subprocess.STDOUT if out else subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except BaseException:  # the timeout, Ctrl-C or SIGTERM: stop it and whatever it started
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    finally:
        if out is not None:
            out.close()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # task runners it may have left behind
    TIMINGS.append((" ".join(args[:3]), time.monotonic() - started))
    if proc.returncode != 0:
        detail = last_lines(log) if log is not None else (stderr or stdout or "")[-4000:]
        fail(f"`airflow {' '.join(args)}` exited with {proc.returncode}:\n{detail}")
    return stdout or ""


def check_providers_cli(env: Mapping[str, str], cwd: Path, version: str, documentation: str) -> None:
    """``airflow providers list`` shows the provider at ``version``; ``providers get --full`` its documentation URL."""
    say("airflow providers list")
    listed = {p["package_name"]: p for p in json.loads(airflow(env, cwd, "providers", "list", "-o", "json"))}
    if listed.get(DIST, {}).get("version") != version:
        fail(f"`airflow providers list` shows {listed.get(DIST)}, expected {DIST} {version}")
    say(f"airflow providers get {DIST} --full")
    (full,) = json.loads(airflow(env, cwd, "providers", "get", DIST, "--full", "-o", "json"))
    if full.get("documentation-url") != documentation:
        read = full.get("documentation-url")
        fail(f"Airflow reads the documentation URL {read!r}, the metadata says {documentation!r}")
    say(f"Airflow lists {DIST} {version}, documentation {documentation}")


def run_examples(env: Mapping[str, str], work: Path, logs: Path) -> None:
    """Parse every example DAG, then run each with ``airflow dags test`` against the bundled simulator."""
    exports, warehouse = work / "exports", work / "warehouse.db"
    with (
        open(logs / "simulator.log", "w") as sim_log,
        Simulator(consents=600, auto_reply_after=2.0, log=sim_log) as sim,
    ):
        now = datetime.now(timezone.utc)
        first_day = (now.astimezone(VN) - timedelta(days=6)).date()
        wired = {
            **env,
            "AIRFLOW_CONN_ETELECOM_DEFAULT": sim.connection_json(),
            "AIRFLOW_CONN_ETELECOM_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(warehouse)}),
            "ETELECOM_EXPORT_BASE": exports.resolve().as_uri(),
            "ETELECOM_EXAMPLE_POKE_INTERVAL": "1",
            "ETELECOM_BACKFILL_START": first_day.isoformat(),
            "ETELECOM_BACKFILL_END": (first_day + timedelta(days=2)).isoformat(),
        }
        say("airflow db migrate (SQLite)")
        airflow(wired, work, "db", "migrate", log=logs / "db-migrate.log")
        say("airflow dags list-import-errors --local")
        errors = json.loads(airflow(wired, work, "dags", "list-import-errors", "--local", "-o", "json"))
        if errors:
            fail(f"the example DAGs have import errors: {errors}")
        yesterday = (now - timedelta(days=1)).date().isoformat()
        runs: dict[str, list[str]] = {
            "etelecom_consents_daily": [yesterday],
            "etelecom_consents_backfill": [],
            "etelecom_consents_to_sql_daily": [yesterday],
            "etelecom_request_and_wait": [],
            "etelecom_on_reply": [],
        }
        missing = {p.stem for p in EXAMPLES.glob("*.py")} - set(runs)
        if missing:
            fail(f"example DAGs this check does not run: {sorted(missing)}; add them to run_examples")
        before = {c["id"] for c in sim.control("consents")["consents"]}
        for dag_id, dates in runs.items():
            say(f"airflow dags test {' '.join([dag_id, *dates])}")
            airflow(wired, work, "dags", "test", dag_id, *dates, timeout=DAG_TIMEOUT_S, log=logs / f"{dag_id}.log")
        check_results(sim, before, exports, warehouse)


def check_results(sim: SimulatorProcess, before: set[Any], exports: Path, warehouse: Path) -> None:
    """What the example runs must have left: export files, table rows, one consent requested and answered."""
    daily = sorted((exports / "consents").glob("*.jsonl.gz"))
    backfill = sorted((exports / "backfill").glob("*.jsonl.gz"))
    if len(daily) != 1 or len(backfill) != 2:
        fail(f"expected 1 daily and 2 backfill files under {exports}, found {daily} and {backfill}")
    with contextlib.closing(sqlite3.connect(warehouse)) as conn:
        (rows,) = conn.execute("SELECT COUNT(*) FROM etelecom_consents").fetchone()
    if rows == 0:
        fail(f"the SQL example loaded no consent into {warehouse}")
    requested = [c for c in sim.control("consents")["consents"] if c["id"] not in before]
    if len(requested) != 1 or requested[0].get("reply_status") != "P":
        fail(f"the request-and-wait example should have requested one consent, answered P: {requested}")
    say(f"Examples: {len(daily)} daily file, {len(backfill)} backfill files, {rows} rows in SQLite, consent answered P")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        say("Interrupted")
        sys.exit(130)
