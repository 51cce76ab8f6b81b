"""The consents table of :class:`~airflow_provider_etelecom.transfers.consents_to_sql.ConsentsToSqlOperator`.

No Airflow here: the columns and their types, the table-name check, the conversion of a consent
into a row, and the SQL (DDL, staging, the merge guarded by ``updated_at``) of the two databases
the transfer supports. The operator only runs these statements.

One column per field of :data:`~airflow_provider_etelecom.client.models.CONSENT_FIELDS`, named
after it and typed by its kind, in its order; a field the API leaves out is ``NULL``. Types:

========================  =====================  ==========================================
columns                   PostgreSQL             SQLite
========================  =====================  ==========================================
ids, phone, enums, text   ``text``               ``TEXT`` (ids as text: never a lost digit)
times (``*_at``,          ``timestamptz``        ``TEXT``, ISO 8601 UTC with six fractional
``delivery_time``)                               digits (``2026-01-02T03:04:05.000000Z``), so
                                                 text order is time order
``is_charged``            ``boolean``            ``INTEGER`` 0/1
``error_code``            ``bigint``             ``INTEGER``
========================  =====================  ==========================================

On PostgreSQL ``id`` is ``COLLATE "C"`` (:data:`_PG_ID_COLLATION`). The platform's zero time
(``0001-01-01T00:00:00Z``, e.g. the ``delivery_time`` of an undelivered request) is stored as
``NULL``. Enum values this provider does not know are kept as they are.

The rule (the same in the docs): a stored row is replaced when the incoming ``updated_at`` is
newer or equal to the stored one (or the stored one is ``NULL``); an incoming row without
``updated_at`` never replaces a stored row. A listing that holds one id twice keeps its newest.
A replacement whose values are all the same as the stored row's is skipped: it would change
nothing, yet cost a new row version (a lookback re-reads days of unchanged consents).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import chain
from operator import itemgetter
from typing import Literal

from airflow_provider_etelecom.client import Consent
from airflow_provider_etelecom.client.models import (
    CONSENT_FIELD_NAMES,
    CONSENT_FIELDS,
    FieldKind,
    parse_api_time,
)

Dialect = Literal["postgres", "sqlite"]

#: Each kind's column type per dialect: ids, enums and text are all text (an id as text never loses a digit).
_TYPES: dict[Dialect, dict[FieldKind, str]] = {
    "postgres": {
        "id": "text",
        "text": "text",
        "enum": "text",
        "time": "timestamptz",
        "bool": "boolean",
        "int": "bigint",
    },
    "sqlite": {"id": "TEXT", "text": "TEXT", "enum": "TEXT", "time": "TEXT", "bool": "INTEGER", "int": "INTEGER"},
}
#: Column types an existing PostgreSQL table may have (``format_type`` spelling) for each type it is created with.
_PG_ACCEPTED: dict[str, tuple[str, ...]] = {
    "text": ("text", "character varying"),
    "timestamptz": ("timestamp with time zone",),
    "boolean": ("boolean",),
    "bigint": ("bigint", "integer"),
}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: PostgreSQL's identifier limit (NAMEDATALEN - 1); longer names would be cut silently.
_MAX_IDENTIFIER = 63
#: PostgreSQL's ``id`` collation, in the table and the staging table: byte order. An id is an opaque
#: key (the API's int64 as text), so a language's collation buys nothing, and it is what the merge
#: spends most on: its sort of the staged ids and every primary-key comparison of the insert go
#: through the C library's ``strcoll`` (without PostgreSQL's abbreviated keys) instead of ``memcmp``.
#: A table created without it works the same, only slower.
_PG_ID_COLLATION = ' COLLATE "C"'
_ZERO_YEAR = 1
_YEAR_2 = "timestamptz '0002-01-01T00:00:00Z'"
_ZERO_AS_NULL = f'CASE WHEN "updated_at" >= {_YEAR_2} THEN "updated_at" END'


@dataclass(frozen=True)
class TableName:
    """A validated ``table`` or ``schema.table``, quoted exactly as written."""

    schema: str | None
    name: str

    def quoted(self) -> str:
        """Return the name for SQL: each part in double quotes (case kept, no keyword clash)."""
        table = f'"{self.name}"'
        return table if self.schema is None else f'"{self.schema}".{table}'

    def __str__(self) -> str:
        return self.name if self.schema is None else f"{self.schema}.{self.name}"


def parse_table_name(value: object) -> TableName:
    """Validate ``table``: ``name`` or ``schema.name``, each an identifier (letters, digits, ``_``).

    :raises ValueError: naming the rule, for anything else (quotes, spaces, more dots, a keyword
        cannot be mistaken for a name because each part is quoted in the SQL).
    """
    parts = value.split(".") if isinstance(value, str) else []
    if (
        not 1 <= len(parts) <= 2
        or not all(_IDENTIFIER.match(part) for part in parts)
        or any(len(part) > _MAX_IDENTIFIER for part in parts)
    ):
        raise ValueError(
            f"table={value!r} must be 'table' or 'schema.table', each part an SQL identifier of at most "
            f"{_MAX_IDENTIFIER} letters, digits and underscores, not starting with a digit "
            f"(e.g. 'etelecom_consents' or 'analytics.etelecom_consents')."
        )
    return TableName(None, parts[0]) if len(parts) == 1 else TableName(parts[0], parts[1])


def column_types(dialect: Dialect) -> dict[str, str]:
    """Return each column's SQL type in ``dialect``, in table order (the lineage schema facet)."""
    return {field.name: _TYPES[dialect][field.kind] for field in CONSENT_FIELDS}


