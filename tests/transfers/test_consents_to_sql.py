"""ConsentsToSqlOperator against a real PostgreSQL server and SQLite, over the simulator."""

from __future__ import annotations

import itertools
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_etelecom.client.models import CONSENT_FIELD_NAMES
from airflow_provider_etelecom.client.validation import FILTER_MARGIN
from airflow_provider_etelecom.exceptions import (
    EtelecomDatabaseError,
    EtelecomError,
    EtelecomStoppedError,
    EtelecomValidationError,
)
from airflow_provider_etelecom.testing import EtelecomSimulator
from airflow_provider_etelecom.transfers import consents_to_sql as module
from airflow_provider_etelecom.transfers import sql_table
from airflow_provider_etelecom.transfers.consents_to_sql import ConsentsToSqlOperator
from tests.conftest import SECRET_KEY
from tests.transfers.conftest import connect

LIST = "Zalo/ListRequestConsent"
COLUMNS = CONSENT_FIELD_NAMES
TIMES = ("delivery_time", "created_at", "updated_at", "expires_at")


def expected_row(consent: dict[str, Any]) -> dict[str, Any]:
    """What the table must hold for a consent the simulator served (written apart from the operator)."""
    row: dict[str, Any] = {}
    for name in COLUMNS:
        value = consent.get(name)
        if name in TIMES and value is not None:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            value = None if moment.year == 1 else moment
        elif name == "error_code" and value is not None:
            value = int(value)
        row[name] = value
    return row


class Db:
    """One of the two databases, read back independently of the operator."""

    def __init__(self, dialect: str, conn: Any) -> None:
        self.dialect = dialect
        self.conn = conn

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        cursor = self.conn.cursor()
        cursor.execute(sql)
        rows = cursor.fetchall() if cursor.description else []
        cursor.close()
        return rows

    def rows(self, table: str = "consents") -> dict[str, dict[str, Any]]:
        names = ", ".join(f'"{c}"' for c in COLUMNS)
        quoted = ".".join(f'"{part}"' for part in table.split("."))
        result = {}
        for values in self.execute(f"SELECT {names} FROM {quoted}"):
            row = dict(zip(COLUMNS, values, strict=True))
            if self.dialect == "sqlite":
                for name in TIMES:
                    if row[name] is not None:
                        assert len(row[name]) == 27, row[name]  # fixed width: text order is time order
                        row[name] = datetime.fromisoformat(row[name].replace("Z", "+00:00"))
                if row["is_charged"] is not None:
                    row["is_charged"] = bool(row["is_charged"])
            result[row["id"]] = row
        return result

    def create(self, table: str = "consents") -> None:
        name = sql_table.parse_table_name(table)
        self.execute(sql_table.create_table_sql(self.dialect, name))  # type: ignore[arg-type]


@pytest.fixture
def sqlite_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Db]:
    path = tmp_path / "warehouse.db"
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    conn = sqlite3.connect(path, isolation_level=None)
    yield Db("sqlite", conn)
    conn.close()


@pytest.fixture(params=["postgres", "sqlite"])
def db(request: pytest.FixtureRequest) -> Db:
    if request.param == "postgres":
        return Db("postgres", request.getfixturevalue("postgres_db"))
    return request.getfixturevalue("sqlite_db")


@pytest.fixture
def pg(postgres_db: Any) -> Db:
    return Db("postgres", postgres_db)


def load(**kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"task_id": "load", "sql_conn_id": "warehouse", "table": "consents", **kwargs}
    return ConsentsToSqlOperator(**options).execute({})  # type: ignore[arg-type]


