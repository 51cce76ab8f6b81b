"""Validation of everything a user passes in, before any request is sent."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pendulum
import pytest

from airflow_provider_etelecom.client import CallType, ConsentQuery, mask_phone
from airflow_provider_etelecom.client.validation import format_api_time, normalize_phone, validate_number, validate_time
from airflow_provider_etelecom.exceptions import EtelecomConfigError, EtelecomValidationError

UTC = timezone.utc


@pytest.mark.parametrize(
    ("kwargs", "parameter", "fragment"),
    [
        ({"call_type": "phone"}, "call_type", "audio, audio_and_video, video"),
        ({"reason_code": "marketing"}, "reason_code", "delivery_notification"),
        ({"reply_status": "Y"}, "reply_status", "N, NS, P, S"),
        ({"status": "S"}, "status", "N, P"),
        ({"oa_id": "12a"}, "oa_id", "non-negative whole number"),
        ({"oa_id": -5}, "oa_id", "non-negative whole number"),
        ({"oa_id": 2**63}, "oa_id", "int64 maximum"),
        ({"user_id": 1.5}, "user_id", "got float"),
        ({"oa_id": True}, "oa_id", "got bool"),
        ({"is_charged": "false"}, "is_charged", "must be True or False"),
        ({"page_size": 0}, "page_size", "1 to 100"),
        ({"page_size": 101}, "page_size", "caps pages at 100"),
        ({"page_size": "50"}, "page_size", "1 to 100"),
        ({"sort": "id"}, "sort", "exact only by created_at"),
        ({"sort": "created_at,-updated_at"}, "sort", "exact only by created_at"),
        ({"sort": "-updated_at"}, "sort", "loses or repeats consents"),
        ({"max_pages": 0}, "max_pages", "None or an int >= 1"),
        ({"date_from": "yesterday"}, "date_from", "not an ISO-8601"),
        ({"date_from": "2026-01-01T00:00:00"}, "date_from", "timezone='Asia/Ho_Chi_Minh'"),
        ({"date_to": datetime(2026, 1, 1)}, "date_to", "no UTC offset"),
        ({"date_to": 1767225600}, "date_to", "got int"),
        ({"phone": "12345"}, "phone", "not a Vietnamese phone number"),
        ({"phone": ""}, "phone", "non-empty"),
        (
            {"date_from": "2026-01-02T00:00:00Z", "date_to": "2026-01-01T00:00:00Z"},
            "date_from",
            "must be before date_to",
        ),
        (
            {"date_from": "2026-01-01T00:00:00Z", "date_to": "2026-01-01T07:00:00+07:00"},
            "date_from",
            "CronDataIntervalTimetable",
        ),
    ],
)
def test_invalid_arguments_name_the_parameter_and_what_is_allowed(
    kwargs: dict[str, object], parameter: str, fragment: str
) -> None:
    with pytest.raises(EtelecomValidationError) as caught:
        ConsentQuery.build(**kwargs)
    assert caught.value.parameter == parameter
    assert parameter in str(caught.value)
    assert fragment in str(caught.value)


def test_valid_query_becomes_the_wire_filter() -> None:
    query = ConsentQuery.build(
        call_type=CallType.AUDIO,
        date_from=pendulum.datetime(2026, 1, 1, tz="Asia/Ho_Chi_Minh"),
        date_to="2026-01-02T00:00:00+07:00",
        is_charged=False,
        oa_id=4300132762829599804,
        phone="+84 912-345-678",
        reason_code="update_order",
        reply_status="S",
        status="P",
        user_id="0015",
        page_size=50,
        sort="created_at",
        max_pages=3,
    )
    assert query.filter_body() == {
        "call_type": "audio",
        # A whole second wider on each side: see test_date_filters_never_depend_on_the_platforms_precision.
        "date_from": "2025-12-31T16:59:59Z",
        "date_to": "2026-01-01T17:00:01Z",
        "is_charged": False,
        "oa_id": "4300132762829599804",
        "phone": "84912345678",
        "reason_code": "update_order",
        "reply_status": "S",
        "status": "P",
        "user_id": "15",
    }
    assert (query.page_size, query.sort, query.max_pages) == (50, "created_at", 3)
    # A platform that reads the filters' wall clock in its own zone gets them in that zone, offset included.
    local = query.filter_body(zone=ZoneInfo("Asia/Ho_Chi_Minh"))
    assert (local["date_from"], local["date_to"]) == ("2025-12-31T23:59:59+07:00", "2026-01-02T00:00:01+07:00")
    assert "849*****678" in query.describe()


def test_naive_dates_are_accepted_with_a_timezone() -> None:
    query = ConsentQuery.build(
        date_from="2026-01-01T00:00:00", date_to=datetime(2026, 1, 2), timezone="Asia/Ho_Chi_Minh"
    )
    assert query.date_from == datetime(2025, 12, 31, 17, tzinfo=timezone.utc)
    assert query.date_to == datetime(2026, 1, 1, 17, tzinfo=timezone.utc)
    with pytest.raises(EtelecomValidationError, match="IANA"):
        ConsentQuery.build(date_from="2026-01-01T00:00:00", timezone="Mars/Olympus")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0912345678", "84912345678"),
        ("+84912345678", "84912345678"),
        ("84912345678", "84912345678"),
        ("0912 345 678", "84912345678"),
        ("091-234-5678", "84912345678"),
        ("(028) 3822 1234", "842838221234"),
        (84912345678, "84912345678"),
    ],
)
def test_phones_are_normalised_to_the_84_form(raw: object, expected: str) -> None:
    assert normalize_phone(raw) == expected


def test_phone_normalisation_can_be_turned_off() -> None:
    assert normalize_phone(" +1 415 555 0100 ", normalize=False) == "+1 415 555 0100"
    assert ConsentQuery.build(phone="+1 415", normalize_phones=False).phone == "+1 415"


def test_phones_are_masked_in_messages() -> None:
    assert mask_phone("84912345678") == "849*****678"
    with pytest.raises(EtelecomValidationError) as caught:
        normalize_phone("99912345678")
    assert "99912345678" not in str(caught.value)


def test_window_is_half_open() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    query = ConsentQuery.build(date_from=start, date_to=start + timedelta(days=1))
    assert query.in_window("2026-01-01T00:00:00Z")
    assert query.in_window("2026-01-01T23:59:59.999Z")
    assert not query.in_window("2026-01-02T00:00:00Z")
    assert not query.in_window("2025-12-31T23:59:59Z")
    for unreadable in ("not a time", 1767225600, None):
        with pytest.raises(ValueError):
            query.in_window(unreadable)
    assert ConsentQuery.build().in_window(None)  # no window, nothing to enforce


def test_times_are_sent_as_rfc3339_utc() -> None:
    moment = validate_time("date_from", "2026-03-04T05:06:07.250+07:00")
    assert format_api_time(moment) == "2026-03-03T22:06:07.25Z"
    assert format_api_time(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("date_from", "date_to", "sent_from", "sent_to"),
    [
        ("2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z", "2026-01-01T09:59:59Z", "2026-01-01T11:00:01Z"),
        ("2026-01-01T10:00:00.3Z", "2026-01-01T11:00:00.3Z", "2026-01-01T09:59:59Z", "2026-01-01T11:00:02Z"),
        ("2026-01-01T10:00:00.999999Z", "2026-01-01T10:00:01.000001Z", "2026-01-01T09:59:59Z", "2026-01-01T10:00:03Z"),
    ],
)
def test_date_filters_never_depend_on_the_platforms_precision(
    date_from: str, date_to: str, sent_from: str, sent_to: str
) -> None:
    """Sent bounds are whole seconds (read alike by any precision) one second wider than the window."""
    query = ConsentQuery.build(date_from=date_from, date_to=date_to)
    assert (query.filter_body()["date_from"], query.filter_body()["date_to"]) == (sent_from, sent_to)
    # The window itself stays exactly what was asked for; the client enforces it on what comes back.
    assert query.in_window(date_from) and not query.in_window(date_to)
    assert f"date_from={date_from}, date_to={date_to}" in query.describe()


# -- the listing arguments, declared once ----------------------------------------------------------


def test_an_argument_that_is_not_a_filter_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="reply"):
        ConsentQuery.build(reply="P")  # type: ignore[call-arg]


def test_updated_validates_only_the_arguments_it_is_given() -> None:
    query = ConsentQuery.build(oa_id=12, phone="0912 345 678", date_from="2026-01-01T00:00:00Z")
    later = query.updated(date_to="2026-01-02T00:00:00+07:00", max_pages=2)
    assert (later.oa_id, later.phone, later.max_pages) == ("12", "84912345678", 2)
    assert later.date_to == datetime(2026, 1, 1, 17, tzinfo=timezone.utc)
    with pytest.raises(EtelecomValidationError) as caught:  # the window is checked on the result
        query.updated(date_to="2025-12-31T00:00:00Z")
    assert caught.value.parameter == "date_from"


@pytest.mark.parametrize(
    ("value", "options", "expected"),
    [
        (3, {}, 3),
        (0.5, {"whole": False, "above": 0, "maximum": 1}, 0.5),
        (None, {"optional": True}, None),
        ("7", {"from_text": True}, 7),
        (" 2.5 ", {"from_text": True, "whole": False}, 2.5),
    ],
)
def test_validate_number_returns_a_number_in_range(value: object, options: dict, expected: object) -> None:
    assert validate_number("n", value, **options) == expected


@pytest.mark.parametrize(
    ("value", "options", "message"),
    [
        (True, {}, "n=True must be an int."),
        (2.5, {}, "n=2.5 must be an int."),
        (float("nan"), {"whole": False}, "n=nan must be a number."),
        (0, {"minimum": 1, "maximum": 100, "why": "pages"}, "n=0 must be an int from 1 to 100: pages."),
        (0, {"whole": False, "above": 0, "maximum": 1}, "n=0 must be a number above 0 at most 1."),
        (None, {"minimum": 1}, "n=None must be an int >= 1."),
        ("7", {}, "n='7' must be an int."),  # text is a number only where a form stores numbers as text
    ],
)
def test_validate_number_names_the_parameter_the_value_and_the_range(
    value: object, options: dict, message: str
) -> None:
    with pytest.raises(EtelecomValidationError) as caught:
        validate_number("n", value, **options)
    assert str(caught.value) == message and caught.value.parameter == "n"


def test_validate_number_for_a_connection_field_says_so() -> None:
    with pytest.raises(
        EtelecomConfigError, match=r"^The connection's timeout='soon' must be empty or a number: seconds\.$"
    ):
        validate_number(
            "timeout", "soon", whole=False, optional=True, from_text=True, why="seconds", error=EtelecomConfigError
        )
