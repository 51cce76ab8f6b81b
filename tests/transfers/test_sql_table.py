"""The consents table's rows and SQL, without a database (the database tests are in tests/transfers)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from airflow_provider_etelecom.client.models import CONSENT_FIELD_NAMES, CONSENT_FIELDS
from airflow_provider_etelecom.transfers import sql_table


@pytest.mark.parametrize("dialect", ["postgres", "sqlite"])
def test_one_column_per_consent_field_in_order(dialect: sql_table.Dialect) -> None:
    """The columns are the consent's fields, in order (the DDL in docs/warehouse.md pins their types)."""
    types = sql_table.column_types(dialect)
    assert list(types) == list(CONSENT_FIELD_NAMES)
    ddl = sql_table.create_table_sql(dialect, sql_table.parse_table_name("t"))
    assert re.findall(r'^    "(\w+)" (\w+)', ddl, flags=re.MULTILINE) == list(types.items())
    assert len(sql_table.consent_row({"id": "1"})) == len(CONSENT_FIELDS)


def test_the_platform_zero_time_and_missing_fields_are_null() -> None:
    row = dict(
        zip(
            CONSENT_FIELD_NAMES,
            sql_table.consent_row({"id": "9223372036854775807", "delivery_time": "0001-01-01T00:00:00Z"}),
            strict=True,
        )
    )
    assert row["id"] == "9223372036854775807"  # ids as text: every digit kept
    assert row["delivery_time"] is None
    assert [name for name, value in row.items() if value is not None] == ["id"]


def test_times_are_aware_utc_and_sqlite_text_sorts_as_time() -> None:
    early = sql_table.consent_row({"id": "1", "updated_at": "2026-01-01T10:00:00.5Z"})
    later = sql_table.consent_row({"id": "1", "updated_at": "2026-01-01T10:00:01Z"})
    assert early[15] == datetime(2026, 1, 1, 10, 0, 0, 500000, tzinfo=timezone.utc)
    # As the API writes them, "…00.5Z" sorts after "…01Z"; stored at a fixed width, they sort as times.
    assert sql_table.sqlite_row(early)[15] == "2026-01-01T10:00:00.500000Z"
    assert sql_table.sqlite_row(early)[15] < sql_table.sqlite_row(later)[15]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("consent", "match"),
    [
        ({"id": "1", "created_at": "yesterday"}, "created_at"),
        ({"id": "1", "is_charged": "yes"}, "is_charged"),
        ({"id": "1", "error_code": "x"}, "error_code"),
        ({"reply_status": "P"}, "without an id"),
    ],
)
def test_bad_values_are_named(consent: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sql_table.consent_row(consent)  # type: ignore[arg-type]


def test_copy_text_escapes_what_copy_reads_as_syntax() -> None:
    text = sql_table.copy_text([("a\tb\\c\nd\re", None, True, 7)])
    assert text == "a\\tb\\\\c\\nd\\re\t\\N\tt\t7\n"


API_CONSENT: dict[str, object] = {
    "id": "1200000000049985874",
    "shop_id": "1100444529763028279",
    "user_id": "1500000000072807642",
    "oa_id": "4300924672410201907",
    "phone": "84942051670",
    "call_type": "audio",
    "reason_code": "product_service_consulting",
    "reply_status": "S",
    "status": "P",
    "delivery_status": "unknown",
    "delivery_time": "0001-01-01T00:00:00Z",
    "is_charged": True,
    "error_code": 0,
    "error_message": "",
    "created_at": "2026-12-01T22:47:34Z",
    "updated_at": "2026-12-01T22:47:34.5+07:00",
    "expires_at": "2026-12-02T22:47:34Z",
}


def test_copy_batch_passes_api_shaped_consents_through_as_text() -> None:
    (line,) = sql_table.copy_batch([API_CONSENT]).splitlines()  # type: ignore[list-item]
    cells = dict(zip(CONSENT_FIELD_NAMES, line.split("\t"), strict=True))
    expected = dict(zip(CONSENT_FIELD_NAMES, sql_table.consent_row(API_CONSENT), strict=True))  # type: ignore[arg-type]
    for field in CONSENT_FIELDS:
        cell, value = cells[field.name], expected[field.name]
        if field.kind == "time" and value is not None:  # the API's text, for PostgreSQL to parse
            assert datetime.fromisoformat(cell.replace("Z", "+00:00")) == value
        elif value is None:  # only the zero time here
            assert (field.name, cell) == ("delivery_time", "0001-01-01T00:00:00Z")
        else:  # PostgreSQL's boolean input reads "True"
            assert cell == str(value)
    # The zero time is passed as text on this path; the merge turns it into NULL.
    assert "CASE WHEN \"delivery_time\" >= timestamptz '0002-01-01T00:00:00Z'" in sql_table.merge_sql(
        "postgres", sql_table.parse_table_name("t"), "s"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"error_message": "tab\there \\N"},
        {"error_message": "line\r\nbreak"},
        {"error_message": None},
        {"error_code": "7"},
        {"delivery_time": None},
        {"omit": "delivery_time"},
    ],
)
def test_copy_batch_takes_the_exact_path_for_anything_else(change: dict[str, object]) -> None:
    odd = {k: v for k, v in {**API_CONSENT, **change}.items() if k not in ("omit", change.get("omit"))}
    batch = [API_CONSENT, odd]
    assert sql_table.copy_batch(batch) == sql_table.copy_text(map(sql_table.consent_row, batch))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"created_at": "yesterday"}, "created_at='yesterday' is not an RFC 3339 time"),
        ({"updated_at": "2026-01-01T10:00:00"}, "updated_at"),  # no offset: never read in the server's zone
        ({"is_charged": "yes"}, "is_charged"),
        ({"error_code": "x"}, "error_code"),
        ({"id": None}, "without an id"),
    ],
)
def test_copy_batch_names_bad_values(change: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sql_table.copy_batch([API_CONSENT, {**API_CONSENT, **change}])  # type: ignore[list-item, typeddict-item]
