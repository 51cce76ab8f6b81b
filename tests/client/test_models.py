"""The consent record, declared once: the field table and the ``Consent`` TypedDict stay equal."""

from __future__ import annotations

from typing import get_args, get_type_hints

from airflow_provider_etelecom.client.models import CONSENT_FIELD_NAMES, CONSENT_FIELDS, Consent, FieldKind

#: The Python type of each kind as the API's JSON carries it.
PYTHON_TYPES = {"id": str, "text": str, "enum": str, "time": str, "bool": bool, "int": int}


def test_the_field_table_is_the_typed_dict_in_its_order() -> None:
    """Order matters: it is the column order of every output (Parquet, SQL, lineage)."""
    hints = get_type_hints(Consent)
    assert list(CONSENT_FIELD_NAMES) == list(hints)
    assert [(field.name, PYTHON_TYPES[field.kind]) for field in CONSENT_FIELDS] == list(hints.items())


def test_each_field_once_with_a_kind_and_a_one_line_description() -> None:
    assert len(set(CONSENT_FIELD_NAMES)) == len(CONSENT_FIELDS)
    assert set(PYTHON_TYPES) == set(get_args(FieldKind))
    for field in CONSENT_FIELDS:
        assert field.kind in PYTHON_TYPES and field.description.strip() == field.description != ""
        assert "\n" not in field.description