def _column_definitions(dialect: Dialect, *, primary_key: bool) -> str:
    types = _TYPES[dialect]
    lines = [f'    "{field.name}" {types[field.kind]}' for field in CONSENT_FIELDS]
    lines[0] += (_PG_ID_COLLATION if dialect == "postgres" else "") + (" PRIMARY KEY" if primary_key else " NOT NULL")
    return ",\n".join(lines)


def create_table_sql(dialect: Dialect, table: TableName) -> str:
    """Return the ``CREATE TABLE IF NOT EXISTS`` of the consents table (the DDL in the docs)."""
    return f"CREATE TABLE IF NOT EXISTS {table.quoted()} (\n{_column_definitions(dialect, primary_key=True)}\n)"


def stage_table_sql(dialect: Dialect, stage: str) -> str:
    """Return the DDL of the session's temporary staging table (SQLite's keyed on id, to keep the newest)."""
    if dialect == "postgres":
        return f'CREATE TEMPORARY TABLE "{stage}" (\n{_column_definitions(dialect, primary_key=False)}\n)'
    return f'CREATE TEMPORARY TABLE "{stage}" (\n{_column_definitions(dialect, primary_key=True)}\n)'


def _replace_rule(target: str, incoming: str) -> str:
    return f'{target}."updated_at" IS NULL OR {incoming}."updated_at" >= {target}."updated_at"'


def stage_insert_sql(stage: str) -> str:
    """Return SQLite's insert into the staging table (one row per id: the newest ``updated_at``)."""
    columns = ", ".join(f'"{name}"' for name in CONSENT_FIELD_NAMES)
    marks = ", ".join("?" for _ in CONSENT_FIELD_NAMES)
    updates = ", ".join(f'"{name}" = excluded."{name}"' for name in CONSENT_FIELD_NAMES[1:])
    return (
        f'INSERT INTO temp."{stage}" AS target ({columns}) VALUES ({marks}) '
        f'ON CONFLICT ("id") DO UPDATE SET {updates} WHERE {_replace_rule("target", "excluded")}'
    )


def copy_sql(stage: str) -> str:
    """Return PostgreSQL's ``COPY`` into the staging table (text format, as :func:`copy_text` writes)."""
    columns = ", ".join(f'"{name}"' for name in CONSENT_FIELD_NAMES)
    return f'COPY "{stage}" ({columns}) FROM STDIN'


def merge_sql(dialect: Dialect, table: TableName, stage: str) -> str:
    """Return the one statement that merges the staging table into ``table``, in id order.

    Rows are inserted in id order, so two loads of overlapping days lock the rows they share in
    the same order and wait for each other instead of deadlocking. A stored row is replaced only
    when the incoming ``updated_at`` is newer or equal, and only when a value differs
    (:func:`_changed`): replacing a row with the same values would change nothing in the table,
    yet write a new row version, its index entries and WAL for every consent a lookback re-reads.
    """
    columns = ", ".join(f'"{name}"' for name in CONSENT_FIELD_NAMES)
    updates = ", ".join(f'"{name}" = excluded."{name}"' for name in CONSENT_FIELD_NAMES[1:])
    if dialect == "postgres":
        # The fast COPY path passes the platform's zero time through as text: NULL it here (any
        # time before year 2, as consent_row does), so the staged rows of both paths merge alike.
        selected = ", ".join(
            f'CASE WHEN "{f.name}" >= {_YEAR_2} THEN "{f.name}" END AS "{f.name}"'
            if f.kind == "time"
            else f'"{f.name}"'
            for f in CONSENT_FIELDS
        )
        source = f'SELECT DISTINCT ON ("id") {selected} FROM "{stage}" ORDER BY "id", {_ZERO_AS_NULL} DESC NULLS LAST'
    else:
        source = f'SELECT {columns} FROM temp."{stage}" WHERE true ORDER BY "id"'
    return (
        f"INSERT INTO {table.quoted()} AS target ({columns}) {source} "
        f'ON CONFLICT ("id") DO UPDATE SET {updates} '
        f"WHERE ({_replace_rule('target', 'excluded')}) AND {_changed(dialect, 'target', 'excluded')}"
    )


