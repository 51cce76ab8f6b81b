"""Stopping a running listing task when Airflow kills it: one ``on_kill`` for every such operator.

Airflow calls ``on_kill`` on SIGTERM (a pod stopping, a task marked failed in the UI). On Airflow 3
``execute`` keeps running afterwards, so ``on_kill`` only sets a flag; the task checks it on every
page and once more right before it publishes anything (the move of an export's file, the merge of
a load), and stops with :class:`~airflow_provider_etelecom.exceptions.EtelecomStoppedError`, its
temporary output discarded. On Airflow 2 the SIGTERM handler also raises, and the same clean-up
runs on the way out.
"""

from __future__ import annotations

import threading
from typing import Any

from airflow_provider_etelecom.exceptions import EtelecomStoppedError

__all__ = ["StopOnKillMixin"]


class StopOnKillMixin:
    """Give an operator ``on_kill`` and the check its running ``execute`` makes.

    ``execute`` calls :meth:`_arm_stop` first, then :meth:`_check_stop` on every page and before
    it publishes.
    """

    task_id: str
    log: Any
    #: What the task abandons when told to stop, for the log line (``export``, ``load``).
    stopped_work = "work"
    _stop: threading.Event

    def _arm_stop(self) -> threading.Event:
        """Make this try's stop flag (a retry starts with a fresh one) and return it."""
        self._stop = threading.Event()
        return self._stop

    def on_kill(self) -> None:
        """Tell the running task to stop: it pages no further and publishes nothing."""
        stop = getattr(self, "_stop", None)
        if stop is not None:
            self.log.warning(
                "%s %s was told to stop; abandoning the %s.", type(self).__name__, self.task_id, self.stopped_work
            )
            stop.set()

    def _check_stop(self, outcome: str) -> None:
        """Raise once ``on_kill`` was called, saying what that left (``outcome``).

        :raises EtelecomStoppedError: when told to stop.
        """
        if self._stop.is_set():
            raise EtelecomStoppedError(f"{type(self).__name__} {self.task_id} was told to stop (on_kill) {outcome}")
