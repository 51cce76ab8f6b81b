"""Run the simulator in its own process for benchmarks.

In-process, the simulator's threads would share the client's GIL and the benchmark would measure
both at once; a separate process is what a real network peer looks like.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


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