def _changed(dialect: Dialect, target: str, incoming: str) -> str:
    """Return "a column of the incoming row differs from the stored one" (a NULL differs from a value only).

    Only the consents table's own columns are compared: the merge writes no others.
    """
    if dialect == "postgres":
        stored = ", ".join(f'{target}."{name}"' for name in CONSENT_FIELD_NAMES[1:])
        new = ", ".join(f'{incoming}."{name}"' for name in CONSENT_FIELD_NAMES[1:])
        return f"ROW({stored}) IS DISTINCT FROM ROW({new})"
    return "(" + " OR ".join(f'{target}."{name}" IS NOT {incoming}."{name}"' for name in CONSENT_FIELD_NAMES[1:]) + ")"


RowValue = str | int | bool | datetime | None


def _time(consent: Consent, name: str, value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"consent {consent.get('id')!r}: {name}={value!r} is not an RFC 3339 time")
    try:
        moment = parse_api_time(value)
    except ValueError:
        raise ValueError(f"consent {consent.get('id')!r}: {name}={value!r} is not an RFC 3339 time") from None
    return None if moment.year == _ZERO_YEAR else moment


def consent_row(consent: Consent) -> tuple[RowValue, ...]:
    """Convert one consent as the API returned it into the row's values, in the table's column order.

    Times become aware UTC datetimes (the zero time ``None``), ``is_charged`` a bool,
    ``error_code`` an int; everything else is kept as the API's text. A missing field is ``None``.

    :raises ValueError: for a time that is not RFC 3339, an ``error_code`` that is not a whole
        number or a consent without an ``id`` (naming the consent and the field).
    """
    raw: dict[str, object] = dict(consent)
    values: list[RowValue] = []
    for field in CONSENT_FIELDS:
        value = raw.get(field.name)
        if field.kind == "time":
            values.append(_time(consent, field.name, value))
        elif value is None:
            values.append(None)
        elif field.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"consent {consent.get('id')!r}: {field.name}={value!r} is not a boolean")
            values.append(value)
        elif field.kind == "int":
            try:
                values.append(int(str(value)))
            except ValueError:
                raise ValueError(
                    f"consent {consent.get('id')!r}: {field.name}={value!r} is not a whole number"
                ) from None
        else:
            values.append(str(value))
    if not values[0]:
        raise ValueError(f"a consent without an id cannot be loaded (the table is keyed on id): {consent!r}")
    return tuple(values)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sqlite_row(row: Sequence[RowValue]) -> tuple[str | int | None, ...]:
    """Render a :func:`consent_row` for SQLite: times as fixed-width ISO text, booleans as 0/1."""
    return tuple(
        _iso(value) if isinstance(value, datetime) else int(value) if isinstance(value, bool) else value
        for value in row
    )


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(rows: Iterable[Sequence[RowValue]]) -> str:
    """Render rows in PostgreSQL's ``COPY`` text format (tab-separated, ``\\N`` for NULL)."""
    lines = []
    for row in rows:
        cells = []
        for value in row:
            if value is None:
                cells.append("\\N")
            elif isinstance(value, bool):
                cells.append("t" if value else "f")
            elif isinstance(value, datetime):
                cells.append(value.isoformat())
            else:
                cells.append(str(value).translate(_COPY_ESCAPES))
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n" if lines else ""


