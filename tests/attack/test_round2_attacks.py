"""Red-team round 2: platforms the first round, the simulator's switches and test_paging never played.

Each test names a behaviour a Go/Twirp + SQL backend, a proxy or a network could plausibly show, and
asserts the outcome owed: every consent of the window once, or a loud ``EtelecomContractError`` naming
the behaviour. The three findings (a cursor coarser than the times shown followed through a crowded
second; an offset over unstably ordered ties learnt as a keyset; a false loud on a cursor string seen
again under other date bounds) are fixed; each test says what an earlier client did.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_etelecom.client import ConsentQuery
from airflow_provider_etelecom.exceptions import EtelecomContractError
from tests.attack.conftest import START, WINDOW, make_client, outcome, spaced_rows
from tests.attack.platform import US, MiniPlatform, Row, at, show, to_us


def crowded_rows(n_before: int, crowd: int, n_after: int, *, seed: int) -> list[Row]:
    """Rows spread around a second (START + 1 h) that holds ``crowd`` consents at distinct microseconds."""
    rows = spaced_rows(START, n_before, seed=seed, gap_us=(1_000_000, 20_000_000))
    second = at(START + timedelta(hours=1))
    step = US // (crowd + 1)
    rows += [Row(2_000_000_000_000_000_000 + k, second + (k + 1) * step) for k in range(crowd)]
    rows += [
        Row(3_000_000_000_000_000_000 + r.id, r.us - at(START) + second + 2 * US)
        for r in spaced_rows(START, n_after, seed=seed + 1, gap_us=(1_000_000, 20_000_000))
    ]
    return rows


def listed(platform: MiniPlatform, query: ConsentQuery) -> tuple[list[str], EtelecomContractError | None]:
    ids: list[str] = []
    try:
        for consent in make_client(platform.base_url).iter_consents(query):
            ids.append(consent["id"])
    except EtelecomContractError as error:
        return ids, error
    return ids, None


def exact_or_loud(ids: list[str], error: EtelecomContractError | None, expected: set[str]) -> dict[str, int] | str:
    """``"loud: <behaviour>"`` for a loud failure, else the listing's outcome against what it owed."""
    return f"loud: {error.behaviour}" if error is not None else outcome(ids, expected)


EXACT = {"lost": 0, "doubled": 0, "foreign": 0}


# ------------------------------------------------------------------------------------------------
# A cursor on created_at alone whose value is coarser than the times shown: the handler writes the
# last row's time into its cursor with `UnixMilli()` or `time.RFC3339` while answers show
# RFC3339Nano. In a second holding more than a page at distinct shown microseconds, the listing
# follows the cursor it has not learnt (`_through`: "the page ends on a time it shares with no other
# consent"), and `created_at < 12:00:00` skips the rest of the crowded second.
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("precision", "crowd", "sort"),
    [
        ("s", 350, None),  # an earlier client lost 250 of 500, green
        ("ms", 2500, None),  # and 8 of 2,650
        ("s", 350, "created_at"),  # oldest first, `>` a truncated value repeats: handled
        ("ms", 2500, "created_at"),
    ],
)
def test_a_value_cursor_coarser_than_the_shown_times_in_a_crowded_second_is_exact_or_loud(
    precision: str, crowd: int, sort: str | None
) -> None:
    rows = crowded_rows(75, crowd, 75, seed=21)
    with MiniPlatform(rows, shown="us", cursor="value_lt", cursor_precision=precision) as platform:
        window = (START, START + timedelta(hours=3))
        ids, error = listed(platform, ConsentQuery.build(date_from=window[0], date_to=window[1], sort=sort))
        expected = platform.visible_ids(*window)
    result = exact_or_loud(ids, error, expected)
    assert result in ({**EXACT, "expected": crowd + 150}, "loud: crowded_second"), result