def set_etelecom(monkeypatch: pytest.MonkeyPatch, sim: EtelecomSimulator, conn_id: str = "etelecom_default") -> None:
    conn = {"conn_type": "etelecom", "host": sim.base_url, "password": sim.api_key, "extra": {"max_retries": 0}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def served(sim: EtelecomSimulator) -> dict[str, dict[str, Any]]:
    return {c["id"]: expected_row(c) for c in sim.consents()}


# -- loading and the newer-or-equal rule -----------------------------------------------------------


def test_every_value_is_what_the_simulator_served(db: Db, etelecom_connection: EtelecomSimulator) -> None:
    sim = etelecom_connection
    sim.add_consent(error_message="tab\there\nnew line \\ back \\N", error_code=-213, is_charged=False)
    result = load(create_table=True, batch_size=64)
    expected = served(sim)
    assert result["count"] == result["written"] == len(expected) == 501
    assert db.rows() == expected


def test_verify_lists_the_window_again_before_the_merge(db: Db, etelecom_connection: EtelecomSimulator) -> None:
    """The opt-in proof (finding 3): a second listing in the other order, then the merge."""
    sim = etelecom_connection
    result = load(create_table=True, verify=True)
    assert result["count"] == len(db.rows()) == 500
    sorts = [e["body"]["paging"].get("sort") for e in sim.requests_log if e["method"] == "Zalo/ListRequestConsent"]
    assert sorts[0] is None and sorts[-1] == "created_at"
    with pytest.raises(EtelecomValidationError, match="max_pages") as raised:
        ConsentsToSqlOperator(task_id="load", sql_conn_id="warehouse", table="consents", verify=True, max_pages=1)
    assert raised.value.parameter == "verify"


def test_times_pass_as_the_api_text_and_the_zero_time_is_null(db: Db, etelecom_connection: EtelecomSimulator) -> None:
    # Batches the fast COPY path takes (the API's time text handed to PostgreSQL as is) and one it
    # cannot (a field left out): both store the same values, the zero time as NULL.
    sim = etelecom_connection
    for _ in range(3):
        sim.add_consent(delivery_time="0001-01-01T00:00:00Z", updated_at="2026-01-01T10:00:00.25Z")
    sim.add_consent(omit_fields=["delivery_time"], updated_at="2026-01-01T10:00:00.000001Z")
    result = load(create_table=True, batch_size=100)
    expected = served(sim)
    assert [c.get("delivery_time") for c in sim.consents()].count("0001-01-01T00:00:00Z") == 3
    assert result["written"] == len(expected) == 504
    assert db.rows() == expected


def test_newer_or_equal_updated_at_replaces_and_older_never_does(
    db: Db, etelecom_connection: EtelecomSimulator
) -> None:
    sim = etelecom_connection
    load(create_table=True)
    waiting = [c for c in sim.consents() if c["reply_status"] == "S" and c["status"] == "P"]
    answered, equal, newer_stored = waiting[0]["id"], waiting[1]["id"], waiting[2]["id"]
    sim.reply(answered, "P")
    db.execute(f"UPDATE consents SET reply_status = 'edited' WHERE id IN ('{equal}', '{newer_stored}')")
    future = "2999-01-01T00:00:00.000000Z" if db.dialect == "sqlite" else "2999-01-01T00:00:00Z"
    db.execute(f"UPDATE consents SET updated_at = '{future}' WHERE id = '{newer_stored}'")
    result = load()
    rows = db.rows()
    assert rows[answered] == expected_row(sim.consent(answered))  # type: ignore[arg-type]
    assert rows[answered]["reply_status"] == "P"
    assert rows[equal]["reply_status"] == "S"  # equal updated_at: replaced
    assert rows[newer_stored]["reply_status"] == "edited"  # stored is newer: kept
    assert result["written"] == 2  # answered and equal; the 497 rows with the same values are not rewritten


def rewritten_ids(db: Db, reload: Any) -> set[str]:
    """Run ``reload`` and return the ids of the rows it wrote (PostgreSQL: a new ``xmin``; SQLite: a trigger)."""
    if db.dialect == "postgres":
        before = dict(db.execute("SELECT id, xmin::text FROM consents"))
        reload()
        return {i for i, xmin in db.execute("SELECT id, xmin::text FROM consents") if before.get(i) != xmin}
    db.execute("CREATE TABLE IF NOT EXISTS rewritten (id TEXT)")
    db.execute("DELETE FROM rewritten")
    for name, event in (("seen", "UPDATE"), ("added", "INSERT")):
        db.execute(
            f"CREATE TRIGGER IF NOT EXISTS {name} AFTER {event} ON consents BEGIN "
            f"INSERT INTO rewritten VALUES (new.id); END"
        )
    reload()
    return {i for (i,) in db.execute("SELECT id FROM rewritten")}


def test_a_reload_rewrites_only_the_rows_whose_values_changed(db: Db, etelecom_connection: EtelecomSimulator) -> None:
    # A lookback re-reads every consent of its days: the unchanged ones must cost no new row version.
    sim = etelecom_connection
    load(create_table=True)
    waiting = [c["id"] for c in sim.consents() if c["reply_status"] == "S" and c["status"] == "P"]
    sim.reply(waiting[0], "N")  # newer updated_at, new values
    edited, nulled = waiting[1], waiting[2]
    db.execute(f"UPDATE consents SET reply_status = 'edited' WHERE id = '{edited}'")  # same updated_at, other values
    db.execute(f"UPDATE consents SET shop_id = NULL WHERE id = '{nulled}'")  # a NULL differs from a value
    added = sim.add_consent()["id"]
    results: list[dict[str, Any]] = []
    assert rewritten_ids(db, lambda: results.append(load(batch_size=64))) == {waiting[0], edited, nulled, added}
    assert results[0]["count"] == 501
    assert results[0]["written"] == 4
    assert db.rows() == served(sim)  # the last write wins: every row is what the platform serves now
    assert rewritten_ids(db, lambda: results.append(load())) == set()  # the same listing again: nothing written
    assert results[1]["written"] == 0
    assert db.rows() == served(sim)


def test_a_replayed_old_export_never_overwrites_a_newer_answer(
    db: Db, etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = etelecom_connection
    before = sim.consents(exact=True)
    waiting = [c["id"] for c in before if c["reply_status"] == "S" and c["status"] == "P"][:5]
    for consent_id in waiting:
        sim.reply(consent_id, "N")
    load(create_table=True)
    with EtelecomSimulator(consents=0, api_key=SECRET_KEY) as old:
        for consent in before:
            old.add_consent(**consent)
        set_etelecom(monkeypatch, old, "etelecom_replay")
        result = load(etelecom_conn_id="etelecom_replay")
    assert result["count"] == 500
    assert result["written"] == 0  # the 5 answered are newer in the table; the other rows hold the same values
    rows = db.rows()
    assert [rows[i]["reply_status"] for i in waiting] == ["N"] * len(waiting)
    assert rows == served(sim)


def test_lookback_rereads_the_last_days_so_late_answers_update_rows(
    db: Db, etelecom_connection: EtelecomSimulator
) -> None:
    sim = etelecom_connection
    end = sim.now().replace(microsecond=0) - timedelta(hours=1)
    late = sim.add_consent(created_at=end - timedelta(hours=5), reply_status="S", status="P")  # within the reply window
    window = {"date_from": (end - timedelta(days=1)).isoformat(), "date_to": end.isoformat()}
    load(create_table=True, lookback=timedelta(0), **window)
    assert db.rows()[late["id"]]["reply_status"] == "S"
    sim.reply(late["id"], "P")
    next_day = {"date_from": end.isoformat(), "date_to": (end + timedelta(days=1)).isoformat()}
    load(lookback=timedelta(0), **next_day)
    assert db.rows()[late["id"]]["reply_status"] == "S"  # without lookback, the late answer is missed
    sim.reset_stats()
    result = load(**next_day)  # the default lookback, two days
    assert db.rows()[late["id"]] == expected_row(sim.consent(late["id"]))  # type: ignore[arg-type]
    assert db.rows()[late["id"]]["reply_status"] == "P"
    assert result["window"]["date_from"] == (end - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sent = sim.requests_log[0]["body"]["filter"]["date_from"]
    assert sent == (end - timedelta(days=2) - FILTER_MARGIN).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_schema_qualified_table(db: Db, etelecom_connection: EtelecomSimulator) -> None:
    table = "analytics.consents" if db.dialect == "postgres" else "main.consents"
    if db.dialect == "postgres":
        db.execute("CREATE SCHEMA analytics")
    load(table=table, create_table=True)
    assert db.rows(table) == served(etelecom_connection)


# -- a failed or stopped run leaves the table as it was -----------------------------------------------


def load_then_answer(db: Db, sim: EtelecomSimulator) -> dict[str, dict[str, Any]]:
    """Load a table once, then answer on the platform what a next run would bring in; return the table."""
    load(create_table=True)
    for consent in [c for c in sim.consents() if c["reply_status"] == "S" and c["status"] == "P"][:20]:
        sim.reply(consent["id"], "P")
    return db.rows()


@pytest.fixture
def loaded(db: Db, etelecom_connection: EtelecomSimulator) -> dict[str, dict[str, Any]]:
    return load_then_answer(db, etelecom_connection)


def test_a_run_that_fails_mid_listing_leaves_the_table_as_it_was(
    db: Db, loaded: dict[str, Any], etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = etelecom_connection
    set_etelecom(monkeypatch, sim)
    sim.script_faults(["none", "none", "none", "503"])
    with pytest.raises(EtelecomError):
        load(batch_size=50)
    assert db.rows() == loaded


def test_a_stopped_run_merges_nothing(
    db: Db, loaded: dict[str, Any], etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    op = ConsentsToSqlOperator(task_id="load", sql_conn_id="warehouse", table="consents", batch_size=100)
    real_stage = module._TableLoad.stage_consents
    staged: list[int] = []

    def stage_then_kill(self: Any, consents: Any) -> None:
        real_stage(self, consents)
        staged.append(len(consents))
        op.on_kill()  # what Airflow does on SIGTERM, while execute goes on

    monkeypatch.setattr(module._TableLoad, "stage_consents", stage_then_kill)
    with pytest.raises(EtelecomStoppedError, match="nothing was merged"):
        op.execute({})  # type: ignore[arg-type]
    assert staged == [100]
    assert db.rows() == loaded


def test_a_failing_merge_is_rolled_back_whole(pg: Db, etelecom_connection: EtelecomSimulator) -> None:
    loaded = load_then_answer(pg, etelecom_connection)
    pg.execute(
        "CREATE FUNCTION fail_late() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.reply_status = 'P' AND OLD.reply_status = 'S' THEN RAISE EXCEPTION 'refused by a trigger'; "
        "END IF; RETURN NEW; END $$"
    )
    pg.execute("CREATE TRIGGER fail_late BEFORE UPDATE ON consents FOR EACH ROW EXECUTE FUNCTION fail_late()")
    with pytest.raises(Exception, match="refused by a trigger"):
        load()
    assert pg.rows() == loaded


def test_a_merge_that_hits_a_deadlock_is_retried(
    pg: Db, etelecom_connection: EtelecomSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    pg.create()
    pg.execute("CREATE SEQUENCE attempts")
    pg.execute(
        "CREATE FUNCTION deadlock_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF nextval('attempts') = 1 THEN RAISE EXCEPTION 'simulated deadlock' USING ERRCODE = 'deadlock_detected'; "
        "END IF; RETURN NULL; END $$"
    )
    pg.execute(
        "CREATE TRIGGER deadlock_once AFTER INSERT ON consents FOR EACH STATEMENT EXECUTE FUNCTION deadlock_once()"
    )
    caplog.set_level(logging.WARNING)
    result = load()
    assert pg.execute("SELECT last_value FROM attempts") == [(2,)]
    assert result["written"] == 500
    assert pg.rows() == served(etelecom_connection)


def test_overlapping_mapped_days_load_at_once_without_deadlock(
    pg: Db, etelecom_connection: EtelecomSimulator, postgres_server: Any
) -> None:
    """Two mapped days whose lookbacks overlap merge the same ids at the same moment."""
    sim = etelecom_connection
    pg.create()
    dbname = pg.execute("SELECT current_database()")[0][0]
    holder = connect(postgres_server, dbname)
    holder.cursor().execute("LOCK TABLE consents IN SHARE MODE")  # the merges queue behind it, then go together
    days = sorted({c["created_at"][:10] for c in sim.consents()})[-4:]
    windows = [(days[0], days[2]), (days[1], days[3])]
    results: list[Any] = []
    # Built here: Airflow 2 cannot construct an operator outside the main thread.
    ops = [
        ConsentsToSqlOperator(
            task_id=f"load_{start}",
            sql_conn_id="warehouse",
            table="consents",
            date_from=f"{start}T00:00:00Z",
            date_to=f"{end}T00:00:00Z",
            lookback=timedelta(days=1),
        )
        for start, end in windows
    ]

    def run(op: ConsentsToSqlOperator) -> None:
        try:
            with suppress(ImportError):  # Airflow 2's execute guard keeps per-thread state made on import
                from airflow.models.baseoperator import ExecutorSafeguard

                ExecutorSafeguard._sentinel.callers = {}
            results.append(op.execute({}))  # type: ignore[arg-type]
        except BaseException as error:
            results.append(error)

    threads = [threading.Thread(target=run, args=(op,)) for op in ops]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while pg.execute("SELECT count(*) FROM pg_locks WHERE relation = 'consents'::regclass AND NOT granted")[0][0] < 2:
        assert time.monotonic() < deadline, results
        time.sleep(0.01)  # polling a condition, bounded by the deadline above
    holder.rollback()
    holder.close()
    for thread in threads:
        thread.join(60)
    assert all(isinstance(r, dict) for r in results), results
    first = datetime.fromisoformat(f"{days[0]}T00:00:00+00:00") - timedelta(days=1)
    last = datetime.fromisoformat(f"{days[3]}T00:00:00+00:00")
    expected = {i: row for i, row in served(sim).items() if first <= row["created_at"] < last}
    assert pg.rows() == expected
    assert sum(r["count"] for r in results) > len(expected)  # the windows did overlap


# -- bad input: a clear error before any request ------------------------------------------------------


@pytest.mark.parametrize("table", ["consents; drop table x", "a.b.c", "1consents", '"consents"', "", "x" * 64, 7])
def test_a_table_name_that_is_not_an_identifier_is_refused_at_parse_time(table: Any) -> None:
    with pytest.raises(EtelecomValidationError, match="table=") as error:
        ConsentsToSqlOperator(task_id="load", sql_conn_id="warehouse", table=table)
    assert error.value.parameter == "table"


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"lookback": 2}, "lookback"),
        ({"lookback": timedelta(days=-1)}, "lookback"),
        ({"create_table": "yes"}, "create_table"),
        ({"batch_size": 0}, "batch_size"),
        ({"sql_conn_id": ""}, "sql_conn_id"),
        ({"date_from": "yesterday"}, "date_from"),
        ({"reply_status": "Z"}, "reply_status"),
    ],
)
def test_invalid_arguments_are_refused_at_parse_time(kwargs: dict[str, Any], parameter: str) -> None:
    options = {"task_id": "load", "sql_conn_id": "warehouse", "table": "consents", **kwargs}
    with pytest.raises(EtelecomValidationError) as error:
        ConsentsToSqlOperator(**options)
    assert error.value.parameter == parameter


def refused_before_any_request(sim: EtelecomSimulator, match: str, **kwargs: Any) -> str:
    with pytest.raises(AirflowFailException, match=match) as error:
        load(**kwargs)
    assert sim.requests_log == []
    return str(error.value)


def test_a_missing_table_is_an_error_without_create_table(db: Db, etelecom_connection: EtelecomSimulator) -> None:
    message = refused_before_any_request(etelecom_connection, "does not exist")
    assert "create_table=True" in message


def test_create_table_makes_the_documented_table(db: Db, etelecom_connection: EtelecomSimulator) -> None:
    load(create_table=True)
    if db.dialect == "postgres":
        types = db.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'consents' "
            "ORDER BY ordinal_position"
        )
        assert types[0] == ("id", "text")
        assert dict(types)["updated_at"] == "timestamp with time zone"
        assert dict(types)["is_charged"] == "boolean"
        assert dict(types)["error_code"] == "bigint"
        # The id compares bytes (the merge's sort and the primary key), not the database's language.
        assert db.execute(
            "SELECT collation_name FROM information_schema.columns WHERE table_name = 'consents' AND column_name = 'id'"
        ) == [("C",)]
        assert db.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'etelecom_stage_%'") == [(0,)]
    else:
        info = db.execute("PRAGMA table_info(consents)")
        assert [row[1] for row in info] == list(COLUMNS)
        assert [row[1] for row in info if row[5]] == ["id"]
    assert len(db.rows()) == 500


def test_a_postgres_table_with_the_database_collation_on_id_loads_alike(
    pg: Db, etelecom_connection: EtelecomSimulator
) -> None:
    """A table whose ``id`` has a language's collation (made before ``COLLATE "C"`` was in the DDL) loads the same."""
    # A collation other than "C" whatever the server's default is: ICU's root locale, else glibc's C.UTF-8.
    found = pg.execute(
        "SELECT collname FROM pg_collation WHERE collname IN ('und-x-icu', 'C.utf8') ORDER BY collname DESC"
    )
    assert found, "neither ICU's und-x-icu nor glibc's C.utf8 collation is on this server"
    collation = found[0][0]
    pg.create("template")
    pg.execute("CREATE TABLE consents (LIKE template INCLUDING ALL)")
    pg.execute(f'ALTER TABLE consents ALTER COLUMN id TYPE text COLLATE "{collation}"')
    assert pg.execute(
        "SELECT collation_name FROM information_schema.columns WHERE table_name = 'consents' AND column_name = 'id'"
    ) == [(collation,)]
    first = load()
    assert first["written"] == 500
    assert pg.rows() == served(etelecom_connection)
    waiting = [c["id"] for c in etelecom_connection.consents() if c["reply_status"] == "S" and c["status"] == "P"]
    etelecom_connection.reply(waiting[0], "P")
    again = load()
    assert again["written"] == 1
    assert pg.rows() == served(etelecom_connection)


def test_the_docs_show_the_ddl_create_table_runs() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "warehouse.md").read_text(encoding="utf-8")
    for dialect in ("postgres", "sqlite"):
        assert sql_table.create_table_sql(dialect, sql_table.parse_table_name("etelecom_consents")) in page


