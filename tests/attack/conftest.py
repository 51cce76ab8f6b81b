"""Shared helpers of the red-team tests (``tests/attack``).

A helper played platforms the simulator was not built on (``platform.MiniPlatform``). Each finding
is kept as a regression test asserting the outcome owed (every consent once or a loud error naming
the behaviour; one message; no key; a bounded wait); ``test_OK_…`` are attacks the client handled
from the start. Residuals no listing can see are strict xfails, each beside the check that catches it.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_etelecom.client import ClientConfig, EtelecomClient
from tests.attack.platform import KEY, Row, at

UTC = timezone.utc


def make_client(base_url: str, api_key: str = KEY, **settings: Any) -> EtelecomClient:
    """A client over loopback HTTP whose retry waits are not slept (nothing in it is mocked)."""
    settings.setdefault("max_retries", 2)
    return EtelecomClient(ClientConfig.build(base_url=base_url, api_key=api_key, **settings), sleep=lambda s: None)


def outcome(ids: list[str], expected: set[str]) -> dict[str, int]:
    """Lost, doubled and foreign consents of a listing's ids against what it had to yield."""
    doubled = sum(1 for n in Counter(ids).values() if n > 1)
    return {
        "expected": len(expected),
        "lost": len(expected - set(ids)),
        "doubled": doubled,
        "foreign": len(set(ids) - expected),
    }


def spaced_rows(
    start: datetime,
    n: int,
    *,
    seed: int,
    gap_us: tuple[int, int] = (200_000, 3_000_000),
    batch_share: float = 0.0,
    batch_max: int = 4,
    hidden: range = range(0),
) -> list[Row]:
    """``n`` rows from ``start`` on, a random gap apart; a ``batch_share`` of the steps insert 2 to
    ``batch_max`` rows stamped with one identical time (a Go handler's ``now := time.Now()`` for a
    batch); rows whose index is in ``hidden`` are dropped in code after the SQL ``LIMIT``."""
    rng = random.Random(seed)
    rows: list[Row] = []
    moment = at(start)
    while len(rows) < n:
        moment += rng.randint(*gap_us)
        size = rng.randint(2, batch_max) if rng.random() < batch_share else 1
        for _ in range(size):
            index = len(rows)
            rows.append(Row(1_000_000_000_000_000_000 + index * 7919, moment, hidden=index in hidden))
    return rows[:n]


START = datetime(2025, 6, 14, 9, 0, tzinfo=UTC)
WINDOW = (START, START + timedelta(hours=2))
