"""Load: many ``ConsentReplyTrigger`` s in one event loop (scaled down from the script's 200).

The simulator runs in its own process (as a remote API would), so the loop lag measured is the
triggers' own. The full run (``python -m benchmarks.reliability``) uses 200 triggers.
"""

from __future__ import annotations

import inspect

import pytest

from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from benchmarks.reliability import trigger_load

#: The issue's bound for the worst event-loop lag.
MAX_LAG_MS = 100.0
#: Airflow 3 has ``BaseHook.aget_connection``, which the hook awaits on the event loop itself.
CONNECTION_READ_ON_LOOP = inspect.iscoroutinefunction(getattr(EtelecomHook, "aget_connection", None))


def test_triggers_share_one_loop_poll_once_per_interval_and_all_get_their_answer() -> None:
    result = trigger_load(50, poke_interval=0.5, answer_after=1.5)
    print(
        f"\n{result.triggers} triggers: worst lag {result.worst_lag_ms:.1f} ms at {result.worst_lag_at_s:.2f} s, "
        f"steady-state worst {result.steady_worst_lag_ms:.1f} ms, p99 {result.p99_lag_ms:.1f} ms, "
        f"{sum(result.checks)} checks, {result.list_requests} requests, {result.seconds:.1f} s"
    )
    assert result.wrong == [] and result.right_outcomes == 50
    # One ListRequestConsent per check, and never more than one check per interval a trigger lived.
    assert result.list_requests == sum(result.checks)
    over = [(c, m) for c, m in zip(result.checks, result.max_checks_allowed, strict=True) if c > m]
    assert over == []
    assert min(result.checks) >= 2  # each trigger polled at least once before the customer answered
    # Once every trigger is running, the loop stays responsive.
    assert result.steady_worst_lag_ms < MAX_LAG_MS
    assert result.ticks >= 100


@pytest.mark.skipif(
    not CONNECTION_READ_ON_LOOP,
    reason="Airflow 2 reads the connection in a worker thread; the remaining start-up cost (~0.4 ms a trigger) "
    "sits near the bound and varies with machine load, so it is measured by the script, not asserted here",
)
@pytest.mark.xfail(
    strict=True,
    reason="BUG: 200 triggers starting together block the loop for several hundred ms: each one reads its "
    "connection (Airflow 3 aget_connection ~1 ms of CPU on the loop) and builds its client (ClientConfig + "
    "requests.Session, ~0.4 ms) on the event loop, all in one loop iteration",
)
def test_the_worst_lag_including_start_up_stays_under_100_ms_with_200_triggers() -> None:
    result = trigger_load(200, poke_interval=1.0, answer_after=1.0)
    assert result.right_outcomes == 200
    assert result.worst_lag_ms < MAX_LAG_MS, f"worst lag {result.worst_lag_ms:.0f} ms at {result.worst_lag_at_s:.2f} s"
