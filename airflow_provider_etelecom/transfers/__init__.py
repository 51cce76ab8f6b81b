"""Transfers of eTelecom consents into other systems.

:class:`ConsentsToSqlOperator` (PostgreSQL, SQLite) lives in
:mod:`airflow_provider_etelecom.transfers.consents_to_sql`, its one documented path; importing it
from this package, as earlier versions of the README did, still works.
"""

from __future__ import annotations

from airflow_provider_etelecom.transfers.consents_to_sql import ConsentsToSqlOperator

__all__ = ["ConsentsToSqlOperator"]
