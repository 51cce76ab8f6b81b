"""``[core] hostname_callable`` of ``scripts/e2e-celery``: each Celery worker reports its own hostname.

The two workers of the end-to-end run share one machine, so ``socket.getfqdn()`` would give every
task instance the same hostname; on a real deployment each worker is its own host. This callable
gives the name in ``ETELECOM_E2E_HOSTNAME`` (set per worker), so the task instances' ``hostname``
tells the workers apart as it would across machines.
"""

from __future__ import annotations

import os
import socket


def worker_hostname() -> str:
    """Return ``ETELECOM_E2E_HOSTNAME``, or this machine's FQDN for the processes without one."""
    return os.environ.get("ETELECOM_E2E_HOSTNAME") or socket.getfqdn()
