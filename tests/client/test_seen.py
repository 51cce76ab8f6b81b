"""SeenIds: the once-each rule's memory (``client/seen.py``)."""

from __future__ import annotations

import logging
import random
import threading

import pytest

from airflow_provider_etelecom.client.seen import MAX_RUN, SeenIds


def ids(numbers: range | list[int]) -> list[str]:
    return [str(1_200_000_000_000_000_000 + n) for n in numbers]


def test_add_new_tells_new_from_repeated_within_and_across_calls() -> None:
    seen = SeenIds()
    assert seen.add_new(ids([1, 2, 1])) == [True, True, False]
    assert seen.add_new(ids([2, 3])) == [False, True]
    assert len(seen) == 3
    assert ids([3])[0] in seen and ids([4])[0] not in seen
    assert 1_200_000_000_000_000_003 not in seen  # only strings are ids


@pytest.mark.parametrize("buffer", [4, 64])
def test_ids_frozen_into_runs_are_found_and_held_in_8_bytes_each(buffer: int) -> None:
    seen = SeenIds(buffer=buffer)
    numbers = list(range(0, 3_000, 3))
    random.Random(5).shuffle(numbers)
    assert all(seen.add_new(ids(numbers)))
    assert len(seen) == 1_000
    assert not any(seen.add_new(ids(numbers)))  # every one is found again, in a run or the buffer
    assert all(flag for flag in seen.add_new(ids(range(1, 3_000, 3))))  # neighbours are not mistaken for them
    assert seen.nbytes() >= 8 * (2_000 - buffer)  # all but the buffer are in runs, 8 bytes each
    assert seen.nbytes() == 8 * sum(len(run) for run in seen._runs)


def test_runs_merge_like_a_binary_counter_up_to_their_cap() -> None:
    seen = SeenIds(buffer=4)
    seen.add_new(ids(range(4 * 64)))
    # 64 runs of 4 merged pairwise: a single run, and lookups bisect one array
    assert [len(run) for run in seen._runs] == [256]
    assert MAX_RUN >= 256


def test_ids_that_are_not_int64_fall_back_to_strings_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    seen = SeenIds()
    with caplog.at_level(logging.WARNING):
        assert seen.add_new(["abc", "00012", "99999999999999999999", "abc", "12"]) == [True, True, True, False, True]
    assert "not a decimal int64" in caplog.text and caplog.text.count("not a decimal int64") == 1
    assert "00012" in seen and "12" in seen and len(seen) == 4  # "00012" is not the id 12


def test_threads_adding_the_same_ids_see_each_new_once() -> None:
    seen = SeenIds(buffer=16)
    wanted = ids(range(2_000))
    new_counts: list[int] = []

    def add() -> None:
        new_counts.append(sum(seen.add_new(wanted)))

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(new_counts) == 2_000 and len(seen) == 2_000
