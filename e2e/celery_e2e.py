"""The distributed end-to-end run (``scripts/e2e-celery``; not collected by pytest).

Airflow 3.3 on the CeleryExecutor, every part a process of its own on loopback, each started here
and stopped here: PostgreSQL (metadata database and Celery results; ``initdb`` as the ``postgres``
user), Redis (the Celery broker), the scheduler, the DAG processor, the API server (the Celery
workers' tasks reach the database only through its execution API), the triggerer, TWO Celery
workers with their own hostnames and log-server ports and one task slot each, moto's S3 server
(the exports go to ``s3://``: a ``file://`` path on one host would hide a file written on the wrong
worker) and the eTelecom simulator with its per-key rate limit on and a real round-trip time.

Checks, each counted (the last line is ``N passed, M failed``; exit 1 on any failure):

1. the simulator's rate limit is on: its settings say so and a burst beyond it is answered 429
   with ``Retry-After``;
2. ``etelecom_consents_backfill`` (the example DAG) maps one task per day in the pool of the API
   key; the tasks run on both worker hostnames, never more at once than the pool's slots, and
   lose no consent under the rate limit: the ids read back from S3 are those the hook lists for
   the same windows on one machine; the 429s answered are printed with their share of requests
   (at most 5 % with the pool sized as docs/scale.md says);
3. with one task slot per worker (two in all), three runs of ``etelecom_request_and_wait`` have
   their deferrable sensors deferred at the same time, each consent was requested once, and after
   the customers answer the triggerer resumes the three sensors and the runs succeed;
4. ``etelecom_on_reply`` (scheduled on an Asset watched by ``ConsentReplyEventTrigger``, on the
   triggerer): customers answer ``P`` and ``N`` to consents of the watched OA; one asset event
   per answer (each carrying its ``dedup_key``, no phone), none for the still-pending consent; the
   watcher's record is in the asset state store; after a triggerer restart a consent answered while
   it was down fires once and the earlier answers do not fire again; the runs consume each answer
   once, and run ``schedule_calls`` for a ``P``, ``record_opt_outs`` for an ``N``;
5. a mapped campaign (``e2e/dags/etelecom_e2e_campaign.py``, on a third Celery worker of its own
   queue): ``RequestConsentOperator.partial(...).expand(phone=...)`` for CAMPAIGN_CUSTOMERS
   customers, a deferrable ``ConsentReplySensor`` per consent, a mapped task per customer that
   branches on its answer. While the
   sensors wait, the simulator's request log shows about one listing of the campaign's OA per poke
   interval, not one per wait (their waits share one poll), before and after a triggerer restart
   in the middle of the wait; then the customers answer (some ``P``, some ``N``), every sensor fires
   once (one ``Trigger fired event`` each in the triggerer's log) with its own customer's answer,
   no task fails or runs twice, and each customer's branch acted on that customer's answer;
6. once everything is stopped, nothing listens on the ports the run used.

Logs of every process: ``.e2e-celery/logs/``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import glob
import gzip
import http.client
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from _local_airflow import (
    CONN_ID,
    ROOT,
    Api,
    Simulator,
    _dag_loaded,
    _restore_sigint,
    airflow_env,
    last_lines,
    port_in_use,
    run_airflow,
    say,
    stop_on_sigterm,
    stop_process,
    wait_http,
)

WORKDIR = ROOT / ".e2e-celery"
LOGS = WORKDIR / "logs"
#: One line per process group started, for the shell wrapper's EXIT trap (a safety net if this dies).
PIDS_FILE = WORKDIR / "pids"
PGDATA_FILE = WORKDIR / "pgdata"
E2E_DIR = Path(__file__).resolve().parent
BACKFILL_DAG = "etelecom_consents_backfill"
WAIT_DAG = "etelecom_request_and_wait"
REPLY_DAG = "etelecom_on_reply"
REPLY_ASSET = "etelecom_consent_replies"
#: The OA the watcher watches: not the request-and-wait example's, so its three consents stay out.
WATCHED_OA = "4300132762829599804"
WORKERS = ("worker-a", "worker-b")
BUCKET = "etelecom-e2e"
AWS_CONN_ID = "aws_e2e"
#: The simulator's per-key rate limit and round-trip time. One listing sends one request at a time,
#: so it makes at most 1000 / LATENCY_MS requests per second; the pool gets as many slots as fit in
#: the key's rate: floor(RATE_LIMIT_PER_S * LATENCY_MS / 1000), docs/scale.md's rule. Two slots, not one:
#: with one, Celery may hand every task to the same idle worker; with two listings at once and one
#: task slot per worker (Airflow's Celery config acks late and prefetches one message per slot),
#: the second listing can only go to the other worker, so "both workers" is certain, not likely.
RATE_LIMIT_PER_S = 50.0
LATENCY_MS = 50.0
POOL = "etelecom_e2e_key"
POOL_SLOTS = int(RATE_LIMIT_PER_S * LATENCY_MS / 1000)
MAX_429_SHARE = 0.05
#: Six local days, a thousand consents each: 11 pages per mapped task.
BACKFILL_START, BACKFILL_END = "2026-01-01", "2026-01-07"
SEED_START, SEED_END = "2025-12-31T17:00:00Z", "2026-01-06T17:00:00Z"  # the same days in UTC+7
CONSENTS = 6000
SENSOR_RUNS = 3
CAMPAIGN_DAG = "etelecom_e2e_campaign"
#: The campaign's OA: neither the watcher's nor the request-and-wait example's.
CAMPAIGN_OA = "4300132762829599811"
CAMPAIGN_CUSTOMERS = 50
CAMPAIGN_POKE_S = 3.0
#: Poke intervals in each window where the campaign's listings are counted (before and after the restart).
CAMPAIGN_WINDOW_POLLS = 3
#: Listings per poll a shared poll may send (a span page, the empty page ending it, a retry); a wait
#: per poll each would send CAMPAIGN_CUSTOMERS.
CAMPAIGN_MAX_LISTINGS_PER_POLL = 3
#: The campaign's tasks run on a worker of their own queue with several slots, so that its 200 task
#: runs fit in CI's minutes while the two one-slot workers of the other checks keep their meaning.
CAMPAIGN_QUEUE = "campaign"
CAMPAIGN_WORKER = "worker-campaign"
CAMPAIGN_SLOTS = 6
ADMIN = ("admin", "admin")


class CheckFailed(Exception):
    """One check did not hold."""


class WaitTimedOut(Exception):
    """Something awaited did not happen in time: counted as a failure of its phase."""


class Checks:
    """Counts the checks; a failed one is printed and counted, and stops its phase."""

    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, condition: bool, message: str) -> None:
        if not condition:
            self.failed += 1
            print(f"  FAILED: {message}", flush=True)
            raise CheckFailed(message)
        self.passed += 1
        print(f"  ok: {message}", flush=True)

    def phase(self, name: str, body: Callable[[], None]) -> None:
        say(name)
        try:
            body()
        except CheckFailed:
            pass
        except Exception as error:  # an error is a failed check of its phase, the next phases still run
            traceback.print_exc()
            self.failed += 1
            print(f"  FAILED: {name}: {type(error).__name__}: {error}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Processes:
    """The processes of the run, each in its own session; stopped in reverse order."""

    def __init__(self) -> None:
        self.started: list[tuple[str, subprocess.Popen[Any], int]] = []
        self.ports: list[int] = []
        self.stoppers: list[Callable[[], None]] = []

    def start(
        self, name: str, args: Sequence[str], *, env: Mapping[str, str] | None = None, sig: int = signal.SIGTERM
    ) -> subprocess.Popen[Any]:
        # Appended: a process started again (the triggerer) keeps its first run's log.
        log = open(LOGS / f"{name}.log", "a")  # noqa: SIM115  # closed when the process stops
        proc = subprocess.Popen(
            list(args),
            env=dict(env) if env is not None else None,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_restore_sigint,
        )
        log.close()
        self.started.append((name, proc, sig))
        with open(PIDS_FILE, "a") as pids:
            pids.write(f"{proc.pid}\n")
        return proc

    def check_running(self) -> None:
        for name, proc, _ in self.started:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {proc.returncode}:\n{last_lines(LOGS / f'{name}.log')}")

    def stop_all(self) -> None:
        for name, proc, sig in reversed(self.started):
            stop_process(proc, name, sig, grace=30)
        self.started.clear()
        for stopper in reversed(self.stoppers):
            with contextlib.suppress(Exception):
                stopper()
        self.stoppers.clear()
        # All stopped: the EXIT trap of scripts/e2e-celery must not signal these (reusable) ids.
        PIDS_FILE.unlink(missing_ok=True)
        PGDATA_FILE.unlink(missing_ok=True)

    def still_listening(self) -> list[int]:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(port_in_use(p) for p in self.ports):
            time.sleep(0.5)
        return [p for p in self.ports if port_in_use(p)]


def wait_port(port: int, what: str, proc: subprocess.Popen[Any] | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not port_in_use(port):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited (code {proc.returncode}) before it listened on {port}.")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f} s.")
        time.sleep(0.3)


# -- the services ----------------------------------------------------------------------------------


def start_postgres(procs: Processes, scratch: Path) -> str:
    """``initdb`` and ``pg_ctl start`` as the ``postgres`` user in a temp folder; return the SQLAlchemy URL."""
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if not bindirs:
        raise RuntimeError("PostgreSQL's binaries are not in /usr/lib/postgresql/*/bin: apt-get install postgresql")
    bindir = Path(bindirs[-1])
    port = free_port()
    procs.ports.append(port)
    pg = scratch / "postgres"
    pg.mkdir()
    data = pg / "data"
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        user = pwd.getpwnam("postgres")
        os.chown(pg, user.pw_uid, user.pw_gid)
        as_postgres = ["runuser", "-u", "postgres", "--"]
    PGDATA_FILE.write_text(f"{bindir}\n{data}\n")

    def run(*args: str, log_name: str) -> None:
        with open(LOGS / f"{log_name}.log", "a") as log:
            subprocess.run([*as_postgres, *args], check=True, stdout=log, stderr=subprocess.STDOUT, cwd=pg)

    say(f"PostgreSQL {bindir.parent.name}: initdb in {data}, port {port}")
    run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync",
        log_name="postgres-initdb")  # fmt: skip
    options = (
        f"-p {port} -k {pg} -c listen_addresses=127.0.0.1 -c max_connections=300 "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(pg / "server.log"), "-o", options, "-w", "start",
        log_name="postgres")  # fmt: skip
    procs.stoppers.append(
        lambda: run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop", log_name="postgres")
    )
    run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "airflow", log_name="postgres")
    return f"postgresql+psycopg2://postgres@127.0.0.1:{port}/airflow"


def start_redis(procs: Processes, scratch: Path) -> str:
    port = free_port()
    procs.ports.append(port)
    folder = scratch / "redis"
    folder.mkdir()
    redis = shutil.which("redis-server")
    if redis is None:
        raise RuntimeError("redis-server is not installed: apt-get install redis-server")
    say(f"Redis on port {port}")
    proc = procs.start(
        "redis",
        [redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
    )
    wait_port(port, "redis-server", proc)
    return f"redis://127.0.0.1:{port}/0"


def start_moto(procs: Processes) -> str:
    port = free_port()
    procs.ports.append(port)
    say(f"moto's S3 server on port {port}")
    proc = procs.start("moto", [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)])
    wait_port(port, "moto_server", proc)
    url = f"http://127.0.0.1:{port}"
    s3_client(url).create_bucket(Bucket=BUCKET)
    return url


def s3_client(url: str) -> Any:
    import boto3

    return boto3.client(
        "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def start_simulator(procs: Processes) -> Simulator:
    say(f"The eTelecom simulator: {CONSENTS} consents, {RATE_LIMIT_PER_S:g} requests/s per key, {LATENCY_MS:g} ms")
    with open(LOGS / "simulator.log", "w") as log:  # the child keeps its own copy of the file
        sim = _simulator(log).start()
    procs.stoppers.append(sim.stop)
    with open(PIDS_FILE, "a") as pids:
        pids.write(f"{sim.process.pid}\n")
    procs.ports.append(sim.port)
    return sim


def _simulator(log: IO[str]) -> Simulator:
    return Simulator(
        consents=CONSENTS,
        auto_reply_after=None,  # the customers answer when this script says (after the three deferrals)
        log=log,
        extra_args=[
            "--start",
            SEED_START,
            "--end",
            SEED_END,
            "--rate-limit-per-s",
            f"{RATE_LIMIT_PER_S:g}",
            "--latency-ms",
            f"{LATENCY_MS:g}",
        ],
    )


def airflow_environment(home: Path, dags: Path, db_url: str, broker: str, moto: str, sim: Simulator) -> dict[str, str]:
    api_port = free_port()
    triggerer_logs = free_port()
    env = airflow_env(
        home,
        extra={
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + db_url.replace("+psycopg2", ""),
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN[0]}:admin",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "_worker_hostname.worker_hostname",
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(triggerer_logs),
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "300",
            # The executor's slots: the two one-slot workers' and the campaign worker's (the default is 4).
            "AIRFLOW__CORE__PARALLELISM": str(len(WORKERS) + CAMPAIGN_SLOTS),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(E2E_DIR), os.environ.get("PYTHONPATH")])),
            "AIRFLOW_CONN_" + CONN_ID.upper(): sim.connection_json(),
            "AIRFLOW_CONN_" + AWS_CONN_ID.upper(): json.dumps(
                {
                    "conn_type": "aws",
                    "login": "testing",
                    "password": "testing",
                    "extra": {"endpoint_url": moto, "region_name": "us-east-1"},
                }
            ),
            "ETELECOM_EXPORT_BASE": f"s3://{BUCKET}/run",
            "ETELECOM_EXPORT_CONN_ID": AWS_CONN_ID,
            "ETELECOM_BACKFILL_START": BACKFILL_START,
            "ETELECOM_BACKFILL_END": BACKFILL_END,
            "ETELECOM_POOL": POOL,
            "ETELECOM_EXAMPLE_POKE_INTERVAL": "2",
            "ETELECOM_EXAMPLE_OA_ID": WATCHED_OA,
            "ETELECOM_E2E_CAMPAIGN_OA": CAMPAIGN_OA,
            "ETELECOM_E2E_CAMPAIGN_CUSTOMERS": str(CAMPAIGN_CUSTOMERS),
            "ETELECOM_E2E_CAMPAIGN_POKE_INTERVAL": f"{CAMPAIGN_POKE_S:g}",
            "ETELECOM_E2E_CAMPAIGN_QUEUE": CAMPAIGN_QUEUE,
        },
    )
    return env


def start_airflow(procs: Processes, env: dict[str, str]) -> Api:
    say(f"airflow db migrate (PostgreSQL; log: {LOGS / 'db-migrate.log'})")
    with open(LOGS / "db-migrate.log", "w") as log:
        run_airflow(env, "db", "migrate", log=log)
    api_port = int(env["AIRFLOW__API__PORT"])
    procs.ports += [api_port, int(env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"])]
    say(
        f"Airflow: api-server (port {api_port}), scheduler, dag-processor, triggerer, {len(WORKERS)} Celery workers "
        f"and {CAMPAIGN_WORKER} ({CAMPAIGN_SLOTS} slots, queue {CAMPAIGN_QUEUE})"
    )
    api_server = procs.start("api-server", ["airflow", "api-server"], env=env)
    for component in ("scheduler", "dag-processor", "triggerer"):
        procs.start(component, ["airflow", component], env=env)
    for name, queue, slots in [
        *((name, "default", 1) for name in WORKERS),
        (CAMPAIGN_WORKER, CAMPAIGN_QUEUE, CAMPAIGN_SLOTS),
    ]:
        log_port = free_port()
        procs.ports.append(log_port)
        worker_env = {
            **env,
            "ETELECOM_E2E_HOSTNAME": name,
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),
        }
        procs.start(
            name,
            ["airflow", "celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency", str(slots),
             "--queues", queue, "--pid", str(LOGS / f"{name}.pid")],
            env=worker_env,
        )  # fmt: skip
    wait_http(f"http://127.0.0.1:{api_port}/api/v2/monitor/health", 240, api_server, "airflow api-server")
    procs.check_running()
    return Api(f"http://127.0.0.1:{api_port}", *ADMIN)


# -- the phases ------------------------------------------------------------------------------------


def wait_for(what: str, timeout: float, probe: Callable[[], Any], procs: Processes, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        procs.check_running()
        if time.monotonic() > deadline:
            raise WaitTimedOut(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def sim_stats(sim: Simulator) -> dict[str, Any]:
    return dict(sim.control("stats"))


def api_requests(stats: Mapping[str, Any]) -> int:
    return sum(stats["requests_by_method"].values())


def check_rate_limit(checks: Checks, sim: Simulator) -> None:
    settings = sim.control("settings")
    checks.check(
        settings["rate_limit_per_s"] == RATE_LIMIT_PER_S,
        f"the simulator limits each API key to {RATE_LIMIT_PER_S:g} requests/s",
    )
    body = json.dumps({"paging": {"limit": 1}}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {sim.api_key}"}
    host, port = sim.root_url.removeprefix("http://").split(":")
    path = sim.base_url.removeprefix(sim.root_url) + ".Zalo/ListRequestConsent"

    def client(count: int) -> list[tuple[int, str | None]]:
        """One keep-alive connection sending ``count`` requests back to back."""
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        out = []
        try:
            for _ in range(count):
                connection.request("POST", path, body, headers)
                answer = connection.getresponse()
                answer.read()
                out.append((answer.status, answer.getheader("Retry-After")))
        finally:
            connection.close()
        return out

    # Eight connections at 1000 / LATENCY_MS requests/s each: several times the key's rate.
    connections, each = 8, int(RATE_LIMIT_PER_S * 2)
    burst = connections * each
    with concurrent.futures.ThreadPoolExecutor(max_workers=connections) as pool:
        answers = [answer for answers in pool.map(client, [each] * connections) for answer in answers]
    refused = [retry for status, retry in answers if status == 429]
    checks.check(
        bool(refused)
        and all(retry is not None and float(retry) > 0 for retry in refused)
        and all(status in (200, 429) for status, _ in answers),
        f"a burst of {burst} requests on {connections} connections: {len(refused)} answered 429 with "
        f"Retry-After, the others 200",
    )
    sim.control("reset_stats", {})


def reference_ids(sim: Simulator) -> dict[str, set[str]]:
    """The single-machine run: the hook lists each window of the backfill directly, in this process."""
    os.environ.update(
        {
            "AIRFLOW_HOME": str(WORKDIR / "reference-home"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW_CONN_" + CONN_ID.upper(): sim.connection_json(),
        }
    )
    from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
    from airflow_provider_etelecom.windows import split_windows

    hook = EtelecomHook(CONN_ID)
    out: dict[str, set[str]] = {}
    for window in split_windows(BACKFILL_START, BACKFILL_END, "1d", timezone="Asia/Ho_Chi_Minh"):
        day = window["date_from"][:10]
        out[day] = {str(c["id"]) for c in hook.list_consents(date_from=window["date_from"], date_to=window["date_to"])}
    return out


def exported_ids(moto: str) -> dict[str, list[str]]:
    s3 = s3_client(moto)
    out: dict[str, list[str]] = {}
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix="run/backfill/")
    for obj in listing.get("Contents", []):
        raw = gzip.decompress(s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read())
        day = obj["Key"].rsplit("/", 1)[1].split(".", 1)[0]
        out[day] = [str(json.loads(line)["id"]) for line in raw.splitlines() if line.strip()]
    return out


def task_instances(api: Api, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances?limit=100"
    return list(api.get(path)["task_instances"])


def run_state(api: Api, dag_id: str, run_id: str) -> str:
    return str(api.get(f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}")["state"])


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def backfill_phase(checks: Checks, api: Api, sim: Simulator, moto: str, procs: Processes) -> dict[str, Any]:
    say("The single-machine reference: the hook lists the same windows directly")
    reference = reference_ids(sim)
    total = sum(len(ids) for ids in reference.values())
    checks.check(total > 0 and len(reference) == 6, f"the hook lists {total} consents in {len(reference)} local days")
    sim.control("reset_stats", {})
    run_id = api.post(f"/api/v2/dags/{BACKFILL_DAG}/dagRuns", {"logical_date": None})["dag_run_id"]
    say(f"{BACKFILL_DAG} {run_id}: {len(reference)} mapped tasks in pool {POOL} ({POOL_SLOTS} slots)")
    started = time.monotonic()
    state = wait_for(
        f"{BACKFILL_DAG} finished",
        300,
        lambda: (lambda s: s if s in ("success", "failed") else None)(run_state(api, BACKFILL_DAG, run_id)),
        procs,
        interval=2,
    )
    elapsed = time.monotonic() - started
    stats = sim_stats(sim)
    tis = [ti for ti in task_instances(api, BACKFILL_DAG, run_id) if ti["task_id"] == "export_day"]
    summary = ", ".join(f"{ti['map_index']}={ti['state']}@{ti.get('hostname')}" for ti in tis)
    checks.check(
        state == "success" and len(tis) == len(reference) and all(ti["state"] == "success" for ti in tis),
        f"the backfill succeeded in {elapsed:.0f} s: {len(tis)} mapped task instances ({summary})",
    )
    hosts = {str(ti.get("hostname")) for ti in tis}
    per_host = {host: sum(1 for ti in tis if ti.get("hostname") == host) for host in WORKERS}
    checks.check(
        all(per_host[host] >= 1 for host in WORKERS) and hosts == set(WORKERS),
        f"task instances ran on both workers: {per_host}",
    )
    intervals = [(parse_time(ti["start_date"]), parse_time(ti["end_date"])) for ti in tis]
    peak = max_overlap(intervals)
    checks.check(
        all(ti["pool"] == POOL for ti in tis) and 1 <= peak <= POOL_SLOTS,
        f"every task in pool {POOL}; at most {peak} listed at once: the pool's {POOL_SLOTS} slot(s), "
        f"not the {len(WORKERS)} worker slots",
    )
    exported = exported_ids(moto)
    duplicates = sum(len(ids) - len(set(ids)) for ids in exported.values())
    same = {day: set(ids) for day, ids in exported.items()} == reference
    checks.check(
        same and duplicates == 0,
        f"S3 holds {sum(len(v) for v in exported.values())} ids in {len(exported)} files, each once, "
        f"exactly the single-machine run's {total}",
    )
    requests_sent = api_requests(stats)
    refused = int(stats["rate_limited"])
    share = refused / requests_sent if requests_sent else 0.0
    print(
        f"  rate limit: {refused} of {requests_sent} requests answered 429 ({share:.1%}) with "
        f"{POOL_SLOTS} pool slots at {RATE_LIMIT_PER_S:g} requests/s and {LATENCY_MS:g} ms per request",
        flush=True,
    )
    checks.check(
        share <= MAX_429_SHARE,
        f"429s answered during the backfill: {share:.1%} of requests (target at most {MAX_429_SHARE:.0%})",
    )
    return {"requests": requests_sent, "rate_limited": refused, "share": share, "seconds": elapsed}


def sensor_phase(checks: Checks, api: Api, sim: Simulator, procs: Processes) -> None:
    before = {c["id"] for c in sim.control("consents")["consents"]}
    runs = []
    for index in range(SENSOR_RUNS):
        conf = {"phone": f"09876543{index:02d}"}
        runs.append(api.post(f"/api/v2/dags/{WAIT_DAG}/dagRuns", {"logical_date": None, "conf": conf})["dag_run_id"])
    say(f"{SENSOR_RUNS} runs of {WAIT_DAG} on {len(WORKERS)} task slots; waiting for their sensors to defer")
    seen: list[str] = []

    def all_deferred() -> bool:
        states = []
        for run_id in runs:
            sensor = [ti for ti in task_instances(api, WAIT_DAG, run_id) if ti["task_id"] == "wait_for_reply"]
            states.append(str(sensor[0]["state"]) if sensor else "none")
        line = ", ".join(states)
        if not seen or seen[-1] != line:
            seen.append(line)
            print(f"  sensors: {line}", flush=True)
        return all(state == "deferred" for state in states)

    wait_for("three sensors deferred at once", 240, all_deferred, procs)
    checks.check(True, f"{SENSOR_RUNS} sensors deferred at the same time on {len(WORKERS)} worker slots")
    requested = [c for c in sim.control("consents")["consents"] if c["id"] not in before]
    checks.check(len(requested) == SENSOR_RUNS, f"{len(requested)} consents requested: one per run, none twice")
    for consent in requested:
        sim.control("reply", {"consent_id": consent["id"], "reply_status": "P"})
    say("The customers answered P; waiting for the triggerer to resume the sensors")

    def finished() -> dict[str, str] | None:
        states = {run_id: run_state(api, WAIT_DAG, run_id) for run_id in runs}
        return states if all(s in ("success", "failed") for s in states.values()) else None

    states = wait_for("the three runs finished", 240, finished, procs, interval=2)
    resumed = []
    for run_id in runs:
        tis = {ti["task_id"]: ti["state"] for ti in task_instances(api, WAIT_DAG, run_id)}
        resumed.append(tis.get("wait_for_reply") == "success" and tis.get("schedule_call") == "success")
    checks.check(
        all(s == "success" for s in states.values()) and all(resumed),
        f"the triggerer resumed the {SENSOR_RUNS} sensors and each run went on to schedule_call",
    )


def request_consents(sim: Simulator, count: int) -> list[dict[str, Any]]:
    """Ask ``count`` customers of the watched OA, through the provider's client (no Airflow)."""
    from airflow_provider_etelecom.client import ClientConfig, EtelecomClient

    with EtelecomClient(ClientConfig.build(base_url=sim.base_url, api_key=sim.api_key)) as client:
        return [
            client.request_consent(
                oa_id=WATCHED_OA, phone=f"0935{index:06d}", call_type="audio", reason_code="update_order"
            )
            for index in range(count)
        ]


