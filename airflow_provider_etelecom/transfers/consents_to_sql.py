"""Load eTelecom consents into a PostgreSQL or SQLite table, keeping each consent's newest answer."""

from __future__ import annotations

import dataclasses
import logging
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook, BaseOperator, Context

from airflow_provider_etelecom.client import (
    Consent,
    ConsentPage,
    ConsentQuery,
)
from airflow_provider_etelecom.client.models import CONSENT_FIELD_NAMES
from airflow_provider_etelecom.client.query import FILTER_FIELDS
from airflow_provider_etelecom.client.seen import SeenIds
from airflow_provider_etelecom.client.validation import MAX_PAGE_SIZE, format_api_time, validate_number
from airflow_provider_etelecom.exceptions import EtelecomDatabaseError, EtelecomValidationError, FailureKind
from airflow_provider_etelecom.failure_policy import validate_retry_permanent_errors, with_failure_policy
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.operators.base import (
    ConsentFiltersMixin,
    StopOnKillMixin,
    is_template,
    with_listing_params,
)
from airflow_provider_etelecom.operators.lineage import (
    ListingLineageMixin,
    SqlLoadOutcome,
    build_sql_lineage,
    postgres_dataset_naming,
    sqlite_dataset_naming,
)
from airflow_provider_etelecom.transfers import sql_table
from airflow_provider_etelecom.transfers.sql_table import Dialect, TableName

if TYPE_CHECKING:
    from airflow.providers.common.compat.openlineage.facet import Dataset, RunFacet
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.providers.openlineage.extractors import OperatorLineage

__all__ = ["ConsentsToSqlOperator"]

log = logging.getLogger(__name__)

#: Customers answer within about 24 hours (then ``S`` becomes ``NS``); two days re-read every
#: consent that can still change, with a day of margin for late platform updates.
DEFAULT_LOOKBACK = timedelta(days=2)
#: Connection types the transfer speaks (upsert and DDL syntax differ between databases).
SUPPORTED_CONN_TYPES: dict[str, Dialect] = {"postgres": "postgres", "postgresql": "postgres", "sqlite": "sqlite"}
#: SQLSTATEs after which the merge is rolled back and run again: deadlock, serialization failure.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
MERGE_ATTEMPTS = 5
#: ``temp_buffers`` of the load's own session on PostgreSQL (the staging table's memory, used as needed).
STAGE_TEMP_BUFFERS = "64MB"
#: Consents per ``write`` of a batch's ``COPY`` (psycopg 3): the server parses a part while Python renders the next.
COPY_PART = 1_000
#: ``work_mem`` of the merge's transaction on PostgreSQL (the default 4 MB sorts 100,000 staged rows on disk).
MERGE_WORK_MEM = "64MB"


def _validate_lookback(value: object) -> timedelta:
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise EtelecomValidationError(
            f"lookback={value!r} must be a timedelta >= 0, e.g. timedelta(days=2): how far before date_from each "
            f"run re-reads consents so that answers given after the last run update their rows.",
            parameter="lookback",
        )
    return value


def _table(value: object) -> TableName:
    try:
        return sql_table.parse_table_name(value)
    except ValueError as error:
        raise EtelecomValidationError(str(error), parameter="table") from None


#: The modules of the DB-API drivers the two dialects use: their errors are the database's, not a bug.
_DRIVER_MODULES = frozenset({"sqlite3", "psycopg", "psycopg2"})


def _sqlite_forms(conn_id: str) -> str:
    """The connection forms that open a SQLite file, for error messages."""
    return (
        f"give the connection the database file's absolute path in Host (its folder must exist), e.g. "
        f'AIRFLOW_CONN_{conn_id.upper()}=\'{{"conn_type": "sqlite", "host": "/data/consents.db"}}\' or the URI '
        f"'sqlite://%2Fdata%2Fconsents.db' (the path URL-encoded as the host); see docs/warehouse.md"
    )


