"""Provider metadata: valid against Airflow's own schema, found by the providers manager."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from importlib.metadata import entry_points, metadata
from pathlib import Path

import airflow
import jsonschema
import pytest
import tomllib

from airflow_provider_etelecom import get_provider_info

ROOT = Path(__file__).resolve().parents[1]


def test_provider_info_is_valid_against_airflows_schema() -> None:
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_entry_point_is_registered() -> None:
    points = [
        p for p in entry_points(group="apache_airflow_provider") if p.value.startswith("airflow_provider_etelecom")
    ]
    assert len(points) == 1
    assert points[0].load()() == get_provider_info()


def test_provider_info_import_is_light() -> None:
    code = (
        "import sys, airflow_provider_etelecom as p; p.get_provider_info(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'requests', 'tenacity')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_providers_manager_knows_the_connection_type() -> None:
    from airflow.providers_manager import ProvidersManager

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manager = ProvidersManager()
        assert "airflow-provider-etelecom" in manager.providers
        hook = manager.hooks["etelecom"]
        assert hook is not None
        assert hook.hook_class_name == "airflow_provider_etelecom.hooks.etelecom.EtelecomHook"
        assert hook.connection_type == "etelecom"
        assert hook.hook_name == "eTelecom"
        behaviours = manager.field_behaviours
        widgets = manager.connection_form_widgets
    ours = [w for w in caught if "etelecom" in str(w.message).lower()]
    assert ours == []
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_2_PLUS

    if AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_2_PLUS:
        pytest.skip(
            "Airflow 3.0 and 3.1 take a connection form's fields and labels from the hook's methods, and only with "
            "flask_appbuilder (the FAB provider) installed; provider info's conn-fields are read from 3.2 on"
        )
    assert behaviours["etelecom"]["relabeling"] == {"host": "Base URL", "password": "API key"}
    assert set(behaviours["etelecom"]["hidden_fields"]) == {"schema", "login", "port", "extra"}
    ours_fields = {k.rsplit("__", 1)[-1] for k in widgets if k.startswith("extra__etelecom__")}
    assert ours_fields == {"account_type", "timeout", "max_retries", "max_retry_time"}


def test_airflow_shows_the_documentation_project_url() -> None:
    """Airflow's providers page (UI, REST API, ``providers get --full``) links the Project-URL labelled Documentation.

    Read from the installed metadata, which ``scripts/lib.sh`` re-installs whenever pyproject.toml changes;
    ``scripts/release-check`` checks the same on the built wheel with ``airflow providers get``.
    """
    from airflow.providers_manager import ProvidersManager

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Documentation"]
    installed = dict(
        entry.split(", ", 1) for entry in metadata("airflow-provider-etelecom").get_all("Project-URL") or []
    )
    assert installed.get("Documentation") == declared, "stale install: reinstall the package (scripts/lib.sh does)"
    provider = ProvidersManager().providers["airflow-provider-etelecom"]
    if "documentation-url" in provider.data:  # Airflow 3.2+: the providers manager reads it for the REST API
        # Airflow 3.2 keeps the space after the label's comma (3.3 strips it); a link's URL parser
        # drops leading spaces, so the page still links the right address.
        assert provider.data["documentation-url"].strip() == declared
    else:  # Airflow 2: the web server's providers view reads it
        from airflow.providers.common.compat.sdk import AIRFLOW_V_3_0_PLUS

        if AIRFLOW_V_3_0_PLUS:  # 3.0: neither its providers manager nor its UI reads a documentation URL
            pytest.skip("Airflow 3.0 shows no provider documentation URL (3.1+ and 2.x do)")
        from airflow.utils.docs import get_doc_url_for_provider

        assert get_doc_url_for_provider("airflow-provider-etelecom", provider.version) == declared