def reply_events(api: Api) -> tuple[int, list[dict[str, Any]]]:
    """The watched asset's id and the payloads of its asset events, oldest first."""
    (asset,) = [a for a in api.get("/api/v2/assets?limit=100")["assets"] if a["name"] == REPLY_ASSET]
    events = api.get(f"/api/v2/assets/events?asset_id={asset['id']}&limit=100&order_by=timestamp")["asset_events"]
    return int(asset["id"]), [e["extra"]["payload"] for e in events if e.get("extra", {}).get("from_trigger")]


def reply_runs(api: Api) -> list[dict[str, Any]]:
    """Every finished run of ``etelecom_on_reply``: the replies it consumed and its tasks' states."""
    runs = []
    for run in api.get(f"/api/v2/dags/{REPLY_DAG}/dagRuns?limit=100")["dag_runs"]:
        if run["state"] not in ("success", "failed"):
            continue
        path = f"/api/v2/dags/{REPLY_DAG}/dagRuns/{quote(run['dag_run_id'])}"
        consumed = api.get(f"{path}/upstreamAssetEvents")["asset_events"]
        runs.append(
            {
                "state": run["state"],
                "replies": {
                    e["extra"]["payload"]["consent_id"]: e["extra"]["payload"]["reply_status"] for e in consumed
                },
                "tasks": {ti["task_id"]: ti["state"] for ti in task_instances(api, REPLY_DAG, run["dag_run_id"])},
            }
        )
    return runs


