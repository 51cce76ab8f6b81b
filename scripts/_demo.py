"""The one-command demo (run by ``scripts/demo`` inside the Airflow 3.3 environment).

Starts the bundled eTelecom simulator, makes a throwaway ``AIRFLOW_HOME`` (SQLite, no Airflow
examples, DAGs folder = ``example_dags/``), runs the daily export and the request-and-wait example
with ``airflow dags test``, then prints what happened. Output stays in ``.demo/``; everything
else (the Airflow home, the simulator) is gone when the command ends, however it ends.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from _local_airflow import (
    ROOT,
    Simulator,
    airflow_home,
    last_lines,
    run_airflow,
    say,
    stop_on_sigterm,
    wired_airflow_env,
)

DEMO_DIR = ROOT / ".demo"
DAILY_DAG = "etelecom_consents_daily"
WAIT_DAG = "etelecom_request_and_wait"
REPLY_MEANING = {"P": "agreed", "N": "refused", "NS": "no reply", "S": "sent, not answered yet"}


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.splitlines()[0])
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).date().isoformat()
    parser.add_argument("--date", default=yesterday, help=f"logical date of the daily export (default {yesterday})")
    parser.add_argument("--consents", type=int, default=5000, help="consents seeded in the simulator (default 5000)")
    parser.add_argument("--reply-after", type=float, default=5.0, help="seconds before the customer replies (5)")
    args = parser.parse_args()
    stop_on_sigterm()

    started = time.monotonic()
    output = DEMO_DIR / "output"
    logs = DEMO_DIR / "logs"
    output.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    for old in logs.glob("*.log"):
        old.unlink()

    with contextlib.ExitStack() as stack:
        say(f"Starting the eTelecom simulator ({args.consents} consents, customers reply after {args.reply_after:g} s)")
        sim_log = stack.enter_context(open(logs / "simulator.log", "w"))
        sim = stack.enter_context(Simulator(consents=args.consents, auto_reply_after=args.reply_after, log=sim_log))
        home = stack.enter_context(airflow_home())
        env = wired_airflow_env(home, sim, output, in_env=True)

        _metadata_db(env, home, logs)

        results: dict[str, bool] = {}
        export_started = time.time()
        results[DAILY_DAG] = _dags_test(env, logs, DAILY_DAG, args.date)
        before = {c["id"] for c in sim.control("consents")["consents"]}
        results[WAIT_DAG] = _dags_test(env, logs, WAIT_DAG)
        requested = [c for c in sim.control("consents")["consents"] if c["id"] not in before]

        os.environ.update(env)  # the summary reads the run's task states from this Airflow's database
        print(_summary(output, export_started, requested, results, logs, time.monotonic() - started))
        return 0 if all(results.values()) else 1


def _metadata_db(env: dict[str, str], home: Path, logs: Path) -> None:
    """Give the throwaway home a freshly migrated SQLite database (copied from a cache after the first run)."""
    stamp = _venv_stamp()
    template = DEMO_DIR / "cache" / f"airflow-{_airflow_version()}-{stamp}.db"
    if not template.exists():
        say("Creating an empty Airflow metadata database (SQLite; cached for the next runs)")
        with open(logs / "db-migrate.log", "w") as log:
            run_airflow(env, "db", "migrate", log=log)
        template.parent.mkdir(parents=True, exist_ok=True)
        for old in template.parent.glob("airflow-*.db"):
            old.unlink()
        shutil.copyfile(home / "airflow.db", template.with_suffix(".tmp"))
        template.with_suffix(".tmp").replace(template)
    else:
        say("Copying an empty, migrated Airflow metadata database into the throwaway AIRFLOW_HOME")
        shutil.copyfile(template, home / "airflow.db")


def _venv_stamp() -> str:
    try:
        return (Path(sys.prefix) / ".stamp").read_text().strip().replace(",", "-")
    except OSError:
        return "nostamp"


def _airflow_version() -> str:
    from importlib.metadata import version

    return version("apache-airflow")


def _dags_test(env: dict[str, str], logs: Path, dag_id: str, logical_date: str | None = None) -> bool:
    say(f"airflow dags test {dag_id} {logical_date or ''}".rstrip())
    log_path = logs / f"{dag_id}.log"
    with open(log_path, "w") as log:
        args = ["dags", "test", dag_id] + ([logical_date] if logical_date else [])
        ok = run_airflow(env, *args, log=log, check=False).returncode == 0
    if not ok:
        say(f"{dag_id} FAILED; the end of {log_path.relative_to(ROOT)}:")
        print(last_lines(log_path), file=sys.stderr)
    return ok


def _summary(
    output: Path,
    since: float,
    requested: list[dict[str, Any]],
    results: dict[str, bool],
    logs: Path,
    elapsed: float,
) -> str:
    lines = ["", "eTelecom provider demo: summary", "=" * 31]
    lines.append(f"Daily export ({DAILY_DAG}): {'succeeded' if results[DAILY_DAG] else 'FAILED'}")
    files = sorted(
        (p for p in output.rglob("*.jsonl*") if p.is_file() and p.stat().st_mtime >= since - 1),
        key=lambda p: p.stat().st_mtime,
    )
    for task_id, value in _return_values(DAILY_DAG):
        if isinstance(value, dict) and isinstance(value.get("window"), dict):
            window = value["window"]
            lines.append(
                f"  {task_id}: consents created in [{window.get('date_from')}, {window.get('date_to')}), "
                f"{value.get('pages')} page(s)"
            )
    for path in files:
        consents = list(_read_jsonl(path))
        lines.append(f"  {len(consents)} consents exported to {path}")
        lines.append(f"  by reply_status: {_counts(c.get('reply_status') for c in consents)}")
        lines.append(f"  by call_type:    {_counts(c.get('call_type') for c in consents)}")
    if not files:
        lines.append(f"  no export file written under {output}")

    lines.append(f"Request and wait ({WAIT_DAG}): {'succeeded' if results[WAIT_DAG] else 'FAILED'}")
    for consent in requested:
        status = consent.get("reply_status")
        lines.append(
            f"  consent {consent.get('id')} sent to {consent.get('phone')} ({consent.get('call_type')}): "
            f"final reply_status {status} ({REPLY_MEANING.get(str(status), 'unknown')})"
        )
    states = _task_states(WAIT_DAG)
    if states:
        ran = [task for task, state in states if state == "success"]
        skipped = [task for task, state in states if state == "skipped"]
        other = [f"{task}={state}" for task, state in states if state not in ("success", "skipped")]
        lines.append(f"  tasks run:     {', '.join(ran) or '-'}")
        lines.append(f"  tasks skipped: {', '.join(skipped) or '-'} (the branch not taken)")
        if other:
            lines.append(f"  other states:  {', '.join(other)}")
    lines.append("reply_status: P agreed, N refused, NS never answered, S waiting; other values (Z) pass through as-is")
    lines.append(f"Logs: {logs}    ({elapsed:.0f} s)")
    return "\n".join(lines)


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def _counts(values: Iterator[Any]) -> str:
    counts = Counter(str(v) for v in values)
    return ", ".join(f"{key} {count}" for key, count in counts.most_common()) or "-"


def _latest_run(session: Any, dag_id: str) -> Any:
    """Return the newest run of ``dag_id`` (or ``None``)."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    return session.scalars(select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(1)).first()