@contextmanager
def _opening_database(conn_id: str, dialect: Dialect) -> Iterator[None]:
    """Turn a driver's failure to open or first use the database of ``conn_id`` into one clear error.

    A SQLite file that cannot be opened stays so (a wrong path, a URI form the SQLite provider
    misreads): permanent. A PostgreSQL server that cannot be reached may come back: transient,
    retried as the task says.

    :raises EtelecomDatabaseError: naming ``sql_conn_id`` and what to fix.
    """
    try:
        yield
    except Exception as error:
        if type(error).__module__.split(".")[0] not in _DRIVER_MODULES:
            raise
        cause = f"{type(error).__name__}: {str(error).strip()[:300]}"
        if dialect == "sqlite":
            raise EtelecomDatabaseError(
                f"sql_conn_id={conn_id!r}: the SQLite database could not be opened or read ({cause}); "
                f"{_sqlite_forms(conn_id)}.",
                kind=FailureKind.PERMANENT.value,
            ) from None
        raise EtelecomDatabaseError(
            f"sql_conn_id={conn_id!r}: the PostgreSQL database could not be reached or read ({cause}); check the "
            f"connection's Host, Port, Login, Password and Schema (the database name) and that the server is "
            f"up; Airflow retries the task as configured.",
            kind=FailureKind.TRANSIENT.value,
        ) from None


def _sqlstate(error: BaseException) -> str | None:
    """Return the SQLSTATE of a psycopg (3: ``sqlstate``) or psycopg2 (``pgcode``) error."""
    for attribute in ("sqlstate", "pgcode"):
        code = getattr(error, attribute, None)
        if isinstance(code, str):
            return code
    return None


def _is_retryable(error: BaseException) -> bool:
    if _sqlstate(error) in RETRYABLE_SQLSTATES:
        return True
    return type(error).__name__ == "OperationalError" and "database is locked" in str(error)