def consumed_ids(runs: list[dict[str, Any]]) -> list[str]:
    return sorted(consent_id for run in runs for consent_id in run["replies"])


def branches_follow_replies(runs: list[dict[str, Any]]) -> bool:
    """Each run ran schedule_calls iff it consumed a P, record_opt_outs iff it consumed an N."""
    for run in runs:
        replies = set(run["replies"].values())
        for reply, task_id in (("P", "schedule_calls"), ("N", "record_opt_outs")):
            if (run["tasks"].get(task_id) == "success") != (reply in replies):
                return False
    return all(run["state"] == "success" for run in runs)


def restart_triggerer(procs: Processes, env: dict[str, str]) -> None:
    (entry,) = [e for e in procs.started if e[0] == "triggerer"]
    stop_process(entry[1], "triggerer", entry[2], grace=30)
    procs.started.remove(entry)
    procs.start("triggerer", ["airflow", "triggerer"], env=env)


def watcher_phase(checks: Checks, api: Api, sim: Simulator, procs: Processes, env: dict[str, str]) -> None:
    agreed, refused, pending, later = (c["id"] for c in request_consents(sim, 4))
    sim.control("reply", {"consent_id": agreed, "reply_status": "P"})
    sim.control("reply", {"consent_id": refused, "reply_status": "N"})
    say(f"Customers of OA {WATCHED_OA} answered P and N; waiting for the watcher's events and a run of {REPLY_DAG}")

    def fired_and_ran() -> list[dict[str, Any]] | None:
        fired = reply_events(api)[1]
        runs = reply_runs(api)
        return fired if len(fired) >= 2 and runs else None

    payloads = wait_for("two asset events and a finished run", 90, fired_and_ran, procs, interval=2)
    asset_id = reply_events(api)[0]
    checks.check(
        sorted(p["consent_id"] for p in payloads) == sorted([agreed, refused]),
        f"one asset event per answer ({len(payloads)}), none for the pending consent",
    )
    consents = {c["id"]: c for c in sim.control("consents")["consents"]}
    checks.check(
        all(p["dedup_key"] == f"{p['consent_id']}:{consents[p['consent_id']]['updated_at']}" for p in payloads)
        and not any("phone" in p for p in payloads)
        and sim.api_key not in json.dumps(payloads),
        "each event carries its dedup_key (id:updated_at), no phone and no key",
    )

    def record() -> dict[str, Any] | None:
        entries = api.get(f"/api/v2/assets/{asset_id}/state-store")["asset_state_store"]
        mine = [e["value"] for e in entries if e["key"].startswith("etelecom_consent_replies:")]
        return mine[0] if mine and {agreed, refused} <= set(mine[0]["fired"]) else None

    wait_for("the watcher's record in the asset state store", 30, record, procs)
    checks.check(True, "the watcher wrote its record (the consents fired, the span) to the asset state store")
    say("Restarting the triggerer; a customer answers while it is down")
    restart_triggerer(procs, env)
    sim.control("reply", {"consent_id": later, "reply_status": "P"})

    def all_consumed() -> list[dict[str, Any]] | None:
        runs = reply_runs(api)
        return runs if consumed_ids(runs) == sorted([agreed, refused, later]) else None

    # Airflow 3.3.2 can leave an event that lands while the scheduler creates a run for the one
    # before it queued until the next event (apache/airflow#70970): the run after it consumes it.
    runs = wait_for("runs consuming all three answers", 120, all_consumed, procs, interval=2)
    fired = reply_events(api)[1]
    checks.check(
        sorted(p["consent_id"] for p in fired) == sorted([agreed, refused, later])
        and {c["id"]: c["reply_status"] for c in sim.control("consents")["consents"]}[pending] == "S",
        "after the triggerer restart: the answer given while it was down fired once, the earlier two "
        "did not fire again, the pending consent never fired",
    )
    checks.check(
        branches_follow_replies(runs),
        f"{len(runs)} run(s) consumed each answer once; schedule_calls ran for the P runs, record_opt_outs "
        "for the N run: " + "; ".join(f"{sorted(r['replies'].values())} -> {r['tasks']}" for r in runs),
    )


