"""Test set-up shared by the whole suite.

Airflow reads ``AIRFLOW_HOME`` when it is first imported, so the throwaway home is set here, at
import time, before any test module imports Airflow; the metadata database is created once per
session, and only for the tests that need it (``airflow_db`` fixture, or any ``dag.test()``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

_HOME = tempfile.mkdtemp(prefix="etelecom-airflow-home-")
os.environ["AIRFLOW_HOME"] = _HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
# Set, not defaulted: pytest-xdist's workers inherit the controller's environment, and the tests
# write DAG files by name into this folder (the same names in several modules), which
# Airflow 3's dag.test() parses whole: each process gets its own.
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = os.path.join(_HOME, "dags")
os.environ.pop("AIRFLOW_CONN_ETELECOM_DEFAULT", None)

pytest_plugins = ["airflow_provider_etelecom.testing.pytest_plugin"]

#: A recognisable key: long enough for Airflow's secrets masker (it skips secrets under 5 chars),
#: and easy to grep for in logs, exceptions and XComs.
SECRET_KEY = "etl-SECRET-key-7f3a9c1e5b"
#: The test property under which a contract detector records what it found on the real platform
#: (tests/contract/conftest.py). Properties travel from pytest-xdist's workers to the main process,
#: which prints them at the end of the run ("eTelecom platform findings").
PLATFORM_FINDING = "etelecom_platform_finding"
_FINDINGS: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests marked ``slow`` first (otherwise in collection order).

    ``scripts/test`` spreads the suite over the machine's cores (pytest-xdist, ``--dist worksteal``):
    a long test started last would run alone while the other workers wait for it.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` (``scripts/test``'s default): a worker per core, plus one.

    Part of the suite waits (simulated latency, retry back-off, poke intervals), so one worker
    more than cores keeps them busy: on 2 cores 3 workers took 3 to 16% less time than 2 on
    Airflow 3.3.2, about 15% less on 2.11.2. ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still overrides it.
    """
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # pytest-xdist's own reading of it
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores + 1


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":  # later phases' reports carry the item's properties again
        _FINDINGS.extend(str(value) for name, value in report.user_properties if name == PLATFORM_FINDING)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print what the detectors found on the real platform, so the first real run settles each unknown."""
    if _FINDINGS:
        terminalreporter.section("eTelecom platform findings")
        for line in _FINDINGS:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[str]:
    """Create Airflow's metadata database once per session (SQLite in the throwaway home)."""
    from airflow.utils import db

    db.resetdb()
    yield _HOME


def pytest_addoption(parser: pytest.Parser) -> None:
    from airflow_provider_etelecom.testing import PLATFORM_VARIANTS

    parser.addoption(
        "--platform-variant",
        choices=sorted(PLATFORM_VARIANTS),
        default=None,
        help="start every etelecom_simulator with this PLATFORM_VARIANTS entry (e.g. the sensor and "
        "trigger suites under each READING_VARIANTS entry)",
    )


@pytest.fixture
def platform_variant(request: pytest.FixtureRequest) -> str | None:
    """The ``--platform-variant`` the suite runs under (``None``: the simulator's defaults)."""
    variant: str | None = request.config.getoption("--platform-variant")
    return variant


@pytest.fixture
def sort_probe_requests(platform_variant: str | None) -> range:
    """Requests a wait may spend learning that ``sort=-updated_at`` is refused or ignored.

    A refused sort costs its one 400. An ignored one costs the page that shows it out of order, if
    a page does: with every timestamp in one second there is nothing to see, so 0 or 1.
    """
    from airflow_provider_etelecom.testing import PLATFORM_VARIANTS, SORTS

    variant = PLATFORM_VARIANTS.get(platform_variant or "", {})
    if "-updated_at" not in variant.get("accepted_sorts", SORTS):  # type: ignore[operator]
        return range(1, 2)
    return range(0, 2) if "-updated_at" in variant.get("ignored_sorts", ()) else range(0, 1)  # type: ignore[operator]


def cursor_lesson_requests(sim: Any, page_size: int = 100) -> int:
    """The ``ListRequestConsent`` requests a client spent learning what the cursor holds.

    Each asks fewer consents than a page (a page ending inside a tie, then a few after its cursor);
    how many depends on the ties a client met and on how long it lived (a poking sensor keeps its
    client, a rescheduled one starts afresh), never on the consents a wait is about.
    """
    return sum(
        1
        for entry in sim.requests_log
        if entry["method"] == "Zalo/ListRequestConsent"
        and isinstance(entry["body"], dict)
        and (entry["body"].get("paging") or {}).get("limit", page_size) < page_size
    )


@pytest.fixture
def etelecom_simulator_options(platform_variant: str | None) -> dict[str, object]:
    """Simulator settings for the suite: a recognisable key, a small data set, the chosen variant."""
    from airflow_provider_etelecom.testing import PLATFORM_VARIANTS

    return {"consents": 500, "seed": 7, "api_key": SECRET_KEY, **PLATFORM_VARIANTS.get(platform_variant or "", {})}


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """One moto S3 server per session: storage filesystems are cached per connection, so a
    server replaced between test modules would leave them pointing at a closed port."""
    # The Amazon provider's s3 filesystem needs s3fs >= 2023 (async, on aiobotocore); an environment
    # resolved to the old synchronous s3fs 0.4 cannot write s3:// through ObjectStoragePath at all.
    pytest.importorskip("aiobotocore", reason="s3:// through ObjectStoragePath needs s3fs>=2023 with aiobotocore")
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    # What moto's ThreadedMotoServer serves, with a short poll interval: its stop() waits for
    # serve_forever's next poll, 0.5 s by default.
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}"
    server.shutdown()
    thread.join()