class _TableLoad:
    """Stage rows in a temporary table of one database session, then merge them in one transaction.

    The staging table lives in the session (``TEMPORARY``): nothing but the merge ever writes the
    target, so a run that fails or is stopped before the merge leaves it exactly as it was, and a
    merge that fails is rolled back whole.
    """

    def __init__(self, hook: DbApiHook, dialect: Dialect, table: TableName, create_table: bool, log: Any) -> None:
        self.hook = hook
        self.dialect = dialect
        self.table = table
        self.create_table = create_table
        self.log = log
        self.stage = f"etelecom_stage_{uuid.uuid4().hex[:12]}"
        self.conn: Any = hook.get_conn()
        if dialect == "sqlite":
            self.conn.isolation_level = None  # explicit BEGIN/COMMIT: the merge is one transaction
        self.table_exists = False
        #: PostgreSQL's schema for an unqualified table (the session's ``search_path``), for lineage.
        self.current_schema: str | None = None

    # -- before any request ----------------------------------------------------------------------

    def check_table(self) -> None:
        """Check the target (exists, columns, key), then create the session's staging table.

        :raises EtelecomValidationError: a missing table without ``create_table``, a missing
            schema, or a table whose columns do not match.
        """
        columns, unique_id = self._describe() if self.dialect == "postgres" else self._describe_sqlite()
        self.table_exists = bool(columns)
        if not columns and not self.create_table:
            raise EtelecomValidationError(
                f"table={str(self.table)!r} does not exist in connection {self.hook.get_conn_id()!r}. Create it "
                f"(DDL in docs/warehouse.md) or pass create_table=True.",
                parameter="table",
            )
        if columns:
            try:
                sql_table.check_columns(self.dialect, self.table, columns, has_unique_id=unique_id)
            except ValueError as error:
                raise EtelecomValidationError(str(error), parameter="table") from None
        cursor = self.conn.cursor()
        try:
            if self.dialect == "postgres":
                # Before the session's first temporary table: keep the staged rows in memory up to this
                # size (the default 8 MB spills about 30,000 staged consents to disk and reads them back).
                cursor.execute(f"SET temp_buffers = '{STAGE_TEMP_BUFFERS}'")
            cursor.execute(sql_table.stage_table_sql(self.dialect, self.stage))
        finally:
            cursor.close()
        self.conn.commit()

    def _describe(self) -> tuple[list[tuple[str, str, bool]], bool]:
        cursor = self.conn.cursor()
        try:
            if self.table.schema is not None:
                cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.table.schema,))
                if cursor.fetchone() is None:
                    raise EtelecomValidationError(
                        f"table={str(self.table)!r}: schema {self.table.schema!r} does not exist in connection "
                        f"{self.hook.get_conn_id()!r}; create it first (CREATE SCHEMA), create_table creates "
                        f"only the table.",
                        parameter="table",
                    )
            cursor.execute("SELECT current_schema()")
            row = cursor.fetchone()
            self.current_schema = None if row is None or row[0] is None else str(row[0])
            cursor.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull AND NOT a.atthasdef "
                "FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
                (self.table.quoted(),),
            )
            columns = [(str(name), str(kind), bool(required)) for name, kind, required in cursor.fetchall()]
            cursor.execute(
                "SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
                "WHERE i.indrelid = to_regclass(%s) AND i.indisunique AND i.indnkeyatts = 1 "
                "AND i.indpred IS NULL AND a.attname = 'id'",
                (self.table.quoted(),),
            )
            unique_id = cursor.fetchone() is not None
        finally:
            cursor.close()
        self.conn.rollback()
        return columns, unique_id

    def _describe_sqlite(self) -> tuple[list[tuple[str, str, bool]], bool]:
        schema = f'"{self.table.schema}".' if self.table.schema else ""
        name = f'"{self.table.name}"'
        info = self.conn.execute(f"PRAGMA {schema}table_info({name})").fetchall()
        columns = [(str(row[1]), str(row[2]), bool(row[3]) and row[4] is None and not row[5]) for row in info]
        pk = [row[1] for row in info if row[5]]
        unique_id = pk == ["id"]
        for index in self.conn.execute(f"PRAGMA {schema}index_list({name})").fetchall():
            if index[2] and not index[4]:  # unique, not partial
                keys = [row[2] for row in self.conn.execute(f'PRAGMA {schema}index_info("{index[1]}")').fetchall()]
                unique_id = unique_id or keys == ["id"]
        return columns, unique_id

    # -- while listing ---------------------------------------------------------------------------

    def stage_consents(self, consents: Sequence[Consent]) -> None:
        """Add a batch of consents (as the API returned them) to the staging table and commit it.

        PostgreSQL gets the batch as one ``COPY`` (:func:`sql_table.copy_batch`: plain string
        operations, times passed as the API's text to the server's parser), written in parts of
        :data:`COPY_PART` consents on psycopg 3 so that the server parses one part while the next
        is rendered; SQLite one ``executemany``. Each is a short transaction on a private table.
        """
        if not consents:
            return
        if self.dialect == "sqlite":
            rows = [sql_table.sqlite_row(sql_table.consent_row(consent)) for consent in consents]
            self.conn.execute("BEGIN")
            self.conn.executemany(sql_table.stage_insert_sql(self.stage), rows)
            self.conn.execute("COMMIT")
            return
        cursor = self.conn.cursor()
        try:
            if hasattr(cursor, "copy_expert"):  # psycopg2: copy_expert reads one file
                import io

                cursor.copy_expert(sql_table.copy_sql(self.stage), io.StringIO(sql_table.copy_batch(consents)))
            else:  # psycopg 3: the server parses each part while the next one is rendered
                with cursor.copy(sql_table.copy_sql(self.stage)) as copy:
                    for start in range(0, len(consents), COPY_PART):
                        copy.write(sql_table.copy_batch(consents[start : start + COPY_PART]))
        finally:
            cursor.close()
        self.conn.commit()

    # -- the merge -------------------------------------------------------------------------------

    def merge(self) -> int:
        """Merge the staging table into the target in one transaction; retry it after a deadlock.

        :return: the rows inserted or changed (a row whose values are the same is left alone).
        """
        for attempt in range(1, MERGE_ATTEMPTS + 1):
            try:
                return self._merge_once()
            except Exception as error:
                self._rollback()
                if not _is_retryable(error) or attempt == MERGE_ATTEMPTS:
                    raise
                delay = min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0)
                self.log.warning(
                    "Merge into %s failed (%s: %s); rolled back, retrying in %.2f s (attempt %d of %d).",
                    self.table,
                    type(error).__name__,
                    str(error).strip().splitlines()[0] if str(error).strip() else "",
                    delay,
                    attempt + 1,
                    MERGE_ATTEMPTS,
                )
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _merge_once(self) -> int:
        statements = []
        if self.create_table and not self.table_exists:
            statements.append(sql_table.create_table_sql(self.dialect, self.table))
        statements.append(sql_table.merge_sql(self.dialect, self.table, self.stage))
        if self.dialect == "sqlite":
            self.conn.execute("BEGIN IMMEDIATE")
            written = 0
            for statement in statements:
                written = self.conn.execute(statement).rowcount
            self.conn.execute("COMMIT")
            return int(written)
        cursor = self.conn.cursor()
        try:
            # The merge sorts the staged rows by id: let that sort stay in memory (this transaction only).
            cursor.execute(f"SET LOCAL work_mem = '{MERGE_WORK_MEM}'")
            for statement in statements:
                cursor.execute(statement)
            written = cursor.rowcount
        finally:
            cursor.close()
        self.conn.commit()
        return int(written)

    def _rollback(self) -> None:
        # A rollback that fails means the connection is gone: the failure being handled is the one to
        # report, and the server drops what the transaction held.
        try:
            if self.dialect == "sqlite":
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
            else:
                self.conn.rollback()
        except Exception as error:
            log.debug("Rolling back %s failed (the connection is gone): %s", self.table, error)

    def close(self) -> None:
        """Drop the session (its temporary staging table goes with it)."""
        self._rollback()
        try:
            self.conn.close()
        except Exception as error:  # closing a dead connection: nothing left to release
            log.debug("Closing the connection to %s failed: %s", self.table, error)


