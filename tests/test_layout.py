"""The package layout says what it holds: one documented import path per public class.

Users copy import lines from the README, the docs and the example DAGs, so those are where a
second path would creep in. Each Airflow-facing class is documented at the module that defines it,
and that module is named after it; nothing else imports them.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import airflow_provider_etelecom
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator
from airflow_provider_etelecom.operators.request_consent import RequestConsentOperator
from airflow_provider_etelecom.sensors.consent_replies import ConsentRepliesSensor, ConsentReplySensor
from airflow_provider_etelecom.transfers.consents_to_sql import ConsentsToSqlOperator
from airflow_provider_etelecom.triggers.consent_replies import ConsentRepliesTrigger
from airflow_provider_etelecom.triggers.consent_reply_event import ConsentReplyEventTrigger

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "example_dags").glob("*.py")),
]
IMPORT = re.compile(r"from (airflow_provider_etelecom[\w.]*) import \(?([\w, \n]+)\)?")
#: The Airflow-facing classes: each has exactly one documented path, the module defining it.
CLASSES = [
    EtelecomHook,
    ListConsentsOperator,
    RequestConsentOperator,
    ConsentRepliesSensor,
    ConsentReplySensor,
    ConsentsToSqlOperator,
    ConsentRepliesTrigger,
    ConsentReplyEventTrigger,
]
KIND = re.compile(r"(Hook|Operator|Sensor|Trigger)$")


def documented_paths() -> dict[str, set[str]]:
    """Map each imported name to the modules the docs and examples import it from."""
    paths: dict[str, set[str]] = {}
    for source in SOURCES:
        for module, names in IMPORT.findall(source.read_text(encoding="utf-8")):
            for name in filter(None, (n.strip() for n in names.replace("\n", ",").split(","))):
                paths.setdefault(name, set()).add(module)
    return paths


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_each_class_is_documented_at_the_one_module_that_defines_it(cls: type) -> None:
    paths = documented_paths()
    found = paths.get(cls.__name__, {cls.__module__})
    assert found == {cls.__module__}, f"the docs import {cls.__name__} from {sorted(found)}"
    table = (ROOT / "README.md").read_text(encoding="utf-8").split("## The two commands")[0]
    assert f"`{cls.__module__}`" in table, f"the README's table of imports lacks {cls.__module__}"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_each_module_is_named_after_its_class(cls: type) -> None:
    """``list_consents`` holds ``ListConsentsOperator``; a narrowed variant may live beside its base."""
    module = cls.__module__.rsplit(".", 1)[1]
    base = next(c for c in cls.__mro__ if c.__module__ == cls.__module__ and c.__mro__[1].__module__ != cls.__module__)
    assert snake(KIND.sub("", base.__name__)) == module, f"{cls.__module__} does not say it holds {cls.__name__}"


def test_no_second_path_imports_a_class() -> None:
    """Nothing was released under another path: the compatibility modules are gone, not re-exporting."""
    for gone in ("operators.consents", "sensors.consents", "utils"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(f"airflow_provider_etelecom.{gone}")
    import airflow_provider_etelecom.transfers as transfers

    assert not hasattr(transfers, "ConsentsToSqlOperator")


def test_the_provider_info_lists_the_defining_modules() -> None:
    info = airflow_provider_etelecom.get_provider_info()
    listed = {
        m for kind in ("hooks", "operators", "sensors", "triggers") for e in info[kind] for m in e["python-modules"]
    }
    listed |= {entry["python-module"] for entry in info["transfers"]}
    assert listed == {cls.__module__ for cls in CLASSES}
