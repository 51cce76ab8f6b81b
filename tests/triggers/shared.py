"""Helpers for running many ConsentRepliesTrigger waits in one event loop, as a triggerer runs them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_etelecom.client.replies import CREATED_FROM_MARGIN_S, ReplyWait
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.triggers.consent_replies import ConsentRepliesTrigger

OA = "4239023413265392134"


def deferred(
    consent: dict[str, Any], *, many: bool = False, check: bool | str = True, shared_poll: bool = True, **overrides: Any
) -> ConsentRepliesTrigger:
    """Build the trigger a deferring sensor builds for ``consent``, after the check it makes before deferring.

    :param many: as ``ConsentRepliesSensor`` given the consent dict (``created_from`` from its
        ``created_at``); else as ``ConsentReplySensor`` (its ``oa_id`` + ``phone``, one page).
    :param check: make the sensor's check (which gives the trigger ``listed_from``); ``False`` for
        ids the sensor never saw; ``"listed"``: as if that check had listed ``consent`` (no request).
    """
    now = datetime.now(timezone.utc)
    if many:
        created = datetime.fromisoformat(str(consent["created_at"]).replace("Z", "+00:00"))
        wait = ReplyWait(
            consent_ids=[str(consent["id"])], oa_id=OA, created_from=created - timedelta(seconds=CREATED_FROM_MARGIN_S)
        )
    else:
        wait = ReplyWait(consent_ids=[str(consent["id"])], oa_id=OA, phone=consent["phone"], max_pages=1)
    if check == "listed":
        wait.settled = {str(consent["id"]): consent}  # type: ignore[dict-item]
    elif check:
        wait.check(EtelecomHook().client, now, not_found_expired=False)
    kwargs: dict[str, Any] = {
        **wait.settings(),
        "etelecom_conn_id": "etelecom_default",
        "poke_interval": 0.05,
        "deadline": now + timedelta(hours=1),
        "not_found_deadline": now + timedelta(hours=1),
        "listed_from": wait.span_from(),
        "shared_poll": shared_poll,
        **overrides,
    }
    return ConsentRepliesTrigger(**kwargs)


def run_together(
    triggers: Sequence[ConsentRepliesTrigger],
    after_first: Callable[[], None] | None = None,
    ticker: list[int] | None = None,
    timeout: float = 60.0,
) -> list[dict[str, Any]]:
    """Run every trigger's ``run()`` in one event loop and return their events, in order.

    :param after_first: called once, when every trigger has made its first check.
    :param ticker: when given, a task ticks every 10 ms meanwhile and appends its ticks here (a
        blocked loop ticks rarely).
    """
    first = set()

    for index, trigger in enumerate(triggers):
        check = trigger._check

        async def counting(*args: Any, _check: Any = check, _index: int = index, **kwargs: Any) -> Any:
            try:
                return await _check(*args, **kwargs)
            finally:
                if _index not in first:
                    first.add(_index)
                    if len(first) == len(triggers) and after_first is not None:
                        after_first()

        trigger._check = counting  # type: ignore[method-assign]

    async def one(trigger: ConsentRepliesTrigger) -> dict[str, Any]:
        events = [event async for event in trigger.run()]
        assert len(events) == 1
        return events[0].payload  # type: ignore[no-any-return]

    async def scenario() -> list[dict[str, Any]]:
        done = asyncio.Event()
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        ticking = asyncio.create_task(tick()) if ticker is not None else None
        try:
            return list(await asyncio.gather(*(one(trigger) for trigger in triggers)))
        finally:
            done.set()
            if ticking is not None:
                await ticking
                ticker.append(ticks)

    return asyncio.run(asyncio.wait_for(scenario(), timeout))
