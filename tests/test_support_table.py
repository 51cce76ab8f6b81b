"""The README's support table says what this Airflow does, and which legs test which version.

Each leg checks its own row: whether a real task run gives the operator a task state store, and
whether an ``AssetWatcher`` on ``ConsentReplyEventTrigger`` can be built. Every leg checks that the
table's Airflow versions, Pythons and test selections are those of ``TEST_LEGS`` in ``scripts/lib.sh``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import airflow

from airflow_provider_etelecom.exceptions import EtelecomConfigError
from airflow_provider_etelecom.testing import EtelecomSimulator
from tests.operators.test_list_consents import load_dag_file, run_dag

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["Airflow", "Python tested", "tests run", "task state store", "AssetWatcher", "shared polling of waits"]
SELECTIONS = {"": "whole suite", "airflow": "Airflow-facing"}

STORE_PROBE_DAG = """
import json
from datetime import datetime, timezone

from airflow.providers.common.compat.sdk import DAG, BaseOperator


class Probe(BaseOperator):
    def execute(self, context):
        # What RequestConsentOperator looks up (operators/request_consent.py, _task_state_store).
        with open({out!r}, "w") as handle:
            json.dump({{"store": context.get("task_state_store") is not None}}, handle)


START = datetime(2026, 1, 1, tzinfo=timezone.utc)
with DAG(dag_id="support_table_store_probe", schedule=None, start_date=START) as dag:
    Probe(task_id="probe")
"""


def support_table() -> dict[str, dict[str, str]]:
    """Return the README's support table, its rows by Airflow version."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("| " + " | ".join(COLUMNS) + " |")
    lines = text[start:].split("\n\n", 1)[0].splitlines()
    rows = [[cell.strip().strip("`") for cell in line.strip("|").split("|")] for line in lines[2:]]
    return {row[0]: dict(zip(COLUMNS, row, strict=True)) for row in rows}


def legs_by_version() -> dict[str, tuple[list[str], set[str]]]:
    """Return ``TEST_LEGS`` of ``scripts/lib.sh`` by Airflow version: its Pythons and selections."""
    legs_text = re.search(r'^TEST_LEGS="([^"]*)"', (ROOT / "scripts" / "lib.sh").read_text(), re.M)
    assert legs_text is not None
    legs: dict[str, tuple[list[str], set[str]]] = {}
    for leg in legs_text[1].split():
        version, python, *scope = leg.split(":")
        pythons, selections = legs.setdefault(version, ([], set()))
        pythons.append(python)
        selections.add(SELECTIONS[scope[0] if scope else ""])
    return legs


def this_row() -> dict[str, str]:
    minor = ".".join(airflow.__version__.split(".")[:2])
    rows = [row for version, row in support_table().items() if version.startswith(f"{minor}.")]
    assert len(rows) == 1, f"the README's support table has no row for Airflow {minor}"
    return rows[0]


def test_the_table_has_a_row_per_leg_with_its_pythons_and_selection() -> None:
    table = support_table()
    legs = legs_by_version()
    assert set(table) == set(legs)
    for version, (pythons, selections) in legs.items():
        assert table[version]["Python tested"] == ", ".join(sorted(pythons)), version
        assert table[version]["tests run"] == ", ".join(sorted(selections)), version


def test_the_readme_says_why_python_314_is_not_tested() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert not any("3.14" in row["Python tested"] for row in support_table().values())
    assert "Python 3.14 is not tested" in text


def test_the_task_state_store_claim(airflow_db: str, tmp_path: Path) -> None:
    out = tmp_path / "probe.json"
    dag = load_dag_file("support_table_store_probe", STORE_PROBE_DAG.format(out=str(out)))
    dag_run = run_dag(dag, datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert str(dag_run.state) == "success"
    has_store = json.loads(out.read_text())["store"]
    assert this_row()["task state store"] == ("yes" if has_store else "no")


def test_the_asset_watcher_claim() -> None:
    from airflow_provider_etelecom.triggers.consent_reply_event import ConsentReplyEventTrigger

    try:
        trigger = ConsentReplyEventTrigger(oa_id="4239023413265392134")
    except EtelecomConfigError:
        assert this_row()["AssetWatcher"] == "no"
        return
    from airflow.sdk import Asset, AssetWatcher

    asset = Asset("etelecom://replies", watchers=[AssetWatcher(name="replies", trigger=trigger)])
    assert asset.watchers[0].trigger is trigger
    assert this_row()["AssetWatcher"] == "yes"


def test_the_shared_polling_claim(etelecom_connection: EtelecomSimulator) -> None:
    """Deferred waits of one OA share one listing per poll on this leg's Airflow (the table says yes)."""
    from tests.triggers.test_shared_poll import test_waits_share_one_listing_per_poll

    assert this_row()["shared polling of waits"] == "yes"
    test_waits_share_one_listing_per_poll(etelecom_connection)
