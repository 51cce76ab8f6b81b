"""Helpers shared by the trigger tests."""

from __future__ import annotations

import asyncio
from typing import Any

from airflow.triggers.base import BaseTrigger


def drive(trigger: BaseTrigger, on_check: Any = None) -> tuple[dict[str, Any], int]:
    """Drain ``run()``; call ``on_check(n)`` after the n-th check. Return the only event and the checks.

    Time is driven by the test (small poke intervals, the simulator's clock), not slept.
    """
    checks = 0
    lookup = trigger._lookup  # type: ignore[attr-defined]

    async def counting(client: Any) -> Any:
        nonlocal checks
        try:
            return await lookup(client)
        finally:
            checks += 1
            if on_check is not None:
                on_check(checks)

    trigger._lookup = counting  # type: ignore[attr-defined]

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
collect_ignore = [] if _airflow_3() else ["test_consent_reply_event_run.py"]
