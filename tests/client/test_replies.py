"""Where a span read starts (:func:`span_start`): the rule the waits and the reply watcher share.

``decide``'s table is in ``tests/triggers/test_consent_replies.py``; the watcher's use of the rule in
``tests/triggers/test_consent_reply_event.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_etelecom.client.replies import span_start

START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("pending", "starts"),
    [
        ([], START),  # nothing pending: the bound
        ([at(30), at(10), at(20)], at(10)),  # the earliest pending consent, whatever the order
        ([at(10), None], START),  # one not listed yet (or shown without a time) holds the bound
        ([at(-10), at(20)], START),  # never before the bound
        ([at(0)], START),
    ],
)
def test_span_start(pending: list[datetime | None], starts: datetime) -> None:
    assert span_start(START, pending) == starts
    # Epoch seconds (the watcher's record) move the same way.
    epochs = [None if moment is None else moment.timestamp() for moment in pending]
    assert span_start(START.timestamp(), epochs) == starts.timestamp()