def _return_values(dag_id: str) -> list[tuple[str, Any]]:
    """Return ``(task_id, return value)`` of the tasks of the latest run of ``dag_id`` (XCom)."""
    try:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            run = _latest_run(session, dag_id)
            if run is None:
                return []
            rows = session.scalars(
                select(XComModel).where(
                    XComModel.dag_id == dag_id, XComModel.run_id == run.run_id, XComModel.key == "return_value"
                )
            ).all()
            return [(row.task_id, XComModel.deserialize_value(row)) for row in rows]
    except Exception:  # an optional detail: never fail the summary over it
        return []


def _task_states(dag_id: str) -> list[tuple[str, str]]:
    """Return ``(task_id, state)`` of the latest run of ``dag_id``, in the order the tasks ended."""
    try:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            run = _latest_run(session, dag_id)
            if run is None:
                return []
            tis = session.scalars(
                select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id)
            ).all()
            ordered = sorted(tis, key=lambda ti: (ti.end_date is None, ti.end_date or datetime.min, ti.task_id))
            return [(ti.task_id, str(ti.state.value if hasattr(ti.state, "value") else ti.state)) for ti in ordered]
    except Exception as exc:  # the summary must not hide the runs' own result
        return [("(task states unavailable)", repr(exc))]


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        say("Interrupted; everything the demo started is stopped")
        sys.exit(130)
