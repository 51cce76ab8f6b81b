"""The simulator's command line in a child process: the one way scripts, benchmarks and tests start it.

In-process (:class:`~airflow_provider_etelecom.testing.EtelecomSimulator`) is what most tests want.
A separate process is for what must not share the caller's interpreter: a benchmark or a load test
that measures the client alone (the simulator's threads would hold the same GIL), or a local Airflow
whose scheduler, workers and triggerer all talk to one simulator::

    from airflow_provider_etelecom.testing import SimulatorProcess

    with SimulatorProcess("--consents", "500", "--latency-ms", "20", api_key="test-key") as sim:
        os.environ["AIRFLOW_CONN_ETELECOM_DEFAULT"] = sim.connection_json()
        ...
        sim.reply(consent_id, "P")
        assert sim.count("Zalo/ListRequestConsent", 200) == 3

The flags are the CLI's (``python -m airflow_provider_etelecom.testing --help``). The start waits for
nothing but the base URL the CLI prints first, and the stop is SIGTERM, which the CLI answers at once
(a kill if it has not exited within ``stop_timeout``). Standard library only, like the simulator.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import urllib.request
from collections.abc import Mapping
from typing import IO, Any

__all__ = ["API_KEY_ENV", "DEFAULT_API_KEY", "SimulatorProcess"]

#: The environment variable the CLI reads its API key from (``--api-key`` overrides it).
API_KEY_ENV = "ETELECOM_SIMULATOR_API_KEY"
#: The key the CLI accepts when given none.
DEFAULT_API_KEY = "demo-key"


_NOT_STARTED = "The simulator process is not started: use `with SimulatorProcess(...)` or call start()."


class SimulatorProcess:
    """``python -m airflow_provider_etelecom.testing FLAGS`` in a child process, driven over HTTP.

    Start it with ``with`` (or :meth:`start`, then :meth:`stop`). The API key goes to the child in
    its environment (``ETELECOM_SIMULATOR_API_KEY``), not on its command line, which every user of
    the machine can read.

    :param flags: more CLI flags, e.g. ``"--consents", "5000", "--rate-limit-per-s", "50"``.
    :param api_key: the Bearer key the simulator accepts.
    :param stderr: where the child's stderr goes (a file, ``subprocess.DEVNULL``, ``subprocess.PIPE``;
        ``None``: the caller's stderr). It says where it listens and why it refused to start.
    :param env: the child's environment (default: this process's), before the API key is added.
    :param own_session: start the child in its own session, so a Ctrl-C in the terminal reaches only
        the caller, which then stops the child in its own order (``scripts/demo``).
    :param start_timeout: seconds to wait for the base URL before giving up.
    :param stop_timeout: seconds between SIGTERM and SIGKILL.
    """

    def __init__(
        self,
        *flags: str,
        api_key: str = DEFAULT_API_KEY,
        stderr: IO[Any] | int | None = None,
        env: Mapping[str, str] | None = None,
        own_session: bool = False,
        start_timeout: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.flags = flags
        self.api_key = api_key
        self._stderr = stderr
        self._env = dict(os.environ if env is None else env)
        self._own_session = own_session
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._process: subprocess.Popen[str] | None = None
        self._base_url = ""

    # ------------------------------------------------------------- lifecycle
    def start(self) -> SimulatorProcess:
        """Start the child and read the shop base URL it prints as its first line (idempotent).

        :return: ``self``.
        :raises RuntimeError: when the CLI exits before printing it (a bad flag: its stderr says
            which) or prints nothing within ``start_timeout``.
        """
        if self._process is not None:
            return self
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_etelecom.testing", *self.flags],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**self._env, API_KEY_ENV: self.api_key},
            start_new_session=self._own_session,
        )
        self._process = process
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            ready = selector.select(self._start_timeout)
        line = process.stdout.readline().strip() if ready else ""
        if not line.startswith("http"):
            self.stop()
            why = f"exited with code {process.returncode}" if ready else f"printed nothing in {self._start_timeout:g} s"
            raise RuntimeError(
                f"The eTelecom simulator ({' '.join(self.flags) or 'no flags'}) {why} instead of printing its base "
                f"URL (first line: {line!r}); its stderr says why."
            )
        self._base_url = line
        return self

    def stop(self) -> int | None:
        """Stop the child: SIGTERM, then SIGKILL after ``stop_timeout`` (idempotent).

        :return: its exit code (0 after a clean stop), or ``None`` if it was never started.
        """
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(self._stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        return process.returncode

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def process(self) -> subprocess.Popen[str]:
        """The child process (its ``pid``; ``send_signal`` to test how the CLI stops)."""
        if self._process is None:
            raise RuntimeError(_NOT_STARTED)
        return self._process

    # ------------------------------------------------------------- where it listens
    @property
    def base_url(self) -> str:
        """The shop base URL (``http://127.0.0.1:PORT/v1/shop``): the connection's Base URL."""
        if not self._base_url:
            raise RuntimeError(_NOT_STARTED)
        return self._base_url

    @property
    def root_url(self) -> str:
        """``http://HOST:PORT``, where the control API (``/_simulator/...``) lives."""
        return self.base_url.split("/v1/", 1)[0]

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.root_url.rsplit(":", 1)[1])

    def connection_json(self, **extra: object) -> str:
        """An ``etelecom`` connection to it in Airflow's JSON format (``AIRFLOW_CONN_...``).

        :param extra: the connection's extra fields, e.g. ``max_retries=0``.
        """
        return json.dumps({"conn_type": "etelecom", "host": self.base_url, "password": self.api_key, "extra": extra})

    # ------------------------------------------------------------- the control API (docs/simulator.md)
    def control(self, name: str, body: Mapping[str, object] | None = None) -> dict[str, Any]:
        """Call ``/_simulator/<name>``: GET without a body, POST with one; return the JSON answer.

        :raises urllib.error.HTTPError: when the simulator refuses (e.g. 404 ``not_found`` for an unknown consent).
        """
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.root_url}/_simulator/{name}",
            data=data,
            method="GET" if data is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            result: dict[str, Any] = json.loads(answer.read() or b"{}")
        return result

    def reply(self, consent_id: str | int, reply_status: str) -> dict[str, Any]:
        """The customer answers ``consent_id`` (as :meth:`EtelecomSimulator.reply`); return the consent."""
        return self.control("reply", {"consent_id": str(consent_id), "reply_status": reply_status})

    def count(self, method: str | None = None, status: int | None = None) -> int:
        """Return how many API requests matched ``method`` and/or ``status`` (as ``EtelecomSimulator.stats.count``)."""
        requests: dict[str, int] = self.control("stats")["requests"]
        return sum(
            n
            for key, n in requests.items()
            if (method is None or key.rsplit(" ", 1)[0] == method)
            and (status is None or key.rsplit(" ", 1)[1] == str(status))
        )
