"""Helpers shared by the sensor tests."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_etelecom.client.replies import decide
from airflow_provider_etelecom.triggers.consent_replies import build_event


@pytest.fixture(autouse=True)
def _no_backoff(retry_pauses: list[float]) -> list[float]:
    """Every sensor test drives the client's retry pauses instead of sleeping them."""
    return retry_pauses


def context(started: datetime | None = None) -> dict[str, Any]:
    """A task context whose try started at ``started`` (default: now)."""
    return {"ti": SimpleNamespace(start_date=started or datetime.now(timezone.utc))}


def event_for(
    ids: Iterable[str],
    consents: Mapping[str, Any],
    *,
    min_share: float = 1.0,
    failure_statuses: Iterable[str] = (),
    not_found_expired: bool = False,
) -> dict[str, Any]:
    """The event the trigger fires for these consents: decided by the one decision, then built."""
    decision = decide(
        ids,
        consents,
        min_share=min_share,
        failure_statuses=failure_statuses,
        now=datetime.now(timezone.utc),
        not_found_expired=not_found_expired,
    )
    return build_event(decision.status, decision=decision)


class DictTaskStateStore:
    """Airflow 3.3's task state store API (``get``/``set``/``delete``), in a dict shared by the checks."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(json.dumps(self.values.get(key, default)))

    def set(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))

    def delete(self, key: str) -> None:
        self.values.pop(key, None)
