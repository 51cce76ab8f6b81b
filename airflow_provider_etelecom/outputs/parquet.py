"""Write consents as Apache Parquet to any object storage Airflow knows, atomically, in row groups.

:func:`atomic_parquet_writer` has the shape of :func:`~airflow_provider_etelecom.outputs.jsonl.atomic_jsonl_writer`:
it streams to a temporary sibling (``<path>.tmp-<uuid>``), moves it into place only when the
whole export was written, and deletes it when anything fails, so whatever was at the path before
is left untouched.

The file has one typed top-level column per field of ``ListRequestConsent``
(:data:`~airflow_provider_etelecom.client.models.CONSENT_FIELDS`, typed by kind), plus ``_extra``,
a JSON text column for whatever those columns could not hold. The rules, which docs/operator.md
repeats as a table:

- ids (``id``, ``shop_id``, ``user_id``, ``oa_id``) are strings, as the API carries them: no
  reader can lose a digit (pandas turns an int64 column with nulls into float64, exact only up to
  2**53), and they join with the JSONL exports and the API's own values without a cast;
- times are ``timestamp[us, tz=UTC]``; the platform's zero time (``0001-01-01T00:00:00Z``, Go's
  unset ``time.Time``, e.g. the ``delivery_time`` of an undelivered request) is null, and a
  fraction finer than a microsecond is cut to the microsecond (what BigQuery and DuckDB hold);
- enums are plain strings, so a value outside the documented set (the platform's ``unknown`` or
  ``Z``, a future letter) is kept as it was sent; booleans are booleans, ``error_code`` is int64;
- a field the API leaves out is null;
- a field this schema does not know, and a value that does not fit its column (a time that is not
  RFC 3339, a string where a boolean belongs), is kept under its own name in ``_extra`` (the typed
  column is then null) and reported by one warning per export, never dropped silently.

Memory is bounded by one row group (:data:`ROW_GROUP_ROWS` consents as Arrow columns), whatever the
number of consents; columns are compressed with zstd. pyarrow is an optional dependency (the
``parquet`` extra): it is imported only when a Parquet file is written.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_etelecom.client.models import (
    CONSENT_FIELD_NAMES,
    CONSENT_FIELDS,
    ConsentField,
    FieldKind,
    parse_api_time,
)
from airflow_provider_etelecom.outputs.files import AtomicOutput, atomic_output

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "ParquetUnavailableError",
    "atomic_parquet_writer",
    "is_parquet_path",
    "pyarrow_installed",
    "pyarrow_missing_message",
    "require_pyarrow",
]

log = logging.getLogger(__name__)

#: What to install for Parquet output (named in every error about a missing pyarrow). The package is
#: not on PyPI before its first release, so the message says how to install from a clone first.
PARQUET_EXTRA = (
    "from a clone of airflow-provider-etelecom: pip install '.[parquet]'; "
    "after its first release on PyPI: pip install 'airflow-provider-etelecom[parquet]'"
)
#: Consents per row group: the memory bound (a few MB as Arrow columns) and still a size readers scan well.
ROW_GROUP_ROWS = 20_000
#: Consents converted to Arrow at a time (raw records held before conversion).
BATCH_ROWS = 5_000
#: The JSON text column for unknown fields and values that did not fit their typed column.
EXTRA_COLUMN = "_extra"
#: Times before this are the platform's zero time (year 1), written as null.
_ZERO_TIME_BEFORE = "0002-01-01T00:00:00+00:00"
_KNOWN = frozenset(CONSENT_FIELD_NAMES)


class ParquetUnavailableError(ImportError):
    """pyarrow, needed for ``.parquet`` output, is not installed."""


def is_parquet_path(path: str) -> bool:
    """Whether ``path`` asks for Parquet (it ends in ``.parquet``, any case)."""
    return path.strip().lower().endswith(".parquet")


def pyarrow_missing_message(parameter: str = "output_path", path: str | None = None) -> str:
    """The error text for a ``.parquet`` path without pyarrow: what to install."""
    shown = f"={path!r}" if path is not None else ""
    return (
        f"{parameter}{shown} ends in '.parquet', which needs pyarrow: install the provider's parquet "
        f"extra ({PARQUET_EXTRA}) where the DAG is parsed and run, or write JSON Lines ('.jsonl', '.jsonl.gz')."
    )


def pyarrow_installed() -> bool:
    """Whether pyarrow can be found, without importing it (cheap enough for DAG parsing)."""
    try:
        return importlib.util.find_spec("pyarrow") is not None
    except (ImportError, ValueError):
        return False


def require_pyarrow(parameter: str = "output_path", path: str | None = None) -> None:
    """Import pyarrow's Parquet module, or raise the error that says which extra to install.

    :raises ParquetUnavailableError: when pyarrow is missing or cannot be imported.
    """
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError as error:
        raise ParquetUnavailableError(f"{pyarrow_missing_message(parameter, path)} ({error})") from None


def arrow_schema() -> pa.Schema:
    """The Arrow schema of the file: the consent's fields, each typed by its kind, then :data:`EXTRA_COLUMN`."""
    import pyarrow as pa

    types: dict[FieldKind, pa.DataType] = {
        "id": pa.string(),
        "text": pa.string(),
        "enum": pa.string(),
        "bool": pa.bool_(),
        "int": pa.int64(),
        "time": pa.timestamp("us", tz="UTC"),
    }
    fields = [pa.field(f.name, types[f.kind], metadata={"description": f.description}) for f in CONSENT_FIELDS]
    fields.append(pa.field(EXTRA_COLUMN, pa.string(), metadata={"description": "JSON: fields not in the schema"}))
    return pa.schema(fields)