@pytest.mark.parametrize(
    ("ddl", "match"),
    [
        ("CREATE TABLE consents (id text PRIMARY KEY, reply_status text)", "missing columns shop_id"),
        ("CREATE TABLE consents AS SELECT * FROM template", "neither the primary key nor unique"),
        ("ALTER TABLE template ADD COLUMN owner text NOT NULL; CREATE TABLE consents (LIKE template)", "owner"),
    ],
)
def test_a_table_whose_columns_do_not_match_is_refused(
    pg: Db, etelecom_connection: EtelecomSimulator, ddl: str, match: str
) -> None:
    pg.create("template")
    pg.execute(ddl)
    refused_before_any_request(etelecom_connection, match)


def test_a_postgres_column_of_the_wrong_type_is_refused(pg: Db, etelecom_connection: EtelecomSimulator) -> None:
    pg.create()
    pg.execute("ALTER TABLE consents ALTER COLUMN updated_at TYPE timestamp")
    refused_before_any_request(etelecom_connection, "column updated_at is timestamp without time zone")


def test_a_sqlite_table_missing_columns_is_refused(sqlite_db: Db, etelecom_connection: EtelecomSimulator) -> None:
    sqlite_db.execute("CREATE TABLE consents (id TEXT PRIMARY KEY, updated_at TEXT)")
    refused_before_any_request(etelecom_connection, "missing columns shop_id")


