"""A local Airflow wired to the bundled eTelecom simulator: the machinery of ``scripts/demo``,
``scripts/airflow-ui`` and ``scripts/e2e``.

Only the standard library here (and the package's simulator starter, which is standard library
too): it runs in the project's Airflow virtual environment but never imports Airflow itself, so
the Airflow processes get exactly the environment we hand them.

Every process is started in its own session (``start_new_session``) with SIGINT restored, so a
Ctrl-C in the terminal reaches only the driver, which then stops each process in order and checks
that nothing still listens on the ports it used.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from airflow_provider_etelecom.testing.process import SimulatorProcess

ROOT = Path(__file__).resolve().parent.parent
#: The DAGs folder: the repository's examples (``ETELECOM_DAGS_FOLDER`` overrides, for trying other DAGs).
DAGS_FOLDER = Path(os.environ.get("ETELECOM_DAGS_FOLDER") or ROOT / "example_dags")
DEMO_API_KEY = "demo-key-etelecom"
CONN_ID = "etelecom_default"
STANDALONE_LOG_PORTS = (8793, 8794)


def say(message: str) -> None:
    """Print a progress line on stderr (stdout stays for the result)."""
    print(f"\033[1m==> {message}\033[0m", file=sys.stderr, flush=True)


def _restore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so ``finally`` blocks stop what was started."""

    def _interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Return whether something accepts connections on ``host:port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def stop_process(proc: subprocess.Popen[Any], name: str, sig: int = signal.SIGTERM, grace: float = 30.0) -> None:
    """Send ``sig`` to ``proc``; after ``grace`` seconds terminate, then kill, its whole session."""
    if proc.poll() is not None:
        _kill_group(proc.pid, signal.SIGKILL)  # children it may have left behind
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        say(f"{name} did not stop within {grace:.0f} s: terminating its process group")
        _kill_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid, signal.SIGKILL)
            proc.wait(5)
    _kill_group(proc.pid, signal.SIGKILL)


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Simulator(SimulatorProcess):
    """The package's :class:`SimulatorProcess` as a local Airflow wants it: the demo key, customers
    who reply by themselves, stderr to a log file, and its own session (a Ctrl-C in the terminal
    reaches only the driver, which stops it last). Start it with ``with`` or :meth:`start`.
    """

    def __init__(
        self,
        *,
        consents: int = 5000,
        seed: int = 1,
        auto_reply_after: float | None = 5.0,
        log: IO[str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        """``extra_args`` are more CLI flags (``--rate-limit-per-s 50``, ``--latency-ms 20``...)."""
        flags = ["--consents", str(consents), "--seed", str(seed)]
        if auto_reply_after is not None:
            flags += ["--auto-reply-after", f"{auto_reply_after:g}"]
        super().__init__(*flags, *extra_args, api_key=DEMO_API_KEY, stderr=log or subprocess.DEVNULL, own_session=True)

    def connection_json(self, **extra: object) -> str:
        """The ``etelecom_default`` connection as Airflow's JSON connection format."""
        # No short strings in the extra: Airflow 3 warns "Skipping masking for a secret as it's too
        # short" for each. The account type comes from the Base URL's path.
        return super().connection_json(**{"timeout": 60, **extra})


def airflow_env(home: Path, *, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment of a lean, local Airflow living in ``home`` with the example DAGs."""
    env = dict(os.environ)
    for name in list(env):
        if name.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")):
            del env[name]
    venv_bin = str(Path(sys.executable).parent)
    env.update(
        {
            "PATH": venv_bin + os.pathsep + env.get("PATH", ""),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "PYTHONWARNINGS": "ignore",
        }
    )
    env.update(extra or {})
    return env


def run_airflow(
    env: Mapping[str, str], *args: str, log: IO[str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``airflow ARGS`` to completion; its output goes to ``log`` (or is captured)."""
    proc = subprocess.Popen(
        ["airflow", *args],
        env=dict(env),
        cwd=ROOT,
        stdout=log if log is not None else subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=_restore_sigint,
    )
    try:
        output, _ = proc.communicate()
    except BaseException:  # Ctrl-C or SIGTERM: stop the command and whatever it started (task runners)
        stop_process(proc, f"airflow {args[0]}", signal.SIGTERM, grace=10)
        raise
    proc.wait()
    _kill_group(proc.pid, signal.SIGKILL)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, output or "")
    if check and result.returncode != 0:
        tail = "" if log is not None else "\n" + result.stdout[-4000:]
        raise RuntimeError(f"`airflow {' '.join(args)}` failed with exit code {result.returncode}.{tail}")
    return result


def wait_http(url: str, timeout: float, proc: subprocess.Popen[Any] | None = None, what: str = "") -> None:
    """Wait until ``url`` answers 200 (or fail if ``proc`` exits first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what or url} exited (code {proc.returncode}) before it answered.")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=3) as answer:
            if answer.status == 200:
                return
        time.sleep(1)
    raise RuntimeError(f"{what or url} did not answer 200 within {timeout:.0f} s.")


#: Where the local Airflow listens by default: loopback only, since its one login is admin/admin.
LOOPBACK = "127.0.0.1"
#: Every interface (``--all-interfaces``): reachable from other machines, with that same login.
ALL_INTERFACES = "0.0.0.0"

#: A log server bound to one address. Airflow's own (``serve_logs``) always binds every interface.
_LOG_SERVER = (
    "import sys, uvicorn; uvicorn.run('airflow.utils.serve_logs.log_server:get_app', factory=True, "
    "host=sys.argv[1], port=int(sys.argv[2]), log_config=None, access_log=False)"
)


def loopback_hostname() -> str:
    """``[core] hostname_callable`` of a loopback-only Airflow: the API server fetches live task
    and trigger logs from ``http://<hostname>:8793|8794``, so that must be where the log servers
    listen (the machine's own name may resolve to another address, such as Debian's 127.0.1.1)."""
    return LOOPBACK


class Standalone:
    """What ``airflow standalone`` runs (API server and UI, scheduler, DAG processor, triggerer) plus
    the two log servers, each in its own session, all bound to ``host``.

    Not ``airflow standalone`` itself: it and the scheduler and triggerer it starts bind their log
    servers to every interface, with no setting to change that. Here the scheduler and triggerer
    run with ``--skip-serve-logs`` and the same log-server app is started on ``host``.
    """

    def __init__(self, env: Mapping[str, str], *, port: int, log: IO[str], host: str = LOOPBACK) -> None:
        self.port = port
        self.host = host
        self.url = f"http://localhost:{port}"
        self.env = dict(env)
        self.env["AIRFLOW__API__HOST"] = host
        self.env["AIRFLOW__API__PORT"] = str(port)
        self.env["AIRFLOW__API__BASE_URL"] = self.url
        self.env["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
        self.env["AIRFLOW__CORE__AUTH_MANAGER"] = (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        )
        if host == LOOPBACK:
            scripts = str(Path(__file__).resolve().parent)
            self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [scripts, self.env.get("PYTHONPATH")]))
            self.env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] = "_local_airflow.loopback_hostname"
        busy = [p for p in (port, *STANDALONE_LOG_PORTS) if port_in_use(p)]
        if busy:
            raise RuntimeError(
                f"Port(s) {', '.join(map(str, busy))} already in use: is another Airflow running? "
                "Stop it, or choose another API port with --port."
            )
        run_airflow(self.env, "db", "migrate", log=log)
        worker_logs, trigger_logs = STANDALONE_LOG_PORTS
        commands = {
            "log server (tasks)": [sys.executable, "-c", _LOG_SERVER, host, str(worker_logs)],
            "log server (triggers)": [sys.executable, "-c", _LOG_SERVER, host, str(trigger_logs)],
            "api-server": ["airflow", "api-server", "--host", host, "--port", str(port)],
            "scheduler": ["airflow", "scheduler", "--skip-serve-logs"],
            "dag-processor": ["airflow", "dag-processor"],
            "triggerer": ["airflow", "triggerer", "--skip-serve-logs"],
        }
        self.procs: dict[str, subprocess.Popen[Any]] = {}
        try:
            for name, command in commands.items():
                self.procs[name] = subprocess.Popen(
                    command,
                    env=self.env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_restore_sigint,
                )
        except BaseException:
            self.stop()
            raise

    def exited(self) -> str | None:
        """Return ``"<component> (code N)"`` for the first component that has exited, else ``None``."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return f"{name} (code {proc.returncode})"
        return None

    def wait_healthy(self, timeout: float = 420) -> None:
        """Wait for ``/api/v2/monitor/health``; fail at once if a component exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            gone = self.exited()
            if gone:
                raise RuntimeError(f"Airflow's {gone} exited before the API server answered.")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=3):
                return
            time.sleep(1)
        raise RuntimeError(f"The Airflow API server did not answer within {timeout:.0f} s.")

    def stop(self) -> list[int]:
        """Stop every component (see :func:`stop_components`), and return the ports still listening."""
        stop_components(self.procs)
        ports = (self.port, *STANDALONE_LOG_PORTS)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(port_in_use(p) for p in ports):
            time.sleep(0.5)
        return [p for p in ports if port_in_use(p)]


#: How long the components of a local Airflow get to stop by themselves before they are killed.
STOP_GRACE = 60.0


def stop_components(
    procs: Mapping[str, subprocess.Popen[Any]], grace: float = STOP_GRACE, report_every: float = 10.0
) -> float:
    """Stop the components (each started in a session of its own), wait for all of them; return the seconds taken.

    SIGTERM goes to each component's whole process group, not only to its first process: the
    scheduler's LocalExecutor workers and the task runners under them stop along with it, instead
    of the scheduler waiting for its running tasks to end (which once held a stop for 45 s, until
    the scheduler was killed). Every ``report_every`` seconds it says which components it still
    waits for; a component still running after ``grace`` seconds is killed with its group, and
    said so. Whatever is left in each group (a task runner a component left behind) is killed at
    the end.
    """
    started = time.monotonic()
    running = {name: proc for name, proc in procs.items() if proc.poll() is None}
    for proc in running.values():
        _kill_group(proc.pid, signal.SIGTERM)
    reported = started
    while left := [name for name, proc in running.items() if proc.poll() is None]:
        now = time.monotonic()
        if now - started >= grace:
            for name in left:
                say(f"Airflow's {name} did not stop within {grace:.0f} s: killing its process group")
            break
        if now - reported >= report_every:
            say(f"Waiting for Airflow's {', '.join(left)} to stop ({now - started:.0f} s; killed at {grace:.0f} s)")
            reported = now
        time.sleep(0.1)
    for proc in procs.values():
        _kill_group(proc.pid, signal.SIGKILL)  # what is left: a task runner a component left behind
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
    took = time.monotonic() - started
    if running:
        say(f"Airflow stopped in {took:.0f} s")
    return took


def admin_password(home: Path, timeout: float = 60) -> str:
    """Return the ``admin`` password the simple auth manager generated in ``home``."""
    path = home / "simple_auth_manager_passwords.json.generated"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            return str(json.loads(path.read_text())["admin"])
        time.sleep(0.5)
    raise RuntimeError(f"No admin password in {path} after {timeout:.0f} s.")


class Api:
    """A few calls of Airflow's REST API v2 with a JWT from ``/auth/token``."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url
        answer = self._call("POST", "/auth/token", {"username": username, "password": password}, token=None)
        self.token = str(answer["access_token"])

    def _call(self, method: str, path: str, body: Any = None, *, token: str | None) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:500]
            raise RuntimeError(f"{method} {path}: HTTP {err.code}: {detail}") from None
        return json.loads(raw) if raw else None

    def get(self, path: str) -> Any:
        return self._call("GET", path, token=self.token)

    def post(self, path: str, body: Any) -> Any:
        return self._call("POST", path, body, token=self.token)

    def patch(self, path: str, body: Any) -> Any:
        return self._call("PATCH", path, body, token=self.token)


@contextlib.contextmanager
def airflow_home() -> Iterator[Path]:
    """Yield a fresh, empty ``AIRFLOW_HOME`` in a temp folder, removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix="etelecom-airflow-"))
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def wired_airflow_env(
    home: Path, sim: Simulator, export_base: Path, *, in_env: bool, poke_interval: float = 2.0
) -> dict[str, str]:
    """Airflow's environment for the examples.

    ``ETELECOM_EXPORT_BASE`` (a ``file://`` URL) is where the daily export writes,
    ``ETELECOM_EXAMPLE_POKE_INTERVAL`` how often the request-and-wait sensor checks (the example's
    30 s default would make a demo wait long after the simulated customer answered), and with
    ``in_env`` the connection is ``AIRFLOW_CONN_ETELECOM_DEFAULT``.
    """
    extra = {
        "ETELECOM_EXPORT_BASE": export_base.resolve().as_uri(),
        "ETELECOM_EXAMPLE_POKE_INTERVAL": f"{poke_interval:g}",
    }
    if in_env:
        extra["AIRFLOW_CONN_ETELECOM_DEFAULT"] = sim.connection_json()
    return airflow_env(home, extra=extra)


def last_lines(path: Path, count: int = 40) -> str:
    """The last ``count`` lines of a log file (for error messages)."""
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-count:])
    return ""


class WiredAirflow:
    """A running ``airflow standalone`` with the simulator, ``etelecom_default`` and the example DAGs."""

    def __init__(self, home: Path, sim: Simulator, standalone: Standalone, username: str, password: str) -> None:
        self.home = home
        self.sim = sim
        self.standalone = standalone
        self.url = standalone.url
        self.username = username
        self.password = password

    def api(self) -> Api:
        """A REST API v2 client logged in as the admin."""
        return Api(self.url, self.username, self.password)


@contextlib.contextmanager
def wired_airflow(
    workdir: Path,
    *,
    port: int = 8080,
    host: str = LOOPBACK,
    password: str = "admin",
    reply_after: float = 20.0,
    consents: int = 5000,
    unpause: tuple[str, ...] = ("etelecom_consents_daily", "etelecom_request_and_wait"),
    dags_timeout: float = 240,
) -> Iterator[WiredAirflow]:
    """Start the simulator and a local Airflow wired to it; stop both, whatever happens.

    Airflow listens on ``host``: loopback by default; :data:`ALL_INTERFACES` makes the UI (and
    its admin login) and the log servers reachable from other machines.

    ``workdir`` is emptied first and keeps the Airflow home, the exports and the logs afterwards.
    The simple auth manager's user ``admin`` gets ``password`` (written to its password file before
    the first start, so it is known up front). Once the API answers, the DAGs in ``unpause`` are
    unpaused (not before: a task started before the API server is up fails), so the scheduler runs
    the daily export's latest interval by itself and a trigger from the UI starts at once.
    """
    username = "admin"
    shutil.rmtree(workdir, ignore_errors=True)
    home, logs, exports = workdir / "airflow-home", workdir / "logs", workdir / "exports"
    for folder in (home, logs, exports):
        folder.mkdir(parents=True)
    (home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({username: password}))
    with contextlib.ExitStack() as stack:
        sim_log = stack.enter_context(open(logs / "simulator.log", "w"))
        say(f"Starting the eTelecom simulator ({consents} consents, customers reply after {reply_after:g} s)")
        sim = stack.enter_context(Simulator(consents=consents, auto_reply_after=reply_after, log=sim_log))
        env = wired_airflow_env(home, sim, exports, in_env=False, poke_interval=5.0)
        env.update(
            {
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{username}:admin",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
                "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "30",
                # the warehouse of etelecom_consents_to_sql_daily (paused until the user unpauses it)
                "AIRFLOW_CONN_ETELECOM_WAREHOUSE": json.dumps(
                    {"conn_type": "sqlite", "host": str(workdir.resolve() / "warehouse.db")}
                ),
            }
        )
        af_log = stack.enter_context(open(logs / "airflow.log", "w"))
        say(f"Starting Airflow on {host}, port {port} (log: {logs / 'airflow.log'})")
        standalone = Standalone(env, port=port, log=af_log, host=host)

        def _stop() -> None:
            say("Stopping Airflow")
            left = standalone.stop()
            if left:
                say(f"WARNING: something still listens on port(s) {', '.join(map(str, left))}")

        stack.callback(_stop)
        try:
            standalone.wait_healthy()
        except RuntimeError:
            print(last_lines(logs / "airflow.log"), file=sys.stderr)
            raise
        wired = WiredAirflow(home, sim, standalone, username, password)
        api = wired.api()
        conn = json.loads(sim.connection_json())
        api.post(
            "/api/v2/connections",
            {
                "connection_id": CONN_ID,
                "conn_type": conn["conn_type"],
                "host": conn["host"],
                "password": conn["password"],
                "extra": json.dumps(conn["extra"]),
                # Airflow 3.3.2's UI sends port 0 for the hidden port field when testing a listed
                # connection; against a stored NULL port the API answers 400 "The host or port to
                # test differs from the stored connection". Storing 0 (ignored by the hook) avoids it.
                "port": 0,
                "description": "The local eTelecom simulator started by this command",
            },
        )
        say(f"Waiting for the DAG processor to load {', '.join(unpause)}")
        deadline = time.monotonic() + dags_timeout
        missing = list(unpause)
        while missing:
            missing = [dag_id for dag_id in missing if not _dag_loaded(api, dag_id)]
            if missing and time.monotonic() > deadline:
                errors = api.get("/api/v2/importErrors").get("import_errors", [])
                detail = "; ".join(f"{e.get('filename')}: {str(e.get('stack_trace'))[-300:]}" for e in errors)
                raise RuntimeError(f"DAG(s) {', '.join(missing)} not loaded after {dags_timeout:.0f} s. {detail}")
            if missing:
                time.sleep(2)
        for dag_id in unpause:
            api.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False})
        yield wired


def _dag_loaded(api: Api, dag_id: str) -> bool:
    try:
        api.get(f"/api/v2/dags/{dag_id}")
    except RuntimeError as err:
        if "HTTP 404" in str(err):
            return False
        raise
    return True
