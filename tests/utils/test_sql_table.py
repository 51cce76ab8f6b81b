"""The consents table's rows and SQL, without a database (the database tests are in tests/transfers)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from airflow_provider_etelecom.utils import sql_table


def test_the_platform_zero_time_and_missing_fields_are_null() -> None:
    row = dict(
        zip(
            sql_table.COLUMN_NAMES,
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