def all_task_instances(api: Api, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Every task instance of a run, page by page (the API answers 100 at most)."""
    out: list[dict[str, Any]] = []
    while True:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances?limit=100&offset={len(out)}"
        page = api.get(path)["task_instances"]
        out += page
        if len(page) < 100:
            return out


def xcom(api: Api, dag_id: str, run_id: str, task_id: str, map_index: int) -> Any:
    path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances/{task_id}/xcomEntries/return_value"
    return api.get(f"{path}?map_index={map_index}")["value"]


def campaign_listings(sim: Simulator, since: float, until: float) -> list[float]:
    """When the simulator answered a listing of the campaign's OA in ``[since, until)``: its request log."""
    return [
        float(entry["time"])
        for entry in sim.control("requests_log")["requests"]
        if entry["method"] == "Zalo/ListRequestConsent"
        and since <= float(entry["time"]) < until
        and isinstance(entry["body"], dict)
        and str((entry["body"].get("filter") or {}).get("oa_id")) == CAMPAIGN_OA
    ]


def listings_in_window(sim: Simulator) -> tuple[int, int, float]:
    """Count the campaign's listings over CAMPAIGN_WINDOW_POLLS poke intervals: (listings, polls due, seconds)."""
    since = time.time()
    time.sleep(CAMPAIGN_WINDOW_POLLS * CAMPAIGN_POKE_S)
    until = time.time()
    polls = int((until - since) // CAMPAIGN_POKE_S) + 1  # a poll may fall at both edges
    return len(campaign_listings(sim, since, until)), polls, until - since


def trigger_logs(home: Path, run_id: str) -> tuple[dict[int, set[str]], dict[int, list[str]]]:
    """Which triggerer jobs held each campaign sensor's trigger, and which fired it (once per event).

    The triggerer writes each task's trigger log next to the task's log, one file per triggerer
    process (``attempt=N.log.trigger.<triggerer job id>.log``); an event is its ``Trigger fired
    event`` line. Both are keyed by map index.
    """
    held: dict[int, set[str]] = {}
    fired: dict[int, list[str]] = {}
    folder = home / "logs" / f"dag_id={CAMPAIGN_DAG}" / f"run_id={run_id}" / "task_id=wait_for_reply"
    for path in sorted(folder.glob("map_index=*/attempt=*.log.trigger.*.log")):
        index, job = int(path.parent.name.removeprefix("map_index=")), path.name.rsplit(".", 2)[-2]
        held.setdefault(index, set()).add(job)
        for line in path.read_text(errors="replace").splitlines():
            if '"Trigger fired event"' in line:
                fired.setdefault(index, []).append(job)
    return held, fired


def campaign_phase(checks: Checks, api: Api, sim: Simulator, procs: Processes, env: dict[str, str]) -> dict[str, Any]:
    started = time.monotonic()
    phones = [f"84936{index:06d}" for index in range(CAMPAIGN_CUSTOMERS)]  # the DAG's 0936…, as stored
    run_id = api.post(f"/api/v2/dags/{CAMPAIGN_DAG}/dagRuns", {"logical_date": None})["dag_run_id"]
    say(f"{CAMPAIGN_DAG} {run_id}: {CAMPAIGN_CUSTOMERS} customers; waiting for their sensors to defer")
    seen: list[str] = []

    def sensor_states() -> dict[str, int]:
        tis = [ti for ti in all_task_instances(api, CAMPAIGN_DAG, run_id) if ti["task_id"] == "wait_for_reply"]
        states: dict[str, int] = {}
        for ti in tis:
            if ti["map_index"] >= 0:
                states[str(ti["state"])] = states.get(str(ti["state"]), 0) + 1
        return states

    def all_deferred() -> bool:
        states = sensor_states()
        line = ", ".join(f"{state} {count}" for state, count in sorted(states.items()))
        if not seen or seen[-1] != line:
            seen.append(line)
            print(f"  sensors: {line or 'not expanded yet'}", flush=True)
        return states == {"deferred": CAMPAIGN_CUSTOMERS}

    wait_for(f"{CAMPAIGN_CUSTOMERS} sensors deferred", 300, all_deferred, procs, interval=2)
    deferred_in = time.monotonic() - started
    checks.check(True, f"{CAMPAIGN_CUSTOMERS} mapped sensors deferred ({deferred_in:.0f} s after the run began)")
    requested = [c for c in sim.control("consents")["consents"] if c["oa_id"] == CAMPAIGN_OA]
    by_phone = {c["phone"]: c for c in requested}
    checks.check(
        len(requested) == CAMPAIGN_CUSTOMERS and sorted(by_phone) == sorted(phones),
        f"{len(requested)} consents requested in OA {CAMPAIGN_OA}: one per customer, none twice",
    )

    time.sleep(CAMPAIGN_POKE_S)  # the last trigger to start has joined the poll
    before, polls_before, seconds_before = listings_in_window(sim)
    checks.check(
        before <= CAMPAIGN_MAX_LISTINGS_PER_POLL * polls_before,
        f"{CAMPAIGN_CUSTOMERS} waits, {polls_before} polls of {CAMPAIGN_POKE_S:g} s: {before} listings of the OA "
        f"(at most {CAMPAIGN_MAX_LISTINGS_PER_POLL} per poll; a poll per wait would send about "
        f"{CAMPAIGN_CUSTOMERS * polls_before})",
    )

    say("Restarting the triggerer while the sensors are deferred")
    restart = time.time()
    restart_triggerer(procs, env)
    started_again = time.time()  # the old one has exited: a listing from now on is the new one's
    back = wait_for(
        "the new triggerer polling the campaign's OA",
        180,
        lambda: campaign_listings(sim, started_again, time.time()),
        procs,
    )
    time.sleep(CAMPAIGN_POKE_S)
    catch_up = len(campaign_listings(sim, started_again, time.time()))
    print(
        f"  the triggerer stopped in {started_again - restart:.0f} s; the new one listed the OA "
        f"{back[0] - started_again:.0f} s after it started, {catch_up} listing(s) until it settled (the first "
        "checks of the waits on it)",
        flush=True,
    )
    after, polls_after, seconds_after = listings_in_window(sim)
    states = sensor_states()
    checks.check(
        states == {"deferred": CAMPAIGN_CUSTOMERS} and 1 <= after <= CAMPAIGN_MAX_LISTINGS_PER_POLL * polls_after,
        f"after the restart all {CAMPAIGN_CUSTOMERS} sensors still deferred ({states}); {after} listings in "
        f"{polls_after} polls",
    )

    answers = {phone: "N" if index % 3 == 0 else "P" for index, phone in enumerate(phones)}
    for phone, answer in answers.items():
        sim.control("reply", {"consent_id": by_phone[phone]["id"], "reply_status": answer})
    agreed = sum(1 for answer in answers.values() if answer == "P")
    say(f"{agreed} customers answered P, {CAMPAIGN_CUSTOMERS - agreed} N; waiting for the run to finish")
    state = wait_for(
        f"{CAMPAIGN_DAG} finished",
        300,
        lambda: (lambda s: s if s in ("success", "failed") else None)(run_state(api, CAMPAIGN_DAG, run_id)),
        procs,
        interval=2,
    )
    tis = [ti for ti in all_task_instances(api, CAMPAIGN_DAG, run_id) if ti["map_index"] >= 0]
    tally: dict[str, int] = {}
    for ti in tis:
        key = f"{ti['task_id']} {ti['state']}"
        tally[key] = tally.get(key, 0) + 1
    checks.check(
        state == "success"
        and len(tis) == 3 * CAMPAIGN_CUSTOMERS
        and all(ti["state"] == "success" and ti["try_number"] == 1 for ti in tis),
        f"the run succeeded; no task failed or ran twice (every one on try 1): {tally}",
    )
    held, fired = trigger_logs(Path(env["AIRFLOW_HOME"]), run_id)
    jobs = sorted({job for held_by in held.values() for job in held_by}, key=int)
    checks.check(
        sorted(fired) == list(range(CAMPAIGN_CUSTOMERS))
        and all(
            len(by) == 1 and len(held[index]) == 2 and by[0] == max(held[index], key=int) for index, by in fired.items()
        ),
        f"every sensor's trigger was held by both triggerer processes (jobs {jobs}) and fired exactly once, "
        f"by the one started after the restart: {sum(len(by) for by in fired.values())} events for "
        f"{len(fired)} of {CAMPAIGN_CUSTOMERS} sensors (their trigger logs)",
    )
    wrong = []
    for index, phone in enumerate(phones):
        consent_id, answer = by_phone[phone]["id"], answers[phone]
        action = "schedule_call" if answer == "P" else "record_opt_out"
        sensed = xcom(api, CAMPAIGN_DAG, run_id, "wait_for_reply", index)
        acted = xcom(api, CAMPAIGN_DAG, run_id, "act_on_reply", index)
        if (sensed["id"], sensed["phone"], sensed["reply_status"]) != (consent_id, phone, answer) or acted != {
            "action": action,
            "consent_id": consent_id,
            "phone": phone,
            "reply_status": answer,
        }:
            wrong.append(f"{index}: answered {answer}, sensor saw {sensed.get('reply_status')}, acted {acted}")
    checks.check(
        not wrong,
        f"customer i's sensor returned customer i's consent and answer, and customer i's branch saw them and "
        f"ran schedule_call for the P ({agreed}), record_opt_out for the N ({CAMPAIGN_CUSTOMERS - agreed})"
        f"{': ' + '; '.join(wrong[:5]) if wrong else ''}",
    )
    seconds = time.monotonic() - started
    print(f"  campaign phase: {seconds:.0f} s", flush=True)
    return {
        "campaign_seconds": seconds,
        "listings": before + after,
        "waited": seconds_before + seconds_after,
        "listings_per_interval": (before + after) / ((seconds_before + seconds_after) / CAMPAIGN_POKE_S),
    }


def make_dags_folder(scratch: Path) -> Path:
    """Only the examples this run uses (the daily export would start a run of its own)."""
    dags = scratch / "dags"
    dags.mkdir()
    for name in (f"{BACKFILL_DAG}.py", f"{WAIT_DAG}.py", f"{REPLY_DAG}.py"):
        (dags / name).symlink_to(ROOT / "example_dags" / name)
    (dags / f"{CAMPAIGN_DAG}.py").symlink_to(E2E_DIR / "dags" / f"{CAMPAIGN_DAG}.py")
    return dags


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/e2e-celery", description=__doc__.splitlines()[0])
    parser.parse_args()
    stop_on_sigterm()
    started = time.monotonic()
    shutil.rmtree(WORKDIR, ignore_errors=True)
    LOGS.mkdir(parents=True)
    checks = Checks()
    procs = Processes()
    figures: dict[str, Any] = {}
    scratch = Path(tempfile.mkdtemp(prefix="etelecom-celery-"))
    os.chmod(scratch, 0o755)  # the postgres user works in a folder inside
    try:
        with contextlib.ExitStack() as stack:
            stack.callback(procs.stop_all)
            db_url = start_postgres(procs, scratch)
            broker = start_redis(procs, scratch)
            moto = start_moto(procs)
            sim = start_simulator(procs)
            home = scratch / "airflow-home"
            home.mkdir()
            (home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({ADMIN[0]: ADMIN[1]}))
            env = airflow_environment(home, make_dags_folder(scratch), db_url, broker, moto, sim)
            api = start_airflow(procs, env)
            api.post("/api/v2/pools", {"name": POOL, "slots": POOL_SLOTS, "description": "eTelecom API key of the e2e"})
            say(f"Pool {POOL} with {POOL_SLOTS} slots; waiting for the DAG processor")
            for dag_id in (BACKFILL_DAG, WAIT_DAG, REPLY_DAG, CAMPAIGN_DAG):
                wait_for(f"{dag_id} loaded", 240, lambda d=dag_id: _dag_loaded(api, d), procs)  # type: ignore[misc]
                api.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False})
            checks.phase("The per-key rate limit", lambda: check_rate_limit(checks, sim))
            checks.phase(
                "The mapped backfill on two workers",
                lambda: figures.update(backfill_phase(checks, api, sim, moto, procs)),
            )
            checks.phase("Three deferrable sensors on two task slots", lambda: sensor_phase(checks, api, sim, procs))
            checks.phase(
                "Runs started by answers (AssetWatcher on the triggerer)",
                lambda: watcher_phase(checks, api, sim, procs, env),
            )
            checks.phase(
                f"A mapped campaign of {CAMPAIGN_CUSTOMERS} customers: deferred waits sharing a poll",
                lambda: figures.update(campaign_phase(checks, api, sim, procs, env)),
            )
            totals = sim_stats(sim)
            print(f"  simulator, whole run after the burst check: {json.dumps(totals['requests'])}", flush=True)
            say("Stopping every process")
    except KeyboardInterrupt:
        say("Interrupted; everything it started is stopped")
        return 130
    except Exception as error:
        traceback.print_exc()
        checks.failed += 1
        print(f"  FAILED: setting up the deployment: {error} (logs in {LOGS})", flush=True)
    finally:
        procs.stop_all()
        shutil.rmtree(scratch, ignore_errors=True)
    left = procs.still_listening()
    with contextlib.suppress(CheckFailed):
        checks.check(not left, f"nothing listens any more on the {len(procs.ports)} ports the run used {left or ''}")
    if "listings_per_interval" in figures:
        print(
            f"Campaign: {figures['campaign_seconds']:.0f} s for {CAMPAIGN_CUSTOMERS} customers; while its "
            f"{CAMPAIGN_CUSTOMERS} sensors waited, {figures['listings']} listings in {figures['waited']:.0f} s: "
            f"{figures['listings_per_interval']:.2f} per poke interval of {CAMPAIGN_POKE_S:g} s "
            f"(a poll per wait: {CAMPAIGN_CUSTOMERS})",
            flush=True,
        )
    if "seconds" in figures:
        print(
            f"Backfill: {figures['seconds']:.0f} s; {figures['rate_limited']} of {figures['requests']} requests "
            f"answered 429 ({figures['share']:.1%})",
            flush=True,
        )
    say(f"e2e-celery took {time.monotonic() - started:.0f} s; logs in {LOGS}")
    print(f"{checks.passed} passed, {checks.failed} failed", flush=True)
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
