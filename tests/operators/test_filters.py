"""The listing arguments declared once: TypedDicts, query and operators agree; each value is validated once."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_etelecom.client import query
from airflow_provider_etelecom.client.query import ConsentQuery
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.operators import request_consent
from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator
from airflow_provider_etelecom.operators.request_consent import RequestConsentOperator
from airflow_provider_etelecom.testing import EtelecomSimulator
from tests.operators.test_request_consent import SEND, context, operator


def test_the_filters_the_query_and_the_operators_agree() -> None:
    """ConsentFilters/ConsentPaging, ConsentQuery's fields and both operators' explicit parameters match."""
    import dataclasses
    import inspect

    from airflow_provider_etelecom.client.query import FILTER_FIELDS, LISTING_FIELDS, ConsentFilters, ConsentPaging
    from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator
    from airflow_provider_etelecom.transfers.consents_to_sql import ConsentsToSqlOperator

    assert tuple(ConsentFilters.__annotations__) == FILTER_FIELDS
    assert FILTER_FIELDS + tuple(ConsentPaging.__annotations__) == LISTING_FIELDS
    assert tuple(f.name for f in dataclasses.fields(ConsentQuery)) == LISTING_FIELDS
    defaults = {f.name: f.default for f in dataclasses.fields(ConsentQuery)}
    for cls in (ListConsentsOperator, ConsentsToSqlOperator):
        params = inspect.signature(cls.__init__).parameters
        for name in LISTING_FIELDS:  # explicit, as partial().expand_kwargs() needs, with the query's default
            assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, (cls, name)
            assert params[name].default == defaults[name], (cls, name)
        assert set(FILTER_FIELDS) <= set(cls.template_fields)
        doc = inspect.getdoc(cls) or ""
        assert all(doc.count(f":param {name}:") == 1 for name in LISTING_FIELDS), cls


def test_the_rendered_listing_validates_only_what_rendering_changed(
    etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    given: list[set[str]] = []
    original = EtelecomHook.build_query

    def recording(self: EtelecomHook, query: ConsentQuery | None = None, /, **arguments: Any) -> ConsentQuery:
        given.append(set(arguments))
        return original(self, query, **arguments)

    monkeypatch.setattr(EtelecomHook, "build_query", recording)
    op = ListConsentsOperator(
        task_id="export", oa_id="{{ params.oa }}", reply_status="P", date_from="2020-01-01T00:00:00Z", page_size=50
    )
    op.oa_id = etelecom_connection.consents()[0]["oa_id"]  # what rendering puts there
    consents = op.execute({})  # type: ignore[arg-type]
    assert consents and all(c["reply_status"] == "P" for c in consents)
    # None and literal values were validated when the DAG was parsed; only the rendered one now.
    assert given == [{"oa_id"}]


def test_the_consent_request_is_validated_once(
    etelecom_connection: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    given: list[set[str]] = []
    original = query.validate_request_arguments

    def recording(arguments: Any, **settings: Any) -> dict[str, str]:
        given.append(set(arguments))
        return original(arguments, **settings)

    monkeypatch.setattr(request_consent, "validate_request_arguments", recording)
    monkeypatch.setattr(query, "validate_request_arguments", recording)
    op: RequestConsentOperator = operator(phone="{{ params.phone }}")
    op.phone = "0912 000 444"  # what rendering puts there
    consent = op.execute(context())
    assert consent["phone"] == "84912000444"
    assert etelecom_connection.stats.count(method=SEND) == 1
    # Parse time: the three literal arguments; run time: the rendered phone; the client: nothing again.
    assert given == [{"oa_id", "call_type", "reason_code"}, {"phone"}]
