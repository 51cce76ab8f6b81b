"""Operators for eTelecom consents: export them (:class:`ListConsentsOperator`) and request one
(:class:`RequestConsentOperator`).

Each operator lives in its own module; this module is the public import path.
"""

from __future__ import annotations

from airflow_provider_etelecom.operators.list_consents import ListConsentsOperator
from airflow_provider_etelecom.operators.request_consent import RequestConsentOperator

__all__ = ["ListConsentsOperator", "RequestConsentOperator"]
