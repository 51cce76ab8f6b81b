"""The package layout says what it holds: one documented import path per public class.

Users copy import lines from the README, the docs and the example DAGs, so those are where a
second path would creep in. Each Airflow-facing class is documented at the module that defines it,
and that module is named after it; nothing else imports them.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

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
    *sorted((ROOT / "docs").rglob("*.md")),
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


# -- the import layers (issue 20) ------------------------------------------------------------------


def _layout_report() -> Any:
    """The rules live in scripts/layout_report.py, which also prints them for any commit."""
    spec = importlib.util.spec_from_file_location("layout_report", ROOT / "scripts" / "layout_report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("layout_report", module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_every_module_keeps_to_its_layer() -> None:
    """client/ imports no Airflow, storage library or other layer; outputs/ no operator; sensors and
    triggers no operator; nothing imports a private module or name of another package."""
    report = _layout_report()
    assert report.violations(report.read_modules(None)) == []


def test_the_layer_rules_catch_what_they_forbid() -> None:
    report = _layout_report()
    planted = [
        report.Module("client/leak.py", "import airflow\nfrom airflow_provider_etelecom.hooks.etelecom import X\n"),
        report.Module("outputs/leak.py", "from airflow_provider_etelecom.operators.list_consents import Y\n"),
        report.Module("sensors/leak.py", "from airflow_provider_etelecom.operators.base import Z\n"),
        report.Module("transfers/leak.py", "from airflow_provider_etelecom.operators._private import W\n"),
        report.Module("hooks/leak.py", "from airflow_provider_etelecom.client.paging import _epoch\n"),
    ]
    found = "\n".join(report.violations(planted))
    for expected in (
        "client/leak.py:1 imports airflow: client imports no airflow",
        "client/leak.py:2 imports airflow_provider_etelecom.hooks.etelecom: client/ never imports hooks/",
        "outputs/leak.py:1 imports airflow_provider_etelecom.operators.list_consents: outputs/ never imports "
        "operators/",
        "sensors/leak.py:1 imports airflow_provider_etelecom.operators.base: sensors/ never imports operators/",
        "a private module of another package",
        "imports the private name _epoch",
    ):
        assert expected in found, expected


def test_every_public_name_is_imported_by_a_user_or_another_layer() -> None:
    """``__all__`` lists only what the docs, the example DAGs, the benchmarks, e2e or another layer
    import: a name its own layer and the tests alone use is not public."""
    report = _layout_report()
    assert report.unused_public_names(report.read_modules(None), report.user_texts()) == []


def test_the_public_name_rule_catches_a_name_only_its_layer_uses() -> None:
    report = _layout_report()
    modules = [
        report.Module("client/a.py", '__all__ = ["used", "inner"]\n'),
        report.Module("client/b.py", "from airflow_provider_etelecom.client.a import inner\n"),
        report.Module("hooks/h.py", "from airflow_provider_etelecom.client.a import used\n"),
    ]
    assert report.unused_public_names(modules, []) == ["airflow_provider_etelecom.client.a.inner"]


def test_what_the_docs_import_is_public() -> None:
    """A name the README, the docs or the example DAGs import is in its module's ``__all__``."""
    report = _layout_report()
    assert report.missing_public_names(report.read_modules(None), report.docs_texts()) == []
