"""The operators' import path in earlier versions of the README; kept so DAGs written with it still import.

Each operator lives in the module named after it, its one documented path:
:mod:`airflow_provider_etelecom.operators.list_consents` and
:mod:`airflow_provider_etelecom.operators.request_consent`.
"""

from __future__ import annotations

from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator
from airflow_provider_etelecom.operators.request_consent import RequestConsentOperator

__all__ = ["ListConsentsOperator", "RequestConsentOperator"]
