"""Airflow 3.3's task state store as the provider's tasks use it: one accessor, ``None`` before 3.3.

The store (AIP-103) keeps JSON values by key for one task instance (DAG run, task, map index),
shared by every try and every reschedule of it, in Airflow's database. ``RequestConsentOperator``
keeps its send record there; the reply sensors in reschedule mode keep where their wait stands.
Airflow 2.11 and 3.0-3.2 put no store in the context: the callers then behave as before it existed.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from airflow.providers.common.compat.sdk import Context, conf

__all__ = ["TaskStateStore", "task_state_store", "value_size_limit"]

#: ``[state_store] max_value_storage_bytes``' default: above it a worker's write is logged as too large.
DEFAULT_VALUE_SIZE_LIMIT = 65535


class TaskStateStore(Protocol):
    """What the provider uses of Airflow 3.3's ``context["task_state_store"]``."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...


def task_state_store(context: Context) -> TaskStateStore | None:
    """Return Airflow 3.3+'s task state store (shared by every try of a task instance), or ``None``."""
    return cast("TaskStateStore | None", context.get("task_state_store"))


def value_size_limit() -> int:
    """Return the size in bytes above which Airflow calls a stored value too large (0: no limit)."""
    return int(conf.getint("state_store", "max_value_storage_bytes", fallback=DEFAULT_VALUE_SIZE_LIMIT))