def test_a_missing_postgres_schema_is_named(pg: Db, etelecom_connection: EtelecomSimulator) -> None:
    refused_before_any_request(
        etelecom_connection, "schema 'nowhere' does not exist", table="nowhere.consents", create_table=True
    )


def test_an_unknown_connection_is_named(etelecom_connection: EtelecomSimulator) -> None:
    refused_before_any_request(
        etelecom_connection, "sql_conn_id='no_such_db': no such Airflow connection", sql_conn_id="no_such_db"
    )


def test_another_database_is_refused_naming_the_two_that_work(
    etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "mysql", "host": "127.0.0.1"}))
    message = refused_before_any_request(etelecom_connection, "'mysql' connection")
    assert "PostgreSQL (conn_type 'postgres') and SQLite ('sqlite')" in message


def test_the_sqlalchemy_sqlite_uri_is_refused_naming_sql_conn_id_and_the_forms_that_work(
    etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``sqlite:////abs/path.db`` (SQLAlchemy's form) reached sqlite3 as ``file://abs/...``: "invalid uri authority"."""
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", f"sqlite:///{tmp_path}/warehouse.db")
    message = refused_before_any_request(etelecom_connection, "sql_conn_id='warehouse'", create_table=True)
    assert "invalid uri authority" not in message
    assert f"'sqlite:///{tmp_path}/warehouse.db'" in message  # what the user typed
    assert """AIRFLOW_CONN_WAREHOUSE='{"conn_type": "sqlite", "host": "/data/consents.db"}'""" in message
    assert "'sqlite://%2Fdata%2Fconsents.db'" in message
    assert not (tmp_path / "warehouse.db").exists()


@pytest.mark.parametrize(
    ("what", "make"),
    [
        ("a folder that does not exist", lambda tmp: tmp / "no" / "such" / "folder" / "warehouse.db"),
        ("a folder, not a file", lambda tmp: tmp),
        (
            "a file that is not a database",
            lambda tmp: (tmp / "notes.db").write_text("not sqlite" * 100) and tmp / "notes.db",
        ),
    ],
)
def test_a_sqlite_file_that_cannot_be_opened_is_named_before_any_request(
    etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, what: str, make: Any
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(make(tmp_path))}))
    message = refused_before_any_request(
        etelecom_connection, "sql_conn_id='warehouse': the SQLite database", create_table=True
    )
    assert "absolute path in Host (its folder must exist)" in message, what