#: RFC 3339 with an offset, the shape the API writes. Checked here because PostgreSQL's
#: ``timestamptz`` input, which parses the text, would also take ``yesterday``, ``now`` or a time
#: without an offset (read in the server's time zone).
_RFC3339 = r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:[Zz]|[+-]\d\d:\d\d)"
#: The time cells of a batch, one a line: checked with one regular expression per batch.
_TIMES = re.compile(f"(?:(?:{_RFC3339})\n)*")
_GET_ROW = itemgetter(*CONSENT_FIELD_NAMES)
_GET_TIMES = itemgetter(*(index for index, field in enumerate(CONSENT_FIELDS) if field.kind == "time"))
_GET_BOOL = itemgetter(*(index for index, field in enumerate(CONSENT_FIELDS) if field.kind == "bool"))
_GET_INT = itemgetter(*(index for index, field in enumerate(CONSENT_FIELDS) if field.kind == "int"))
_LINE = "\t".join(["%s"] * len(CONSENT_FIELDS))


def copy_batch(consents: Sequence[Consent]) -> str:
    """Render consents as the API returned them into PostgreSQL's ``COPY`` text, cheaply.

    The fast path is all C: every value fetched with one ``itemgetter`` per consent, each line
    formatted with one ``%`` and the batch joined once; times stay the API's RFC 3339 text, which
    PostgreSQL's ``timestamptz`` input parses. It is taken only when the result is exactly what
    :func:`copy_text` of :func:`consent_row` rows loads, checked on the whole batch at once: no
    missing field or ``None``, ``is_charged`` booleans, no character ``COPY`` reads as syntax
    (backslash, tab, newline, carriage return) inside a value, ``error_code`` ints, and every
    time text in RFC 3339 shape (one regular expression over the batch's times). Anything else
    takes that slower, exact path, which names the consent and the field of a bad value. The
    platform's zero time is turned into ``NULL`` by the merge (:func:`merge_sql`), so both agree.

    :raises ValueError: like :func:`consent_row`.
    """
    if not consents:
        return ""
    try:
        rows = list(map(_GET_ROW, consents))
    except KeyError:  # a field left out: NULL, the exact path
        return copy_text(map(consent_row, consents))
    try:
        times = "\n".join(chain.from_iterable(map(_GET_TIMES, rows))) + "\n"
    except TypeError:  # a time that is not text
        return copy_text(map(consent_row, consents))
    if (
        all(type(flag) is bool for flag in map(_GET_BOOL, rows))
        and all(type(code) is int for code in map(_GET_INT, rows))
        and _TIMES.fullmatch(times)
    ):
        text = "\n".join(map(_LINE.__mod__, rows)) + "\n"
        if (
            "None" not in text  # no None value (it would be written "None"); a text "None" takes the exact path
            and "\\" not in text
            and "\r" not in text
            and text.count("\n") == len(rows)
            and text.count("\t") == len(rows) * (len(CONSENT_FIELDS) - 1)
        ):
            return text
    return copy_text(map(consent_row, consents))


def check_columns(
    dialect: Dialect, table: TableName, found: Sequence[tuple[str, str, bool]], *, has_unique_id: bool
) -> None:
    """Check an existing table's columns against the consents table's before anything is listed.

    :param found: ``(name, type, required)`` of each column of the table, ``required`` meaning
        ``NOT NULL`` without a default (an extra column like that would refuse every insert).
    :param has_unique_id: whether ``id`` is the primary key or has a unique index (the merge's key).
    :raises ValueError: naming the missing, mistyped or blocking columns and the DDL to compare with.
    """
    by_name = {name: (kind, required) for name, kind, required in found}
    problems = []
    missing = [name for name in CONSENT_FIELD_NAMES if name not in by_name]
    if missing:
        problems.append(f"missing columns {', '.join(missing)}")
    if dialect == "postgres":
        for name, expected in column_types(dialect).items():
            if name in by_name and not by_name[name][0].startswith(_PG_ACCEPTED[expected]):
                problems.append(f"column {name} is {by_name[name][0]}, expected {expected}")
    blocking = [name for name, (_, required) in by_name.items() if name not in CONSENT_FIELD_NAMES and required]
    if blocking:
        problems.append(f"extra columns {', '.join(blocking)} are NOT NULL without a default")
    if not missing and not has_unique_id:
        problems.append("id is neither the primary key nor unique (the merge is keyed on it)")
    if problems:
        raise ValueError(
            f"table={str(table)!r} does not match the consents table: {'; '.join(problems)}. Create it as "
            f"the docs show (docs/warehouse.md), or pass create_table=True with a table name that does not "
            f"exist yet. Expected:\n{create_table_sql(dialect, table)}"
        )
