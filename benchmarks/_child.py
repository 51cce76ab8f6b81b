"""A measured child process for benchmarks.

A child process gives a cold start (imports, connection lookup) and its own peak memory for each
measured export. The simulator itself runs in its own process through
:class:`airflow_provider_etelecom.testing.SimulatorProcess` where a benchmark must not share its
GIL with the client (a separate process is what a real network peer looks like).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


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