def _fits(kind: FieldKind, value: object) -> bool:
    if value is None:
        return True
    if kind == "bool":
        return value.__class__ is bool
    if kind == "int":
        return value.__class__ is int
    return value.__class__ is str


class ParquetConsentWriter:
    """Convert consents to typed Arrow batches and write them to a Parquet stream in row groups.

    :param stream: an open binary stream (the temporary sibling).
    :param guard: wraps each row-group write (the atomic output turns storage failures into
        :class:`~airflow_provider_etelecom.exceptions.EtelecomOutputError` with it).
    :param row_group_size: consents per row group (the memory bound).
    :param compression: Parquet codec, ``zstd`` by default.
    """

    def __init__(
        self,
        stream: Any,
        *,
        row_group_size: int = ROW_GROUP_ROWS,
        compression: str = "zstd",
        path: str = "",
        guard: Callable[[], AbstractContextManager[None]] = nullcontext,
    ) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self._schema = arrow_schema()
        self._writer = pq.ParquetWriter(stream, self._schema, compression=compression)
        self._row_group_size = row_group_size
        self._records: list[Mapping[str, Any]] = []
        self._batches: list[pa.RecordBatch] = []
        self._batched_rows = 0
        self._path = path
        self._guard = guard
        self.count = 0
        self.output: AtomicOutput | None = None
        """The atomic output written to (set by :func:`atomic_parquet_writer`): existed before, size after."""
        self.unknown_fields: dict[str, int] = {}
        """Fields the schema does not know, with how many consents carried each."""
        self.misfits: dict[str, int] = {}
        """Known fields whose value did not fit the column, with how many consents."""

    def write_many(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Add ``records``; a batch is converted, and a row group written, as they fill. Return how many."""
        added = 0
        for record in records:
            self._records.append(record)
            added += 1
            if len(self._records) >= BATCH_ROWS:
                self._convert()
        self.count += added
        return added

    def close(self) -> None:
        """Write what is buffered and the file's footer."""
        self._convert()
        self._flush()
        self._writer.close()

    def abort(self) -> None:
        """Close the Parquet writer after a failure (the temporary file is deleted anyway)."""
        try:
            self._writer.close()
        except Exception as error:  # the export's own failure is the one to report
            log.debug("Closing the Parquet writer after a failure: %s", error)

    def warn_once(self) -> None:
        """Log the one warning of this export about what went to ``_extra`` (if anything did)."""
        if not self.unknown_fields and not self.misfits:
            return
        parts = []
        if self.unknown_fields:
            parts.append(
                "fields the Parquet schema does not know: "
                + ", ".join(f"{name} ({n} consents)" for name, n in sorted(self.unknown_fields.items()))
            )
        if self.misfits:
            parts.append(
                "values that do not fit their column: "
                + ", ".join(f"{name} ({n} consents)" for name, n in sorted(self.misfits.items()))
            )
        log.warning(
            "Parquet export %s: %s. They are kept as JSON in the %r column; a newer provider version may "
            "give them columns of their own.",
            self._path,
            "; ".join(parts),
            EXTRA_COLUMN,
        )

    def _convert(self) -> None:
        records, self._records = self._records, []
        if not records:
            return
        pa = self._pa
        extras: list[dict[str, Any] | None] = [None] * len(records)
        for row, record in enumerate(records):
            unknown = record.keys() - _KNOWN
            if unknown:
                extras[row] = {name: record[name] for name in sorted(unknown)}
                for name in unknown:
                    self.unknown_fields[name] = self.unknown_fields.get(name, 0) + 1
        arrays = []
        for column, field in zip(CONSENT_FIELDS, self._schema, strict=False):
            values = [record.get(column.name) for record in records]
            if not all(_fits(column.kind, value) for value in values):
                values = self._fit(column, values, extras)
            if column.kind == "time":
                arrays.append(self._times(column, values, extras))
            else:
                arrays.append(pa.array(values, field.type))
        arrays.append(
            pa.array(
                [None if extra is None else json.dumps(extra, ensure_ascii=False, sort_keys=True) for extra in extras],
                pa.string(),
            )
        )
        batch = pa.RecordBatch.from_arrays(arrays, schema=self._schema)
        self._batches.append(batch)
        self._batched_rows += batch.num_rows
        while self._batched_rows >= self._row_group_size:
            self._flush(self._row_group_size)

    def _fit(self, column: ConsentField, values: list[Any], extras: list[dict[str, Any] | None]) -> list[Any]:
        """Replace values that do not fit ``column`` by null, keeping them in ``_extra``.

        An int id (the API sends strings, but an int is the same number) is written as its digits.
        """
        fitted: list[Any] = []
        for row, value in enumerate(values):
            if column.kind == "id" and value.__class__ is int:
                fitted.append(str(value))
            elif _fits(column.kind, value):
                fitted.append(value)
            else:
                self._keep(column.name, value, row, extras)
                fitted.append(None)
        return fitted

    def _keep(self, name: str, value: Any, row: int, extras: list[dict[str, Any] | None]) -> None:
        extra = extras[row]
        if extra is None:
            extra = extras[row] = {}
        extra[name] = value
        self.misfits[name] = self.misfits.get(name, 0) + 1

    def _times(self, column: ConsentField, values: list[Any], extras: list[dict[str, Any] | None]) -> pa.Array:
        """RFC 3339 texts -> UTC microsecond timestamps; the zero time -> null; unparsable -> ``_extra``."""
        pa = self._pa
        import pyarrow.compute as pc

        kind = pa.timestamp("us", tz="UTC")
        try:
            times = pa.array(values, pa.string()).cast(kind)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            # Some value is not RFC 3339 (or finer than microseconds): parse one by one.
            parsed: list[datetime | None] = []
            for row, value in enumerate(values):
                try:
                    parsed.append(None if value is None else parse_api_time(value))
                except (ValueError, TypeError, OverflowError):
                    self._keep(column.name, value, row, extras)
                    parsed.append(None)
            times = pa.array(parsed, kind)
        zero = pc.less(times, pa.scalar(datetime.fromisoformat(_ZERO_TIME_BEFORE), kind))
        return pc.if_else(zero, pa.scalar(None, kind), times)

    def _flush(self, rows: int | None = None) -> None:
        """Write one row group of ``rows`` consents (default: all that are converted), keep the rest."""
        if not self._batches:
            return
        table = self._pa.Table.from_batches(self._batches, schema=self._schema)
        group = table if rows is None else table.slice(0, rows)
        rest = table.slice(group.num_rows)
        self._batches, self._batched_rows = rest.to_batches(), rest.num_rows
        with self._guard():
            self._writer.write_table(group, row_group_size=max(group.num_rows, 1))


@contextmanager
def atomic_parquet_writer(
    path: str,
    *,
    conn_id: str | None = None,
    row_group_size: int = ROW_GROUP_ROWS,
    compression: str = "zstd",
    stop: threading.Event | None = None,
) -> Iterator[ParquetConsentWriter]:
    """Open a :class:`ParquetConsentWriter` whose file appears at ``path`` only if the block succeeds.

    An export of no consents is a valid Parquet file with the schema and no rows. The atomic write
    (temporary sibling, stop check, move, clean-up, short storage errors) is
    :func:`~airflow_provider_etelecom.outputs.files.atomic_output`'s, the same as for JSON Lines.

    :param path: the final URL (see :func:`~airflow_provider_etelecom.outputs.files.resolve_output_path`).
    :param conn_id: the Airflow connection with the storage credentials.
    :param row_group_size: consents per row group.
    :param compression: Parquet codec (``zstd``, ``snappy``, ...).
    :param stop: when set (``on_kill``), the block's output is discarded instead of moved into place.
    :raises ParquetUnavailableError: without pyarrow (before anything is written).
    :raises ValueError: for an unusable ``path`` (before anything is written).
    :raises EtelecomOutputError: when the storage refuses or fails a step, naming ``output_path``.
    :raises EtelecomStoppedError: when ``stop`` was set before the move.
    """
    require_pyarrow(path=path)
    with atomic_output(path, conn_id=conn_id, stop=stop) as output:
        writer = ParquetConsentWriter(
            output.raw,
            row_group_size=row_group_size,
            compression=compression,
            path=path,
            guard=lambda: output.step("write"),
        )
        writer.output = output
        try:
            yield writer
        except BaseException:
            writer.abort()
            raise
        with output.step("finish writing"):
            writer.close()
    writer.warn_once()
