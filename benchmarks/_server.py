"""Processes for benchmarks: the simulator in its own process, and a measured child process.

In-process, the simulator's threads would share the client's GIL and the benchmark would measure
both at once; a separate process is what a real network peer looks like. A child process gives a
cold start (imports, connection lookup) and its own peak memory for each measured export.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def simulator_process(*args: str, api_key: str) -> Iterator[str]:
    """Start ``python -m airflow_provider_etelecom.testing --port 0 ARGS`` and yield its shop base URL."""
    command = [sys.executable, "-m", "airflow_provider_etelecom.testing", "--port", "0", "--api-key", api_key, *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        if not base_url.startswith("http"):
            raise RuntimeError(f"the simulator did not start: {base_url!r}")
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)


def run_child(module: str, *args: str, folder: str) -> dict[str, Any]:
    """Run ``python -m MODULE --child ARGS`` on a throwaway ``AIRFLOW_HOME`` in ``folder``.

    The child prints its figures as one ``RESULT {json}`` line; that JSON is returned.

    :raises RuntimeError: with the child's output when it fails or prints no result.
    """
    env = {
        **os.environ,
        "AIRFLOW_HOME": os.path.join(folder, "airflow-home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "PYTHONWARNINGS": "ignore",
    }
    proc = subprocess.run(
        [sys.executable, "-m", module, "--child", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(Path(__file__).resolve().parents[1]),
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"{module} {args[0] if args else ''} child failed ({proc.returncode}):\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    return result