# ------------------------------------------------------------------------------------------------
# An offset cursor over `ORDER BY created_at DESC LIMIT n OFFSET k` with no tiebreaker: rows sharing
# a stored time (a batch stamped with one `time.Now()`) come back in another order at every request
# (Postgres documents LIMIT/OFFSET over a non-unique ORDER BY as unpredictable). No row changes, yet
# a page boundary inside a batch repeats one row and skips another. The lesson (taken in a second
# holding a whole page) sees the offset go on inside a tie and learns "keyset"; from then on the
# listing follows the cursor everywhere.
# ------------------------------------------------------------------------------------------------


def batched_rows_with_a_crowded_second(seed: int) -> list[Row]:
    rows = spaced_rows(START, 2400, seed=seed, gap_us=(500_000, 4_000_000), batch_share=0.4, batch_max=4)
    second = at(START + timedelta(minutes=30)) + 1  # between the rows spaced_rows made
    # 240 consents at distinct microseconds, but for a pair stamped alike every 40
    rows += [Row(4_000_000_000_000_000_000 + k, second + (k - (k % 40 == 1)) * 4000) for k in range(240)]
    return rows


@pytest.mark.parametrize(
    "tie_order",
    [
        "id",  # a stable tie order: an offset over static rows is exact
        "shuffle",  # an earlier client learnt a keyset there and lost 2 of 2,640, green (2 repeats showed it)
    ],
)
def test_an_offset_cursor_over_ties_in_unstable_order_is_exact_or_loud(tie_order: str) -> None:
    rows = batched_rows_with_a_crowded_second(seed=22)
    with MiniPlatform(rows, shown="us", cursor="offset", tie_order=tie_order, seed=3) as platform:
        window = (START, START + timedelta(hours=3))
        client = make_client(platform.base_url)
        ids: list[str] = []
        error = None
        try:
            ids = [c["id"] for c in client.iter_consents(ConsentQuery.build(date_from=window[0], date_to=window[1]))]
        except EtelecomContractError as caught:
            error = caught
        expected = platform.visible_ids(*window)
    result = exact_or_loud(ids, error, expected)
    assert result == {**EXACT, "expected": len(expected)} or str(result).startswith("loud"), result


# ------------------------------------------------------------------------------------------------
# Cursors that are not unique across the listing's date-bound steps: an offset (`{"offset": 100}`)
# or a page number reads the same under every date bound (an earlier client refused it as a cursor
# loop: a false loud crowded_second). A listing that meets two seconds holding
# more than a page each (fractions shown, so the cursor may carry it through) follows "offset 100"
# in the first and is handed "offset 100" again in the second, under another bound.
# ------------------------------------------------------------------------------------------------


def two_crowded_seconds(crowd: int, seed: int) -> list[Row]:
    rows = crowded_rows(60, crowd, 60, seed=seed)
    second = at(START + timedelta(hours=2))
    step = US // (crowd + 1)
    rows += [Row(5_000_000_000_000_000_000 + k, second + (k + 1) * step) for k in range(crowd)]
    return rows


@pytest.mark.parametrize("cursor", ["offset", "page", "keyset"])
def test_two_crowded_seconds_under_a_cursor_that_repeats_across_date_bounds_is_exact(cursor: str) -> None:
    with MiniPlatform(two_crowded_seconds(250, seed=23), shown="us", cursor=cursor) as platform:
        window = (START, START + timedelta(hours=3))
        ids, error = listed(platform, ConsentQuery.build(date_from=window[0], date_to=window[1]))
        expected = platform.visible_ids(*window)
    assert exact_or_loud(ids, error, expected) == {**EXACT, "expected": 620}


@pytest.mark.parametrize("cursor", ["offset", "page"])
def test_ties_in_a_crowded_second_under_a_cursor_bound_to_the_limit_is_exact_or_loud(cursor: str) -> None:
    # The lesson asks the page again with a smaller limit and follows its cursor with limit 10: a page
    # number read back times the limit lands elsewhere than an offset.
    rows = batched_rows_with_a_crowded_second(seed=22)
    with MiniPlatform(rows, shown="us", cursor=cursor) as platform:
        window = (START, START + timedelta(hours=3))
        ids, error = listed(platform, ConsentQuery.build(date_from=window[0], date_to=window[1]))
        expected = platform.visible_ids(*window)
    result = exact_or_loud(ids, error, expected)
    assert result == {**EXACT, "expected": len(expected)} or str(result).startswith("loud"), result