@pytest.fixture
def s3_bucket(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    import boto3

    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_TEST",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing-key-id",
                "password": "testing-secret",
                "extra": {"endpoint_url": moto_server, "region_name": "us-east-1"},
            }
        ),
    )
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="testing-key-id",
        aws_secret_access_key="testing-secret",
    )
    name = f"exports-{datetime.now(timezone.utc).strftime('%H%M%S%f')}"
    s3.create_bucket(Bucket=name)
    return s3, name


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A real read-only file system (a tmpfs mounted ``ro``); skipped where this user may not mount."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    mount = shutil.which("mount")
    if mount is None:
        pytest.skip("no mount command")
    made = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True, text=True, check=False
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {made.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture
def retry_pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record, instead of sleeping, the pauses the hooks' clients take between retries.

    The clients keep the connection's whole retry budget (the policy every waiting mode shares);
    the test drives time rather than waiting out real back-offs, and can assert the pauses taken
    (a ``Retry-After`` is honoured).
    """
    from airflow_provider_etelecom.hooks import etelecom

    pauses: list[float] = []
    build = etelecom._RereadingClient.__init__

    def recording(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("sleep", pauses.append)
        build(self, *args, **kwargs)

    monkeypatch.setattr(etelecom._RereadingClient, "__init__", recording)
    return pauses


def activate_assets_before_dag_test(dag: Any) -> None:
    """Write ``dag`` to the metadata database on Airflow 3.0, so its assets are active for ``dag.test()``.

    Airflow 3.0's ``dag.test()`` runs a DAG the database has never seen: a task with an ``Asset`` among
    its inlets or outlets fails before it starts, its assets being inactive (apache/airflow#51644).
    Airflow 3.1 and later write the DAG first, as its DAG processor would; Airflow 2 needs no assets.
    """
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS

    if not AIRFLOW_V_3_0_PLUS or AIRFLOW_V_3_1_PLUS:
        return
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.models.dag import DAG as SchedulerDAG
    from airflow.serialization.serialized_objects import SerializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    scheduler_dag = SerializedDAG.deserialize_dag(SerializedDAG.serialize_dag(dag))
    SchedulerDAG.bulk_write_to_db("dags-folder", None, [scheduler_dag])


def without_masking_requests(text: str) -> str:
    """``text`` less the lines in which Airflow 3.0's ``dag.test()`` logs a secret it was asked to mask.

    ``dag.test()`` runs the task in-process, and on Airflow 3.0 the channel between the task and its
    supervisor logs each request at DEBUG with its body, so ``MaskSecret(value='the key', ...)`` is
    printed for the connection's own password. Deployed tasks talk over a socket, which logs no body;
    from Airflow 3.1 on the line is not printed. Every other line must still hold no key.
    """
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS

    if not AIRFLOW_V_3_0_PLUS or AIRFLOW_V_3_1_PLUS:
        return text
    return "\n".join(line for line in text.splitlines() if "MaskSecret(value=" not in line)


#: Runs one DAG file with ``dag.test()`` in a fresh interpreter and writes the run's state.
LINEAGE_RUNNER = """
import json, runpy, sys
from datetime import datetime, timezone
from airflow.providers.common.compat.sdk import AIRFLOW_V_3_0_PLUS
dag = runpy.run_path(sys.argv[1])["dag"]
when = datetime(2026, 1, 5, tzinfo=timezone.utc)
run = dag.test(logical_date=when) if AIRFLOW_V_3_0_PLUS else dag.test(execution_date=when)
open(sys.argv[2], "w").write(json.dumps({"state": str(run.state)}))
"""


def run_dag_for_lineage(
    file_name: str, dag_source: str, tmp_path: Path
) -> tuple[list[dict[str, Any]], dict[str, dict[str, list[dict[str, Any]]]], str]:
    """Run ``dag_source`` once with OpenLineage's file transport, in a fresh interpreter.

    A fresh interpreter, because the OpenLineage listener is registered when Airflow starts. The
    DAG's task ``fails`` is meant to fail, so the run must end ``failed``.

    :return: the events, the events by job name and event type, and the raw text of the file.
    """
    dags = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dags.mkdir(parents=True, exist_ok=True)
    dag_file = dags / file_name
    dag_file.write_text(dag_source)
    events_file = tmp_path / "events.jsonl"
    env = {
        **os.environ,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "etelecom-tests",
    }
    done = subprocess.run(
        [sys.executable, "-c", LINEAGE_RUNNER, str(dag_file), str(tmp_path / "state.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "state.json").read_text()) == {"state": "failed"}  # "fails" fails, as meant
    text = events_file.read_text()
    events = [json.loads(line) for line in text.splitlines() if line.strip()]
    by_job: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for event in events:
        by_job.setdefault(event["job"]["name"], {}).setdefault(event["eventType"], []).append(event)
    return events, by_job, text


def only(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The one event of a list that must hold exactly one."""
    assert len(events) == 1, events
    return events[0]
