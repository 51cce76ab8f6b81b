"""split_windows: half-open windows with no overlap and no gap, ready for expand_kwargs."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_etelecom.exceptions import EtelecomValidationError
from airflow_provider_etelecom.windows import parse_every, split_windows

VN = ZoneInfo("Asia/Ho_Chi_Minh")


def test_daily_windows_in_vietnam_with_paths() -> None:
    windows = split_windows(
        "2026-01-01T00:00:00+07:00", "2026-01-03T12:00:00+07:00", "1d", output_path="file:///x/{date}.jsonl"
    )
    assert windows == [
        {
            "date_from": "2026-01-01T00:00:00+07:00",
            "date_to": "2026-01-02T00:00:00+07:00",
            "output_path": "file:///x/2026-01-01.jsonl",
        },
        {
            "date_from": "2026-01-02T00:00:00+07:00",
            "date_to": "2026-01-03T00:00:00+07:00",
            "output_path": "file:///x/2026-01-02.jsonl",
        },
        {
            "date_from": "2026-01-03T00:00:00+07:00",
            "date_to": "2026-01-03T12:00:00+07:00",
            "output_path": "file:///x/2026-01-03.jsonl",
        },
    ]


def test_timezone_lays_out_local_days_from_utc_input() -> None:
    windows = split_windows("2025-12-31T17:00:00Z", "2026-01-02T17:00:00Z", "1d", timezone="Asia/Ho_Chi_Minh")
    assert [w["date_from"] for w in windows] == ["2026-01-01T00:00:00+07:00", "2026-01-02T00:00:00+07:00"]


def test_naive_input_needs_a_timezone() -> None:
    with pytest.raises(EtelecomValidationError) as raised:
        split_windows("2026-01-01T00:00:00", "2026-01-02T00:00:00")
    assert raised.value.parameter == "start"
    assert split_windows("2026-01-01", "2026-01-02", timezone="Asia/Ho_Chi_Minh") == [
        {"date_from": "2026-01-01T00:00:00+07:00", "date_to": "2026-01-02T00:00:00+07:00"}
    ]


def test_daylight_saving_days_stay_at_local_midnight() -> None:
    windows = split_windows("2026-03-07", "2026-03-10", "1d", timezone="America/New_York")
    assert [w["date_from"][11:] for w in windows] == ["00:00:00-05:00", "00:00:00-05:00", "00:00:00-04:00"]
    assert windows[1]["date_to"] == windows[2]["date_from"]


@pytest.mark.parametrize(
    ("every", "expected"),
    [("1d", timedelta(days=1)), ("6h", timedelta(hours=6)), ("30m", timedelta(minutes=30)), ("2w", timedelta(weeks=2))],
)
def test_parse_every(every: str, expected: timedelta) -> None:
    assert parse_every(every) == expected


@pytest.mark.parametrize("every", ["0d", "1 day", "-1h", timedelta(0), timedelta(hours=-1), 5])
def test_bad_every(every: object) -> None:
    with pytest.raises(EtelecomValidationError) as raised:
        split_windows("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", every)  # type: ignore[arg-type]
    assert raised.value.parameter == "every"


@pytest.mark.parametrize(
    ("start", "end"),
    [("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"), ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")],
)
def test_empty_or_reversed_range(start: str, end: str) -> None:
    with pytest.raises(EtelecomValidationError, match="half-open"):
        split_windows(start, end)


def test_too_many_windows_mentions_max_map_length() -> None:
    with pytest.raises(EtelecomValidationError, match="max_map_length"):
        split_windows("2020-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "1d")
    assert len(split_windows("2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "1d")) == 365


def test_windows_feed_the_operator() -> None:
    from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator

    for window in split_windows(
        "2026-01-01T00:00:00+07:00", "2026-01-03T00:00:00+07:00", "1d", output_path="file:///x/{date}.jsonl"
    ):
        ListConsentsOperator(task_id="export", **window)


@settings(max_examples=100, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(timezone.utc)),
    length=st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=90)),
    every=st.one_of(
        st.integers(1800, 10 * 86400).map(lambda n: timedelta(seconds=n)),
        st.integers(1, 7).map(lambda n: timedelta(days=n)),
    ),
    zone=st.sampled_from([None, "Asia/Ho_Chi_Minh", "Europe/Berlin", "UTC"]),
)
def test_windows_cover_the_range_without_overlap_or_gap(
    start: datetime, length: timedelta, every: timedelta, zone: str | None
) -> None:
    end = start + length
    windows = split_windows(start, end, every, timezone=zone, max_windows=100_000)
    edges = [(datetime.fromisoformat(w["date_from"]), datetime.fromisoformat(w["date_to"])) for w in windows]
    assert edges[0][0] == start and edges[-1][1] == end
    for (_, previous_end), (next_start, _) in itertools.pairwise(edges):
        assert previous_end == next_start
    assert all(a < b for a, b in edges)
    # Inner edges fall on whole seconds whatever the start: no edge asks eTelecom about a fraction.
    assert all(b.microsecond == 0 for _, b in edges[:-1])
    if every % timedelta(days=1) and len(edges) > 2:
        assert all(b - a == every for a, b in edges[1:-1])
        assert every - timedelta(seconds=1) < edges[0][1] - edges[0][0] <= every


def test_every_must_be_whole_seconds() -> None:
    from airflow_provider_etelecom.exceptions import EtelecomValidationError

    with pytest.raises(EtelecomValidationError, match="whole number of seconds") as caught:
        split_windows("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", timedelta(seconds=1.5))
    assert caught.value.parameter == "every"


def test_hourly_steps_across_fall_back_are_one_hour_each() -> None:
    windows = split_windows("2026-10-25T00:00:00+02:00", "2026-10-25T05:00:00+01:00", "1h", timezone="Europe/Berlin")
    edges = [datetime.fromisoformat(w["date_from"]) for w in windows]
    assert len(windows) == 6
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(edges))


def test_output_paths_must_differ_per_window() -> None:
    from airflow_provider_etelecom.exceptions import EtelecomValidationError

    with pytest.raises(EtelecomValidationError, match="same file") as caught:
        split_windows("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "6h", output_path="s3://b/{date}.jsonl")
    assert caught.value.parameter == "output_path"
    windows = split_windows("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "6h", output_path="s3://b/{start}.jsonl")
    assert len({w["output_path"] for w in windows}) == 4


@pytest.mark.parametrize(
    ("template", "fragment"), [("s3://b/{day}.jsonl", "placeholder"), ("s3://b/{{ ds }}.jsonl", "Jinja")]
)
def test_bad_output_path_templates_name_the_parameter(template: str, fragment: str) -> None:
    from airflow_provider_etelecom.exceptions import EtelecomValidationError

    with pytest.raises(EtelecomValidationError, match=fragment) as caught:
        split_windows("2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z", "1d", output_path=template)
    assert caught.value.parameter == "output_path"