@pytest.mark.parametrize(
    "form",
    [
        lambda path: json.dumps({"conn_type": "sqlite", "host": str(path)}),
        lambda path: "sqlite://" + quote(str(path), safe=""),
    ],
    ids=["json", "uri"],
)
def test_the_sqlite_connection_forms_the_errors_advise_load(
    etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, form: Any
) -> None:
    path = tmp_path / "warehouse.db"
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", form(path))
    result = load(create_table=True)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM consents").fetchone()[0] == result["count"] == 500


def test_an_unreachable_postgres_is_named_and_left_to_airflow_retries(
    etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conn = {"conn_type": "postgres", "host": "127.0.0.1", "port": port, "login": "etl", "schema": "warehouse"}
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps(conn))
    with pytest.raises(EtelecomDatabaseError, match="sql_conn_id='warehouse': the PostgreSQL database") as raised:
        load()
    assert raised.value.kind == "transient"  # not AirflowFailException: a server that is down may come back
    assert etelecom_connection.requests_log == []


SQLITE_URI_DAG = """
from datetime import datetime, timezone

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_etelecom.transfers.consents_to_sql import ConsentsToSqlOperator

with DAG(dag_id="etelecom_sqlite_uri", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)) as dag:
    ConsentsToSqlOperator(task_id="load", sql_conn_id="warehouse", table="consents", create_table=True, retries=3)
"""


