"""The ids a listing has yielded, kept compactly: the once-each rule of every listing.

A listing may be served the same consent twice: a cursor that repeats the ties at a page boundary
(``created_at <=``), an offset cursor while consents are inserted, a listing resumed from a date
bound after a page without ``next``. :class:`SeenIds` remembers every id yielded so the listing
yields each one once, in about 8 bytes per id: ids are int64, held in sorted ``array('q')`` runs
(a Python ``set`` of id strings costs about 100 bytes each, 100 MB per million consents).

Fresh ids go to a small ``set`` first; when it holds ``buffer`` ids (:data:`BUFFER` by default) it
becomes a sorted run, and
runs of similar size are merged (a binary counter), so a lookup bisects a handful of runs. An id
that is not a decimal int64 (the platform never documented another shape) falls back to a set of
strings, with one warning.
"""

from __future__ import annotations

import logging
import threading
from array import array
from bisect import bisect_left
from collections.abc import Iterable

__all__ = ["SeenIds"]

log = logging.getLogger(__name__)

#: Ids held in the plain set before they are frozen into a sorted run (about 4 MB at most).
BUFFER = 1 << 16
#: The buffer of each of many sets alive at once (parallel windows): sixteen windows of BUFFER ids
#: would hold 300,000 ids at about 65 bytes each before any is frozen.
SMALL_BUFFER = 1 << 12
#: Runs are not merged past this size: a merge sorts a transient list of 40 bytes per id, so this
#: bounds that transient at about 10 MB, at the price of one more run to bisect per 256k ids.
MAX_RUN = 1 << 18
_INT64_MAX = 2**63 - 1


def _as_int(consent_id: str) -> int | None:
    if consent_id.isdigit() and consent_id.isascii() and len(consent_id) <= 19:
        number = int(consent_id)
        if number <= _INT64_MAX and str(number) == consent_id:
            return number
    return None


class SeenIds:
    """A thread-safe set of consent ids that a listing has yielded (about 8 bytes per numeric id).

    Thread-safe with a lock per page, not per id.

    :param buffer: ids held in a plain set (about 65 bytes each) before they are frozen into a sorted
        run; smaller for each of many sets alive at once.
    """

    def __init__(self, buffer: int = BUFFER) -> None:
        self._buffer = buffer
        self._lock = threading.Lock()
        self._fresh: set[int] = set()
        self._runs: list[array[int]] = []
        self._other: set[str] = set()
        self._warned = False
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, consent_id: object) -> bool:
        if not isinstance(consent_id, str):
            return False
        with self._lock:
            return self._has(consent_id, _as_int(consent_id))

    def _has(self, consent_id: str, number: int | None) -> bool:
        if number is None:
            return consent_id in self._other
        if number in self._fresh:
            return True
        for run in self._runs:
            if run[0] <= number <= run[-1]:
                index = bisect_left(run, number)
                if run[index] == number:
                    return True
        return False

    def add_new(self, consent_ids: Iterable[str]) -> list[bool]:
        """Record ``consent_ids``; return, for each, whether it is new (a repeat within the call is not).

        :param consent_ids: the ids of one page, in the order served.
        """
        answer: list[bool] = []
        with self._lock:
            for consent_id in consent_ids:
                number = _as_int(consent_id)
                if self._has(consent_id, number):
                    answer.append(False)
                    continue
                answer.append(True)
                self._count += 1
                if number is not None:
                    self._fresh.add(number)
                    if len(self._fresh) >= self._buffer:
                        self._freeze()
                    continue
                if not self._warned:
                    self._warned = True
                    log.warning(
                        "eTelecom consent id %r is not a decimal int64 as documented; ids of that shape are "
                        "remembered in a slower, larger set.",
                        consent_id[:40],
                    )
                self._other.add(consent_id)
        return answer

    def _freeze(self) -> None:
        run = array("q", sorted(self._fresh))
        self._fresh = set()
        # A binary counter of runs: merge while the newest is at least as large as the one before,
        # so there are about log2(n / BUFFER) runs (plus one per MAX_RUN ids). Sorting two sorted
        # runs is one merge pass of timsort, in C.
        while self._runs and len(self._runs[-1]) <= len(run) and len(self._runs[-1]) + len(run) <= MAX_RUN:
            run = array("q", sorted(self._runs.pop() + run))
        self._runs.append(run)

    def nbytes(self) -> int:
        """Return the bytes held by the sorted runs (the set buffer and any non-numeric ids aside)."""
        return sum(run.itemsize * len(run) for run in self._runs)