def test_parallel_windows_with_a_value_cursor_at_whole_seconds_in_a_crowded_second_is_exact_or_loud() -> None:
    from airflow_provider_etelecom.client.parallel import iter_consent_pages_parallel

    rows = crowded_rows(75, 350, 75, seed=21)
    with MiniPlatform(rows, shown="us", cursor="value_lt", cursor_precision="s") as platform:
        window = (START, START + timedelta(hours=3))
        query = ConsentQuery.build(date_from=window[0], date_to=window[1])
        ids: list[str] = []
        error = None
        try:
            pages = iter_consent_pages_parallel(lambda gate: make_client(platform.base_url), query, parallel_windows=4)
            ids = [c["id"] for page in pages for c in page["consents"]]
        except EtelecomContractError as caught:
            error = caught
        expected = platform.visible_ids(*window)
    result = exact_or_loud(ids, error, expected)
    assert result in ({**EXACT, "expected": 500}, "loud: crowded_second"), result


# ------------------------------------------------------------------------------------------------
# Handled (OK): what was tried and survived.
# ------------------------------------------------------------------------------------------------


def _filters_read_to_the_minute(platform: MiniPlatform, how: str) -> None:
    """The handler parses date_from/date_to into a minute column (`date_trunc('minute', $1)`)."""
    plain = platform.list_page

    def truncate(text: str) -> str:
        micros = to_us(text)
        floor = micros - micros % (60 * US)
        return show(floor if how == "floor" or floor == micros else floor + 60 * US)

    def list_page(body: dict[str, Any]) -> dict[str, Any]:
        flt = {k: truncate(v) if k in ("date_from", "date_to") else v for k, v in (body.get("filter") or {}).items()}
        return plain({**body, "filter": flt})

    platform.list_page = list_page  # type: ignore[method-assign]


@pytest.mark.parametrize("cursor", ["value_lt", "keyset"])
@pytest.mark.parametrize("how", ["floor", "ceil"])
def test_OK_date_filters_read_to_the_minute_are_exact_or_loud(cursor: str, how: str) -> None:
    rows = spaced_rows(START, 1500, seed=24, gap_us=(100_000, 3_000_000), batch_share=0.2)
    platform = MiniPlatform(rows, shown="s", cursor=cursor, cursor_from="served")
    _filters_read_to_the_minute(platform, how)
    with platform:
        ids, error = listed(platform, ConsentQuery.build(date_from=WINDOW[0], date_to=WINDOW[1]))
        expected = platform.visible_ids(*WINDOW)
    result = exact_or_loud(ids, error, expected)
    assert result in ({**EXACT, "expected": len(expected)}, "loud: window_mismatch"), result


def test_OK_an_offset_cursor_learnt_while_consents_arrive_at_the_head_loses_none_of_those_there_at_the_start() -> None:
    # Newest first over a window reaching into the future: every request inserts 7 consents newer than
    # all others, which push every offset down; the offset cursor was learnt (a tie in a crowded second).
    rows = batched_rows_with_a_crowded_second(seed=22)
    platform = MiniPlatform(rows, shown="us", cursor="offset")
    window = (START, START + timedelta(hours=6))
    there = platform.visible_ids(*window)

    def arrive(method: str, body: dict[str, Any], n: int) -> None:
        newest = max(r.us for r in platform.rows)
        platform.rows += [Row(8_000_000_000_000_000_000 + 10 * n + k, newest + (k + 1) * 1000) for k in range(7)]

    platform.hooks.append(arrive)
    with platform:
        client = make_client(platform.base_url)
        ids = [c["id"] for c in client.iter_consents(ConsentQuery.build(date_from=window[0], date_to=window[1]))]
    assert there <= set(ids) and len(ids) == len(set(ids))
