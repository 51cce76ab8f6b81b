"""Load: many ``ConsentRepliesTrigger`` s (one consent each) in one event loop (scaled down from the script's 200).

The simulator runs in its own process (as a remote API would), so the loop lag measured is the
triggers' own. The loop-lag bound is a benchmark's (``python -m benchmarks.reliability``, 200 triggers, 100 ms):
a wall-clock bound on a shared CI machine is flaky, so here, with 50 triggers, the lag is only
printed and the test asserts what does not depend on the machine's load.
"""

from __future__ import annotations

from tests.reliability.scenarios import trigger_load


def test_triggers_share_one_loop_poll_once_per_interval_and_all_get_their_answer() -> None:
    result = trigger_load(50, poke_interval=0.5, answer_after=1.5)
    print(
        f"\n{result.triggers} triggers: worst lag {result.worst_lag_ms:.1f} ms at {result.worst_lag_at_s:.2f} s, "
        f"steady-state worst {result.steady_worst_lag_ms:.1f} ms, p99 {result.p99_lag_ms:.1f} ms, "
        f"{sum(result.checks)} checks, {result.list_requests} requests, {result.seconds:.1f} s"
    )
    assert result.wrong == [] and result.right_outcomes == 50
    # Never more than one check per interval a trigger lived. The triggers share their polls: each
    # first check is its own read (these triggers carry no listed_from), then one listing per poll.
    assert result.list_requests <= result.triggers + 2 * max(result.checks)
    over = [(c, m) for c, m in zip(result.checks, result.max_checks_allowed, strict=True) if c > m]
    assert over == []
    assert min(result.checks) >= 2  # each trigger polled at least once before the customer answered