def test_a_task_given_the_sqlalchemy_sqlite_uri_fails_once_without_retries(
    airflow_db: str, etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The URI form users type, in a real task run: failed at once (no retry), and no request sent."""
    import os
    import runpy

    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", f"sqlite:///{tmp_path}/warehouse.db")
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "etelecom_sqlite_uri.py"  # Airflow 3's dag.test() re-parses the file
    path.write_text(SQLITE_URI_DAG)
    run = runpy.run_path(str(path))["dag"].test()
    assert str(run.state) in ("failed", "DagRunState.FAILED")
    (ti,) = run.get_task_instances()
    assert str(ti.state) in ("failed", "TaskInstanceState.FAILED")  # not up_for_retry: retries=3 unused
    assert etelecom_connection.requests_log == []


def test_a_rendered_bad_table_is_refused_before_any_request(etelecom_connection: EtelecomSimulator) -> None:
    op = ConsentsToSqlOperator(task_id="load", sql_conn_id="warehouse", table="{{ params.table }}")
    op.table = "bad name"  # what rendering would leave
    with pytest.raises(AirflowFailException, match="table='bad name'"):
        op.execute({})  # type: ignore[arg-type]
    assert etelecom_connection.requests_log == []


# -- dynamic task mapping ---------------------------------------------------------------------------

MAPPED_DAG = """
import json
from datetime import datetime, timedelta, timezone

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator
from airflow_provider_etelecom.transfers.consents_to_sql import ConsentsToSqlOperator
from airflow_provider_etelecom.windows import split_windows

WINDOWS = split_windows({start!r}, {end!r}, "1d")

with DAG(dag_id="etelecom_mapped_windows", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)) as dag:
    listed = ListConsentsOperator.partial(task_id="list", reply_status="P").expand_kwargs(WINDOWS)
    loaded = ConsentsToSqlOperator.partial(
        task_id="load", sql_conn_id="warehouse", table="consents", lookback=timedelta(0), reply_status="P"
    ).expand_kwargs(WINDOWS)

    @task
    def record(listed, loaded):
        with open({out!r}, "w") as handle:
            json.dump({{"listed": list(listed), "loaded": list(loaded)}}, handle)

    record(listed.output, loaded.output)
