"""Helpers shared by the trigger tests."""

from __future__ import annotations

import asyncio
import importlib
import json
from typing import Any

import pytest
from airflow.triggers.base import BaseTrigger

from tests.conftest import SECRET_KEY


@pytest.fixture(autouse=True)
def _no_backoff(retry_pauses: list[float]) -> list[float]:
    """Every trigger test drives the client's retry pauses instead of sleeping them."""
    return retry_pauses


def drive(trigger: BaseTrigger, on_check: Any = None) -> tuple[dict[str, Any], int]:
    """Drain ``run()``; call ``on_check(n)`` after the n-th check. Return the only event and the checks.

    Time is driven by the test (small poke intervals, the simulator's clock), not slept.
    """
    checks = 0
    check = trigger._check  # type: ignore[attr-defined]

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal checks
        try:
            return await check(*args, **kwargs)
        finally:
            checks += 1
            if on_check is not None:
                on_check(checks)

    trigger._check = counting  # type: ignore[attr-defined]

    async def collect() -> list[Any]:
        return [event async for event in trigger.run()]

    events = asyncio.run(asyncio.wait_for(collect(), timeout=30))
    assert len(events) == 1
    return events[0].payload, checks


def _airflow_3() -> bool:
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    return AIRFLOW_V_3_0_PLUS


# ConsentReplyEventTrigger cannot be built on Airflow 2 (test_consent_reply_event.py checks that it
# refuses); its run() tests exist only where the class does.
collect_ignore = [] if _airflow_3() else ["test_consent_reply_event_run.py", "test_consent_reply_event_variants.py"]


def drive_with_ticker(trigger: BaseTrigger) -> tuple[dict[str, Any], int]:
    """Drain ``run()`` while a task ticks every 10 ms; return the only event and the ticks.

    A loop blocked by the trigger's HTTP would tick once; a free one ticks all through a slow request.
    """

    async def scenario() -> tuple[dict[str, Any], int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        ticking = asyncio.create_task(ticker())
        events = [event async for event in trigger.run()]
        done.set()
        await ticking
        assert len(events) == 1
        return events[0].payload, ticks

    return asyncio.run(scenario())


def rebuilt(trigger: BaseTrigger) -> tuple[str, dict[str, Any], BaseTrigger]:
    """Serialise ``trigger`` as the triggerer stores it (JSON, never the key) and build it again.

    :return: the class path, the keyword arguments, and the trigger rebuilt from them, which
        serialises to the same.
    """
    path, kwargs = trigger.serialize()
    text = json.dumps(kwargs)
    assert SECRET_KEY not in text and "password" not in text
    module, _, name = path.rpartition(".")
    again = getattr(importlib.import_module(module), name)(**json.loads(text))
    assert again.serialize() == (path, kwargs)
    return path, kwargs, again