class ConsentsToSqlOperator(ConsentFiltersMixin, StopOnKillMixin, ListingLineageMixin[SqlLoadOutcome], BaseOperator):
    """Upsert the consents matching the filters into a PostgreSQL or SQLite table, keyed on ``id``.

    A stored row is replaced only when the incoming ``updated_at`` is newer or equal, so a replayed
    old load never overwrites a newer answer (the rule and the column types are in
    :mod:`airflow_provider_etelecom.transfers.sql_table` and docs/warehouse.md). The listing is
    streamed in batches of ``batch_size`` rows into a temporary staging table of the database
    session (``COPY`` on PostgreSQL), then merged into ``table`` in one short transaction, in id
    order: a failed or stopped run leaves the table exactly as it was, and two tasks loading
    overlapping days wait for each other instead of deadlocking (a merge that still hits a
    deadlock or a serialization failure is rolled back and run again).

    ``date_from``/``date_to`` are the run's window on ``created_at``; each run re-reads
    ``lookback`` before ``date_from`` too, so answers given after the last run (``S`` becoming
    ``P``, ``N`` or ``NS``) update the rows already loaded. The default, two days, is longer than
    customers take to answer (about 24 hours).

    Before any request to eTelecom it checks the connection (PostgreSQL or SQLite), the table name
    and the table (its columns, its key on ``id``; a missing table is created in the merge's
    transaction with ``create_table=True``, else refused). The XCom is
    ``{table, count, written, window}``: consents read, rows inserted or changed (a re-read consent
    whose values are the same is not rewritten), the window read.

    With the OpenLineage provider installed it reports its own datasets: the eTelecom listing in
    (named as by ListConsentsOperator), the table out (``postgres://host:port`` +
    ``database.schema.table``, or ``sqlite://<file>`` + the table) with its SQL schema, the rows
    merged and ``CREATE`` when it created the table; never the staging table
    (:func:`~airflow_provider_etelecom.operators.lineage.build_sql_lineage`).

    The filters and paging arguments (``date_from``, ``date_to``, ``call_type`` ... ``max_pages``,
    listed last) are those of :class:`~airflow_provider_etelecom.client.ConsentFilters` and
    :class:`~airflow_provider_etelecom.client.ConsentPaging`.

    :param sql_conn_id: a ``postgres`` or ``sqlite`` Airflow connection.
    :param table: ``table`` or ``schema.table`` (identifiers, used exactly as written).
    :param create_table: create ``table`` when it does not exist (DDL in docs/warehouse.md).
    :param lookback: how far before ``date_from`` to re-read (``timedelta``; 0 turns it off).
    :param etelecom_conn_id: the eTelecom connection.
    :param timezone: IANA zone for naive ``date_from``/``date_to`` (else they are refused).
    :param batch_size: rows staged per ``COPY``/insert: bounds the memory of a load.
    :param retry_permanent_errors: let Airflow retry failures a retry cannot fix (off by default).
    :param verify: prove the load complete before the merge: list the window again in the other
        order and fail (nothing merged) if that finds a consent the load did not stage (see
        :class:`~airflow_provider_etelecom.operators.list_consents.ListConsentsOperator`). Cost: a
        second listing and 8 bytes per consent. Needs ``max_pages=None``.
    """

    stopped_work = "load"
    template_fields: Sequence[str] = (*FILTER_FIELDS, "table")
    ui_color = "#e3f5e1"

    def __init__(
        self,
        *,
        sql_conn_id: str,
        table: str,
        create_table: bool = False,
        date_from: datetime | str | None = None,
        date_to: datetime | str | None = None,
        lookback: timedelta = DEFAULT_LOOKBACK,
        call_type: str | None = None,
        is_charged: bool | str | None = None,
        oa_id: int | str | None = None,
        phone: str | None = None,
        reason_code: str | None = None,
        reply_status: str | None = None,
        status: str | None = None,
        user_id: int | str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        sort: str | None = None,
        max_pages: int | None = None,
        timezone: str | None = None,
        batch_size: int = 5_000,
        etelecom_conn_id: str = EtelecomHook.default_conn_name,
        retry_permanent_errors: bool = False,
        verify: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sql_conn_id = sql_conn_id
        self.table = table
        self.create_table = create_table
        self.date_from = date_from
        self.date_to = date_to
        self.lookback = _validate_lookback(lookback)
        self.call_type = call_type
        self.is_charged = is_charged
        self.oa_id = oa_id
        self.phone = phone
        self.reason_code = reason_code
        self.reply_status = reply_status
        self.status = status
        self.user_id = user_id
        self.page_size = page_size
        self.sort = sort
        self.max_pages = max_pages
        self.timezone = timezone
        self.batch_size = validate_number("batch_size", batch_size, minimum=1)
        self.etelecom_conn_id = etelecom_conn_id
        self.retry_permanent_errors = validate_retry_permanent_errors(retry_permanent_errors)
        self.verify = self._check_verify(verify)
        if not isinstance(create_table, bool):
            raise EtelecomValidationError(
                f"create_table={create_table!r} must be True or False.", parameter="create_table"
            )
        if not isinstance(sql_conn_id, str) or not sql_conn_id:
            raise EtelecomValidationError(
                f"sql_conn_id={sql_conn_id!r} must name a postgres or sqlite Airflow connection.",
                parameter="sql_conn_id",
            )
        self._check_listing()  # what is known now; templated values are validated once rendered
        if not is_template(table):
            _table(table)
        self._lineage_schema: str | None = None

    @cached_property
    def hook(self) -> EtelecomHook:
        """The hook for ``etelecom_conn_id`` (built on first use, never in ``__init__``)."""
        return EtelecomHook(etelecom_conn_id=self.etelecom_conn_id, timezone=self.timezone)

    def _sql_hook(self) -> tuple[DbApiHook, Dialect]:
        """Return the common.sql hook of ``sql_conn_id`` and its dialect, refusing other databases."""
        try:
            conn = BaseHook.get_connection(self.sql_conn_id)
        except AirflowNotFoundException:
            raise EtelecomValidationError(
                f"sql_conn_id={self.sql_conn_id!r}: no such Airflow connection. Create a postgres or sqlite "
                f"connection with this id.",
                parameter="sql_conn_id",
            ) from None
        dialect = SUPPORTED_CONN_TYPES.get(str(conn.conn_type or "").lower())
        if dialect is None:
            raise EtelecomValidationError(
                f"sql_conn_id={self.sql_conn_id!r} is a {conn.conn_type!r} connection; ConsentsToSqlOperator "
                f"writes to PostgreSQL (conn_type 'postgres') and SQLite ('sqlite') only, because the upsert and "
                f"DDL differ between databases. For a warehouse, export JSON Lines and MERGE them "
                f"(docs/warehouse.md).",
                parameter="sql_conn_id",
            )
        if dialect == "sqlite" and not conn.host and str(conn.schema or "").startswith("/"):
            # SQLAlchemy's 'sqlite:////abs/path.db': Airflow reads an empty Host and Schema '/abs/path.db',
            # which the SQLite provider turns into 'file://abs/...' and sqlite3 refuses ("invalid uri authority").
            raise EtelecomDatabaseError(
                f"sql_conn_id={self.sql_conn_id!r} holds the SQLite path {conn.schema!r} in Schema with an empty "
                f"Host (what the URI 'sqlite:///{conn.schema}' becomes), which the SQLite provider cannot open; "
                f"{_sqlite_forms(self.sql_conn_id)}.",
                kind=FailureKind.PERMANENT.value,
            )
        try:
            if dialect == "postgres":
                from airflow.providers.postgres.hooks.postgres import PostgresHook

                return PostgresHook(postgres_conn_id=self.sql_conn_id), dialect
            from airflow.providers.sqlite.hooks.sqlite import SqliteHook

            return SqliteHook(sqlite_conn_id=self.sql_conn_id), dialect  # type: ignore[no-untyped-call]
        except ImportError as error:
            raise EtelecomValidationError(
                f"sql_conn_id={self.sql_conn_id!r} needs the {dialect} provider: install the provider's sql "
                "extra (from a clone of airflow-provider-etelecom: pip install '.[sql]'; "
                f"after its first release on PyPI: pip install 'airflow-provider-etelecom[sql]') ({error}).",
                parameter="sql_conn_id",
            ) from None

    def _query(self) -> ConsentQuery:
        query = self._listing_query(self.hook)
        if query.date_from is not None and self.lookback:
            query = dataclasses.replace(query, date_from=query.date_from - self.lookback)
        return query

    @with_failure_policy
    def execute(self, context: Context) -> dict[str, Any]:
        """Check the arguments, the connection and the table, then list, stage and merge.

        :return: ``{table, count, written, window}``.
        :raises AirflowFailException: for failures a retry cannot fix (invalid arguments, an
            unknown or unsupported connection, a SQLite file that cannot be opened, a missing or
            mismatched table, a refused key).
        :raises EtelecomDatabaseError: when a PostgreSQL server cannot be reached (retried).
        :raises EtelecomStoppedError: when told to stop (``on_kill``) before the merge.
        """
        self._arm_stop()
        query = self._query()
        table = _table(self.table)
        sql_hook, dialect = self._sql_hook()
        window = {
            "date_from": None if query.date_from is None else format_api_time(query.date_from),
            "date_to": None if query.date_to is None else format_api_time(query.date_to),
        }
        self._lineage_outcome = None
        with _opening_database(self.sql_conn_id, dialect):
            load = _TableLoad(sql_hook, dialect, table, self.create_table, self.log)
        try:
            with _opening_database(self.sql_conn_id, dialect):
                load.check_table()
            self._lineage_schema = load.current_schema
            self._lineage_base_url = self.hook.client.config.base_url
            self.log.info("Loading eTelecom consents (%s) into %s table %s.", query.describe(), dialect, table)
            started = time.monotonic()
            exported = self._exported()
            count = self._stage(load, query, exported)
            self._verify_export(self.hook, query, exported, f"the load into {table}")
            self._check_stop(f"before the merge; nothing was merged and table {self.table!r} is as it was.")
            written = load.merge()
            self._lineage_outcome = SqlLoadOutcome(written, created=self.create_table and not load.table_exists)
        finally:
            load.close()
            self.hook.close()
        worth_a_warning, note = self.hook.client.stats.paging_note()
        if note:
            (self.log.warning if worth_a_warning else self.log.info)("Paging: %s.", note)
        self.log.info(
            "Loaded %d consents into %s in %.1f s: %d rows inserted or changed, %d left as they were (the same "
            "values, stored updated_at newer, or listed twice).",
            count,
            table,
            time.monotonic() - started,
            written,
            count - written,
        )
        return {"table": str(table), "count": count, "written": written, "window": window}

    def _lineage(self, outcome: SqlLoadOutcome | None) -> OperatorLineage[Dataset, RunFacet]:
        """Build the lineage: the listing in, the table out (never the staging table), none if it has no name."""
        try:
            naming = self._table_naming()
        except Exception as error:  # an unknown or unsupported connection, a bad table: nothing to name
            self.log.debug("The SQL dataset cannot be named for lineage: %s", error)
            naming = None
        lineage = build_sql_lineage(
            base_url=self._listing_base_url(),
            etelecom_conn_id=self.etelecom_conn_id,
            namespace=naming[0] if naming else "",
            name=naming[1] if naming else "",
            column_types=sql_table.column_types(naming[2] if naming else "postgres"),
            outcome=outcome,
        )
        if naming is None:
            lineage.outputs = []
        return lineage

    def _table_naming(self) -> tuple[str, str, Dialect]:
        """OpenLineage ``(namespace, name, dialect)`` of ``table``, as the OpenLineage provider names SQL tables."""
        table = _table(self.table)
        conn = BaseHook.get_connection(self.sql_conn_id)
        dialect = SUPPORTED_CONN_TYPES[str(conn.conn_type or "").lower()]
        if dialect == "sqlite":
            return (*sqlite_dataset_naming(str(conn.host or ""), str(table)), dialect)
        from airflow.providers.common.sql.hooks.sql import DbApiHook

        authority = DbApiHook.get_openlineage_authority_part(conn, default_port=5432)
        database = conn.schema or conn.login or "postgres"  # libpq's default database is the user's name
        schema = table.schema or self._lineage_schema or self._postgres_current_schema()
        return (*postgres_dataset_naming(authority, database, schema, table.name), dialect)

    def _postgres_current_schema(self) -> str:
        """The schema an unqualified table resolves to (at start, before ``execute`` looked); ``public`` if unknown."""
        try:
            sql_hook, _ = self._sql_hook()
            conn = sql_hook.get_conn()
            try:
                cursor = conn.cursor()
                cursor.execute("SELECT current_schema()")
                row = cursor.fetchone()
            finally:
                conn.close()
        except Exception as error:  # lineage only: the load itself reports a connection that fails
            self.log.debug("Reading current_schema() for lineage failed (%s); naming the table in 'public'.", error)
            return "public"
        self._lineage_schema = str(row[0]) if row and row[0] else "public"
        return self._lineage_schema

    def _stage(self, load: _TableLoad, query: ConsentQuery, exported: SeenIds | None) -> int:
        count = 0
        batch: list[Consent] = []
        unknown: set[str] = set()
        known = frozenset(CONSENT_FIELD_NAMES)
        with self._pages(query) as pages:
            for page in pages:
                self._check_stop(f"after {count} consents; nothing was merged and table {self.table!r} is as it was.")
                for consent in page["consents"]:
                    if not known.issuperset(consent):
                        unknown.update(consent.keys() - known)
                batch.extend(page["consents"])
                if exported is not None:
                    exported.add_new(c["id"] for c in page["consents"])
                count += len(page["consents"])
                if len(batch) >= self.batch_size:
                    load.stage_consents(batch)
                    batch = []
        load.stage_consents(batch)
        if unknown:
            self.log.warning(
                "The API sent fields the consents table has no column for (not loaded): %s.", ", ".join(sorted(unknown))
            )
        return count

    @contextmanager
    def _pages(self, query: ConsentQuery) -> Iterator[Iterator[ConsentPage]]:
        pages = self.hook.iter_query_pages(query)
        try:
            yield pages
        finally:
            close = getattr(pages, "close", None)
            if callable(close):
                close()


ConsentsToSqlOperator.__doc__ = with_listing_params(ConsentsToSqlOperator.__doc__)