"""


def test_both_operators_map_over_split_windows_in_a_dag_run(
    airflow_db: str, sqlite_db: Db, etelecom_connection: EtelecomSimulator, tmp_path: Path
) -> None:
    """``partial().expand_kwargs(split_windows(...))`` reaches the explicit filter parameters of both operators."""
    import os
    import runpy

    sim = etelecom_connection
    sqlite_db.create()
    days = sorted({c["created_at"][:10] for c in sim.consents()})[-3:]
    start, end = f"{days[0]}T00:00:00Z", f"{days[2]}T00:00:00Z"
    out = tmp_path / "mapped.json"
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "etelecom_mapped_windows.py"  # Airflow 3's dag.test() re-parses the file
    path.write_text(MAPPED_DAG.format(start=start, end=end, out=str(out)))
    run = runpy.run_path(str(path))["dag"].test()
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    outputs = json.loads(out.read_text())
    windows = [(f"{day}T00:00:00Z", f"{later}T00:00:00Z") for day, later in itertools.pairwise(days)]
    for window, listed, loaded in zip(windows, outputs["listed"], outputs["loaded"], strict=True):
        expected = [c for c in sim.consents() if window[0] <= c["created_at"] < window[1] and c["reply_status"] == "P"]
        assert expected
        assert sorted(c["id"] for c in listed) == sorted(c["id"] for c in expected)
        assert loaded["count"] == loaded["written"] == len(expected)
        assert (loaded["window"]["date_from"], loaded["window"]["date_to"]) == window
    assert len(outputs["listed"]) == len(outputs["loaded"]) == 2
    loaded_rows = sqlite_db.rows()
    assert set(loaded_rows) == {c["id"] for listed in outputs["listed"] for c in listed}
